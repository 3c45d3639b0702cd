"""Speaker similarity: cosine similarity of Resemblyzer speaker embeddings.

Definition: each waveform is resampled to 16 kHz, volume-normalised (raised
to -30 dBFS, never lowered) and stripped of long silences by WebRTC VAD
(``resemblyzer.preprocess_wav``); Resemblyzer's GE2E speaker encoder
(3-layer LSTM, pretrained weights bundled in the wheel) embeds 1.6 s windows
taken 1.3 times per second, and the utterance embedding is their mean,
L2-normalised to a 256-dimensional unit vector e. A speaker's centroid is the
re-normalised mean of its utterance embeddings, and

    similarity(x, y) = cos(e_x, e_y) = e_x . e_y / (|e_x| |e_y|)

in [-1, 1] (in practice [0, 1], since the embeddings are non-negative);
1 means the encoder hears the same voice.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from types import ModuleType

import numpy as np

from voiceconv.evaluate.extras import require
from voiceconv.runtime import torch_threads

#: Speech (after Resemblyzer's silence trimming) below this is refused as too little to embed.
MIN_SPEECH_SECONDS = 0.5


def _resemblyzer() -> ModuleType:
    """Import resemblyzer without the deprecation warnings of its dependencies (scipy, pkg_resources)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        return require("resemblyzer")


class SpeakerEncoder:
    """Resemblyzer's pretrained speaker encoder on the CPU, loaded once per instance."""

    def __init__(self) -> None:
        self._resemblyzer = _resemblyzer()
        self._encoder = self._resemblyzer.VoiceEncoder(device="cpu", verbose=False)

    def embed(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """L2-normalised 256-d embedding ``[256]`` of one mono utterance ``[samples]``.

        Raises ValueError when less than ``MIN_SPEECH_SECONDS`` of speech remains after
        silence trimming (silence, clicks, very short clips).
        """
        speech = self._preprocess(wav, sample_rate)
        with torch_threads(1):  # the LSTM is tiny: two threads wait on each other
            return self._encoder.embed_utterance(speech).astype(np.float32)

    def centroid(self, wavs_with_rates: Iterable[tuple[np.ndarray, int]]) -> np.ndarray:
        """Speaker centroid ``[256]``: the re-normalised mean embedding of ``(wav, sample_rate)`` pairs."""
        embeddings = [self.embed(wav, rate) for wav, rate in wavs_with_rates]
        if not embeddings:
            raise ValueError("a speaker centroid needs at least one utterance")
        return _unit(np.mean(embeddings, axis=0))

    def _preprocess(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """Resemblyzer's resampling, volume normalisation and silence trimming, with a length check."""
        wav = np.asarray(wav, dtype=np.float32)
        rate = self._resemblyzer.sampling_rate
        if wav.ndim != 1:
            raise ValueError(f"expected a mono waveform [samples], got shape {wav.shape}")
        if not np.any(wav):
            raise ValueError("cannot embed the speaker of silent audio (all samples are zero)")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            speech = self._resemblyzer.preprocess_wav(wav, source_sr=sample_rate)
        if len(speech) < MIN_SPEECH_SECONDS * rate:
            raise ValueError(
                f"too little speech to embed the speaker: {len(speech) / rate:.2f} s remain after "
                f"silence trimming ({len(wav) / sample_rate:.2f} s given), at least {MIN_SPEECH_SECONDS} s needed"
            )
        return speech


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit L2 norm."""
    return (v / np.linalg.norm(v)).astype(np.float32)
