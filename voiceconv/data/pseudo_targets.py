"""kNN pseudo-targets: for every frame of one speaker, the mean of the other speaker's nearest frames.

Unpaired training has no target for a source frame. kNN-VC (Baas et al.
2023) and the INCA alignment (Erro et al. 2010) make one: match each source
frame to the target speaker's frames in a speaker-normalized space and take
the nearest ones. Here the space is the frame's normalized log-mel image
(each speaker's per-band mean and deviation removed), described by its
first cepstral coefficients (a DCT along frequency, c1..c_n: the envelope's
shape without its level), stacked over a few neighbouring frames so that
matches share their phonetic context. The pseudo-target keeps the source
frame's level and moves its shape part of the way (``blend``) toward the
neighbours' mean::

    t = x + blend * (mean_k(target frames nearest x) - x),  level(t) = level(x)

Taking the neighbours whole (blend 1) replaces the words with the target's
nearest sounds; half way kept them on two held-out pairs (shared/DESIGN.md,
kNN probe), so it is the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CHUNK_FRAMES = 2048  # source frames matched at once: bounds the distance matrix to CHUNK_FRAMES x pool frames


@dataclass(frozen=True)
class PseudoTargetConfig:
    """How pseudo-targets are matched (see the module docstring)."""

    k: int = 8  # nearest target frames averaged
    context: int = 2  # frames on each side stacked into a frame's description
    cepstra: int = 24  # cepstral coefficients c1..c_n describing a frame
    blend: float = 0.5  # how far the target moves toward the neighbours' mean (0 = the source itself)


def dct_matrix(rows: int, coefficients: int) -> torch.Tensor:
    """Orthonormal DCT-II basis ``[coefficients, rows]``: ``c = D @ frame`` for a frame of ``rows`` bands."""
    n = torch.arange(rows, dtype=torch.float64)
    k = torch.arange(coefficients, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / rows * (n + 0.5) * k) * math.sqrt(2.0 / rows)
    basis[0] /= math.sqrt(2.0)
    return basis.float()


def frame_descriptions(image: torch.Tensor, config: PseudoTargetConfig) -> torch.Tensor:
    """A normalized image ``[H, T]`` -> one row per frame ``[T, cepstra * (2 context + 1)]``: the frame's cepstra
    c1..c_n and its neighbours' (edge frames repeated)."""
    rows, frames = image.shape
    cepstra = dct_matrix(rows, config.cepstra + 1)[1:] @ image  # [cepstra, T], c0 (the level) left out
    padded = torch.nn.functional.pad(cepstra[None], (config.context, config.context), mode="replicate")[0]
    shifted = [padded[:, offset:offset + frames] for offset in range(2 * config.context + 1)]
    return torch.cat(shifted, dim=0).T.contiguous()  # [T, cepstra * (2 context + 1)]


class FramePool:
    """Frames to match against: their descriptions ``[N, D]`` (with squared norms) from normalized images."""

    def __init__(self, images: list[torch.Tensor], config: PseudoTargetConfig):
        self.config = config
        self.descriptions = torch.cat([frame_descriptions(image, config) for image in images])  # [N, D]
        self.norms = self.descriptions.pow(2).sum(dim=1)  # [N]
        if len(self.descriptions) < config.k:
            raise ValueError(f"{len(self.descriptions)} target frames are fewer than k={config.k}")

    def nearest(self, image: torch.Tensor) -> torch.Tensor:
        """Indices ``[T, k]`` of the pool's frames nearest each frame of a normalized image ``[H, T]``."""
        descriptions = frame_descriptions(image, self.config)  # [T, D]
        nearest = []
        for chunk in descriptions.split(CHUNK_FRAMES):
            distances = self.norms[None] - 2.0 * chunk @ self.descriptions.T  # [t, N]: squared, up to ||chunk||^2
            nearest.append(distances.topk(self.config.k, dim=1, largest=False).indices)  # [t, k]
        return torch.cat(nearest)


def blend_toward(frames: torch.Tensor, matched: torch.Tensor, blend: float) -> torch.Tensor:
    """``frames`` ``[H, T]`` moved by ``blend`` toward ``matched`` ``[H, T]`` once the latter has each frame's
    level (its mean over rows) replaced by the former's."""
    matched = matched - matched.mean(dim=0, keepdim=True) + frames.mean(dim=0, keepdim=True)
    return frames + blend * (matched - frames)


def knn_pseudo_targets(sources: list[torch.Tensor], targets: list[torch.Tensor],
                       config: PseudoTargetConfig = PseudoTargetConfig()) -> list[torch.Tensor]:
    """For each normalized source image ``[H, T_i]``, its pseudo-target ``[H, T_i]`` among the normalized
    ``targets`` images' frames (see the module docstring)."""
    if not sources:
        return []
    pool = FramePool(targets, config)
    pool_frames = torch.cat(targets, dim=-1).T.contiguous()  # [N, H]
    return [blend_toward(image, pool_frames[pool.nearest(image)].mean(dim=1).T, config.blend) for image in sources]
