"""The debiasing experiment: an imbalanced face / non-face split, the DB-VAE against a plain classifier, per group.

:func:`imbalanced_split` holds out ``test_per_group`` images of every face
folder and of the pooled non-faces (fixed seed), then keeps only enough
training images of the ``minority`` folder to make ``minority_share`` of the
training faces. :func:`compare_debiasing` trains a :class:`DebiasingVAE` and a
:class:`FaceClassifier` of the same encoder on the same training images
through the one loop (optionally also the classifier with group-balanced
sampling, an oracle that knows the groups), scores each on the held-out images of each group and
writes ``report.json``, ``report.md`` and PNG grids of the training faces the
DB-VAE finds rarest and most common.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from voiceconv.config import to_dict
from voiceconv.errors import ConfigError
from voiceconv.faces.data import FaceFolder, concatenate, encode_in_chunks, hold_out, save_grid, to_float
from voiceconv.faces.groups import detection_by_group
from voiceconv.faces.recipes import FaceDBVAERecipe, SplitConfig
from voiceconv.faces.tasks import DebiasingTask, load_groups
from voiceconv.files import atomic_output
from voiceconv.models.base import evaluating
from voiceconv.models.vae import DebiasingVAE, FaceClassifier
from voiceconv.train.loop import TrainingOutcome, fit
from voiceconv.train.recipes import prepare_run_dir

log = logging.getLogger(__name__)

NONFACES = "nonfaces"


@dataclass
class FaceSplit:
    """Training and test images: face groups by folder name, non-faces pooled."""

    train_faces: dict[str, FaceFolder]
    train_nonfaces: FaceFolder
    test_faces: dict[str, FaceFolder]
    test_nonfaces: FaceFolder

    def counts(self) -> dict:
        """Images per group on each side: ``{"train": {group: count}, "test": {group: count}}``."""
        return {"train": {**{name: len(g) for name, g in self.train_faces.items()}, NONFACES: len(self.train_nonfaces)},
                "test": {**{name: len(g) for name, g in self.test_faces.items()}, NONFACES: len(self.test_nonfaces)}}

    def listing(self) -> dict:
        """Every file on each side of the split (written to the run folder for inspection)."""
        return {"train": {**{n: g.files for n, g in self.train_faces.items()}, NONFACES: self.train_nonfaces.files},
                "test": {**{n: g.files for n, g in self.test_faces.items()}, NONFACES: self.test_nonfaces.files}}


def imbalanced_split(recipe: FaceDBVAERecipe, cache_dir: Path) -> FaceSplit:
    """Load the recipe's folders and split them as :class:`SplitConfig` says (deterministic for a seed)."""
    data, split = recipe.data, recipe.split
    faces = load_groups(data.faces, data.size, cache_dir, data.min_images, "faces")
    nonfaces = concatenate(load_groups(data.nonfaces, data.size, cache_dir, data.min_images, "nonfaces"), NONFACES)
    names = [g.name for g in faces]
    if len(set(names)) != len(names):
        raise ConfigError(f"face folders must have distinct names (they name the groups), got {names}")
    if split.minority and split.minority not in names:
        raise ConfigError(f"split.minority={split.minority!r} is not one of the face folders: {', '.join(names)}")
    generator = torch.Generator().manual_seed(split.seed)
    train, test = {}, {}
    for group in faces:
        together = group.name in split.keep_subfolders_together
        test[group.name], train[group.name] = hold_out(group, split.test_per_group, generator, together)
    test_nonfaces, train_nonfaces = hold_out(nonfaces, split.test_per_group, generator, False)
    if split.minority:
        train[split.minority] = _shrink_minority(train, split, generator)
    return FaceSplit(train, train_nonfaces, test, test_nonfaces)


