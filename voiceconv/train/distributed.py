"""Data parallelism under ``torchrun``: gloo on CPU, NCCL on GPU; rank 0 alone writes files.

Gradients are averaged with one all-reduce per flattened group after each
backward pass. (GAN steps run each generator several times before one
backward, which DistributedDataParallel's hooks do not support without
static-graph assumptions; explicit averaging is exact and simple.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


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
    """Join the process group when launched by torchrun (RANK/WORLD_SIZE set), else a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Topology(rank=rank, world_size=world_size, device=chosen)


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
