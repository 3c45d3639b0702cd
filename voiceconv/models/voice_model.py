"""The tensors of a voice model file: the one place their names are written and read.

::

    G_AB.*, G_BA.*        the generators' weights: G_AB converts speaker A to B (direction "a2b"), G_BA back
    stats.a.{mean,std}    speaker A's per-mel-bin log-mel statistics [n_mels]; stats.b likewise
    stats.a2b.{mean,std}  pitch-aligned models: the statistics of A brought to B's pitch, what G_AB
                          normalizes its input with; stats.b2a likewise (absent in files from before alignment)

Training exports with :func:`voice_model_tensors`; conversion and the model-file
checks read with :func:`generator_weights` and :func:`read_stats`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from voiceconv.audio.features import SpeakerStats
from voiceconv.modelfile import prefixed

GENERATORS = {"a2b": "G_AB", "b2a": "G_BA"}  # direction -> tensor-name prefix
SPEAKERS = ("a", "b")
ALIGNED_INPUTS = ("a2b", "b2a")  # the statistics of each direction's pitch-aligned input


def stats_names(group: str) -> tuple[str, str]:
    """The mean's and the standard deviation's tensor names of statistics ``group`` ("a", "b", "a2b", "b2a")."""
    return f"stats.{group}.mean", f"stats.{group}.std"


def voice_model_tensors(generators: Mapping[str, nn.Module], speakers: Mapping[str, SpeakerStats],
                        aligned_inputs: Mapping[str, SpeakerStats] | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of a voice model file: ``generators`` by direction, ``speakers`` by side, and (pitch-aligned
    models) the ``aligned_inputs`` statistics by direction."""
    tensors = {f"{GENERATORS[direction]}.{name}": value for direction, net in generators.items()
               for name, value in net.state_dict().items()}
    for group, stats in {**speakers, **(aligned_inputs or {})}.items():
        mean, std = stats_names(group)
        tensors[mean], tensors[std] = stats.mean, stats.std
    return tensors


def generator_weights(tensors: Mapping[str, torch.Tensor], direction: str) -> dict[str, torch.Tensor]:
    """The state dict of the generator of ``direction`` ("a2b" or "b2a")."""
    return prefixed(tensors, GENERATORS[direction])


def read_stats(tensors: Mapping[str, torch.Tensor], group: str) -> SpeakerStats | None:
    """Statistics ``group`` of a model file's tensors, or None when the file has none of that group."""
    mean, std = stats_names(group)
    return SpeakerStats(tensors[mean], tensors[std]) if mean in tensors else None
