"""Data parallelism under ``torchrun``: gloo on CPU, NCCL on GPU; rank 0 alone writes files.

Gradients are averaged with one all-reduce per flattened group after each
backward pass. ``benchmarks/ddp_speed.py`` measured DistributedDataParallel,
each network wrapped, at 0.97x this one's step time with identical training
(2 gloo processes); moving the loop to it must keep DDP's ``module.`` prefix
out of checkpoint and model-file tensor names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from voiceconv import runtime


@dataclass(frozen=True)
class Topology:
    """Where this process sits: its rank, the world size and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_topology(device: str = "auto") -> Topology:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else a single process.

    Rank, world size and device come from :mod:`voiceconv.runtime` (``device`` is ``auto``, ``cpu``, ``cuda`` or
    ``cuda:N``); a bad torchrun variable or a device this process cannot use raises its
    :class:`~voiceconv.runtime.LaunchError`.
    """
    launch = runtime.launch_environment()
    chosen = runtime.resolve_device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if launch.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return Topology(rank=launch.rank, world_size=launch.world_size, device=chosen)


def average_gradients(parameters: list[nn.Parameter]) -> None:
    """All-reduce and average the gradients of ``parameters`` across processes (one flat buffer)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(synced)


def broadcast_parameters(module: nn.Module) -> None:
    """Make every process start from rank 0's weights and buffers."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def barrier(topology: Topology) -> None:
    if topology.distributed:
        dist.barrier()


def shutdown(topology: Topology) -> None:
    if topology.distributed and dist.is_initialized():
        dist.destroy_process_group()
