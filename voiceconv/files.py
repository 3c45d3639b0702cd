"""Atomic file output: a crash or Ctrl-C never leaves a half-written file behind.

While :func:`atomic_output` writes, its temporary file is locked (``flock``),
and the lock goes with the process however it ends, ``kill -9`` included:
:func:`remove_abandoned` removes only temporary files that no running process
is writing, so a cleanup never pulls a file from under another run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no locks, and cleanups cannot tell a running writer's file from an abandoned one
    fcntl = None


def fingerprint(files: list[Path], settings: dict) -> str:
    """16 hex digits that change when any of ``files`` (path, size, modification time) or ``settings`` changes:
    the key of a cache built from those files."""
    listing = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps({"settings": settings, "files": listing}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same extension); rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    The temporary file stays locked until then (see :func:`remove_abandoned`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = tmp = None
    try:
        with _interrupts_deferred():  # Ctrl-C or SIGTERM between creating the file and holding its name
            fd, tmp = _locked_temporary(path)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
            os.close(fd)  # releases the lock


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Inside the block, SIGINT and SIGTERM wait; they are delivered again as it ends (its last statement done).
    Only the main thread receives them, so elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {number: signal.signal(number, lambda received, _frame: caught.append(received))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        for number in caught:
            signal.raise_signal(number)


def remove_abandoned(path: str | Path) -> bool:
    """Remove the temporary file ``path`` of :func:`atomic_output` unless a running process is writing it.

    Returns whether it was removed. Never follows a symbolic link.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its writer is alive
                return False
        if not _same_file(fd, path):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, locked: ``(its descriptor, its name)``."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, tmp):  # a cleanup did not remove it in the moment before the lock
                return fd, tmp
        except OSError:  # a cleanup holds it, about to remove it: take another name
            pass
        os.close(fd)


def _same_file(fd: int, path: str | Path) -> bool:
    try:
        held, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


#: The temporary names :func:`atomic_output` uses: ``.<stem>.<8 random characters>.partial<suffix>``.
_PARTIAL_NAME = re.compile(r"\.(?P<stem>.+)\.[a-z0-9_]{8}\.partial(?P<suffix>\.[^.]+)?")


def partial_output_target(name: str) -> str | None:
    """The file name a temporary file of :func:`atomic_output` was to become, or None if ``name`` is not one."""
    match = _PARTIAL_NAME.fullmatch(name)
    return f"{match['stem']}{match['suffix'] or ''}" if match else None


def _umask() -> int:
    """The process umask, read without changing it (Linux); 0o022 where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
