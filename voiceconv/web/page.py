"""The Gradio page: Convert, Batch, Live, Train, Faces and Models tabs over the discovered voice and face models.

Every button has an ``api_name``, so ``gradio_client`` can drive the page
(``/convert``, ``/convert_batch``, and the endpoints of the Live tab in
:mod:`voiceconv.web.live`, the Train tab in :mod:`voiceconv.web.train_tab` and
the Faces tab in :mod:`voiceconv.web.faces`). Errors a user can act on appear as
messages on the page (``gr.Error``), never as tracebacks.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
import numpy as np

from voiceconv.audio.world import parse_pitch
from voiceconv.models.cyclegan import checked_direction
from voiceconv.errors import VoiceconvError
from voiceconv.web.faces import faces_tab
from voiceconv.web.jobs import convert_batch, convert_clip, new_job_dir
from voiceconv.web.limits import MB, Limits, UploadError
from voiceconv.web.live import live_tab
from voiceconv.web.messages import shown_as_message
from voiceconv.web.models import (ConverterCache, FaceModelInfo, ModelInfo, discover_face_models, discover_models,
                                  face_model_summary_markdown, model_documents, model_info, model_summary_markdown)
from voiceconv.web.train_tab import TrainHandlers, train_tab
from voiceconv.web.training import TrainingJobs

log = logging.getLogger(__name__)

DEFAULT_MODEL_KEY = "kathleen_rms"
FAILURE_HEADERS = ["file", "reason"]  # as in failures.csv
PITCH_CHOICES = ["auto", "source", "-12", "-7", "-5", "-3", "-2", "-1", "+1", "+2", "+3", "+5", "+7", "+12"]


def build_app(models_dir: str | Path | None, default_model: str | Path | None = None, limits: Limits = Limits(),
              examples: Sequence[str | Path] = (), work_dir: str | Path | None = None,
              face_examples: Sequence[str | Path] = (), training: TrainingJobs | None = None) -> gr.Blocks:
    """The page for the voice models in ``models_dir`` plus ``default_model`` (which is selected first).

    ``examples`` are audio files offered one click away on the Convert tab,
    ``face_examples`` images on the Faces tab (which uses the face models in
    ``models_dir``); ``work_dir`` holds each request's files (a fresh temp
    folder by default). With ``training`` the page has a Train tab, and the
    models its jobs finish join the model list. Requests are queued,
    ``limits.concurrency`` at a time.
    """
    models = discover_models(models_dir, [default_model] if default_model else [])
    face_models = discover_face_models(models_dir)
    if not models:
        raise VoiceconvError(f"no voice models found in {models_dir}; pass --model or --models-dir")
    if work_dir is None:  # deleted when the process exits
        work_dir = _temporary_work_dir()
    handlers = Handlers(models, limits, Path(work_dir), training)
    first = _first_model(models, default_model)
    with gr.Blocks(title="voiceconv", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_introduction(limits))
        with gr.Row(elem_id="voice-choice") as voice_choice:  # the voice tabs' model and direction; hidden on the Faces tab
            model = gr.Dropdown([(info.label, key) for key, info in models.items()], value=first.key, label="Model",
                                allow_custom_value=True)  # the handlers check the key: models trained later join
            direction = gr.Dropdown(first.direction_choices(), value="a2b", label="Direction")
            pitch = gr.Dropdown(PITCH_CHOICES, value="auto", allow_custom_value=True, label="Pitch",
                                info="auto: the target speaker's pitch; source: keep your own; +N / -N semitones",
                                elem_id="pitch")
        model.change(handlers.directions, model, direction, api_visibility="private")
        with gr.Tab("Convert") as convert:
            _convert_tab(handlers, [model, direction, pitch], examples)
        with gr.Tab("Batch") as batch:
            _batch_tab(handlers, [model, direction, pitch])
        with gr.Tab("Live") as live:
            live_tab(handlers, [model, direction, pitch])
        with gr.Tab("Train", visible=training is not None) as train:
            if training is not None:
                train_tab(TrainHandlers(training))
        with gr.Tab("Faces") as faces:
            faces_tab(face_models, limits, face_examples)
        with gr.Tab("Models") as about_models:
            _models_tab(models, face_models)
        for tab in (convert, batch, live, train, faces, about_models):
            tab.select(_visibility(tab not in (faces, train)), None, voice_choice, api_visibility="private")
        for tab in (convert, batch):  # models finished on the Train tab join the list
            tab.select(handlers.model_choices, model, model, api_visibility="private")
    return demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)


def _visibility(visible: bool) -> Callable[[], dict]:
    return lambda: gr.update(visible=visible)


def launch_app(demo: gr.Blocks, limits: Limits, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
               allowed_paths: Sequence[str | Path] = (), **launch_options) -> None:
    """Serve the page; Gradio refuses uploads over ``limits.max_upload_mb`` before they reach a handler. With
    ``auth``, a visitor without credentials reaches only the login form, and wrong logins are throttled
    (:mod:`voiceconv.web.gate`). Returns when the server stops (Ctrl-C or SIGTERM)."""
    if launch_options.get("auth"):
        from voiceconv.web.gate import gate_middleware

        launch_options["app_kwargs"] = {**launch_options.get("app_kwargs", {}), "middleware": gate_middleware()}
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=int(limits.max_upload_mb * MB),
                allowed_paths=[str(p) for p in allowed_paths], show_error=False, ssr_mode=False, **launch_options)


class Handlers:
    """The page's event handlers; they resolve the model key to one of the discovered models."""

    def __init__(self, models: dict[str, ModelInfo], limits: Limits, work_root: Path,
                 training: TrainingJobs | None = None):
        self.models, self.limits, self.work_root, self.training = models, limits, work_root, training
        self.converters = ConverterCache()
        self._adding = threading.Lock()

    def model(self, key: str) -> ModelInfo:
        """The discovered model (or finished training job's model) called ``key``; anything else is refused."""
        if key not in self.models:
            self._add_trained_models()
        if key not in self.models:
            raise UploadError(f"unknown model {key!r}; choose one of {', '.join(self.models)}")
        return self.models[key]

    def model_choices(self, key: str | None) -> dict:
        """The model list with the Train tab's finished models added; the selection kept."""
        self._add_trained_models()
        return gr.update(choices=[(info.label, k) for k, info in list(self.models.items())],
                         value=key if key in self.models else next(iter(self.models)))

    def _add_trained_models(self) -> None:
        if self.training is None:
            return
        with self._adding:
            for key, path in self.training.finished_models().items():
                if key not in self.models:
                    try:
                        self.models[key] = model_info(path, key)
                    except VoiceconvError as err:
                        log.warning("skipping the trained model %s: %s", key, err)

    @shown_as_message
    def directions(self, key: str) -> dict:
        """New direction choices (speaker names) after the model changed."""
        return gr.update(choices=self.model(key).direction_choices(), value="a2b")

    @shown_as_message
    def convert(self, audio: str | None, key: str, direction: str,
                pitch: str = "auto") -> tuple[str, np.ndarray, np.ndarray]:
        """(converted audio file, input spectrogram, converted spectrogram) for one upload or recording."""
        converter = self.converters.get(self.model(key).path)
        result = convert_clip(converter, audio, checked_direction(direction), self.limits, new_job_dir(self.work_root),
                              _checked_pitch(pitch))
        return str(result.audio), result.input_picture, result.output_picture

    @shown_as_message
    def convert_batch(self, files: list[str] | None, key: str, direction: str, pitch: str = "auto",
                      progress=gr.Progress()) -> tuple[str, list[list[str]], str]:
        """(zip of converted files with failures.csv, failure table rows, summary) for several uploads; the page
        shows a progress bar with the files done and the time remaining."""
        converter = self.converters.get(self.model(key).path)
        result = convert_batch(converter, files or [], checked_direction(direction), self.limits, new_job_dir(self.work_root),
                               _checked_pitch(pitch), on_file=_progress_reporter(progress))
        return str(result.archive), result.failure_rows, result.summary


