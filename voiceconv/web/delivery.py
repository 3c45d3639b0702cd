"""Handing a finished Train-tab job's model over: the delivered copy and its card (``<A>_<B>.md``)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from voiceconv.audio.io import audio_files
from voiceconv.errors import VoiceconvError
from voiceconv.files import atomic_output
from voiceconv.runfolder import RunFolder, read_history
from voiceconv.web.job import Job


def read_text(path: Path) -> str:
    """The text of ``path``, or "" when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def clock(seconds: float) -> str:
    """``seconds`` as m:ss, or h:mm:ss from an hour on."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass(frozen=True)
class Delivery:
    """Hands a finished job's model over: the chosen file copied to ``target`` with its card beside it."""

    job: Job
    folder: Path  # the job's folder
    target: Path  # run/<A>_<B>.safetensors

    def deliver(self) -> None:
        """Copy the model to deliver (``best.safetensors`` when held-back selection ran, else the last) to the
        target and write its card beside it."""
        run = RunFolder(self.folder / "run")
        chosen = run.best if run.best.is_file() else run.model
        with atomic_output(self.target) as tmp:
            shutil.copyfile(chosen, tmp)
        self.write_card()

    def write_card(self) -> None:
        """``<model>.md``: what was trained, on what, for how long, which step was chosen, the held-back scores
        and the audit."""
        job, folder = self.job, self.folder
        with atomic_output(self.target.with_suffix(".md")) as tmp:
            tmp.write_text("\n".join(_card_lines(job, folder, self.target)) + "\n", encoding="utf-8")


def _card_lines(job: Job, folder: Path, model: Path) -> list[str]:
    """The lines of the card of ``model``, trained by ``job`` in ``folder``."""
    from voiceconv.modelfiles.format import read_header

    run = RunFolder(folder / "run")
    try:
        training = read_header(model).get("training", {})
        trained = read_header(run.model).get("training", {})
    except VoiceconvError:
        training = trained = {}
    budget = [f"{job.steps} steps"] if job.steps else []
    budget += [f"{job.minutes:g} minutes"] if job.minutes else []
    lines = [f"# {job.name_a} <-> {job.name_b}", "",
             f"Trained on the Train tab of the voiceconv page with the `{job.recipe}` recipe.", "",
             f"- **trained:** {trained.get('steps', '?')} steps in {clock(float(trained.get('training_seconds', 0)))} "
             f"on {trained.get('hardware', 'unknown hardware')} (budget: {' and '.join(budget)})",
             f"- **this file:** step {training.get('steps', '?')}"
             + (", the best held-back score" if "selected" in training else ", the last step"),
             f"- **recordings:** {len(audio_files(folder / 'speakers' / job.name_a))} of {job.name_a}, "
             f"{len(audio_files(folder / 'speakers' / job.name_b))} of {job.name_b} (one of {job.name_a}'s held back "
             "for the snapshots)"]
    history = read_history(run.root)
    if history:
        columns = list(history[0])
        lines += ["", "## Held-back scores (model selection)", "", "| " + " | ".join(columns) + " |",
                  "|---" * len(columns) + "|"]
        lines += ["| " + " | ".join(_shown(entry.get(k, "")) for k in columns) + " |" for entry in history]
    audit = read_text(folder / "audit.md")
    if audit:  # under the card's own heading, its sections one level down
        body = audit.split("\n", 1)[1] if audit.startswith("# ") else audit
        lines += ["", "## Audit of the training recordings", "", body.strip().replace("\n## ", "\n### ")]
    lines += ["", "These figures come from the training run only; judge the model with `voiceconv evaluate` on "
              "recordings it has never seen."]
    return lines


def _shown(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
