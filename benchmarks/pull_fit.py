"""How much of its kNN teacher's move a voice model has learned: the pull loss on training crops.

The pull (``model.pull_weight``) regresses each converted envelope toward a kNN pseudo-target
(``voiceconv.losses.pseudo_target_loss``). This script measures that loss, both directions summed, for the
exported models of a run and for the run's untrained start (the identity generators: the formula stage alone),
on the same ``--batches`` random batches of training crops drawn with a fixed seed, at the recipe's own
``output_bands`` and at ``--bands`` more. The share of the teacher's move learned is ``1 - loss / loss at the
start``; a model that stays well short of it under-fits its teacher (session 16: 16 bands could not carry it).

It reads the run's recipe (``RUN/recipe.yaml``), its fitted alignment and its feature cache (``RUN/cache``), so
on a finished run nothing is analysed again::

    .venv/bin/python benchmarks/pull_fit.py runs/k_o48_long \\
        --model step2500=runs/k_o48_long/exports/model_step2500.safetensors \\
        --model shipped=samples/models/kathleen_rms.safetensors [--batches 50] [--bands 16]

Loss figures are in the normalized image's units squared (what training logs as ``pull_AB + pull_BA``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voiceconv.losses import pseudo_target_loss  # noqa: E402
from voiceconv.modelfiles.voice import VoiceModel, generator_weights  # noqa: E402
from voiceconv.modelfiles.layout import GENERATOR_PREFIXES  # noqa: E402
from voiceconv.train.voice import VoiceConversionTask, VoiceRecipe, load_voice_data, speaker_folders  # noqa: E402
from voiceconv.train.recipes import load_recipe_as  # noqa: E402

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a voice training run folder (recipe.yaml, alignment.json, cache/)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="an exported model of this run's speakers (repeatable); the untrained start is always "
                             "measured")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--bands", type=int, nargs="*", default=[16],
                        help="band counts to measure besides the recipe's output_bands")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args(argv)


def load_task(run: Path) -> VoiceConversionTask:
    """The run's task: its recipe, speakers, alignment and pseudo-targets, read from its cache."""
    recipe = load_recipe_as(VoiceRecipe, run / "recipe.yaml")
    folders, names = speaker_folders(recipe.data)
    data = load_voice_data(recipe, folders, run / "cache", names, alignment_file=run / "alignment.json")
    return VoiceConversionTask(recipe, data)


def load_generators(task: VoiceConversionTask, path: Path) -> None:
    """Put the generators of the model file at ``path`` into ``task``'s CycleGAN (both directions)."""
    model = VoiceModel.from_file(path)
    run_speakers = {side: corpus.name for side, corpus in task.speakers.items()}
    if model.speakers != run_speakers:
        raise SystemExit(f"{path}: converts between {model.speakers}, not this run's speakers {run_speakers}")
    for direction, name in GENERATOR_PREFIXES.items():
        task.model.inference_generator(name).load_state_dict(generator_weights(model.tensors, direction))


@torch.no_grad()
def pull_losses(task: VoiceConversionTask, batches: list[dict[str, torch.Tensor]],
                bands: list[int]) -> dict[int, float]:
    """Mean over ``batches`` of pull_AB + pull_BA at each band count."""
    totals = dict.fromkeys(bands, 0.0)
    for batch in batches:
        converted = {"A2B": task.model.a_to_b(batch["A2B"]), "B2A": task.model.b_to_a(batch["B2A"])}  # [B,1,H,W]
        for count in bands:
            totals[count] += sum(pseudo_target_loss(converted[key], batch[f"{key}_target"], count).item()
                                 for key in converted)
    return {count: total / len(batches) for count, total in totals.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    task = load_task(args.run)
    if task.data.inputs["a2b"].targets is None:
        raise SystemExit(f"{args.run}: the recipe has no pull (model.pull_weight is 0): nothing to measure")
    generator = torch.Generator().manual_seed(args.seed)
    batches = [task.batch(args.batch_size, generator) for _ in range(args.batches)]
    bands = sorted({task.recipe.model.output_bands, *args.bands})
    task.model.eval()
    rows = [("untrained start", pull_losses(task, batches, bands))]
    for spec in args.model:
        name, _, path = spec.partition("=")
        load_generators(task, Path(path or name))
        rows.append((name, pull_losses(task, batches, bands)))
    start = rows[0][1]
    print(f"pull loss (both directions) on {args.batches} batches of {args.batch_size} training crops, {args.run}")
    print("| model | " + " | ".join(f"{b} bands (learned)" for b in bands) + " |")
    print("|---|" + "---|" * len(bands))
    for name, losses in rows:
        cells = [f"{losses[b]:.4f} ({1 - losses[b] / start[b]:.0%})" for b in bands]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