def _progress_reporter(progress) -> Callable[[int, int], None]:
    """``on_file(done, total)`` -> the page's progress bar, with the time remaining at the pace so far."""
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        remaining = (time.monotonic() - started) / done * (total - done) if done else None
        left = f", about {remaining:.0f} s left" if remaining is not None and done < total else ""
        progress((done, total), desc=f"{done} of {total} files converted{left}", unit="files")

    return report


def _convert_tab(handlers: Handlers, voice: list[gr.Dropdown], examples: Sequence) -> None:
    """``voice``: the shared model, direction and pitch controls."""
    with gr.Row():
        with gr.Column():
            audio_in = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech to convert",
                                elem_id="input-audio")
            button = gr.Button("Convert", variant="primary", elem_id="convert-button")
        audio_out = gr.Audio(type="filepath", label="Converted speech", interactive=False, buttons=["download"],
                             elem_id="converted-audio")
    with gr.Row():
        input_picture = gr.Image(label="Input spectrogram", format="png", interactive=False,
                                 elem_id="input-spectrogram")
        output_picture = gr.Image(label="Converted spectrogram", format="png", interactive=False,
                                  elem_id="converted-spectrogram")
    if examples:
        gr.Examples([[str(p)] for p in examples], inputs=audio_in, label="Example clips", elem_id="example-clips")
    button.click(handlers.convert, [audio_in, *voice], [audio_out, input_picture, output_picture],
                 api_name="convert")


