"""The Faces tab: tiny face models trained in tmp_path, served by `python app.py`, driven by gradio_client."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import SAMPLES
from helpers import DEFAULT_MODEL, refusal, running_app
from voiceconv.cli import main
from voiceconv.errors import ImageFileError, VoiceconvError
from voiceconv.models.vae import LatentHistograms, debiasing_weights
from voiceconv.web.limits import user_message
from voiceconv.web.models import discover_face_models, discover_models, face_model_summary_markdown

SIZE = 16  # face models' image size; the page enlarges single faces to 256 x 256
FACE_PIXELS = 256
TINY_VAE = {"channels": [4, 8], "latent": 4}
TINY_GAN = {"latent": 8, "generator_channels": [8, 4], "discriminator_channels": [4, 8]}
TINY_PROGAN = {"latent": 8, "start_size": 8, "channels": [8, 4], "images_per_stage": 4, "fade_images": 4}
TINY_TRAIN = {"steps": 2, "batch_size": 4, "log_every": 1, "media_every": 2, "checkpoint_every": 2, "threads": 1}
COLOUR_FACE = SAMPLES / "faces" / "caltech_image_0081.jpg"
GREY_FACE = SAMPLES / "faces" / "orl_s8_1.png"


def face_folders(root: Path) -> dict[str, Path]:
    """The sample faces as two face groups (colour Caltech, grey ORL) and a few striped 'objects' as non-faces."""
    folders = {name: root / name for name in ("colour", "grey", "objects")}
    for name, pattern in (("colour", "caltech_*.jpg"), ("grey", "orl_*.png")):
        folders[name].mkdir(parents=True)
        for path in sorted((SAMPLES / "faces").glob(pattern)):
            shutil.copy(path, folders[name] / path.name)
    folders["objects"].mkdir()
    rng = np.random.default_rng(0)
    for index in range(4):
        stripes = np.zeros((24, 20, 3), np.uint8)
        stripes[::3] = rng.integers(0, 255, 3)
        Image.fromarray(stripes).save(folders["objects"] / f"{index}.png")
    return folders


def train(root: Path, kind: str, model: dict, data: dict, **sections) -> Path:
    """Train a tiny model of ``kind`` with ``voiceconv train``; returns its model file."""
    values = {"kind": kind, "model": model, "data": {"size": SIZE, "min_images": 1, "media_images": 2, **data},
              "train": TINY_TRAIN, **sections}
    recipe = root / f"{kind}.yaml"
    recipe.write_text(yaml.safe_dump(values))
    assert main(["train", str(recipe), "--out", str(root / kind)]) == 0
    return root / kind / "model.safetensors"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A models folder with the default voice model and a tiny face-ae, face-vae, face-dbvae, face-gan and face-progan;
    the debiasing VAE with a per-group report beside it."""
    root = tmp_path_factory.mktemp("face-models")
    folders = face_folders(root / "data")
    faces = [str(folders["colour"]), str(folders["grey"])]
    trained = {
        "faces_ae": train(root, "face-ae", TINY_VAE, {"faces": faces}),
        "faces_vae": train(root, "face-vae", TINY_VAE, {"faces": faces}),
        "faces_dbvae": train(root, "face-dbvae", TINY_VAE, {"faces": faces, "nonfaces": [str(folders["objects"])]},
                             split={"test_per_group": 1, "minority": "", "keep_subfolders_together": []}),
        "faces_gan": train(root, "face-gan", TINY_GAN, {"faces": faces}),
        "faces_progan": train(root, "face-progan", TINY_PROGAN, {"faces": faces}),
    }
    models = root / "models"
    models.mkdir()
    shutil.copy(DEFAULT_MODEL, models / DEFAULT_MODEL.name)
    for name, path in trained.items():
        shutil.copy(path, models / f"{name}.safetensors")
    assert main(["faces", "groups", "--model", str(models / "faces_dbvae.safetensors"), str(root / "data"),
                 "--json", str(models / "faces_dbvae.groups.json")]) == 0  # groups: colour, grey, objects
    return models


# --- without the server ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("combine", ["max", "product"])
def test_rarity_scores_of_the_training_faces_are_the_resampling_probabilities(combine):
    means = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    reference = LatentHistograms(means, bins=10, alpha=1e-3, combine=combine)
    scores = reference.scores(means)
    assert torch.allclose((scores / scores.sum()).float(), debiasing_weights(means, 10, 1e-3, combine), atol=1e-6)
    assert reference.relative_weight(means).mean() == pytest.approx(1.0)
    outlier = means[:1] + 100.0  # beyond every training face's code: in the edge bins
    assert 0.0 <= float(reference.rarer_than(outlier)[0]) <= 1.0


