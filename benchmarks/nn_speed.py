"""CPU speed of CycleGAN-VC2-style networks: Generator212 sizes x PatchDiscriminator.

One "iteration" is a proxy of a CycleGAN-VC training step (Kaneko et al. 2019)
without the optimizer update: with two generators ``G_AB``, ``G_BA`` and two
discriminators ``D_A``, ``D_B`` on a batch of ``[1, n_mels, frames]`` crops,

* generator step: ``G_AB(A)``, ``G_BA(G_AB(A))``, ``G_BA(B)``, ``G_AB(G_BA(B))``,
  identity ``G_BA(A)``, ``G_AB(B)``, adversarial ``D_B(fake_B)``, ``D_A(fake_A)``;
  LSGAN + L1 losses, backward;
* discriminator step: ``D_A`` and ``D_B`` on real and detached fake images, backward.

Reported: parameters of one generator and one discriminator (M), wall-clock
seconds per iteration (fastest of ``--repeats`` timed iterations,
``time.perf_counter``, after a batch-1 warm-up pass), segments per second
(both domains: ``2 * batch`` per iteration) and the speed-up in segments/s
against the first (largest) configuration. torch runs with 2 threads; other
processes competing for the CPU inflate wall-clock timings (by several times
on a busy machine), so the 1-minute load average is printed with the table,
and the floating-point operations of one iteration (forward and backward,
counted by ``torch.utils.flop_counter`` on the meta device, so free of noise)
are given with the speed-up they predict.

OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE`` unless set
otherwise): with the default spinning wait, 2 threads competing with another
busy process for 2 cores ran a small configuration 20x slower.

Run from the repository root::

    .venv/bin/python benchmarks/nn_speed.py
    .venv/bin/python benchmarks/nn_speed.py --repeats 3 --json benchmarks/results/nn_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads the OpenMP runtime

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from voiceconv.nn import Generator212, PatchDiscriminator, count_parameters  # noqa: E402

THREADS = 2


@dataclass(frozen=True)
class Setup:
    """One row of the table: generator widths, discriminator width and batch size."""

    base_channels: int
    residual_channels: int
    n_residual: int
    discriminator_channels: int
    batch: int

    @property
    def label(self) -> str:
        return (f"G({self.base_channels}, {self.residual_channels}, {self.n_residual}) "
                f"+ D({self.discriminator_channels}), batch {self.batch}")


SETUPS = (  # the first is the baseline of the speed-up column
    Setup(128, 256, 6, 64, 8),  # CycleGAN-VC2 paper widths
    Setup(128, 256, 6, 64, 1),
    Setup(64, 128, 6, 64, 8),
    Setup(64, 128, 6, 32, 8),
    Setup(48, 96, 3, 32, 8),
    Setup(32, 64, 4, 32, 8),
)


@dataclass
class Result:
    setup: Setup
    generator_params: int
    discriminator_params: int
    seconds: float  # wall clock per iteration, fastest of the repeats
    flops: int  # floating-point operations of one iteration

    @property
    def segments_per_second(self) -> float:
        return 2 * self.setup.batch / self.seconds

    @property
    def flops_per_segment(self) -> float:
        return self.flops / (2 * self.setup.batch)


def iteration(G_AB, G_BA, D_A, D_B, real_A: torch.Tensor, real_B: torch.Tensor) -> None:
    """Forward and backward passes of one CycleGAN generator step and one discriminator step."""
    for net in (G_AB, G_BA, D_A, D_B):
        net.zero_grad(set_to_none=True)
    fake_B, fake_A = G_AB(real_A), G_BA(real_B)  # [B, 1, H, W]
    rec_A, rec_B = G_BA(fake_B), G_AB(fake_A)
    generator_loss = ((D_B(fake_B) - 1).square().mean() + (D_A(fake_A) - 1).square().mean()
                      + 10 * (F.l1_loss(rec_A, real_A) + F.l1_loss(rec_B, real_B))
                      + 5 * (F.l1_loss(G_BA(real_A), real_A) + F.l1_loss(G_AB(real_B), real_B)))
    generator_loss.backward()
    discriminator_loss = sum((D(real) - 1).square().mean() + D(fake.detach()).square().mean()
                             for D, real, fake in ((D_A, real_A, fake_A), (D_B, real_B, fake_B)))
    discriminator_loss.backward()


def networks(setup: Setup, n_mels: int, frames: int) -> tuple:
    """``G_AB, G_BA, D_A, D_B, real_A, real_B`` on the current default device."""
    G_AB, G_BA = (Generator212(1, 1, n_mels, setup.base_channels, setup.residual_channels, setup.n_residual)
                  for _ in range(2))
    D_A, D_B = (PatchDiscriminator(1, setup.discriminator_channels) for _ in range(2))
    real_A, real_B = (torch.rand(setup.batch, 1, n_mels, frames) * 2 - 1 for _ in range(2))  # [B, 1, H, W]
    return G_AB, G_BA, D_A, D_B, real_A, real_B


def count_flops(setup: Setup, n_mels: int, frames: int) -> int:
    """Floating-point operations of one iteration, counted on shape-only meta tensors."""
    with torch.device("meta"):
        nets = networks(setup, n_mels, frames)
    with FlopCounterMode(display=False) as counter:
        iteration(*nets)
    return counter.get_total_flops()


def measure(setup: Setup, n_mels: int, frames: int, repeats: int) -> Result:
    """Time ``repeats`` iterations of ``setup`` on random crops; keep the fastest."""
    torch.manual_seed(0)
    G_AB, G_BA, D_A, D_B, real_A, real_B = networks(setup, n_mels, frames)
    with torch.no_grad():  # warm-up: allocator and kernel selection
        D_A(G_AB(real_A[:1]))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        iteration(G_AB, G_BA, D_A, D_B, real_A, real_B)
        times.append(time.perf_counter() - start)
    return Result(setup, count_parameters(G_AB), count_parameters(D_A), min(times),
                  count_flops(setup, n_mels, frames))


def table(results: list[Result]) -> str:
    """A markdown table, speed-ups (measured and predicted by FLOPs) relative to the first row."""
    base = results[0]
    lines = ["| configuration | G params (M) | D params (M) | GFLOP / iteration | s / iteration | segments / s "
             "| speed-up | FLOP speed-up |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.setup.label} | {r.generator_params / 1e6:.2f} | {r.discriminator_params / 1e6:.2f} "
                     f"| {r.flops / 1e9:.0f} | {r.seconds:.3g} | {r.segments_per_second:.3g} "
                     f"| {r.segments_per_second / base.segments_per_second:.1f}x "
                     f"| {base.flops_per_segment / r.flops_per_segment:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-mels", type=int, default=80)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="timed iterations per configuration (fastest kept)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    torch.set_num_threads(THREADS)
    results = []
    for setup in SETUPS:
        results.append(measure(setup, args.n_mels, args.frames, args.repeats))
        print(f"{setup.label}: {results[-1].seconds:.2f} s / iteration, load {os.getloadavg()[0]:.2f}", flush=True)
    load = os.getloadavg()[0]
    print(f"\nCPU, torch {torch.__version__}, {THREADS} threads, {args.n_mels} x {args.frames} crops, "
          f"{platform.processor() or platform.machine()}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          f"1-min load average {load:.2f}\n")
    print(table(results))
    if args.json:
        rows = [{**asdict(r.setup), "generator_params": r.generator_params, "discriminator_params": r.discriminator_params,
                 "seconds_per_iteration": r.seconds, "flops_per_iteration": r.flops,
                 "segments_per_second": r.segments_per_second} for r in results]
        with open(args.json, "w") as f:
            json.dump({"threads": THREADS, "n_mels": args.n_mels, "frames": args.frames, "repeats": args.repeats,
                       "load_average": load, "omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "torch": torch.__version__, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
