"""Helpers several test folders share: a real ``python app.py`` server, upload checks, batch-output readers."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import soundfile as sf

from conftest import REPO, SAMPLES, harmonic_tone

DEFAULT_MODEL = SAMPLES / "models" / "kathleen_rms.safetensors"

SHORT_CLIP = SAMPLES / "audio" / "kathleen_arctic_a0591.flac"  # 1.8 s

LONG_CLIP = SAMPLES / "audio" / "kathleen_arctic_a0592.flac"  # 2.6 s

STARTUP_SECONDS = 120
WAIT_SECONDS = 180  # the longest a test waits for a job's state to change

ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}


def make_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(folder: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python app.py --port N OPTIONS`` run from ``folder`` (its temp files there too): (its URL, its process)."""
    pytest.importorskip("gradio", reason="the web page needs the app extra: pip install -e '.[app]'")
    port = free_port()
    log = folder / "app.log"
    env = {**os.environ, "TMPDIR": str(folder), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), *options],
                                   cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(process, port, log)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_app(folder: Path, *options: str) -> Iterator[str]:
    """:func:`serving`, yielding only the URL."""
    with serving(folder, *options) as (url, _):
        yield url


def wait_for(check, what: str, seconds: float = WAIT_SECONDS):
    """``check()``'s first truthy value, polled until ``seconds`` have passed (then the test fails)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def _wait_until_serving(process: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"app.py did not start serving within {STARTUP_SECONDS} s:\n{log.read_text()}")


def refusal(client, *args, api_name: str) -> str:
    """The message the page shows for a refused request: no traceback, and no server path beyond what the
    client itself sent (a checkout under the system temp folder sends paths under /tmp)."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        client.predict(*args, api_name=api_name)
    message = str(err.value)
    not_echoed = message
    for sent in args:
        if isinstance(sent, str) and sent:
            not_echoed = not_echoed.replace(sent, "")
    assert "Traceback" not in message and "/tmp" not in not_echoed
    return message


def write_tone(path: Path, seconds: float, rate: int = 16000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, harmonic_tone(seconds, rate, f0=120 + 10 * seed, seed=seed), rate)
    return path


def audio_outputs(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*.wav") if not p.name.startswith(".")}


def failures_csv(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["file", "reason"]
    return {Path(name).name: reason for name, reason in rows[1:]}


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".partial" in p.name]