def test_face_models_are_discovered_beside_voice_models_and_described(models_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="voiceconv.web.models"):
        assert list(discover_models(models_dir)) == ["kathleen_rms"]
    assert "skipping" not in caplog.text  # face models are not reported as broken voice models
    faces = discover_face_models(models_dir)
    assert {key: info.kind for key, info in faces.items()} == {
        "faces_ae": "face-ae", "faces_dbvae": "face-dbvae", "faces_gan": "face-gan", "faces_progan": "face-progan",
        "faces_vae": "face-vae"}
    summary = face_model_summary_markdown(faces["faces_vae"])
    assert summary.startswith("## faces_vae") and "16 x 16 pixel faces, 4 latents" in summary
    assert "**training faces:** 6 (colour 3, grey 3)" in summary and "**training steps:** 2" in summary


def test_rarity_reference_comes_from_the_model_file_and_its_absence_is_a_clear_error(models_dir):
    from voiceconv.faces.tools import load_face_model
    from voiceconv.faces.views import rarity_reference

    model, _ = load_face_model(models_dir / "faces_dbvae.safetensors")
    stored = rarity_reference(model)  # no training data needed
    assert len(stored.training_scores) == 4  # 3 + 3 faces, one of each folder held out for testing
    del model.training_latent_means  # a model file from before the means were stored
    with pytest.raises(VoiceconvError, match="stores no training_latent_means"):
        rarity_reference(model)


def test_page_without_face_models_says_how_to_train_one(tmp_path):
    pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    import gradio as gr

    from voiceconv.web import build_app

    voice_only = tmp_path / "models"
    voice_only.mkdir()
    shutil.copy(SAMPLES / "models" / "kathleen_rms.safetensors", voice_only)
    demo = build_app(voice_only)
    notes = [block.value or "" for block in demo.blocks.values() if isinstance(block, gr.Markdown)]
    assert any(note.startswith("No face models in the models folder yet. Train one with `voiceconv train recipes/"
                               "faces_vae.yaml") for note in notes)


def test_image_errors_name_the_upload_not_the_server_path():
    upload = "/tmp/gradio/abc/face.png"
    err = ImageFileError(upload, f"not a readable image (cannot identify '{upload}')")
    assert user_message(err) == "face.png: not a readable image (cannot identify 'face.png')"


# --- the real server ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory) -> Iterator[str]:
    with running_app(tmp_path_factory.mktemp("faces-app"), "--models-dir", str(models_dir)) as url:
        yield url


@pytest.fixture
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server, verbose=False, download_files=str(tmp_path))


def png_pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


def test_server_reconstructs_an_uploaded_face_and_sliders_edit_it(client):
    from gradio_client import handle_file

    seen, reconstruction, edited, *sliders = client.predict(handle_file(str(COLOUR_FACE)), "faces_vae",
                                                            api_name="/reconstruct_face")
    for picture in (seen, reconstruction, edited):
        assert png_pixels(picture).shape == (FACE_PIXELS, FACE_PIXELS, 3)
    assert len(sliders) == 8 and all(-3 <= value <= 3 for value in sliders) and sliders[4:] == [0] * 4  # 4 latents
    low = png_pixels(client.predict(handle_file(str(COLOUR_FACE)), "faces_vae", -3.0, *sliders[1:],
                                    api_name="/edit_face"))
    high = png_pixels(client.predict(handle_file(str(COLOUR_FACE)), "faces_vae", 3.0, *sliders[1:],
                                     api_name="/edit_face"))
    assert low.shape == (FACE_PIXELS, FACE_PIXELS, 3) and np.abs(low.astype(int) - high).max() > 0


def test_server_samples_faces_from_a_vae_and_a_gan(client):
    grids = {}
    for model, seed in (("faces_vae", 3), ("faces_gan", 3), ("faces_gan", 3), ("faces_gan", 4)):
        grid, next_seed = client.predict(model, seed, api_name="/sample_faces")
        assert next_seed == seed + 1
        grids.setdefault((model, seed), []).append(png_pixels(grid))
    cell = SIZE + 2
    assert grids[("faces_vae", 3)][0].shape == ((2 * cell + 2) * 8, (8 * cell + 2) * 8, 3)  # 16 faces, enlarged 8x
    first, again = grids[("faces_gan", 3)]
    assert np.array_equal(first, again) and not np.array_equal(first, grids[("faces_gan", 4)][0])


