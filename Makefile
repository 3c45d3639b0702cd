# Two entry points for a fresh machine (see README.md):
#   make demo   - create .venv, install voiceconv, convert a bundled sample with the bundled default model
#   make test   - create .venv, install voiceconv with test extras, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT := out

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -e ".[app,eval,test]"
	touch $@

install: $(VENV)/.installed

MODEL := samples/models/kathleen_rms.safetensors
SAMPLE := samples/audio/kathleen_arctic_a0592.flac

demo: install
	$(BIN)/voiceconv convert --model $(MODEL) --direction a2b $(SAMPLE) -o $(OUT)
	$(BIN)/voiceconv spectrogram $(SAMPLE) $(OUT)/input.png
	$(BIN)/voiceconv spectrogram $(OUT)/kathleen_arctic_a0592.wav $(OUT)/converted.png
	@echo "Listen to $(OUT)/kathleen_arctic_a0592.wav (Kathleen converted to the rms voice);"
	@echo "compare $(OUT)/input.png with $(OUT)/converted.png."

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(OUT)
