"""The one validation of model files: every header field and every tensor, checked before anything is built.

A model file may come from a stranger, so nothing in it is trusted.
:func:`voiceconv.modelfile.read_header` runs :func:`check_header` on every
file it opens: each field the file's ``kind`` uses is checked for its type and
range, sizes are bounded (so that no field can make voiceconv allocate more
than a model of that size needs), and the network the header describes is
built on PyTorch's ``meta`` device (no memory) to compare every tensor's name,
shape and type with it, all before any weight is read.
:func:`voiceconv.modelfile.load_model_file` then runs :func:`check_values` on
the loaded tensors: NaN or infinite weights are refused, as are speaker
statistics that would divide by zero. Every refusal is a
:class:`~voiceconv.modelfile.ModelFileError` of one line that names the file
and the field or tensor.

Kinds this module knows (:data:`KINDS`) are checked completely; a file of
another kind passes with the generic checks only, and every loader refuses
kinds it does not take before loading any weight.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voiceconv.errors import VoiceconvError
from voiceconv.families import FACE_CLASSIFIER, FACE_CYCLEGAN, FACE_DBVAE, FACE_GAN, FACE_VAE, SPEECH_VAE, VOICE_KIND

#: All tensors of one file together: 2**29 values, 2 GiB as float32 (the default voice model holds 2.4 million).
MAX_TENSOR_VALUES = 2**29
#: STFT cells a second of audio makes, (n_fft / 2 + 1) * sample_rate / hop_length (the default features: 32,000).
MAX_STFT_CELLS_PER_SECOND = 2**20
#: generator_channels * n_mels * frames per second: a generator's widest activation per second of audio
#: (the default model: 128,000; the paper-sized one: 640,000).
MAX_GENERATOR_VALUES_PER_SECOND = 2**23
#: The widest layer of a face model times its image's pixels (the sample face models: 1 million).
MAX_IMAGE_ACTIVATION = 2**24
MAX_NAME_CHARS = 100  # speaker and domain names (they become parts of file names)
MAX_TEXT_CHARS = 1000  # other text fields shown on the page, e.g. the training hardware

#: Ranges of numeric fields, by section; other integer fields must lie in [0, 2**31), other floats in [0, 1e6].
BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    "features": {"sample_rate": (1000, 192_000), "n_fft": (16, 16_384), "hop_length": (1, 16_384),
                 "win_length": (1, 16_384), "n_mels": (1, 512), "fmin": (0.0, 96_000.0), "fmax": (0.0, 96_000.0),
                 "min_db": (-300.0, 300.0), "max_db": (-300.0, 300.0)},
    "cyclegan": {"generator_channels": (1, 1024), "residual_channels": (1, 4096), "residual_blocks": (0, 64),
                 "output_bands": (1, 1024), "output_frames": (1, 255), "input_bands": (1, 1024),
                 "discriminator_bands": (0, 1024), "discriminator_channels": (1, 1024), "discriminator_layers": (1, 16),
                 "max_mask_fraction": (0.0, 1.0), "image_pool_size": (0, 100_000), "adam_beta1": (0.0, 1.0),
                 "adam_beta2": (0.0, 1.0)},
    "vae": {"channels": (1, 1024), "latent": (1, 4096), "histogram_bins": (1, 1000), "smoothing_alpha": (0.0, 1.0),
            "adam_beta1": (0.0, 1.0), "adam_beta2": (0.0, 1.0)},
    "gan": {"latent": (1, 4096), "generator_channels": (1, 1024), "discriminator_channels": (1, 1024),
            "adam_beta1": (0.0, 1.0), "adam_beta2": (0.0, 1.0)},
    "image": {"height": (8, 1024), "width": (8, 4096)},
}
MAX_LAYERS = 8  # entries of a channel list (each halves or doubles the image)
DEFAULT_INT_BOUNDS = (0, 2**31 - 1)
DEFAULT_FLOAT_BOUNDS = (0.0, 1e6)
MIN_STATS_STD = 1e-6  # speaker statistics divide by their standard deviation
MAX_DC_OFFSET = 0.25  # of full scale: a converted window whose mean lies further from 0 is a constant, not speech
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
INT_DTYPES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}


def _error(path: Path, message: str) -> VoiceconvError:
    from voiceconv.modelfile import ModelFileError

    return ModelFileError(f"{path}: {message}")


@dataclass(frozen=True)
class Expected:
    """What one tensor of a model file must be: its shape (``None`` for any size along an axis) and type."""

    shape: tuple[int | None, ...]
    floating: bool = True
    required: bool = True

    def fits(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(want is None or want == got for want, got in zip(self.shape, shape))

    def describe(self) -> str:
        return "[" + ", ".join("N" if size is None else str(size) for size in self.shape) + "]"


#: A tensor as the file declares it, before loading: (dtype name such as "F32", shape).
Layout = tuple[str, tuple[int, ...]]


@dataclass(frozen=True)
class Kind:
    """How to check one kind of model file: its header (returning the tensors it must hold) and its values."""

    description: str  # "a voice conversion model"
    tensors: Callable[[Path, dict], dict[str, Expected]]
    values: Callable[[Path, dict, Mapping[str, torch.Tensor]], None] = lambda path, header, tensors: None


# --- the entry points ---------------------------------------------------------------------------------------------


def check_header(path: Path, header: dict, layout: Mapping[str, Layout]) -> None:
    """Check a parsed header's fields and the declared tensors (``name -> (dtype, shape)``) against each other."""
    for name, (dtype, shape) in layout.items():
        if dtype not in FLOAT_DTYPES | INT_DTYPES:
            raise _error(path, f"tensor {name!r} has type {dtype}; model files hold floating point or integer tensors")
    total = sum(math.prod(shape) for _, shape in layout.values())
    if total > MAX_TENSOR_VALUES:
        raise _error(path, f"its tensors hold {total:,} values; at most {MAX_TENSOR_VALUES:,} are accepted")
    kind = _kind(path, header)
    if kind in KINDS:
        _compare(path, KINDS[kind].tensors(path, header), layout)


