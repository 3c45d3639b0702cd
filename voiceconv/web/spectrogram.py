"""Log-mel images as coloured pictures: time left to right, low frequencies at the bottom."""

from __future__ import annotations

import numpy as np
import torch

#: matplotlib's "magma" colormap at nine evenly spaced points (black - purple - orange - pale yellow).
MAGMA_ANCHORS = np.array([(0, 0, 4), (29, 17, 71), (81, 18, 124), (131, 38, 129), (183, 55, 121),
                          (231, 82, 99), (252, 137, 97), (254, 196, 136), (252, 253, 191)], dtype=np.float64)


def colorize(image: torch.Tensor | np.ndarray, row_scale: int = 2, max_column_scale: int = 3,
             target_width: int = 1200) -> np.ndarray:
    """A log-mel image ``[1, n_mels, frames]`` (or ``[n_mels, frames]``) in [-1, 1] -> RGB ``uint8 [H, W, 3]``.

    Row 0 of the input (the lowest mel band) becomes the picture's bottom row.
    Rows are repeated ``row_scale`` times and columns up to
    ``max_column_scale`` times (while the picture stays within
    ``target_width``), so short clips stay crisp when the browser enlarges them.
    """
    values = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image, dtype=np.float64)
    values = values.reshape(-1, values.shape[-1])  # [n_mels, frames]
    picture = np.flipud(_magma(values))
    column_scale = max(1, min(max_column_scale, target_width // values.shape[1]))
    return np.repeat(np.repeat(picture, row_scale, axis=0), column_scale, axis=1)


def _magma(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] ``[...]`` -> RGB ``uint8 [..., 3]``, linearly between the colormap's anchors."""
    levels = (np.clip(values, -1.0, 1.0) + 1.0) / 2.0 * (len(MAGMA_ANCHORS) - 1)
    lower = np.minimum(np.floor(levels).astype(int), len(MAGMA_ANCHORS) - 2)
    weight = (levels - lower)[..., None]
    rgb = MAGMA_ANCHORS[lower] * (1 - weight) + MAGMA_ANCHORS[lower + 1] * weight
    return np.round(rgb).astype(np.uint8)
