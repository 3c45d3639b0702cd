"""The Faces tab: the lecture's face models on the page.

A face VAE reconstructs an uploaded face (or a sample face); sliders set its
most active latents (ranked by their mean KL over the training faces, as
``voiceconv faces traverse`` does) and the face is re-rendered as they move;
VAEs, autoencoders and GANs sample new faces; an autoencoder and a VAE, and
two generators, are shown side by side (:mod:`voiceconv.web.faces_compare`);
a debiasing VAE says how sure its classifier is that the image is a face and
how rare the face's latent code is among its training faces.

API endpoints (``gradio_client``): ``/reconstruct_face`` (image, model) ->
(face as the model sees it, reconstruction, edited face, one value per
slider); ``/edit_face`` (image or None, model, slider values...) -> edited
face; ``/traverse_face`` (image or None, model) -> traversal grid;
``/interpolate_faces`` (image, second image, model) -> morph strip;
``/sample_faces`` (model, seed) -> (grid, next seed); ``/debias_face``
(image, model) -> (face probability, sampling weight, explanation).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from voiceconv.errors import VoiceconvError
from voiceconv.faces.data import IMAGE_SUFFIXES, load_face_image
from voiceconv.families import FACE_AE, FACE_DBVAE, FACE_GAN, FACE_PROGAN, FACE_VAE
from voiceconv.faces.tools import typical_code
from voiceconv.faces.views import (MAX_SLIDERS, SLIDER_SPAN, debias_face, edited_face, explore_face,
                                   interpolation_strip, sample_grid, slider_latents, traversal_grid)
from voiceconv.models.vae import VAE
from voiceconv.web.face_models import FaceModels
from voiceconv.web.faces_compare import ComparisonHandlers, autoencoder_section, generators_section, groups_section
from voiceconv.web.inputs import MAX_SEED, checked_number_input, checked_seed, is_number, shown_value
from voiceconv.web.limits import Limits, UploadError, check_upload_size, user_message
from voiceconv.web.models import FaceModelInfo
from voiceconv.web.messages import shown_as_message

VAE_KINDS = (FACE_VAE, FACE_DBVAE)
SAMPLER_KINDS = (FACE_VAE, FACE_DBVAE, FACE_AE, FACE_GAN, FACE_PROGAN)
GENERATOR_KINDS = (FACE_GAN, FACE_PROGAN)  # shown side by side
TRAIN_HINT = ("Train one with `voiceconv train recipes/faces_vae.yaml --out runs/faces_vae` (also `faces_dbvae.yaml`, "
              "`faces_gan.yaml`; see `recipes/faces/README.md`) and copy its `model.safetensors` into the models "
              "folder under a name of its own, e.g. `faces_vae.safetensors`.")
SLIDERS_PER_ROW = 4

log = logging.getLogger(__name__)


# --- uploads and the models ----------------------------------------------------------------------
def load_upload_face(path: str | Path | None, size: int, limits: Limits) -> torch.Tensor:
    """An uploaded image as the model sees it, ``[1, 3, size, size]`` in [-1, 1] (safe loader, size limit)."""
    if not path:
        raise UploadError("no face yet: upload an image or pick one of the sample faces")
    check_upload_size(path, limits)
    stat = os.stat(path)
    return _decoded(str(path), size, stat.st_mtime_ns, stat.st_size)[None]


@functools.lru_cache(maxsize=32)
def _decoded(path: str, size: int, mtime_ns: int, file_size: int) -> torch.Tensor:
    """Decoded once per file version: slider moves re-render the same upload many times."""
    return load_face_image(path, size)


# --- the handlers --------------------------------------------------------------------------------
class FaceHandlers:
    """The Faces tab's event handlers; models are chosen by key among the discovered face models."""

    def __init__(self, models: FaceModels, limits: Limits):
        self.models, self.limits = models, limits

    def read_face(self, path: str | None, key: str) -> torch.Tensor:
        return load_upload_face(path, self.models.info(key).image_size, self.limits)

    @shown_as_message
    def reconstruct(self, path: str | None, key: str) -> tuple:
        """(face as the model sees it, reconstruction, edited face = reconstruction, one value per slider)."""
        model = self.models.vae(key)
        view = explore_face(model, self.read_face(path, key), _latents(model))
        return (view.seen, view.reconstruction, view.reconstruction, *_padded(view.slider_values))

    @shown_as_message
    def reconstruct_if_any(self, path: str | None, key: str) -> tuple:
        """:meth:`reconstruct` after an upload or a model change; without an image, the model's typical face."""
        if path:
            return self.reconstruct(path, key)
        model = self.models.vae(key)
        latents = _latents(model)
        values = [round(float(v), 2) for v in typical_code(model)[latents].clamp(-SLIDER_SPAN, SLIDER_SPAN)]
        return (None, None, edited_face(model, None, latents, values), *_padded(values))

    @shown_as_message
    def relabel(self, key: str) -> list[dict]:
        """Slider updates after the model changed: one per latent it ranks, labelled with latent and KL."""
        latents = slider_latents(self.models.vae(key))
        shown = [gr.update(label=f"latent {latent} (KL {kl:.2f})", visible=True) for latent, kl in latents]
        return shown + [gr.update(visible=False) for _ in range(MAX_SLIDERS - len(shown))]

    @shown_as_message
    def edit(self, path: str | None, key: str, *values: float) -> np.ndarray:
        """The face (the model's typical face without an image) with the slider latents set to ``values``."""
        model = self.models.vae(key)
        latents = _latents(model)
        if len(values) < len(latents):
            raise UploadError(f"{key} needs {len(latents)} slider values, got {len(values)}")
        image = self.read_face(path, key) if path else None
        return edited_face(model, image, latents, [_checked_value(v) for v in values[:len(latents)]])

    @shown_as_message
    def traverse(self, path: str | None, key: str) -> np.ndarray:
        """The traversal grid of the slider latents around the face (the typical face without one)."""
        model = self.models.vae(key)
        return traversal_grid(model, self.read_face(path, key) if path else None, _latents(model))

    @shown_as_message
    def interpolate(self, path: str | None, other: str | None, key: str) -> np.ndarray:
        """The faces between the uploaded face and a second one."""
        if not other:
            raise UploadError("no second face yet: upload the face to morph into")
        return interpolation_strip(self.models.vae(key), self.read_face(path, key), self.read_face(other, key))

    @shown_as_message
    def sample(self, key: str, seed: float | None) -> tuple[np.ndarray, int]:
        """(grid of new faces, the next seed) from a VAE's prior or a GAN's generator."""
        seed = checked_seed(seed)
        return sample_grid(self.models.model(key), seed), (seed + 1) % MAX_SEED

    @shown_as_message
    def debias(self, path: str | None, key: str) -> tuple[float, float | None, str]:
        """(face probability, sampling weight against the average training face or None, explanation)."""
        model = self.models.dbvae(key)
        image = self.read_face(path, key)
        try:
            reference, note = self.models.rarity(key), ""
        except VoiceconvError as err:
            reference, note = None, user_message(err)
        view = debias_face(model, image, reference, note)
        return view.face_probability, view.relative_weight, view.markdown()

    def debias_if_any(self, path: str | None, key: str) -> tuple[float | None, float | None, str]:
        """:meth:`debias` after an upload or a model change; empty without an image."""
        return self.debias(path, key) if path else (None, None, "")


