"""Mel-cepstral distortion (MCD) between two utterances of the same sentence.

Definition (Kubichek 1993), as used by the VCC and CycleGAN-VC papers:
WORLD spectral envelope (pyworld) -> SPTK mel-cepstrum (pysptk, order 24,
all-pass constant alpha 0.42 at 16 kHz) on voiced frames, c0 (energy)
excluded, frames aligned by dynamic time warping, and

    MCD [dB] = 10 / ln(10) * sqrt(2 * sum_{d=1..24} (c_d - c'_d)^2)

averaged over the aligned frame pairs.

Waveforms are analysed as 16-bit PCM, exactly as they would be stored in a
file. This matters for processed audio: a band that resampling left
digitally empty (e.g. above 5 kHz after a downward pitch shift) would
otherwise have an unbounded log spectrum and dominate the distortion (32 dB
instead of 18 dB for the pitch-shift baseline on VCC2016 SF1 -> TM1), while
the 16-bit noise floor changes nothing for natural recordings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from voiceconv.evaluate.extras import require

MCEP_ORDER = 24
FRAME_PERIOD_MS = 5.0
_MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)


def all_pass_alpha(sample_rate: int) -> float:
    """SPTK's customary frequency-warping constant for a sample rate (0.42 at 16 kHz)."""
    return {8000: 0.31, 16000: 0.42, 22050: 0.455, 24000: 0.466, 44100: 0.544, 48000: 0.554}.get(sample_rate, 0.42)


@dataclass(frozen=True)
class WorldFeatures:
    """Per-frame F0 ``[frames]`` (0 = unvoiced) and mel-cepstrum ``[frames, order+1]``."""

    f0: np.ndarray
    mcep: np.ndarray

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0


def world_f0(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """F0 per 5 ms frame in Hz (0 = unvoiced; DIO refined by StoneMask) and the frame times."""
    pyworld = require("pyworld")
    x = np.ascontiguousarray(wav, dtype=np.float64)
    f0, times = pyworld.dio(x, sample_rate, frame_period=FRAME_PERIOD_MS)
    return pyworld.stonemask(x, f0, times, sample_rate), times


def as_pcm16(wav: np.ndarray) -> np.ndarray:
    """``wav`` rounded to 16-bit PCM levels (as written to a file), as float64."""
    return np.round(np.clip(np.asarray(wav, dtype=np.float64), -1.0, 1.0) * 32767.0) / 32767.0


def world_features(wav: np.ndarray, sample_rate: int, order: int = MCEP_ORDER) -> WorldFeatures:
    """F0 (DIO + StoneMask) and mel-cepstrum of a mono waveform ``[samples]``, analysed as 16-bit PCM."""
    pyworld = require("pyworld")
    x = as_pcm16(wav)
    f0, times = world_f0(x, sample_rate)
    envelope = pyworld.cheaptrick(x, f0, times, sample_rate)  # [frames, fft_size/2+1]
    return WorldFeatures(f0=f0, mcep=mel_cepstrum(envelope, sample_rate, order))


def mel_cepstrum(envelope: np.ndarray, sample_rate: int, order: int = MCEP_ORDER) -> np.ndarray:
    """SPTK mel-cepstrum ``[frames, order+1]`` (c0 first) of a WORLD power envelope ``[frames, fft_size/2+1]``."""
    pysptk = require("pysptk")
    return pysptk.sp2mc(np.ascontiguousarray(envelope, dtype=np.float64), order=order,
                        alpha=all_pass_alpha(sample_rate))


def frame_distortion(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mel-cepstral distortion in dB ``[N]`` between paired frames of two cepstra ``[N, D]`` (c0 already left out)."""
    return _MCD_CONSTANT * np.sqrt(np.sum((a - b) ** 2, axis=1))


def dtw_path(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``a`` ``[N, D]`` and ``b`` ``[M, D]`` of the optimal Euclidean DTW alignment."""
    import librosa

    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    path = path[::-1]
    return path[:, 0], path[:, 1]


def mcd_from_features(converted: WorldFeatures, reference: WorldFeatures) -> float:
    """MCD in dB between voiced frames of two feature sets (c0 excluded), DTW-aligned."""
    a = converted.mcep[converted.voiced, 1:]  # [N, order]
    b = reference.mcep[reference.voiced, 1:]  # [M, order]
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    ia, ib = dtw_path(a, b)
    return float(np.mean(frame_distortion(a[ia], b[ib])))


def mel_cepstral_distortion(converted: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """MCD in dB between two mono waveforms of the same sentence (NaN when either has no voiced frames)."""
    return mcd_from_features(world_features(converted, sample_rate), world_features(reference, sample_rate))
