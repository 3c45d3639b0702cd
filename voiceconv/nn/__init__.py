"""Image networks: the CycleGAN's generators and discriminators, and the encoders/decoders of the VAEs and GAN.

The networks map images ``[B, C, H, W]`` to images (generators) or to patch
score maps (discriminators) and know nothing about audio: the same classes
serve 1-channel log-mel spectrograms (H = n_mels, W = frames) and 3-channel
faces. Build them by name from the registries :data:`GENERATOR_ARCHITECTURES`
and :data:`DISCRIMINATORS` (architecture name -> class).
"""

from __future__ import annotations

from torch import nn

from voiceconv.nn.discriminators import DISCRIMINATORS, PatchDiscriminator, build_discriminator
from voiceconv.nn.encoders import ConvDecoder, ConvEncoder
from voiceconv.nn.generators import (GENERATOR_ARCHITECTURES, GENERATOR_CHANNELS, RESIDUAL_CHANNELS, Generator212,
                                     ResnetGenerator, build_generator)

__all__ = [
    "ConvDecoder", "ConvEncoder", "DISCRIMINATORS", "GENERATOR_ARCHITECTURES", "GENERATOR_CHANNELS", "Generator212",
    "PatchDiscriminator", "RESIDUAL_CHANNELS", "ResnetGenerator", "build_discriminator", "build_generator",
    "count_parameters",
]


def count_parameters(module: nn.Module) -> int:
    """The number of scalar parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())
