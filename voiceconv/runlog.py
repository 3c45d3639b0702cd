"""What a training run folder logs as JSON lines, for the loop, model selection and the page's Train tab.

* ``progress.jsonl``: one line every ``train.log_every`` steps, ``{"step", "seconds", "losses": {...}}``;
* ``validation.jsonl``: one line per held-back scoring, ``{"step", "hours", "score", ...}``.

Readers skip a line being written or damaged, and keep one entry per step (a
resumed run's repeats replace the earlier ones). Plain json: the web server
reads these without importing training code.
"""

from __future__ import annotations

import json
from pathlib import Path

PROGRESS_FILE = "progress.jsonl"
HISTORY_FILE = "validation.jsonl"


def append_progress(run_dir: Path, step: int, seconds: float, losses: dict[str, float]) -> None:
    """One line of ``run_dir/progress.jsonl``: the step, the training seconds so far and the losses."""
    _append(run_dir / PROGRESS_FILE, {"step": step, "seconds": round(seconds, 2),
                                      "losses": {k: round(float(v), 5) for k, v in losses.items()}})


def read_progress(run_dir: Path) -> list[dict]:
    """The entries of ``progress.jsonl`` in step order (empty when there is none)."""
    return _read(run_dir / PROGRESS_FILE)


def append_history(run_dir: Path, entry: dict) -> None:
    """One line of ``run_dir/validation.jsonl``."""
    _append(run_dir / HISTORY_FILE, entry)


def read_history(run_dir: Path) -> list[dict]:
    """The validation scores written so far in ``run_dir``, in step order (empty for a new run)."""
    return _read(run_dir / HISTORY_FILE)


def _append(path: Path, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def _read(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries: dict[int, dict] = {}
    for line in lines:
        try:
            entry = json.loads(line)
            entries[int(entry["step"])] = entry
        except (ValueError, KeyError, TypeError):
            continue
    return [entries[step] for step in sorted(entries)]
