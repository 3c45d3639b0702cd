"""Using trained image models: load face model files (weights only) and make pictures with them.

Every function takes and returns images ``[N, C, H, W]`` in [-1, 1]; the CLI
(``voiceconv faces ...``) reads image files with :func:`voiceconv.faces.data.load_face_image`
and writes grids with :func:`voiceconv.faces.data.save_grid`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from voiceconv.config import from_dict
from voiceconv.errors import ConfigError
from voiceconv.families import FACE_AE, FACE_CYCLEGAN, FACE_DBVAE, FACE_GAN, FACE_PROGAN, FACE_VAE
from voiceconv.losses import latent_kl
from voiceconv.modelfiles.format import load_model_file, load_weights, prefixed
from voiceconv.models.cyclegan import CycleGAN, CycleGANConfig, checked_direction
from voiceconv.models.gan import DCGAN, GANConfig
from voiceconv.models.progressive_gan import ProGANConfig, ProgressiveGAN
from voiceconv.models.vae import VAE, AEConfig, Autoencoder, DebiasingVAE, VAEConfig


def load_face_model(path: str | Path) -> tuple[nn.Module, dict]:
    """(model in eval mode, header) of a ``face-ae``, ``face-vae``, ``face-dbvae``, ``face-gan``, ``face-progan`` or
    ``face-cyclegan`` file."""
    tensors, header = load_model_file(path, kinds=LOADERS)  # header fields and tensors checked before any is used
    kind = header["kind"]
    image = header["image"]
    model = LOADERS[kind](tensors, header, (image["channels"], image["height"], image["width"]), path)
    return model.eval(), header


def _load_ae(tensors, header, shape, path) -> Autoencoder:
    model = Autoencoder(*shape, from_dict(AEConfig, header["model"]))
    for name in ("code_mean", "code_std"):  # [L]: the training faces' codes
        model.register_buffer(name, torch.zeros(model.config.latent))
    load_weights(model, tensors, path, optional=("steps_done",))
    return model


def _load_vae(tensors, header, shape, path) -> VAE:
    cls = DebiasingVAE if header["kind"] == FACE_DBVAE else VAE
    model = cls(*shape, from_dict(VAEConfig, header["model"]))
    model.register_buffer("latent_kl", torch.zeros(model.config.latent))
    model.register_buffer("typical_code", torch.zeros(model.config.latent))  # stays 0 in files from before it
    if "training_latent_means" in tensors:  # debiasing VAEs: the training faces' codes, [N, L]
        model.register_buffer("training_latent_means", torch.zeros_like(tensors["training_latent_means"]))
    load_weights(model, tensors, path, optional=("steps_done", "typical_code"))
    return model


def _load_gan(tensors, header, shape, path) -> DCGAN:
    model = DCGAN(*shape, from_dict(GANConfig, header["model"]))
    load_weights(model.G, prefixed(tensors, "G"), path)
    return model


def _load_progan(tensors, header, shape, path) -> ProgressiveGAN:
    model = ProgressiveGAN(*shape, from_dict(ProGANConfig, header["model"]))
    load_weights(model.G, prefixed(tensors, "G"), path)  # with G.images_seen: how far it has grown
    return model


def _load_cyclegan(tensors, header, shape, path) -> CycleGAN:
    model = CycleGAN(shape[0], shape[1], from_dict(CycleGANConfig, header["model"]))
    for name in ("G_AB", "G_BA"):
        load_weights(getattr(model, name), prefixed(tensors, name), path)
    return model


LOADERS = {FACE_AE: _load_ae, FACE_VAE: _load_vae, FACE_DBVAE: _load_vae, FACE_GAN: _load_gan,
           FACE_PROGAN: _load_progan, FACE_CYCLEGAN: _load_cyclegan}


def require_model_class(model: nn.Module, cls: type | tuple[type, ...], action: str) -> None:
    """ConfigError unless ``model`` is a ``cls`` (e.g. only VAEs and autoencoders reconstruct)."""
    if not isinstance(model, cls):
        names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        raise ConfigError(f"{action} needs a {names} model file, got a {type(model).__name__}")


@torch.no_grad()
def reconstruct(model: VAE | Autoencoder, images: torch.Tensor) -> torch.Tensor:
    """Decoded codes (a VAE's posterior means) ``[N, C, H, W]``."""
    require_model_class(model, (VAE, Autoencoder), "reconstruct")
    return model.reconstruct(images)


@torch.no_grad()
def sample(model: nn.Module, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` images decoded from codes z ~ N(0, I) (a VAE's or an autoencoder's decoder) or drawn by a GAN's
    generator."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(model, (DCGAN, ProgressiveGAN)):
        return model.sample(count, generator)
    require_model_class(model, (VAE, Autoencoder), "sample")
    return model.decode(torch.randn(count, model.config.latent, generator=generator))


@torch.no_grad()
def most_active_latents(model: VAE, count: int, images: torch.Tensor | None = None) -> list[int]:
    """The ``count`` latents with the largest mean KL: over ``images`` if given, else the training faces (stored)."""
    if images is not None:
        mean, log_variance = model.encode(images)
        activity = latent_kl(mean, log_variance)  # [L]
    else:
        activity = model.latent_kl
    return activity.argsort(descending=True)[:count].tolist()


def typical_code(model: VAE) -> torch.Tensor:
    """``[L]``: a typical training face's code when the model file stores one, else 0 (the prior's mean)."""
    stored = getattr(model, "typical_code", None)
    return stored.clone() if stored is not None else torch.zeros(model.config.latent)


@torch.no_grad()
def traverse(model: VAE, latents: list[int], steps: int, span: float, base: torch.Tensor | None = None) -> torch.Tensor:
    """Latent traversal: one row per latent in ``latents``, ``steps`` values from -span to +span, others fixed.

    ``base`` (an image ``[1, C, H, W]``) fixes the other latents at its posterior mean; without it at
    :func:`typical_code`. Returns ``[len(latents) * steps, C, H, W]``, row-major.
    """
    require_model_class(model, VAE, "traverse")
    z = model.encode(base)[0][0] if base is not None else typical_code(model)  # [L]
    values = torch.linspace(-span, span, steps)
    codes = z.repeat(len(latents), steps, 1)  # [rows, steps, L]
    for row, latent in enumerate(latents):
        codes[row, :, latent] = values
    return model.decode(codes.flatten(0, 1))


@torch.no_grad()
def interpolate(model: VAE | Autoencoder, first: torch.Tensor, second: torch.Tensor, steps: int) -> torch.Tensor:
    """Decodings of ``steps`` evenly spaced points on the straight line between two images' codes (a VAE's
    posterior means), ``[steps, C, H, W]``."""
    require_model_class(model, (VAE, Autoencoder), "interpolate")
    z = model.codes(torch.cat([first, second]))  # [2, L]
    weights = torch.linspace(0, 1, steps)[:, None]  # [steps, 1]
    return model.decode((1 - weights) * z[0] + weights * z[1])


@torch.no_grad()
def translate(model: CycleGAN, images: torch.Tensor, direction: str) -> torch.Tensor:
    """CycleGAN translation ``[N, C, H, W]``: a2b with G_AB, b2a with G_BA."""
    require_model_class(model, CycleGAN, "translate")
    return (model.a_to_b if checked_direction(direction) == "a2b" else model.b_to_a)(images)
