"""What one request may ask of the server: upload size, audio duration, zip contents."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from voiceconv.errors import AudioError, ImageFileError, VoiceconvError

MB = 1024 * 1024


class UploadError(VoiceconvError):
    """An upload is missing, too large, too long or otherwise refused; the message says why."""


@dataclass(frozen=True)
class Limits:
    """Per-request limits of the web page (sizes in MB, durations in seconds)."""

    max_upload_mb: float = 25.0  # each uploaded file, a zip included
    max_seconds: float = 60.0  # each clip converted
    max_batch_files: int = 100  # audio files in one batch, across all uploads and zip members
    max_zip_total_mb: float = 500.0  # uncompressed size of one zip's members together
    max_zip_ratio: float = 100.0  # uncompressed / compressed size of one member
    ratio_check_min_mb: float = 1.0  # members smaller than this are never a zip bomb
    concurrency: int = 2  # requests converted at the same time; the rest wait in the queue
    queue_size: int = 64  # requests waiting beyond that are turned away with a message
    max_training_jobs: int = 4  # training jobs queued or running at once (one trains at a time)
    max_training_audio_minutes: float = 60.0  # audio of both speakers together in one training job
    max_training_minutes: float = 120.0  # the largest time budget of one training job
    max_training_files: int = 2000  # recordings of one speaker in a training job (the minutes bound them too)
    files_limit_name: str = "a batch"  # what max_batch_files limits, for messages (see for_training)

    def for_training(self) -> Limits:
        """These limits for one speaker's training uploads: ``max_training_files`` instead of the batch's count."""
        return replace(self, max_batch_files=self.max_training_files, files_limit_name="one speaker's upload")

    def __post_init__(self) -> None:
        bad = [f"{name}={value}" for name, value in vars(self).items() if not isinstance(value, str) and not value > 0]
        if bad:
            raise VoiceconvError(f"web limits must be positive: {', '.join(bad)}")


def check_upload_size(path: str | Path, limits: Limits) -> None:
    """Refuse a file larger than ``limits.max_upload_mb``."""
    size = os.path.getsize(path)
    if size > limits.max_upload_mb * MB:
        raise UploadError(f"{Path(path).name} is {size / MB:.1f} MB; uploads are limited to {limits.max_upload_mb:g} MB")


def duration_problem(seconds: float, limits: Limits) -> str | None:
    """Why audio of this length is refused (``None`` when it is within ``limits.max_seconds``)."""
    if seconds > limits.max_seconds:
        return f"is {seconds:.1f} s long; clips are limited to {limits.max_seconds:g} s (cut it into shorter pieces)"
    return None


def check_duration(name: str, seconds: float, limits: Limits) -> None:
    """Refuse audio longer than ``limits.max_seconds``."""
    problem = duration_problem(seconds, limits)
    if problem:
        raise UploadError(f"{name} {problem}")


def user_message(err: VoiceconvError) -> str:
    """The error as shown on the page: audio and image errors name the uploaded file, not the server's temp path;
    model file errors name the model file, not the server's folder."""
    from voiceconv.errors import ModelFileError

    if isinstance(err, AudioError):
        message = f"{Path(err.path).name}: {err.problem}"
        return f"{message} ({err.advice})" if err.advice else message
    if isinstance(err, ImageFileError):  # the path also appears inside decoder messages
        return str(err).replace(err.path, Path(err.path).name)
    if isinstance(err, ModelFileError):  # "<server path of the model>: problem": name the model file only
        where, sep, problem = str(err).partition(": ")
        return f"{Path(where).name}: {problem}" if sep else str(err)
    return str(err)
