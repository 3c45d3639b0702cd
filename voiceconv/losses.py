"""Loss functions as small pure functions, each citing the equation it implements.

Shapes: discriminator scores are any shape (PatchGAN maps ``[B, 1, h, w]``);
images are ``[B, C, H, W]``.
"""

from __future__ import annotations

import torch


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN discriminator loss (Mao et al. 2017, eq. 9 with a=0, b=1):
    1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    return 0.5 * ((real_scores - 1.0).pow(2).mean() + fake_scores.pow(2).mean())


def lsgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN generator loss (Mao et al. 2017, eq. 9 with c=1): E[(D(G(z)) - 1)^2]."""
    return (fake_scores - 1.0).pow(2).mean()


def cycle_consistency_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Cycle-consistency loss (Zhu et al. 2017, eq. 2): E[ ||F(G(x)) - x||_1 ]."""
    return (reconstructed - original).abs().mean()


def identity_loss(mapped: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Identity-mapping loss (Zhu et al. 2017, sec. 5.2; Kaneko & Kameoka 2018, eq. 4): E[ ||G(y) - y||_1 ]."""
    return (mapped - original).abs().mean()


def gaussian_kl_divergence(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) per sample, summed over latent dims (Kingma & Welling 2014, app. B):
    -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2). ``[B, D] -> [B]``."""
    return -0.5 * (1.0 + log_variance - mean.pow(2) - log_variance.exp()).sum(dim=-1)
