"""The Train tab through its API, against a real ``python app.py``: upload, audit, train, stop, resume, convert,
and a restarted server that finds the job again. Also the job manager's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from conftest import SAMPLES, harmonic_tone
from helpers import running_app, wait_for
from voiceconv.audio.io import save_audio
from voiceconv.web.limits import Limits, UploadError
from voiceconv.web.training import TrainingJobs

TINY_RECIPE = """
features: {n_mels: 32}
model: {generator_channels: 8, residual_channels: 16, residual_blocks: 1, discriminator_channels: 8,
        discriminator_layers: 2}
data: {crop_frames: 16, min_seconds: 2.0, media_utterances: 1}
train: {steps: 400, batch_size: 2, log_every: 1, media_every: 1000, checkpoint_every: 100, export_every: 25,
        keep_checkpoints: 2, threads: 1}
"""


@pytest.fixture
def setup(tmp_path) -> Path:
    """Two synthetic speakers' recordings (4 x 1.5 s each) and a recipes folder with one tiny recipe."""
    for name, f0 in (("high", 240.0), ("low", 100.0)):
        for i in range(4):
            save_audio(tmp_path / "uploads" / name / f"{name}{i}.wav", harmonic_tone(1.5, f0=f0 + 7 * i, seed=i), 16000)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    (tmp_path / "recipes" / "faces.yaml").write_text("kind: face-vae\n")  # not a voice recipe: not offered
    return tmp_path


def uploads(setup: Path, name: str) -> list[str]:
    return sorted(str(p) for p in (setup / "uploads" / name).iterdir())


def test_train_stop_resume_convert_and_restart_through_the_page(setup):
    from gradio_client import Client, handle_file

    options = ("--runs-dir", str(setup / "runs"), "--recipes-dir", str(setup / "recipes"),
               "--models-dir", str(SAMPLES / "models"))
    (setup / "broken.wav").write_bytes(b"RIFF....WAVEfmt this recording broke off")
    files = {name: [handle_file(p) for p in uploads(setup, name)] for name in ("high", "low")}
    files["high"].append(handle_file(str(setup / "broken.wav")))  # a broken recording among A's
    with running_app(setup, *options) as url:
        client = Client(url, verbose=False, download_files=str(setup / "downloads"))
        audit = client.predict(files["high"], "high", files["low"], "", "tiny", api_name="/audit_training_data")
        assert "high/high0.wav" in audit and "B/low0.wav" in audit  # every file, named by speaker (B: no name yet)
        assert str(setup / "runs") not in audit  # never the server's folders
        assert f"| {2 / 60:g} |" in audit  # the minutes needed: the tiny recipe's data.min_seconds (2 s)
        flagged = audit.split("## Flagged files")[1]
        assert "high/broken.wav" in flagged  # the audit runs before any training
        job, summary, _ = client.predict(files["high"], "high", files["low"], "low", "tiny", 400, 0,
                                         api_name="/start_training")
        assert "**high <-> low** (tiny)" in summary

        def status():
            return client.predict(job, api_name="/training_status")

        wait_for(lambda: (s := status()[0]) and "**running**" in s and "step " in s and "step 0 of" not in s,
                 "the first steps")
        client.predict(job, api_name="/stop_training")
        stopped = wait_for(lambda: (s := status()) and "**stopped**" in s[0] and s, "the job to stop")
        step_at_stop = int(stopped[0].split("step ")[1].split(" of")[0])
        assert 0 < step_at_stop < 400
        assert (setup / "runs" / job / "run" / "checkpoints").is_dir()

        client.predict(job, api_name="/resume_training")
        finished = wait_for(lambda: (s := status()) and "**finished**" in s[0] and s, "the job to finish")
        summary, losses, validation, snapshot_audio, snapshot_picture, downloads, log_tail = finished
        assert "step 400 of 400" in summary
        assert "--resume" in log_tail or "interrupted" in (setup / "runs" / job / "train.log").read_text()
        assert snapshot_audio and sf.info(snapshot_audio).duration > 1.0  # the held-back clip, converted
        assert sorted(Path(f).name for f in downloads) == ["high_low.md", "high_low.safetensors"]
        key = f"high_low_{job}"
        converted = client.predict(handle_file(uploads(setup, "high")[1]), key, "a2b", "auto", api_name="/convert")[0]
        assert sf.info(converted).duration == pytest.approx(1.5, abs=0.05)

    with running_app(setup, *options) as url:  # a new server finds the finished job in its folder
        client = Client(url, verbose=False, download_files=str(setup / "downloads2"))
        summary = client.predict(job, api_name="/training_status")[0]
        assert "**finished**" in summary and "step 400 of 400" in summary


