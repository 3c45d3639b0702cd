"""The page's Train tab: two speakers' recordings in, a trained voice model out, with nothing typed in a terminal.

Endpoints (``gradio_client``): ``/audit_training_data``, ``/start_training``,
``/training_status``, ``/stop_training``, ``/resume_training``. The jobs
themselves are :class:`voiceconv.web.training.TrainingJobs`.
"""

from __future__ import annotations

import os
import threading
import gradio as gr
import numpy as np
import pandas as pd

from voiceconv.web.inputs import checked_number_input
from voiceconv.web.jobs import convert_clip
from voiceconv.web.limits import UploadError
from voiceconv.web.messages import shown_as_message
from voiceconv.web.training import MAX_STEPS, Job, JobStatus, TrainingJobs

REFRESH_SECONDS = 3.0
LOSS_COLUMNS = ["step", "loss", "value"]


class TrainHandlers:
    """What the Train tab's buttons and its timer do."""

    def __init__(self, jobs: TrainingJobs):
        self.jobs = jobs
        self._snapshot_lock = threading.Lock()
        self._rendering: set = set()  # preview folders being rendered now

    @shown_as_message
    def audit(self, files_a: list[str] | None, name_a: str, files_b: list[str] | None, name_b: str,
              recipe: str | None = None) -> str:
        """The audit of both speakers' uploads (Markdown) against the recipe's needs, before anything is trained."""
        return self.jobs.audit_uploads(files_a or [], files_b or [], name_a or "", name_b or "", recipe)

    @shown_as_message
    def start(self, files_a: list[str] | None, name_a: str, files_b: list[str] | None, name_b: str, recipe: str,
              steps: float | None, minutes: float | None) -> tuple[str, str, str]:
        """Queue a job: (its id, its status, its audit)."""
        job = self.jobs.create(files_a or [], files_b or [], name_a, name_b, recipe, steps or 0, minutes or 0)
        status = self.jobs.status(job.id)
        return job.id, status.summary(), status.audit

    @shown_as_message
    def status(self, job_id: str | None) -> tuple:
        """(summary, loss curves, validation rows, snapshot audio, snapshot picture, downloads, log tail)."""
        if not job_id:
            return ("*No job selected: start one above, or pick one from the list.*", _losses([]), [], None, None,
                    None, "")
        status = self.jobs.status(job_id)
        audio, picture = self._snapshot(status)
        downloads = [str(p) for p in (status.model, status.card) if p is not None] or None
        return (status.summary(), _losses(status.losses), _validation_rows(status.validation), audio, picture,
                downloads, status.log_tail)

    @shown_as_message
    def stop(self, job_id: str | None) -> str:
        return self.jobs.stop(_chosen(job_id)).message

    @shown_as_message
    def resume(self, job_id: str | None) -> str:
        return self.jobs.resume(_chosen(job_id)).message

    def job_list(self, job_id: str | None = None) -> dict:
        return self._job_choices(job_id)

    def _job_choices(self, job_id: str | None) -> dict:
        jobs = self.jobs.jobs()
        choices = [(_job_label(job), job.id) for job in reversed(jobs)]
        value = job_id if any(job.id == job_id for job in jobs) else (choices[0][1] if choices else None)
        return gr.update(choices=choices, value=value)

    def _snapshot(self, status: JobStatus) -> tuple[str | None, np.ndarray | None]:
        """The held-back clip converted by the newest exported model (made once per export)."""
        preview = self.jobs.folder(status.job.id) / "preview.wav"
        if status.snapshot is None or not preview.is_file():
            return None, None
        out_dir = self.jobs.folder(status.job.id) / "previews" / status.snapshot.stem
        picture_file = out_dir / "pictures.npz"
        with self._snapshot_lock:  # held only to claim the render: the status timer never waits on a conversion
            render = not picture_file.is_file() and out_dir not in self._rendering
            if render:
                self._rendering.add(out_dir)
        if render:
            try:
                self._render(status.snapshot, preview, out_dir, picture_file)
            finally:
                with self._snapshot_lock:
                    self._rendering.discard(out_dir)
        if not picture_file.is_file():
            return None, None  # another request is rendering it: shown on a later tick
        audio = next(out_dir.glob("*.wav"), None)
        return (str(audio) if audio else None), np.load(picture_file)["output"]

    def _render(self, snapshot, preview, out_dir, picture_file) -> None:
        """Convert the held-back clip with ``snapshot`` into ``out_dir``; the pictures file, written last and
        atomically, marks it done."""
        from voiceconv.convert import Converter

        out_dir.mkdir(parents=True, exist_ok=True)
        result = convert_clip(Converter(snapshot), preview, "a2b", self.jobs.limits, out_dir)
        partial = picture_file.with_name("pictures.partial.npz")
        np.savez(partial, output=result.output_picture)
        os.replace(partial, picture_file)


