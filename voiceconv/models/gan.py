"""DCGAN (Radford et al. 2016): a generator ``z -> [B, C, H, W]`` against a discriminator ``[B, C, H, W] -> score``.

Both networks come from :mod:`voiceconv.nn.encoders`: the generator is a
:class:`~voiceconv.nn.ConvDecoder` (transposed convs, batch norm, ReLU, tanh),
the discriminator a :class:`~voiceconv.nn.ConvEncoder` with one output
(strided convs, LeakyReLU(0.2)). Stable defaults: Adam 2e-4 with betas
(0.5, 0.999) as in the DCGAN paper, the non-saturating loss, and spectral norm
instead of batch norm in the discriminator (Miyato et al. 2018), which bounds
D's Lipschitz constant so its gradients stay informative to G.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from voiceconv.losses import (lsgan_discriminator_loss, lsgan_generator_loss, nonsaturating_discriminator_loss,
                              nonsaturating_generator_loss)
from voiceconv.models.base import TrainableModel
from voiceconv.nn.encoders import ConvDecoder, ConvEncoder

GAN_LOSSES: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "nonsaturating": (nonsaturating_discriminator_loss, nonsaturating_generator_loss),
    "lsgan": (lsgan_discriminator_loss, lsgan_generator_loss),
}


@dataclass(frozen=True)
class GANConfig:
    """Architecture, loss and optimizer settings of a DCGAN."""

    latent: int = 64
    generator_channels: tuple[int, ...] = (256, 128, 64, 32)  # from the 4 x 4 map up; 64 x 64 output
    discriminator_channels: tuple[int, ...] = (32, 64, 128, 256)
    discriminator_norm: Literal["batch", "instance", "none"] = "none"
    spectral_norm: bool = True  # in the discriminator
    loss: Literal["nonsaturating", "lsgan"] = "nonsaturating"
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999


class DCGAN(TrainableModel):
    """Generator ``G: [B, latent] -> [B, C, H, W]`` and discriminator ``D: [B, C, H, W] -> [B, 1]`` logits."""

    def __init__(self, channels: int, height: int, width: int, config: GANConfig = GANConfig(), seed: int = 0):
        super().__init__()
        if config.loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {config.loss!r}; valid names: {', '.join(GAN_LOSSES)}")
        self.config, self.image_shape = config, (channels, height, width)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.G = ConvDecoder(config.latent, channels, height, width, config.generator_channels, "batch")
            self.D = ConvEncoder(channels, height, width, config.discriminator_channels, 1, config.discriminator_norm,
                                 spectral_norm=config.spectral_norm)
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
        """``count`` generated images ``[count, C, H, W]`` in (-1, 1)."""
        return self.G(self.latents(count, generator))

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One discriminator step, then one generator step, on real ``batch["images"]`` ``[B, C, H, W]``."""
        discriminator_loss, generator_loss = GAN_LOSSES[self.config.loss]
        real = batch["images"]
        fake = self.G(self.latents(real.shape[0]))  # G(z)
        losses = {"D": discriminator_loss(self.D(real).float(), self.D(fake.detach()).float())}
        self.optimize(losses["D"], self.optimizers["discriminator"], self.D.parameters())
        losses["G"] = generator_loss(self.D(fake).float())  # D(G(z)) with the updated D
        self.optimize(losses["G"], self.optimizers["generator"], self.G.parameters())
        self.steps_done += 1
        return {name: float(value.detach()) for name, value in losses.items()}

