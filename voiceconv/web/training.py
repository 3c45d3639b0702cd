"""Training jobs for the page's Train tab, without gradio: one job trains at a time, the others wait in line.

A job is a folder under the runs folder, and everything about it lives there,
so a page reload or a server restart finds every job again::

    <runs>/<job id>/job.json        names, recipe, budget, state, the training process's id
                    speakers/<A>, <B> the uploaded recordings, one folder per speaker name (zips unpacked
                                     as on the Batch tab)
                    preview.wav      one recording of speaker A held back from training: the snapshot clip
                    audit.md         the audit of both speakers' recordings, made before training
                    train.log        what ``voiceconv train`` printed
                    run/             ``voiceconv train --out``: checkpoints, progress.jsonl, validation.jsonl,
                                     exports/, model.safetensors, best.safetensors (selection), and once
                                     finished <A>_<B>.safetensors (the delivered model: the selected one when
                                     the recipe selects, else the last) with its card <A>_<B>.md

Training runs as its own process (``python -m voiceconv train``), in a session
of its own, so it outlives the server; Stop sends it SIGTERM, on which the
loop saves a checkpoint, and Resume starts it again with ``--resume``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


from voiceconv.config import read_recipe
from voiceconv.errors import ConfigError, VoiceconvError
from voiceconv.families import VOICE_KIND, recipe_kind
from voiceconv.files import atomic_output
from voiceconv.runfolder import RunFolder, read_history, read_progress
from voiceconv.web.delivery import Delivery, clock, read_text
from voiceconv.web.job import Job
from voiceconv.web.jobs import gather_uploads
from voiceconv.web.limits import Limits, UploadError
from voiceconv.web.processes import ExclusiveLock, is_training_process, pid_alive, signal_group, signal_name
from voiceconv.web.run_report import (checkpoint_note, last_error, log_tail, newest_snapshot, remaining_seconds,
                                      shown_paths, stopped_message)
from voiceconv.web.uploads import budget_number, checked_name, hold_back_preview, minutes_of_audio

log = logging.getLogger(__name__)

STATES = ("receiving", "queued", "running", "stopping", "stopped", "finished", "failed")
ACTIVE = ("receiving", "queued", "running", "stopping")  # these hold one of the --max-training-jobs slots
JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
MAX_STEPS = 1_000_000  # the largest step budget (the voice recipes train 4,000); every job also has a time bound


@dataclass(frozen=True)
class JobStatus:
    """A job as the Train tab shows it."""

    job: Job
    step: int
    total_steps: int
    elapsed_seconds: float  # training time so far (across resumes)
    remaining_seconds: float | None  # estimated from the recent pace; None before there is one
    losses: list[dict] = field(default_factory=list)  # progress.jsonl entries: step, seconds, losses
    validation: list[dict] = field(default_factory=list)  # validation.jsonl entries: step, score, ...
    snapshot: Path | None = None  # the newest exported model (the final one once finished)
    model: Path | None = None  # the delivered model once finished
    card: Path | None = None
    audit: str = ""
    log_tail: str = ""

    def summary(self) -> str:
        """One Markdown paragraph: state, steps, elapsed and remaining time."""
        job = self.job
        steps = f"step {self.step} of {self.total_steps}"
        if job.state == "finished" and self.step < self.total_steps:
            steps = f"step {self.step} (the time budget ended it)"
        parts = [f"**{job.name_a} <-> {job.name_b}** ({job.recipe}): **{job.state}**", steps,
                 f"{clock(self.elapsed_seconds)} trained"]
        if job.state == "running" and not self.losses:
            parts[1:] = ["preparing: reading the recordings, fitting the pitch alignment, scoring the untrained model"]
        if job.state == "receiving":
            parts[1:] = ["unpacking and auditing the uploads"]
        if job.minutes:
            parts.append(f"budget {job.minutes:g} min")
        if self.remaining_seconds is not None and job.state in ACTIVE:
            parts.append(f"about {clock(self.remaining_seconds)} to go")
        text = ", ".join(parts) + "."
        if job.message:
            text += f"\n\n{job.message}"
        return text


class TrainingJobs:
    """The jobs under ``runs_dir``: create, start in turn, stop, resume and report them.

    ``recipes_dir`` holds the voice recipes offered (``*.yaml`` without a non-voice ``kind``).
    Thread-safe; :meth:`refresh` (called by every request and by a background thread) reaps finished
    processes and starts the next queued job.
    """

    def __init__(self, runs_dir: Path, recipes_dir: Path, limits: Limits, command: list[str] | None = None,
                 poll_seconds: float = 2.0):
        self.runs_dir, self.recipes_dir, self.limits = Path(runs_dir), Path(recipes_dir), limits
        self.command = command or [sys.executable, "-m", "voiceconv"]
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VoiceconvError(f"{runs_dir}: cannot make the training jobs' folder ({err.strerror})") from None
        self._lock = ExclusiveLock(self.runs_dir / ".jobs.lock")  # threads of this server and other servers
        self._children: dict[str, subprocess.Popen] = {}  # processes this server started
        self._stop = threading.Event()
        if poll_seconds:
            threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True, name="training-jobs").start()

    # --- what can be trained -----------------------------------------------------------------------
    def recipes(self) -> dict[str, Path]:
        """name -> path of the voice recipes in ``recipes_dir``."""
        found = {}
        for path in sorted(self.recipes_dir.glob("*.yaml")):
            try:
                if recipe_kind(path) == VOICE_KIND:
                    found[path.stem] = path
            except ConfigError as err:
                log.warning("skipping recipe %s: %s", path.name, err)
        return found

    # --- creating -----------------------------------------------------------------------------------
    def create(self, uploads_a: list[str], uploads_b: list[str], name_a: str, name_b: str, recipe: str,
               steps: int = 0, minutes: float = 0.0) -> Job:
        """Check the request, unpack the uploads into a new job folder, audit them and queue the job."""
        name_a, name_b = checked_name(name_a, "speaker A"), checked_name(name_b, "speaker B")
        if name_a == name_b:
            raise UploadError("the two speakers need different names")
        offered = self.recipes()
        if recipe not in offered:
            raise UploadError(f"unknown recipe {recipe!r}; choose one of {', '.join(offered) or 'none'}")
        steps, minutes = self._checked_budget(steps, minutes)
        job = self._reserve(Job(_new_job_id(), name_a, name_b, recipe, steps, minutes, created=time.time()))
        folder = self.folder(job.id)
        try:
            self._unpack(folder, {name_a: uploads_a, name_b: uploads_b})
            (folder / "audit.md").write_text(self._audit(folder, [name_a, name_b], recipe), encoding="utf-8")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # a refused job leaves nothing behind, and frees its slot
            raise
        with self._lock:
            job.state, job.pid = "queued", None
            self._save(job)
        self.refresh()
        return self.job(job.id)

    def _reserve(self, job: Job) -> Job:
        """Take one of the ``max_training_jobs`` slots for ``job`` at once, under the lock: its folder and a
        ``receiving`` job.json (with this server's process id) exist before the lock is let go, so requests
        arriving together count each other while their uploads are unpacked and audited."""
        with self._lock:
            self._drop_abandoned_receptions()
            waiting = [j for j in self.jobs() if j.state in ACTIVE]
            if len(waiting) >= self.limits.max_training_jobs:
                raise UploadError(f"{len(waiting)} training jobs are already queued or running; the server takes "
                                  f"at most {self.limits.max_training_jobs} (stop one, or wait)")
            self.folder(job.id).mkdir(parents=True)
            job.state, job.pid = "receiving", os.getpid()
            self._save(job)
        return job

    def _drop_abandoned_receptions(self) -> None:
        """Remove ``receiving`` jobs whose server died while unpacking them (their slot would stay taken)."""
        for job in self.jobs():
            if job.state == "receiving" and job.pid != os.getpid() and not pid_alive(job.pid):
                shutil.rmtree(self.folder(job.id), ignore_errors=True)

    def audit_uploads(self, uploads_a: list[str], uploads_b: list[str], name_a: str = "", name_b: str = "",
                      recipe: str | None = None) -> str:
        """The audit of two speakers' uploads (Markdown), unpacked into a scratch folder that is removed after;
        speakers without a name yet are called A and B; the minutes needed are ``recipe``'s."""
        names = [checked_name(name_a, "speaker A") if name_a else "A", checked_name(name_b, "speaker B") if name_b
                 else "B"]
        if names[0] == names[1]:
            raise UploadError("the two speakers need different names")
        scratch = Path(tempfile.mkdtemp(prefix=".audit-", dir=self.runs_dir))
        try:
            self._unpack(scratch, dict(zip(names, (uploads_a, uploads_b))), hold_back=False)
            return self._audit(scratch, names, recipe)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _checked_budget(self, steps: int | float | None, minutes: float | None) -> tuple[int, float]:
        """The one budget rule: (whole steps from 0 to MAX_STEPS, minutes from 0 to --max-training-minutes), not
        both 0; a budget in steps alone is bounded in time too, by the server's limit (the minutes returned)."""
        steps, minutes = budget_number(steps, "steps"), budget_number(minutes, "minutes")
        if steps < 0 or minutes < 0 or steps != int(steps):
            raise UploadError("the budget is a whole number of steps and/or a number of minutes, not negative")
        if not steps and not minutes:
            raise UploadError("give a budget: a number of steps, of minutes, or both")
        if steps > MAX_STEPS:
            raise UploadError(f"{steps:.0f} steps is over the limit of {MAX_STEPS:,} steps per job")
        if minutes > self.limits.max_training_minutes:
            raise UploadError(f"{minutes:g} minutes is over this server's limit of "
                              f"{self.limits.max_training_minutes:g} minutes per job")
        return int(steps), float(minutes or self.limits.max_training_minutes)

    def _unpack(self, folder: Path, uploads: dict[str, list[str]], hold_back: bool = True) -> None:
        """Uploads -> ``speakers/<name>`` (A's, then B's); one recording of A moves to ``preview.wav``."""
        total = 0.0
        for name, files in uploads.items():
            speaker = folder / "speakers" / name
            gather_uploads(files or [], speaker, self.limits.for_training())
            total += minutes_of_audio(speaker, name)
            if total > self.limits.max_training_audio_minutes:
                raise UploadError(f"the uploads hold {total:.1f} minutes of audio; a job is limited to "
                                  f"{self.limits.max_training_audio_minutes:g} minutes")
        if hold_back:
            hold_back_preview(folder / "speakers" / next(iter(uploads)), folder / "preview.wav")

    def _audit(self, folder: Path, names: list[str], recipe: str | None = None) -> str:
        """The audit report of both speaker folders (Markdown), against the minutes ``recipe`` needs."""
        try:
            from voiceconv.audit import audit_folders
        except ImportError:  # the audit needs nothing beyond the app extra; this guards a broken install only
            return "*No audit: voiceconv.audit is not available.*"
        speakers = [folder / "speakers" / name for name in names]
        text = audit_folders(speakers, **self._needed_minutes(recipe)).markdown()
        for name, speaker in zip(names, speakers):  # the server's folders are nobody's business: name the uploads
            text = text.replace(f"{speaker}/", f"{name}/").replace(str(speaker), f"uploads of {name}")
        return text

    # --- the jobs -----------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise UploadError(f"no training job {str(job_id)[:40]!r}")
        return self.runs_dir / job_id

    def jobs(self) -> list[Job]:
        """Every job under the runs folder, oldest first; unreadable job files are skipped (and logged)."""
        found = []
        for path in sorted(self.runs_dir.glob("*/job.json")):
            try:
                found.append(Job(**json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError) as err:
                log.warning("skipping training job %s: %s", path.parent.name, err)
        return sorted(found, key=lambda job: (job.created, job.id))  # ids of one second sort at random

    def job(self, job_id: str) -> Job:
        path = self.folder(job_id) / "job.json"
        try:
            return Job(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise UploadError(f"no training job {job_id!r}") from None
        except (OSError, ValueError, TypeError) as err:
            raise UploadError(f"training job {job_id}: unreadable job.json ({err})") from None

    def finished_models(self) -> dict[str, Path]:
        """key -> model file of every finished job (for the Convert tab's list)."""
        return {job.key: self.delivered(job) for job in self.jobs() if job.state == "finished"}

    def delivered(self, job: Job) -> Path:
        """The finished job's model file, ``run/<A>_<B>.safetensors`` (its card beside it, ``.md``)."""
        return self.folder(job.id) / "run" / f"{job.name_a}_{job.name_b}.safetensors"

    # --- stop and resume ----------------------------------------------------------------------------
    def stop(self, job_id: str) -> Job:
        """A queued job leaves the queue; a running one gets SIGTERM and saves a checkpoint as it stops."""
        with self._lock:
            self.refresh()
            job = self.job(job_id)
            if job.state == "queued":
                job.state, job.message = "stopped", "Stopped before it started."
            elif job.state == "running":
                signal_group(job.pid, signal.SIGTERM)
                job.state, job.message = "stopping", "Saving a checkpoint..."
            else:
                raise UploadError(f"job {job_id} is {job.state}; only queued or running jobs can be stopped")
            self._save(job)
            return job

    def resume(self, job_id: str) -> Job:
        """A stopped or failed job goes back in the queue and continues from its newest checkpoint."""
        with self._lock:
            job = self.job(job_id)
            if job.state not in ("stopped", "failed"):
                raise UploadError(f"job {job_id} is {job.state}; only stopped or failed jobs can be resumed")
            waiting = [j for j in self.jobs() if j.state in ACTIVE]
            if len(waiting) >= self.limits.max_training_jobs:
                raise UploadError(f"{len(waiting)} training jobs are already queued or running; wait for one")
            job.state, job.resume, job.message = "queued", True, "Waiting to continue from its newest checkpoint."
            self._save(job)
        self.refresh()
        return self.job(job_id)

    # --- the scheduler ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Notice jobs whose process ended, and start the oldest queued job when none is running."""
        with self._lock:
            jobs = self.jobs()
            for job in jobs:
                if job.state in ("running", "stopping") and not self._alive(job):
                    self._ended(job)
            if not any(j.state in ("running", "stopping") for j in self.jobs()):
                queued = [j for j in self.jobs() if j.state == "queued"]
                if queued:
                    self._start(queued[0])

    def close(self) -> None:
        """Stop the background thread (running jobs go on; a new server finds them)."""
        self._stop.set()

    def _poll(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the scheduler thread must outlive any one bad job folder
                log.exception("training job scheduler")

    def _start(self, job: Job) -> None:
        folder = self.folder(job.id)
        recipe = self.recipes().get(job.recipe)
        if recipe is None:
            job.state, job.message = "failed", f"The recipe {job.recipe} is no longer in the recipes folder."
            self._save(job)
            return
        command = [*self.command, "train", str(recipe), "--speaker-a", str(folder / "speakers" / job.name_a),
                   "--speaker-b", str(folder / "speakers" / job.name_b), "--name-a", job.name_a, "--name-b", job.name_b,
                   "--out", str(folder / "run"), "--no-audit"]  # audited when the job was made (audit.md)
        if job.steps:
            command += ["--steps", str(job.steps)]
        command += ["--set", f"train.max_minutes={job.minutes or self.limits.max_training_minutes}"]  # always bounded
        if job.resume:
            command.append("--resume")
        RunFolder(folder / "run").clear_outcome()  # what this process writes decides how it ended
        with open(folder / "train.log", "ab") as out:
            out.write(f"\n$ voiceconv {' '.join(command[len(self.command):])}\n".encode())
            out.flush()
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=folder, start_new_session=True)
        self._children[job.id] = process
        job.state, job.pid, job.started, job.message = "running", process.pid, time.time(), ""
        self._save(job)

    def _alive(self, job: Job) -> bool:
        process = self._children.get(job.id)
        if process is not None:
            return process.poll() is None
        return is_training_process(job.pid, self.folder(job.id))  # started by an earlier server

    def _ended(self, job: Job) -> None:
        """Decide from the run folder how the process ended; what the message claims is what is on disk."""
        process = self._children.pop(job.id, None)
        code = process.returncode if process is not None else None
        run = RunFolder(self.folder(job.id) / "run")
        outcome = run.read_outcome() or {}  # none when the process was killed too hard to write one (SIGKILL)
        exported = outcome.get("state") == "finished" and run.model.is_file()
        if exported and (code == 0 or (code is None and job.state == "running")):
            job.state, job.message = "finished", "Finished: the model is in the Convert tab's list."
            Delivery(job, self.folder(job.id), self.delivered(job)).deliver()
        elif job.state == "stopping" or code == 130 or outcome.get("state") == "stopped":
            job.state, job.message = "stopped", stopped_message(run.root)
        else:
            job.state, job.message = "failed", self._failure_message(job, code)
        job.pid = None
        self._save(job)

    def _failure_message(self, job: Job, code: int | None) -> str:
        """Why the training process ended without finishing: killed by a signal, an error line of its log (paths
        shown relative to the job's folder), or its exit status."""
        folder = self.folder(job.id)
        resume = " " + checkpoint_note(folder / "run") if code is None or code < 0 else ""
        if code is not None and code < 0:
            return f"Training was killed from outside (signal {signal_name(-code)}).{resume}"
        error = last_error(folder / "train.log")
        if error:
            return f"Training stopped with an error: {shown_paths(error, folder)}"
        if code is None:
            return f"The training process is gone without finishing (killed, or the computer restarted?).{resume}"
        return f"Training ended with exit status {code} before finishing; see its log below."

    def _save(self, job: Job) -> None:
        with atomic_output(self.folder(job.id) / "job.json") as tmp:
            tmp.write_text(json.dumps(asdict(job), indent=1), encoding="utf-8")

    # --- reporting ----------------------------------------------------------------------------------
    def status(self, job_id: str) -> JobStatus:
        """The job's state, progress, curves, scores and files."""
        self.refresh()
        job, folder = self.job(job_id), self.folder(job_id)
        run = folder / "run"
        progress = read_progress(run)
        step = progress[-1]["step"] if progress else 0
        elapsed = progress[-1]["seconds"] if progress else 0.0
        total = job.steps or self._recipe_steps(job)
        model = self.delivered(job)
        finished = job.state == "finished" and model.is_file()
        return JobStatus(job, step, total, elapsed, remaining_seconds(progress, total, job.minutes), progress,
                         read_history(run) if run.is_dir() else [], model if finished else newest_snapshot(run),
                         model if finished else None, model.with_suffix(".md") if finished else None,
                         read_text(folder / "audit.md"), shown_paths(log_tail(folder / "train.log"), folder))

    def _needed_minutes(self, recipe: str | None) -> dict:
        """``{"needed_minutes": ...}`` from the recipe's ``data.min_seconds``, as ``voiceconv audit --recipe``
        does; {} (the audit's default) when the recipe leaves it out or is unknown."""
        seconds = _recipe_setting(self.recipes().get(recipe) if recipe else None, "data", "min_seconds")
        return {} if seconds is None else {"needed_minutes": seconds / 60}

    def _recipe_steps(self, job: Job) -> int:
        """The run's step count: from its saved recipe (every field written out) or, before it starts, the
        recipe file's ``train.steps`` (0 when it leaves it to the default)."""
        saved = RunFolder(self.folder(job.id) / "run").recipe
        steps = _recipe_setting(saved if saved.is_file() else self.recipes().get(job.recipe), "train", "steps")
        return int(steps or 0)


# --- helpers --------------------------------------------------------------------------------------
def _recipe_setting(path: Path | None, section: str, key: str) -> float | None:
    """A number from a recipe YAML's ``section.key``, read as plain YAML (no training code); None when the file,
    the section or the key is missing or not a number."""
    try:
        values = read_recipe(path) if path else {}
        return float(values[section][key])
    except (ConfigError, KeyError, TypeError, ValueError):
        return None


def _new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