def _batch_tab(handlers: Handlers, voice: list[gr.Dropdown]) -> None:
    limits = handlers.limits
    gr.Markdown(f"Upload several audio files or a zip of them (at most {limits.max_batch_files} files, "
                f"{limits.max_zip_total_mb:g} MB unpacked). You get a zip of the converted files with "
                "`failures.csv` listing the files that could not be converted and why.")
    files = gr.File(file_count="multiple", label="Audio files or a .zip")
    button = gr.Button("Convert all", variant="primary")
    archive = gr.File(label="Converted files (zip)", interactive=False)
    summary = gr.Markdown()
    failures = gr.Dataframe(headers=FAILURE_HEADERS, label="Failures", interactive=False)
    button.click(handlers.convert_batch, [files, *voice], [archive, failures, summary],
                 api_name="convert_batch")


def _models_tab(models: dict[str, ModelInfo], face_models: dict[str, FaceModelInfo]) -> None:
    summaries = [(model_summary_markdown(info), info) for info in models.values()]
    summaries += [(face_model_summary_markdown(info), info) for info in face_models.values()]
    for summary, info in summaries:
        gr.Markdown(summary)
        documents = model_documents(info)
        if not documents:
            gr.Markdown("*No model card (`.md` file) beside this model.*")
        for title, text in documents.items():
            with gr.Accordion(title, open=title == "Model card"):
                gr.Markdown(text)


def _first_model(models: dict[str, ModelInfo], default_model: str | Path | None) -> ModelInfo:
    if default_model:
        return next(info for info in models.values() if info.path == Path(default_model))
    return models.get(DEFAULT_MODEL_KEY) or next(iter(models.values()))


_WORK_DIRS: list[tempfile.TemporaryDirectory] = []


def _temporary_work_dir() -> str:
    folder = tempfile.TemporaryDirectory(prefix="voiceconv-web-", ignore_cleanup_errors=True)
    _WORK_DIRS.append(folder)  # kept alive until the process exits, then deleted
    return folder.name


def _checked_pitch(pitch: str | float | None) -> str | float:
    try:
        parse_pitch(pitch)
    except VoiceconvError as err:
        raise UploadError(str(err)) from None
    return "auto" if pitch is None else pitch


def _introduction(limits: Limits) -> str:
    return ("# voiceconv\n"
            "Make one speaker sound like another: the speech becomes a mel-spectrogram image, a CycleGAN "
            "repaints it in the other voice, and Griffin-Lim turns it back into sound. "
            f"Clips up to {limits.max_seconds:g} s, uploads up to {limits.max_upload_mb:g} MB.")
