"""What the Train tab checks and prepares in a request's uploads: speaker names, budgets, minutes of audio, and
the recording held back as the job's snapshot clip."""

from __future__ import annotations

import re
from pathlib import Path

from voiceconv.audio.io import audio_files, audio_info
from voiceconv.errors import AudioError
from voiceconv.web.limits import UploadError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")  # speaker names become file and model names
PREVIEW_MIN_SECONDS = 1.0


def checked_name(name: str | None, what: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise UploadError(f"{what}'s name must be 1-32 letters, digits, '-' or '_' (starting with a letter or "
                          f"digit), not {name[:40]!r}")
    return name


def budget_number(value, what: str) -> float:
    if value in (None, ""):
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UploadError(f"the budget's {what} must be a number, not {str(value)[:20]!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UploadError(f"the budget's {what} must be a finite number")
    return number


def minutes_of_audio(folder: Path, name: str) -> float:
    seconds = 0.0
    for path in audio_files(folder):
        try:
            seconds += audio_info(path).duration
        except AudioError:
            continue  # the audit reports it; training skips unreadable files
    if seconds == 0:
        raise UploadError(f"the uploads of {name} hold no readable audio")
    return seconds / 60


def hold_back_preview(speaker: Path, preview: Path) -> None:
    """Move speaker A's shortest recording of at least a second out of training: the snapshot clip."""
    candidates = []
    for path in audio_files(speaker):
        try:
            candidates.append((audio_info(path).duration, path))
        except AudioError:
            continue
    usable = sorted((d, p) for d, p in candidates if d >= PREVIEW_MIN_SECONDS)
    if len(candidates) < 2 or not usable:
        return  # too few recordings to spare one: no snapshot clip
    from voiceconv.audio.io import load_audio, save_audio

    duration, path = usable[0]
    rate = audio_info(path).sample_rate
    save_audio(preview, load_audio(path, rate), rate)
    path.unlink()  # a file this job copied from the upload, not the user's original