def _latents(model: VAE) -> list[int]:
    return [latent for latent, _ in slider_latents(model)]


def _padded(values: list[float]) -> list[float]:
    """One value per slider: unused sliders (a model with fewer latents) stay at 0."""
    return [*values, *[0.0] * (MAX_SLIDERS - len(values))]


def _checked_value(value: float | None) -> float:
    if not is_number(value):
        raise UploadError(f"slider values must be numbers, got {shown_value(value)}")
    return float(min(max(value, -SLIDER_SPAN), SLIDER_SPAN))


# --- the tab --------------------------------------------------------------------------------------
def faces_tab(infos: dict[str, FaceModelInfo], limits: Limits, examples: Sequence[str | Path]) -> None:
    """The Faces tab's contents: reconstruct and edit, sample, and the debiasing view (each where a model allows)."""
    if not infos:
        gr.Markdown(f"No face models in the models folder yet. {TRAIN_HINT}")
        return
    models = _loadable(FaceModels(dict(infos)))
    if not models.infos:
        gr.Markdown(f"No usable face models in the models folder (see the server's log). {TRAIN_HINT}")
        return
    handlers = FaceHandlers(models, limits)
    gr.Markdown("Upload a face photo or click a sample face. Every image is cropped to a centred square and "
                "shrunk to the model's size first (the left picture shows it).")
    upload = gr.File(label="Face image", file_types=sorted(IMAGE_SUFFIXES), elem_id="face-upload")
    if examples:
        _sample_gallery(examples, upload)
    vaes = models.keys_of(*VAE_KINDS)
    if vaes:
        _reconstruct_section(handlers, models, vaes, upload)
    else:
        gr.Markdown(f"*Reconstructing and editing faces needs a face VAE (face-vae or face-dbvae).* {TRAIN_HINT}")
    _sample_section(handlers, models)
    comparisons = ComparisonHandlers(models, handlers.read_face)
    _side_by_side_sections(comparisons, models, vaes, upload)
    dbvaes = models.keys_of(FACE_DBVAE)
    if dbvaes:
        _debias_section(handlers, models, dbvaes, upload)
        groups_section(comparisons, dbvaes)
    else:
        gr.Markdown("*The debiasing view needs a face-dbvae model: `voiceconv train recipes/faces_dbvae.yaml "
                    "--out runs/faces_dbvae`.*")


