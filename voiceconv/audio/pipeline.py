"""File-level operations behind ``voiceconv spectrogram`` and ``voiceconv synthesize``."""

from __future__ import annotations

from pathlib import Path

import torch

from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.image_file import load_spectrogram_png, save_spectrogram_png
from voiceconv.audio.io import load_audio, save_audio
from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, DEFAULT_MOMENTUM, GriffinLimVocoder
from voiceconv.errors import VoiceconvError


def audio_to_spectrogram_png(
    audio_path: str | Path,
    png_path: str | Path,
    config: FeatureConfig = FeatureConfig(),
    *,
    trim_silence: bool = False,
    loudness_lufs: float | None = None,
) -> Path:
    """Turn an audio file into a 16-bit spectrogram PNG that carries ``config`` as metadata."""
    _refuse_same_file(audio_path, png_path)
    wav = load_audio(audio_path, config.sample_rate, trim_silence=trim_silence, loudness_lufs=loudness_lufs,
                     min_seconds=config.n_fft / config.sample_rate)
    image = MelImageEncoder(config)(torch.from_numpy(wav))  # [1, n_mels, frames]
    return save_spectrogram_png(png_path, image, config)


def spectrogram_png_to_audio(
    png_path: str | Path,
    audio_path: str | Path,
    config: FeatureConfig | None = None,
    *,
    n_iter: int = DEFAULT_ITERATIONS,
    momentum: float = DEFAULT_MOMENTUM,
) -> Path:
    """Resynthesize a spectrogram PNG into an audio file with Griffin-Lim.

    ``config`` replaces the PNG's own feature metadata (needed when an editor dropped it).
    """
    _refuse_same_file(png_path, audio_path)
    image, config = load_spectrogram_png(png_path, config)
    wav = GriffinLimVocoder(config, n_iter=n_iter, momentum=momentum)(image)[0]  # [samples]
    return save_audio(audio_path, wav.numpy(), config.sample_rate)


def _refuse_same_file(source: str | Path, destination: str | Path) -> None:
    if Path(source).resolve() == Path(destination).resolve():
        raise VoiceconvError(f"{destination}: output would overwrite the input; choose another output path")