def train_tab(handlers: TrainHandlers) -> None:
    """The Train tab's contents."""
    jobs, limits = handlers.jobs, handlers.jobs.limits
    recipes = list(jobs.recipes())
    gr.Markdown(
        "Train a new speaker pair: upload each speaker's recordings (audio files or a zip), name them, pick a recipe "
        "and a budget. **Check recordings** audits both folders first (length, loudness, clipping, noise, and files "
        "that don't belong). One job trains at a time; others wait in line. When a job finishes its model appears "
        f"in the Convert tab's list. Limits: {limits.max_training_audio_minutes:g} minutes of audio per job, "
        f"{limits.max_training_minutes:g} minutes of training (a budget in steps stops there too), {MAX_STEPS:,} steps, "
        f"{limits.max_training_jobs} jobs queued or running.")
    with gr.Row():
        with gr.Column():
            files_a = gr.File(file_count="multiple", label="Speaker A recordings (audio files or a .zip)",
                              elem_id="train-files-a")
            name_a = gr.Textbox(label="Speaker A name", placeholder="e.g. alice", elem_id="train-name-a")
        with gr.Column():
            files_b = gr.File(file_count="multiple", label="Speaker B recordings (audio files or a .zip)",
                              elem_id="train-files-b")
            name_b = gr.Textbox(label="Speaker B name", placeholder="e.g. bob", elem_id="train-name-b")
    with gr.Row():
        recipe = gr.Dropdown(recipes, value=recipes[0] if recipes else None, label="Recipe", elem_id="train-recipe")
        steps = checked_number_input(gr.Number(value=0, precision=0, minimum=0, maximum=MAX_STEPS,
                                               label="Budget: steps (0 = the recipe's)", elem_id="train-steps"))
        minutes = checked_number_input(gr.Number(
            value=10, minimum=0, maximum=limits.max_training_minutes,
            label=f"Budget: minutes (0 = the limit, {limits.max_training_minutes:g})", elem_id="train-minutes"))
    with gr.Row():
        audit_button = gr.Button("Check recordings", elem_id="train-audit-button")
        start_button = gr.Button("Start training", variant="primary", elem_id="train-start")
    audit = gr.Markdown(elem_id="train-audit")
    gr.Markdown("### Jobs")
    with gr.Row():
        job = gr.Dropdown(label="Job", elem_id="train-job", allow_custom_value=True)
        stop_button = gr.Button("Stop", elem_id="train-stop")
        resume_button = gr.Button("Resume", elem_id="train-resume")
    summary = gr.Markdown(elem_id="train-status")
    message = gr.Markdown(elem_id="train-message")
    losses = gr.LinePlot(_losses([]), x="step", y="value", color="loss", label="Losses", elem_id="train-losses")
    validation = gr.Dataframe(headers=["step", "score", "hours"], label="Held-back validation scores",
                              interactive=False, elem_id="train-validation")
    with gr.Row():
        snapshot_audio = gr.Audio(type="filepath", label="Newest snapshot: a held-back clip of speaker A converted",
                                  interactive=False, elem_id="train-snapshot-audio")
        snapshot_picture = gr.Image(label="Its spectrogram", format="png", interactive=False,
                                    elem_id="train-snapshot-spectrogram")
    downloads = gr.File(label="Trained model and its card", file_count="multiple", interactive=False,
                        elem_id="train-download")
    log_tail = gr.Textbox(label="Training log (last lines)", lines=6, interactive=False, elem_id="train-log")

    shown = [summary, losses, validation, snapshot_audio, snapshot_picture, downloads, log_tail]
    audit_button.click(handlers.audit, [files_a, name_a, files_b, name_b, recipe], audit,
                       api_name="audit_training_data")
    started = gr.Textbox(visible=False, elem_id="train-started-job")  # the new job's id, for the list
    start_button.click(handlers.start, [files_a, name_a, files_b, name_b, recipe, steps, minutes],
                       [started, summary, audit], api_name="start_training"
                       ).then(handlers.job_list, started, job, api_visibility="private")
    job.change(handlers.status, job, shown, api_visibility="private")
    gr.Button("Refresh", size="sm", elem_id="train-refresh").click(handlers.status, job, shown,
                                                                  api_name="training_status")
    stop_button.click(handlers.stop, job, message, api_name="stop_training")
    resume_button.click(handlers.resume, job, message, api_name="resume_training")
    gr.Timer(REFRESH_SECONDS).tick(handlers.status, job, shown, api_visibility="private", show_progress="hidden")
    job.focus(handlers.job_list, job, job, api_visibility="private")


def _chosen(job_id: str | None) -> str:
    if not job_id:
        raise UploadError("no job selected")
    return job_id


def _job_label(job: Job) -> str:
    return f"{job.name_a} <-> {job.name_b} ({job.recipe}) {job.id}"


def _losses(progress: list[dict]) -> pd.DataFrame:
    """Long-format loss curves for the plot: one row per (step, loss name)."""
    rows = [(entry["step"], name, value) for entry in progress for name, value in entry.get("losses", {}).items()]
    return pd.DataFrame(rows, columns=["step", "loss", "value"])


def _validation_rows(history: list[dict]) -> list[list]:
    return [[entry.get("step"), round(entry.get("score", float("nan")), 4), entry.get("hours")] for entry in history]
