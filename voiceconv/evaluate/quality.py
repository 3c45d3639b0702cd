"""Perceived quality: DNSMOS, a non-intrusive (reference-free) MOS predictor.

Definition: Microsoft's DNSMOS P.835 (Reddy et al., ICASSP 2022) as packaged by
``speechmos``. The waveform is resampled to 16 kHz and clipped to [-1, 1]; a
clip shorter than 9.01 s is repeated until it is at least that long, and the
networks score 9.01 s windows taken every second. Per window, the P.835 model
predicts SIG (speech signal quality), BAK (background-noise intrusiveness) and
OVRL (overall quality), each mapped through DNSMOS's fitted polynomial, and the
P.808 model predicts an overall MOS from a log-mel spectrogram; each score is
the mean over windows, on the 1 (bad) to 5 (excellent) opinion scale.
"""

from __future__ import annotations

import numpy as np
import soxr

from voiceconv.evaluate.extras import require

DNSMOS_SAMPLE_RATE = 16000
_KEYS = {"ovrl": "ovrl_mos", "sig": "sig_mos", "bak": "bak_mos", "p808": "p808_mos"}


def dnsmos(wav: np.ndarray, sample_rate: int) -> dict[str, float]:
    """DNSMOS scores ``{"ovrl", "sig", "bak", "p808"}`` of a mono utterance ``[samples]``."""
    require("onnxruntime")
    speechmos_dnsmos = require("speechmos.dnsmos")
    audio = _prepare(wav, sample_rate)
    scores = speechmos_dnsmos.run(audio, DNSMOS_SAMPLE_RATE)
    return {key: float(scores[name]) for key, name in _KEYS.items() if name in scores}


def _prepare(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """``wav`` as float32 at 16 kHz, clipped to [-1, 1] as a written file would be."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or len(wav) == 0:
        raise ValueError(f"expected a non-empty mono waveform [samples], got shape {wav.shape}")
    if not np.isfinite(wav).all():
        raise ValueError("the waveform contains NaN or infinite samples")
    if sample_rate != DNSMOS_SAMPLE_RATE:
        wav = soxr.resample(wav, sample_rate, DNSMOS_SAMPLE_RATE, quality="HQ")
    return np.clip(wav, -1.0, 1.0).astype(np.float32)
