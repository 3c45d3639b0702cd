"""The face domain adapter: any image file -> [3, S, S] in [-1, 1], safe decoding, caching, splits, grids."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from voiceconv.faces import data as face_data
from voiceconv.faces.data import (FaceFolder, decode_image, image_grid, load_face_folder, load_face_image,
                                  random_flips, save_grid, to_float, to_pixels)
from voiceconv.errors import ImageFileError, VoiceconvError
from voiceconv.faces.data import hold_out, random_lighting, random_zoom
from voiceconv.faces.debias import imbalanced_split
from voiceconv.faces.recipes import FaceDataConfig, FaceDBVAERecipe, SplitConfig


def write_image(path, array: np.ndarray, mode: str | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_grey_pgm_becomes_three_equal_channels_centre_cropped(tmp_path):
    grey = np.zeros((112, 92), np.uint8)  # ORL's portrait shape
    grey[:10] = 255  # a white band at the top that the centre crop (rows 10..101) removes
    grey[56, 46] = 128
    image = load_face_image(write_image(tmp_path / "face.pgm", grey), 46)  # [3, 46, 46]
    assert image.shape == (3, 46, 46) and image.min() >= -1 and image.max() <= 1
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert image[:, 0].max() < 0  # the white band is gone


def test_colour_jpeg_keeps_its_colours(tmp_path):
    red = np.zeros((30, 40, 3), np.uint8)
    red[..., 0] = 255
    image = load_face_image(write_image(tmp_path / "red.jpg", red), 8)
    assert image[0].mean() > 0.9 and image[1].mean() < -0.9 and image[2].mean() < -0.9


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 60000, 16 * 16).reshape(16, 16)).astype(np.uint16)
    pixels = decode_image(write_image(tmp_path / "deep.png", ramp), 16)
    assert pixels.max() == 255 and pixels.min() == 0 and len(pixels.unique()) > 100


@pytest.mark.parametrize("content, problem", [(b"", "not a readable image"), (b"text, not pixels", "not a readable image"),
                                             (b"\x89PNG\r\n\x1a\nnot really", "damaged or unsupported image")])
def test_unreadable_files_raise_an_error_naming_them(tmp_path, content, problem):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ImageFileError, match=rf"bad\.png: {problem}"):
        decode_image(tmp_path / "bad.png", 8)


def test_truncated_image_is_reported(tmp_path):
    path = write_image(tmp_path / "photo.jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageFileError, match=r"photo\.jpg: damaged"):
        decode_image(path, 8)


def test_images_with_too_many_pixels_are_refused_before_decoding(tmp_path, monkeypatch):
    path = write_image(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    monkeypatch.setattr(face_data, "MAX_PIXELS", 5_000)
    with pytest.raises(ImageFileError, match=r"big\.png: 100 x 100 pixels is more than the 5,000 allowed"):
        decode_image(path, 8)


def test_folder_skips_unreadable_files_reports_them_once_and_caches(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "faces" / f"{i}.png", rng.integers(0, 255, (20, 20, 3), np.uint8))
    (tmp_path / "faces" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "faces" / "notes.txt").write_text("not an image suffix: ignored")
    with caplog.at_level(logging.WARNING):
        folder = load_face_folder(tmp_path / "faces", 8, tmp_path / "cache")
        again = load_face_folder(tmp_path / "faces", 8, tmp_path / "cache")
    assert folder.pixels.shape == (3, 3, 8, 8) and folder.pixels.dtype == torch.uint8
    assert len(folder.skipped) == 1 and "broken.jpg" in folder.skipped[0]
    assert [r.getMessage() for r in caplog.records].count(f"skipping {folder.skipped[0]}") == 1  # once, not per load
    assert torch.equal(again.pixels, folder.pixels) and again.skipped == folder.skipped
    assert len(list((tmp_path / "cache").iterdir())) == 1
    load_face_folder(tmp_path / "faces", 16, tmp_path / "cache")  # another size: another cache file
    assert len(list((tmp_path / "cache").iterdir())) == 2
    with pytest.raises(VoiceconvError, match="only 3 readable image.*at least 5"):
        load_face_folder(tmp_path / "faces", 8, tmp_path / "cache", min_images=5)


def test_flips_mirror_about_half_and_grids_tile_images(tmp_path):
    images = torch.arange(64 * 3 * 2 * 4, dtype=torch.float).reshape(64, 3, 2, 4)
    flipped = random_flips(images, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images)]
    kept = [torch.equal(f, i) for f, i in zip(flipped, images)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 20 < sum(mirrored) < 44
    grid = image_grid(torch.zeros(5, 3, 4, 6), columns=2, padding=1)  # 3 rows x 2 columns
    assert grid.shape == (3, 3 * 5 + 1, 2 * 7 + 1)
    assert grid[:, 0].eq(1).all() and grid[:, 1, 1:7].eq(0).all()
    save_grid(tmp_path / "grid.png", torch.rand(5, 3, 4, 6) * 2 - 1, columns=2)
    assert Image.open(tmp_path / "grid.png").size == (2 * 8 + 2, 3 * 6 + 2)
    assert torch.equal(to_pixels(to_float(torch.tensor([0, 127, 255], dtype=torch.uint8))),
                       torch.tensor([0, 127, 255], dtype=torch.uint8))


def fake_folder(name: str, files: list[str]) -> FaceFolder:
    return FaceFolder(name, torch.zeros(len(files), 3, 4, 4, dtype=torch.uint8), files, [])


def test_random_lighting_scales_brightness_and_colour_within_its_strength():
    grey = torch.zeros(200, 3, 2, 2)  # mid-grey: 0.5 in [0, 1]
    lit = random_lighting(grey, 0.5, torch.Generator().manual_seed(0))
    scale = (lit + 1) / 2 / 0.5  # [200, 3, 2, 2]: brightness x tint per image and channel
    assert float(scale.min()) >= 0.5 * 0.75 - 1e-6 and float(scale.max()) <= 1.5 * 1.25 + 1e-6
    assert float(scale[:, 0].std()) > 0.1  # images differ
    assert torch.equal(scale[:, :, 0, 0], scale[:, :, 1, 1])  # one factor per image and channel
    assert torch.equal(lit, random_lighting(grey, 0.5, torch.Generator().manual_seed(0)))


def test_random_zoom_crops_tighter_and_never_wider():
    ramp = torch.linspace(-1, 1, 32).expand(3, 32, 32)[None].repeat(50, 1, 1, 1)  # [50, 3, 32, 32], left to right
    zoomed = random_zoom(ramp, 0.5, torch.Generator().manual_seed(0))
    widths = zoomed[:, 0, 0, -1] - zoomed[:, 0, 0, 0]  # the span of the ramp each crop keeps
    full = float(ramp[0, 0, 0, -1] - ramp[0, 0, 0, 0])
    assert float(widths.max()) <= full + 1e-5 and float(widths.min()) >= 0.5 * full - 0.1
    assert float(widths.std()) > 0.05  # crops differ
    unchanged = random_zoom(ramp[:2], 1e-9, torch.Generator().manual_seed(0))
    torch.testing.assert_close(unchanged, ramp[:2], atol=1e-4, rtol=0)


def test_hold_out_keeps_people_on_one_side():
    files = [f"/orl/s{person}/{shot}.pgm" for person in range(10) for shot in range(4)]
    test, train = hold_out(fake_folder("orl", files), 6, torch.Generator().manual_seed(0), True)
    people = lambda folder: {f.split("/")[2] for f in folder.files}  # noqa: E731
    assert len(test) == 8 and len(train) == 32  # two whole people
    assert not people(test) & people(train)
    loose_test, _ = hold_out(fake_folder("orl", files), 6, torch.Generator().manual_seed(0), False)
    assert len(loose_test) == 6


def test_imbalanced_split_gives_the_minority_its_share(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(30):
        write_image(tmp_path / "colour" / f"{i}.png", rng.integers(0, 255, (8, 8, 3), np.uint8))
    for person in range(6):
        for shot in range(4):
            write_image(tmp_path / "grey" / f"p{person}" / f"{shot}.pgm", rng.integers(0, 255, (8, 8), np.uint8))
    for i in range(12):
        write_image(tmp_path / "objects" / f"{i}.jpg", rng.integers(0, 255, (8, 8, 3), np.uint8))
    recipe = FaceDBVAERecipe(data=FaceDataConfig(faces=(str(tmp_path / "colour"), str(tmp_path / "grey")),
                                                 nonfaces=(str(tmp_path / "objects"),), size=8, min_images=1),
                             split=SplitConfig(test_per_group=5, minority="grey", minority_share=0.1,
                                               keep_subfolders_together=("grey",)))
    split = imbalanced_split(recipe, tmp_path / "cache")
    counts = split.counts()
    assert counts["test"] == {"colour": 5, "grey": 8, "nonfaces": 5}  # grey: two whole people
    assert counts["train"] == {"colour": 25, "grey": 3, "nonfaces": 7}  # 3 / 28 ~ 10%
    train_files = set(split.train_faces["grey"].files)
    assert not train_files & set(split.test_faces["grey"].files)
    assert imbalanced_split(recipe, tmp_path / "cache").listing() == split.listing()  # fixed seed


@pytest.mark.shared_data
def test_real_face_and_object_images_decode(shared_data):
    orl = load_face_image(shared_data / "faces" / "orl" / "s1" / "1.pgm", 64)
    caltech = load_face_image(sorted((shared_data / "faces" / "caltech101_faces").glob("*.jpg"))[0], 64)
    pizza = load_face_image(sorted((shared_data / "nonfaces" / "pizza").glob("*.jpg"))[0], 64)
    assert orl.shape == caltech.shape == pizza.shape == (3, 64, 64)
    assert torch.equal(orl[0], orl[2]) and not torch.equal(caltech[0], caltech[2])
