"""Atomic file output: a crash or Ctrl-C never leaves a half-written file behind."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same extension); rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
