"""Spectrogram PNGs: 16-bit round trip, embedded parameters, orientation, edited and foreign images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import mel_image
from voiceconv.audio.features import FeatureConfig
from voiceconv.audio.image_file import load_spectrogram_png, read_png_config, save_spectrogram_png
from voiceconv.errors import ImageFileError


def test_round_trip_keeps_pixels_and_parameters(tmp_path, tone):
    config = FeatureConfig(n_mels=64, fmin=40.0)
    image = mel_image(tone, config)
    save_spectrogram_png(tmp_path / "s.png", image, config)
    loaded, loaded_config = load_spectrogram_png(tmp_path / "s.png")
    assert loaded_config == config
    assert loaded.shape == image.shape
    assert (loaded - image).abs().max() <= 1.0 / 65535 + 1e-6  # 16-bit quantisation only


def test_png_is_16_bit_greyscale_with_low_frequencies_at_the_bottom(tmp_path):
    config = FeatureConfig()
    image = -torch.ones(1, config.n_mels, 20)
    image[0, 0] = 1.0  # lowest mel band bright
    save_spectrogram_png(tmp_path / "s.png", image, config)
    with Image.open(tmp_path / "s.png") as picture:
        pixels = np.asarray(picture)
        assert picture.mode.startswith("I;16") or picture.mode == "I"
    assert pixels.shape == (config.n_mels, 20)
    assert pixels[-1].min() == 65535 and pixels[0].max() == 0


def test_image_edited_in_an_editor_without_metadata_needs_explicit_parameters(tmp_path, tone):
    config = FeatureConfig()
    save_spectrogram_png(tmp_path / "s.png", mel_image(tone, config), config)
    with Image.open(tmp_path / "s.png") as picture:
        edited = np.asarray(picture).astype(np.uint16)
    edited[:, :10] = 0  # "erase" the first frames
    Image.fromarray(edited).save(tmp_path / "edited.png")  # no text chunk, as many editors do
    assert read_png_config(tmp_path / "edited.png") is None
    with pytest.raises(ImageFileError, match="metadata"):
        load_spectrogram_png(tmp_path / "edited.png")
    image, _ = load_spectrogram_png(tmp_path / "edited.png", config)
    assert (image[..., :10] == -1).all() and image[..., 10:].max() > -1


def test_8_bit_colour_png_is_read_as_luminance(tmp_path):
    config = FeatureConfig(n_mels=40)
    Image.new("RGB", (30, 40), (255, 255, 255)).save(tmp_path / "white.png")
    image, _ = load_spectrogram_png(tmp_path / "white.png", config)
    assert image.shape == (1, 40, 30) and torch.allclose(image, torch.ones_like(image))


def test_height_mismatch_is_explained(tmp_path):
    Image.new("L", (30, 50)).save(tmp_path / "tall.png")
    with pytest.raises(ImageFileError, match="50 pixels tall but n_mels=128"):
        load_spectrogram_png(tmp_path / "tall.png", FeatureConfig())


@pytest.mark.parametrize("content", [b"", b"not a png at all", b"\x89PNG\r\n\x1a\n" + bytes(20)])
def test_unreadable_file_names_the_file(tmp_path, content):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ImageFileError, match="bad.png"):
        load_spectrogram_png(tmp_path / "bad.png", FeatureConfig())


def test_tampered_metadata_is_rejected(tmp_path, tone):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("voiceconv:features", '{"n_mels": 80, "__class__": "os.system"}')
    Image.new("I;16", (10, 80)).save(tmp_path / "evil.png", pnginfo=info)
    with pytest.raises(ImageFileError, match="unknown key"):
        load_spectrogram_png(tmp_path / "evil.png")
