"""Hostile inputs, round two (issue 20): the Train tab, the Live tab, the audit and the login, against one real
``python app.py --auth-file`` on loopback (raw HTTP where the browser's own requests are the point, gradio_client
elsewhere), and the job manager with a stand-in trainer where only the scheduling is at stake.

Every attack builds its inputs in tmp_path; each test checks the one-line message or status code, the bound
(memory, slots, time budget) where that is the point, and that nothing outside the runs folder changed.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from safetensors import safe_open
from safetensors.torch import save_file

from test_app_train import TINY_RECIPE as TRAIN_TAB_RECIPE
from conftest import REPO, SAMPLES, harmonic_tone
from helpers import SHORT_CLIP, serving, wait_for
from voiceconv.audio.io import save_audio
from voiceconv.web.gate import LoginThrottle
from voiceconv.web.limits import Limits, UploadError
from voiceconv.web.training import MAX_STEPS, TrainingJobs

httpx = pytest.importorskip("httpx")
USER, PASSWORD = "tester", "pass:word"
VOICE_MODEL = SAMPLES / "models" / "kathleen_rms.safetensors"
XSS_NAME = "<img src=x onerror=alert(1)>"
TINY_RECIPE = TRAIN_TAB_RECIPE.replace("export_every: 25", "export_every: 1000")  # the Train tab test's, fewer exports


# --- one server --------------------------------------------------------------------------------------------------


def xss_model(folder: Path) -> Path:
    """The default model with speaker A renamed ``<img src=x onerror=alert(1)>`` (a valid name: no slash)."""
    with safe_open(str(VOICE_MODEL), "pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
        header = json.loads(f.metadata()["voiceconv"])
    header["speakers"]["a"]["name"] = XSS_NAME
    save_file(tensors, str(folder / "xss.safetensors"), metadata={"voiceconv": json.dumps(header)})
    return folder / "xss.safetensors"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """app.py with a password, a tiny voice recipe, 5 minutes of training at most and 2 jobs at once."""
    folder = tmp_path_factory.mktemp("hostile-page")
    (folder / "models").mkdir()
    (folder / "models" / VOICE_MODEL.name).symlink_to(VOICE_MODEL)
    xss_model(folder / "models")
    (folder / "recipes").mkdir()
    (folder / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    (folder / "users").write_text(f"{USER}:{PASSWORD}\n")
    with serving(folder, "--models-dir", str(folder / "models"), "--auth-file", str(folder / "users"),
                 "--runs-dir", str(folder / "runs"), "--recipes-dir", str(folder / "recipes"),
                 "--max-training-minutes", "5", "--max-training-jobs", "2", "--max-seconds", "5") as (url, process):
        yield url, process, folder


@pytest.fixture
def client(page, tmp_path):
    from gradio_client import Client

    return Client(page[0], auth=(USER, PASSWORD), verbose=False, download_files=str(tmp_path))


@contextmanager
def signed_in(url: str, address: str = "127.0.0.1") -> Iterator[httpx.Client]:
    """An HTTP session from ``address`` (any 127.x.y.z reaches the loopback server) that has logged in."""
    with httpx.Client(base_url=url, timeout=120, transport=httpx.HTTPTransport(local_address=address)) as session:
        assert session.post("login", data={"username": USER, "password": PASSWORD}).status_code == 200
        yield session


def call(session: httpx.Client, api: str, data: list) -> tuple[str, object]:
    """One event through gradio's HTTP API, as the page's own script sends it: ("complete" or "error", its data)."""
    event = session.post(f"gradio_api/call/{api}", content=json.dumps({"data": data}),  # NaN and inf as JavaScript's
                         headers={"content-type": "application/json"})
    assert event.status_code == 200, event.text
    stream = session.get(f"gradio_api/call/{api}/{event.json()['event_id']}").text
    kind, payload = re.findall(r"event: (\w+)\ndata: (.*)", stream)[-1]
    data = json.loads(payload)
    return kind, (data or {}).get("error") if kind == "error" else data  # an error: its message (None: blank)


def upload(session: httpx.Client, path: Path) -> dict:
    with open(path, "rb") as f:
        stored = session.post("gradio_api/upload", files={"files": (path.name, f)}).json()[0]
    return {"path": stored, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def peak_rss_mb(process: subprocess.Popen) -> float:
    """The process's peak resident memory so far (MB), as the kernel counts it."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def outside_runs(folder: Path) -> dict[str, tuple]:
    """Every entry of the server's folder but its runs folder, gradio's upload cache, its log and the temp folders
    it owns: what a request must leave as it was."""
    kept = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if relative.parts[0] in ("runs", "gradio", "app.log") or relative.parts[0].startswith(("voiceconv-web-", "tmp")):
            continue
        info = path.lstat()
        kept[str(relative)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return kept


def silent_flac(path: Path, minutes: float, rate: int = 44100) -> Path:
    """A FLAC of ``minutes`` of silence: a few hundred KB that decode to gigabytes."""
    zeros, left = np.zeros(60 * rate, np.int16), int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16", format="FLAC") as out:
        while left:
            out.write(zeros[:min(left, len(zeros))])
            left -= min(left, len(zeros))
    return path


def speaker_uploads(folder: Path) -> dict[str, list[Path]]:
    """Two synthetic speakers' recordings (4 x 1.5 s each)."""
    found = {}
    for name, f0 in (("high", 240.0), ("low", 100.0)):
        found[name] = [save_audio(folder / name / f"{name}{i}.wav", harmonic_tone(1.5, f0=f0 + 7 * i, seed=i), 16000)
                       for i in range(4)]
    return found


# --- 3. the audit: an hour of silence, and the minutes counted before decoding ----------------------------------------


def test_the_page_audits_an_hour_of_silence_in_bounded_memory(page, client, tmp_path):
    """A 55-minute silent FLAC took the server from 0.84 to 3.75 GB; it is now read block by block."""
    from gradio_client import handle_file

    url, process, folder = page
    before = outside_runs(folder)
    silence = silent_flac(tmp_path / "silence.flac", 55)
    clip = handle_file(str(SHORT_CLIP))
    client.predict([clip], "a", [clip], "b", "tiny", api_name="/audit_training_data")  # the speaker encoder loads
    peak = peak_rss_mb(process)
    audit = client.predict([handle_file(str(silence))], "a", [clip], "b", "tiny", api_name="/audit_training_data")
    assert "| a/silence.flac | unreadable: is silent (peak below -60 dBFS) |" in audit, audit
    grown = peak_rss_mb(process) - peak
    print(f"server peak RSS {peak:.0f} MB before the audit, +{grown:.0f} MB after it")
    assert grown < 250, grown
    two_hours = silent_flac(tmp_path / "long.flac", 120)  # refused from its header, before any decoding
    message = refusal(client, [handle_file(str(two_hours))], "a", [clip], "b", "tiny", api_name="/audit_training_data")
    assert message == "the uploads hold 120.0 minutes of audio; a job is limited to 60 minutes", message
    assert outside_runs(folder) == before and not list((folder / "runs").glob(".audit-*"))


def refusal(client, *args, api_name: str) -> str:
    """The one-line message of a refused request (no traceback, no server folder)."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api_name)
    message = str(err.value)
    assert "Traceback" not in message and "\n" not in message and str(REPO) not in message, message
    return message


# --- 1. budgets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("steps,minutes,expected", [
    (10**12, 0, "greater than maximum value 1000000"),
    ("abc", 0, "Budget: steps (0 = the recipe's) must be a number, got 'abc'"),
    (math.nan, 0, "Budget: steps (0 = the recipe's) must be a number, got nan"),
    (math.inf, 0, "Budget: steps (0 = the recipe's) must be a number, got inf"),
    (100, 6, "greater than maximum value 5"),
])
def test_budgets_out_of_range_or_not_numbers_are_one_line_messages(page, steps, minutes, expected):
    url, _, folder = page
    before = outside_runs(folder)
    with signed_in(url) as session:
        clip = [upload(session, SHORT_CLIP)]
        kind, message = call(session, "start_training", [clip, "a", clip, "b", "tiny", steps, minutes])
    assert kind == "error" and expected in message and "\n" not in message, message
    assert outside_runs(folder) == before and not [p for p in (folder / "runs").iterdir() if p.name != ".jobs.lock"]


def test_every_budget_has_the_time_bound_and_the_steps_a_maximum(tmp_path):
    jobs = TrainingJobs(tmp_path / "runs", tmp_path / "recipes", Limits(max_training_minutes=5), poll_seconds=0)
    assert jobs._checked_budget(10**6, 0) == (10**6, 5.0)  # steps alone: bounded by the server's minutes
    assert jobs._checked_budget(0, 2) == (0, 2.0) and jobs._checked_budget(10, 3) == (10, 3.0)
    with pytest.raises(UploadError, match=f"1000000000000 steps is over the limit of {MAX_STEPS:,} steps per job"):
        jobs._checked_budget(10**12, 0)
    for bad in (math.nan, math.inf, "abc"):
        with pytest.raises(UploadError, match="must be a (finite )?number"):
            jobs._checked_budget(bad, 0)


# --- 1, 6 and 7 on a real job: its time bound, its log without server paths, a stop before the first checkpoint -------


def test_a_step_budget_trains_under_the_time_limit_shows_no_server_path_and_a_stop_says_what_is_on_disk(
        page, client, tmp_path):
    from gradio_client import handle_file

    url, process, folder = page
    before = outside_runs(folder)
    files = {name: [handle_file(str(p)) for p in paths] for name, paths in speaker_uploads(tmp_path).items()}
    job, summary, _ = client.predict(files["high"], "high", files["low"], "low", "tiny", 1000, 0,
                                     api_name="/start_training")
    assert "budget 5 min" in summary, summary  # the step budget alone got the server's 5 minutes
    message = client.predict(job, api_name="/stop_training")  # at once: the process is still preparing
    assert message == "Saving a checkpoint..."
    status = wait_for(lambda: (s := client.predict(job, api_name="/training_status")) and "**stopped**" in s[0] and s,
                      "the job to stop")
    assert not list((folder / "runs" / job / "run").glob("checkpoints/step_*.pt"))  # stopped while preparing
    log_tail = status[-1]
    assert "--set train.max_minutes=5.0" in log_tail and "--speaker-a speakers/high" in log_tail, log_tail
    for server_folder in (str(folder), str(REPO), str(tmp_path)):
        assert server_folder not in log_tail and server_folder not in status[0], (server_folder, status)
    jobs = TrainingJobs(folder / "runs", folder / "recipes", Limits(), poll_seconds=0)
    assert jobs.job(job).message == "Stopped. No checkpoint was saved before it ended; Resume starts it from the beginning."
    assert outside_runs(folder) == before


# --- 2, 7: the job manager's own guarantees, with a stand-in trainer ------------------------------------------------


@pytest.fixture
def standin(tmp_path) -> dict:
    """A recipes folder, two speakers' uploads, and a trainer that only sleeps (``python -c``, the job's arguments
    after it), so no job trains."""
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.yaml").write_text(TINY_RECIPE)
    uploads = speaker_uploads(tmp_path / "uploads")
    return dict(command=[sys.executable, "-c", "import time; time.sleep(600)"],
                request=dict(uploads_a=[str(p) for p in uploads["high"]], uploads_b=[str(p) for p in uploads["low"]],
                             name_a="high", name_b="low", recipe="tiny", steps=100))


def test_six_starts_at_once_take_no_more_than_the_job_limit(tmp_path, standin):
    """Six clients starting at once with a limit of 2 got 3 jobs: the slot is now reserved under the lock."""
    jobs = TrainingJobs(tmp_path / "runs", tmp_path / "recipes", Limits(max_training_jobs=2), standin["command"],
                        poll_seconds=0)
    outcomes, start = [], threading.Barrier(6)

    def create():
        start.wait()
        try:
            outcomes.append(jobs.create(**standin["request"]).id)
        except UploadError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=create) for _ in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        refused = [o for o in outcomes if "at most 2" in o]
        assert len(outcomes) - len(refused) == 2 and len(refused) == 4, outcomes
        assert sorted(j.state for j in jobs.jobs()) == ["queued", "running"]
        assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir()]) == 2  # the refused left nothing
    finally:
        for job in jobs.jobs():
            if job.state in ("running", "queued"):
                jobs.stop(job.id)


def test_a_trainer_killed_from_outside_is_reported_as_killed(tmp_path, standin):
    jobs = TrainingJobs(tmp_path / "runs", tmp_path / "recipes", Limits(), standin["command"], poll_seconds=0)
    job = jobs.create(**standin["request"])
    pid = jobs.job(job.id).pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: jobs.refresh() or jobs.job(job.id).state == "failed", "the job to be found dead")
    assert jobs.job(job.id).message == ("Training was killed from outside (signal SIGKILL). No checkpoint was saved "
                                        "before it ended; Resume starts it from the beginning.")


def test_a_reservation_left_by_a_dead_server_frees_its_slot(tmp_path, standin):
    jobs = TrainingJobs(tmp_path / "runs", tmp_path / "recipes", Limits(max_training_jobs=1), standin["command"],
                        poll_seconds=0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / "runs" / "20200101-000000-abcdef"
    abandoned.mkdir(parents=True)
    (abandoned / "job.json").write_text(json.dumps(dict(id=abandoned.name, name_a="a", name_b="b", recipe="tiny",
                                                        steps=1, minutes=1.0, created=0.0, state="receiving",
                                                        pid=int(dead.stdout))))
    job = jobs.create(**standin["request"])
    try:
        assert not abandoned.exists() and [j.id for j in jobs.jobs()] == [job.id]
    finally:
        jobs.stop(job.id)


# --- 4 and also seen: Live blocks ---------------------------------------------------------------------------------


def test_live_blocks_of_any_sample_type_convert_and_others_get_a_message(page, tmp_path):
    url, _, folder = page
    tone = harmonic_tone(2.0, 48000)
    blocks = {"stereo16": (np.stack([tone, tone], axis=1), "PCM_16"), "float": (tone, "FLOAT"),
              "empty": (np.zeros(0, np.float32), "PCM_16")}
    for name, (samples, subtype) in blocks.items():
        sf.write(tmp_path / f"{name}.wav", samples, 48000, subtype=subtype)
    with signed_in(url) as session:
        for name in ("stereo16", "float"):  # stereo 16-bit: was "its weights are damaged"; float: a blank error
            kind, data = call(session, "live", [upload(session, tmp_path / f"{name}.wav"), "kathleen_rms", "a2b",
                                                "auto"])
            assert kind == "complete" and data[1].startswith("Converting: 2.0 s heard"), (name, kind, data)
            call(session, "live_finish", [])
        kind, data = call(session, "live", [upload(session, tmp_path / "empty.wav"), "kathleen_rms", "a2b", "auto"])
        assert kind == "complete" and data[1] == "The last microphone block held no samples; nothing to convert."
        (tmp_path / "text.wav").write_text("not audio at all")
        kind, data = call(session, "live", [upload(session, tmp_path / "text.wav"), "kathleen_rms", "a2b", "auto"])
        assert kind == "error" and data.startswith("the microphone block is not audio that can be read"), data
        kind, data = call(session, "live", [3.5, "kathleen_rms", "a2b", "auto"])
        assert kind == "error" and data == "the microphone block must be an audio file, not float '3.5'", data


def test_a_stereo_integer_block_is_scaled_before_its_channels_are_averaged():
    from voiceconv.web.live import _mono_float

    samples = np.array([[16384, 16384], [-32768, -32768], [0, 32767]], np.int16)
    rate, mono = _mono_float((48000, samples))
    assert rate == 48000 and mono.dtype == np.float32
    assert np.allclose(mono, [0.5, -1.0, 32767 / 65536])
    assert np.allclose(_mono_float((8000, np.array([128, 255, 0], np.uint8)))[1], [0.0, 127 / 128, -1.0])


# --- 9 and 10: the login ---------------------------------------------------------------------------------------


def test_a_visitor_without_credentials_gets_the_login_form_and_nothing_more(page):
    url = page[0]
    with httpx.Client(base_url=url, timeout=60) as anonymous:
        login_page = anonymous.get("")
        assert login_page.status_code == 200 and '"auth_required":true' in login_page.text
        for secret in ("kathleen", "xss", "/convert", "start_training", "live_finish", "parameter_name"):
            assert secret not in login_page.text, secret
        for path in ("config", "gradio_api/info", "gradio_api/openapi.json", "gradio_api/runs", "manifest.json",
                     "gradio_api/queue/data", "monitoring", "gradio_api/file=" + str(VOICE_MODEL), "gradio_api/upload"):
            answer = anonymous.get(path)
            assert answer.status_code in (401, 404, 405) and "kathleen" not in answer.text, (path, answer.text[:200])
    with signed_in(url) as session:
        assert "/convert" in session.get("").text  # signed in, the page describes its API
        config = session.get("config").json()
    markdown = [c["props"].get("value") or "" for c in config["components"] if c.get("type") == "markdown"]
    shown = [text for text in markdown if "onerror" in text]  # the Models tab's heading of the hostile model
    assert shown and all("<img" not in text and "&lt;img src=x onerror=alert\\(1\\)&gt;" in text for text in shown)


def test_wrong_passwords_lock_one_client_out_for_longer_and_longer(page):
    """1,490 wrong passwords at 288 a second, then the right one was accepted: now the fifth wrong one locks the
    client out, the lock doubles with each further one, and during it even the right password is refused."""
    url = page[0]
    with httpx.Client(base_url=url, timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.2")) as attacker:
        answers = [attacker.post("login", data={"username": USER, "password": f"guess{i}"}) for i in range(5)]
        assert [a.status_code for a in answers] == [400] * 5
        locked = attacker.post("login", data={"username": USER, "password": PASSWORD})
        assert locked.status_code == 429 and locked.json()["detail"] == (
            "Too many wrong logins from this address; try again in 1 s.")
        with signed_in(url):  # another client is not locked out
            pass
        time.sleep(float(locked.headers["retry-after"]))
        assert attacker.post("login", data={"username": USER, "password": "guess5"}).status_code == 400
        again = attacker.post("login", data={"username": USER, "password": PASSWORD})
        assert again.status_code == 429 and again.headers["retry-after"] == "2"  # doubled
        time.sleep(2)
        assert attacker.post("login", data={"username": USER, "password": PASSWORD}).status_code == 200


def test_the_throttle_doubles_the_lock_up_to_its_ceiling_and_forgets_after_a_right_password():
    now = [0.0]
    throttle = LoginThrottle(free_attempts=3, first_lock_seconds=1.0, max_lock_seconds=8.0, clock=lambda: now[0])
    assert [throttle.begin("eve") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.begin("eve") == 1.0 and throttle.begin("bob") == 0.0
    waits = []
    for _ in range(6):
        now[0] += throttle.begin("eve") or 0.0
        assert throttle.begin("eve") == 0.0
        waits.append(throttle.begin("eve"))
    assert waits == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    now[0] += 8.0
    assert throttle.begin("eve") == 0.0
    throttle.succeeded("eve")
    assert [throttle.begin("eve") for _ in range(3)] == [0.0, 0.0, 0.0]


# --- 8: SIGTERM --------------------------------------------------------------------------------------------------


def test_sigterm_removes_the_page_temp_folder_with_the_users_audio(tmp_path):
    from gradio_client import Client, handle_file

    with serving(tmp_path, "--no-training", "--models-dir", str(SAMPLES / "models")) as (url, process):
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        client.predict(handle_file(str(SHORT_CLIP)), "kathleen_rms", "a2b", "auto", api_name="/convert")
        work = list(tmp_path.glob("voiceconv-web-*"))
        assert len(work) == 1 and list(work[0].rglob("*.wav"))  # the user's converted audio
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert not list(tmp_path.glob("voiceconv-web-*")), "SIGTERM left the page's temp folder behind"
