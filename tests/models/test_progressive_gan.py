"""The progressively growing GAN: its growth schedule, the fade-in blend on both networks, minibatch standard
deviation, equalized layers, a training step, and sampling from a saved generator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from voiceconv.errors import ConfigError
from voiceconv.models.progressive_gan import (EqualizedConv2d, EqualizedLinear, ProgressiveGAN, ProGANConfig, growth_stage,
                                              minibatch_std, real_at)

TINY = ProGANConfig(latent=8, start_size=4, channels=(16, 8, 8), images_per_stage=100, fade_images=40)


def test_growth_stage_holds_fades_and_keeps_the_last_level():
    assert growth_stage(0, TINY) == (0, 1.0) and growth_stage(99, TINY) == (0, 1.0)
    assert growth_stage(100, TINY) == (1, 0.0) and growth_stage(120, TINY) == (1, 0.5)
    assert growth_stage(140, TINY) == (1, 1.0) and growth_stage(239, TINY) == (1, 1.0)
    assert growth_stage(250, TINY) == (2, 0.25)
    assert growth_stage(10**9, TINY) == (2, 1.0)  # the final level forever
    assert TINY.final_size == 16 and TINY.resolution(1) == 8


def test_generator_fade_in_blends_the_upsampled_old_output_and_the_new_block():
    model = ProgressiveGAN(3, 16, 16, TINY).eval()
    G, z = model.G, torch.randn(2, 8)
    with torch.no_grad():
        previous = G.features(z, 1)  # [2, 8, 8, 8]
        old = F.interpolate(G.to_rgb[1](previous), scale_factor=2, mode="nearest")  # [2, 3, 16, 16]
        new = G.to_rgb[2](G.blocks[1](previous))
        torch.testing.assert_close(G(z, 2, 0.0), old)
        torch.testing.assert_close(G(z, 2, 1.0), new)
        torch.testing.assert_close(G(z, 2, 0.25), 0.75 * old + 0.25 * new)


def test_discriminator_fade_in_blends_its_two_input_paths():
    model = ProgressiveGAN(3, 16, 16, TINY).eval()
    D, images = model.D, torch.rand(3, 3, 16, 16) * 2 - 1

    def tail(h):  # what follows the blend at level 2: the level-1 block, then the end
        h = D.blocks[0](h)
        return D.head(D.final_conv(minibatch_std(h)))

    with torch.no_grad():
        old = D.from_rgb[1](F.avg_pool2d(images, 2))  # [3, 8, 8, 8]
        new = D.blocks[1](D.from_rgb[2](images))
        torch.testing.assert_close(D(images, 2, 0.3), tail(0.7 * old + 0.3 * new))
        torch.testing.assert_close(D(images, 2, 0.0), tail(old))
        torch.testing.assert_close(D(images, 2, 1.0), tail(new))


def test_real_images_are_shown_at_the_level_and_fade_like_the_generator():
    images = torch.rand(2, 3, 16, 16)
    low = F.interpolate(F.avg_pool2d(images, 4), scale_factor=2, mode="nearest")  # 4 -> 8 pixels
    torch.testing.assert_close(real_at(images, 1, 1.0, TINY), F.avg_pool2d(images, 2))
    torch.testing.assert_close(real_at(images, 1, 0.5, TINY), 0.5 * low + 0.5 * F.avg_pool2d(images, 2))
    torch.testing.assert_close(real_at(images, 2, 1.0, TINY), images)  # the final level: the images themselves


def test_minibatch_std_appends_the_mean_standard_deviation_over_the_batch():
    x = torch.tensor([[[[1.0]], [[4.0]]], [[[3.0]], [[0.0]]]])  # [2, 2, 1, 1]: per-feature stds 1 and 2
    out = minibatch_std(x)
    assert out.shape == (2, 3, 1, 1) and torch.equal(out[:, :2], x)
    assert out[:, 2].flatten().tolist() == [1.5, 1.5]


def test_equalized_convolution_draws_unit_weights_and_scales_them_by_he():
    layer = EqualizedConv2d(32, 64, 3)
    assert float(layer.weight.detach().std()) == pytest.approx(1.0, abs=0.05)
    assert layer.scale == pytest.approx(math.sqrt(2 / (32 * 9)))
    x = torch.randn(1, 32, 5, 5)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight * layer.scale, layer.bias, padding=1))
    dense = EqualizedLinear(64, 8, gain=1.0)
    assert dense.scale == pytest.approx(math.sqrt(1 / 64))
    z = torch.randn(3, 64)
    torch.testing.assert_close(dense(z), z @ (dense.weight * dense.scale).T + dense.bias)


def test_a_training_step_moves_both_networks_and_counts_the_images():
    model = ProgressiveGAN(3, 16, 16, TINY, seed=1)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = model.train_step({"images": torch.rand(6, 3, 16, 16) * 2 - 1})
    assert all(math.isfinite(losses[name]) for name in ("D", "G")) and losses["level"] == 0
    assert int(model.G.images_seen) == 6 and int(model.steps_done) == 1
    moved = {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(before[name], p)}
    assert moved == {"G", "D"}


@pytest.mark.parametrize("images_seen", [0, 120, 10**6])
def test_samples_are_full_size_in_range_and_a_saved_generator_draws_the_same(images_seen):
    model = ProgressiveGAN(3, 16, 16, TINY, seed=2).eval()
    model.G.images_seen.fill_(images_seen)
    with torch.no_grad():
        samples = model.sample(4, torch.Generator().manual_seed(0))
    assert samples.shape == (4, 3, 16, 16) and float(samples.abs().max()) <= 1
    fresh = ProgressiveGAN(3, 16, 16, TINY, seed=3).eval()
    fresh.G.load_state_dict(model.G.state_dict())  # what a model file holds: G with its images_seen
    with torch.no_grad():
        torch.testing.assert_close(fresh.sample(4, torch.Generator().manual_seed(0)), samples)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="power of two"):
        ProGANConfig(start_size=6)
    with pytest.raises(ConfigError, match="draws 16 x 16 images, not 64 x 64"):
        ProgressiveGAN(3, 64, 64, TINY)
