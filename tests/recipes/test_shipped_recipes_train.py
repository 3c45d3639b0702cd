"""Every shipped recipe trains one step at its full size, on small synthetic data, through ``voiceconv train``.

Only the data-size settings are overridden (the synthetic folders hold a few seconds of audio or a dozen
pictures); the networks, losses and optimizers are the recipes' own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, harmonic_tone
from voiceconv.audio.io import save_audio
from voiceconv.cli import main
from voiceconv.families import FAMILIES
from voiceconv.modelfiles.format import read_header
from voiceconv.families import recipe_kind

RECIPES = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
SMALL_DATA = {  # kind -> overrides that fit the synthetic folders below
    "voice-cyclegan": ["data.min_seconds=2", "data.held_back=1", "train.validate_every=0"],
    "speech-vae": ["data.min_seconds=2"],
    "face-ae": ["data.min_images=4", "data.held_back=2"],
    "face-vae": ["data.min_images=4"],
    "face-gan": ["data.min_images=4"],
    "face-progan": ["data.min_images=4"],
    "face-cyclegan": ["data.min_images=4"],
    "face-dbvae": ["data.min_images=4", "split.test_per_group=2", "split.minority=grey", "split.minority_share=0.3",
                   "split.keep_subfolders_together=[]"],
}


def speaker(folder: Path, f0: float) -> Path:
    for i in range(4):
        save_audio(folder / f"{i}.wav", harmonic_tone(1.5, f0=f0 + 5 * i, seed=i), 16000)
    return folder


def pictures(folder: Path, count: int, grey: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = rng.integers(0, 255, (40, 40) if grey else (40, 40, 3), np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


def data_options(kind: str, tmp: Path) -> list[str]:
    if kind == "voice-cyclegan":
        return ["--speaker-a", str(speaker(tmp / "high", 220.0)), "--speaker-b", str(speaker(tmp / "low", 110.0))]
    if kind == "speech-vae":
        return ["--speaker", str(speaker(tmp / "voice", 150.0))]
    if kind == "face-cyclegan":
        return ["--faces-a", str(pictures(tmp / "grey", 6, grey=True)), "--faces-b", str(pictures(tmp / "colour", 6))]
    options = ["--faces", str(pictures(tmp / "colour", 12)), "--faces", str(pictures(tmp / "grey", 8, grey=True, seed=1))]
    if kind == "face-dbvae":
        options += ["--nonfaces", str(pictures(tmp / "objects", 12, seed=2))]
    return options


@pytest.mark.parametrize("name", RECIPES)
def test_every_shipped_recipe_trains_one_step(name, tmp_path):
    recipe = REPO / "recipes" / f"{name}.yaml"
    kind = recipe_kind(recipe)
    assert kind in FAMILIES and kind in SMALL_DATA, f"{name}: add its family to SMALL_DATA"
    overrides = [arg for value in SMALL_DATA[kind] for arg in ("--set", value)]
    run = tmp_path / "run"
    assert main(["train", str(recipe), *data_options(kind, tmp_path), "--out", str(run), "--steps", "1",
                 *overrides, "--set", "train.threads=1"]) == 0
    header = read_header(run / "model.safetensors")
    assert header["kind"] == kind and header["training"]["steps"] == 1
    assert FAMILIES[kind].load(run / "model.safetensors") is not None  # the family's own loader takes it
