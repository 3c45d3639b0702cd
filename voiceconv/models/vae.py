"""Autoencoder, variational autoencoder (Kingma & Welling 2014), debiasing VAE (Amini et al. 2019), plain classifier.

Images are ``[B, C, H, W]`` in [-1, 1]: faces (C=3) or log-mel crops (C=1);
the networks (:class:`~voiceconv.nn.ConvEncoder`, :class:`~voiceconv.nn.ConvDecoder`)
do not know which.

The plain :class:`Autoencoder` is the lecture's starting point: the same
encoder and decoder with a deterministic code and the reconstruction loss
alone. It reconstructs at least as well as the VAE, but nothing makes its codes
fill N(0, I), so codes drawn from the prior decode badly: the case for the VAE.

The debiasing VAE (DB-VAE) is a face / non-face classifier whose encoder also
parameterizes a VAE of the faces. Training faces whose latent codes are rare
are shown more often (:func:`debiasing_weights`), so under-represented kinds
of faces (here: grey photos among colour ones) are learnt without labels for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from voiceconv.errors import ConfigError
from voiceconv.losses import (beta_vae_loss, face_classification_loss, gaussian_kl_divergence,
                              pixel_reconstruction_loss, reparameterize)
from voiceconv.models.base import TrainableModel
from voiceconv.nn.encoders import ConvDecoder, ConvEncoder


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and loss of a (debiasing) VAE; ``channels`` lists the encoder widths, the decoder mirrors them."""

    channels: tuple[int, ...] = (32, 64, 128, 256)  # one stride-2 layer each: 64 x 64 -> 4 x 4
    latent: int = 32
    beta: float = 5e-4  # KL weight against the per-pixel mean squared error (the MIT lab's 0.0005)
    norm: Literal["batch", "instance", "none"] = "batch"
    lr: float = 5e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    # debiasing VAE only
    classifier_weight: float = 1.0  # weight of the face / non-face cross-entropy against the faces' VAE loss
    histogram_bins: int = 10  # per latent, for the resampling density
    smoothing_alpha: float = 1e-3  # alpha: added to each bin's share before inverting (Amini et al. 2019, eq. 4)
    resampling_combine: Literal["max", "product"] = "max"  # how per-latent weights combine (see debiasing_weights)

    def __post_init__(self):
        if self.latent < 1 or not self.channels or min(self.channels) < 1:
            raise ConfigError(f"model.latent={self.latent} and model.channels={list(self.channels)} must be positive "
                              "(at least one layer)")
        if self.lr <= 0 or self.beta < 0 or self.histogram_bins < 1:
            raise ConfigError(f"model.lr={self.lr} must be > 0, model.beta={self.beta} >= 0 and "
                              f"model.histogram_bins={self.histogram_bins} >= 1")


@dataclass(frozen=True)
class AEConfig:
    """Architecture of a plain autoencoder: the VAE's encoder widths (the decoder mirrors them) and code size."""

    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent: int = 32
    norm: Literal["batch", "instance", "none"] = "batch"
    lr: float = 5e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999

    def __post_init__(self):
        if self.latent < 1 or not self.channels or min(self.channels) < 1 or self.lr <= 0:
            raise ConfigError(f"model.latent={self.latent}, model.channels={list(self.channels)} and "
                              f"model.lr={self.lr} must be positive (at least one layer)")


