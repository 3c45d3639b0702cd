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


def _mean_residual(output: torch.Tensor, target: torch.Tensor, squared: bool) -> torch.Tensor:
    """E[ |output - target| ] (E[ (output - target)^2 ] when ``squared``): the cycle and identity losses' distance."""
    residual = output - target
    return residual.pow(2).mean() if squared else residual.abs().mean()


def cycle_consistency_loss(reconstructed: torch.Tensor, original: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Cycle-consistency loss (Zhu et al. 2017, eq. 2): E[ ||F(G(x)) - x||_1 ].

    ``squared``: E[ ||F(G(x)) - x||_2^2 ] instead. An L1 penalty pulls with constant force however small the
    residual, so a generator that starts as the identity stays exactly there; the squared one lets small
    changes through."""
    return _mean_residual(reconstructed, original, squared)


def identity_loss(mapped: torch.Tensor, original: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Identity-mapping loss (Zhu et al. 2017, sec. 5.2; Kaneko & Kameoka 2018, eq. 4): E[ ||G(y) - y||_1 ]
    (``squared``: E[ ||G(y) - y||_2^2 ], as for the cycle loss)."""
    return _mean_residual(mapped, original, squared)


def pseudo_target_loss(converted: torch.Tensor, pseudo_target: torch.Tensor, bands: int) -> torch.Tensor:
    """Regression toward a kNN pseudo-target on the spectral envelope: E[ ||P(G(x)) - P(t)||_2^2 ], with P the
    average of the image's rows into ``bands`` frequency bands and t the mean of the target speaker's nearest
    frames to x (kNN-VC, Baas et al. 2023, sec. 2; the INCA alignment's nearest-neighbour targets, Erro et al.
    2010, eq. 4). Only the band envelope is compared: it is all an envelope generator can change.
    ``[B, C, H, W]`` twice -> scalar."""
    pooled = torch.nn.functional.adaptive_avg_pool2d(converted - pseudo_target, (bands, converted.shape[-1]))
    return pooled.pow(2).mean()


def gaussian_kl_divergence(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) per sample, summed over latent dims (Kingma & Welling 2014, app. B):
    -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2). ``[B, D] -> [B]``."""
    return -0.5 * (1.0 + log_variance - mean.pow(2) - log_variance.exp()).sum(dim=-1)


def latent_kl(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Each latent's KL to the prior, averaged over the batch, ``[B, L] -> [L]``: large = the latent carries information."""
    return gaussian_kl_divergence(mean[..., None], log_variance[..., None]).mean(dim=0)


def reparameterize(mean: torch.Tensor, log_variance: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The reparameterization trick (Kingma & Welling 2014, eq. 10 with L=1): z = mu + sigma * eps, eps ~ N(0, I).
    ``noise`` is eps, drawn by the caller; gradients flow to ``mean`` and ``log_variance``."""
    return mean + (0.5 * log_variance).exp() * noise


def pixel_reconstruction_loss(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared pixel error ``[B, C, H, W] -> [B]``: -log p(x|z) of a Gaussian decoder (Kingma & Welling
    2014, app. C.2) up to a constant and a scale, which the KL weight beta absorbs (Higgins et al. 2017, eq. 4)."""
    return (reconstructed - original).pow(2).flatten(1).mean(dim=1)


def beta_vae_loss(reconstruction: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """Negative beta-ELBO per sample (Higgins et al. 2017, eq. 4): reconstruction + beta * KL, ``[B] -> [B]``."""
    return reconstruction + beta * kl


def face_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per sample, ``[B] -> [B]`` (face = 1): the classification term L_y of the debiasing VAE
    (Amini et al. 2019, eq. 3)."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")


def nonsaturating_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """GAN discriminator loss (Goodfellow et al. 2014, eq. 1, as a minimization):
    -E[log sigmoid(D(x))] - E[log(1 - sigmoid(D(G(z))))] = E[softplus(-D(x))] + E[softplus(D(G(z)))]."""
    return torch.nn.functional.softplus(-real_logits).mean() + torch.nn.functional.softplus(fake_logits).mean()


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss (Goodfellow et al. 2014, sec. 3): -E[log sigmoid(D(G(z)))] = E[softplus(-D(G(z)))]."""
    return torch.nn.functional.softplus(-fake_logits).mean()
