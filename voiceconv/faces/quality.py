"""How good a face model's pictures are, by the measures of the lecture's claims (``benchmarks/face_models.py``).

* reconstruction error: per-pixel mean squared error of an autoencoder's or VAE's reconstructions of faces it
  never trained on (pixels in [-1, 1]);
* share called faces: the fraction of generated images a face classifier (a DB-VAE's or a plain classifier's
  logit > 0) takes for faces;
* diversity: the mean distance between two different generated images, in pixels (RMS per pixel) and in the
  judge's code space (its encoder's latent means), which ignores what the judge does not look at. A model that
  draws the same face every time scores 0 on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from voiceconv.models.vae import VAE, Autoencoder, DebiasingVAE, FaceClassifier


@torch.no_grad()
def reconstruction_error(model: VAE | Autoencoder, images: torch.Tensor, chunk: int = 256) -> float:
    """Mean squared pixel error of ``model``'s reconstructions of ``images`` ``[N, C, H, W]`` in [-1, 1]."""
    total = sum(float((model.reconstruct(part) - part).pow(2).sum()) for part in images.split(chunk))
    return total / images.numel()


@torch.no_grad()
def share_called_faces(judge: DebiasingVAE | FaceClassifier, images: torch.Tensor, chunk: int = 256) -> float:
    """The fraction of ``images`` ``[N, 3, H, W]`` whose face logit under ``judge`` is positive."""
    logits = torch.cat([judge.classify(part) for part in images.split(chunk)])  # [N]
    return float((logits > 0).float().mean())


def mean_pairwise_distance(points: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs of different rows of ``points`` ``[N, D]`` (N >= 2)."""
    if len(points) < 2:
        raise ValueError(f"need at least 2 points for a pairwise distance, got {len(points)}")
    distances = torch.cdist(points.double(), points.double())  # [N, N], zero diagonal
    return float(distances.sum() / (len(points) * (len(points) - 1)))


@dataclass(frozen=True)
class SampleQuality:
    """What :func:`sample_quality` measures on a set of generated images."""

    count: int
    called_faces: float  # share the judge calls faces
    pixel_diversity: float  # mean RMS pixel distance between two images
    code_diversity: float  # mean distance between two images' codes under the judge's encoder


@torch.no_grad()
def sample_quality(images: torch.Tensor, judge: DebiasingVAE) -> SampleQuality:
    """:class:`SampleQuality` of ``images`` ``[N, 3, H, W]`` in [-1, 1], judged by a debiasing VAE (it classifies
    and encodes)."""
    pixels = images.flatten(1) / images[0].numel() ** 0.5  # [N, D]: distances become RMS per pixel
    codes = torch.cat([judge.codes(part) for part in images.split(256)])  # [N, L]
    return SampleQuality(len(images), share_called_faces(judge, images), mean_pairwise_distance(pixels),
                         mean_pairwise_distance(codes))


@torch.no_grad()
def samples_from_code_spread(model: Autoencoder, count: int, seed: int) -> torch.Tensor:
    """``count`` images ``[count, C, H, W]`` an autoencoder decodes from a Gaussian with its training codes'
    per-latent mean and std (codes from N(0, I) are :func:`voiceconv.faces.tools.sample`)."""
    z = torch.randn(count, model.config.latent, generator=torch.Generator().manual_seed(seed))  # [count, L]
    return model.decode(model.code_mean + model.code_std * z)


@torch.no_grad()
def midpoints(model: VAE | Autoencoder, images: torch.Tensor, seed: int) -> torch.Tensor:
    """Decodings of the midpoint between the codes of random pairs of ``images`` ``[N, C, H, W]``, ``[N, C, H, W]``:
    what a straight line between two faces passes through."""
    codes = model.codes(images)  # [N, L]
    partners = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return model.decode((codes + codes[partners]) / 2)