def _side_by_side_sections(handlers: ComparisonHandlers, models: FaceModels, vaes: list[str], upload: gr.File) -> None:
    """The autoencoder beside a VAE, and two generators, where the models folder holds them."""
    aes = models.keys_of(FACE_AE)
    if aes and vaes:
        autoencoder_section(handlers, aes, vaes, upload)
    generators = models.keys_of(*GENERATOR_KINDS)
    if len(generators) >= 2:
        generators_section(handlers, generators)


def _loadable(models: FaceModels) -> FaceModels:
    """``models`` without those whose weights cannot be loaded (e.g. NaN), each skipped with a log line.

    The tab draws with the first models at once, so each is loaded here, once, rather than failing on first use.
    """
    for key in list(models.infos):
        try:
            models.model(key)
        except VoiceconvError as err:
            log.warning("skipping %s", err)
            del models.infos[key]
    return models


def _sample_gallery(examples: Sequence[str | Path], upload: gr.File) -> None:
    gallery = gr.Gallery([str(p) for p in examples], label="Sample faces (click one)", columns=len(examples),
                         height=180, object_fit="contain", allow_preview=False, interactive=False,
                         elem_id="sample-faces")

    def pick(images: list, evt: gr.SelectData) -> str:
        """The clicked sample (the gallery's copy of it) becomes the upload."""
        return images[evt.index][0]

    gallery.select(pick, gallery, upload, api_visibility="private")


def _reconstruct_section(handlers: FaceHandlers, models: FaceModels, vaes: list[str], upload: gr.File) -> None:
    gr.Markdown("### Reconstruct and edit\nThe sliders set the latents that vary most across the training faces "
                f"(by mean KL), from -{SLIDER_SPAN:g} to +{SLIDER_SPAN:g} prior standard deviations; they start "
                "at the face's own code (before an upload, at a typical training face's).")
    model = gr.Dropdown([(models.info(key).label, key) for key in vaes], value=vaes[0], label="Face VAE",
                        elem_id="face-vae-model")
    _, _, typical_face, *typical_values = handlers.reconstruct_if_any(None, vaes[0])  # before any upload
    with gr.Row():
        seen = gr.Image(label="As the model sees it", format="png", interactive=False, elem_id="face-seen")
        reconstruction = gr.Image(label="Reconstruction", format="png", interactive=False,
                                  elem_id="face-reconstruction")
        edited = gr.Image(typical_face, label="Edited (move the sliders)", format="png", interactive=False,
                          elem_id="face-edited")
    first = slider_latents(models.vae(vaes[0]))
    sliders = []
    for row in range(0, MAX_SLIDERS, SLIDERS_PER_ROW):
        with gr.Row():
            for index in range(row, row + SLIDERS_PER_ROW):
                shown = index < len(first)
                label = f"latent {first[index][0]} (KL {first[index][1]:.2f})" if shown else "latent"
                sliders.append(checked_number_input(gr.Slider(
                    -SLIDER_SPAN, SLIDER_SPAN, value=typical_values[index], step=0.05, label=label, visible=shown,
                    elem_id=f"face-latent-{index}")))
    button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-button")
    outputs = [seen, reconstruction, edited, *sliders]
    button.click(handlers.reconstruct, [upload, model], outputs, api_name="reconstruct_face")
    upload.change(handlers.reconstruct_if_any, [upload, model], outputs, api_visibility="private")
    model.change(handlers.relabel, model, sliders, api_visibility="private").then(
        handlers.reconstruct_if_any, [upload, model], outputs, api_visibility="private")
    gr.on([trigger for slider in sliders for trigger in (slider.input, slider.release)], handlers.edit,
          [upload, model, *sliders], edited, api_name="edit_face", trigger_mode="always_last", show_progress="hidden")
    _grids_section(handlers, model, upload)


