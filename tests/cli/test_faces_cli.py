"""`voiceconv train` with face recipes, `voiceconv faces ...` tools and the debiasing comparison, as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from voiceconv.cli import main
from voiceconv.errors import ConfigError
from voiceconv.faces.data import load_face_image
from voiceconv.faces.tools import load_face_model, traverse, typical_code
from voiceconv.modelfiles.format import load_model_file, read_header, save_model_file

REPO = Path(__file__).resolve().parents[2]
TINY_TRAIN = {"steps": 2, "batch_size": 4, "log_every": 1, "media_every": 2, "checkpoint_every": 1, "threads": 1}
TINY_VAE = {"channels": [4, 8], "latent": 4}


@pytest.fixture
def picture_folders(tmp_path):
    """Colour 'faces' (bright blobs), grey 'faces' of 4 people, and 'objects' (dark stripes), 20 x 24 pixels."""
    rng = np.random.default_rng(0)
    (tmp_path / "colour").mkdir()
    for i in range(12):
        image = rng.integers(0, 60, (24, 20, 3), np.uint8)
        image[6:18, 5:15] = rng.integers(150, 255, 3)
        Image.fromarray(image).save(tmp_path / "colour" / f"{i}.png")
    for person in range(4):
        (tmp_path / "grey" / f"s{person}").mkdir(parents=True)
        for shot in range(3):
            Image.fromarray(rng.integers(100, 255, (24, 20), np.uint8)).save(tmp_path / "grey" / f"s{person}" / f"{shot}.pgm")
    (tmp_path / "objects").mkdir()
    for i in range(10):
        image = np.zeros((24, 20, 3), np.uint8)
        image[::3] = rng.integers(0, 255, 3)
        Image.fromarray(image).save(tmp_path / "objects" / f"{i}.jpg")
    (tmp_path / "objects" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return tmp_path


def group_folders(tmp: Path) -> Path:
    """Faces from elsewhere laid out GROUP/*.png, as the lecture's test faces are: A (colour), B (one grey person)."""
    root = tmp / "lecture"
    for group, source in (("A", "colour"), ("B", "grey/s0")):
        (root / group).mkdir(parents=True)
        for image in sorted((tmp / source).iterdir())[:3]:
            (root / group / f"{image.stem}.png").write_bytes(image.read_bytes())
    return root


def recipe(path: Path, kind: str, model: dict, **sections) -> Path:
    values = {"kind": kind, "model": model, "data": {"size": 16, "min_images": 1, "media_images": 2},
              "train": TINY_TRAIN}
    for name, section in sections.items():
        values[name] = {**values.get(name, {}), **section}
    path.write_text(yaml.safe_dump(values))
    return path


def test_dbvae_trains_through_the_cli_and_its_tools_draw_pngs(picture_folders, capsys):
    tmp = picture_folders
    recipe(tmp / "dbvae.yaml", "face-dbvae", TINY_VAE,
           split={"test_per_group": 3, "minority": "grey", "minority_share": 0.2, "keep_subfolders_together": ["grey"]})
    assert main(["train", str(tmp / "dbvae.yaml"), "--faces", str(tmp / "colour"), "--faces", str(tmp / "grey"),
                 "--nonfaces", str(tmp / "objects"), "--out", str(tmp / "run")]) == 0
    model = tmp / "run" / "model.safetensors"
    header = read_header(model)
    assert header["kind"] == "face-dbvae" and header["training"]["steps"] == 2
    assert header["data"]["faces"] == {"colour": 9, "grey": 2}  # 3 test images each (grey: a whole person)
    split = json.loads((tmp / "run" / "split.json").read_text())
    assert len(split["files"]["test"]["nonfaces"]) == 3 and split["counts"]["train"]["nonfaces"] == 7  # broken skipped
    tools = [["reconstruct", str(tmp / "grey"), "--limit", "5"], ["sample", "-n", "6"],
             ["traverse", "--latents", "3", "--steps", "5", "--image", str(tmp / "colour" / "0.png")],
             ["traverse", "--rank-on", str(tmp / "grey")],
             ["interpolate", str(tmp / "colour" / "0.png"), str(tmp / "grey" / "s0" / "0.pgm"), "--steps", "4"]]
    sizes = []
    for index, tool in enumerate(tools):
        out = tmp / f"tool{index}.png"
        assert main(["faces", tool[0], "--model", str(model), *tool[1:], "-o", str(out)]) == 0
        sizes.append(Image.open(out).size)
    cell = 16 + 2
    assert sizes[0] == (5 * cell + 2, 2 * cell + 2)  # originals over reconstructions
    assert sizes[2] == (5 * cell + 2, 3 * cell + 2)  # 3 latents x 5 values
    assert sizes[4] == (4 * cell + 2, cell + 2)
    assert "latents (most active first)" in capsys.readouterr().err


def test_traversal_without_a_face_starts_at_a_training_faces_code(picture_folders):
    tmp = picture_folders
    recipe(tmp / "vae.yaml", "face-vae", TINY_VAE)
    assert main(["train", str(tmp / "vae.yaml"), "--faces", str(tmp / "colour"), "--out", str(tmp / "run")]) == 0
    model, _ = load_face_model(tmp / "run" / "model.safetensors")
    faces = torch.stack([load_face_image(p, 16) for p in sorted((tmp / "colour").glob("*.png"))])
    with torch.no_grad():
        codes = model.encode(faces)[0]  # [N, L]
    assert torch.isclose(codes, typical_code(model), atol=1e-5).all(dim=1).any()  # one real face's code, not 0
    with torch.no_grad():
        grid = traverse(model, [0, 1], steps=3, span=1.0)  # [6, 3, 16, 16]: rows latent 0, 1; values -1, 0, 1
        expected = typical_code(model).clone()
        expected[1] = 1.0  # the last cell: latent 1 at +1, every other latent at the typical face's value
        assert torch.allclose(grid[5], model.decode(expected[None])[0], atol=1e-5)
    tensors, header = load_model_file(tmp / "run" / "model.safetensors")
    del tensors["typical_code"]  # a file written before the typical code was stored still loads: it starts at 0
    older, _ = load_face_model(save_model_file(tmp / "older.safetensors", tensors, header))
    assert torch.equal(typical_code(older), torch.zeros(4))


def test_gan_trains_through_the_cli_and_samples(picture_folders):
    tmp = picture_folders
    recipe(tmp / "gan.yaml", "face-gan", {"latent": 8, "generator_channels": [8, 4], "discriminator_channels": [4, 8]},
           data={"faces": [str(tmp / "colour")]})
    assert main(["train", str(tmp / "gan.yaml"), "--out", str(tmp / "run")]) == 0
    assert read_header(tmp / "run" / "model.safetensors")["kind"] == "face-gan"
    assert main(["faces", "sample", "--model", str(tmp / "run" / "model.safetensors"), "-n", "16",
                 "-o", str(tmp / "samples.png")]) == 0
    assert Image.open(tmp / "samples.png").size == (8 * 18 + 2, 2 * 18 + 2)
    assert main(["faces", "reconstruct", "--model", str(tmp / "run" / "model.safetensors"), str(tmp / "colour"),
                 "-o", str(tmp / "no.png")]) == 1  # a GAN has no encoder: a one-line error


def test_autoencoder_trains_holds_faces_back_and_samples_from_codes(picture_folders):
    tmp = picture_folders
    recipe(tmp / "ae.yaml", "face-ae", TINY_VAE, data={"faces": [str(tmp / "colour"), str(tmp / "grey")],
                                                        "held_back": 3})
    assert main(["train", str(tmp / "ae.yaml"), "--out", str(tmp / "run")]) == 0
    held = json.loads((tmp / "run" / "held_back.json").read_text())
    assert len(held["colour"]) == 3 and len(held["grey"]) == 3  # one whole person of three shots
    assert len({Path(f).parent for f in held["grey"]}) == 1
    header = read_header(tmp / "run" / "model.safetensors")
    assert header["kind"] == "face-ae" and header["data"]["faces"] == {"colour": 9, "grey": 9}
    model_file = str(tmp / "run" / "model.safetensors")
    for command in (["sample", "-n", "8"], ["reconstruct", str(tmp / "colour")],
                    ["interpolate", held["colour"][0], held["grey"][0], "--steps", "5"]):
        assert main(["faces", command[0], "--model", model_file, *command[1:], "-o", str(tmp / "out.png")]) == 0
    model, _ = load_face_model(model_file)
    assert model.code_std.shape == (4,) and float(model.code_std.min()) > 0  # the training codes' spread, stored
    assert main(["faces", "traverse", "--model", model_file, "-o", str(tmp / "no.png")]) == 1  # no KL to rank by


def test_progressive_gan_grows_through_the_cli_and_its_file_samples_at_the_level_reached(picture_folders):
    tmp = picture_folders
    model = {"latent": 8, "start_size": 4, "channels": [8, 8, 4], "images_per_stage": 4, "fade_images": 8}
    recipe(tmp / "progan.yaml", "face-progan", model, data={"faces": [str(tmp / "colour")]},
           train={**TINY_TRAIN, "steps": 3})  # 12 images of 4: level 0 for 4, level 1 fading in over 8
    assert main(["train", str(tmp / "progan.yaml"), "--out", str(tmp / "run")]) == 0
    header = read_header(tmp / "run" / "model.safetensors")
    assert header["kind"] == "face-progan" and header["growth"] == {"images_seen": 12, "level": 1, "alpha": 1.0}
    loaded, _ = load_face_model(tmp / "run" / "model.safetensors")
    assert int(loaded.G.images_seen) == 12 and loaded.G.stage() == (1, 1.0)
    assert main(["faces", "sample", "--model", str(tmp / "run" / "model.safetensors"), "-n", "8",
                 "-o", str(tmp / "samples.png")]) == 0
    assert Image.open(tmp / "samples.png").size == (8 * 18 + 2, 18 + 2)  # 8 x 8 faces enlarged to the final 16


def test_face_cyclegan_trains_grey_to_colour_and_translates(picture_folders):
    tmp = picture_folders
    recipe(tmp / "cyclegan.yaml", "face-cyclegan",
           {"generator": "resnet", "generator_channels": 4, "residual_blocks": 1, "discriminator_channels": 4,
            "discriminator_layers": 2, "identity_weight": 0.0}, train={"steps": 1, "batch_size": 2})
    assert main(["train", str(tmp / "cyclegan.yaml"), "--faces-a", str(tmp / "grey"), "--faces-b", str(tmp / "colour"),
                 "--out", str(tmp / "run")]) == 0
    header = read_header(tmp / "run" / "model.safetensors")
    assert header["kind"] == "face-cyclegan" and header["domains"]["A"]["name"] == "grey"
    assert main(["faces", "translate", "--model", str(tmp / "run" / "model.safetensors"), str(tmp / "grey"),
                 "--limit", "3", "-o", str(tmp / "colourized.png")]) == 0


def test_compare_reports_accuracy_per_group(picture_folders):
    tmp = picture_folders
    recipe(tmp / "dbvae.yaml", "face-dbvae", TINY_VAE,
           data={"faces": [str(tmp / "colour"), str(tmp / "grey")], "nonfaces": [str(tmp / "objects")]},
           split={"test_per_group": 3, "minority": "grey", "minority_share": 0.2, "keep_subfolders_together": ["grey"]})
    lecture = group_folders(tmp)
    assert main(["faces", "compare", str(tmp / "dbvae.yaml"), "--out", str(tmp / "compare"), "--steps", "2",
                 "--set", "data.lighting=0.5", "--set", "data.zoom=0.5", "--groups", str(lecture)]) == 0
    report = json.loads((tmp / "compare" / "report.json").read_text())
    external = report["external_groups"]["results"]
    assert set(external) == {"dbvae", "classifier"} and external["dbvae"]["groups"]["B"]["images"] == 3
    assert main(["faces", "groups", "--model", str(tmp / "compare" / "dbvae" / "model.safetensors"), str(lecture),
                 "--json", str(tmp / "groups.json")]) == 0
    assert json.loads((tmp / "groups.json").read_text())["groups"] == external["dbvae"]["groups"]
    assert set(report["results"]) == {"dbvae", "classifier"}
    for result in report["results"].values():
        assert set(result["groups"]) == {"colour", "grey", "nonfaces"}
        assert result["groups"]["grey"]["images"] == 3
        accuracies = [g["accuracy"] for g in result["groups"].values()]
        assert result["worst_group_accuracy"] == min(accuracies) and result["gap"] == max(accuracies) - min(accuracies)
        assert 0 <= result["overall"] <= 1
    shares = report["resampling"]["sampling_share"]
    assert sum(s["debiased"] for s in shares.values()) == pytest.approx(1.0)
    assert (tmp / "compare" / "rarest_faces.png").is_file() and (tmp / "compare" / "commonest_faces.png").is_file()
    assert "worst group" in (tmp / "compare" / "report.md").read_text()
    assert main(["faces", "compare", str(tmp / "dbvae.yaml"), "--out", str(tmp / "oracle"), "--steps", "2",
                 "--models", "balanced_classifier"]) == 0
    oracle = json.loads((tmp / "oracle" / "report.json").read_text())
    assert set(oracle["results"]) == {"balanced_classifier"} and "resampling" not in oracle
    assert oracle["images"] == report["images"]  # the same split


def test_seed_study_runs_every_setting_and_seed_and_tabulates_them(picture_folders):
    tmp = picture_folders
    recipe(tmp / "dbvae.yaml", "face-dbvae", TINY_VAE,
           data={"faces": [str(tmp / "colour"), str(tmp / "grey")], "nonfaces": [str(tmp / "objects")]},
           split={"test_per_group": 3, "minority": "grey", "minority_share": 0.2, "keep_subfolders_together": ["grey"]})
    study = [sys.executable, str(REPO / "recipes" / "faces" / "debias_seeds.py"), str(tmp / "dbvae.yaml"),
             "--out", str(tmp / "study"), "--seeds", "0", "1", "--workers", "2", "--setting", "base",
             "--setting", "wide", "model.latent=6", "models:dbvae", "--", "--steps", "2", "--groups",
             str(group_folders(tmp))]
    done = subprocess.run(study, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    reports = {(setting, seed): tmp / "study" / setting / f"seed{seed}" / "report.json"
               for setting in ("base", "wide") for seed in (0, 1)}
    for (setting, _), path in reports.items():
        assert set(json.loads(path.read_text())["results"]) == ({"dbvae", "classifier"} if setting == "base" else {"dbvae"})
    used = yaml.safe_load((tmp / "study" / "wide" / "seed1" / "recipe.yaml").read_text())
    assert used["model"]["latent"] == 6 and used["train"]["seed"] == 1 and used["split"]["seed"] == 0
    summary = (tmp / "study" / "summary.md").read_text()
    assert "### base: the recipe as it is (2 seeds)" in summary and "### wide: model.latent=6 models:dbvae (2 seeds)" in summary
    assert "| dbvae |" in summary and "| classifier |" in summary and "grey's share of the DB-VAE's sampling" in summary
    assert summary.count("per group of") == 2 and "| A (n=3) | B (n=3) | worst group | overall |" in summary
    written = {key: path.stat().st_mtime_ns for key, path in reports.items()}
    again = subprocess.run(study, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and {k: p.stat().st_mtime_ns for k, p in reports.items()} == written  # kept


def test_data_options_of_another_kind_are_usage_errors(picture_folders, capsys):
    tmp = picture_folders
    recipe(tmp / "vae.yaml", "face-vae", TINY_VAE)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(tmp / "vae.yaml"), "--speaker-a", str(tmp), "--out", str(tmp / "run")])
    assert exit_info.value.code == 2 and "--speaker-a not used by a face-vae recipe" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", str(REPO / "recipes" / "kathleen_rms.yaml"), "--faces", str(tmp), "--out", str(tmp / "run")])
    assert "--faces not used by a voice-cyclegan recipe" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", str(REPO / "recipes" / "base" / "voice.yaml"), "--out", str(tmp / "run")])  # no speakers
    assert "needs --speaker-a DIR and --speaker-b DIR" in capsys.readouterr().err
    (tmp / "odd.yaml").write_text("kind: face-unet\n")
    with pytest.raises(SystemExit):
        main(["train", str(tmp / "odd.yaml"), "--out", str(tmp / "run")])
    assert "unknown recipe kind 'face-unet'; valid kinds: voice-cyclegan, face-ae, face-vae" in capsys.readouterr().err
    assert main(["train", str(tmp / "vae.yaml"), "--out", str(tmp / "run")]) == 1  # no faces anywhere
    assert "no faces folders: pass --faces DIR" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "recipes").glob("*.yaml")))
def test_shipped_recipes_load(name):
    from voiceconv.families import FAMILIES
    from voiceconv.families import recipe_kind
    from voiceconv.train.recipes import load_recipe_as

    path = REPO / "recipes" / f"{name}.yaml"
    kind = recipe_kind(path)
    assert kind in FAMILIES
    assert load_recipe_as(FAMILIES[kind].recipe_class(), path).kind == kind


def test_every_family_names_its_pieces_and_they_exist():
    """The registry is the one table of kinds: each entry's recipe, trainer and loader import, the recipe's kind
    is the family's, and every data option is a ``voiceconv train`` option."""
    import argparse

    from voiceconv.families import FAMILIES
    from voiceconv.cli.train import add_train_data_arguments

    parser = argparse.ArgumentParser()
    add_train_data_arguments(parser)
    for flag in ("--speaker-a", "--speaker-b", "--name-a", "--name-b"):
        parser.add_argument(flag)
    options = {action.dest for action in parser._actions}
    for kind, entry in FAMILIES.items():
        recipe_class, trainer, loader = entry.pieces()
        assert recipe_class().kind == kind and callable(trainer) and callable(loader)
        assert set(entry.data_options) <= options, kind


def test_model_file_checks_and_face_loaders_cover_exactly_the_registry_kinds():
    """A kind added to the registry without a model-file check (or a check left for a removed kind) fails here."""
    from voiceconv.modelfiles import kinds as modelcheck
    from voiceconv.faces import tools as face_tools
    from voiceconv.families import FACE_CLASSIFIER, FAMILIES

    assert set(modelcheck.KINDS) == set(FAMILIES) | {FACE_CLASSIFIER}
    face_loaded = {kind for kind, entry in FAMILIES.items() if entry.loader == "voiceconv.faces.tools:load_face_model"}
    assert set(face_tools.LOADERS) == face_loaded


def test_a_voice_recipe_may_name_its_kind(tmp_path):
    from voiceconv.train.voice import load_recipe

    base = REPO / "recipes" / "base" / "voice.yaml"
    text = base.read_text().replace("kind: voice-cyclegan\n", "")
    assert "kind:" not in text
    (tmp_path / "unnamed.yaml").write_text(text)
    (tmp_path / "named.yaml").write_text("kind: voice-cyclegan\n" + text)
    assert load_recipe(tmp_path / "named.yaml") == load_recipe(tmp_path / "unnamed.yaml") == load_recipe(base)
    (tmp_path / "wrong.yaml").write_text("kind: face-vae\n" + text)
    with pytest.raises(ConfigError, match="kind: 'face-vae' is not one of 'voice-cyclegan'"):
        load_recipe(tmp_path / "wrong.yaml")


@pytest.mark.shared_data
def test_face_vae_trains_on_real_faces(shared_data, tmp_path):
    """Two steps of the shipped face-vae recipe's data path on a few real ORL and Caltech faces."""
    import shutil

    for source, target in ((shared_data / "faces" / "orl" / "s1", tmp_path / "orl"),
                           (shared_data / "faces" / "caltech101_faces", tmp_path / "caltech")):
        target.mkdir()
        for path in sorted(source.iterdir())[:6]:
            shutil.copy(path, target / path.name)
    recipe(tmp_path / "vae.yaml", "face-vae", TINY_VAE)
    assert main(["train", str(tmp_path / "vae.yaml"), "--faces", str(tmp_path / "caltech"), "--faces",
                 str(tmp_path / "orl"), "--out", str(tmp_path / "run")]) == 0
    assert read_header(tmp_path / "run" / "model.safetensors")["data"]["faces"] == {"caltech": 6, "orl": 6}
