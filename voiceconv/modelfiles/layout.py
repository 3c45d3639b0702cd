"""The tensors of a voice model file: the one place their names are written (torch-free).

::

    G_AB.*, G_BA.*        the generators' weights: G_AB converts speaker A to B (direction "a2b"), G_BA back
    stats.a.{mean,std}    speaker A's per-mel-bin log-mel statistics [n_mels]; stats.b likewise
    stats.a2b.{mean,std}  pitch-aligned models: the statistics of A brought to B's pitch, what G_AB
                          normalizes its input with; stats.b2a likewise (absent in files from before alignment)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from voiceconv.models.directions import DIRECTIONS

GENERATOR_PREFIXES = {"a2b": "G_AB", "b2a": "G_BA"}  # direction -> tensor-name prefix of its generator
SPEAKERS = ("a", "b")
ALIGNED_INPUTS = DIRECTIONS  # each direction has the statistics of its (pitch-aligned) input

T = TypeVar("T")


def stats_names(group: str) -> tuple[str, str]:
    """The mean's and the standard deviation's tensor names of statistics ``group`` ("a", "b", "a2b", "b2a")."""
    return f"stats.{group}.mean", f"stats.{group}.std"


def prefixed(tensors: Mapping[str, T], prefix: str) -> dict[str, T]:
    """The entries under ``prefix.`` with the prefix removed (a sub-module's state dict)."""
    start = prefix + "."
    return {name[len(start):]: t for name, t in tensors.items() if name.startswith(start)}
