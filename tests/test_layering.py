"""The package's layering: what serving and converting may load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_web_page_and_the_converter_load_no_training_code():
    """A server imports the page (both tabs) and the converter; none of that may pull in voiceconv.train, or the
    training corpora's loader (conversion's speaker statistics live with the features), or the face families' training
code (voiceconv.faces' recipes, tasks and debias)."""
    probe = ("import json, sys; import app, voiceconv.web.page, voiceconv.web.faces, voiceconv.faces.views, "
             "voiceconv.convert, voiceconv.batch; "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('voiceconv.'))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "voiceconv.convert" in loaded and "voiceconv.web.page" in loaded  # the probe saw what it imported
    training = ("voiceconv.data.speakers", "voiceconv.faces.recipes", "voiceconv.faces.tasks", "voiceconv.faces.debias")
    assert [m for m in loaded if m.startswith("voiceconv.train") or m in training] == []


def test_model_files_load_without_conversion_or_training_code():
    """The model-file package sits below conversion: reading, checking and bundling a voice model imports neither
    voiceconv.convert nor voiceconv.train (the old modelcheck climbed back up to the converter)."""
    probe = ("import json, sys; import voiceconv.modelfiles.voice, voiceconv.modelfiles.format; "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('voiceconv.'))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "voiceconv.modelfiles.checks" in loaded  # the probe saw what it imported
    assert [m for m in loaded if m.startswith(("voiceconv.convert", "voiceconv.train", "voiceconv.web"))] == []


def test_the_speech_side_loads_no_face_code():
    """Speech training and the speech VAE share the image modules (nn/, models/), not the faces domain."""
    probe = ("import json, sys; import voiceconv.train.voice, voiceconv.train.speech_vae, voiceconv.speech_vae, "
             "voiceconv.convert; print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if m.startswith("voiceconv.faces")] == []
