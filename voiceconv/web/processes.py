"""The Train tab's training processes: a lock shared by every server on one runs folder, and the signals and
process ids of the ``voiceconv train`` processes it starts."""

from __future__ import annotations

import fcntl
import os
import signal
import threading
from pathlib import Path


class ExclusiveLock:
    """Re-entrant for this process's threads, exclusive across processes (``flock`` on ``path``): two servers on
    one runs folder never start the same job twice or judge one job's end twice."""

    def __init__(self, path: Path):
        self.path, self._threads, self._depth, self._file = path, threading.RLock(), 0, None

    def __enter__(self):
        self._threads.acquire()
        if self._depth == 0:
            self._file = open(self.path, "a")  # noqa: SIM115 - held for the length of the lock
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
        self._threads.release()


def signal_group(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def is_training_process(pid: int | None, folder: Path) -> bool:
    """Whether ``pid`` still runs and is the ``voiceconv train`` of this job (not a recycled process id)."""
    if not pid:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and str(folder / "run").encode() in command  # its --out


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists (and is not a zombie)."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != "Z"
