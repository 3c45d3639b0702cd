"""The voice family's bundle: a checked ``voice-cyclegan`` file as typed parts, after torchaudio's bundles.

::

    model = VoiceModel.from_file("kathleen_rms.safetensors")  # every field and tensor checked
    model.features      # FeatureConfig: how waveforms become log-mel images
    model.config        # CycleGANConfig: the generators' architecture
    model.alignment     # {"a2b": Alignment, "b2a": Alignment}, {} for files from before alignment
    model.stats         # per-band statistics: "a", "b" (the speakers), "a2b", "b2a" (each direction's input)
    model.output_stats  # what converted images are mapped onto, by side (model.output_spread)
    model.generators()  # {"a2b": G_AB, "b2a": G_BA}, built, weights loaded, in eval mode

The header is parsed once, by the checks; training writes files with :func:`voice_model_tensors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from voiceconv.audio.features import FeatureConfig, SpeakerStats
from voiceconv.audio.world import Alignment
from voiceconv.families import VOICE_KIND
from voiceconv.modelfiles.format import ModelFile, check_in_memory, open_model_file
from voiceconv.modelfiles.layout import ALIGNED_INPUTS, GENERATOR_PREFIXES, SPEAKERS, prefixed, stats_names
from voiceconv.models.cyclegan import CycleGANConfig, build_cyclegan_generator
from voiceconv.models.directions import DIRECTIONS, Direction, source_side, target_side
from voiceconv.nn.generators import EnvelopeGenerator1d


@dataclass(frozen=True)
class VoiceModel:
    """A checked voice conversion model: header, typed configuration and tensors (on the CPU)."""

    path: Path
    header: dict
    features: FeatureConfig
    config: CycleGANConfig
    alignment: dict[Direction, Alignment]  # {} for files from before alignment
    stats: dict[str, SpeakerStats]  # "a", "b": the speakers'; "a2b", "b2a": what each direction's input is scaled by
    tensors: dict[str, torch.Tensor]

    @classmethod
    def from_file(cls, path: str | Path) -> VoiceModel:
        """Load a ``voice-cyclegan`` file, every field and tensor checked; ModelFileError names the file and field."""
        return cls._from(open_model_file(path, kinds=(VOICE_KIND,)))

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], header: dict, name: str = "<training>") -> VoiceModel:
        """The model a training run would export now (``tensors`` and ``header`` as :func:`save_model_file` takes
        them), checked as a file would be, without writing one."""
        return cls._from(check_in_memory(tensors, {"kind": VOICE_KIND, **header}, name))

    @classmethod
    def _from(cls, file: ModelFile) -> VoiceModel:
        speakers = {side: read_stats(file.tensors, side) for side in SPEAKERS}
        inputs = {d: read_stats(file.tensors, d) or speakers[source_side(d)] for d in ALIGNED_INPUTS}
        return cls(file.path, file.header, file.parsed["features"], file.parsed["model"], file.parsed["alignment"],
                   {**speakers, **inputs}, file.tensors)

    @property
    def speakers(self) -> dict[str, str]:
        """The speakers' names by side: ``{"a": ..., "b": ...}``."""
        return {side: self.header["speakers"][side]["name"] for side in SPEAKERS}

    @property
    def output_stats(self) -> dict[str, SpeakerStats]:
        """What each side's converted images are mapped onto, by side: the speaker's per-band statistics, or under
        ``model.output_spread: input`` the speaker's means with the spread of the input converted into that side
        (``"b"`` gets ``"a2b"``'s), so the mapping shifts each band and keeps its spread."""
        if self.config.output_spread == "target":
            return {side: self.stats[side] for side in SPEAKERS}
        return {target_side(d): SpeakerStats(self.stats[target_side(d)].mean, self.stats[d].std) for d in DIRECTIONS}

    def generators(self, device: torch.device | str = "cpu") -> dict[Direction, nn.Module]:
        """Each direction's generator, built from the header's architecture, weights loaded, in eval mode."""
        built = {}
        for direction in DIRECTIONS:
            net = build_cyclegan_generator(self.config, 1, self.features.n_mels)
            net.load_state_dict(generator_weights(self.tensors, direction))
            built[direction] = net.to(device).eval()
        return built


def load_voice_model(path: str | Path) -> VoiceModel:
    """:meth:`VoiceModel.from_file` (the voice family's loader in :data:`voiceconv.families.FAMILIES`)."""
    return VoiceModel.from_file(path)


def voice_model_tensors(generators: Mapping[str, nn.Module], speakers: Mapping[str, SpeakerStats],
                        aligned_inputs: Mapping[str, SpeakerStats] | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of a voice model file: ``generators`` by direction, ``speakers`` by side, and (pitch-aligned
    models) the ``aligned_inputs`` statistics by direction."""
    tensors = {f"{GENERATOR_PREFIXES[direction]}.{name}": value for direction, net in generators.items()
               for name, value in net.state_dict().items()}
    for group, stats in {**speakers, **(aligned_inputs or {})}.items():
        mean, std = stats_names(group)
        tensors[mean], tensors[std] = stats.mean, stats.std
    return tensors


def with_strength(tensors: Mapping[str, torch.Tensor],
                  strength: float | Mapping[Direction, float]) -> dict[str, torch.Tensor]:
    """A voice model's tensors with each envelope generator's learned correction scaled by ``strength`` (one for
    both, or by direction): ``G(x) = x + strength * delta(x)`` (1: as trained; 0: the untrained start, the
    identity). Only ``envelope1d`` generators, whose correction is linear in their last layer, can be scaled."""
    strengths = strength if isinstance(strength, Mapping) else dict.fromkeys(DIRECTIONS, strength)
    layer = EnvelopeGenerator1d.CORRECTION_LAYER
    scales = {f"{GENERATOR_PREFIXES[d]}.{layer}.{name}": float(value) for d, value in strengths.items()
              for name in ("weight", "bias")}
    return {key: value * scales[key] if key in scales else value for key, value in tensors.items()}


def generator_weights(tensors: Mapping[str, torch.Tensor], direction: str) -> dict[str, torch.Tensor]:
    """The state dict of the generator of ``direction`` ("a2b" or "b2a")."""
    return prefixed(tensors, GENERATOR_PREFIXES[direction])


def read_stats(tensors: Mapping[str, torch.Tensor], group: str) -> SpeakerStats | None:
    """Statistics ``group`` of a model file's tensors, or None when the file has none of that group."""
    mean, std = stats_names(group)
    return SpeakerStats(tensors[mean], tensors[std]) if mean in tensors else None
