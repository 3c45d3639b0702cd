"""What each kind of model file must hold: its header's sections and its tensors, kind by kind.

Each kind's ``tensors`` check returns the tensors its header's architecture needs and the typed sections it
parsed on the way (``{"features": FeatureConfig, "model": CycleGANConfig, "alignment": {...}}`` for a voice
model), so that loading never parses a header twice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from voiceconv.audio.world import Alignment
from voiceconv.families import (FACE_AE, FACE_CLASSIFIER, FACE_CYCLEGAN, FACE_DBVAE, FACE_GAN, FACE_PROGAN, FACE_VAE,
                                SPEECH_VAE, VOICE_KIND)
from voiceconv.modelfiles import fields as f
from voiceconv.modelfiles.fields import Expected
from voiceconv.modelfiles.layout import ALIGNED_INPUTS, GENERATOR_PREFIXES, SPEAKERS, stats_names
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig, build_cyclegan_generator
from voiceconv.models.directions import Direction
from voiceconv.models.gan import DCGAN, GANConfig
from voiceconv.models.progressive_gan import ProGANConfig, ProgressiveGenerator
from voiceconv.models.vae import VAE, AEConfig, Autoencoder, DebiasingVAE, FaceClassifier, VAEConfig
from voiceconv.nn import DISCRIMINATORS, GENERATOR_ARCHITECTURES
from voiceconv.nn.generators import OUTPUT_MODES

MIN_STATS_STD = 1e-6  # speaker statistics divide by their standard deviation
MAX_WARP = (0.5, 2.0)  # the spectral-envelope warp an alignment may store

#: What a kind's header check gives: the tensors its architecture needs, and the sections it parsed.
Checked = tuple[dict[str, Expected], dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    """How to check one kind of model file: its header (returning what it needs and parsed) and its values."""

    description: str  # "a voice conversion model"
    tensors: Callable[[Path, dict], Checked]
    values: Callable[[Path, dict, Mapping[str, torch.Tensor]], None] = lambda path, header, tensors: None


# --- voice --------------------------------------------------------------------------------------------------------


def parse_alignments(path: Path, header: dict) -> dict[Direction, Alignment]:
    """The per-direction WORLD alignments a voice model file carries (``{}`` for files from before alignment)."""
    stored = header.get("alignment")
    if stored is None:
        return {}
    try:
        a2b = Alignment.from_dict(stored)
        for stats in (a2b.source, a2b.target):
            if not (math.isfinite(stats.log_f0_mean) and math.isfinite(stats.log_f0_std) and stats.log_f0_std > 0):
                raise ValueError("log-F0 statistics must be finite, with a positive standard deviation")
        if not (math.isfinite(a2b.warp) and MAX_WARP[0] <= a2b.warp <= MAX_WARP[1]):
            raise ValueError(f"warp {a2b.warp} is outside [{MAX_WARP[0]:g}, {MAX_WARP[1]:g}]")
    except (KeyError, TypeError, ValueError) as err:
        raise f.error(path, f"damaged 'alignment' field in the model header ({err})") from None
    return {"a2b": a2b, "b2a": a2b.reverse()}


def _speakers(path: Path, header: dict) -> None:
    speakers = f.section(path, header, "speakers")
    for side in SPEAKERS:
        entry = speakers.get(side)
        if not isinstance(entry, dict):
            raise f.error(path, f"header field 'speakers.{side}' is {'missing' if entry is None else f.shown(entry)}; "
                                "it must be a mapping with the speaker's name")
        if "name" not in entry:
            raise f.error(path, f"header field 'speakers.{side}.name' is missing")
        f.name(path, f"speakers.{side}.name", entry["name"])
        if entry.get("training_seconds") is not None:
            f.number(path, f"speakers.{side}.training_seconds", entry["training_seconds"], 0.0, 1e10)


def _registries(path: Path, config: CycleGANConfig) -> None:
    """A CycleGAN's network names, each one of its registry's."""
    for field, valid in (("generator", GENERATOR_ARCHITECTURES), ("discriminator", DISCRIMINATORS),
                         ("generator_output", OUTPUT_MODES)):
        value = getattr(config, field)
        if value not in valid:
            raise f.error(path, f"header field 'model.{field}' is {f.shown(value)}; valid: {', '.join(valid)}")


def _voice_tensors(path: Path, header: dict) -> Checked:
    features = f.features(path, header)
    config = f.config(path, header, "model", CycleGANConfig, "cyclegan")
    _registries(path, config)
    _speakers(path, header)
    f.training(path, header)
    alignment = parse_alignments(path, header)  # the optional 'alignment' field
    per_second = config.generator_channels * features.n_mels * features.sample_rate / features.hop_length
    if per_second > f.MAX_GENERATOR_VALUES_PER_SECOND:
        raise f.error(path, f"header fields 'model.generator_channels' and 'features' make {per_second:,.0f} "
                            f"generator values per second of audio; at most {f.MAX_GENERATOR_VALUES_PER_SECOND:,}")
    net = f.on_meta(path, lambda: build_cyclegan_generator(config, 1, features.n_mels))
    expected = {key: shape for prefix in GENERATOR_PREFIXES.values()
                for key, shape in f.state(net, f"{prefix}.", optional=()).items()}
    groups = [(side, True) for side in SPEAKERS] + [(d, False) for d in ALIGNED_INPUTS]
    for group, required in groups:  # per-bin statistics [n_mels]; a2b / b2a: of the pitch-aligned input
        for key in stats_names(group):
            expected[key] = Expected((features.n_mels,), required=required)
    return expected, {"features": features, "model": config, "alignment": alignment}


def _voice_values(path: Path, header: dict, tensors: Mapping[str, torch.Tensor]) -> None:
    for group in ALIGNED_INPUTS:
        present = [key for key in stats_names(group) if key in tensors]
        if len(present) == 1:
            raise f.error(path, f"tensor {present[0]!r} comes without its partner; the aligned statistics need "
                                "both mean and std")
    for key, tensor in tensors.items():
        if key.startswith("stats.") and key.endswith(".std") and float(tensor.min()) < MIN_STATS_STD:
            raise f.error(path, f"tensor {key!r} holds standard deviations below {MIN_STATS_STD:g}; "
                                "conversion would divide by them")


# --- faces and the speech VAE -------------------------------------------------------------------------------------


def _vae_tensors(path: Path, header: dict) -> Checked:
    kind = header["kind"]
    shape = f.image(path, header, channels=3)
    config = f.config(path, header, "model", VAEConfig, "vae")
    f.activation(path, config.channels, shape)
    f.counts(path, header, "data", "faces")
    f.training(path, header)
    cls = DebiasingVAE if kind == FACE_DBVAE else VAE
    expected = f.state(f.on_meta(path, lambda: cls(*shape, config)))
    expected["latent_kl"] = Expected((config.latent,))  # [L] mean KL per latent over the training faces
    expected["typical_code"] = Expected((config.latent,), required=False)  # absent from older files
    if kind == FACE_DBVAE:
        expected["training_latent_means"] = Expected((None, config.latent), required=False)  # [N, L]
    return expected, {"model": config}


def _ae_tensors(path: Path, header: dict) -> Checked:
    shape = f.image(path, header, channels=3)
    config = f.config(path, header, "model", AEConfig, "vae")
    f.activation(path, config.channels, shape)
    f.counts(path, header, "data", "faces")
    f.training(path, header)
    expected = f.state(f.on_meta(path, lambda: Autoencoder(*shape, config)))
    for name in ("code_mean", "code_std"):  # [L] over the training faces' codes
        expected[name] = Expected((config.latent,))
    return expected, {"model": config}


def _classifier_tensors(path: Path, header: dict) -> Checked:
    shape = f.image(path, header, channels=3)
    config = f.config(path, header, "model", VAEConfig, "vae")
    f.activation(path, config.channels, shape)
    f.counts(path, header, "data", "faces")
    f.training(path, header)
    return f.state(f.on_meta(path, lambda: FaceClassifier(*shape, config))), {"model": config}


def _gan_tensors(path: Path, header: dict) -> Checked:
    shape = f.image(path, header, channels=3)
    config = f.config(path, header, "model", GANConfig, "gan")
    f.activation(path, config.generator_channels + config.discriminator_channels, shape)
    f.counts(path, header, "data", "faces")
    f.training(path, header)
    # Only the generator is in the file; without spectral norm the discriminator builds fast on the meta device.
    model = f.on_meta(path, lambda: DCGAN(*shape, dataclasses.replace(config, spectral_norm=False)))
    return f.state(model.G, "G."), {"model": config}


def _progan_tensors(path: Path, header: dict) -> Checked:
    shape = f.image(path, header, channels=3)
    config = f.config(path, header, "model", ProGANConfig, "progan")
    if (shape[1], shape[2]) != (config.final_size, config.final_size):
        raise f.error(path, f"header field 'image' says {shape[1]} x {shape[2]}; the model's levels draw "
                            f"{config.final_size} x {config.final_size}")
    f.activation(path, config.channels, shape)
    f.counts(path, header, "data", "faces")
    f.training(path, header)
    # Only the generator is in the file, with images_seen: how far it has grown.
    return f.state(f.on_meta(path, lambda: ProgressiveGenerator(config, shape[0])), "G."), {"model": config}


def _face_cyclegan_tensors(path: Path, header: dict) -> Checked:
    shape = f.image(path, header, channels=3)
    config = f.config(path, header, "model", CycleGANConfig, "cyclegan")
    _registries(path, config)
    f.activation(path, (config.generator_channels,), shape)
    f.training(path, header)
    domains = f.section(path, header, "domains", required=False) or {}
    for side, entry in domains.items():
        if not isinstance(entry, dict) or "name" not in entry:
            raise f.error(path, f"header field 'domains.{side}' must be a mapping with the domain's name")
        f.name(path, f"domains.{side}.name", entry["name"])
    model = f.on_meta(path, lambda: CycleGAN(shape[0], shape[1], config))
    return f.state(model.G_AB, "G_AB.", optional=()) | f.state(model.G_BA, "G_BA.", optional=()), {"model": config}


def _speech_vae_tensors(path: Path, header: dict) -> Checked:
    features = f.features(path, header)
    shape = f.image(path, header, channels=1, square=False)
    if shape[1] != features.n_mels:
        raise f.error(path, f"header field 'image.height' is {shape[1]}; it must equal features.n_mels "
                            f"({features.n_mels})")
    config = f.config(path, header, "model", VAEConfig, "vae")
    f.activation(path, config.channels, shape)
    speaker = f.section(path, header, "speaker", required=False)
    if speaker is not None and "name" in speaker:
        f.name(path, "speaker.name", speaker["name"])
    f.training(path, header)
    return f.state(f.on_meta(path, lambda: VAE(*shape, config))), {"features": features, "model": config}


#: Every kind of model file voiceconv writes, and how each is checked.
KINDS: dict[str, Kind] = {
    VOICE_KIND: Kind("a voice conversion model", _voice_tensors, _voice_values),
    FACE_AE: Kind("a face autoencoder", _ae_tensors),
    FACE_VAE: Kind("a face VAE", _vae_tensors),
    FACE_DBVAE: Kind("a debiasing face VAE", _vae_tensors),
    FACE_GAN: Kind("a face GAN", _gan_tensors),
    FACE_PROGAN: Kind("a progressively grown face GAN", _progan_tensors),
    FACE_CYCLEGAN: Kind("a face CycleGAN", _face_cyclegan_tensors),
    FACE_CLASSIFIER: Kind("a face classifier", _classifier_tensors),
    SPEECH_VAE: Kind("a speech VAE", _speech_vae_tensors),
}
