"""Generators, discriminators and registries of voiceconv.nn on spectrogram- and face-shaped inputs (small widths, CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from voiceconv.nn import (DISCRIMINATORS, GENERATOR_ARCHITECTURES, Generator212, PatchDiscriminator, ResnetGenerator,
                          build_discriminator, build_generator, count_parameters)

SPECTROGRAM = (1, 80, 64)  # [C, n_mels, frames]
FACE = (3, 64, 64)  # [C, H, W]


def small_generator(name: str, in_ch: int, out_ch: int, height: int):
    """A narrow instance of every registered generator, fast enough for unit tests."""
    if name == "generator212":
        return build_generator(name, in_ch=in_ch, out_ch=out_ch, height=height, base_channels=8,
                               residual_channels=16, n_residual=2)
    if name == "envelope1d":
        return build_generator(name, in_ch=in_ch, out_ch=out_ch, height=height, base_channels=8,
                               residual_channels=16, n_residual=2, input_bands=8, bands=4)
    return build_generator(name, in_ch=in_ch, out_ch=out_ch, base_channels=8, n_blocks=2)


def test_registries_name_every_network():
    assert set(GENERATOR_ARCHITECTURES) == {"generator212", "envelope1d", "resnet"}
    assert set(DISCRIMINATORS) == {"patch"}


@pytest.mark.parametrize("name", sorted(GENERATOR_ARCHITECTURES))
@pytest.mark.parametrize("shape", [SPECTROGRAM, FACE], ids=["spectrogram", "face"])
def test_generator_keeps_spatial_shape(name, shape):
    channels, height, width = shape
    generator = small_generator(name, channels, channels, height)
    x = torch.randn(2, *shape)  # [B, C, H, W]
    assert generator(x).shape == (2, channels, height, width)


@pytest.mark.parametrize("name", sorted(GENERATOR_ARCHITECTURES))
def test_generator_maps_channel_counts(name):
    generator = small_generator(name, 3, 1, 64)
    assert generator(torch.randn(2, *FACE)).shape == (2, 1, 64, 64)


def test_masked_generator212_takes_the_mask_channel():
    """MaskCycleGAN-VC: spectrogram and mask in (in_ch=2), spectrogram out."""
    generator = Generator212(2, 1, 80, base_channels=8, residual_channels=16, n_residual=2)
    spectrogram = torch.randn(2, *SPECTROGRAM)
    mask = torch.ones_like(spectrogram)
    mask[..., 20:36] = 0  # 16 missing frames
    out = generator(torch.cat([spectrogram * mask, mask], dim=1))  # [B, 2, 80, 64] -> [B, 1, 80, 64]
    assert out.shape == (2, 1, 80, 64)


@pytest.mark.parametrize("shape, expected", [(SPECTROGRAM, (8, 6)), (FACE, (6, 6))], ids=["spectrogram", "face"])
def test_patch_discriminator_gives_a_score_map(shape, expected):
    discriminator = build_discriminator("patch", in_ch=shape[0], base_channels=8)
    scores = discriminator(torch.randn(2, *shape))
    assert scores.shape == (2, 1, *expected)
    assert scores.numel() > 0


@pytest.mark.parametrize("n_layers, field", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patch_discriminator_receptive_field(n_layers, field):
    assert PatchDiscriminator(1, 8, n_layers).receptive_field == field


def test_receptive_field_matches_gradient_support():
    """An interior output score depends on exactly a receptive_field-wide window of the input."""
    discriminator = PatchDiscriminator(1, 4, n_layers=2)  # 34x34 patches
    for layer in discriminator.layers:
        layer.norm = nn.Identity()  # instance norm pools statistics over the whole map
    x = torch.randn(1, 1, 96, 96, requires_grad=True)
    scores = discriminator(x)  # [1, 1, 22, 22]
    scores[0, 0, 10, 10].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert rows.max() - rows.min() + 1 == discriminator.receptive_field
    assert cols.max() - cols.min() + 1 == discriminator.receptive_field


def networks():
    return {
        "generator212": Generator212(2, 1, 80, base_channels=8, residual_channels=16, n_residual=2),
        "resnet": ResnetGenerator(2, 1, base_channels=8, n_blocks=2),
        "patch": PatchDiscriminator(2, base_channels=8),
    }


@pytest.mark.parametrize("name", ["generator212", "resnet", "patch"])
def test_gradients_reach_every_parameter(name):
    network = networks()[name]
    loss = network(torch.randn(2, 2, 80, 64)).square().mean()
    loss.backward()
    missing = [n for n, p in network.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("height", [0, 4, 81, 82])
def test_generator212_rejects_bad_heights(height):
    with pytest.raises(ValueError, match=rf"\b{height}\b"):
        Generator212(1, 1, height)


@pytest.mark.parametrize("name", sorted(GENERATOR_ARCHITECTURES))
@pytest.mark.parametrize("size, dim", [((80, 62), "width"), ((80, 4), "width"), ((78, 64), "height")])
def test_generators_reject_bad_input_sizes(name, size, dim):
    generator = small_generator(name, 1, 1, 80)
    bad = size[1] if dim == "width" else size[0]
    with pytest.raises(ValueError, match=rf"{dim} {bad}\b"):
        generator(torch.randn(1, 1, *size))


def test_generator212_rejects_a_height_it_was_not_built_for():
    generator = Generator212(1, 1, 80, base_channels=8, residual_channels=16, n_residual=1)
    with pytest.raises(ValueError, match="height 64 does not match.* 80"):
        generator(torch.randn(1, 1, 64, 64))


def test_patch_discriminator_rejects_too_small_inputs():
    discriminator = PatchDiscriminator(1, base_channels=8)
    with pytest.raises(ValueError, match="width 16 .*at least 24"):
        discriminator(torch.randn(1, 1, 80, 16))


@pytest.mark.parametrize("build, kind", [(build_generator, "generator"), (build_discriminator, "discriminator")])
def test_unknown_names_list_the_valid_ones(build, kind):
    registry = GENERATOR_ARCHITECTURES if kind == "generator" else DISCRIMINATORS
    with pytest.raises(ValueError, match=f"unknown {kind} 'unet'") as error:
        build("unet", in_ch=1)
    assert all(name in str(error.value) for name in registry)


def test_parameter_counts_grow_with_width():
    sizes = [(32, 64, 4), (48, 96, 3), (64, 128, 6), (128, 256, 6)]
    counts = [count_parameters(Generator212(1, 1, 80, *size)) for size in sizes]
    print({size: f"{count / 1e6:.2f}M" for size, count in zip(sizes, counts)})
    assert counts == sorted(counts)
    assert 1e6 < counts[0] < counts[-1] < 50e6
