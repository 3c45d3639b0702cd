"""Prosody: F0 statistics and F0 error, from WORLD's F0 track.

Definitions: F0 is estimated by WORLD (DIO + StoneMask, 5 ms frames) as for
MCD; frames with F0 = 0 are unvoiced and ignored.

- log-F0 statistics: the mean and standard deviation of ln(F0 / 1 Hz) over
  the voiced frames of all given utterances pooled together (the statistics
  used for the usual log-Gaussian F0 conversion).
- median F0: the median in Hz of the same pooled voiced frames.
- F0 RMSE: the two utterances' frames are aligned by dynamic time warping on
  the Euclidean distance of their mel-cepstra c1..c24 (all frames, voiced or
  not); over the aligned pairs voiced in both,

      F0 RMSE [Hz] = sqrt(mean((F0_converted - F0_reference)^2))

  NaN when no aligned pair is voiced in both.
"""

from __future__ import annotations

import numpy as np

from voiceconv.evaluate.mcd import WorldFeatures, dtw_path


def log_f0_stats(f0_arrays: list[np.ndarray]) -> tuple[float, float]:
    """Mean and standard deviation of ln F0 over the voiced frames of all utterances (NaN, NaN if none)."""
    f0 = pooled_voiced_f0(f0_arrays)
    if len(f0) == 0:
        return float("nan"), float("nan")
    log_f0 = np.log(f0)
    return float(log_f0.mean()), float(log_f0.std())


def median_f0(f0_arrays: list[np.ndarray]) -> float:
    """Median F0 in Hz over the voiced frames of all utterances (NaN if none)."""
    f0 = pooled_voiced_f0(f0_arrays)
    return float(np.median(f0)) if len(f0) else float("nan")


def f0_rmse(converted: WorldFeatures, reference: WorldFeatures) -> float:
    """F0 RMSE in Hz over DTW-aligned (on mel-cepstra c1..) frame pairs voiced in both (NaN if none)."""
    if len(converted.f0) == 0 or len(reference.f0) == 0:
        return float("nan")
    ic, ir = dtw_path(converted.mcep[:, 1:], reference.mcep[:, 1:])
    both_voiced = converted.voiced[ic] & reference.voiced[ir]
    if not both_voiced.any():
        return float("nan")
    diff = converted.f0[ic[both_voiced]] - reference.f0[ir[both_voiced]]
    return float(np.sqrt(np.mean(diff**2)))


def pooled_voiced_f0(f0_arrays: list[np.ndarray]) -> np.ndarray:
    """The F0 values (Hz) of the voiced frames (F0 > 0) of all utterances, concatenated ``[frames]``."""
    if not f0_arrays:
        return np.zeros(0)
    f0 = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in f0_arrays])
    return f0[f0 > 0]
