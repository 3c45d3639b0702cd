"""What the Train tab tells a visitor about a run: time left, the newest model, the log's last lines and
errors, how a stop ended, and the one rule for server paths shown on the page."""

from __future__ import annotations

import re
from pathlib import Path

from voiceconv.runfolder import RunFolder
from voiceconv.web.delivery import read_text


def remaining_seconds(progress: list[dict], total_steps: int, minutes: float) -> float | None:
    """Seconds to the end of the budget, from the pace of the last ten logged steps."""
    if len(progress) < 2:
        return None
    recent = progress[-10:]
    steps = recent[-1]["step"] - recent[0]["step"]
    seconds = recent[-1]["seconds"] - recent[0]["seconds"]
    if steps <= 0 or seconds <= 0:
        return None
    by_steps = max(0, total_steps - recent[-1]["step"]) * seconds / steps
    by_time = max(0.0, minutes * 60 - recent[-1]["seconds"]) if minutes else by_steps
    return min(by_steps, by_time)


def newest_snapshot(run: Path) -> Path | None:
    """The run's final model when written, else its newest periodic export (None before the first)."""
    folder = RunFolder(run)
    if folder.model.is_file():
        return folder.model
    exports = folder.snapshots()
    return exports[-1] if exports else None


def log_tail(path: Path, lines: int = 12) -> str:
    """The log's last ``lines`` lines, of the progress bar's many redraws only the newest."""
    text = [line for line in read_text(path).replace("\r", "\n").splitlines() if line.strip()]
    bars = [i for i, line in enumerate(text) if "step/s" in line or "s/step" in line]
    kept = [line for i, line in enumerate(text) if i not in bars[:-1]]
    return "\n".join(kept[-lines:])


def last_error(path: Path) -> str:
    """The log's last line that mentions an error ('' when none does)."""
    lines = [line for line in log_tail(path, 40).splitlines() if "error" in line.lower()]
    return lines[-1].strip() if lines else ""


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])(?:/[^\s'\"/:,;()<>]+)+/?")


def shown_paths(text: str, folder: Path) -> str:
    """The one rule for server paths shown to a page's visitor: paths inside the job's ``folder`` relative to it
    (``run/checkpoints``, ``speakers/alice/a.wav``), any other absolute path cut to its last part (``.../tiny.yaml``),
    so no folder of the server reaches the page."""
    root = str(folder.resolve()) if folder.is_absolute() else str(folder)
    for prefix in {root, str(folder)}:
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return _ABSOLUTE_PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def stopped_message(run: Path) -> str:
    return "Stopped. " + checkpoint_note(run)


def checkpoint_note(run: Path) -> str:
    """What Resume continues from, as the run's checkpoints folder says (not what the stop hoped for)."""
    steps = sorted(int(m.group(1)) for p in (run / "checkpoints").glob("step_*.pt")
                   if (m := re.fullmatch(r"step_(\d+)\.pt", p.name)))
    if steps:
        return f"The checkpoint of step {steps[-1]} is saved; Resume continues from it."
    return "No checkpoint was saved before it ended; Resume starts it from the beginning."
