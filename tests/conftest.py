"""Shared fixtures: synthetic speech-like audio in tmp_path, and the real corpora in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from voiceconv.audio.io import save_audio

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "samples"

torch.set_num_threads(2)


def harmonic_tone(seconds: float = 1.0, sample_rate: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced-speech-like test signal: harmonics of a gliding f0 with a formant-ish envelope, plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    wav = sum(np.sin(k * phase) / k * np.exp(-((k * f0 - 700) / 1500) ** 2) for k in range(1, 30))
    wav = wav + 0.003 * rng.standard_normal(len(t))
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)


def mel_image(wav, config) -> torch.Tensor:
    """A mono waveform ``[samples]`` (numpy or torch) -> log-mel image ``[1, n_mels, frames]``."""
    from voiceconv.audio.features import MelImageEncoder

    return MelImageEncoder(config)(torch.as_tensor(wav, dtype=torch.float32))


@pytest.fixture
def speakers(tmp_path):
    """Two synthetic 'speakers': high and low pitched harmonic tones, 3 x 1.5 s each, in tmp_path."""
    for name, f0 in (("high", 240.0), ("low", 100.0)):
        for i in range(3):
            save_audio(tmp_path / name / f"{i}.wav", harmonic_tone(1.5, f0=f0 + 7 * i, seed=i), 16000)
    return tmp_path / "high", tmp_path / "low"


@pytest.fixture
def tone() -> np.ndarray:
    return harmonic_tone()


@pytest.fixture
def shared_data() -> Path:
    """The real corpora; tests using this are skipped with a reason when the folder is absent."""
    if not (SHARED_DATA / "vcc2016").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (CI always has it; clone the project beside shared/)")
    return SHARED_DATA
