"""Detection per group: how often a face detector (a debiasing VAE or a plain face classifier) calls each group's
faces faces, on a folder laid out ``GROUP/*.png`` (MIT 6.S191 lab 2 judges its DB-VAE so, on four groups of test
faces: darker/lighter, female/male).

Every image of a group folder is a face, so the detection rate is the share with a face logit above 0. Unreadable
images are counted apart and named, never silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import json

import torch

from voiceconv.config import from_dict
from voiceconv.errors import ImageFileError, VoiceconvError
from voiceconv.faces.data import image_files, load_face_image
from voiceconv.faces.tools import LOADERS
from voiceconv.families import FACE_CLASSIFIER, FACE_DBVAE
from voiceconv.modelfiles.format import load_model_file, load_weights
from voiceconv.models.base import evaluating
from voiceconv.models.vae import DebiasingVAE, FaceClassifier, VAEConfig

DETECTORS = (FACE_DBVAE, FACE_CLASSIFIER)
CHUNK = 256  # images classified at once
REPORT_SUFFIX = ".groups.json"  # a detector's report beside its model file: MODEL.groups.json
MAX_REPORT_BYTES = 1_000_000
MAX_GROUPS = 64


def load_face_detector(path: str | Path) -> tuple[DebiasingVAE | FaceClassifier, dict]:
    """(detector in eval mode, header) of a ``face-dbvae`` or ``face-classifier`` model file."""
    tensors, header = load_model_file(path, kinds=DETECTORS)  # checked before anything is built
    image = header["image"]
    shape = (image["channels"], image["height"], image["width"])
    if header["kind"] == FACE_DBVAE:
        return LOADERS[FACE_DBVAE](tensors, header, shape, path).eval(), header
    model = FaceClassifier(*shape, from_dict(VAEConfig, header["model"]))
    load_weights(model, tensors, path)
    return model.eval(), header


def group_folders(root: str | Path) -> dict[str, Path]:
    """The sub-folders of ``root`` that hold images, by name; VoiceconvError when there are none."""
    root = Path(root)
    if not root.is_dir():
        raise VoiceconvError(f"{root}: not a folder of group folders (GROUP/*.png)")
    groups = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and image_files(p)}
    if not groups:
        raise VoiceconvError(f"{root}: no group folders with images (expected GROUP/*.png)")
    return groups


@torch.no_grad()
def detection_by_group(model: DebiasingVAE | FaceClassifier, root: str | Path) -> dict:
    """``{"groups": {name: {"images", "detected", "rate", "unreadable"}}, "worst_group", "worst_rate", "gap",
    "overall"}``: the share of each group's faces that ``model`` calls faces."""
    size, device = model.image_shape[-1], next(model.parameters()).device
    groups, detected_all, total = {}, 0, 0
    for name, folder in group_folders(root).items():
        images, unreadable = [], []
        for path in image_files(folder):
            try:
                images.append(load_face_image(path, size))
            except ImageFileError as err:
                unreadable.append(str(err))
        if not images:
            groups[name] = {"images": 0, "detected": 0, "rate": None, "unreadable": unreadable}
            continue
        with evaluating(model):
            logits = torch.cat([model.classify(torch.stack(images[i:i + CHUNK]).to(device)).float().cpu()
                                for i in range(0, len(images), CHUNK)])  # [N] face logits
        detected = int((logits > 0).sum())
        groups[name] = {"images": len(images), "detected": detected, "rate": detected / len(images),
                        "unreadable": unreadable}
        detected_all, total = detected_all + detected, total + len(images)
    rated = {name: g["rate"] for name, g in groups.items() if g["rate"] is not None}
    if not rated:
        raise VoiceconvError(f"{root}: no readable image in any group folder")
    worst = min(rated, key=rated.get)
    return {"groups": groups, "worst_group": worst, "worst_rate": rated[worst],
            "gap": max(rated.values()) - min(rated.values()), "overall": detected_all / total}


def groups_markdown(model_name: str, report: dict) -> str:
    """One table row per group, then the worst group, the gap and the overall rate."""
    lines = [f"Faces called faces by {model_name}, per group:", "", "| group | images | detected | rate |",
             "|---|---|---|---|"]
    for name, group in report["groups"].items():
        rate = "-" if group["rate"] is None else f"{group['rate']:.0%}"
        lines.append(f"| {name} | {group['images']} | {group['detected']} | {rate} |")
    lines += ["", f"Worst group: {report['worst_group']} ({report['worst_rate']:.0%}); gap {report['gap']:.0%}; "
                  f"overall {report['overall']:.0%}."]
    lines += [f"Unreadable: {reason}" for group in report["groups"].values() for reason in group["unreadable"]]
    return "\n".join(lines)


def report_beside(model_path: str | Path) -> Path:
    """Where a detector's per-group report lives: ``MODEL.groups.json`` beside ``MODEL.safetensors``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + REPORT_SUFFIX)


def read_group_rates(path: str | Path) -> dict[str, tuple[int, int]]:
    """``{group: (detected, images)}`` of a report written by ``voiceconv faces groups --json``; VoiceconvError
    naming the file when it is too large, not JSON, or not such a report (it may come from anyone)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise VoiceconvError(f"{path}: larger than {MAX_REPORT_BYTES:,} bytes; not a group report")
        groups = json.loads(path.read_text(encoding="utf-8"))["groups"]
        rates = {str(name): (int(g["detected"]), int(g["images"])) for name, g in groups.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise VoiceconvError(f"{path}: not a group report of voiceconv faces groups --json ({err})") from None
    if not rates or len(rates) > MAX_GROUPS or any(not 0 <= d <= n for d, n in rates.values()):
        raise VoiceconvError(f"{path}: a group report needs 1 to {MAX_GROUPS} groups with 0 <= detected <= images")
    return rates