class Autoencoder(TrainableModel):
    """Deterministic encoder ``z = e(x)`` and decoder ``x_hat = g(z)``, trained on ``batch["images"]`` by pixel error.

    The same :class:`~voiceconv.nn.ConvEncoder` and :class:`~voiceconv.nn.ConvDecoder`
    as :class:`VAE`; the encoder gives ``latent`` numbers instead of a mean and a log-variance.
    """

    def __init__(self, channels: int, height: int, width: int, config: AEConfig = AEConfig(), seed: int = 0):
        super().__init__()
        self.config, self.image_shape = config, (channels, height, width)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.encoder = ConvEncoder(channels, height, width, config.channels, config.latent, config.norm)
            self.decoder = ConvDecoder(config.latent, channels, height, width, config.channels[::-1], config.norm)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.optimizers = {"ae": torch.optim.Adam(self.parameters(), config.lr, (config.adam_beta1, config.adam_beta2))}

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> codes ``[B, L]``."""
        return self.encoder(images)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` -> images ``[B, C, H, W]`` in (-1, 1)."""
        return self.decoder(z)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """``g(e(x))`` ``[B, C, H, W]``."""
        return self.decode(self.codes(images))

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One Adam step on the mean squared pixel error of ``batch["images"]`` ``[B, C, H, W]``."""
        images = batch["images"]
        loss = pixel_reconstruction_loss(self.reconstruct(images), images).mean()
        self.optimize(loss, self.optimizers["ae"], self.parameters())
        self.steps_done += 1
        return {"reconstruction": float(loss.detach())}


class VAE(TrainableModel):
    """Encoder ``q(z|x) = N(mu, sigma^2)``, decoder ``x_hat = g(z)``, trained on ``batch["images"]``."""

    n_logits = 0  # extra encoder outputs before mu and log sigma^2 (the DB-VAE's classifier logit)

    def __init__(self, channels: int, height: int, width: int, config: VAEConfig = VAEConfig(), seed: int = 0):
        super().__init__()
        self.config, self.image_shape = config, (channels, height, width)
        with torch.random.fork_rng():  # the same seed gives the same initial weights
            torch.manual_seed(seed)
            self.encoder = ConvEncoder(channels, height, width, config.channels,
                                       self.n_logits + 2 * config.latent, config.norm)
            self.decoder = ConvDecoder(config.latent, channels, height, width, config.channels[::-1], config.norm)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator().manual_seed(seed)  # reparameterization noise
        self.optimizers = {"vae": torch.optim.Adam(self.parameters(), config.lr, (config.adam_beta1, config.adam_beta2))}

    # --- inference --------------------------------------------------------------------------------
    def encode_all(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, C, H, W]`` -> (logits ``[B, n_logits]``, mu ``[B, L]``, log sigma^2 ``[B, L]``)."""
        out = self.encoder(images)  # [B, n_logits + 2L]
        latent = self.config.latent
        return out[:, :self.n_logits], out[:, self.n_logits:self.n_logits + latent], out[:, self.n_logits + latent:]

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C, H, W]`` -> posterior mean and log-variance, ``[B, L]`` each."""
        _, mean, log_variance = self.encode_all(images)
        return mean, log_variance

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> posterior means ``[B, L]``: the codes an :class:`Autoencoder` would give."""
        return self.encode(images)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` -> images ``[B, C, H, W]`` in (-1, 1)."""
        return self.decoder(z)

    def sample_latents(self, mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps from the model's own generator (reproducible, resumable)."""
        noise = torch.randn(mean.shape, generator=self.generator).to(mean.device, mean.dtype)
        return reparameterize(mean, log_variance, noise)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Decode the posterior means: the model's best reconstruction ``[B, C, H, W]``."""
        return self.decode(self.encode(images)[0])

    # --- training ---------------------------------------------------------------------------------
    def vae_losses(self, images: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample ``[B]`` reconstruction error, KL to the prior and their beta-weighted sum."""
        reconstructed = self.decode(self.sample_latents(mean, log_variance))  # [B, C, H, W]
        reconstruction = pixel_reconstruction_loss(reconstructed, images)
        kl = gaussian_kl_divergence(mean.float(), log_variance.float())
        return {"reconstruction": reconstruction, "kl": kl, "vae": beta_vae_loss(reconstruction, kl, self.config.beta)}

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One Adam step on the negative beta-ELBO of ``batch["images"]`` ``[B, C, H, W]``."""
        images = batch["images"]
        mean, log_variance = self.encode(images)
        losses = {name: value.mean() for name, value in self.vae_losses(images, mean, log_variance).items()}
        self.optimize(losses["vae"], self.optimizers["vae"], self.parameters())
        self.steps_done += 1
        return {name: float(value.detach()) for name, value in losses.items()}


class DebiasingVAE(VAE):
    """DB-VAE (Amini et al. 2019): one encoder gives a face logit and q(z|x); the VAE loss counts on faces only.

    ``batch["images"]`` ``[B, C, H, W]`` holds faces and non-faces, ``batch["labels"]`` ``[B]`` is 1 for faces.
    Resampling of the training faces is the data side's job (:func:`debiasing_weights`).
    """

    n_logits = 1

    def __init__(self, channels: int, height: int, width: int, config: VAEConfig = VAEConfig(), seed: int = 0):
        super().__init__(channels, height, width, config, seed)
        # the training faces' sampling probabilities [N] and the epoch they were computed in; set by the data side
        self.resampling: dict = {"epoch": -1, "weights": None}

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Face logits ``[B]`` (> 0 means face)."""
        return self.encode_all(images)[0][:, 0]

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Amini et al. 2019, eq. 3: L = c * L_y(y, y_hat) + 1[y = face] * L_VAE, averaged over the batch."""
        images, labels = batch["images"], batch["labels"].float()
        logits, mean, log_variance = self.encode_all(images)
        classification = face_classification_loss(logits[:, 0].float(), labels)  # [B]
        vae = self.vae_losses(images, mean, log_variance)
        faces = labels.sum().clamp_min(1.0)
        loss = (self.config.classifier_weight * classification + labels * vae["vae"]).mean()
        self.optimize(loss, self.optimizers["vae"], self.parameters())
        self.steps_done += 1
        losses = {"loss": loss, "classification": classification.mean(), "accuracy": _accuracy(logits[:, 0], labels)}
        losses |= {f"face_{name}": (labels * value).sum() / faces for name, value in vae.items()}
        return {name: float(value.detach()) for name, value in losses.items()}

    def training_state(self) -> dict:
        return {**super().training_state(), "resampling": dict(self.resampling)}

    def load_training_state(self, state: dict) -> None:
        super().load_training_state(state)
        self.resampling = dict(state["resampling"])


class FaceClassifier(TrainableModel):
    """The DB-VAE's encoder with a single output and no decoder: the standard (not debiased) face classifier."""

    def __init__(self, channels: int, height: int, width: int, config: VAEConfig = VAEConfig(), seed: int = 0):
        super().__init__()
        self.config, self.image_shape = config, (channels, height, width)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.encoder = ConvEncoder(channels, height, width, config.channels, 1, config.norm)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))
        self.optimizers = {"classifier": torch.optim.Adam(self.parameters(), config.lr,
                                                          (config.adam_beta1, config.adam_beta2))}

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Face logits ``[B]`` (> 0 means face)."""
        return self.encoder(images)[:, 0]

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One Adam step on the binary cross-entropy of ``batch["labels"]`` (1 = face)."""
        labels = batch["labels"].float()
        logits = self.classify(batch["images"])
        loss = face_classification_loss(logits.float(), labels).mean()
        self.optimize(loss, self.optimizers["classifier"], self.parameters())
        self.steps_done += 1
        return {"classification": float(loss.detach()), "accuracy": float(_accuracy(logits, labels))}


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return ((logits.detach() > 0).float() == labels).float().mean()


def debiasing_weights(latent_means: torch.Tensor, bins: int, alpha: float,
                      combine: Literal["max", "product"] = "max") -> torch.Tensor:
    """Sampling probabilities ``[N]`` (summing to 1) for ``N`` training faces from their latent means ``[N, L]``.

    Adaptive resampling of Amini et al. 2019 (eq. 4): per latent dimension, a
    histogram with ``bins`` equal-width bins over the data's range estimates the
    density Q_i; each face's weight for dimension i is ``1 / (Q_i(z_i) + alpha)``,
    with Q_i as the share of faces in the bin and ``alpha`` smoothing it (alpha
    -> infinity: uniform sampling; alpha -> 0: rare codes dominate).
    ``combine="product"`` multiplies the dimensions' weights as in the paper;
    ``"max"`` (the MIT 6.S191 lab's choice, default) takes for each face the
    largest of its per-dimension probabilities, which stays stable with many
    latents, where the product concentrates on a handful of faces.
    """
    if latent_means.ndim != 2 or latent_means.shape[0] == 0:
        raise ValueError(f"latent_means must be [N, L] with N > 0, got {list(latent_means.shape)}")
    if bins < 1 or alpha < 0:
        raise ValueError(f"need bins >= 1 and alpha >= 0, got bins={bins}, alpha={alpha}")
    scores = LatentHistograms(latent_means, bins, alpha, combine).training_scores  # [N]
    return (scores / scores.sum()).float()


class LatentHistograms:
    """Per-latent histograms of the training faces' latent means: the density behind adaptive resampling.

    ``scores`` gives any face's unnormalised sampling weight on the training
    faces' scale: for the training faces themselves, normalised to sum to 1,
    they are exactly the DB-VAE's resampling probabilities.
    """

    def __init__(self, training_means: torch.Tensor, bins: int, alpha: float, combine: str):
        if combine not in ("max", "product"):
            raise ValueError(f"unknown combine {combine!r}; valid: max, product")
        z = training_means.detach().double().cpu()  # [N, L]
        self.bins, self.alpha, self.combine = bins, alpha, combine
        self.low = z.min(dim=0).values
        self.width = (z.max(dim=0).values - self.low).clamp_min(1e-12)
        self.share = F.one_hot(self._bin_index(z), bins).sum(dim=0).double() / len(z)  # [L, bins]
        per_latent = self._per_latent(z)  # [N, L]
        self.column_sums = per_latent.sum(dim=0)  # [L], the "max" combination's normaliser
        self.log_offset = per_latent.log().sum(dim=1).max()  # the "product" combination's
        self.training_scores = self.scores(z)  # [N]

    def _bin_index(self, z: torch.Tensor) -> torch.Tensor:
        return ((z - self.low) / self.width * self.bins).long().clamp(0, self.bins - 1)  # [M, L]

    def _per_latent(self, z: torch.Tensor) -> torch.Tensor:
        return 1.0 / (self.share.gather(1, self._bin_index(z).T).T + self.alpha)  # [M, L]

    def scores(self, latent_means: torch.Tensor) -> torch.Tensor:
        """Unnormalised sampling weights ``[M]`` of faces with these latent means ``[M, L]``."""
        per_latent = self._per_latent(latent_means.detach().double().cpu())
        if self.combine == "max":
            return (per_latent / self.column_sums).max(dim=1).values
        return (per_latent.log().sum(dim=1) - self.log_offset).exp()

    def relative_weight(self, latent_means: torch.Tensor) -> torch.Tensor:
        """Weights ``[M]`` against the average training face (1 = average, 3 = drawn three times as often)."""
        return self.scores(latent_means) / self.training_scores.mean()

    def rarer_than(self, latent_means: torch.Tensor) -> torch.Tensor:
        """The share ``[M]`` of training faces with a smaller weight than each face."""
        return (self.training_scores[None, :] < self.scores(latent_means)[:, None]).double().mean(dim=1)
