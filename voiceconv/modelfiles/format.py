"""Self-describing model files: safetensors weights plus a JSON header with everything needed to use them.

The header (safetensors metadata key ``voiceconv``) holds the resolved
configuration: feature parameters, architecture, speaker names, training
steps and time, hardware, and measured results when known. Loading never
unpickles anything, so a model file from a stranger cannot run code, and
every file is checked before it is used (:mod:`voiceconv.modelfiles.checks`):
the header when it is read, each field's type and range and every tensor's
name, shape and type against the architecture the header describes; the
values when the weights are loaded (no NaN or infinity).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from voiceconv.errors import ModelFileError
from voiceconv.files import atomic_output
from voiceconv.modelfiles.checks import check_header, check_kind, check_values
from voiceconv.modelfiles.layout import prefixed  # noqa: F401 -- re-exported: sub-modules' state dicts

FORMAT = "voiceconv-model"
VERSION = 1
MAX_HEADER_CHARS = 1_000_000  # the headers voiceconv writes hold a few thousand
MAX_HEADER_DEPTH = 32  # nesting of the header's JSON (voiceconv's own: 5)


@dataclass(frozen=True)
class ModelFile:
    """A checked model file in memory: its header, its tensors (on the CPU, float32) and the typed sections
    the checks parsed (``{"features": FeatureConfig, "model": ..., ...}`` for the kinds voiceconv knows)."""

    path: Path
    header: dict
    tensors: dict[str, torch.Tensor]
    parsed: dict[str, Any]


def save_model_file(path: str | Path, tensors: dict[str, torch.Tensor], header: dict) -> Path:
    """Write tensors and a JSON header atomically as one safetensors file."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={"voiceconv": json.dumps(stamped(header))})
    return Path(path)


def stamped(header: dict) -> dict:
    """``header`` as a file stores it: with the format's name and version first."""
    return {"format": FORMAT, "version": VERSION, **header}


def read_header(path: str | Path, kinds: Collection[str] | None = None) -> dict:
    """The JSON header of a model file, checked with the tensors it declares, without loading the weights.

    Raises :class:`ModelFileError` (one line naming the file and the field)
    for anything :func:`voiceconv.modelfiles.checks.check_header` refuses, and for a
    file whose kind is not one of ``kinds`` (when given: the kinds the caller takes).
    """
    return _read_checked(path, kinds)[0]


def load_model_file(path: str | Path, kinds: Collection[str] | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors on the CPU, header) of a checked model file; ``kinds``: the kinds the caller takes."""
    model = open_model_file(path, kinds)
    return model.tensors, model.header


def open_model_file(path: str | Path, kinds: Collection[str] | None = None) -> ModelFile:
    """A checked model file (:class:`ModelFile`); ``kinds``: the kinds the caller takes.

    A file of another kind is refused before its weights are read; NaN or
    infinite weights are refused once they are. Floating point tensors come
    as float32 whatever their type in the file, as every model computes in it.
    """
    header, parsed = _read_checked(path, kinds)
    try:
        with safe_open(str(path), "pt") as f:
            tensors = {name: _as_float32(f.get_tensor(name)) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{path}: damaged model file ({err})") from None
    check_values(Path(path), header, tensors)
    return ModelFile(Path(path), header, tensors, parsed)


def check_in_memory(tensors: dict[str, torch.Tensor], header: dict, name: str = "<model>") -> ModelFile:
    """A model that was never written (a training run's current weights) through the same checks as a file,
    ``header`` stamped as :func:`save_model_file` would; ``name`` stands for the path in messages."""
    header, path = json.loads(json.dumps(stamped(header))), Path(name)
    tensors = {key: _as_float32(t.detach().to("cpu")) for key, t in tensors.items()}
    layout = {key: (_DTYPE_NAMES.get(t.dtype, str(t.dtype)), tuple(t.shape)) for key, t in tensors.items()}
    parsed = check_header(path, header, layout)
    check_values(path, header, tensors)
    return ModelFile(path, header, tensors, parsed)


_DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8"}


def _read_checked(path: str | Path, kinds: Collection[str] | None) -> tuple[dict, dict[str, Any]]:
    """(header, parsed sections) of ``path``, every field and declared tensor checked."""
    path = _existing(path)
    try:
        with safe_open(str(path), "pt") as f:
            raw = (f.metadata() or {}).get("voiceconv")
            layout = {name: (f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape())) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(f"{path}: not a safetensors model file ({err})") from None
    header = _parse_header(path, raw)
    if kinds is not None:
        check_kind(path, header, tuple(kinds))
    return header, check_header(path, header, layout)


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.is_floating_point() and tensor.dtype != torch.float32 else tensor


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    return path


def _parse_header(path: Path, raw: str | None) -> dict:
    if raw is None:
        raise ModelFileError(f"{path}: a safetensors file without a voiceconv header; not a voiceconv model")
    if len(raw) > MAX_HEADER_CHARS:
        raise ModelFileError(f"{path}: damaged voiceconv header ({len(raw):,} characters; at most "
                             f"{MAX_HEADER_CHARS:,})")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: damaged voiceconv header ({err})") from None
    except RecursionError:
        raise ModelFileError(f"{path}: damaged voiceconv header (nested too deeply)") from None
    if _depth(header) > MAX_HEADER_DEPTH:
        raise ModelFileError(f"{path}: damaged voiceconv header (nested more than {MAX_HEADER_DEPTH} levels deep)")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a voiceconv model file")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: header field 'version' must be a whole number from 1, got {version!r:.40}")
    if version > VERSION:
        raise ModelFileError(f"{path}: made by a newer voiceconv (format {version}); upgrade voiceconv")
    return header


def _depth(value) -> int:
    """How deeply ``value`` (parsed JSON) nests lists and mappings, without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_HEADER_DEPTH:
                stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def load_weights(module: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path,
                 optional: tuple[str, ...] = ("steps_done",)) -> None:
    """Load ``tensors`` into ``module``; ModelFileError if any weight is missing, extra or misshapen."""
    try:
        missing, unexpected = module.load_state_dict(tensors, strict=False)
    except RuntimeError as err:
        raise ModelFileError(f"{path}: weights do not fit the architecture in its header ({err})") from None
    missing = [name for name in missing if name not in optional]
    if missing or unexpected:
        raise ModelFileError(f"{path}: weights do not match the header's architecture "
                             f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})")
