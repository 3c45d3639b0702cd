"""The Faces tab's side-by-side views: the lecture's comparisons on the page.

* A plain autoencoder beside a VAE: one uploaded face reconstructed by both, new faces decoded from the same codes
  z ~ N(0, I), and the straight line from the face to a second one (API ``/compare_autoencoders``: image or None,
  second image or None, autoencoder, VAE, seed -> (reconstructions or None, samples, morphs or None, next seed)).
* Two generators (the plain GAN and the progressively grown one) drawing from the same seed (API
  ``/compare_generators``: first model, second model, seed -> (grid, next seed)).
* A face detector's detection rate per group of test faces (the lecture's darker/lighter, female/male), read from
  the report ``voiceconv faces groups --json MODEL.groups.json`` leaves beside its model file (API
  ``/face_groups``: model -> (table, chart)).
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import numpy as np
import pandas as pd
import torch

from voiceconv.errors import VoiceconvError
from voiceconv.faces.data import IMAGE_SUFFIXES
from voiceconv.faces.groups import read_group_rates, report_beside
from voiceconv.faces.views import morphs_side_by_side, reconstructions_side_by_side, samples_side_by_side
from voiceconv.models.vae import VAE, Autoencoder
from voiceconv.web.face_models import FaceModels
from voiceconv.web.inputs import MAX_SEED, checked_number_input, checked_seed
from voiceconv.web.limits import UploadError
from voiceconv.web.messages import shown_as_message


class ComparisonHandlers:
    """Event handlers of the side-by-side sections; models are chosen by key among ``models``, and uploads become
    ``[1, 3, S, S]`` faces through ``read_face(path, key)`` (the Faces tab's checked upload reader)."""

    def __init__(self, models: FaceModels, read_face: Callable[[str, str], torch.Tensor]):
        self.models, self.read_face = models, read_face

    def _encoder_model(self, key: str) -> VAE | Autoencoder:
        model = self.models.model(key)
        if not isinstance(model, (VAE, Autoencoder)):
            raise UploadError(f"{key} is a {self.models.info(key).kind} model; this view needs an autoencoder or VAE")
        return model

    @shown_as_message
    def compare_autoencoders(self, path: str | None, other: str | None, ae_key: str, vae_key: str,
                             seed: float | None) -> tuple:
        """(reconstructions or None, samples, morphs or None, next seed): each row the autoencoder's, then the VAE's."""
        models = [self._encoder_model(ae_key), self._encoder_model(vae_key)]
        seed = checked_seed(seed)
        face = self.read_face(path, vae_key) if path else None
        reconstructions = reconstructions_side_by_side(models, face) if face is not None else None
        morphs = None
        if face is not None and other:
            morphs = morphs_side_by_side(models, face, self.read_face(other, vae_key))
        return reconstructions, samples_side_by_side(models, seed), morphs, (seed + 1) % MAX_SEED

    @shown_as_message
    def compare_generators(self, first: str, second: str, seed: float | None) -> tuple[np.ndarray, int]:
        """(one row of new faces per model from the same seed, the next seed)."""
        seed = checked_seed(seed)
        return samples_side_by_side([self.models.model(first), self.models.model(second)], seed), (seed + 1) % MAX_SEED


    def groups(self, key: str) -> tuple[str, pd.DataFrame | None]:
        """(Markdown table, chart data) of the detection rate per group in the report beside ``key``'s file."""
        model_file = self.models.info(key).path
        path = report_beside(model_file)
        if not path.is_file():
            return (f"*No per-group report beside {key}: `voiceconv faces groups --model {model_file.name} FOLDER "
                    f"--json {path.name}` writes one (FOLDER/GROUP/*.png).*", None)
        try:
            rates = read_group_rates(path)
        except VoiceconvError as err:
            return f"*{err}*", None
        rows = ["| group | detected | rate |", "|---|---|---|"]
        rows += [f"| {name} | {d} of {n} | {d / n:.0%} |" if n else f"| {name} | 0 of 0 | - |"
                 for name, (d, n) in rates.items()]
        chart = pd.DataFrame({"group": list(rates), "detected (%)": [100 * d / n if n else 0.0
                                                                     for d, n in rates.values()]})
        return f"Faces called faces per group ({path.name}):\n\n" + "\n".join(rows), chart


def _choices(models: FaceModels, keys: list[str]) -> list[tuple[str, str]]:
    return [(models.info(key).label, key) for key in keys]


def autoencoder_section(handlers: ComparisonHandlers, aes: list[str], vaes: list[str], upload: gr.File) -> None:
    """Autoencoder and VAE side by side on the uploaded face, on codes from N(0, I) and on a morph."""
    models = handlers.models
    gr.Markdown("### Autoencoder and VAE, side by side\nThe lecture's case for the VAE. Both reconstruct the "
                "uploaded face (top row of each picture: the autoencoder; bottom: the VAE). Codes drawn from "
                "N(0, I) decode to faces only where training made the codes fill that space, as the VAE's KL "
                "term does; the autoencoder's codes lie elsewhere. Upload a second face to see the straight "
                "line between the two codes.")
    with gr.Row():
        ae = gr.Dropdown(_choices(models, aes), value=aes[0], label="Autoencoder", elem_id="compare-ae")
        vae = gr.Dropdown(_choices(models, vaes), value=vaes[0], label="VAE", elem_id="compare-vae")
        seed = checked_number_input(gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED - 1,
                                              elem_id="compare-ae-seed"))
        other = gr.File(label="Second face, to morph into", file_types=sorted(IMAGE_SUFFIXES),
                        elem_id="compare-ae-second", height=120)
        button = gr.Button("Compare", variant="primary", elem_id="compare-ae-button")
    with gr.Row():
        reconstructions = gr.Image(label="The face, then each model's reconstruction", format="png",
                                   interactive=False, elem_id="compare-ae-reconstructions")
        morphs = gr.Image(label="Morph into the second face", format="png", interactive=False,
                          elem_id="compare-ae-morphs")
    samples = gr.Image(label="Decoded from z ~ N(0, I)", format="png", interactive=False, elem_id="compare-ae-samples")
    button.click(handlers.compare_autoencoders, [upload, other, ae, vae, seed], [reconstructions, samples, morphs, seed],
                 api_name="compare_autoencoders")


