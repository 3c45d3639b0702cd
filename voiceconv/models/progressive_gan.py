"""Progressively growing GAN (Karras et al. 2018): generator and discriminator start at a low resolution and
gain a block per doubling as training goes, each new block faded in.

What this keeps of the paper, at the lecture's 64 x 64 faces:

* **Growing.** Level 0 draws ``start_size`` x ``start_size`` images; level k draws ``start_size * 2**k``. While
  level k fades in, the generator's output is ``(1 - alpha) * upsample(rgb_{k-1}) + alpha * rgb_k`` and the
  discriminator's input side mirrors it; real images are shown at the same effective resolution
  (:func:`real_at`). ``alpha`` rises linearly over ``fade_images`` images; each level then trains alone for
  ``images_per_stage`` images (:func:`growth_stage`). The last level stays.
* **Minibatch standard deviation** (sec. 3): one extra feature map at the discriminator's end, the average over
  features and pixels of each feature's standard deviation over the batch, so that D sees how varied a batch is.
* **Equalized learning rate** (sec. 4.1): weights drawn from N(0, 1) and scaled at run time by He's constant
  sqrt(2 / fan_in), so Adam's steps are the same size for every layer.
* **Pixelwise feature normalization** in the generator (sec. 4.2), and the small drift penalty on D's real scores.

Left out: the WGAN-GP loss (the non-saturating loss of :mod:`voiceconv.models.gan` is used), minibatch groups
(the standard deviation is over the whole batch) and the generator's weight averaging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from voiceconv.errors import ConfigError
from voiceconv.models.base import TrainableModel
from voiceconv.models.gan import GAN_LOSSES


@dataclass(frozen=True)
class ProGANConfig:
    """Architecture, growth schedule, loss and optimizer settings of a progressively growing GAN."""

    latent: int = 64
    start_size: int = 8
    channels: tuple[int, ...] = (128, 128, 64, 32)  # feature widths at 8, 16, 32 and 64 pixels
    images_per_stage: int = 40_000  # images a level trains alone (the first level too)
    fade_images: int = 40_000  # images over which a new level fades in
    equalized_lr: bool = True
    minibatch_std: bool = True
    loss: Literal["nonsaturating", "lsgan"] = "nonsaturating"
    drift_weight: float = 1e-3  # epsilon * E[D(x)^2] keeps D's real scores near 0 (Karras et al. 2018, app. A.1)
    generator_lr: float = 1e-3
    discriminator_lr: float = 1e-3
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99

    def __post_init__(self):
        if self.start_size < 4 or self.start_size & (self.start_size - 1):
            raise ConfigError(f"model.start_size={self.start_size} must be a power of two >= 4")
        if not self.channels or min(self.channels) < 1 or self.latent < 1:
            raise ConfigError(f"model.channels={list(self.channels)} and model.latent={self.latent} must be positive "
                              "(at least one level)")
        if self.images_per_stage < 1 or self.fade_images < 1:
            raise ConfigError(f"model.images_per_stage={self.images_per_stage} and model.fade_images="
                              f"{self.fade_images} must be positive")
        if self.loss not in GAN_LOSSES:
            raise ConfigError(f"unknown GAN loss {self.loss!r}; valid names: {', '.join(GAN_LOSSES)}")

    @property
    def levels(self) -> int:
        return len(self.channels)

    def resolution(self, level: int) -> int:
        """Pixels per side drawn at ``level``."""
        return self.start_size * 2**level

    @property
    def final_size(self) -> int:
        return self.resolution(self.levels - 1)


def growth_stage(images_seen: int, config: ProGANConfig) -> tuple[int, float]:
    """(level, alpha) after ``images_seen`` training images: level 0 alone for ``images_per_stage`` images, then
    for each next level ``fade_images`` with alpha rising linearly from 0 to 1 and ``images_per_stage`` at 1."""
    remaining = images_seen - config.images_per_stage
    if remaining < 0:
        return 0, 1.0
    for level in range(1, config.levels):
        if remaining < config.fade_images:
            return level, remaining / config.fade_images
        remaining -= config.fade_images + config.images_per_stage
        if remaining < 0:
            return level, 1.0
    return config.levels - 1, 1.0


# --- layers -----------------------------------------------------------------------------------------
class EqualizedConv2d(nn.Module):
    """A convolution whose weights ~ N(0, 1) are scaled by sqrt(2 / fan_in) at run time (equalized learning rate)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.scale, self.padding = math.sqrt(2 / (in_ch * kernel_size**2)), kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_ch, H, W]
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """A linear layer with weights ~ N(0, 1) scaled by sqrt(gain / fan_in) at run time."""

    def __init__(self, in_features: int, out_features: int, gain: float = 2.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = math.sqrt(gain / in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in] -> [B, out]
        return F.linear(x, self.weight * self.scale, self.bias)


def conv(in_ch: int, out_ch: int, kernel_size: int, equalized: bool) -> nn.Module:
    """A same-padded convolution, equalized or plain."""
    if equalized:
        return EqualizedConv2d(in_ch, out_ch, kernel_size)
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)