def check_values(path: Path, header: dict, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse NaN or infinite weights, then what the file's kind refuses among the loaded values."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise _error(path, f"tensor {name!r} holds NaN or infinite values; the model is damaged "
                               "(retrain it, or export it again from a checkpoint taken before training diverged)")
    kind = KINDS.get(header.get("kind"))
    if kind is not None:
        kind.values(path, header, tensors)


def check_kind(path: Path, header: dict, kinds: tuple[str, ...]) -> None:
    """Refuse a file whose kind is not one of ``kinds`` (before any weight is loaded)."""
    kind = _kind(path, header)
    if kind not in kinds:
        wanted = " or ".join(KINDS[k].description if k in KINDS else k for k in kinds)
        raise _error(path, f"a {kind!r} model, not {wanted} ({', '.join(kinds)})")


def check_output(path: Path, wav: np.ndarray) -> np.ndarray:
    """A converted window ``[samples]``, refused when the model made NaN, infinity or a constant level of it.

    Weights that pass :func:`check_values` can still be damaged enough to do
    that; no such audio is ever written (the caller's output stays untouched).
    """
    if not np.isfinite(wav).all():
        raise _error(path, "the model produced NaN or infinite audio; its weights are damaged (retrain it or "
                           "export it again)")
    if len(wav) and abs(float(wav.mean())) > MAX_DC_OFFSET:
        raise _error(path, f"the model produced a constant level ({float(wav.mean()):+.2f} of full scale) instead of "
                           "sound; its weights are damaged (retrain it or export it again)")
    return wav


def _kind(path: Path, header: dict) -> str:
    kind = header.get("kind")
    if kind is None:
        raise _error(path, "header field 'kind' is missing")
    if not isinstance(kind, str):
        raise _error(path, f"header field 'kind' must be text, got {_shown(kind)}")
    return kind


