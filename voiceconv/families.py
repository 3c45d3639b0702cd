"""The model families voiceconv trains and loads, in one table.

A family is named by the ``kind`` its recipes and model-file headers carry.
Its entry says where its recipe type, its trainer and its loader live, which
``voiceconv train`` options its data comes from, and what people call it.
Those pieces are written as ``"module:name"`` and imported on first use, so
looking a family up never loads training code: the web server and the
converter import this table without importing ``voiceconv.train``.

``voiceconv train``, the web page and the tests iterate :data:`FAMILIES`;
adding a family is its module (recipe, trainer, loader) plus one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from voiceconv.config import read_recipe
from voiceconv.errors import ConfigError

# The kinds, as recipes and model-file headers spell them; every other module uses these names.
VOICE_KIND = "voice-cyclegan"  # what a recipe without a ``kind`` trains
FACE_AE = "face-ae"
FACE_VAE = "face-vae"
FACE_DBVAE = "face-dbvae"
FACE_GAN = "face-gan"
FACE_PROGAN = "face-progan"
FACE_CYCLEGAN = "face-cyclegan"
SPEECH_VAE = "speech-vae"
FACE_CLASSIFIER = "face-classifier"  # not a family: ``voiceconv faces compare`` trains it beside a DB-VAE


@dataclass(frozen=True)
class ModelFamily:
    """One model family: its kind, what it is called, and where its pieces live."""

    kind: str
    title: str  # what the page and messages call it
    recipe: str  # "module:Class": the recipe dataclass (training side)
    trainer: str  # "module:function": (recipe, run_dir, resume=...) -> TrainingOutcome
    loader: str  # "module:function": model file -> loaded model (inference side)
    data_options: tuple[str, ...]  # the ``voiceconv train`` options (argparse names) its data comes from
    required_options: tuple[str, ...] = ()  # data it cannot train without: from these options or the recipe
    on_faces_tab: bool = False  # the web page's Faces tab shows its model files

    def recipe_class(self) -> type:
        """The recipe dataclass (imports the training module)."""
        return _imported(self.recipe)

    def train(self, recipe, run_dir: Path, resume: bool):
        """Train ``recipe`` (its data options applied: :func:`with_data_options`) into ``run_dir``."""
        return _imported(self.trainer)(recipe, run_dir, resume=resume)

    def pieces(self) -> tuple[type, Callable, Callable]:
        """The recipe class, the trainer and the loader, imported (training code included)."""
        return self.recipe_class(), _imported(self.trainer), _imported(self.loader)

    def load(self, path: str | Path):
        """A model file of this family, loaded for use (inference code only)."""
        return _imported(self.loader)(path)


FAMILIES: dict[str, ModelFamily] = {family.kind: family for family in (
    ModelFamily(VOICE_KIND, "voice CycleGAN", "voiceconv.train.voice:VoiceRecipe",
                "voiceconv.train.voice:train_voice", "voiceconv.modelfiles.voice:load_voice_model",
                data_options=("speaker_a", "speaker_b", "name_a", "name_b"), required_options=("speaker_a", "speaker_b")),
    ModelFamily(FACE_AE, "autoencoder", "voiceconv.faces.recipes:FaceAERecipe", "voiceconv.faces.tasks:train_face_ae",
                "voiceconv.faces.tools:load_face_model", data_options=("faces",), on_faces_tab=True),
    ModelFamily(FACE_VAE, "VAE", "voiceconv.faces.recipes:FaceVAERecipe", "voiceconv.faces.tasks:train_face_vae",
                "voiceconv.faces.tools:load_face_model", data_options=("faces",), on_faces_tab=True),
    ModelFamily(FACE_DBVAE, "debiasing VAE", "voiceconv.faces.recipes:FaceDBVAERecipe",
                "voiceconv.faces.debias:train_face_dbvae", "voiceconv.faces.tools:load_face_model",
                data_options=("faces", "nonfaces"), on_faces_tab=True),
    ModelFamily(FACE_GAN, "GAN", "voiceconv.faces.recipes:FaceGANRecipe", "voiceconv.faces.tasks:train_face_gan",
                "voiceconv.faces.tools:load_face_model", data_options=("faces",), on_faces_tab=True),
    ModelFamily(FACE_PROGAN, "progressive GAN", "voiceconv.faces.recipes:FaceProGANRecipe",
                "voiceconv.faces.tasks:train_face_progan", "voiceconv.faces.tools:load_face_model", data_options=("faces",),
                on_faces_tab=True),
    ModelFamily(FACE_CYCLEGAN, "face CycleGAN", "voiceconv.faces.recipes:FaceCycleGANRecipe",
                "voiceconv.faces.tasks:train_face_cyclegan", "voiceconv.faces.tools:load_face_model",
                data_options=("faces_a", "faces_b")),
    ModelFamily(SPEECH_VAE, "speech VAE", "voiceconv.train.speech_vae:SpeechVAERecipe",
                "voiceconv.train.speech_vae:train_speech_vae", "voiceconv.speech_vae:load_speech_vae",
                data_options=("speaker",)),
)}

#: Every ``voiceconv train`` data option of any family, in a stable order.
DATA_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(o for f in FAMILIES.values() for o in f.data_options))


def family(kind: str) -> ModelFamily:
    """The family of ``kind``; ConfigError naming the valid kinds otherwise."""
    if kind not in FAMILIES:
        raise ConfigError(f"unknown recipe kind {kind!r}; valid kinds: {', '.join(FAMILIES)}")
    return FAMILIES[kind]


def recipe_kind(path: str | Path) -> str:
    """The ``kind`` of a recipe YAML (``voice-cyclegan`` when it has none)."""
    values = read_recipe(path)
    kind = values.get("kind", VOICE_KIND)
    if not isinstance(kind, str):
        raise ConfigError(f"{path}: kind must be a string, got {kind!r}")
    return kind


def faces_tab_kinds() -> dict[str, str]:
    """kind -> title of the families the page's Faces tab shows."""
    return {f.kind: f.title for f in FAMILIES.values() if f.on_faces_tab}


def with_data_options(recipe, options: dict[str, Any]):
    """``recipe`` with the ``data`` fields named by ``options`` replaced (folders as text, lists as tuples); None
    values are ignored."""
    options = {name: value for name, value in options.items() if value is not None}
    if not options:
        return recipe
    changes = {name: (tuple(str(p) for p in value) if isinstance(value, (list, tuple)) else str(value))
               for name, value in options.items()}
    return replace(recipe, data=replace(recipe.data, **changes))


def _imported(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