def linear(in_features: int, out_features: int, equalized: bool, gain: float = 2.0) -> nn.Module:
    return EqualizedLinear(in_features, out_features, gain) if equalized else nn.Linear(in_features, out_features)


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, ...]``: each pixel's feature vector scaled to unit root-mean-square (Karras et al. 2018, sec. 4.2)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class PixelNorm(nn.Module):
    """:func:`pixel_norm` as a layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(x)


def minibatch_std(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C + 1, H, W]``: the mean over features and pixels of each feature's standard
    deviation over the batch, appended as one constant feature map."""
    spread = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)  # scalar
    return torch.cat([x, spread.expand(x.shape[0], 1, *x.shape[2:])], dim=1)


def _activated(layer: nn.Module, normalize: bool) -> nn.Sequential:
    return nn.Sequential(layer, nn.LeakyReLU(0.2), *([PixelNorm()] if normalize else []))


# --- networks ---------------------------------------------------------------------------------------
class ProgressiveGenerator(nn.Module):
    """``z [B, latent] -> [B, C, s, s]`` with ``s = resolution(level)``; ``images_seen`` (a buffer, saved with the
    weights) says how far training has grown it."""

    def __init__(self, config: ProGANConfig, out_ch: int):
        super().__init__()
        c, eq, size = config.channels, config.equalized_lr, config.start_size
        self.config = config
        self.project = linear(config.latent, c[0] * size * size, eq, gain=2 / 16)  # the paper's 4x4 dense gain
        self.stem = _activated(conv(c[0], c[0], 3, eq), normalize=True)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                  _activated(conv(c[k - 1], c[k], 3, eq), True),
                                                  _activated(conv(c[k], c[k], 3, eq), True))
                                    for k in range(1, config.levels))
        self.to_rgb = nn.ModuleList(conv(width, out_ch, 1, eq) for width in c)
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))

    def stage(self) -> tuple[int, float]:
        """(level, alpha) of the growth so far."""
        return growth_stage(int(self.images_seen), self.config)

    def features(self, z: torch.Tensor, level: int) -> torch.Tensor:
        """Feature maps ``[B, channels[level], s, s]`` at ``level``."""
        size = self.config.start_size
        h = self.project(pixel_norm(z)).view(z.shape[0], -1, size, size)  # [B, c0, s0, s0]
        h = pixel_norm(F.leaky_relu(h, 0.2))
        h = self.stem(h)
        for block in self.blocks[:level]:
            h = block(h)
        return h

    def forward(self, z: torch.Tensor, level: int, alpha: float = 1.0) -> torch.Tensor:
        """Images ``[B, C, s, s]`` at ``level``; while it fades in, blended with the upsampled level below."""
        if level == 0 or alpha >= 1:
            return self.to_rgb[level](self.features(z, level))
        previous = self.features(z, level - 1)  # [B, c_{k-1}, s/2, s/2]
        new = self.to_rgb[level](self.blocks[level - 1](previous))  # [B, C, s, s]
        old = F.interpolate(self.to_rgb[level - 1](previous), scale_factor=2, mode="nearest")
        return (1 - alpha) * old + alpha * new


