# Two entry points for a fresh machine (see README.md):
#   make demo   - create .venv, install voiceconv, run it on a bundled sample
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

demo: install
	$(BIN)/voiceconv spectrogram samples/audio/kathleen_arctic_a0592.flac $(OUT)/kathleen.png
	$(BIN)/voiceconv synthesize $(OUT)/kathleen.png $(OUT)/kathleen_resynthesized.wav
	@echo "Look at $(OUT)/kathleen.png and listen to $(OUT)/kathleen_resynthesized.wav"

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(OUT)
