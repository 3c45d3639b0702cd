"""Intelligibility: word error rate (WER) of an automatic transcript.

Definition: the waveform is resampled to 16 kHz, quantised to 16-bit PCM and
transcribed by CMU PocketSphinx 5 with its bundled US-English acoustic model,
3-gram language model and CMUdict, a fresh decoder per utterance (so live
cepstral mean normalisation starts from the same state for every file).
Reference and hypothesis are normalised (lower case, punctuation removed
except apostrophes inside words, numbers kept as written, whitespace
collapsed) and

    WER = (S + D + I) / N

where S, D and I are the substitutions, deletions and insertions of the
minimum-edit-distance word alignment (jiwer) and N is the number of reference
words. WER can exceed 1; an empty reference gives 0 for an empty hypothesis
and 1 otherwise. PocketSphinx is a weak recogniser that errs even on clean read
speech, so compare WERs between systems rather than reading them as absolute
intelligibility.
"""

from __future__ import annotations

import re

import numpy as np
import soxr

from voiceconv.evaluate.extras import require

ASR_SAMPLE_RATE = 16000
_INT16_MAX = 32767
_NOT_WORD_CHAR = re.compile(r"[^\w\s']|_")
_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def recognize(wav: np.ndarray, sample_rate: int) -> str:
    """PocketSphinx's transcript of a mono utterance ``[samples]`` (lower case, "" when nothing is heard)."""
    pocketsphinx = require("pocketsphinx")
    pcm = _pcm16(wav, sample_rate)
    if not pcm:
        return ""  # PocketSphinx raises IndexError on an empty buffer
    decoder = pocketsphinx.Decoder(samprate=ASR_SAMPLE_RATE, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def normalize_text(text: str) -> str:
    """Lower case, punctuation removed except in-word apostrophes (' or \u2019), numbers kept, whitespace collapsed."""
    text = _NOT_WORD_CHAR.sub(" ", text.lower().replace("\u2019", "'"))
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalize_text`."""
    reference, hypothesis = normalize_text(reference), normalize_text(hypothesis)
    if not reference:
        return 0.0 if not hypothesis else 1.0
    if not hypothesis:
        return 1.0
    return float(require("jiwer").wer(reference, hypothesis))


def _pcm16(wav: np.ndarray, sample_rate: int) -> bytes:
    """Little-endian 16-bit PCM bytes of ``wav`` resampled to 16 kHz."""
    wav = np.asarray(wav, dtype=np.float32)
    if sample_rate != ASR_SAMPLE_RATE:
        wav = soxr.resample(wav, sample_rate, ASR_SAMPLE_RATE, quality="HQ")
    pcm = np.round(np.clip(wav, -1.0, 1.0) * _INT16_MAX).astype("<i2")
    return pcm.tobytes()
