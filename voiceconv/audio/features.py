"""Log-mel spectrogram "images": waveform <-> ``[1, n_mels, frames]`` in [-1, 1].

The image is the log-magnitude mel spectrogram, mapped linearly from
``[min_db, max_db]`` to ``[-1, 1]`` and clamped; row 0 is the lowest mel band.
Every parameter lives in :class:`FeatureConfig`, which travels with saved
images and model files so either alone is enough to resynthesize audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torchaudio

from voiceconv.errors import ConfigError

WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window, "blackman": torch.blackman_window}


@dataclass(frozen=True)
class FeatureConfig:
    """Every parameter that defines a spectrogram image."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    window: Literal["hann", "hamming", "blackman"] = "hann"
    n_mels: int = 128  # 80 mels cost 1.6 dB of copy-synthesis MCD through Griffin-Lim (benchmarks/vocoder.py)
    fmin: float = 0.0
    fmax: float = 8000.0
    min_db: float = -100.0  # log floor: mel magnitudes below 10**(min_db/20) map to -1
    max_db: float = 20.0  # magnitudes at or above 10**(max_db/20) map to +1

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate < 1000:
            problems.append(f"sample_rate={self.sample_rate} must be at least 1000 Hz")
        if self.n_fft < 16 or self.n_fft & (self.n_fft - 1):
            problems.append(f"n_fft={self.n_fft} must be a power of two >= 16")
        if not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length={self.win_length} must be in (0, n_fft={self.n_fft}]")
        if not 0 < self.hop_length <= self.win_length:
            problems.append(f"hop_length={self.hop_length} must be in (0, win_length={self.win_length}]")
        if self.window not in WINDOWS:
            problems.append(f"window={self.window!r} must be one of {', '.join(WINDOWS)}")
        if not 1 <= self.n_mels <= self.n_fft // 2 + 1:
            problems.append(f"n_mels={self.n_mels} must be in [1, n_fft/2+1={self.n_fft // 2 + 1}]")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(f"need 0 <= fmin ({self.fmin}) < fmax ({self.fmax}) <= sample_rate/2 ({self.sample_rate / 2})")
        if not self.min_db < self.max_db:
            problems.append(f"min_db ({self.min_db}) must be below max_db ({self.max_db})")
        if problems:
            raise ConfigError("invalid feature config: " + "; ".join(problems))

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def frames_for(self, n_samples: int) -> int:
        """Number of image columns for a waveform of ``n_samples`` (centred STFT)."""
        return 1 + n_samples // self.hop_length

    def samples_for(self, n_frames: int) -> int:
        """Number of samples that ``n_frames`` image columns resynthesize to."""
        return (n_frames - 1) * self.hop_length


def stft_window(config: FeatureConfig, device: torch.device | str | None = None) -> torch.Tensor:
    """The analysis/synthesis window ``[win_length]``."""
    return WINDOWS[config.window](config.win_length, device=device)


# The Slaney mel scale (librosa's and torchaudio's mel_scale="slaney"): linear below 1 kHz, logarithmic above.
SLANEY_BREAK_HZ = 1000.0
SLANEY_HZ_PER_MEL = 200.0 / 3.0  # below the break
SLANEY_LOG_STEP = math.log(6.4) / 27.0  # natural log of the frequency ratio per mel above it


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Frequencies in Hz -> Slaney mels."""
    hz = np.asarray(hz, dtype=np.float64)
    above = SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL + np.log(np.maximum(hz, SLANEY_BREAK_HZ) / SLANEY_BREAK_HZ) / SLANEY_LOG_STEP
    return np.where(hz >= SLANEY_BREAK_HZ, above, hz / SLANEY_HZ_PER_MEL)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Slaney mels -> frequencies in Hz (the inverse of :func:`hz_to_mel`)."""
    mels, break_mel = np.asarray(mels, dtype=np.float64), SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL
    return np.where(mels >= break_mel, SLANEY_BREAK_HZ * np.exp(SLANEY_LOG_STEP * (mels - break_mel)),
                    mels * SLANEY_HZ_PER_MEL)


def mel_centres(config: FeatureConfig) -> np.ndarray:
    """Centre frequencies in Hz ``[n_mels]`` of :func:`mel_filterbank`'s filters: the inner ones of ``n_mels + 2``
    points equally spaced in mels from ``fmin`` to ``fmax``."""
    edges = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2))
    return edges[1:-1]


def mel_filterbank(config: FeatureConfig) -> torch.Tensor:
    """Slaney-normalized triangular mel filters ``[n_freqs, n_mels]``."""
    return torchaudio.functional.melscale_fbanks(
        config.n_freqs, config.fmin, config.fmax, config.n_mels, config.sample_rate, norm="slaney", mel_scale="slaney"
    )


class MelImageEncoder:
    """Waveforms ``[..., samples]`` -> log-mel images ``[..., 1, n_mels, frames]`` in [-1, 1]."""

    def __init__(self, config: FeatureConfig, device: torch.device | str = "cpu"):
        self.config = config
        self.window = stft_window(config, device)
        self.filterbank = mel_filterbank(config).to(device)  # [n_freqs, n_mels]

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude ``[..., n_freqs, frames]``."""
        c = self.config
        shape = wav.shape[:-1]
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]), c.n_fft, c.hop_length, c.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True)  # [B, n_freqs, frames]
        return spec.abs().reshape(*shape, *spec.shape[-2:])

    def mel(self, wav: torch.Tensor) -> torch.Tensor:
        """Mel magnitude ``[..., n_mels, frames]``."""
        return torch.matmul(self.filterbank.T, self.magnitude(wav))

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-mel image ``[..., 1, n_mels, frames]`` in [-1, 1]."""
        return mel_to_image(self.mel(wav), self.config).unsqueeze(-3)


def mel_to_image(mel: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Mel magnitude -> [-1, 1] (same shape), linear in dB between ``min_db`` and ``max_db``."""
    db = 20.0 * torch.log10(mel.clamp_min(10 ** (config.min_db / 20)))
    return ((db - config.min_db) / (config.max_db - config.min_db) * 2.0 - 1.0).clamp(-1.0, 1.0)


def image_to_mel(image: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Inverse of :func:`mel_to_image`: [-1, 1] image -> mel magnitude (same shape)."""
    db = (image.clamp(-1.0, 1.0) + 1.0) / 2.0 * (config.max_db - config.min_db) + config.min_db
    return torch.pow(10.0, db / 20.0)


@dataclass(frozen=True)
class SpeakerStats:
    """Per-mel-bin mean and standard deviation ``[n_mels]`` of a speaker's log-mel images."""

    mean: torch.Tensor
    std: torch.Tensor

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """``[..., n_mels, T]`` image -> zero mean, unit variance per bin."""
        return (image - self.mean[:, None]) / self.std[:, None]

    def denormalize(self, image: torch.Tensor) -> torch.Tensor:
        return image * self.std[:, None] + self.mean[:, None]

    def to(self, device: torch.device | str) -> SpeakerStats:
        """The same statistics on ``device``."""
        return SpeakerStats(self.mean.to(device), self.std.to(device))


def dct_matrix(rows: int, coefficients: int) -> torch.Tensor:
    """Orthonormal DCT-II basis ``[coefficients, rows]``: ``c = D @ frame`` for a frame of ``rows`` bands."""
    n = torch.arange(rows, dtype=torch.float64)
    k = torch.arange(coefficients, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / rows * (n + 0.5) * k) * math.sqrt(2.0 / rows)
    basis[0] /= math.sqrt(2.0)
    return basis.float()
