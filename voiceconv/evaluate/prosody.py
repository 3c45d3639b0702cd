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
- F0 accuracy against the intended contour: the contour a conversion was
  asked for is the source's own F0 moved by the pitch setting (the
  log-Gaussian transform for ``auto``, +N semitones, or unchanged for
  ``source``; :func:`voiceconv.audio.world.transform_f0`). A conversion keeps
  the source's timing, so frame ``t`` of the output is compared with frame
  ``t`` of the intended contour; over the frames voiced in both,

      error [cents] = 1200 * log2(F0_converted / F0_intended)
      F0 RMSE [cents] = sqrt(mean(error^2))
      F0 off > 50 cents = share of those frames with |error| > 50
      F0 median error [cents] = median(error)   (a systematic offset)

  NaN when no frame is voiced in both.
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


def f0_accuracy(converted_f0: np.ndarray, intended_f0: np.ndarray) -> dict[str, float]:
    """F0 error of a converted utterance against the contour it was meant to have, frame by frame (same frame
    times; the longer one is cut): ``f0_rmse_cents``, ``f0_off_50c`` (share of frames off by more than 50 cents)
    and ``f0_median_cents`` over the frames voiced in both (NaN if none)."""
    frames = min(len(converted_f0), len(intended_f0))
    converted, intended = converted_f0[:frames], intended_f0[:frames]
    both_voiced = (converted > 0) & (intended > 0)
    if not both_voiced.any():
        return {"f0_rmse_cents": float("nan"), "f0_off_50c": float("nan"), "f0_median_cents": float("nan")}
    cents = 1200.0 * np.log2(converted[both_voiced] / intended[both_voiced])
    return {"f0_rmse_cents": float(np.sqrt(np.mean(cents**2))), "f0_off_50c": float(np.mean(np.abs(cents) > 50.0)),
            "f0_median_cents": float(np.median(cents))}


def pooled_voiced_f0(f0_arrays: list[np.ndarray]) -> np.ndarray:
    """The F0 values (Hz) of the voiced frames (F0 > 0) of all utterances, concatenated ``[frames]``."""
    if not f0_arrays:
        return np.zeros(0)
    f0 = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in f0_arrays])
    return f0[f0 > 0]
