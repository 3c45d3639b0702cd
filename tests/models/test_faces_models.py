"""VAE, debiasing VAE, classifier and GAN on face- and spectrogram-shaped images; the CycleGAN on faces; resampling."""

from __future__ import annotations

import dataclasses

import pytest
import soundfile as sf
import torch

from conftest import REPO, harmonic_tone
from voiceconv.audio.features import FeatureConfig
from voiceconv.audio.io import save_audio
from voiceconv.data.speakers import load_speaker
from voiceconv.errors import VoiceconvError
from voiceconv.faces.data import FaceFolder
from voiceconv.faces.recipes import FaceDataConfig, FaceDBVAERecipe
from voiceconv.faces.tasks import DebiasingTask, group_balanced_weights
from voiceconv.losses import gaussian_kl_divergence, reparameterize
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig
from voiceconv.models.gan import DCGAN, GANConfig
from voiceconv.models.vae import VAE, DebiasingVAE, FaceClassifier, VAEConfig, debiasing_weights
from voiceconv.nn import ConvDecoder, ConvEncoder
from voiceconv.speech_vae import load_speech_vae, reconstruct_audio, reconstruct_image
from voiceconv.train.loop import TrainConfig, fit
from voiceconv.train.speech_vae import SpeechVAEDataConfig, SpeechVAERecipe, SpeechVAETask

FACE = (3, 16, 16)  # [C, H, W]: a tiny face
SPECTROGRAM = (1, 32, 16)  # [C, n_mels, frames]: a tiny log-mel crop
SHAPES = pytest.mark.parametrize("shape", [FACE, SPECTROGRAM], ids=["face", "spectrogram"])
TINY_VAE = VAEConfig(channels=(8, 16), latent=4, lr=2e-3)
TINY_GAN = GANConfig(latent=8, generator_channels=(16, 8), discriminator_channels=(8, 16))


def images(count: int, shape, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # [N, C, H, W]


@SHAPES
def test_encoder_and_decoder_shapes(shape):
    channels, height, width = shape
    encoder = ConvEncoder(channels, height, width, (8, 16), out_features=10)
    decoder = ConvDecoder(5, channels, height, width, (16, 8))
    assert encoder(images(2, shape)).shape == (2, 10)
    out = decoder(torch.randn(2, 5))
    assert out.shape == (2, *shape) and out.abs().max() < 1


def test_encoder_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="width 20 must be a positive multiple of 8"):
        ConvEncoder(3, 64, 20, (8, 8, 8), 4)
    with pytest.raises(ValueError, match=r"expected input of shape \[B, 3, 16, 16\]"):
        ConvEncoder(3, 16, 16, (8,), 4)(torch.zeros(1, 1, 16, 16))


def test_kl_of_the_standard_normal_posterior_is_zero_and_grows_away_from_it():
    zeros = torch.zeros(4, 6)
    assert torch.equal(gaussian_kl_divergence(zeros, zeros), torch.zeros(4))
    # closed form per dim: (sigma^2 + mu^2 - 1 - log sigma^2) / 2
    mean, log_variance = torch.full((1, 1), 2.0), torch.full((1, 1), 1.0)
    expected = (torch.e + 4 - 1 - 1) / 2
    assert gaussian_kl_divergence(mean, log_variance).item() == pytest.approx(expected)


def test_reparameterized_samples_have_the_posterior_mean_and_std():
    mean, log_variance = torch.tensor([[1.5, -2.0]]), torch.tensor([[0.0, 2 * torch.log(torch.tensor(0.5))]])
    noise = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0))
    z = reparameterize(mean, log_variance, noise)  # [200000, 2]
    assert z.mean(0).tolist() == pytest.approx([1.5, -2.0], abs=0.01)
    assert z.std(0).tolist() == pytest.approx([1.0, 0.5], abs=0.01)
    mean.requires_grad_(True)
    reparameterize(mean, log_variance, noise[:1]).sum().backward()
    assert mean.grad.tolist() == [[1.0, 1.0]]  # gradients flow through the sample


@SHAPES
def test_tiny_vae_reconstruction_loss_falls(shape):
    model = VAE(*shape, TINY_VAE, seed=0)
    batch = {"images": images(8, shape)}
    history = [model.train_step(batch) for _ in range(30)]
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert set(history[0]) == {"reconstruction", "kl", "vae"}
    assert sum(h["reconstruction"] for h in history[-3:]) < 0.8 * sum(h["reconstruction"] for h in history[:3])
    assert model.reconstruct(batch["images"]).shape == (8, *shape)


