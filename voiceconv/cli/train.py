"""``voiceconv train``: any recipe, of any family in :mod:`voiceconv.families`, through one path."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from voiceconv.errors import ConfigError
from voiceconv.families import DATA_OPTIONS, FAMILIES, VOICE_KIND, ModelFamily, family, with_data_options


def add_verbs(verbs) -> None:
    """Register ``train``."""
    _add_train(verbs)


def _add_train(verbs) -> None:
    p = verbs.add_parser("train", help="train a model from a recipe: voice CycleGAN, or face VAE/DB-VAE/GAN/CycleGAN",
                         description="Train the model a recipe describes. Voice recipes: speaker A <-> speaker B "
                                     "from two folders of recordings (unpaired, any readable audio, searched "
                                     "recursively), named by the recipe's data.speaker_a/speaker_b or the "
                                     "options below. Recipes of the other kinds "
                                     f"({', '.join(k for k in FAMILIES if k != VOICE_KIND)}) take their folders "
                                     "from the recipe or the options below. Writes checkpoints, TensorBoard logs "
                                     "and finally RUN_DIR/model.safetensors. Ctrl-C saves a checkpoint; --resume "
                                     "continues from the newest one. Several processes: torchrun --nproc-per-node N "
                                     "-m voiceconv train ...")
    p.add_argument("recipe", type=Path, help="recipe YAML (see recipes/)")
    p.add_argument("--speaker-a", type=Path, metavar="DIR",
                   help="recordings of speaker A (voice recipes; default: the recipe's data.speaker_a)")
    p.add_argument("--speaker-b", type=Path, metavar="DIR",
                   help="recordings of speaker B (voice recipes; default: the recipe's data.speaker_b)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    p.add_argument("--name-a", help="speaker A's name in the model card (default: from the folder)")
    p.add_argument("--name-b", help="speaker B's name in the model card (default: from the folder)")
    p.add_argument("--steps", type=int, help="total training steps (overrides train.steps)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN_DIR")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe override, e.g. --set model.generator_channels=32 (repeatable)")
    p.add_argument("--no-audit", action="store_true",
                   help="skip the audit of the speaker folders (a warning line per flagged recording) before training")
    add_train_data_arguments(p)
    p.set_defaults(run=_run_train, usage_error=p.error)


def _run_train(args) -> int:
    import logging

    from voiceconv.families import recipe_kind
    from voiceconv.train.recipes import load_recipe_as

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    chosen = check_data_flags(args, recipe_kind(args.recipe))
    options = {dest: getattr(args, dest, None) for dest in chosen.data_options}
    recipe = with_data_options(load_recipe_as(chosen.recipe_class(), args.recipe, args.overrides, args.steps), options)
    check_required_data(args, chosen, recipe)
    if chosen.kind == VOICE_KIND and not args.no_audit and os.environ.get("RANK", "0") == "0":  # torchrun: once
        from voiceconv.cli.audit import warn_about_flagged_recordings

        warn_about_flagged_recordings([Path(recipe.data.speaker_a), Path(recipe.data.speaker_b)], args.out)
    outcome = chosen.train(recipe, args.out, args.resume)
    if outcome.interrupted:
        print(f"interrupted at step {outcome.steps}; checkpoint saved, continue with --resume", file=sys.stderr)
        return 130
    if outcome.model_path is not None:
        print(outcome.model_path)
    return 0


def add_train_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options of the non-voice recipe kinds, for ``voiceconv train``."""
    group = parser.add_argument_group("faces and other recipes (data folders; default: those in the recipe)")
    group.add_argument("--faces", type=Path, action="append", metavar="DIR",
                       help="folder of face images, repeatable: one subgroup per folder (face-vae, face-gan, face-dbvae)")
    group.add_argument("--nonfaces", type=Path, action="append", metavar="DIR",
                       help="folder of non-face images, repeatable (face-dbvae)")
    group.add_argument("--faces-a", type=Path, metavar="DIR", help="faces of domain A (face-cyclegan)")
    group.add_argument("--faces-b", type=Path, metavar="DIR", help="faces of domain B (face-cyclegan)")
    group.add_argument("--speaker", type=Path, metavar="DIR", help="recordings of one speaker (speech-vae)")


def check_data_flags(args, kind: str) -> ModelFamily:
    """The family of ``kind``; a usage error for an unknown kind, or for data options that belong to another kind
    of recipe."""
    try:
        chosen = family(kind)
    except ConfigError as err:
        args.usage_error(f"{args.recipe}: {err}")
    foreign = [dest for dest in DATA_OPTIONS if dest not in chosen.data_options and getattr(args, dest, None) is not None]
    if foreign:
        args.usage_error(f"{', '.join(map(_flag, foreign))} not used by a {kind} recipe; it takes "
                         + ", ".join(map(_flag, chosen.data_options)))
    return chosen


def check_required_data(args, chosen: ModelFamily, recipe) -> None:
    """A usage error for data the recipe's family cannot train without, given neither as an option nor in the
    recipe's ``data``."""
    missing = [dest for dest in chosen.required_options if not getattr(recipe.data, dest, None)]
    if missing:
        args.usage_error(f"a {chosen.kind} recipe needs " + " and ".join(f"{_flag(dest)} DIR" for dest in missing)
                         + f" (or data.{' and data.'.join(missing)} in the recipe)")


def _flag(dest: str) -> str:
    """The command-line spelling of a data option: ``speaker_a`` -> ``--speaker-a``."""
    return "--" + dest.replace("_", "-")


def with_data_flags(recipe, args):
    """``recipe`` with its data folders replaced by those given on the command line."""
    return with_data_options(recipe, {dest: getattr(args, dest, None) for dest in DATA_OPTIONS
                                      if hasattr(recipe.data, dest)})
