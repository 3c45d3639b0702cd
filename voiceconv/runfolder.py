"""A training run folder: the one place that names every file a run writes, for the loop, model selection
and the page's Train tab (torch-free: the web server reads it without importing training code).

:class:`RunFolder` names the files; ``outcome.json`` says how the run ended. The JSON-lines logs:

* ``progress.jsonl``: one line every ``train.log_every`` steps, ``{"step", "seconds", "losses": {...}}``;
* ``validation.jsonl``: one line per held-back scoring, ``{"step", "hours", "score", ...}``.

Readers skip a line being written or damaged, and keep one entry per step (a
resumed run's repeats replace the earlier ones). Plain json: the web server
reads these without importing training code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PROGRESS_FILE = "progress.jsonl"
HISTORY_FILE = "validation.jsonl"
OUTCOME_FILE = "outcome.json"
OUTCOMES = ("finished", "stopped", "failed")


@dataclass(frozen=True)
class RunFolder:
    """The names of the files a training run writes under ``root``."""

    root: Path

    @property
    def progress(self) -> Path:
        """``progress.jsonl``: steps, seconds and losses."""
        return self.root / PROGRESS_FILE

    @property
    def validation(self) -> Path:
        """``validation.jsonl``: held-back scores."""
        return self.root / HISTORY_FILE

    @property
    def model(self) -> Path:
        """``model.safetensors``: the model at the end of a finished run."""
        return self.root / "model.safetensors"

    @property
    def best(self) -> Path:
        """``best.safetensors``: the best-scoring step when held-back selection ran."""
        return self.root / "best.safetensors"

    @property
    def exports(self) -> Path:
        """``exports/``: the periodic snapshots."""
        return self.root / "exports"

    def export(self, step: int) -> Path:
        """``exports/model_step<N>.safetensors``: the snapshot at ``step``."""
        return self.exports / f"model_step{step:07d}.safetensors"

    def snapshots(self) -> list[Path]:
        """The periodic snapshots written so far, oldest first."""
        return sorted(self.exports.glob("model_step*.safetensors")) if self.exports.is_dir() else []

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: resumable training state."""
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        """``logs/``: TensorBoard event files."""
        return self.root / "logs"

    @property
    def recipe(self) -> Path:
        """``recipe.yaml``: the resolved recipe the run was started with."""
        return self.root / "recipe.yaml"

    @property
    def alignment(self) -> Path:
        """``alignment.json``: the pitch alignment between the speakers."""
        return self.root / "alignment.json"

    @property
    def cache(self) -> Path:
        """``cache/``: prepared features."""
        return self.root / "cache"

    @property
    def outcome(self) -> Path:
        """``outcome.json``: how the run ended (see :meth:`write_outcome`)."""
        return self.root / OUTCOME_FILE

    def write_outcome(self, state: str, step: int, models: list[Path], error: str = "") -> None:
        """Write ``outcome.json`` atomically: ``state`` (finished / stopped / failed), the step reached, the model
        files written (relative to the folder) and, for a failure, the error."""
        if state not in OUTCOMES:
            raise ValueError(f"unknown outcome {state!r}")
        entry = {"state": state, "step": int(step), "models": [_relative(p, self.root) for p in models]}
        if error:
            entry["error"] = error
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.outcome.with_name(OUTCOME_FILE + ".tmp")
        tmp.write_text(json.dumps(entry, indent=1), encoding="utf-8")
        os.replace(tmp, self.outcome)

    def read_outcome(self) -> dict | None:
        """The run's ``outcome.json``, or None when the run has not ended or was killed before writing it."""
        try:
            entry = json.loads(self.outcome.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and entry.get("state") in OUTCOMES else None

    def clear_outcome(self) -> None:
        """Remove a previous run's ``outcome.json`` (a resumed run writes its own)."""
        self.outcome.unlink(missing_ok=True)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


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
