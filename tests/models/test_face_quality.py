"""The measures behind the face models' tables (benchmarks/face_models.py): reconstruction error, the share of
pictures a judge calls faces, and diversity."""

from __future__ import annotations

import pytest
import torch

from voiceconv.faces.quality import (mean_pairwise_distance, midpoints, reconstruction_error, sample_quality,
                                     samples_from_code_spread, share_called_faces)
from voiceconv.models.vae import AEConfig, Autoencoder, DebiasingVAE, VAEConfig

SHAPE = (3, 16, 16)
TINY = dict(channels=(8, 16), latent=4)


def judge_that_says(logit: float) -> DebiasingVAE:
    """A debiasing VAE whose face logit is ``logit`` for every image (its head's weights zeroed)."""
    judge = DebiasingVAE(*SHAPE, VAEConfig(**TINY)).eval()
    head = judge.encoder.head  # [B, features] -> [B, 1 + 2L]: the face logit first
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[0] = logit
    return judge


def test_mean_pairwise_distance_averages_every_pair_of_different_points():
    points = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])
    assert mean_pairwise_distance(points) == pytest.approx((5 + 8 + 5) / 3)
    assert mean_pairwise_distance(points[[0, 0, 0]]) == 0.0
    with pytest.raises(ValueError, match="at least 2 points"):
        mean_pairwise_distance(points[:1])


def test_share_called_faces_counts_positive_logits_and_identical_samples_have_no_diversity():
    images = torch.rand(6, *SHAPE) * 2 - 1
    assert share_called_faces(judge_that_says(2.0), images) == 1.0
    assert share_called_faces(judge_that_says(-2.0), images) == 0.0
    same = sample_quality(images[[0] * 5], judge_that_says(1.0))
    assert same.count == 5 and same.pixel_diversity == pytest.approx(0.0, abs=1e-6) and same.code_diversity == 0.0
    varied = sample_quality(images, judge_that_says(1.0))
    assert varied.pixel_diversity > 0.3  # uniform noise in [-1, 1]: RMS distance ~0.82


def test_reconstruction_error_is_the_mean_squared_pixel_error_and_codes_sample_around_their_spread():
    model = Autoencoder(*SHAPE, AEConfig(**TINY)).eval()
    images = torch.rand(5, *SHAPE) * 2 - 1
    with torch.no_grad():
        expected = float((model.reconstruct(images) - images).pow(2).mean())
    assert reconstruction_error(model, images, chunk=2) == pytest.approx(expected, rel=1e-5)
    model.register_buffer("code_mean", torch.full((4,), 100.0))
    model.register_buffer("code_std", torch.zeros(4))
    spread = samples_from_code_spread(model, 3, seed=0)
    assert torch.allclose(spread, model.decode(torch.full((3, 4), 100.0)))  # every code is the stored mean
    assert midpoints(model, images[[1, 1]], seed=0).shape == (2, *SHAPE)
