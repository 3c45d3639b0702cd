"""The one validation of model files: every header field and every tensor, checked before anything is built.

A model file may come from a stranger, so nothing in it is trusted.
:func:`voiceconv.modelfiles.format.read_header` runs :func:`check_header` on every file it opens: each field
the file's ``kind`` uses is checked for its type and range, sizes are bounded (so that no field can make
voiceconv allocate more than a model of that size needs), and the network the header describes is built on
PyTorch's ``meta`` device (no memory) to compare every tensor's name, shape and type with it, all before any
weight is read. :func:`voiceconv.modelfiles.format.load_model_file` then runs :func:`check_values` on the
loaded tensors: NaN or infinite weights are refused, as are speaker statistics that would divide by zero.
Every refusal is a :class:`~voiceconv.errors.ModelFileError` of one line that names the file and the field
or tensor.

Kinds voiceconv knows (:data:`~voiceconv.modelfiles.kinds.KINDS`) are checked completely; a file of another
kind passes with the generic checks only, and every loader refuses kinds it does not take before loading any
weight. These are pure functions of a parsed header and its tensors: they read no file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voiceconv.modelfiles.fields import FLOAT_DTYPES, INT_DTYPES, MAX_TENSOR_VALUES, Layout, compare, error, shown
from voiceconv.modelfiles.kinds import KINDS

MAX_DC_OFFSET = 0.25  # of full scale: a converted window whose mean lies further from 0 is a constant, not speech


def check_header(path: Path, header: dict, layout: Mapping[str, Layout]) -> dict[str, Any]:
    """Check a parsed header's fields and the declared tensors (``name -> (dtype, shape)``) against each other.

    Returns the typed sections the check parsed (for a voice model: ``features``, ``model`` and
    ``alignment``; ``{}`` for kinds voiceconv does not know).
    """
    for name, (dtype, shape) in layout.items():
        if dtype not in FLOAT_DTYPES | INT_DTYPES:
            raise error(path, f"tensor {name!r} has type {dtype}; model files hold floating point or integer tensors")
    total = sum(math.prod(shape) for _, shape in layout.values())
    if total > MAX_TENSOR_VALUES:
        raise error(path, f"its tensors hold {total:,} values; at most {MAX_TENSOR_VALUES:,} are accepted")
    kind = _kind(path, header)
    if kind not in KINDS:
        return {}
    expected, parsed = KINDS[kind].tensors(path, header)
    compare(path, expected, layout)
    return parsed


def check_values(path: Path, header: dict, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse NaN or infinite weights, then what the file's kind refuses among the loaded values."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise error(path, f"tensor {name!r} holds NaN or infinite values; the model is damaged "
                              "(retrain it, or export it again from a checkpoint taken before training diverged)")
    kind = KINDS.get(header.get("kind"))
    if kind is not None:
        kind.values(path, header, tensors)


def check_kind(path: Path, header: dict, kinds: tuple[str, ...]) -> None:
    """Refuse a file whose kind is not one of ``kinds`` (before any weight is loaded)."""
    kind = _kind(path, header)
    if kind not in kinds:
        wanted = " or ".join(KINDS[k].description if k in KINDS else k for k in kinds)
        raise error(path, f"a {kind!r} model, not {wanted} ({', '.join(kinds)})")


def check_output(path: Path, wav: np.ndarray) -> np.ndarray:
    """A converted window ``[samples]``, refused when the model made NaN, infinity or a constant level of it.

    Weights that pass :func:`check_values` can still be damaged enough to do
    that; no such audio is ever written (the caller's output stays untouched).
    """
    if not np.isfinite(wav).all():
        raise error(path, "the model produced NaN or infinite audio; its weights are damaged (retrain it or "
                          "export it again)")
    if len(wav) and abs(float(wav.mean())) > MAX_DC_OFFSET:
        raise error(path, f"the model produced a constant level ({float(wav.mean()):+.2f} of full scale) instead of "
                          "sound; its weights are damaged (retrain it or export it again)")
    return wav


def _kind(path: Path, header: dict) -> str:
    kind = header.get("kind")
    if kind is None:
        raise error(path, "header field 'kind' is missing")
    if not isinstance(kind, str):
        raise error(path, f"header field 'kind' must be text, got {shown(kind)}")
    return kind
