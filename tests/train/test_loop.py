"""The one training loop: progress.jsonl for the page, and the time budget (train.max_minutes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from voiceconv.errors import ConfigError
from voiceconv.models.gan import DCGAN, GANConfig
from voiceconv.runfolder import RunFolder, read_progress
from voiceconv.train.loop import TrainConfig, fit


class TinyGANTask:
    """A 16 x 16 DCGAN on random images: the smallest real task for the loop."""

    def __init__(self):
        self.model = DCGAN(3, 16, 16, GANConfig(latent=8, generator_channels=(16, 8), discriminator_channels=(8, 16)))
        self.exported: list[Path] = []

    def batch(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"images": torch.rand(batch_size, 3, 16, 16, generator=generator) * 2 - 1}

    def log_media(self, writer, step: int) -> None:
        pass

    def export(self, path: Path, info: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(info["steps"]))
        self.exported.append(path)


def test_progress_lists_every_logged_step_with_losses_and_time(tmp_path):
    config = TrainConfig(steps=6, batch_size=2, log_every=2, media_every=100, checkpoint_every=3, threads=1)
    fit(TinyGANTask(), config, tmp_path)
    entries = read_progress(tmp_path)
    assert [e["step"] for e in entries] == [2, 4, 6]
    assert set(entries[0]["losses"]) == {"D", "G"} and 0 < entries[0]["seconds"] <= entries[-1]["seconds"]
    fit(TinyGANTask(), TrainConfig(**{**config.__dict__, "steps": 8}), tmp_path, resume=True)
    assert [e["step"] for e in read_progress(tmp_path)] == [2, 4, 6, 8]  # a resume appends, one entry per step


def test_a_damaged_progress_line_is_skipped(tmp_path):
    (tmp_path / "progress.jsonl").write_text('{"step": 1, "seconds": 0.5, "losses": {}}\n{"step": 2, "sec')
    assert [e["step"] for e in read_progress(tmp_path)] == [1]
    assert read_progress(tmp_path / "missing") == []


def test_the_time_budget_ends_the_run_early_and_exports_the_model(tmp_path):
    task = TinyGANTask()
    config = TrainConfig(steps=100_000, batch_size=2, log_every=1, media_every=100_000, checkpoint_every=100_000,
                         threads=1, max_minutes=0.02)  # 1.2 seconds
    outcome = fit(task, config, tmp_path)
    assert not outcome.interrupted and 0 < outcome.steps < 100_000
    assert outcome.model_path == tmp_path / "model.safetensors" and task.exported == [outcome.model_path]
    assert 1.2 <= outcome.seconds < 30


def test_negative_budget_is_refused():
    with pytest.raises(ConfigError, match="train.max_minutes=-1"):
        TrainConfig(max_minutes=-1)


class _InterruptingTask(TinyGANTask):
    """Sends itself ``signal_number`` (or raises ``error``) on the third batch."""

    def __init__(self, signal_number=None, error=None):
        super().__init__()
        self.calls, self.signal_number, self.error = 0, signal_number, error

    def batch(self, batch_size, generator):
        self.calls += 1
        if self.calls == 3:
            if self.error is not None:
                raise self.error
            os.kill(os.getpid(), self.signal_number)
        return super().batch(batch_size, generator)


def test_a_finished_run_writes_its_outcome(tmp_path):
    fit(TinyGANTask(), TrainConfig(steps=4, batch_size=2, log_every=2, media_every=100, threads=1,
                                   export_every=2), tmp_path)
    outcome = RunFolder(tmp_path).read_outcome()
    assert outcome == {"state": "finished", "step": 4, "models": [
        "model.safetensors", "exports/model_step0000002.safetensors", "exports/model_step0000004.safetensors"]}
    assert not (tmp_path / "outcome.json.tmp").exists()


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_run_stopped_by_sigterm_or_ctrl_c_writes_stopped(tmp_path, signal_number):
    # Ctrl-C as a terminal delivers it: a process started in the background (nohup ... &) inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        outcome = fit(_InterruptingTask(signal_number), TrainConfig(steps=50, batch_size=2, threads=1), tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert outcome.interrupted
    assert RunFolder(tmp_path).read_outcome() == {"state": "stopped", "step": 2, "models": []}


def test_a_failed_run_writes_failed_and_raises_on(tmp_path):
    (tmp_path / "outcome.json").write_text('{"state": "finished", "step": 9, "models": []}')  # an earlier run's
    with pytest.raises(RuntimeError, match="disk on fire"):
        fit(_InterruptingTask(error=RuntimeError("disk on fire")),
            TrainConfig(steps=50, batch_size=2, log_every=1, threads=1), tmp_path)
    outcome = RunFolder(tmp_path).read_outcome()
    assert outcome == {"state": "failed", "step": 2, "models": [], "error": "RuntimeError: disk on fire"}


def test_no_outcome_is_read_before_the_end_or_from_a_damaged_file(tmp_path):
    assert RunFolder(tmp_path).read_outcome() is None
    (tmp_path / "outcome.json").write_text('{"state": "fini')
    assert RunFolder(tmp_path).read_outcome() is None