class ProgressiveDiscriminator(nn.Module):
    """``[B, C, s, s]`` at ``level`` -> logits ``[B, 1]``: the generator mirrored, minibatch std at the end."""

    def __init__(self, config: ProGANConfig, in_ch: int):
        super().__init__()
        c, eq, size = config.channels, config.equalized_lr, config.start_size
        self.config = config
        self.from_rgb = nn.ModuleList(_activated(conv(in_ch, width, 1, eq), False) for width in c)
        self.blocks = nn.ModuleList(nn.Sequential(_activated(conv(c[k], c[k], 3, eq), False),
                                                  _activated(conv(c[k], c[k - 1], 3, eq), False),
                                                  nn.AvgPool2d(2))
                                    for k in range(1, config.levels))
        extra = 1 if config.minibatch_std else 0
        self.final_conv = _activated(conv(c[0] + extra, c[0], 3, eq), False)
        self.head = nn.Sequential(nn.Flatten(), _activated(linear(c[0] * size * size, c[0], eq), False),
                                  linear(c[0], 1, eq, gain=1.0))

    def forward(self, images: torch.Tensor, level: int, alpha: float = 1.0) -> torch.Tensor:
        h = self.from_rgb[level](images)  # [B, c_level, s, s]
        if level > 0:
            h = self.blocks[level - 1](h)  # [B, c_{level-1}, s/2, s/2]
            if alpha < 1:
                h = (1 - alpha) * self.from_rgb[level - 1](F.avg_pool2d(images, 2)) + alpha * h
            for block in reversed(self.blocks[:level - 1]):
                h = block(h)
        if self.config.minibatch_std:
            h = minibatch_std(h)
        return self.head(self.final_conv(h))


def real_at(images: torch.Tensor, level: int, alpha: float, config: ProGANConfig) -> torch.Tensor:
    """Full-size real images ``[B, C, S, S]`` as the discriminator sees them at ``level``: average-pooled to its
    resolution and, while it fades in, blended with the level below upsampled, as the generator's output is."""
    size = config.resolution(level)
    real = F.adaptive_avg_pool2d(images, size)
    if level == 0 or alpha >= 1:
        return real
    low = F.interpolate(F.adaptive_avg_pool2d(images, size // 2), scale_factor=2, mode="nearest")
    return (1 - alpha) * low + alpha * real


class ProgressiveGAN(TrainableModel):
    """Generator ``G`` and discriminator ``D`` grown together (see the module docstring); trained on full-size
    ``batch["images"]`` ``[B, C, S, S]`` in [-1, 1], with ``S`` the config's final size."""

    def __init__(self, channels: int, height: int, width: int, config: ProGANConfig = ProGANConfig(), seed: int = 0):
        super().__init__()
        if height != config.final_size or width != config.final_size:
            raise ConfigError(f"a progressive GAN of model.start_size={config.start_size} and {config.levels} "
                              f"levels draws {config.final_size} x {config.final_size} images, not {height} x {width}")
        self.config, self.image_shape = config, (channels, height, width)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.G = ProgressiveGenerator(config, channels)
            self.D = ProgressiveDiscriminator(config, channels)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator().manual_seed(seed)  # latent codes
        betas = (config.adam_beta1, config.adam_beta2)
        self.optimizers = {"generator": torch.optim.Adam(self.G.parameters(), config.generator_lr, betas),
                           "discriminator": torch.optim.Adam(self.D.parameters(), config.discriminator_lr, betas)}

    def latents(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[count, latent]`` standard normal codes on the model's device."""
        z = torch.randn(count, self.config.latent, generator=generator or self.generator)
        return z.to(next(self.parameters()).device)

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` images ``[count, C, S, S]`` in [-1, 1] at the growth reached, enlarged (nearest) to full size."""
        level, alpha = self.G.stage()
        images = self.G(self.latents(count, generator), level, alpha).clamp(-1, 1)
        scale = self.config.final_size // images.shape[-1]
        return F.interpolate(images, scale_factor=scale, mode="nearest") if scale > 1 else images

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One discriminator step, then one generator step, at the current level and fade."""
        discriminator_loss, generator_loss = GAN_LOSSES[self.config.loss]
        level, alpha = self.G.stage()
        real = real_at(batch["images"], level, alpha, self.config)  # [B, C, s, s]
        fake = self.G(self.latents(real.shape[0]), level, alpha)
        real_scores = self.D(real, level, alpha).float()
        losses = {"D": discriminator_loss(real_scores, self.D(fake.detach(), level, alpha).float())}
        drift = self.config.drift_weight * real_scores.pow(2).mean()
        self.optimize(losses["D"] + drift, self.optimizers["discriminator"], self.D.parameters())
        losses["G"] = generator_loss(self.D(fake, level, alpha).float())
        self.optimize(losses["G"], self.optimizers["generator"], self.G.parameters())
        self.G.images_seen += real.shape[0]
        self.steps_done += 1
        return {**{name: float(value.detach()) for name, value in losses.items()}, "level": float(level),
                "alpha": alpha}
