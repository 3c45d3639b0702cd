"""What the kNN pseudo-targets would score if a generator reproduced them exactly: held-back selection scores.

A voice recipe's training pulls each converted envelope toward kNN pseudo-targets
(:mod:`voiceconv.data.pseudo_targets`). This probe skips the network: its
"generator" returns each input's own pseudo-target, smoothed into the
recipe's ``model.output_bands`` bands as an envelope generator's output is,
and the training run's held-back validation (the same scores that select
the shipped step) judges it beside the identity start. Several pull settings
are compared in one run::

    .venv/bin/python benchmarks/pseudo_target_probe.py recipes/vcc2016_sf1_tm1.yaml \\
        --speaker-a ../shared/data/vcc2016/train/SF1 --speaker-b ../shared/data/vcc2016/train/TM1 \\
        --cache runs/probe/cache --blends 0.25 0.5 1.0

Reuses the feature cache of a run when ``--cache`` points at it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from voiceconv.data.pseudo_targets import knn_pseudo_targets
from voiceconv.nn.generators import smooth_along_frequency
from voiceconv.train.selection import VoiceValidator
from voiceconv.train.voice import load_recipe, load_voice_data, speaker_name


def pseudo_target_generator(targets: list[torch.Tensor], config, bands: int):
    """A stand-in generator ``[1, 1, H, W] -> [1, 1, H, W]``: the input plus the band-smooth part of its
    pseudo-target's difference."""

    def generate(normalized: torch.Tensor) -> torch.Tensor:
        image = normalized[0, 0]  # [H, W]
        target = knn_pseudo_targets([image], targets, config)[0]
        return normalized + smooth_along_frequency((target - image)[None, None], bands)

    return generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--speaker-a", type=Path, required=True)
    parser.add_argument("--speaker-b", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("runs/pseudo_target_probe/cache"))
    parser.add_argument("--blends", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--k", type=int, nargs="+", default=[8])
    parser.add_argument("--context", type=int, nargs="+", default=[2])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    recipe = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, pull_weight=0.0))
    folders = (args.speaker_a, args.speaker_b)
    data = load_voice_data(recipe, folders, args.cache, tuple(speaker_name(f) for f in folders))
    validator = VoiceValidator(recipe.features, data.held_back, data.alignment,
                               {d: c.stats for d, c in data.inputs.items()},
                               {s: c.stats for s, c in data.speakers.items()}, data.training_files)
    rows = [{"system": "identity (step 0)", **validator({"a2b": lambda x: x, "b2a": lambda x: x})}]
    print(json.dumps(rows[-1]), flush=True)
    for blend in args.blends:
        for k in args.k:
            for context in args.context:
                config = dataclasses.replace(recipe.data.pull, blend=blend, k=k, context=context)
                generators = {d: pseudo_target_generator(data.speakers[d[-1]].images, config, recipe.model.output_bands)
                              for d in ("a2b", "b2a")}
                rows.append({"system": f"pseudo-target blend {blend} k {k} context {context}",
                             **validator(generators)})
                print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
