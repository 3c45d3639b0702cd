"""CycleGAN training: losses, learning on synthetic speakers, exact resume, model files, conversion."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from conftest import harmonic_tone
from voiceconv.audio.features import FeatureConfig
from voiceconv.audio.io import save_audio
from voiceconv.convert import Converter
from voiceconv.data.speakers import load_speaker
from voiceconv.errors import VoiceconvError
from voiceconv.losses import (cycle_consistency_loss, gaussian_kl_divergence, lsgan_discriminator_loss,
                              lsgan_generator_loss)
from voiceconv.errors import ModelFileError
from voiceconv.modelfiles.format import load_model_file
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig
from voiceconv.train.loop import TrainConfig, fit
from voiceconv.train.voice import VoiceConversionTask, VoiceDataConfig, VoiceRecipe, load_voice_data

TINY_MODEL = CycleGANConfig(generator_channels=8, residual_channels=16, residual_blocks=1, discriminator_channels=8,
                            discriminator_layers=2)
TINY_FEATURES = FeatureConfig(n_mels=32)


def tiny_recipe(steps: int, **model) -> VoiceRecipe:
    return VoiceRecipe(features=TINY_FEATURES, model=dataclasses.replace(TINY_MODEL, **model),
                       data=VoiceDataConfig(crop_frames=16, min_seconds=2.0, media_utterances=1),
                       train=TrainConfig(steps=steps, batch_size=2, log_every=1, media_every=2, checkpoint_every=2,
                                         keep_checkpoints=2, threads=1))


def make_task(speakers, tmp_path, recipe):
    return VoiceConversionTask(recipe, load_voice_data(recipe, speakers, tmp_path / "cache", ("high", "low")))


def test_losses_on_known_values():
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert lsgan_discriminator_loss(ones, zeros) == 0  # perfect discriminator
    assert lsgan_generator_loss(ones) == 0  # perfect forger
    assert lsgan_discriminator_loss(zeros, ones) == 1.0
    assert cycle_consistency_loss(ones, ones * 3) == 2.0
    assert cycle_consistency_loss(ones, ones * 3, squared=True) == 4.0
    # The squared norm lets a tiny change through; L1 pulls it back with the same force as a large one.
    small = torch.full((2, 1, 4, 4), 1e-3, requires_grad=True)
    cycle_consistency_loss(small, torch.zeros_like(small)).backward()
    l1_pull = small.grad.abs().max()
    small.grad = None
    cycle_consistency_loss(small, torch.zeros_like(small), squared=True).backward()
    assert small.grad.abs().max() < 0.01 * l1_pull
    assert torch.allclose(gaussian_kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))
    assert (gaussian_kl_divergence(torch.ones(3, 5), torch.zeros(3, 5)) > 0).all()


def test_train_step_reports_named_losses_and_switches_identity_off():
    torch.manual_seed(0)
    model = CycleGAN(1, 32, dataclasses.replace(TINY_MODEL, identity_until_step=1))
    batch = {"A": torch.randn(2, 1, 32, 16), "B": torch.randn(2, 1, 32, 16)}
    first, second = model.train_step(batch), model.train_step(batch)
    assert {"G_adv_AB", "G_adv_BA", "cycle_A", "cycle_B", "identity_A", "identity_B", "D_A", "D_B"} == set(first)
    assert "identity_A" not in second
    assert int(model.steps_done) == 2


@pytest.mark.parametrize("mask_frames", [False, True])
def test_tiny_cyclegan_learns_synthetic_segments(mask_frames):
    torch.manual_seed(0)
    model = CycleGAN(1, 32, dataclasses.replace(TINY_MODEL, mask_frames=mask_frames, generator_lr=2e-3))
    generator = torch.Generator().manual_seed(0)
    segments_a, segments_b = torch.randn(4, 1, 32, 16, generator=generator), torch.randn(4, 1, 32, 16, generator=generator)
    history = [model.train_step({"A": segments_a, "B": segments_b}) for _ in range(40)]
    start = sum(h["cycle_A"] + h["cycle_B"] for h in history[:5])
    end = sum(h["cycle_A"] + h["cycle_B"] for h in history[-5:])
    assert end < 0.6 * start


def test_moving_average_generators_follow_the_trained_weights_and_are_what_converts():
    torch.manual_seed(0)
    decay = 0.9
    model = CycleGAN(1, 32, dataclasses.replace(TINY_MODEL, ema_decay=decay, generator_lr=1e-2))
    batch = {"A": torch.randn(2, 1, 32, 16), "B": torch.randn(2, 1, 32, 16)}
    name = next(k for k, v in model.G_AB.state_dict().items() if v.dim() == 4)  # a convolution's weights
    expected = None
    for _ in range(3):
        model.train_step(batch)
        trained = model.G_AB.state_dict()[name].clone()
        # The first update copies the weights; each later one moves a tenth of the way towards them.
        expected = trained if expected is None else decay * expected + (1 - decay) * trained
    averaged = model.inference_generator("G_AB").state_dict()[name]
    torch.testing.assert_close(averaged, expected)
    assert not torch.allclose(averaged, trained)
    image = torch.randn(1, 1, 32, 16)
    with torch.no_grad():
        assert torch.equal(model.a_to_b(image), model.inference_generator("G_AB")(image))
        assert not torch.allclose(model.a_to_b(image), model.G_AB(image))
    with pytest.raises(VoiceconvError, match="ema_decay"):
        CycleGAN(1, 32, dataclasses.replace(TINY_MODEL, ema_decay=1.0))


def test_frame_mask_zeroes_one_span_per_item():
    model = CycleGAN(1, 32, dataclasses.replace(TINY_MODEL, mask_frames=True, max_mask_fraction=0.5))
    mask = model.frame_mask(torch.zeros(64, 1, 32, 16))  # [B, 1, H, W]
    missing = (mask[:, 0, 0] == 0)  # [B, W]
    assert missing.sum(-1).max() <= 8 and missing.any()
    for row in missing:  # contiguous
        idx = row.nonzero().flatten()
        assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)


def test_resume_reproduces_the_next_steps_exactly(speakers, tmp_path):
    straight = make_task(speakers, tmp_path, tiny_recipe(4))
    fit(straight, straight.recipe.train, tmp_path / "straight")
    interrupted = make_task(speakers, tmp_path, tiny_recipe(2))
    fit(interrupted, interrupted.recipe.train, tmp_path / "resumed")
    resumed = make_task(speakers, tmp_path, tiny_recipe(4))
    outcome = fit(resumed, resumed.recipe.train, tmp_path / "resumed", resume=True)
    assert outcome.steps == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resume")
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert checkpoints == ["step_00000002.pt", "step_00000004.pt"]


def test_exported_model_converts_and_describes_itself(speakers, tmp_path):
    task = make_task(speakers, tmp_path, tiny_recipe(2))
    outcome = fit(task, task.recipe.train, tmp_path / "run")
    tensors, header = load_model_file(outcome.model_path)
    assert header["kind"] == "voice-cyclegan" and header["training"]["steps"] == 2
    assert header["speakers"]["a"]["name"] == "high" and header["features"]["n_mels"] == 32
    assert not any(name.startswith("D_") for name in tensors)  # discriminators are not shipped
    converter = Converter(outcome.model_path)
    wav = harmonic_tone(1.0, f0=240.0)
    out = converter.convert(wav, 16000, "a2b")
    assert abs(len(out) - len(wav)) < 256 and torch.isfinite(torch.from_numpy(out)).all()
    assert len(converter.convert(harmonic_tone(1.0, sample_rate=22050), 22050, "b2a")) == pytest.approx(16000, abs=256)


def test_model_files_that_are_not_ours_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "pickle.safetensors")
    with pytest.raises(ModelFileError, match="not a safetensors"):
        Converter(tmp_path / "pickle.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"), metadata={"voiceconv": json.dumps({"format": "x"})})
    with pytest.raises(ModelFileError, match="not a voiceconv model"):
        Converter(tmp_path / "plain.safetensors")
    with pytest.raises(ModelFileError, match="no such model"):
        Converter(tmp_path / "missing.safetensors")


def test_speaker_cache_is_reused_and_invalidated(speakers, tmp_path):
    high, _ = speakers
    load_speaker(high, TINY_FEATURES, tmp_path / "cache", 1.0, 16)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    load_speaker(high, TINY_FEATURES, tmp_path / "cache", 1.0, 16)
    assert len(list((tmp_path / "cache").iterdir())) == 1  # same files, same config: reused
    save_audio(high / "3.wav", harmonic_tone(1.0, f0=250.0), 16000)
    load_speaker(high, TINY_FEATURES, tmp_path / "cache", 1.0, 16)
    load_speaker(high, dataclasses.replace(TINY_FEATURES, n_mels=40), tmp_path / "cache", 1.0, 16)
    assert len(list((tmp_path / "cache").iterdir())) == 3


def test_unreadable_files_are_skipped_and_too_little_audio_is_explained(speakers, tmp_path):
    high, _ = speakers
    (high / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    corpus = load_speaker(high, TINY_FEATURES, tmp_path / "cache", 1.0, 16)
    assert len(corpus.images) == 3 and len(corpus.skipped) == 1 and "broken.wav" in corpus.skipped[0]
    with pytest.raises(VoiceconvError, match=r"only 4\.\d s of usable audio .* at least 600 s are needed"):
        load_speaker(high, TINY_FEATURES, tmp_path / "cache", 600.0, 16)
    usable = corpus.frames * TINY_FEATURES.hop_length / TINY_FEATURES.sample_rate
    with pytest.raises(VoiceconvError) as refused:  # just short of the need: never shown as already enough
        load_speaker(high, TINY_FEATURES, tmp_path / "cache", usable + 0.01, 16)
    shown = float(str(refused.value).split("only ")[1].split(" s")[0])
    assert shown <= usable < shown + 0.1


def test_one_direction_check_for_voice_and_face_conversion():
    import numpy as np

    from conftest import SAMPLES
    from voiceconv.convert import Converter
    from voiceconv.errors import ConfigError
    from voiceconv.faces.tools import translate
    from voiceconv.models.cyclegan import checked_direction

    assert [checked_direction(d) for d in ("a2b", "b2a")] == ["a2b", "b2a"]
    converter = Converter(SAMPLES / "models" / "kathleen_rms.safetensors")
    face_cyclegan = CycleGAN(3, 16, CycleGANConfig(generator_channels=8, residual_channels=16, residual_blocks=1,
                                                   discriminator_channels=8, discriminator_layers=2))
    for attempt in (lambda: checked_direction("up"), lambda: converter.convert(np.ones(16000, np.float32), 16000, "up"),
                    lambda: translate(face_cyclegan, torch.zeros(1, 3, 16, 16), "up")):
        with pytest.raises(ConfigError, match="^direction must be a2b or b2a, not 'up'$"):
            attempt()
