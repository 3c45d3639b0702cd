"""Atomic training checkpoints that load without unpickling code (``torch.load(weights_only=True)``)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from voiceconv.errors import VoiceconvError
from voiceconv.files import atomic_output

_NAME = re.compile(r"step_(\d{8})\.pt")


def checkpoint_path(folder: Path, step: int) -> Path:
    return folder / f"step_{step:08d}.pt"


def save_checkpoint(folder: Path, step: int, state: dict, keep: int) -> Path:
    """Write ``state`` as ``step_NNNNNNNN.pt`` atomically, then delete all but the newest ``keep``."""
    path = checkpoint_path(folder, step)
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.fullmatch(p.name))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with ``weights_only=True``: tensors and plain data only, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure here means an unusable file
        raise VoiceconvError(f"{path}: not a usable voiceconv checkpoint ({type(err).__name__}: {err})") from None
