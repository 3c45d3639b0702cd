"""Data-parallel CycleGAN training: PyTorch's DistributedDataParallel (what the loop uses) against hand-written
gradient averaging (what it used before).

Two processes (gloo on the CPU, or NCCL with ``--device cuda``) train the
recipe's CycleGAN from the same broadcast weights on per-rank random batches of
the recipe's crop shape, once with each way of synchronizing gradients:

* ``allreduce``: the loop before session 6, one all-reduce of the flattened
  gradients after each backward pass (:func:`average_gradients` below);
* ``ddp``: the loop now, each trained network wrapped in
  ``DistributedDataParallel`` for the step (``voiceconv.train.distributed.DataParallel``),
  which all-reduces gradient buckets while the backward pass still runs.

It reports the median seconds per step after warm-up of each (the runs
alternate, ``--rounds`` times each), their ratio, and whether the two give the
same training: the last step's losses and the weights' sum on rank 0, and the
largest weight difference between the two ranks.

    .venv/bin/python benchmarks/ddp_speed.py [recipes/vcc2016_sf1_tm1.yaml] [--steps 12] [--rounds 2]

Run it alone: another torch process on the same cores distorts every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

REPO = Path(__file__).resolve().parents[1]
WARMUP_STEPS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def average_gradients(parameters: list) -> None:
    """All-reduce and average the gradients of ``parameters`` across processes in one flat buffer."""
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(synced)


def optimize_with_allreduce(model, loss, optimizer, parameters) -> None:
    """``TrainableModel.optimize`` with the gradients averaged between backward and step."""
    parameters = list(parameters)
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=parameters)
    average_gradients(parameters)
    optimizer.step()


def train(rank: int, mode: str, recipe_path: str, steps: int, device: str, port: int, results) -> None:
    """One rank: ``steps`` CycleGAN steps with ``mode`` gradient synchronization; rank 0 reports."""
    from voiceconv.models.cyclegan import CycleGAN
    from voiceconv.train import distributed
    from voiceconv.train.voice import load_recipe

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    where = torch.device("cuda", rank) if device == "cuda" else torch.device("cpu")
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=rank, world_size=2)
    recipe = load_recipe(recipe_path)
    model = CycleGAN(1, recipe.features.n_mels, recipe.model, seed=0).to(where)
    distributed.broadcast_parameters(model)
    if mode == "allreduce":
        model.optimize = types.MethodType(optimize_with_allreduce, model)
        data_parallel = None
    else:
        data_parallel = distributed.DataParallel(model, distributed.Topology(rank, 2, where))
    generator = torch.Generator().manual_seed(rank)
    shape = (recipe.train.batch_size, 1, recipe.features.n_mels, recipe.data.crop_frames)
    seconds, losses = [], {}
    for _ in range(steps):
        batch = {key: torch.randn(shape, generator=generator).to(where) for key in ("A", "B", "A2B", "B2A")}
        started = time.perf_counter()
        with data_parallel.step() if data_parallel else contextlib.nullcontext():
            losses = model.train_step(batch)
        if device == "cuda":
            torch.cuda.synchronize(where)
        seconds.append(time.perf_counter() - started)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    both = [torch.zeros_like(weights) for _ in range(2)]
    dist.all_gather(both, weights)
    if rank == 0:
        results.put({"mode": mode, "seconds": statistics.median(seconds[WARMUP_STEPS:]), "losses": losses,
                     "weight_sum": float(weights.double().sum()),
                     "rank_difference": float((both[0] - both[1]).abs().max())})
    dist.barrier()  # neither rank tears gloo down while the other still talks to it
    dist.destroy_process_group()


def run(mode: str, args) -> dict:
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    mp.spawn(train, args=(mode, str(args.recipe), args.steps, args.device, free_port(), results), nprocs=2)
    return results.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", type=Path, nargs="?", default=REPO / "recipes" / "vcc2016_sf1_tm1.yaml")
    parser.add_argument("--steps", type=int, default=12, help="steps per run, the first 2 of them warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    runs = [run(mode, args) for _ in range(args.rounds) for mode in ("allreduce", "ddp")]
    median = {mode: statistics.median(r["seconds"] for r in runs if r["mode"] == mode) for mode in ("allreduce", "ddp")}
    print(f"torch {torch.__version__}, 2 processes on {args.device}, {args.recipe.name}, {args.steps} steps x "
          f"{args.rounds} rounds\n")
    print("| gradient sync | s per step (median of runs) | vs allreduce |\n|---|---|---|")
    for mode in ("allreduce", "ddp"):
        print(f"| {mode} | {median[mode]:.3f} | {median[mode] / median['allreduce']:.2f}x |")
    first = {mode: next(r for r in runs if r["mode"] == mode) for mode in ("allreduce", "ddp")}
    same = (first["allreduce"]["losses"] == first["ddp"]["losses"]
            and first["allreduce"]["weight_sum"] == first["ddp"]["weight_sum"])
    print(f"\nsame training (last losses and weight sum identical): {same}; largest weight difference between "
          f"the ranks: allreduce {first['allreduce']['rank_difference']:.2g}, ddp {first['ddp']['rank_difference']:.2g}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
