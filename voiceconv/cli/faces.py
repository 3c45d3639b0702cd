"""``voiceconv faces ...``: the face models' tools (pictures as PNG grids) and the debiasing comparison; the speech
VAE's command is in :mod:`voiceconv.cli.speech_vae`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voiceconv.cli.train import with_data_flags
from voiceconv.errors import ConfigError
from voiceconv.families import FACE_DBVAE
from voiceconv.models.directions import DIRECTIONS


def add_verbs(verbs) -> None:
    """Register ``voiceconv faces {reconstruct,sample,traverse,interpolate,translate,compare,groups,audit}``."""
    faces = verbs.add_parser("faces", help="face VAE / DB-VAE / GAN / CycleGAN tools: pictures as PNG grids",
                             description="Make pictures with a trained face model (from `voiceconv train` with a "
                                         "face recipe), or run the debiasing comparison.")
    tools = faces.add_subparsers(dest="tool", required=True, metavar="TOOL")
    _add_reconstruct(tools)
    _add_sample(tools)
    _add_traverse(tools)
    _add_interpolate(tools)
    _add_translate(tools)
    _add_compare(tools)
    _add_groups(tools)
    _add_audit(tools)


def _model_and_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="face model file (.safetensors) from voiceconv train")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png", help="PNG grid to write")


def _add_reconstruct(tools) -> None:
    p = tools.add_parser("reconstruct", help="images and their reconstructions (face-ae, face-vae, face-dbvae)")
    _model_and_output(p)
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders")
    p.add_argument("--limit", type=int, default=16, help="at most this many images (default %(default)s)")
    p.set_defaults(run=_run_reconstruct)


def _add_sample(tools) -> None:
    p = tools.add_parser("sample", help="random images from codes z ~ N(0, I) (face-ae, face-vae, face-dbvae, face-gan)")
    _model_and_output(p)
    p.add_argument("-n", "--count", type=int, default=32, help="number of images (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_sample)


def _add_traverse(tools) -> None:
    p = tools.add_parser("traverse", help="latent traversal grid: one row per most active latent (VAEs)")
    _model_and_output(p)
    p.add_argument("--image", type=Path, help="fix the other latents at this image's code (default: 0)")
    p.add_argument("--rank-on", type=Path, metavar="DIR",
                   help="rank latents by mean KL over these images (default: the training faces, stored in the model)")
    p.add_argument("--latents", type=int, default=8, help="rows: the N most active latents (default %(default)s)")
    p.add_argument("--steps", type=int, default=9, help="columns (default %(default)s)")
    p.add_argument("--span", type=float, default=3.0, help="values from -SPAN to +SPAN (default %(default)s)")
    p.set_defaults(run=_run_traverse)


def _add_interpolate(tools) -> None:
    p = tools.add_parser("interpolate", help="decode points on the line between two faces' codes (autoencoders, VAEs)")
    _model_and_output(p)
    p.add_argument("first", type=Path, help="image at the start")
    p.add_argument("second", type=Path, help="image at the end")
    p.add_argument("--steps", type=int, default=10, help="images in the row (default %(default)s)")
    p.set_defaults(run=_run_interpolate)


def _add_translate(tools) -> None:
    p = tools.add_parser("translate", help="images and their CycleGAN translations (face-cyclegan)")
    _model_and_output(p)
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--direction", choices=DIRECTIONS, default="a2b", help="default %(default)s")
    p.add_argument("--limit", type=int, default=16)
    p.set_defaults(run=_run_translate)


def _add_groups(tools) -> None:
    p = tools.add_parser("groups", help="detection rate per group of faces (face-dbvae, face-classifier)",
                         description="How often a face detector (a debiasing VAE, or the plain classifier "
                                     "'voiceconv faces compare' trains beside it) calls each group's faces faces, "
                                     "on a folder laid out GROUP/*.png (e.g. MIT 6.S191 lab 2's test faces: LF, "
                                     "LM, DF, DM). Prints one row per group, the worst group and the gap.")
    p.add_argument("--model", type=Path, required=True, help="face-dbvae or face-classifier model file")
    p.add_argument("folder", type=Path, help="folder of group folders (GROUP/*.png)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    p.set_defaults(run=_run_groups)


def _run_groups(args) -> int:
    import json

    from voiceconv.faces.groups import detection_by_group, groups_markdown, load_face_detector
    from voiceconv.files import atomic_output

    model, header = load_face_detector(args.model)
    report = detection_by_group(model, args.folder)
    print(groups_markdown(f"{args.model.name} ({header['kind']})", report))
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps({"model": str(args.model), "kind": header["kind"], **report}, indent=2) + "\n",
                           encoding="utf-8")
    return 0


def _add_compare(tools) -> None:
    p = tools.add_parser("compare", help="DB-VAE vs plain classifier on an imbalanced split, accuracy per group",
                         description="Train a debiasing VAE and a plain classifier of the same encoder on the "
                                     "imbalanced split of a face-dbvae recipe, then score both on held-out images "
                                     "of each group. Writes OUT/report.md, report.json, split.json, "
                                     "rarest_faces.png and commonest_faces.png; the runs go to OUT/dbvae and "
                                     "OUT/classifier (Ctrl-C saves; --resume continues).")
    p.add_argument("recipe", type=Path, help="face-dbvae recipe YAML (e.g. recipes/faces_dbvae.yaml)")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument("--faces", type=Path, action="append", metavar="DIR", help="face folders (default: the recipe's)")
    p.add_argument("--nonfaces", type=Path, action="append", metavar="DIR", help="non-face folders (default: the recipe's)")
    p.add_argument("--steps", type=int, help="training steps of each model (overrides train.steps)")
    p.add_argument("--groups", type=Path, metavar="DIR",
                   help="also report each model's detection rate per group of these faces (GROUP/*.png), e.g. the "
                        "lecture's test faces (see `voiceconv faces groups`)")
    p.add_argument("--models", nargs="+", default=["dbvae", "classifier"],
                   choices=["dbvae", "classifier", "balanced_classifier"],
                   help="what to train and score (default: dbvae classifier); balanced_classifier samples every face "
                        "group equally often, an oracle that is told which face belongs to which group")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(run=_run_compare)


def _add_audit(tools) -> None:
    p = tools.add_parser("audit", help="flag broken images and non-faces in a face folder (face-vae, face-dbvae)",
                         description="Reconstruct every image of FOLDER with a face VAE and flag those it "
                                     "reconstructs far worse than the folder's others (non-faces), and unreadable "
                                     "ones. Prints a Markdown report; exit status 1 when any image is flagged.")
    p.add_argument("folder", type=Path, metavar="FOLDER", help="folder of images (searched recursively)")
    p.add_argument("--model", type=Path, required=True, help="face-vae or face-dbvae model file")
    p.add_argument("--csv", type=Path, metavar="PATH", help="also write file,flagged,reason for every image")
    p.set_defaults(run=_run_audit)


def _run_audit(args) -> int:
    from voiceconv.faces.audit import audit_face_folder

    report = audit_face_folder(args.folder, args.model)
    print(report.markdown(), end="")
    if args.csv:
        report.write_csv(args.csv)
    return 1 if report.flagged else 0


def _read_images(paths: list[Path], size: int, limit: int):
    """``[N, 3, size, size]`` from image files and folders (first ``limit`` images, sorted per folder)."""
    import torch

    from voiceconv.faces.data import image_files, load_face_image
    from voiceconv.errors import VoiceconvError

    files = [f for p in paths for f in (image_files(p) if p.is_dir() else [p])][:limit]
    if not files:
        raise VoiceconvError(f"no image files in {', '.join(map(str, paths))}")
    return torch.stack([load_face_image(f, size) for f in files])


def _load(args):
    from voiceconv.faces.tools import load_face_model

    model, header = load_face_model(args.model)
    return model, header["image"]["height"]


def _save(args, images, columns: int) -> int:
    from voiceconv.faces.data import save_grid

    print(save_grid(args.out, images, columns))
    return 0


def _run_reconstruct(args) -> int:
    from voiceconv.faces.tools import reconstruct

    model, size = _load(args)
    images = _read_images(args.images, size, args.limit)
    return _save(args, _rows(images, reconstruct(model, images)), min(len(images), 8))


def _rows(originals, results):
    """Alternate rows of up to 8 originals and their results."""
    import torch

    chunks = [torch.cat([originals[i:i + 8], results[i:i + 8]]) for i in range(0, len(originals), 8)]
    return torch.cat(chunks)


def _run_sample(args) -> int:
    from voiceconv.faces.tools import sample

    model, _ = _load(args)
    return _save(args, sample(model, args.count, args.seed), 8)


def _run_traverse(args) -> int:
    from voiceconv.faces.tools import most_active_latents, require_model_class, traverse
    from voiceconv.models.vae import VAE

    model, size = _load(args)
    require_model_class(model, VAE, "traverse")
    ranking = _read_images([args.rank_on], size, 10_000) if args.rank_on else None
    latents = most_active_latents(model, min(args.latents, model.config.latent), ranking)
    base = _read_images([args.image], size, 1) if args.image else None
    print(f"latents (most active first): {latents}", file=sys.stderr)
    return _save(args, traverse(model, latents, args.steps, args.span, base), args.steps)


def _run_interpolate(args) -> int:
    from voiceconv.faces.tools import interpolate

    model, size = _load(args)
    first, second = _read_images([args.first], size, 1), _read_images([args.second], size, 1)
    return _save(args, interpolate(model, first, second, args.steps), args.steps)


def _run_translate(args) -> int:
    from voiceconv.faces.tools import translate

    model, size = _load(args)
    images = _read_images(args.images, size, args.limit)
    return _save(args, _rows(images, translate(model, images, args.direction)), min(len(images), 8))


def _run_compare(args) -> int:
    import logging

    from voiceconv.faces.debias import compare_debiasing, markdown_report
    from voiceconv.faces.recipes import FaceDBVAERecipe
    from voiceconv.families import recipe_kind
    from voiceconv.train.recipes import load_recipe_as

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if recipe_kind(args.recipe) != FACE_DBVAE:
        raise ConfigError(f"{args.recipe}: compare needs a face-dbvae recipe, not {recipe_kind(args.recipe)}")
    recipe = with_data_flags(load_recipe_as(FaceDBVAERecipe, args.recipe, args.overrides, args.steps), args)
    report = compare_debiasing(recipe, args.out, resume=args.resume, models=tuple(args.models), groups=args.groups)
    print(markdown_report(report))
    print(f"report written to {args.out}/report.md")
    return 0
