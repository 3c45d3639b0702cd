"""The live input's resampler: right samples, no aliasing, about a millisecond held back, blocks never matter."""

import math

import numpy as np
import pytest

from voiceconv.audio.resample import StreamResampler, resample


def tone(frequency: float, rate: int, seconds: float = 0.5) -> np.ndarray:
    return np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate).astype(np.float32)


def pushed_in_blocks(resampler: StreamResampler, wav: np.ndarray, seed: int) -> np.ndarray:
    rng, start, out = np.random.default_rng(seed), 0, []
    while start < len(wav):
        size = int(rng.integers(1, 2000))
        out.append(resampler.push(wav[start : start + size]))
        start += size
    return np.concatenate(out + [resampler.finish()])


@pytest.mark.parametrize("rate_in, rate_out", [(48000, 16000), (44100, 16000), (8000, 16000)])
def test_however_the_input_is_cut_the_output_is_the_same_samples(rate_in, rate_out):
    wav = np.random.default_rng(0).standard_normal(rate_in // 4).astype(np.float32)
    whole = resample(wav, rate_in, rate_out)
    assert len(whole) == math.ceil(len(wav) * rate_out / rate_in)
    for seed in range(3):
        np.testing.assert_array_equal(pushed_in_blocks(StreamResampler(rate_in, rate_out), wav, seed), whole)


@pytest.mark.parametrize("rate_in", [48000, 44100])
def test_a_tone_comes_out_as_the_same_tone_at_the_new_rate(rate_in):
    out = resample(tone(1000.0, rate_in), rate_in, 16000)
    expected = tone(1000.0, 16000)
    inner = slice(160, len(expected) - 160)  # away from the signal's start and end
    error = out[inner] - expected[inner]
    assert 10 * np.log10(np.mean(error**2) / np.mean(expected[inner] ** 2)) < -60


def test_what_lies_above_the_new_nyquist_frequency_does_not_fold_back():
    out = resample(tone(12000.0, 48000), 48000, 16000)  # would alias to 4 kHz
    assert np.sqrt(np.mean(out[160:-160] ** 2)) < 1e-3 * np.sqrt(0.5)  # 60 dB below the tone


def test_each_output_comes_back_within_about_a_millisecond_of_its_input():
    resampler = StreamResampler(48000, 16000)
    assert resampler.held_back_inputs <= 48  # 1 ms at 48 kHz
    wav = np.random.default_rng(1).standard_normal(48000).astype(np.float32)
    returned = 0
    for start in range(0, len(wav), 4800):  # a microphone's 100-ms blocks
        returned += len(resampler.push(wav[start : start + 4800]))
        arrived = start + 4800
        assert returned >= (arrived - resampler.held_back_inputs) // 3


def test_equal_rates_pass_the_audio_through_untouched():
    wav = np.random.default_rng(2).standard_normal(1000).astype(np.float32)
    resampler = StreamResampler(16000, 16000)
    np.testing.assert_array_equal(resampler.push(wav), wav)
    assert len(resampler.finish()) == 0