def _grids_section(handlers: FaceHandlers, model: gr.Dropdown, upload: gr.File) -> None:
    """Whole pictures of the latent space: a traversal grid, and a morph into a second face."""
    with gr.Row():
        traverse_button = gr.Button("Traversal grid (one slider latent per row, -3 to +3)", elem_id="traverse-button")
        other = gr.File(label="Second face, to morph into", file_types=sorted(IMAGE_SUFFIXES), elem_id="face-upload-2",
                        height=120)
        morph_button = gr.Button("Morph into the second face", elem_id="interpolate-button")
    grid = gr.Image(label="Traversal grid or morph", format="png", interactive=False, elem_id="face-grid")
    traverse_button.click(handlers.traverse, [upload, model], grid, api_name="traverse_face")
    morph_button.click(handlers.interpolate, [upload, other, model], grid, api_name="interpolate_faces")


def _sample_section(handlers: FaceHandlers, models: FaceModels) -> None:
    samplers = models.keys_of(*SAMPLER_KINDS)
    gr.Markdown("### Sample new faces\nRandom codes from the prior, decoded by a VAE or drawn by a GAN's generator; "
                "the same seed gives the same faces.")
    with gr.Row():
        model = gr.Dropdown([(models.info(key).label, key) for key in samplers], value=samplers[0], label="Model",
                            elem_id="sample-model")
        seed = checked_number_input(gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED - 1,
                                              elem_id="sample-seed"))
        button = gr.Button("Sample new faces", variant="primary", elem_id="sample-button")
    grid = gr.Image(label="New faces", format="png", interactive=False, elem_id="sampled-faces")
    button.click(handlers.sample, [model, seed], [grid, seed], api_name="sample_faces")


def _debias_section(handlers: FaceHandlers, models: FaceModels, dbvaes: list[str], upload: gr.File) -> None:
    gr.Markdown("### Debiasing\nA debiasing VAE (Amini et al. 2019) is a face / non-face classifier that shows "
                "training faces with rare latent codes more often. For the uploaded image: how sure it is that this "
                "is a face, and how much weight the face would get among its training faces (the first check "
                "rebuilds the training faces' code histogram: a few seconds).")
    with gr.Row():
        model = gr.Dropdown([(models.info(key).label, key) for key in dbvaes], value=dbvaes[0],
                            label="Debiasing VAE", elem_id="dbvae-model")
        probability = gr.Number(label="Face probability", precision=3, interactive=False, elem_id="face-probability")
        weight = gr.Number(label="Sampling weight (1 = average training face)", precision=2, interactive=False,
                           elem_id="sampling-weight")
        button = gr.Button("Check this face", elem_id="debias-button")
    explanation = gr.Markdown(elem_id="debias-explanation")
    outputs = [probability, weight, explanation]
    button.click(handlers.debias, [upload, model], outputs, api_name="debias_face")
    upload.change(handlers.debias_if_any, [upload, model], outputs, api_visibility="private")
    model.change(handlers.debias_if_any, [upload, model], outputs, api_visibility="private")