def _shrink_minority(train: dict[str, FaceFolder], split: SplitConfig, generator: torch.Generator) -> FaceFolder:
    if not 0 < split.minority_share < 1:
        raise ConfigError(f"split.minority_share={split.minority_share} must be in (0, 1)")
    majority = sum(len(g) for name, g in train.items() if name != split.minority)
    wanted = max(1, round(split.minority_share / (1 - split.minority_share) * majority))
    available = train[split.minority]
    if wanted > len(available):
        raise ConfigError(f"{split.minority}: {wanted} training images needed for a {split.minority_share:.0%} share, "
                          f"only {len(available)} left after the test split")
    return available.subset(torch.randperm(len(available), generator=generator)[:wanted].sort().values)


MODELS = {  # name -> (debiasing VAE?, group-balanced sampling?)
    "dbvae": (True, False),
    "classifier": (False, False),
    "balanced_classifier": (False, True),  # an oracle: knows which face belongs to which group
}


def debiasing_task(recipe: FaceDBVAERecipe, split: FaceSplit, model_name: str) -> DebiasingTask:
    """One of :data:`MODELS` on the split's training images: the DB-VAE, or the plain classifier."""
    debias, balanced = MODELS[model_name]
    size, seed = recipe.data.size, recipe.train.seed
    model = (DebiasingVAE if debias else FaceClassifier)(3, size, size, recipe.model, seed=seed)
    faces = concatenate(list(split.train_faces.values()), "faces")
    return DebiasingTask(recipe, model, faces, split.train_nonfaces,
                         groups={name: len(g) for name, g in split.train_faces.items()}, group_balanced=balanced)


