"""Using a trained speech VAE (the face VAE's code on log-mel images): load its model file and hear a recording
through it.

:func:`reconstruct_audio` cuts a recording's log-mel image into crop-wide
windows, passes each through the encoder (posterior mean) and decoder, and
plays the result with Griffin-Lim. Its command is ``voiceconv speech-vae``
(:mod:`voiceconv.cli.speech_vae`); training lives in :mod:`voiceconv.train.speech_vae`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.io import load_audio, save_audio
from voiceconv.audio.vocoder import GriffinLimVocoder
from voiceconv.config import from_dict
from voiceconv.families import SPEECH_VAE
from voiceconv.modelfiles.format import load_model_file, load_weights
from voiceconv.models.base import evaluating
from voiceconv.models.vae import VAE, VAEConfig


@torch.no_grad()
def reconstruct_image(model: VAE, image: torch.Tensor) -> torch.Tensor:
    """``[1, n_mels, T]`` log-mel image -> its VAE reconstruction ``[1, n_mels, T]``, window by window."""
    width = model.image_shape[-1]
    frames = image.shape[-1]
    device = next(model.parameters()).device
    padded = F.pad(image, (0, (-frames) % width), mode="replicate")  # [1, n_mels, T']
    windows = padded.unfold(-1, width, width).permute(2, 0, 1, 3)  # [n, 1, n_mels, width]
    with evaluating(model):
        rebuilt = model.reconstruct(windows.to(device)).float().cpu()  # [n, 1, n_mels, width]
    return torch.cat(list(rebuilt), dim=-1)[..., :frames]  # [1, n_mels, T]


def load_speech_vae(path: str | Path) -> tuple[VAE, FeatureConfig]:
    """A speech VAE model file -> (VAE in eval mode, its feature config).

    A file of another kind is refused (a ModelFileError naming its kind) before any of its weights is read.
    """
    tensors, header = load_model_file(path, kinds=(SPEECH_VAE,))
    features, image = from_dict(FeatureConfig, header["features"]), header["image"]
    model = VAE(1, image["height"], image["width"], from_dict(VAEConfig, header["model"]))
    load_weights(model, tensors, path)
    return model.eval(), features


def reconstruct_audio(model_path: str | Path, source: str | Path, destination: str | Path) -> Path:
    """Audio file -> log-mel image -> speech VAE -> Griffin-Lim -> ``destination`` (any format save_audio writes)."""
    model, features = load_speech_vae(model_path)
    wav = load_audio(source, features.sample_rate)
    image = MelImageEncoder(features)(torch.from_numpy(wav))  # [1, n_mels, T]
    audio = GriffinLimVocoder(features)(reconstruct_image(model, image))[0]  # [samples]
    return save_audio(destination, audio.clamp(-1, 1).numpy(), features.sample_rate)
