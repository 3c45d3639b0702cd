#!/usr/bin/env python3
"""Train the phone model (voiceconv.audio.phones) on the corpus of recipes/phones/prepare.py.

Every file is analysed by WORLD at the product's settings; each utterance is seen as spoken and at ``--warps``
random frequency warps (0.8-1.25, vocal tracts shorter and longer). ``--hold-out VOICE`` keeps one voice out of
training and reports the frame accuracy on it: how well the model knows a speaker it never heard.

Usage::

    .venv/bin/python recipes/phones/train.py --data runs/data/phones --out runs/phones [--hold-out slt]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from voiceconv.audio import phones, world

SAMPLE_RATE = 16000
WARP_RANGE = (0.8, 1.25)


def analyse(path: Path, warps: int, seed: int) -> list[tuple[torch.Tensor, list[str]]]:
    """``warps + 1`` copies (as spoken, then warped) of a file's frame columns ``[T, D]`` with their phones."""
    wav, rate = sf.read(path, dtype="float32")
    settings = world.DEFAULT_SETTINGS
    frames = world.analyse(wav, rate, settings)
    labels = phones.Segmentation.read(path.with_suffix(".phones").read_text()).frame_labels(
        len(frames.f0), settings.frame_period_ms / 1000.0)
    rng = random.Random(seed)
    factors = [1.0] + [float(np.exp(rng.uniform(*np.log(WARP_RANGE)))) for _ in range(warps)]
    return [(phones.frame_columns(world.warp_envelope(frames.envelope, f), frames.f0), labels) for f in factors]


def load(files: list[Path], warps: int, jobs: int) -> list[tuple[torch.Tensor, list[str]]]:
    with ProcessPoolExecutor(jobs) as pool:
        return [copy for copies in pool.map(analyse, files, [warps] * len(files), range(len(files)), chunksize=8)
                for copy in copies]


def stacked(utterances, phone_index, pad: int):
    """All utterances' columns, each padded by CONTEXT repeated edge frames, with the centre frames' positions and
    labels: ``[N_padded, D]``, ``[N]``, ``[N]``."""
    columns, centres, labels, at = [], [], [], 0
    for cols, names in utterances:
        columns.append(torch.cat([cols[:1].expand(pad, -1), cols, cols[-1:].expand(pad, -1)]))
        centres.append(torch.arange(len(cols)) + at + pad)
        labels.append(torch.tensor([phone_index[n] for n in names]))
        at += len(cols) + 2 * pad
    return torch.cat(columns), torch.cat(centres), torch.cat(labels)


def gather(columns: torch.Tensor, centres: torch.Tensor, context: int) -> torch.Tensor:
    """The model's inputs ``[B, (2 context + 1) D]`` for frames at ``centres`` ``[B]`` of padded ``columns``."""
    offsets = torch.arange(-context, context + 1)
    return columns[centres[:, None] + offsets].reshape(len(centres), -1)  # [B, (2K + 1) D], frame-major


@torch.no_grad()
def accuracy(model, columns, centres, labels) -> float:
    model.eval()
    right = sum(int((model(gather(columns, c, model.context)).argmax(1) == l).sum())
                for c, l in zip(centres.split(8192), labels.split(8192)))
    model.train()
    return right / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("runs/data/phones"))
    parser.add_argument("--out", type=Path, default=Path("runs/phones"))
    parser.add_argument("--hold-out", default=None)
    parser.add_argument("--warps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--context", type=int, default=phones.CONTEXT)
    parser.add_argument("--hidden", type=int, default=phones.HIDDEN)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    voices = sorted(p.name for p in args.data.iterdir() if p.is_dir())
    files = {v: sorted((args.data / v).glob("*.flac")) for v in voices}
    start = time.time()
    train_files = [f for v in voices if v != args.hold_out for f in files[v]]
    train = load(train_files, args.warps, args.jobs)
    held = load(files[args.hold_out], 0, args.jobs) if args.hold_out else []
    print(f"analysed in {time.time() - start:.0f} s", flush=True)
    phone_set = tuple(sorted({n for _, names in train + held for n in names}))
    index = {n: i for i, n in enumerate(phone_set)}
    columns, centres, labels = stacked(train, index, args.context)
    model = phones.PhoneModel(phone_set, args.context, args.hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = args.epochs * (len(centres) // 512)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    log = []
    for epoch in range(args.epochs):
        order = torch.randperm(len(centres))
        for batch in order[:len(order) // 512 * 512].split(512):
            loss = loss_fn(model(gather(columns, centres[batch], model.context)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        row = {"epoch": epoch + 1, "loss": float(loss.detach()), "seconds": round(time.time() - start)}
        if held:
            row["held_out_accuracy"] = accuracy(model, *stacked(held, index, args.context))
        log.append(row)
        print(json.dumps(row), flush=True)
    phones.save_phone_model(model, args.out / "phones.safetensors")
    (args.out / "log.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