def train_face_dbvae(recipe: FaceDBVAERecipe, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train the DB-VAE alone on the training side of the split into ``run_dir`` (plus ``split.json``)."""
    prepare_run_dir(recipe, run_dir, resume)
    split = imbalanced_split(recipe, run_dir / "cache")
    _write_json(run_dir / "split.json", {"counts": split.counts(), "files": split.listing()})
    return fit(debiasing_task(recipe, split, "dbvae"), recipe.train, run_dir, resume=resume)


def compare_debiasing(recipe: FaceDBVAERecipe, out: Path, resume: bool = False, grid_size: int = 32,
                      models: tuple[str, ...] = ("dbvae", "classifier"), groups: Path | None = None) -> dict:
    """Train ``models`` (names in :data:`MODELS`) on the same split, score each per group; reports to ``out``.

    ``groups``: a folder laid out ``GROUP/*.png`` of faces from elsewhere (the lecture's test faces), on which
    every model's detection rate per group is reported too (:func:`voiceconv.faces.groups.detection_by_group`).

    With the DB-VAE among them, also its sampling share per group and grids of the rarest and commonest faces.
    """
    unknown = [name for name in models if name not in MODELS]
    if unknown or not models:
        raise ConfigError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(MODELS)}")
    prepare_run_dir(recipe, out, resume)
    split = imbalanced_split(recipe, out / "cache")
    _write_json(out / "split.json", {"counts": split.counts(), "files": split.listing()})
    results, tasks = {}, {}
    for name in models:
        tasks[name] = debiasing_task(recipe, split, name)
        outcome = fit(tasks[name], recipe.train, out / name, resume=resume)
        if outcome.interrupted:
            raise KeyboardInterrupt
        results[name] = {**score_groups(tasks[name].model, split), "steps": outcome.steps,
                         "training_seconds": round(outcome.seconds, 1)}
    report = {"results": results, "images": split.counts(), "split": to_dict(recipe.split)}
    if groups is not None:
        report["external_groups"] = {"folder": str(groups), "results": {
            name: detection_by_group(task.model, groups) for name, task in tasks.items()}}
    if "dbvae" in tasks:
        report["resampling"] = rarity_report(tasks["dbvae"], split, out, grid_size)
    _write_json(out / "report.json", report)
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text(markdown_report(report), encoding="utf-8")
    return report


@torch.no_grad()
def score_groups(model: DebiasingVAE | FaceClassifier, split: FaceSplit) -> dict:
    """Accuracy on each test group (faces should be called faces, non-faces not), worst group, gap and overall."""
    device = next(model.parameters()).device
    groups = {**{name: (g, 1.0) for name, g in split.test_faces.items()}, NONFACES: (split.test_nonfaces, 0.0)}
    accuracy, correct, total = {}, 0, 0
    with evaluating(model):
        for name, (folder, label) in groups.items():
            if len(folder) == 0:
                continue
            [logits] = encode_in_chunks(lambda x: (model.classify(x),), folder.pixels, device)  # [N]
            hits = int(((logits > 0).float() == label).sum())
            accuracy[name] = {"accuracy": hits / len(folder), "images": len(folder)}
            correct, total = correct + hits, total + len(folder)
    worst = min(accuracy, key=lambda n: accuracy[n]["accuracy"])
    values = [a["accuracy"] for a in accuracy.values()]
    return {"groups": accuracy, "overall": correct / max(total, 1), "worst_group": worst,
            "worst_group_accuracy": accuracy[worst]["accuracy"], "gap": max(values) - min(values)}


def rarity_report(task: DebiasingTask, split: FaceSplit, out: Path, grid_size: int) -> dict:
    """How the trained DB-VAE would sample the training faces: each group's share, and grids of rarest/commonest."""
    weights = task.current_weights()  # [N_faces]
    order = weights.argsort(descending=True)
    save_grid(out / "rarest_faces.png", to_float(task.faces.pixels[order[:grid_size]]), 8)
    save_grid(out / "commonest_faces.png", to_float(task.faces.pixels[order.flip(0)[:grid_size]]), 8)
    shares, start = {}, 0
    for name, group in split.train_faces.items():
        span = slice(start, start + len(group))
        shares[name] = {"uniform": len(group) / len(weights), "debiased": float(weights[span].sum())}
        start += len(group)
    return {"sampling_share": shares, "grids": ["rarest_faces.png", "commonest_faces.png"]}


def markdown_report(report: dict) -> str:
    """The comparison as a Markdown table (one row per model, a column per group)."""
    groups = list(next(iter(report["results"].values()))["groups"])
    counts = report["images"]["test"]
    header = "| model | " + " | ".join(f"{g} (n={counts[g]})" for g in groups) + " | worst group | gap | overall |"
    lines = ["# Debiasing VAE vs plain classifier", "", "Held-out accuracy per group (faces should be called "
             "faces, non-faces not).", "", header, "|" + "---|" * (len(groups) + 4)]
    for name, r in report["results"].items():
        cells = " | ".join(f"{r['groups'][g]['accuracy']:.3f}" for g in groups)
        lines.append(f"| {name} | {cells} | {r['worst_group_accuracy']:.3f} ({r['worst_group']}) | "
                     f"{r['gap']:.3f} | {r['overall']:.3f} |")
    lines += ["", "Training images: " + ", ".join(f"{k} {v}" for k, v in report["images"]["train"].items()) + ".", ""]
    if "resampling" in report:
        lines += ["Share of sampled training faces per group (uniform -> DB-VAE's adaptive resampling at the end):", ""]
        for name, share in report["resampling"]["sampling_share"].items():
            lines.append(f"- {name}: {share['uniform']:.1%} -> {share['debiased']:.1%}")
        lines += ["", "Grids: rarest_faces.png, commonest_faces.png (training faces by the DB-VAE's sampling weight).",
                  ""]
    if "external_groups" in report:
        lines += external_groups_markdown(report["external_groups"])
    return "\n".join(lines)


def external_groups_markdown(external: dict) -> list[str]:
    """Detection rate per group of the faces in ``external["folder"]``, one row per model."""
    results = external["results"]
    groups = list(next(iter(results.values()))["groups"])
    lines = [f"Faces called faces per group of {external['folder']}:", "",
             "| model | " + " | ".join(f"{g} (n={results[next(iter(results))]['groups'][g]['images']})"
                                      for g in groups) + " | worst group |", "|" + "---|" * (len(groups) + 2)]
    for name, r in results.items():
        cells = " | ".join("-" if r["groups"][g]["rate"] is None else f"{r['groups'][g]['rate']:.0%}" for g in groups)
        lines.append(f"| {name} | {cells} | {r['worst_rate']:.0%} ({r['worst_group']}) |")
    return lines + [""]


def _write_json(path: Path, value: dict) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
