"""Feature config validation and overrides, and the waveform -> log-mel image mapping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import mel_image
from voiceconv.audio.features import (FeatureConfig, MelImageEncoder, hz_to_mel, image_to_mel, mel_centres,
                                      mel_filterbank, mel_to_hz, mel_to_image)
from voiceconv.config import apply_overrides, from_dict, load_yaml, save_yaml, to_dict
from voiceconv.errors import ConfigError


@pytest.mark.parametrize(
    "field, value, phrase",
    [
        ("n_fft", 1000, "power of two"),
        ("win_length", 2048, "win_length"),
        ("hop_length", 0, "hop_length"),
        ("window", "triangle", "window"),
        ("n_mels", 0, "n_mels"),
        ("fmax", 9000.0, "fmax"),
        ("min_db", 30.0, "min_db"),
        ("sample_rate", 10, "sample_rate"),
    ],
)
def test_invalid_feature_config_is_rejected_with_the_reason(field, value, phrase):
    with pytest.raises(ConfigError, match=phrase):
        FeatureConfig(**{field: value})


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FeatureConfig().n_mels = 128


def test_overrides_parse_values_and_reject_unknown_keys():
    config = apply_overrides(FeatureConfig(), ["n_mels=128", "fmax=7600", "window=hamming"])
    assert (config.n_mels, config.fmax, config.window) == (128, 7600.0, "hamming")
    with pytest.raises(ConfigError, match="valid keys: sample_rate, n_fft"):
        apply_overrides(FeatureConfig(), ["n_mel=128"])
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(FeatureConfig(), ["n_mels=lots"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(FeatureConfig(), ["n_mels"])
    # YAML 1.1 reads "4e3" as text; a float field still takes it (a learning rate of 5e-5 is written this way).
    assert apply_overrides(FeatureConfig(), ["fmin=4e1"]).fmin == 40.0
    with pytest.raises(ConfigError, match="expected float"):
        apply_overrides(FeatureConfig(), ["fmin=low"])


def test_yaml_round_trip(tmp_path):
    config = FeatureConfig(n_mels=64, fmin=55.0)
    save_yaml(config, tmp_path / "f.yaml")
    assert load_yaml(FeatureConfig, tmp_path / "f.yaml") == config
    assert from_dict(FeatureConfig, to_dict(config)) == config


def test_image_shape_and_range(tone):
    config = FeatureConfig()
    image = mel_image(tone, config)
    assert image.shape == (1, config.n_mels, config.frames_for(len(tone)))
    assert image.min() >= -1 and image.max() <= 1
    assert image.max() > 0.0  # a 0.3-peak tone is well above the floor


def test_batched_encoding_matches_single(tone):
    encoder = MelImageEncoder(FeatureConfig())
    batch = torch.stack([torch.from_numpy(tone), torch.from_numpy(tone[::-1].copy())])
    images = encoder(batch)  # [2, 1, n_mels, T]
    torch.testing.assert_close(images[1], encoder(batch[1]))


def test_image_mapping_inverts_within_the_range():
    config = FeatureConfig()
    mel = torch.logspace(config.min_db / 20 + 0.1, config.max_db / 20 - 0.1, 50)
    torch.testing.assert_close(image_to_mel(mel_to_image(mel, config), config), mel, rtol=1e-4, atol=0)


def test_louder_band_is_brighter_in_its_mel_row():
    config = FeatureConfig()
    t = torch.arange(16000) / 16000
    low, high = torch.sin(2 * torch.pi * 200 * t), torch.sin(2 * torch.pi * 3000 * t)
    image = mel_image(0.5 * low + 0.05 * high, config)[0].mean(-1)  # [n_mels]
    assert image.argmax() < config.n_mels // 4  # row 0 is the lowest band


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(sample_rate=22050, n_fft=2048, win_length=2048,
                                                                   n_mels=80, fmin=50.0, fmax=11025.0)])
def test_mel_centres_are_the_peaks_of_the_filterbank_and_librosas_slaney_frequencies(config):
    import librosa

    centres = mel_centres(config)
    expected = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.fmax, htk=False)[1:-1]
    np.testing.assert_allclose(centres, expected, rtol=1e-9)
    bins = np.linspace(0, config.sample_rate / 2, config.n_freqs)
    peaks = bins[mel_filterbank(config).argmax(dim=0).numpy()]  # the bin nearest each centre
    assert np.all(np.abs(peaks - centres) <= config.sample_rate / config.n_fft)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(np.array([0.0, 440.0, 1000.0, 7000.0]))),
                               [0.0, 440.0, 1000.0, 7000.0], rtol=1e-12, atol=1e-9)
