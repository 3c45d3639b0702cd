"""Spectrogram images as 16-bit greyscale PNG files that carry their feature parameters.

The picture is drawn the way people read spectrograms: low frequencies at the
bottom, time left to right. The :class:`FeatureConfig` is stored as JSON in a
PNG text chunk, so the PNG alone is enough to resynthesize audio, also after
it has been edited in an image editor (as long as the editor keeps text
chunks; otherwise pass the parameters explicitly).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from voiceconv.audio.features import FeatureConfig
from voiceconv.config import from_dict, to_dict
from voiceconv.errors import ConfigError, ImageFileError
from voiceconv.files import atomic_output

METADATA_KEY = "voiceconv:features"
_MAX_PIXELS = 64_000_000  # refuse decompression bombs (about 4 hours of 80-mel audio)
_FULL_SCALE = 65535


def save_spectrogram_png(path: str | Path, image: torch.Tensor, config: FeatureConfig) -> Path:
    """Write an image ``[1, n_mels, frames]`` (or ``[n_mels, frames]``) in [-1, 1] as a 16-bit PNG, atomically."""
    path = Path(path)
    pixels = image.detach().float().cpu().reshape(-1, image.shape[-1]).clamp(-1, 1)  # [n_mels, frames]
    if pixels.shape[0] != config.n_mels:
        raise ValueError(f"image has {pixels.shape[0]} rows but the config says n_mels={config.n_mels}")
    levels = torch.round((pixels + 1.0) / 2.0 * _FULL_SCALE).to(torch.int32).numpy()
    picture = Image.fromarray(np.flipud(levels).astype(np.uint16))  # low frequencies at the bottom
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, json.dumps(to_dict(config)))
    info.add_text("Software", "voiceconv")
    with atomic_output(path) as tmp:
        picture.save(tmp, format="PNG", pnginfo=info)
    return path


def load_spectrogram_png(path: str | Path, config: FeatureConfig | None = None) -> tuple[torch.Tensor, FeatureConfig]:
    """Read a spectrogram PNG -> (image ``[1, n_mels, frames]`` in [-1, 1], its FeatureConfig).

    ``config`` overrides (or replaces missing) metadata, e.g. after an editor dropped it.
    Any greyscale or colour PNG works; colour is converted to luminance.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(path, "no such file")
    try:
        with Image.open(path) as picture:
            width, height = picture.size
            if width * height > _MAX_PIXELS:
                raise ImageFileError(path, f"is {width}x{height} pixels, over the {_MAX_PIXELS:,}-pixel limit")
            picture.load()
            stored = picture.info.get(METADATA_KEY)
            levels, full_scale = _grey_levels(picture)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageFileError(path, f"not a readable image ({err})") from None
    config = config or _config_from_metadata(path, stored)
    if levels.shape[0] != config.n_mels:
        raise ImageFileError(path, f"is {levels.shape[0]} pixels tall but n_mels={config.n_mels}; "
                                   "keep the height when editing, or pass matching feature parameters")
    image = torch.from_numpy(np.flipud(levels).copy()).float() / full_scale * 2.0 - 1.0  # [n_mels, frames]
    return image.unsqueeze(0), config


def read_png_config(path: str | Path) -> FeatureConfig | None:
    """The feature parameters stored in a spectrogram PNG, or None when it has none."""
    path = Path(path)
    try:
        with Image.open(path) as picture:
            stored = picture.info.get(METADATA_KEY)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(path, f"not a readable image ({err})") from None
    return None if stored is None else _config_from_metadata(path, stored)


def _grey_levels(picture: Image.Image) -> tuple[np.ndarray, int]:
    if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(picture, dtype=np.int64), _FULL_SCALE
    return np.asarray(picture.convert("L"), dtype=np.int64), 255


def _config_from_metadata(path: Path, stored: str | None) -> FeatureConfig:
    if stored is None:
        raise ImageFileError(path, f"has no '{METADATA_KEY}' metadata (an editor may have dropped it); "
                                   "pass the feature parameters explicitly, e.g. --set n_mels=128")
    try:
        return from_dict(FeatureConfig, json.loads(stored))
    except (json.JSONDecodeError, ConfigError) as err:
        raise ImageFileError(path, f"has invalid feature metadata ({err})") from None
