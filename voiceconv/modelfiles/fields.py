"""The generic rules of model-file checking: limits, header fields, and tensors against an architecture.

Every refusal is a :class:`~voiceconv.errors.ModelFileError` of one line naming the file and the field or
tensor. The kinds' own expectations (:mod:`voiceconv.modelfiles.kinds`) are written with these helpers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from voiceconv.audio.features import FeatureConfig
from voiceconv.config import from_dict
from voiceconv.errors import ConfigError, ModelFileError

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
    "progan": {"latent": (1, 4096), "channels": (1, 1024), "start_size": (4, 1024), "adam_beta1": (0.0, 1.0),
               "adam_beta2": (0.0, 1.0)},
    "image": {"height": (8, 1024), "width": (8, 4096)},
}
MAX_LAYERS = 8  # entries of a channel list (each halves or doubles the image)
DEFAULT_INT_BOUNDS = (0, 2**31 - 1)
DEFAULT_FLOAT_BOUNDS = (0.0, 1e6)
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
INT_DTYPES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}

C = TypeVar("C")
#: A tensor as the file declares it, before loading: (dtype name such as "F32", shape).
Layout = tuple[str, tuple[int, ...]]


def error(path: Path, message: str) -> ModelFileError:
    """The one-line refusal of ``path``."""
    return ModelFileError(f"{path}: {message}")


@dataclass(frozen=True)
class Expected:
    """What one tensor of a model file must be: its shape (``None`` for any size along an axis) and type."""

    shape: tuple[int | None, ...]
    floating: bool = True
    required: bool = True

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Whether a declared ``shape`` matches."""
        return len(shape) == len(self.shape) and all(want is None or want == got
                                                     for want, got in zip(self.shape, shape))

    def describe(self) -> str:
        """The shape as a message shows it, e.g. ``[N, 64]``."""
        return "[" + ", ".join("N" if size is None else str(size) for size in self.shape) + "]"


# --- fields -------------------------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """``repr(value)`` cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def section(path: Path, header: dict, name: str, required: bool = True) -> dict | None:
    """The mapping ``header[name]`` (None when optional and absent)."""
    value = header.get(name)
    if value is None:
        if required:
            raise error(path, f"header field {name!r} is missing")
        return None
    if not isinstance(value, dict):
        raise error(path, f"header field {name!r} must be a mapping, got {shown(value)}")
    return value


def number(path: Path, field: str, value: Any, low: float, high: float, integer: bool = False) -> None:
    """Refuse a ``value`` that is not a (whole) number in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise error(path, f"header field {field!r} must be {'a whole number' if integer else 'a number'}, "
                          f"got {shown(value)}")
    if not (low <= value <= high):  # also refuses NaN
        raise error(path, f"header field {field!r} is {shown(value)}; it must be in [{low:g}, {high:g}]")


def text(path: Path, field: str, value: Any, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` when it is text of at most ``limit`` characters."""
    if not isinstance(value, str):
        raise error(path, f"header field {field!r} must be text, got {shown(value)}")
    if len(value) > limit:
        raise error(path, f"header field {field!r} is {len(value)} characters long; at most {limit}")
    return value


def name(path: Path, field: str, value: Any) -> None:
    """A speaker's or domain's name: short, printable, and no file-name tricks (it becomes part of file names)."""
    checked = text(path, field, value, MAX_NAME_CHARS)
    if not checked.strip() or checked in (".", "..") or any(c in checked for c in "/\\") or \
            any(ord(c) < 32 or ord(c) == 127 for c in checked):
        raise error(path, f"header field {field!r} is {shown(checked)}; a name must be printable text without "
                          "'/' or '\\'")


def config(path: Path, header: dict, name_: str, cls: type[C], bounds: str) -> C:
    """The dataclass ``cls`` from header section ``name_`` (types checked by from_dict), every field in range."""
    values = section(path, header, name_)
    try:
        parsed = from_dict(cls, values, name_)
    except (ConfigError, TypeError, ValueError, ArithmeticError) as err:
        raise error(path, f"header field {name_!r} is invalid: {err}") from None
    limits = BOUNDS[bounds]
    for field in dataclasses.fields(cls):
        _in_range(path, f"{name_}.{field.name}", getattr(parsed, field.name), limits.get(field.name))
    return parsed


def _in_range(path: Path, where: str, value: Any, limits: tuple[float, float] | None) -> None:
    if isinstance(value, (tuple, list)):
        if not 1 <= len(value) <= MAX_LAYERS:
            raise error(path, f"header field {where!r} has {len(value)} entries; it must have 1 to {MAX_LAYERS}")
        for index, item in enumerate(value):
            number(path, f"{where}[{index}]", item, *(limits or DEFAULT_INT_BOUNDS), integer=True)
    elif isinstance(value, (bool, str)):
        return  # Literal and bool fields: from_dict checked them; registry names are checked by the build
    elif isinstance(value, int):
        number(path, where, value, *(limits or DEFAULT_INT_BOUNDS), integer=True)
    elif isinstance(value, float):
        number(path, where, value, *(limits or DEFAULT_FLOAT_BOUNDS))