# --- fields -------------------------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _section(path: Path, header: dict, name: str, required: bool = True) -> dict | None:
    value = header.get(name)
    if value is None:
        if required:
            raise _error(path, f"header field {name!r} is missing")
        return None
    if not isinstance(value, dict):
        raise _error(path, f"header field {name!r} must be a mapping, got {_shown(value)}")
    return value


def _number(path: Path, field: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise _error(path, f"header field {field!r} must be {'a whole number' if integer else 'a number'}, "
                           f"got {_shown(value)}")
    if not (low <= value <= high):  # also refuses NaN
        raise _error(path, f"header field {field!r} is {_shown(value)}; it must be in [{low:g}, {high:g}]")


def _text(path: Path, field: str, value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise _error(path, f"header field {field!r} must be text, got {_shown(value)}")
    if len(value) > limit:
        raise _error(path, f"header field {field!r} is {len(value)} characters long; at most {limit}")
    return value


def _name(path: Path, field: str, value: Any) -> None:
    """A speaker's or domain's name: short, printable, and no file-name tricks (it becomes part of file names)."""
    name = _text(path, field, value, MAX_NAME_CHARS)
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\") or \
            any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _error(path, f"header field {field!r} is {_shown(name)}; a name must be printable text without "
                           "'/' or '\\'")


def _config(path: Path, header: dict, section: str, cls: type, bounds: str) -> Any:
    """The dataclass ``cls`` from header section ``section`` (types checked by from_dict), every field in range."""
    from voiceconv.config import from_dict
    from voiceconv.errors import ConfigError

    values = _section(path, header, section)
    try:
        config = from_dict(cls, values, section)
    except (ConfigError, TypeError, ValueError, ArithmeticError) as err:
        raise _error(path, f"header field {section!r} is invalid: {err}") from None
    limits = BOUNDS[bounds]
    for field in dataclasses.fields(cls):
        value, where = getattr(config, field.name), f"{section}.{field.name}"
        if isinstance(value, (tuple, list)):
            if not 1 <= len(value) <= MAX_LAYERS:
                raise _error(path, f"header field {where!r} has {len(value)} entries; it must have 1 to {MAX_LAYERS}")
            for index, item in enumerate(value):
                _number(path, f"{where}[{index}]", item, *limits.get(field.name, DEFAULT_INT_BOUNDS), integer=True)
        elif isinstance(value, bool) or isinstance(value, str):
            continue  # Literal and bool fields: from_dict checked them; registry names are checked by the build
        elif isinstance(value, int):
            _number(path, where, value, *limits.get(field.name, DEFAULT_INT_BOUNDS), integer=True)
        elif isinstance(value, float):
            _number(path, where, value, *limits.get(field.name, DEFAULT_FLOAT_BOUNDS))
    return config


def _features(path: Path, header: dict):
    from voiceconv.audio.features import FeatureConfig

    features = _config(path, header, "features", FeatureConfig, "features")
    cells = features.n_freqs * features.sample_rate / features.hop_length
    if cells > MAX_STFT_CELLS_PER_SECOND:
        raise _error(path, f"header field 'features' asks for {cells:,.0f} STFT cells per second of audio "
                           f"((n_fft/2+1) * sample_rate / hop_length); at most {MAX_STFT_CELLS_PER_SECOND:,}")
    return features


def _training(path: Path, header: dict) -> None:
    """The optional ``training`` section: what the page shows of it (the recipe inside is not used to load)."""
    training = _section(path, header, "training", required=False)
    if training is None:
        return
    if training.get("steps") is not None:
        _number(path, "training.steps", training["steps"], *DEFAULT_INT_BOUNDS, integer=True)
    if training.get("training_seconds") is not None:
        _number(path, "training.training_seconds", training["training_seconds"], 0.0, 1e10)
    if training.get("hardware") is not None:
        _text(path, "training.hardware", training["hardware"])


def _image(path: Path, header: dict, channels: int, square: bool = True) -> tuple[int, int, int]:
    image = _section(path, header, "image")
    if image.get("channels") != channels or isinstance(image.get("channels"), bool):
        raise _error(path, f"header field 'image.channels' is {_shown(image.get('channels'))}; this kind of model "
                           f"has {channels}")
    for field in ("height", "width"):
        if field not in image:
            raise _error(path, f"header field 'image.{field}' is missing")
        _number(path, f"image.{field}", image[field], *BOUNDS["image"][field], integer=True)
    if square and image["height"] != image["width"]:
        raise _error(path, f"header fields 'image.height' ({image['height']}) and 'image.width' ({image['width']}) "
                           "differ; face models are square")
    if "range" in image and image["range"] != [-1, 1]:
        raise _error(path, f"header field 'image.range' is {_shown(image['range'])}; models work on [-1, 1]")
    return channels, image["height"], image["width"]


def _counts(path: Path, header: dict, section: str, field: str) -> None:
    """An optional ``{name: count}`` table such as ``data.faces`` (shown on the Models tab)."""
    values = _section(path, header, section, required=False)
    if values is None or values.get(field) is None:
        return
    table = values[field]
    if not isinstance(table, dict):
        raise _error(path, f"header field '{section}.{field}' must be a mapping, got {_shown(table)}")
    for name, count in table.items():
        _text(path, f"{section}.{field}", name, MAX_NAME_CHARS)
        _number(path, f"{section}.{field}.{name}", count, *DEFAULT_INT_BOUNDS, integer=True)


def _activation(path: Path, channels: tuple[int, ...], shape: tuple[int, int, int]) -> None:
    widest = max(channels) * shape[1] * shape[2]
    if widest > MAX_IMAGE_ACTIVATION:
        raise _error(path, f"header fields 'model' and 'image' make layers of {widest:,} values per image "
                           f"(widest channels x height x width); at most {MAX_IMAGE_ACTIVATION:,}")


# --- tensors ------------------------------------------------------------------------------------------------------


def _on_meta(path: Path, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The network a header describes, built on the meta device: shapes without memory."""
    try:
        with torch.device("meta"):
            return build()
    except Exception as err:  # noqa: BLE001 -- whatever the header makes the constructors raise
        raise _error(path, f"header field 'model' describes no network that can be built "
                           f"({type(err).__name__}: {_shown(str(err))})") from None


def _state(module: torch.nn.Module, prefix: str = "", optional: tuple[str, ...] = ("steps_done",)) -> dict[str, Expected]:
    return {f"{prefix}{name}": Expected(tuple(t.shape), t.is_floating_point(), name not in optional)
            for name, t in module.state_dict().items()}


def _compare(path: Path, expected: dict[str, Expected], layout: Mapping[str, Layout]) -> None:
    """Every tensor the architecture needs is there, with its shape and type, and nothing else is."""
    missing = sorted(name for name, want in expected.items() if want.required and name not in layout)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise _error(path, f"tensor {missing[0]!r} is missing{more}; the weights do not match the header's "
                           "architecture")
    unexpected = sorted(name for name in layout if name not in expected)
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise _error(path, f"tensor {_shown(unexpected[0])} is not part of the header's architecture{more}")
    for name, (dtype, shape) in layout.items():
        want = expected[name]
        if not want.fits(shape):
            raise _error(path, f"tensor {name!r} has shape {list(shape)}; the header's architecture needs "
                               f"{want.describe()}")
        if (dtype in FLOAT_DTYPES) != want.floating:
            raise _error(path, f"tensor {name!r} has type {dtype}; it must be "
                               f"{'floating point' if want.floating else 'an integer'}")


# --- the kinds ----------------------------------------------------------------------------------------------------


def _speakers(path: Path, header: dict) -> None:
    speakers = _section(path, header, "speakers")
    for side in ("a", "b"):
        entry = speakers.get(side)
        if not isinstance(entry, dict):
            raise _error(path, f"header field 'speakers.{side}' is {'missing' if entry is None else _shown(entry)}; "
                               "it must be a mapping with the speaker's name")
        if "name" not in entry:
            raise _error(path, f"header field 'speakers.{side}.name' is missing")
        _name(path, f"speakers.{side}.name", entry["name"])
        if entry.get("training_seconds") is not None:
            _number(path, f"speakers.{side}.training_seconds", entry["training_seconds"], 0.0, 1e10)


def _registries(path: Path, config) -> None:
    """A CycleGAN's network names, each one of its registry's."""
    from voiceconv.nn import DISCRIMINATORS, GENERATOR_ARCHITECTURES
    from voiceconv.nn.generators import OUTPUT_MODES

    for field, valid in (("generator", GENERATOR_ARCHITECTURES), ("discriminator", DISCRIMINATORS),
                         ("generator_output", OUTPUT_MODES)):
        value = getattr(config, field)
        if value not in valid:
            raise _error(path, f"header field 'model.{field}' is {_shown(value)}; valid: {', '.join(valid)}")


def _voice_tensors(path: Path, header: dict) -> dict[str, Expected]:
    from voiceconv.convert import model_alignments
    from voiceconv.models import voice_model
    from voiceconv.models.cyclegan import CycleGANConfig, build_image_generator

    features = _features(path, header)
    config = _config(path, header, "model", CycleGANConfig, "cyclegan")
    _registries(path, config)
    _speakers(path, header)
    _training(path, header)
    model_alignments(header, path)  # the optional 'alignment' field
    per_second = config.generator_channels * features.n_mels * features.sample_rate / features.hop_length
    if per_second > MAX_GENERATOR_VALUES_PER_SECOND:
        raise _error(path, f"header fields 'model.generator_channels' and 'features' make {per_second:,.0f} generator "
                           f"values per second of audio; at most {MAX_GENERATOR_VALUES_PER_SECOND:,}")
    in_ch = 2 if config.mask_frames else 1  # filling in frames: the mask travels as a channel
    net = _on_meta(path, lambda: build_image_generator(config, in_ch, 1, features.n_mels))
    expected = {name: shape for prefix in voice_model.GENERATORS.values()
                for name, shape in _state(net, f"{prefix}.", optional=()).items()}
    groups = [(side, True) for side in voice_model.SPEAKERS] + [(d, False) for d in voice_model.ALIGNED_INPUTS]
    for group, required in groups:  # per-bin statistics [n_mels]; a2b / b2a: of the pitch-aligned input
        for name in voice_model.stats_names(group):
            expected[name] = Expected((features.n_mels,), required=required)
    return expected


def _voice_values(path: Path, header: dict, tensors: Mapping[str, torch.Tensor]) -> None:
    from voiceconv.models import voice_model

    for group in voice_model.ALIGNED_INPUTS:
        present = [name for name in voice_model.stats_names(group) if name in tensors]
        if len(present) == 1:
            raise _error(path, f"tensor {present[0]!r} comes without its partner; the aligned statistics need "
                               "both mean and std")
    for name, tensor in tensors.items():
        if name.startswith("stats.") and name.endswith(".std") and float(tensor.min()) < MIN_STATS_STD:
            raise _error(path, f"tensor {name!r} holds standard deviations below {MIN_STATS_STD:g}; "
                               "conversion would divide by them")


def _vae_tensors(path: Path, header: dict) -> dict[str, Expected]:
    from voiceconv.models.vae import VAE, DebiasingVAE, VAEConfig

    kind = header["kind"]
    shape = _image(path, header, channels=3)
    config = _config(path, header, "model", VAEConfig, "vae")
    _activation(path, config.channels, shape)
    _counts(path, header, "data", "faces")
    _training(path, header)
    cls = DebiasingVAE if kind == FACE_DBVAE else VAE
    expected = _state(_on_meta(path, lambda: cls(*shape, config)))
    expected["latent_kl"] = Expected((config.latent,))  # [L] mean KL per latent over the training faces
    expected["typical_code"] = Expected((config.latent,), required=False)  # absent from older files
    if kind == FACE_DBVAE:
        expected["training_latent_means"] = Expected((None, config.latent), required=False)  # [N, L]
    return expected


def _classifier_tensors(path: Path, header: dict) -> dict[str, Expected]:
    from voiceconv.models.vae import FaceClassifier, VAEConfig

    shape = _image(path, header, channels=3)
    config = _config(path, header, "model", VAEConfig, "vae")
    _activation(path, config.channels, shape)
    _counts(path, header, "data", "faces")
    _training(path, header)
    return _state(_on_meta(path, lambda: FaceClassifier(*shape, config)))


def _gan_tensors(path: Path, header: dict) -> dict[str, Expected]:
    from voiceconv.models.gan import DCGAN, GANConfig

    shape = _image(path, header, channels=3)
    config = _config(path, header, "model", GANConfig, "gan")
    _activation(path, config.generator_channels + config.discriminator_channels, shape)
    _counts(path, header, "data", "faces")
    _training(path, header)
    # Only the generator is in the file; without spectral norm the discriminator builds fast on the meta device.
    model = _on_meta(path, lambda: DCGAN(*shape, dataclasses.replace(config, spectral_norm=False)))
    return _state(model.G, "G.")


def _face_cyclegan_tensors(path: Path, header: dict) -> dict[str, Expected]:
    from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig

    shape = _image(path, header, channels=3)
    config = _config(path, header, "model", CycleGANConfig, "cyclegan")
    _registries(path, config)
    _activation(path, (config.generator_channels,), shape)
    _training(path, header)
    domains = _section(path, header, "domains", required=False) or {}
    for side, entry in domains.items():
        if not isinstance(entry, dict) or "name" not in entry:
            raise _error(path, f"header field 'domains.{side}' must be a mapping with the domain's name")
        _name(path, f"domains.{side}.name", entry["name"])
    model = _on_meta(path, lambda: CycleGAN(shape[0], shape[1], config))
    return _state(model.G_AB, "G_AB.", optional=()) | _state(model.G_BA, "G_BA.", optional=())


def _speech_vae_tensors(path: Path, header: dict) -> dict[str, Expected]:
    from voiceconv.models.vae import VAE, VAEConfig

    features = _features(path, header)
    shape = _image(path, header, channels=1, square=False)
    if shape[1] != features.n_mels:
        raise _error(path, f"header field 'image.height' is {shape[1]}; it must equal features.n_mels "
                           f"({features.n_mels})")
    config = _config(path, header, "model", VAEConfig, "vae")
    _activation(path, config.channels, shape)
    speaker = _section(path, header, "speaker", required=False)
    if speaker is not None and "name" in speaker:
        _name(path, "speaker.name", speaker["name"])
    _training(path, header)
    return _state(_on_meta(path, lambda: VAE(*shape, config)))


#: Every kind of model file voiceconv writes, and how each is checked.
KINDS: dict[str, Kind] = {
    VOICE_KIND: Kind("a voice conversion model", _voice_tensors, _voice_values),
    FACE_VAE: Kind("a face VAE", _vae_tensors),
    FACE_DBVAE: Kind("a debiasing face VAE", _vae_tensors),
    FACE_GAN: Kind("a face GAN", _gan_tensors),
    FACE_CYCLEGAN: Kind("a face CycleGAN", _face_cyclegan_tensors),
    FACE_CLASSIFIER: Kind("a face classifier", _classifier_tensors),
    SPEECH_VAE: Kind("a speech VAE", _speech_vae_tensors),
}


@dataclass(frozen=True)
class VoiceModelFile:
    """A checked voice conversion model file: its header, its tensors (on the CPU) and the configs they fit."""

    header: dict
    tensors: dict[str, torch.Tensor]
    features: Any  # FeatureConfig
    config: Any  # CycleGANConfig


def load_voice_model(path: str | Path) -> VoiceModelFile:
    """Load a ``voice-cyclegan`` file, every field and tensor checked; ModelFileError names the file and the field."""
    from voiceconv.audio.features import FeatureConfig
    from voiceconv.config import from_dict
    from voiceconv.modelfile import load_model_file
    from voiceconv.models.cyclegan import CycleGANConfig

    tensors, header = load_model_file(path, kinds=(VOICE_KIND,))
    return VoiceModelFile(header, tensors, from_dict(FeatureConfig, header["features"]),
                          from_dict(CycleGANConfig, header["model"]))
