"""The model that ships in samples/ loads, describes itself and converts the bundled clips both ways."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SAMPLES
from voiceconv.audio.io import load_audio
from voiceconv.convert import Converter
from voiceconv.modelfiles.format import read_header

DEFAULT_MODEL = SAMPLES / "models" / "kathleen_rms.safetensors"


def test_default_model_card_and_header_agree():
    header = read_header(DEFAULT_MODEL)
    assert header["kind"] == "voice-cyclegan"
    assert {s["name"] for s in header["speakers"].values()} == {"kathleen", "rms"}
    card = DEFAULT_MODEL.with_suffix(".md").read_text()
    assert f"{header['training']['steps']} steps" in card


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_default_model_converts_the_bundled_clip(direction):
    converter = Converter(DEFAULT_MODEL)
    wav = load_audio(SAMPLES / "audio" / "kathleen_arctic_a0592.flac", 16000)
    out = converter.convert(wav, 16000, direction)
    assert np.isfinite(out).all() and abs(len(out) - len(wav)) < 256
    assert 0.01 < np.abs(out).max() <= 1.0
    assert not np.allclose(out[: len(wav)], wav[: len(out)], atol=0.05)  # it changed the voice, not copied it


def test_default_model_lands_on_the_target_pitch():
    from voiceconv.audio import world

    converter = Converter(DEFAULT_MODEL)
    alignment = converter.alignment("a2b")
    assert alignment.warp < 1.0  # Kathleen -> rms: formants move down
    wav = load_audio(SAMPLES / "audio" / "kathleen_arctic_a0592.flac", 16000)
    f0, _ = world.extract_f0(converter.convert(wav, 16000, "a2b"), 16000)
    semitones_off = 12 * np.log2(np.median(f0[f0 > 0]) / alignment.target.median_hz)
    assert abs(semitones_off) < 2.0
