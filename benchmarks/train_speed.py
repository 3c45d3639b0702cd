"""Training throughput of a recipe's CycleGAN against the paper-sized MaskCycleGAN-VC, in the same run.

For each configuration it times ``CycleGAN.train_step`` on random batches of
the recipe's crop shape (after warm-up steps) and reports seconds per
iteration, training segments per second, the speed-up in segments/s over the
paper-sized model (two ~25M-parameter 2-1-2D generators, batch 1, 80x64 crops,
filling in frames), and the process's peak resident memory. On a GPU it also
compares fp32 with bf16 autocast and channels_last on/off, and times the
paper-sized model there too (GPU rows time at least 30 steps).

    .venv/bin/python benchmarks/train_speed.py recipes/kathleen_rms.yaml [OTHER_RECIPE ...] [--steps 5] [--json out.json]

Several recipes are timed in the same run (e.g. today's against an earlier one, `git show REV:recipes/...`), each
on batches with the keys its training draws: the pitch-aligned inputs and, with a pull, their pseudo-targets.

Run it alone: another torch process on the same cores distorts every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import resource
import time
from pathlib import Path

import torch

from voiceconv.config import load_yaml
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig
from voiceconv.nn import count_parameters
from voiceconv.train.voice import VoiceRecipe

PAPER = CycleGANConfig(generator_channels=96, residual_channels=256, residual_blocks=6, discriminator_channels=128,
                       discriminator_layers=3, mask_frames=True)


def batch_keys(recipe: VoiceRecipe | None) -> tuple[str, ...]:
    """The batch entries the recipe's training draws (the paper-sized model: just the two speakers)."""
    keys = ("A", "B")
    if recipe is not None and recipe.data.align != "none":
        keys += ("A2B", "B2A")
        if recipe.model.pull_weight > 0:
            keys += ("A2B_target", "B2A_target")
    return keys


def seconds_per_step(config: CycleGANConfig, height: int, width: int, batch: int, steps: int,
                     device: str = "cpu", bf16: bool = False, channels_last: bool = False,
                     keys: tuple[str, ...] = ("A", "B")) -> float:
    """Mean wall time of ``train_step`` over ``steps`` steps, after warm-up steps."""
    model = CycleGAN(1, height, config).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    data = {k: torch.randn(batch, 1, height, width, device=device).contiguous(memory_format=memory_format)
            for k in keys}
    autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with autocast:
        for _ in range(3 if device == "cuda" else 1):  # warm-up (cuDNN picks its algorithms on the GPU)
            model.train_step(data)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_step(data)
        _sync(device)
    return (time.perf_counter() - start) / steps


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows(recipes: dict[str, VoiceRecipe], steps: int) -> list[dict]:
    """One row per configuration; the paper-sized model first (the baseline)."""
    setups = [("paper-sized MaskCycleGAN-VC", PAPER, 80, 64, 1, "cpu", False, False, batch_keys(None))]
    for name, recipe in recipes.items():
        height, width, batch = recipe.features.n_mels, recipe.data.crop_frames, recipe.train.batch_size
        setups.append((name, recipe.model, height, width, batch, "cpu", False, False, batch_keys(recipe)))
    if torch.cuda.is_available():
        setups.append(("paper-sized MaskCycleGAN-VC, GPU, fp32", PAPER, 80, 64, 1, "cuda", False, False, ("A", "B")))
        for name, recipe in recipes.items():
            height, width, batch = recipe.features.n_mels, recipe.data.crop_frames, recipe.train.batch_size
            for bf16, cl in ((False, False), (True, False), (True, True)):
                setups.append((f"{name}, GPU, {'bf16' if bf16 else 'fp32'}, channels_last {cl}", recipe.model,
                               height, width, batch, "cuda", bf16, cl, batch_keys(recipe)))
    results = []
    for label, config, h, w, b, device, bf16, cl, keys in setups:
        timed = max(steps, 30) if device == "cuda" else steps if label in recipes else max(2, steps // 3)
        seconds = seconds_per_step(config, h, w, b, timed, device, bf16, cl, keys)
        generator_params = count_parameters(CycleGAN(1, h, config).G_AB)
        results.append({"configuration": label, "generator_params_M": generator_params / 1e6, "crop": f"{h}x{w}",
                        "batch": b, "seconds_per_step": seconds, "segments_per_second": b / seconds,
                        "peak_rss_MiB": peak_rss_mib()})
    for row in results:
        row["speedup_vs_paper"] = row["segments_per_second"] / results[0]["segments_per_second"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", type=Path, nargs="+")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipes = {str(path): load_yaml(VoiceRecipe, path) for path in args.recipes}
    results = rows(recipes, args.steps)
    print(f"torch {torch.__version__}, {args.threads} CPU threads; peak RSS is cumulative over the rows above it\n")
    print("| configuration | G params | crop | batch | s/step | steps/s | segments/s | vs paper | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['configuration']} | {r['generator_params_M']:.2f}M | {r['crop']} | {r['batch']} | "
              f"{r['seconds_per_step']:.3f} | {1 / r['seconds_per_step']:.1f} | {r['segments_per_second']:.2f} | "
              f"{r['speedup_vs_paper']:.1f}x | {r['peak_rss_MiB']:.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"recipes": {name: dataclasses.asdict(recipe) for name, recipe in recipes.items()},
                                         "rows": results}, indent=2))


if __name__ == "__main__":
    main()
