"""Self-describing model files: safetensors weights plus a JSON header with everything needed to use them.

The header (safetensors metadata key ``voiceconv``) holds the resolved
configuration: feature parameters, architecture, speaker names, training
steps and time, hardware, and measured results when known. Loading never
unpickles anything, so a model file from a stranger cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from voiceconv.errors import VoiceconvError
from voiceconv.files import atomic_output

FORMAT = "voiceconv-model"
VERSION = 1


class ModelFileError(VoiceconvError):
    """A model file is missing, damaged or not a voiceconv model."""


def save_model_file(path: str | Path, tensors: dict[str, torch.Tensor], header: dict) -> Path:
    """Write tensors and a JSON header atomically as one safetensors file."""
    header = {"format": FORMAT, "version": VERSION, **header}
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"voiceconv": json.dumps(header)})
    return Path(path)


def read_header(path: str | Path) -> dict:
    """The JSON header of a model file, without loading the weights."""
    path = _check(path)
    try:
        with safe_open(str(path), "pt") as f:
            raw = (f.metadata() or {}).get("voiceconv")
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{path}: not a safetensors model file ({err})") from None
    return _parse_header(path, raw)


def load_model_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors on the CPU, header) of a model file."""
    header = read_header(path)
    try:
        with safe_open(str(path), "pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{path}: damaged model file ({err})") from None
    return tensors, header


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.`` with the prefix removed (a sub-module's state dict)."""
    start = prefix + "."
    return {name[len(start):]: t for name, t in tensors.items() if name.startswith(start)}


def _check(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    return path


def _parse_header(path: Path, raw: str | None) -> dict:
    if raw is None:
        raise ModelFileError(f"{path}: a safetensors file without a voiceconv header; not a voiceconv model")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: damaged voiceconv header ({err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a voiceconv model file")
    if header.get("version", 0) > VERSION:
        raise ModelFileError(f"{path}: made by a newer voiceconv (format {header['version']}); upgrade voiceconv")
    return header