def test_refusals_are_messages_and_leave_nothing_behind(setup):
    jobs = TrainingJobs(setup / "runs", setup / "recipes", Limits(max_training_minutes=30), poll_seconds=0)
    assert list(jobs.recipes()) == ["tiny"]
    high, low = uploads(setup, "high"), uploads(setup, "low")
    refusals = [
        (dict(name_a="high", name_b="high"), "different names"),
        (dict(name_a="../evil"), "name must be"),
        (dict(recipe="faces"), "unknown recipe 'faces'"),
        (dict(steps=0, minutes=0), "give a budget"),
        (dict(minutes=31), "over this server's limit of 30 minutes"),
        (dict(steps=-5), "not negative"),
        (dict(steps="many"), "must be a number"),
        (dict(uploads_b=[]), "no files yet"),
    ]
    for change, message in refusals:
        request = dict(uploads_a=high, uploads_b=low, name_a="high", name_b="low", recipe="tiny", steps=10, minutes=0)
        with pytest.raises(UploadError, match=message):
            jobs.create(**{**request, **change})
    assert jobs.jobs() == [] and [p.name for p in (setup / "runs").iterdir()] == [".jobs.lock"]
    with pytest.raises(UploadError, match="no training job"):
        jobs.status("../../etc")
    assert sorted(Path(p).name for p in high) == ["high0.wav", "high1.wav", "high2.wav", "high3.wav"]  # untouched


def test_a_second_server_on_the_same_runs_folder_leaves_a_running_job_alone(setup):
    request = dict(uploads_a=uploads(setup, "high"), uploads_b=uploads(setup, "low"), name_a="high", name_b="low",
                   recipe="tiny", steps=100_000)
    first = TrainingJobs(setup / "runs", setup / "recipes", Limits(), poll_seconds=0)
    second = TrainingJobs(setup / "runs", setup / "recipes", Limits(), poll_seconds=0)
    job = first.create(**request)
    try:
        second.refresh()  # sees the job running (the first server's child): starts nothing
        first.refresh()
        assert [j.state for j in second.jobs()] == ["running"]
        assert "$ voiceconv train" in (setup / "runs" / job.id / "train.log").read_text()
        assert (setup / "runs" / job.id / "train.log").read_text().count("$ voiceconv train") == 1
    finally:
        first.stop(job.id)
        wait_for(lambda: first.refresh() or first.job(job.id).state == "stopped", "the job to stop")


def test_a_speaker_may_upload_more_files_than_a_batch_but_not_more_than_the_training_limit(setup):
    request = dict(uploads_a=uploads(setup, "high"), uploads_b=uploads(setup, "low"), name_a="high", name_b="low",
                   recipe="tiny", steps=10)
    jobs = TrainingJobs(setup / "runs", setup / "recipes", Limits(max_batch_files=2, max_training_files=3),
                        poll_seconds=0)
    with pytest.raises(UploadError, match="4 files uploaded; one speaker's upload is limited to 3"):
        jobs.create(**request)
    jobs = TrainingJobs(setup / "runs", setup / "recipes", Limits(max_batch_files=2), poll_seconds=0)
    assert "high/high0.wav" in jobs.audit_uploads(request["uploads_a"], request["uploads_b"], "high", "low")


def test_queue_limit_one_running_job_and_stopping_a_queued_job(setup):
    jobs = TrainingJobs(setup / "runs", setup / "recipes", Limits(max_training_jobs=2), poll_seconds=0)
    request = dict(uploads_a=uploads(setup, "high"), uploads_b=uploads(setup, "low"), name_a="high", name_b="low",
                   recipe="tiny", steps=100_000)
    first, second = jobs.create(**request), jobs.create(**request)
    try:
        assert [j.state for j in jobs.jobs()] == ["running", "queued"]  # one trains, the next waits
        with pytest.raises(UploadError, match="at most 2"):
            jobs.create(**request)
        assert jobs.stop(second.id).state == "stopped"  # a queued job just leaves the line
        assert (setup / "runs" / first.id / "preview.wav").is_file()  # A's held-back snapshot clip
        assert len(list((setup / "runs" / first.id / "speakers" / "high").iterdir())) == 3
        restarted = TrainingJobs(setup / "runs", setup / "recipes", Limits(max_training_jobs=2), poll_seconds=0)
        wait_for(lambda: restarted.status(first.id).step > 0, "the first steps, seen by a new server")
        assert restarted.status(first.id).job.state == "running"  # its process is found again by its id
        restarted.stop(first.id)  # and stopped from the new server
        wait_for(lambda: restarted.refresh() or restarted.job(first.id).state == "stopped", "the job to stop")
        assert list((setup / "runs" / first.id / "run" / "checkpoints").glob("step_*.pt"))  # SIGTERM saved one
    finally:
        if jobs.job(first.id).state == "running":
            jobs.stop(first.id)
            wait_for(lambda: jobs.refresh() or jobs.job(first.id).state == "stopped", "the running job to stop")