@SHAPES
def test_debiasing_vae_learns_faces_from_non_faces(shape):
    model = DebiasingVAE(*shape, TINY_VAE, seed=0)
    faces, others = images(4, shape, seed=1) * 0.2 + 0.5, images(4, shape, seed=2) * 0.2 - 0.5
    batch = {"images": torch.cat([faces, others]), "labels": torch.tensor([1.0] * 4 + [0.0] * 4)}
    history = [model.train_step(batch) for _ in range(15)]
    assert {"loss", "classification", "accuracy", "face_reconstruction", "face_kl", "face_vae"} == set(history[0])
    assert history[-1]["classification"] < history[0]["classification"] and history[-1]["accuracy"] == 1.0
    assert model.classify(batch["images"]).shape == (8,)


def test_vae_loss_counts_on_faces_only():
    """A batch of non-faces only: the DB-VAE's decoder gets no gradient (Amini et al. 2019, eq. 3)."""
    model = DebiasingVAE(*FACE, TINY_VAE, seed=0)
    before = [p.clone() for p in model.decoder.parameters()]
    model.train_step({"images": images(4, FACE), "labels": torch.zeros(4)})
    assert all(torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))
    model.train_step({"images": images(4, FACE), "labels": torch.ones(4)})
    assert not all(torch.equal(a, b) for a, b in zip(before, model.decoder.parameters()))


@SHAPES
def test_classifier_and_gan_train_a_few_steps(shape):
    classifier = FaceClassifier(*shape, TINY_VAE)
    losses = classifier.train_step({"images": images(4, shape), "labels": torch.tensor([1.0, 0, 1, 0])})
    assert set(losses) == {"classification", "accuracy"}
    for loss in ("nonsaturating", "lsgan"):
        gan = DCGAN(*shape, dataclasses.replace(TINY_GAN, loss=loss))
        history = [gan.train_step({"images": images(4, shape)}) for _ in range(3)]
        assert all(set(h) == {"D", "G"} and all(map(torch.isfinite, map(torch.tensor, h.values()))) for h in history)
    assert gan.sample(3).shape == (3, *shape)


def test_cyclegan_code_of_voice_conversion_runs_on_faces():
    config = CycleGANConfig(generator="resnet", generator_channels=8, residual_blocks=1, discriminator_channels=8,
                            discriminator_layers=2, identity_weight=0.0)
    model = CycleGAN(channels=3, height=32, config=config)
    grey, colour = images(2, (1, 32, 32)).repeat(1, 3, 1, 1), images(2, (3, 32, 32), seed=1)
    history = [model.train_step({"A": grey, "B": colour}) for _ in range(2)]
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert model.a_to_b(grey).shape == (2, 3, 32, 32)


def test_debiasing_weights_favour_rare_bins():
    # 95 faces with codes near 0 and 5 with codes near 4 on latent 0; latent 1 is spread evenly (10 per bin)
    generator = torch.Generator().manual_seed(0)
    common, rare = torch.randn(95, 1, generator=generator) * 0.01, 4 + torch.randn(5, 1, generator=generator) * 0.01
    spread = torch.linspace(0, 1, 100)[torch.randperm(100, generator=generator)][:, None]
    latents = torch.cat([torch.cat([common, rare]), spread], dim=1)  # [100, 2]
    for combine in ("max", "product"):
        weights = debiasing_weights(latents, bins=10, alpha=1e-3, combine=combine)
        assert weights.shape == (100,) and weights.sum().item() == pytest.approx(1.0)
        assert weights[95:].sum() > 0.15, combine  # 5% of the faces, over three times their share of the draws
        assert weights[95:].min() > weights[:95].max(), combine  # every rare face above every common one
    flat = debiasing_weights(latents, bins=10, alpha=1e6)  # huge smoothing: uniform
    assert torch.allclose(flat, torch.full((100,), 0.01), atol=1e-5)
    assert torch.allclose(debiasing_weights(torch.zeros(7, 3), 10, 1e-3), torch.full((7,), 1 / 7))


