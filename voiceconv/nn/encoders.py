"""Convolutional encoders ``[B, C, H, W] -> [B, F]`` and decoders ``[B, F] -> [B, C, H, W]`` (DCGAN-style).

The encoder is the DCGAN discriminator (Radford et al. 2016) with a linear
head: 4x4 stride-2 convolutions, each halving height and width, LeakyReLU(0.2),
no normalization on the first layer. The decoder is the DCGAN generator: a
linear layer to a small map, 4x4 stride-2 transposed convolutions, ReLU, and
tanh on the output (images live in [-1, 1]).

They serve the VAE (encoder -> ``2 * latent`` numbers, decoder from
``latent``), the debiasing VAE (one extra classifier output), the plain
classifier (1 output) and the GAN (discriminator = encoder to 1 score,
generator = decoder). They know nothing about faces or spectrograms: a
64 x 64 RGB face and a 128 x 64 (mels x frames) log-mel crop are both just
``[B, C, H, W]`` with H and W multiples of ``2 ** len(channels)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from voiceconv.errors import ConfigError

NORMS = ("batch", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind not in NORMS:
        raise ConfigError(f"unknown norm {kind!r}; valid names: {', '.join(NORMS)}")
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def bottleneck_size(height: int, width: int, n_layers: int) -> tuple[int, int]:
    """``(H / 2^n, W / 2^n)``; ConfigError unless both divide evenly and leave at least 1 x 1."""
    step = 2**n_layers
    for name, size in (("height", height), ("width", width)):
        if size % step or size < step:
            raise ConfigError(f"image {name} {size} must be a positive multiple of {step} "
                             f"for {n_layers} stride-2 layers")
    return height // step, width // step


class ConvEncoder(nn.Module):
    """``[B, in_ch, H, W] -> [B, out_features]``: one 4x4 stride-2 conv per entry of ``channels``, then linear.

    ``channels=(32, 64, 128, 256)`` on a 64 x 64 face::

        [B, 3, 64, 64] -> [B, 32, 32, 32] -> [B, 64, 16, 16] -> [B, 128, 8, 8] -> [B, 256, 4, 4]
          -> flatten [B, 4096] -> linear [B, out_features]

    ``norm`` (batch | instance | none) follows every conv but the first;
    ``spectral_norm`` wraps every conv and the head (Miyato et al. 2018), the
    stabilizer of a GAN discriminator.
    """

    def __init__(self, in_ch: int, height: int, width: int, channels: Sequence[int], out_features: int,
                 norm: str = "batch", spectral_norm: bool = False):
        super().__init__()
        if not channels:
            raise ConfigError("ConvEncoder needs at least one conv layer (channels is empty)")
        self.in_ch, self.size = in_ch, (height, width)
        rows, cols = bottleneck_size(height, width, len(channels))
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda layer: layer)
        layers = []
        for index, (a, b) in enumerate(zip([in_ch, *channels[:-1]], channels)):
            layer_norm = "none" if index == 0 else norm
            layers += [wrap(nn.Conv2d(a, b, 4, 2, 1, bias=layer_norm != "batch")), _norm(layer_norm, b),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = wrap(nn.Linear(channels[-1] * rows * cols, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_features]
        if x.ndim != 4 or x.shape[1] != self.in_ch or tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"expected input of shape [B, {self.in_ch}, {self.size[0]}, {self.size[1]}], "
                             f"got {list(x.shape)}")
        return self.head(self.features(x).flatten(1))  # [B, c_last, H/2^n, W/2^n] -> [B, out_features]


class ConvDecoder(nn.Module):
    """``[B, in_features] -> [B, out_ch, H, W]`` in (-1, 1): linear to a map, then one 2x upsampling per ``channels`` entry.

    ``channels=(256, 128, 64, 32)`` for a 64 x 64 face::

        [B, in_features] -> linear, reshape [B, 256, 4, 4] -> [B, 128, 8, 8] -> [B, 64, 16, 16]
          -> [B, 32, 32, 32] -> [B, out_ch, 64, 64], tanh

    Each upsampling is a 4x4 stride-2 transposed conv; ``norm`` and ReLU
    follow all but the last, which ends in tanh.
    """

    def __init__(self, in_features: int, out_ch: int, height: int, width: int, channels: Sequence[int],
                 norm: str = "batch"):
        super().__init__()
        if not channels:
            raise ConfigError("ConvDecoder needs at least one upsampling layer (channels is empty)")
        self.map_shape = (channels[0], *bottleneck_size(height, width, len(channels)))
        self.project = nn.Linear(in_features, channels[0] * self.map_shape[1] * self.map_shape[2],
                                 bias=norm != "batch")
        self.project_norm = nn.Sequential(_norm(norm, channels[0]), nn.ReLU(inplace=True))
        layers = []
        for a, b in zip(channels[:-1], channels[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=norm != "batch"), _norm(norm, b), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(channels[-1], out_ch, 4, 2, 1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [B, in_features] -> [B, out_ch, H, W]
        h = self.project(z).view(z.shape[0], *self.map_shape)  # [B, c0, H/2^n, W/2^n]
        return self.upsample(self.project_norm(h))