def generators_section(handlers: ComparisonHandlers, generators: list[str]) -> None:
    """Two generators' samples from the same seed, one row each."""
    models = handlers.models
    gr.Markdown("### Generators side by side\nOne row of new faces per model, drawn with the same seed: the plain "
                "GAN above, the progressively grown GAN below (or any two models that sample).")
    with gr.Row():
        first = gr.Dropdown(_choices(models, generators), value=generators[0], label="Top row", elem_id="compare-g1")
        second = gr.Dropdown(_choices(models, generators), value=generators[-1], label="Bottom row",
                             elem_id="compare-g2")
        seed = checked_number_input(gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED - 1,
                                              elem_id="compare-g-seed"))
        button = gr.Button("Draw", variant="primary", elem_id="compare-g-button")
    grid = gr.Image(label="New faces, one row per model", format="png", interactive=False, elem_id="compare-g-grid")
    button.click(handlers.compare_generators, [first, second, seed], [grid, seed], api_name="compare_generators")


def groups_section(handlers: ComparisonHandlers, detectors: list[str]) -> None:
    """The chosen detector's detection rate per group of test faces, as a table and a bar chart."""
    gr.Markdown("### Detection per group\nThe share of each group's test faces the chosen model calls faces "
                "(the lecture judges its debiasing VAE so, on darker/lighter female/male faces).")
    model = gr.Dropdown(_choices(handlers.models, detectors), value=detectors[0], label="Face detector",
                        elem_id="groups-model")
    table, chart = handlers.groups(detectors[0])
    with gr.Row():
        shown = gr.Markdown(table, elem_id="groups-table")
        plot = gr.BarPlot(chart, x="group", y="detected (%)", y_lim=[0, 100], label="Detected (%)",
                          elem_id="groups-chart")
    model.change(handlers.groups, model, [shown, plot], api_name="face_groups")