def test_group_balanced_sampling_gives_every_group_the_same_share():
    weights = group_balanced_weights({"colour": 95, "grey": 5})
    assert weights.shape == (100,) and weights.sum().item() == pytest.approx(1.0)
    assert weights[:95].sum().item() == pytest.approx(0.5) and weights[95:].sum().item() == pytest.approx(0.5)


def tiny_dbvae_task(steps: int) -> DebiasingTask:
    recipe = FaceDBVAERecipe(model=TINY_VAE, data=FaceDataConfig(size=16, media_images=2),
                             train=TrainConfig(steps=steps, batch_size=4, log_every=1, media_every=2,
                                               checkpoint_every=1, threads=1))
    pixels = lambda n, seed: (torch.rand(n, *FACE, generator=torch.Generator().manual_seed(seed)) * 255).byte()  # noqa: E731
    faces = FaceFolder("faces", pixels(6, 0), [f"f{i}" for i in range(6)], [])
    nonfaces = FaceFolder("objects", pixels(6, 1), [f"o{i}" for i in range(6)], [])
    return DebiasingTask(recipe, DebiasingVAE(*FACE, TINY_VAE), faces, nonfaces)


def test_resampling_weights_are_recomputed_each_epoch_and_resume_exactly(tmp_path):
    straight = tiny_dbvae_task(7)  # 12 images / batch 4: a new epoch every 3 steps
    fit(straight, straight.recipe.train, tmp_path / "straight")
    assert straight.model.resampling["epoch"] == 2
    assert not torch.allclose(straight.model.resampling["weights"], torch.full((6,), 1 / 6))
    first = tiny_dbvae_task(4)
    fit(first, first.recipe.train, tmp_path / "resumed")
    resumed = tiny_dbvae_task(7)
    fit(resumed, resumed.recipe.train, tmp_path / "resumed", resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resume")
    batch = straight.batch(4, torch.Generator().manual_seed(0))
    assert batch["images"].shape == (4, *FACE) and batch["labels"].tolist() == [1, 1, 0, 0]


def test_vae_on_spectrogram_crops_trains_and_reconstructs_audio(tmp_path):
    for i in range(3):
        save_audio(tmp_path / "speaker" / f"{i}.wav", harmonic_tone(1.5, f0=150 + 10 * i, seed=i), 16000)
    recipe = SpeechVAERecipe(features=FeatureConfig(n_mels=32), model=TINY_VAE,
                             data=SpeechVAEDataConfig(crop_frames=16, min_seconds=2.0, media_utterances=1),
                             train=TrainConfig(steps=3, batch_size=4, log_every=1, media_every=3, threads=1))
    corpus = load_speaker(tmp_path / "speaker", recipe.features, tmp_path / "cache", 2.0, 16)
    task = SpeechVAETask(recipe, corpus)
    crops = task.batch(4, torch.Generator().manual_seed(0))["images"]
    assert crops.shape == (4, *SPECTROGRAM) and crops.min() >= -1 and crops.max() <= 1
    outcome = fit(task, recipe.train, tmp_path / "run")
    image = corpus.stats.denormalize(corpus.images[0])[None]  # [1, 32, T], T not a multiple of 16
    assert reconstruct_image(task.model, image).shape == image.shape
    reconstruct_audio(outcome.model_path, tmp_path / "speaker" / "0.wav", tmp_path / "vae.wav")
    assert sf.info(tmp_path / "vae.wav").duration == pytest.approx(1.5, abs=0.05)


def test_a_speech_vae_loader_refuses_another_kind_before_reading_its_weights(tmp_path):
    """A face VAE file with damaged (NaN) weights: refused for its kind, which is read first, not for its weights."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from voiceconv.faces.tools import load_face_model

    source = REPO / "samples" / "models" / "faces_vae.safetensors"
    with safe_open(str(source), "pt") as f:
        metadata, tensors = f.metadata(), {name: f.get_tensor(name) for name in f.keys()}
    name = next(n for n, t in tensors.items() if t.is_floating_point())
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    damaged = tmp_path / "faces_vae_nan.safetensors"
    save_file(tensors, str(damaged), metadata=metadata)
    with pytest.raises(VoiceconvError, match="NaN"):  # the weights are damaged: a loader that reads them says so
        load_face_model(damaged)
    with pytest.raises(VoiceconvError, match="'face-vae' model, not a speech VAE") as refused:
        load_speech_vae(damaged)
    assert "NaN" not in str(refused.value)
