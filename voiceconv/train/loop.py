"""The one training loop: any :class:`TrainableModel` through a :class:`TrainingTask`.

It owns everything around ``model.train_step``: device placement, bf16
autocast and channels_last on GPU, DistributedDataParallel under ``torchrun``,
per-step deterministic batches (exact resume on any world size), TensorBoard
logging and ``progress.jsonl`` (step, seconds, losses: what the web page's Train
tab plots), a time budget (``max_minutes``), periodic media (spectrograms, audio, faces), atomic checkpoints with
resume, Ctrl-C saving, and the final model export. Rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from voiceconv.errors import ConfigError
from voiceconv.interrupts import sigterm_as_interrupt
from voiceconv.models.base import TrainableModel
from voiceconv.train import distributed
from voiceconv.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from voiceconv.train.distributed import Topology
from voiceconv.runfolder import RunFolder, append_history, append_progress, read_history, read_progress
from voiceconv.train.selection import best_entry


@dataclass(frozen=True)
class TrainConfig:
    """Loop settings (the model's own hyper-parameters live in its config)."""

    steps: int = 20_000
    batch_size: int = 8
    log_every: int = 25
    media_every: int = 1_000
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    export_every: int = 0  # also write exports/model_step<N>.safetensors every N steps (0 = only at the end)
    validate_every: int = 0  # score held-back data every N steps and keep best.safetensors (0 = never)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (see voiceconv.runtime.resolve_device)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto = bf16 autocast on GPU, fp32 on CPU
    channels_last: bool = True  # used on GPU only
    threads: int = 0  # torch CPU threads per process; 0 = torch's default
    max_minutes: float = 0.0  # stop (and export, as at the last step) once training has run this long; 0 = no limit

    def __post_init__(self):
        at_least = {"steps": 0, "batch_size": 1, "log_every": 1, "media_every": 1, "checkpoint_every": 1,
                    "keep_checkpoints": 1, "export_every": 0, "validate_every": 0, "threads": 0, "max_minutes": 0}
        for name, lowest in at_least.items():
            if getattr(self, name) < lowest:
                raise ConfigError(f"train.{name}={getattr(self, name)} must be at least {lowest}")


class TrainingTask(Protocol):
    """What the loop needs from a model family: the model, batches, media and export."""

    model: TrainableModel

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """A training batch drawn with ``generator`` (on the CPU)."""

    def log_media(self, writer, step: int) -> None:
        """Write images/audio of fixed validation examples to TensorBoard."""

    def export(self, path: Path, info: dict) -> None:
        """Write the final model file."""

    # Optional: ``validate() -> dict | None``, scores on held-back data with a "score" to maximize
    # (see voiceconv.train.selection); the loop then keeps the best step as best.safetensors.


@dataclass
class TrainingOutcome:
    steps: int
    seconds: float
    interrupted: bool
    model_path: Path | None
    is_main: bool = True


def fit(task: TrainingTask, config: TrainConfig, run_dir: Path, resume: bool = False) -> TrainingOutcome:
    """Train ``task.model`` for ``config.steps`` steps in total (continuing from a checkpoint when ``resume``).

    On exit rank 0 writes ``outcome.json`` (see :class:`RunFolder`): finished, stopped (Ctrl-C or SIGTERM) or
    failed (an exception, raised on after it is written)."""
    folder = RunFolder(run_dir)
    folder.clear_outcome()
    try:
        outcome = _fit(task, config, run_dir, resume)
    except Exception as error:
        if distributed.is_main_process():
            folder.write_outcome("failed", _last_step(folder), [], f"{type(error).__name__}: {error}")
        raise
    if outcome.is_main:
        models = [p for p in (outcome.model_path, folder.best, *folder.snapshots()) if p and p.is_file()]
        folder.write_outcome("stopped" if outcome.interrupted else "finished", outcome.steps, models)
    return outcome


def _last_step(folder: RunFolder) -> int:
    """The last logged step, for the outcome of a failed run."""
    progress = read_progress(folder.root)
    return int(progress[-1]["step"]) if progress else 0


def _fit(task: TrainingTask, config: TrainConfig, run_dir: Path, resume: bool) -> TrainingOutcome:
    topology = distributed.init_topology(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = _place(task.model, topology, config)
    data_parallel = distributed.DataParallel(model, topology) if topology.distributed else None
    checkpoints = run_dir / "checkpoints"
    step, seconds = _resume(model, checkpoints) if resume else (0, 0.0)
    writer = _writer(run_dir, topology)
    autocast = _autocast(topology, config)
    interrupted, started = False, time.monotonic()
    progress = _progress(step, config.steps, topology)
    losses: dict[str, float] = {}

    def elapsed() -> float:
        """Training seconds so far, across resumes."""
        return seconds + time.monotonic() - started

    def state() -> dict:
        return {"step": step, "seconds": elapsed(), "model": model.state_dict(),
                "training": model.training_state()}

    with sigterm_as_interrupt():
        try:
            if config.validate_every and step == 0 and topology.is_main:  # the untrained model is a candidate too
                _select(task, writer, run_dir, _export_info(0, 0.0, topology))
            while step < config.steps and not _time_is_up(config, elapsed(), topology):
                batch = task.batch(config.batch_size, _step_generator(config.seed, topology.rank, step))
                batch = {k: _to_device(v, topology, config) for k, v in batch.items()}
                with autocast, data_parallel.step() if data_parallel else contextlib.nullcontext():
                    losses = model.train_step(batch)
                step += 1
                progress.update(1)
                if topology.is_main and step % config.log_every == 0:
                    _log_losses(writer, losses, step, progress)
                    append_progress(run_dir, step, elapsed(), losses)
                if topology.is_main and step % config.media_every == 0:
                    task.log_media(writer, step)
                if step % config.checkpoint_every == 0 and topology.is_main:
                    save_checkpoint(checkpoints, step, state(), config.keep_checkpoints)
                if config.export_every and step % config.export_every == 0 and topology.is_main:
                    task.export(run_dir / "exports" / f"model_step{step:07d}.safetensors",
                                _export_info(step, elapsed(), topology))
                if config.validate_every and step % config.validate_every == 0 and topology.is_main:
                    _select(task, writer, run_dir, _export_info(step, elapsed(), topology))
        except KeyboardInterrupt:
            interrupted = True
    if topology.is_main:
        save_checkpoint(checkpoints, step, state(), config.keep_checkpoints)
        if losses and step % config.log_every:  # the last step, for the progress log, when it was not logged
            append_progress(run_dir, step, elapsed(), losses)
    total_seconds = elapsed()
    model_path = None
    if topology.is_main and not interrupted:
        model_path = run_dir / "model.safetensors"
        task.export(model_path, _export_info(step, total_seconds, topology))
    progress.close()
    if writer is not None:
        writer.close()
    distributed.barrier(topology)
    distributed.shutdown(topology)
    return TrainingOutcome(steps=step, seconds=total_seconds, interrupted=interrupted, model_path=model_path,
                           is_main=topology.is_main)


def _place(model: TrainableModel, topology: Topology, config: TrainConfig) -> TrainableModel:
    model = model.to(topology.device)
    if topology.device.type == "cuda" and config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if topology.distributed:
        distributed.broadcast_parameters(model)
    return model


def _resume(model: TrainableModel, checkpoints: Path) -> tuple[int, float]:
    found = list_checkpoints(checkpoints)
    if not found:
        return 0, 0.0
    state = load_checkpoint(found[-1])
    model.load_state_dict(state["model"])
    model.load_training_state(state["training"])
    return int(state["step"]), float(state["seconds"])


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """Batches depend only on (seed, rank, step): resuming reproduces the exact same batches."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0]))


def _to_device(tensor: torch.Tensor, topology: Topology, config: TrainConfig) -> torch.Tensor:
    tensor = tensor.to(topology.device, non_blocking=True)
    if topology.device.type == "cuda" and config.channels_last and tensor.dim() == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def _autocast(topology: Topology, config: TrainConfig):
    bf16 = config.precision == "bf16" or (config.precision == "auto" and topology.device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=topology.device.type, dtype=torch.bfloat16)


def _writer(run_dir: Path, topology: Topology):
    if not topology.is_main:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run_dir / "logs"))


def _progress(start: int, total: int, topology: Topology):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, disable=not topology.is_main, unit="step", dynamic_ncols=True)


def _time_is_up(config: TrainConfig, elapsed: float, topology: Topology) -> bool:
    """Whether ``max_minutes`` of training have passed; under torchrun rank 0's clock decides for every rank."""
    if not config.max_minutes:
        return False
    return distributed.agreed_by_main(elapsed >= config.max_minutes * 60, topology)


def _log_losses(writer, losses: dict[str, float], step: int, progress) -> None:
    for name, value in losses.items():
        writer.add_scalar(f"loss/{name}", value, step)
    progress.set_postfix({k: f"{v:.3f}" for k, v in list(losses.items())[:4]}, refresh=False)


def _select(task: TrainingTask, writer, run_dir: Path, info: dict) -> None:
    """Score held-back data, log it, and export ``best.safetensors`` when this step is the best so far."""
    validate = getattr(task, "validate", None)
    scores = validate() if validate is not None else None
    if not scores:
        return
    step = info["steps"]
    entry = {"step": step, "hours": round(info["training_seconds"] / 3600, 3), **scores}
    history = [e for e in read_history(run_dir) if e["step"] < step] + [entry]  # a resumed run re-scores later steps
    append_history(run_dir, entry)
    for name, value in scores.items():
        writer.add_scalar(f"validation/{name}", value, step)
    if best_entry(history) is entry:
        task.export(run_dir / "best.safetensors", {**info, "selected": entry})


def _export_info(step: int, seconds: float, topology: Topology) -> dict:
    """What a model file records about its training."""
    return {"steps": step, "training_seconds": round(seconds, 1), "hardware": _hardware(topology)}


def _hardware(topology: Topology) -> str:
    if topology.device.type == "cuda":
        return f"{topology.world_size} x {torch.cuda.get_device_name(topology.device)}"
    return f"{topology.world_size} process(es) x {torch.get_num_threads()} CPU threads"
