"""What the Faces tab shows, without gradio or the web layer: reconstructions, latent edits, traversals,
morphs, samples, and the debiasing VAE's view of a face (is it a face, and how rare is it among the training faces).

Pictures come back as RGB ``uint8 [H, W, 3]`` arrays, enlarged by whole pixels
(nearest neighbour) so that 64 x 64 faces stay crisp on the page. The page's
model registry and upload handling are in :mod:`voiceconv.web.faces`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from voiceconv.errors import VoiceconvError
from voiceconv.faces.data import image_grid, to_pixels
from voiceconv.faces.tools import interpolate, most_active_latents, reconstruct, sample, traverse, typical_code
from voiceconv.models.vae import VAE, Autoencoder, DebiasingVAE, LatentHistograms

log = logging.getLogger(__name__)

FACE_PIXELS = 256  # a single face is enlarged to about this many pixels per side
GRID_CELL_PIXELS = 128  # each face of a sample grid to about this many
SAMPLE_COUNT = 16
GRID_COLUMNS = 8
MAX_SLIDERS = 8
SLIDER_SPAN = 3.0  # sliders run from -SLIDER_SPAN to +SLIDER_SPAN (the prior's +-3 standard deviations)
TRAVERSAL_STEPS = 7  # columns of the traversal grid, -SLIDER_SPAN to +SLIDER_SPAN
INTERPOLATION_STEPS = 8  # faces in a morph, both ends included


# --- pictures --------------------------------------------------------------------------------
def enlarged(image: torch.Tensor, face_size: int, target_pixels: int = FACE_PIXELS) -> np.ndarray:
    """A ``[C, H, W]`` image in [-1, 1] -> RGB ``uint8``, each pixel repeated ``target_pixels // face_size`` times."""
    pixels = to_pixels(image).permute(1, 2, 0).numpy()  # [H, W, C]
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    scale = max(1, target_pixels // face_size)
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


# --- reconstruct and edit -------------------------------------------------------------------------
def slider_latents(model: VAE, count: int = MAX_SLIDERS) -> list[tuple[int, float]]:
    """``(latent, mean KL)`` of the ``count`` most active latents over the training faces, most active first."""
    latents = most_active_latents(model, min(count, model.config.latent))
    return [(latent, float(model.latent_kl[latent])) for latent in latents]


@dataclass(frozen=True)
class FaceView:
    """An uploaded face as the model sees it, its reconstruction, and its code's values at the slider latents."""

    seen: np.ndarray
    reconstruction: np.ndarray
    slider_values: list[float]


@torch.no_grad()
def explore_face(model: VAE, image: torch.Tensor, latents: list[int]) -> FaceView:
    """Encode ``image`` ``[1, 3, S, S]``; the reconstruction decodes its posterior mean."""
    mean = model.encode(image)[0]  # [1, L]
    values = mean[0, latents].clamp(-SLIDER_SPAN, SLIDER_SPAN)
    size = image.shape[-1]
    return FaceView(enlarged(image[0], size), enlarged(model.decode(mean)[0], size),
                    [round(float(v), 2) for v in values])


@torch.no_grad()
def edited_face(model: VAE, image: torch.Tensor | None, latents: list[int], values: list[float]) -> np.ndarray:
    """Decode ``image``'s posterior mean (the model's typical code without one) with ``latents`` set to ``values``."""
    z = model.encode(image)[0] if image is not None else typical_code(model)[None]  # [1, L]
    z[0, latents] = torch.tensor(values, dtype=z.dtype)
    return enlarged(model.decode(z)[0], model.image_shape[-1])


def traversal_grid(model: VAE, image: torch.Tensor | None, latents: list[int]) -> np.ndarray:
    """One row per latent in ``latents``, varied over the sliders' span around ``image``'s code (or the typical one)."""
    return grid_picture(traverse(model, latents, TRAVERSAL_STEPS, SLIDER_SPAN, image), TRAVERSAL_STEPS)


def interpolation_strip(model: VAE, first: torch.Tensor, second: torch.Tensor) -> np.ndarray:
    """Decodings of evenly spaced codes from ``first``'s posterior mean to ``second``'s, as one row."""
    return grid_picture(interpolate(model, first, second, INTERPOLATION_STEPS), INTERPOLATION_STEPS)


@torch.no_grad()
def sample_grid(model: nn.Module, seed: int, count: int = SAMPLE_COUNT) -> np.ndarray:
    """``count`` new faces from the prior (a VAE's decoder or a GAN's generator) as one grid picture."""
    return grid_picture(sample(model, count, seed), GRID_COLUMNS)


# --- side by side -----------------------------------------------------------------------------------
@torch.no_grad()
def reconstructions_side_by_side(models: list[VAE | Autoencoder], image: torch.Tensor) -> np.ndarray:
    """One row: ``image`` ``[1, 3, S, S]`` as the models see it, then each model's reconstruction of it."""
    return grid_picture(torch.cat([image, *(reconstruct(model, image) for model in models)]), 1 + len(models))


def samples_side_by_side(models: list[nn.Module], seed: int, count: int = GRID_COLUMNS) -> np.ndarray:
    """One row of ``count`` new faces per model, each from the same ``seed`` (the same codes where the code sizes
    agree)."""
    return grid_picture(torch.cat([sample(model, count, seed) for model in models]), count)


def morphs_side_by_side(models: list[VAE | Autoencoder], first: torch.Tensor, second: torch.Tensor) -> np.ndarray:
    """One row per model: the faces on the straight line from ``first``'s code to ``second``'s."""
    rows = [interpolate(model, first, second, INTERPOLATION_STEPS) for model in models]
    return grid_picture(torch.cat(rows), INTERPOLATION_STEPS)


def grid_picture(images: torch.Tensor, columns: int) -> np.ndarray:
    """``[N, C, S, S]`` faces in [-1, 1] -> one RGB grid picture, each face enlarged to about GRID_CELL_PIXELS."""
    images = images.float()
    return enlarged(image_grid(images, columns, padding=2), images.shape[-1], GRID_CELL_PIXELS)


# --- the debiasing view ---------------------------------------------------------------------------
def rarity_reference(model: DebiasingVAE) -> LatentHistograms:
    """The histograms of the DB-VAE's training faces' latent means, which its model file stores, for sampling weights.

    VoiceconvError for a file without them (exported before session 4): retraining with ``voiceconv faces train``
    writes them.
    """
    means = getattr(model, "training_latent_means", None)
    if means is None:
        raise VoiceconvError("its model file stores no training_latent_means (the training faces' codes); "
                             "retrain it with `voiceconv faces train` to get them")
    config = model.config
    return LatentHistograms(means, config.histogram_bins, config.smoothing_alpha, config.resampling_combine)


@dataclass(frozen=True)
class DebiasView:
    """The DB-VAE's view of one image: face probability, and (when known) its sampling weight among training faces."""

    face_probability: float
    relative_weight: float | None
    rarer_than: float | None
    training_faces: int | None
    note: str = ""  # why the weight is missing

    def markdown(self) -> str:
        """The explanation shown beside the numbers."""
        verdict = "a face" if self.face_probability >= 0.5 else "not a face"
        lines = [f"**Face probability {self.face_probability:.2f}**: the DB-VAE's classifier calls this image "
                 f"{verdict} (above 0.5 = face)."]
        if self.relative_weight is None:
            lines.append(f"Sampling weight unavailable: {self.note}.")
        else:
            lines.append(f"**Sampling weight {self.relative_weight:.2f}**: as a training face it would be drawn "
                         f"{self.relative_weight:.2f} times as often as an average one (1 = average; faces whose "
                         f"latent code is rare get more), more than {self.rarer_than:.0%} of the "
                         f"{self.training_faces} training faces.")
        return "\n\n".join(lines)


@torch.no_grad()
def debias_face(model: DebiasingVAE, image: torch.Tensor, reference: LatentHistograms | None,
                note: str = "") -> DebiasView:
    """Classify ``image`` ``[1, 3, S, S]`` and weigh its latent mean against ``reference`` (when given)."""
    logits, mean, _ = model.encode_all(image)
    probability = float(torch.sigmoid(logits[0, 0]))
    if reference is None:
        return DebiasView(probability, None, None, None, note)
    return DebiasView(probability, float(reference.relative_weight(mean)[0]), float(reference.rarer_than(mean)[0]),
                      len(reference.training_scores))
