"""Building blocks of the CycleGAN generators and discriminators.

* Gated (GLU) blocks of CycleGAN-VC / CycleGAN-VC2 (Kaneko & Kameoka 2018;
  Kaneko et al. 2019): a convolution producing ``2 * out_ch`` channels, instance
  normalization, and a gated linear unit (Dauphin et al. 2017) that halves the
  channels back to ``out_ch``: ``GLU(a, b) = a * sigmoid(b)``.
* The ResNet block of Johnson et al. 2016, used by the image CycleGAN
  (Zhu et al. 2017).
* The conv-norm-LeakyReLU layer of the PatchGAN discriminator (Isola et al. 2017).

Every "same" padding here is ``kernel_size // 2``, so odd kernels with stride 1
keep the spatial size and stride 2 halves even sizes.
"""

from __future__ import annotations

import torch
from torch import nn


def _same_padding(kernel_size: int | tuple[int, ...]) -> int | tuple[int, ...]:
    """Padding that keeps the size of an odd kernel at stride 1."""
    if isinstance(kernel_size, int):
        return kernel_size // 2
    return tuple(k // 2 for k in kernel_size)


class GLUConv2d(nn.Module):
    """Conv2d -> InstanceNorm2d (affine) -> GLU over channels (CycleGAN-VC, Kaneko & Kameoka 2018).

    The convolution produces ``2 * out_ch`` channels; the GLU gates the first
    half with the sigmoid of the second, leaving ``out_ch``. ``norm=False``
    drops the normalization, as in the input layer of CycleGAN-VC/VC2.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 2 * out_ch, kernel_size, stride, _same_padding(kernel_size), bias=not norm)
        self.norm = nn.InstanceNorm2d(2 * out_ch, affine=True) if norm else nn.Identity()
        self.glu = nn.GLU(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_ch, H/stride, W/stride]
        return self.glu(self.norm(self.conv(x)))  # [B, 2*out_ch, H', W'] -> [B, out_ch, H', W']


class GLUConv1d(nn.Module):
    """Conv1d -> InstanceNorm1d (affine) -> GLU over channels (CycleGAN-VC, Kaneko & Kameoka 2018)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, norm: bool = True):
        super().__init__()
        self.conv = nn.Conv1d(in_ch, 2 * out_ch, kernel_size, stride, kernel_size // 2, bias=not norm)
        self.norm = nn.InstanceNorm1d(2 * out_ch, affine=True) if norm else nn.Identity()
        self.glu = nn.GLU(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, T] -> [B, out_ch, T/stride]
        return self.glu(self.norm(self.conv(x)))


class Downsample2d(GLUConv2d):
    """2D downsample block of CycleGAN-VC2 (Kaneko et al. 2019): stride-2 conv -> IN -> GLU.

    Halves height and width (both must be even).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5):
        super().__init__(in_ch, out_ch, kernel_size, stride=2)


class Upsample2d(nn.Module):
    """2D upsample block of CycleGAN-VC2 (Kaneko et al. 2019): conv -> PixelShuffle(2) -> IN -> GLU.

    The sub-pixel convolution (Shi et al. 2016) produces ``4 * 2 * out_ch``
    channels; the pixel shuffle trades 4 of them for a 2x larger grid and the
    GLU halves the remaining ``2 * out_ch``.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 4 * 2 * out_ch, kernel_size, padding=_same_padding(kernel_size), bias=False)
        self.shuffle = nn.PixelShuffle(2)
        self.norm = nn.InstanceNorm2d(2 * out_ch, affine=True)
        self.glu = nn.GLU(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_ch, 2H, 2W]
        x = self.shuffle(self.conv(x))  # [B, 8*out_ch, H, W] -> [B, 2*out_ch, 2H, 2W]
        return self.glu(self.norm(x))


class ResidualGLU1d(nn.Module):
    """1D residual block of CycleGAN-VC2 (Kaneko et al. 2019).

    ``x + IN(conv(GLU(IN(conv(x)))))``: a gated conv to ``hidden_ch``
    channels, then a conv back to ``channels`` with instance norm, no gate.
    """

    def __init__(self, channels: int, hidden_ch: int, kernel_size: int = 3):
        super().__init__()
        self.gated = GLUConv1d(channels, hidden_ch, kernel_size)
        self.conv = nn.Conv1d(hidden_ch, channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = nn.InstanceNorm1d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, channels, T] -> same
        h = self.gated(x)  # [B, hidden_ch, T]
        return x + self.norm(self.conv(h))  # [B, channels, T]


class ResnetBlock2d(nn.Module):
    """Residual block of Johnson et al. 2016 as used by CycleGAN (Zhu et al. 2017).

    ``x + IN(conv3x3(pad(ReLU(IN(conv3x3(pad(x)))))))`` with reflection padding.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> same
        return x + self.body(x)


class PatchConv2d(nn.Module):
    """PatchGAN layer "Ck" (Isola et al. 2017): 4x4 conv -> InstanceNorm -> LeakyReLU(0.2).

    ``norm=False`` for the first layer (C64 has no normalization).
    Padding 1: a stride-2 layer maps size ``n`` to ``n // 2``, a stride-1 layer to ``n - 1``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 4, stride, padding=1, bias=not norm)
        self.norm = nn.InstanceNorm2d(out_ch, affine=True) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in_ch, H, W] -> [B, out_ch, H', W']
        return self.act(self.norm(self.conv(x)))
