"""Recipe files of every model family: which kind a YAML recipe is, loading it, and preparing its run folder.

A recipe names its family in a top-level ``kind`` key (``face-vae``,
``face-dbvae``, ``face-gan``, ``face-cyclegan``, ``speech-vae``); a recipe
without one is a voice-conversion CycleGAN recipe (:mod:`voiceconv.train.voice`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from voiceconv.config import apply_overrides, load_yaml, save_yaml
from voiceconv.errors import ConfigError

R = TypeVar("R")


def load_recipe_as(cls: type[R], path: str | Path, overrides: list[str] = (), steps: int | None = None) -> R:
    """Recipe dataclass ``cls`` from YAML, with ``--set`` overrides and an optional total step count."""
    recipe = apply_overrides(load_yaml(cls, path), list(overrides))
    if steps is not None:
        recipe = replace(recipe, train=replace(recipe.train, steps=steps))
    return recipe


#: Loop settings that do not change what is trained: a resumed run may change them.
REPORTING_SETTINGS = ("steps", "log_every", "media_every", "checkpoint_every", "keep_checkpoints", "export_every",
                      "validate_every", "threads", "max_minutes")


def prepare_run_dir(recipe, run_dir: Path, resume: bool) -> None:
    """Create ``run_dir`` and save the recipe there; on resume refuse a recipe that differs in what is trained
    (only the loop's :data:`REPORTING_SETTINGS` may change)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "recipe.yaml"
    if resume and saved.is_file():
        previous = load_yaml(type(recipe), saved)
        if _trained_part(previous) != _trained_part(recipe):
            raise ConfigError(f"{saved}: the run was started with a different recipe; resume with the same recipe "
                              f"(only {', '.join('train.' + k for k in REPORTING_SETTINGS)} may change) "
                              "or use a new --out folder")
    save_yaml(recipe, saved)


def _trained_part(recipe):
    """``recipe`` with the reporting settings of its loop reset to their defaults."""
    defaults = type(recipe.train)()
    return replace(recipe, train=replace(recipe.train, **{k: getattr(defaults, k) for k in REPORTING_SETTINGS}))