def features(path: Path, header: dict) -> FeatureConfig:
    """The ``features`` section, bounded in the STFT cells a second of audio makes."""
    parsed = config(path, header, "features", FeatureConfig, "features")
    cells = parsed.n_freqs * parsed.sample_rate / parsed.hop_length
    if cells > MAX_STFT_CELLS_PER_SECOND:
        raise error(path, f"header field 'features' asks for {cells:,.0f} STFT cells per second of audio "
                          f"((n_fft/2+1) * sample_rate / hop_length); at most {MAX_STFT_CELLS_PER_SECOND:,}")
    return parsed


def training(path: Path, header: dict) -> None:
    """The optional ``training`` section: what the page shows of it (the recipe inside is not used to load)."""
    values = section(path, header, "training", required=False)
    if values is None:
        return
    if values.get("steps") is not None:
        number(path, "training.steps", values["steps"], *DEFAULT_INT_BOUNDS, integer=True)
    if values.get("training_seconds") is not None:
        number(path, "training.training_seconds", values["training_seconds"], 0.0, 1e10)
    if values.get("hardware") is not None:
        text(path, "training.hardware", values["hardware"])


def image(path: Path, header: dict, channels: int, square: bool = True) -> tuple[int, int, int]:
    """The ``image`` section: ``(channels, height, width)`` of the images a model works on."""
    values = section(path, header, "image")
    if values.get("channels") != channels or isinstance(values.get("channels"), bool):
        raise error(path, f"header field 'image.channels' is {shown(values.get('channels'))}; this kind of model "
                          f"has {channels}")
    for field in ("height", "width"):
        if field not in values:
            raise error(path, f"header field 'image.{field}' is missing")
        number(path, f"image.{field}", values[field], *BOUNDS["image"][field], integer=True)
    if square and values["height"] != values["width"]:
        raise error(path, f"header fields 'image.height' ({values['height']}) and 'image.width' "
                          f"({values['width']}) differ; face models are square")
    if "range" in values and values["range"] != [-1, 1]:
        raise error(path, f"header field 'image.range' is {shown(values['range'])}; models work on [-1, 1]")
    return channels, values["height"], values["width"]


def counts(path: Path, header: dict, name_: str, field: str) -> None:
    """An optional ``{name: count}`` table such as ``data.faces`` (shown on the Models tab)."""
    values = section(path, header, name_, required=False)
    if values is None or values.get(field) is None:
        return
    table = values[field]
    if not isinstance(table, dict):
        raise error(path, f"header field '{name_}.{field}' must be a mapping, got {shown(table)}")
    for key, count in table.items():
        text(path, f"{name_}.{field}", key, MAX_NAME_CHARS)
        number(path, f"{name_}.{field}.{key}", count, *DEFAULT_INT_BOUNDS, integer=True)


def activation(path: Path, channels: tuple[int, ...], shape: tuple[int, int, int]) -> None:
    """Refuse layers wider than :data:`MAX_IMAGE_ACTIVATION` values per image."""
    widest = max(channels) * shape[1] * shape[2]
    if widest > MAX_IMAGE_ACTIVATION:
        raise error(path, f"header fields 'model' and 'image' make layers of {widest:,} values per image "
                          f"(widest channels x height x width); at most {MAX_IMAGE_ACTIVATION:,}")


# --- tensors ------------------------------------------------------------------------------------------------------


def on_meta(path: Path, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """The network a header describes, built on the meta device: shapes without memory."""
    try:
        with torch.device("meta"):
            return build()
    except Exception as err:  # noqa: BLE001 -- whatever the header makes the constructors raise
        raise error(path, f"header field 'model' describes no network that can be built "
                          f"({type(err).__name__}: {shown(str(err))})") from None


def state(module: torch.nn.Module, prefix: str = "",
          optional: tuple[str, ...] = ("steps_done",)) -> dict[str, Expected]:
    """What ``module``'s state dict expects of a file's tensors, under ``prefix``."""
    return {f"{prefix}{key}": Expected(tuple(t.shape), t.is_floating_point(), key not in optional)
            for key, t in module.state_dict().items()}


def compare(path: Path, expected: dict[str, Expected], layout: Mapping[str, Layout]) -> None:
    """Every tensor the architecture needs is there, with its shape and type, and nothing else is."""
    missing = sorted(key for key, want in expected.items() if want.required and key not in layout)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise error(path, f"tensor {missing[0]!r} is missing{more}; the weights do not match the header's "
                          "architecture")
    unexpected = sorted(key for key in layout if key not in expected)
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise error(path, f"tensor {shown(unexpected[0])} is not part of the header's architecture{more}")
    for key, (dtype, shape) in layout.items():
        want = expected[key]
        if not want.fits(shape):
            raise error(path, f"tensor {key!r} has shape {list(shape)}; the header's architecture needs "
                              f"{want.describe()}")
        if (dtype in FLOAT_DTYPES) != want.floating:
            raise error(path, f"tensor {key!r} has type {dtype}; it must be "
                              f"{'floating point' if want.floating else 'an integer'}")