def test_server_draws_a_traversal_grid_and_a_morph_between_two_faces(client):
    from gradio_client import handle_file

    cell = SIZE + 2
    around_face = png_pixels(client.predict(handle_file(str(COLOUR_FACE)), "faces_vae", api_name="/traverse_face"))
    typical = png_pixels(client.predict(None, "faces_vae", api_name="/traverse_face"))
    assert around_face.shape == typical.shape == ((4 * cell + 2) * 8, (7 * cell + 2) * 8, 3)  # 4 latents x 7 values
    assert not np.array_equal(around_face, typical)  # the other latents stay at the face's code, or the typical one
    morph = png_pixels(client.predict(handle_file(str(COLOUR_FACE)), handle_file(str(GREY_FACE)), "faces_vae",
                                      api_name="/interpolate_faces"))
    assert morph.shape == ((cell + 2) * 8, (8 * cell + 2) * 8, 3)  # 8 steps in one row
    first, last = (morph[16:16 + SIZE * 8, x:x + SIZE * 8] for x in (16, 16 + 7 * cell * 8))
    for end, face in ((first, COLOUR_FACE), (last, GREY_FACE)):  # the ends are the two faces' reconstructions
        reconstruction = png_pixels(client.predict(handle_file(str(face)), "faces_vae",
                                                   api_name="/reconstruct_face")[1])[::2, ::2]  # 16x -> 8x
        assert np.abs(end.astype(int) - reconstruction).max() <= 1
    message = refusal(client, handle_file(str(COLOUR_FACE)), None, "faces_vae", api_name="/interpolate_faces")
    assert message.startswith("no second face yet")


def test_server_shows_the_autoencoder_beside_the_vae(client):
    from gradio_client import handle_file

    cell = SIZE + 2
    reconstructions, samples, morphs, next_seed = client.predict(
        handle_file(str(COLOUR_FACE)), handle_file(str(GREY_FACE)), "faces_ae", "faces_vae", 5,
        api_name="/compare_autoencoders")
    assert next_seed == 6
    row = png_pixels(reconstructions)
    assert row.shape == ((cell + 2) * 8, (3 * cell + 2) * 8, 3)  # the face, the autoencoder's, the VAE's
    vae_reconstruction = png_pixels(client.predict(handle_file(str(COLOUR_FACE)), "faces_vae",
                                                   api_name="/reconstruct_face")[1])[::2, ::2]  # 16x -> 8x
    vae_cell = row[16:16 + SIZE * 8, 16 + 2 * cell * 8:16 + 2 * cell * 8 + SIZE * 8]
    assert np.abs(vae_cell.astype(int) - vae_reconstruction).max() <= 1
    assert png_pixels(samples).shape == png_pixels(morphs).shape == ((2 * cell + 2) * 8, (8 * cell + 2) * 8, 3)
    without_faces = client.predict(None, None, "faces_ae", "faces_vae", 5, api_name="/compare_autoencoders")
    assert without_faces[0] is None and without_faces[2] is None
    assert np.array_equal(png_pixels(without_faces[1]), png_pixels(samples))  # the same seed, the same codes
    message = refusal(client, None, None, "faces_gan", "faces_vae", 0, api_name="/compare_autoencoders")
    assert "faces_gan is not in the list of choices" in message  # only autoencoders are offered


def test_server_shows_two_generators_side_by_side_from_one_seed(client):
    cell = SIZE + 2
    grid, next_seed = client.predict("faces_gan", "faces_progan", 7, api_name="/compare_generators")
    assert next_seed == 8 and png_pixels(grid).shape == ((2 * cell + 2) * 8, (8 * cell + 2) * 8, 3)
    again, _ = client.predict("faces_gan", "faces_progan", 7, api_name="/compare_generators")
    assert np.array_equal(png_pixels(grid), png_pixels(again))


def test_server_shows_a_detectors_rates_per_group_from_the_report_beside_it(client, models_dir):
    import json

    table, chart = client.predict("faces_dbvae", api_name="/face_groups")
    report = json.loads((models_dir / "faces_dbvae.groups.json").read_text())
    for name, group in report["groups"].items():
        assert f"| {name} | {group['detected']} of {group['images']} |" in table
    assert "| colour | " in table and "| objects | " in table


def test_server_explains_uploads_that_are_not_usable_images(client, tmp_path):
    from gradio_client import handle_file

    (tmp_path / "face.png").write_text("this is text, not an image")
    message = refusal(client, handle_file(str(tmp_path / "face.png")), "faces_vae", api_name="/reconstruct_face")
    assert message.startswith("face.png: not a readable image")
    Image.new("1", (7000, 6000)).save(tmp_path / "huge.png")  # 42 megapixels, a few kB as a PNG
    message = refusal(client, handle_file(str(tmp_path / "huge.png")), "faces_dbvae", api_name="/debias_face")
    assert message == "huge.png: 7000 x 6000 pixels is more than the 40,000,000 allowed; downscale it first"


def test_server_only_offers_its_own_face_models(client):
    from gradio_client import handle_file

    message = refusal(client, handle_file(str(COLOUR_FACE)), "faces_gan", api_name="/reconstruct_face")
    assert "not in the list of choices" in message  # a GAN cannot reconstruct, and paths are never accepted


def test_server_debiasing_view_gives_face_probability_and_sampling_weight(client):
    from gradio_client import handle_file

    for face in (COLOUR_FACE, GREY_FACE):
        probability, weight, explanation = client.predict(handle_file(str(face)), "faces_dbvae",
                                                          api_name="/debias_face")
        assert 0.0 <= probability <= 1.0 and weight >= 0
        assert explanation.startswith("**Face probability ")
        assert "times as often as an average one" in explanation and "of the 4 training faces" in explanation
