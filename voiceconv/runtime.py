"""Where this process runs: torchrun's launch environment, the device it uses and its share of the CPU cores.

Batch conversion (``voiceconv convert``) and training (:mod:`voiceconv.train.distributed`) both read
RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE through :func:`launch_environment` and turn a ``--device``
setting into a :class:`torch.device` through :func:`resolve_device`; a bad value of either is a
:class:`LaunchError` with a one-line message. torch is imported only when a device is resolved, so that
checking the environment stays instant.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voiceconv.errors import VoiceconvError

if TYPE_CHECKING:
    import torch

#: The ``--device`` settings :func:`resolve_device` takes.
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA_DEVICE = re.compile(r"cuda(?::([0-9]+))?")


class LaunchError(VoiceconvError):
    """torchrun's environment variables or the device asked for cannot be used; the message says which and why."""


@dataclass(frozen=True)
class LaunchEnvironment:
    """This process's place among torchrun's processes; rank 0 of 1 outside torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # rank among the processes on this machine
    local_world_size: int = 1  # processes on this machine


def launch_environment() -> LaunchEnvironment:
    """torchrun's RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE, checked; each unset one takes its default.

    Raises :class:`LaunchError` when a value is not an integer, WORLD_SIZE or LOCAL_WORLD_SIZE is below 1,
    RANK is outside ``[0, WORLD_SIZE)``, or LOCAL_RANK is negative or (with LOCAL_WORLD_SIZE set) not below it.
    """
    world_size = _at_least_one("WORLD_SIZE")
    rank = _in_range("RANK", world_size, "WORLD_SIZE")
    local_world_size = _at_least_one("LOCAL_WORLD_SIZE")
    local_bound = local_world_size if "LOCAL_WORLD_SIZE" in os.environ else None
    local_rank = _in_range("LOCAL_RANK", local_bound, "LOCAL_WORLD_SIZE")
    return LaunchEnvironment(rank, world_size, local_rank, local_world_size)


def torchrun_rank() -> tuple[int, int]:
    """``(rank, world size)`` from torchrun's RANK and WORLD_SIZE; ``(0, 1)`` outside torchrun."""
    environment = launch_environment()
    return environment.rank, environment.world_size


def resolve_device(device: str = "auto") -> torch.device:
    """The device a ``--device`` setting names: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    ``auto`` is this process's GPU (``cuda:<LOCAL_RANK % GPUs>``) when one is visible, else the CPU; ``cuda``
    is this process's GPU and ``cuda:N`` GPU N, both requiring one. Raises :class:`LaunchError` for an unknown
    setting, for ``cuda`` without a visible GPU and for an index beyond the GPUs this process sees.
    """
    import torch

    if device == "cpu":
        return torch.device("cpu")
    if device == "auto":
        return _local_gpu() if torch.cuda.is_available() else torch.device("cpu")
    index = _cuda_index(device)
    if not torch.cuda.is_available():
        raise LaunchError(f"device {device!r}: no CUDA GPU is visible to this process; use cpu or auto")
    if index is None:
        return _local_gpu()
    count = torch.cuda.device_count()
    if index >= count:
        raise LaunchError(f"device {device!r}: this process sees {count} GPU(s), cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


def worker_threads(jobs: int) -> int:
    """Torch threads for each of ``jobs`` converting processes, sharing the cores with torchrun's other local ranks."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    local_processes = launch_environment().local_world_size
    return max(1, cpus // (jobs * local_processes))


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads in the calling thread while inside (None: as it is), then give that
    thread its previous count back. Small models and short windows run faster on one: two threads that sleep
    between operations (as ``OMP_WAIT_POLICY=PASSIVE`` makes them) spend longer waking each other than computing.

    With torch's OpenMP backend the count set in a worker thread is that thread's own, so live streams pushed
    from a server's worker threads at once never change each other's count; set from the main thread, it is
    also what threads that never set their own see."""
    import torch

    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _local_gpu() -> torch.device:
    """This process's GPU: LOCAL_RANK's, wrapping around when there are more local processes than GPUs."""
    import torch

    return torch.device("cuda", launch_environment().local_rank % torch.cuda.device_count())


def _cuda_index(device: str) -> int | None:
    """N of ``cuda:N``, None for ``cuda``; a :class:`LaunchError` for anything else."""
    match = _CUDA_DEVICE.fullmatch(device)
    if match is None:
        raise LaunchError(f"device {device!r} is not one of {DEVICE_CHOICES}")
    return None if match[1] is None else int(match[1])


def _env_int(name: str, default: int) -> int:
    """The environment variable ``name`` as an integer; ``default`` when it is unset."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise LaunchError(f"{name}={text!r} must be an integer (torchrun sets it; unset it outside torchrun)") from None


def _at_least_one(name: str) -> int:
    value = _env_int(name, 1)
    if value < 1:
        raise LaunchError(f"{name}={value} must be at least 1")
    return value


def _in_range(name: str, bound: int | None, bound_name: str) -> int:
    """The rank variable ``name`` (default 0), checked to lie in ``[0, bound)``, or to be >= 0 when bound is None."""
    value = _env_int(name, 0)
    if bound is None and value < 0:
        raise LaunchError(f"{name}={value} must be at least 0")
    if bound is not None and not 0 <= value < bound:
        raise LaunchError(f"{name}={value} must be in [0, {bound_name}={bound})")
    return value
