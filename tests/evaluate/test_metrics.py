"""Objective metrics on known cases: identity gives the ideal score, degradations score worse."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from conftest import SAMPLES, harmonic_tone
from voiceconv.audio.io import load_audio

EVAL_MODULES = ("resemblyzer", "pocketsphinx", "speechmos", "onnxruntime", "pyworld", "pysptk", "jiwer")
MISSING = [m for m in EVAL_MODULES if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs the eval extra (missing {MISSING}): pip install 'voiceconv[eval]'")

if not MISSING:
    from voiceconv.evaluate.asr import normalize_text, recognize, word_error_rate
    from voiceconv.evaluate.mcd import mel_cepstral_distortion, world_features
    from voiceconv.evaluate.prosody import f0_accuracy, f0_rmse, log_f0_stats, median_f0
    from voiceconv.evaluate.quality import dnsmos
    from voiceconv.evaluate.speaker import SpeakerEncoder, cosine

SR = 16000
KATHLEEN = SAMPLES / "audio" / "kathleen_arctic_a0592.flac"
KATHLEEN_TEXT = "It's only his indigestion I find fault with."


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Kathleen reading CMU ARCTIC a0592 (CC0, bundled in samples/), 2.6 s at 16 kHz."""
    return load_audio(KATHLEEN, SR)


@pytest.fixture(scope="module")
def speaker_encoder() -> SpeakerEncoder:
    return SpeakerEncoder()


def test_mcd_of_a_file_against_itself_is_zero(speech):
    assert mel_cepstral_distortion(speech, speech, SR) == pytest.approx(0.0, abs=1e-9)


def test_speaker_similarity_of_a_file_to_itself_is_one(speech, speaker_encoder):
    a, b = speaker_encoder.embed(speech, SR), speaker_encoder.embed(speech.copy(), SR)
    assert a.shape == (256,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert cosine(a, b) > 0.99


def test_speaker_embedding_refuses_silence(speaker_encoder):
    with pytest.raises(ValueError, match="silent"):
        speaker_encoder.embed(np.zeros(SR, np.float32), SR)
    with pytest.raises(ValueError, match="too little speech"):
        speaker_encoder.embed(1e-4 * np.random.default_rng(0).standard_normal(SR).astype(np.float32), SR)


@pytest.mark.shared_data
def test_different_speakers_are_less_similar_than_one_speakers_utterances(shared_data, speaker_encoder):
    dev = shared_data / "vcc2016" / "dev"
    embeddings = {speaker: [speaker_encoder.embed(load_audio(dev / speaker / f"20000{i}.flac", SR), SR) for i in (1, 2, 3)]
                  for speaker in ("SF1", "TM1")}
    sf1, tm1 = embeddings["SF1"], embeddings["TM1"]
    same = np.mean([cosine(sf1[i], sf1[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    different = np.mean([cosine(a, b) for a in sf1 for b in tm1])
    assert same > different + 0.1, (same, different)  # measured: 0.77 vs 0.52 over five utterances each
    centroid = speaker_encoder.centroid([(load_audio(dev / "SF1/200004.flac", SR), SR), (load_audio(dev / "SF1/200005.flac", SR), SR)])
    assert np.linalg.norm(centroid) == pytest.approx(1.0, abs=1e-5)
    assert min(cosine(e, centroid) for e in sf1) > max(cosine(e, centroid) for e in tm1)


def test_recognition_is_repeatable_and_close_to_the_transcript(speech):
    first, second = recognize(speech, SR), recognize(speech, SR)
    assert first == second  # a fresh decoder per utterance: no adaptation carried over
    assert word_error_rate(first, second) == 0.0
    assert word_error_rate(KATHLEEN_TEXT, first) < 0.5, first


def test_recognition_of_empty_audio_is_empty():
    assert recognize(np.zeros(0, np.float32), SR) == ""


@pytest.mark.parametrize(
    "text, expected",
    [
        ("It's only his indigestion I find fault with.", "it's only his indigestion i find fault with"),
        ("  Hello,\tWORLD!!  ", "hello world"),
        ("We met 42 times in 1999.", "we met 42 times in 1999"),
        ("'quoted' rock 'n' roll", "quoted rock n roll"),
        ("twenty-one", "twenty one"),
        ("don\u2019t", "don't"),
        ("...", ""),
    ],
)
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize(
    "reference, hypothesis, expected",
    [
        ("a b c", "a b c", 0.0),
        ("a b c", "a x c", 1 / 3),
        ("A, b; C!", "a b c", 0.0),
        ("a b", "", 1.0),
        ("a", "a b c", 2.0),
        ("", "", 0.0),
        ("", "anything", 1.0),
    ],
)
def test_word_error_rate(reference, hypothesis, expected):
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)


def test_dnsmos_prefers_clean_speech_to_noisy_speech(speech):
    noisy = speech + 0.1 * np.random.default_rng(0).standard_normal(len(speech)).astype(np.float32)
    clean_scores, noisy_scores = dnsmos(speech, SR), dnsmos(noisy, SR)
    assert set(clean_scores) >= {"ovrl", "sig", "bak"}
    assert all(1.0 <= v <= 5.0 for v in clean_scores.values())
    assert clean_scores["ovrl"] > noisy_scores["ovrl"] + 1.0
    assert clean_scores["bak"] > noisy_scores["bak"]


def test_f0_rmse_is_zero_against_itself_and_grows_with_a_pitch_shift(speech):
    import librosa

    reference = world_features(speech, SR)
    shifted = world_features(librosa.effects.pitch_shift(speech, sr=SR, n_steps=3), SR)
    assert f0_rmse(reference, reference) == 0.0
    assert f0_rmse(shifted, reference) > 15.0  # measured 34 Hz: +3 semitones is +19 % of her ~145 Hz median


def test_f0_accuracy_against_the_intended_contour():
    intended = np.array([0.0, 200.0, 200.0, 200.0, 200.0, 0.0])
    on_pitch = f0_accuracy(intended.copy(), intended)
    assert on_pitch == {"f0_rmse_cents": 0.0, "f0_off_50c": 0.0, "f0_median_cents": 0.0}
    converted = np.array([150.0, 200.0 * 2 ** (1 / 12), 200.0, 200.0, 0.0, 300.0])  # one frame a semitone up, one lost
    scores = f0_accuracy(converted, intended)  # frames voiced in both: 1, 2, 3
    assert scores["f0_rmse_cents"] == pytest.approx(math.sqrt(100.0**2 / 3))
    assert scores["f0_off_50c"] == pytest.approx(1 / 3) and scores["f0_median_cents"] == 0.0
    assert all(math.isnan(v) for v in f0_accuracy(np.zeros(4), intended).values())


def test_log_f0_stats_and_median_of_a_140_hz_tone():
    f0 = world_features(harmonic_tone(f0=140.0).astype(np.float64), SR).f0
    t = np.arange(SR) / SR
    true_f0 = 140.0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * t))  # the contour harmonic_tone synthesises: 1.5 glides of +-10 %
    mean, std = log_f0_stats([f0])
    assert mean == pytest.approx(math.log(140.0), abs=0.03)
    assert mean == pytest.approx(np.log(true_f0).mean(), abs=0.005)
    assert std == pytest.approx(np.log(true_f0).std(), rel=0.1)
    assert median_f0([f0, f0]) == pytest.approx(np.median(true_f0), rel=0.01)


def test_f0_statistics_without_voiced_frames_are_nan():
    assert all(math.isnan(v) for v in log_f0_stats([np.zeros(10)]))
    assert math.isnan(median_f0([]))
