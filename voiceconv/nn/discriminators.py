"""Discriminators ``[B, in_ch, H, W] -> [B, 1, h, w]`` map of real/fake scores, one per patch.

Use :func:`build_discriminator` to build one by registry name.
"""

from __future__ import annotations

import torch
from torch import nn

from voiceconv.errors import ConfigError
from voiceconv.nn.blocks import PatchConv2d


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator of pix2pix and CycleGAN (Isola et al. 2017; Zhu et al. 2017).

    ``C64 - C128 - C256 - C512 - conv to 1 channel`` for the defaults: 4x4
    convolutions, stride 2 for the first ``n_layers`` and stride 1 for the last
    two, instance norm on all but the first, LeakyReLU(0.2), and a linear
    output (least-squares GAN loss). Widths double per layer up to
    ``8 * base_channels``.

    Every output score sees a ``receptive_field`` x ``receptive_field`` patch of
    the input: 70 for ``n_layers=3`` (the "70x70 PatchGAN"), 34 for 2, 142 for 4.
    With padding 1 each stride-2 layer maps a side ``n`` to ``n // 2`` and each
    stride-1 layer to ``n - 1``, so a side ``n`` gives ``n // 2**n_layers - 2``
    scores and must be at least ``3 * 2**n_layers`` (24 for ``n_layers=3``):
    a 64x64 face gives a 6x6 map, an 80 x 64 (mels x frames) spectrogram 8x6.

    ``input_bands`` > 0 first averages the image's rows into that many
    frequency bands, so the discriminator judges the spectral envelope only:
    what an envelope generator can change (a discriminator that sees what the
    generator cannot touch, such as harmonics, wins on it and leaves the
    generator nothing to learn). ``spectral_norm`` wraps every convolution
    (Miyato et al. 2018), bounding how fast the discriminator can change.
    """

    def __init__(self, in_ch: int, base_channels: int = 64, n_layers: int = 3, input_bands: int = 0,
                 spectral_norm: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ConfigError(f"PatchDiscriminator needs n_layers >= 1, got {n_layers}")
        if input_bands < 0:
            raise ConfigError(f"PatchDiscriminator needs input_bands >= 0, got {input_bands}")
        self.n_layers, self.input_bands = n_layers, input_bands
        widths = [base_channels * min(2**i, 8) for i in range(n_layers + 1)]  # 64, 128, 256, 512
        layers = [PatchConv2d(in_ch, widths[0], stride=2, norm=False)]
        layers += [PatchConv2d(a, b, stride=2) for a, b in zip(widths[:-2], widths[1:-1])]
        layers += [PatchConv2d(widths[-2], widths[-1], stride=1)]
        self.layers = nn.Sequential(*layers)
        self.output = nn.Conv2d(widths[-1], 1, 4, padding=1)
        if spectral_norm:
            for module in [layer.conv for layer in layers] + [self.output]:
                nn.utils.parametrizations.spectral_norm(module)
        strides = [2] * n_layers + [1, 1]  # every layer has a 4x4 kernel
        self.receptive_field = 1
        for stride in reversed(strides):
            self.receptive_field = (self.receptive_field - 1) * stride + 4

    @property
    def min_size(self) -> int:
        """The smallest input height/width that leaves a non-empty score map."""
        return 3 * 2**self.n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, 1, H'/2^n - 2, W/2^n - 2]
        if self.input_bands:
            x = nn.functional.adaptive_avg_pool2d(x, (self.input_bands, x.shape[-1]))  # [B, in_ch, H', W]
        for name, size in zip(("height", "width"), x.shape[-2:]):
            if size < self.min_size:
                raise ValueError(f"input {name} {size} is too small for a PatchDiscriminator with "
                                 f"n_layers={self.n_layers}: need at least {self.min_size}")
        return self.output(self.layers(x))


DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "patch": PatchDiscriminator,
}


def build_discriminator(name: str, **kwargs) -> nn.Module:
    """The discriminator registered as ``name`` in :data:`DISCRIMINATORS`, built with ``kwargs``."""
    if name not in DISCRIMINATORS:
        raise ConfigError(f"unknown discriminator {name!r}; valid names: {', '.join(DISCRIMINATORS)}")
    return DISCRIMINATORS[name](**kwargs)
