"""Exceptions a user can act on: each names the file and says what to do.

Everything the command line reports as a one-line error (instead of a
traceback) derives from :class:`VoiceconvError`.
"""

from __future__ import annotations

from pathlib import Path


class VoiceconvError(Exception):
    """Base class of every error caused by user input rather than a bug."""


class ConfigError(VoiceconvError, ValueError):
    """A configuration value is invalid or unknown."""


class AudioError(VoiceconvError):
    """An audio file cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str, advice: str = ""):
        self.path = str(path)
        self.problem = problem
        self.advice = advice
        message = f"{self.path}: {problem}"
        if advice:
            message += f" ({advice})"
        super().__init__(message)


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class UnsupportedFormatError(AudioError):
    """The file is not audio, or is in a container libsndfile cannot read."""


class CorruptAudioError(AudioError):
    """The file is audio but damaged or truncated."""


class EmptyAudioError(AudioError):
    """The file holds no samples at all."""


class TooShortError(AudioError):
    """The audio is shorter than the analysis needs."""


class SilentAudioError(AudioError):
    """The audio holds no signal above the silence threshold."""


class NonFiniteAudioError(AudioError):
    """The audio holds NaN or infinite samples."""


class ModelFileError(VoiceconvError):
    """A model file is missing, damaged or not a voiceconv model; the message names the file and the field."""


class ImageFileError(VoiceconvError):
    """A spectrogram image cannot be used; the message names the file."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")
