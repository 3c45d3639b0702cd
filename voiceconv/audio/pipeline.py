"""File-level operations behind ``voiceconv spectrogram`` and ``voiceconv synthesize``.

A spectrogram PNG holds the whole recording's image at once (its rows run
the full duration), so ``voiceconv spectrogram`` refuses recordings longer
than :data:`MAX_SPECTROGRAM_SECONDS`, from the file's header before decoding
anything and again while decoding (a compressed file's header only estimates
its length); the image itself is computed a chunk of frames at a time, so
memory holds the waveform and the image, never the whole recording's STFT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.image_file import load_spectrogram_png, save_spectrogram_png
from voiceconv.audio.io import audio_info, prepare_waveform, save_audio, stream_audio
from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, DEFAULT_MOMENTUM, GriffinLimVocoder
from voiceconv.errors import AudioError, VoiceconvError

#: Longest recording ``voiceconv spectrogram`` takes: 30 minutes (112,500 columns of 16 kHz, hop-256 audio; about
#: 0.5 GB of memory at the peak).
MAX_SPECTROGRAM_SECONDS = 30 * 60.0
IMAGE_CHUNK_FRAMES = 4096  # image columns computed at once (4096 x 513 STFT cells: 16 MB)


def audio_to_spectrogram_png(
    audio_path: str | Path,
    png_path: str | Path,
    config: FeatureConfig = FeatureConfig(),
    *,
    trim_silence: bool = False,
    loudness_lufs: float | None = None,
    max_seconds: float = MAX_SPECTROGRAM_SECONDS,
) -> Path:
    """Turn an audio file of at most ``max_seconds`` into a 16-bit spectrogram PNG that carries ``config``."""
    _refuse_same_file(audio_path, png_path)
    wav = _load_at_most(audio_path, config, max_seconds, trim_silence=trim_silence, loudness_lufs=loudness_lufs)
    return save_spectrogram_png(png_path, spectrogram_image(wav, config), config)


def spectrogram_image(wav: np.ndarray, config: FeatureConfig, chunk_frames: int = IMAGE_CHUNK_FRAMES) -> torch.Tensor:
    """The log-mel image ``[1, n_mels, frames]`` of a waveform ``[samples]``, ``chunk_frames`` columns at a time.

    The same image as ``MelImageEncoder(config)`` of the whole waveform: each chunk's STFT sees its own
    samples plus half a window of context on each side (more than half, rounded up to whole hops), so no
    frame of it differs from the whole-waveform frame.
    """
    encoder, hop = MelImageEncoder(config), config.hop_length
    frames = config.frames_for(len(wav))
    context = -(-config.n_fft // 2 // hop) + 1  # whole hops covering half a window, and one more
    image = torch.empty(1, config.n_mels, frames)
    with torch.inference_mode():
        for first in range(0, frames, chunk_frames):
            last = min(first + chunk_frames, frames)
            start = max(0, first - context)  # in frames, so the chunk's frames fall on the whole waveform's
            stop = min(len(wav), (last - 1 + context) * hop)
            chunk = encoder(torch.from_numpy(np.ascontiguousarray(wav[start * hop : stop])))  # [1, n_mels, T_chunk]
            image[..., first:last] = chunk[..., first - start : last - start]
    return image


def _load_at_most(path: str | Path, config: FeatureConfig, max_seconds: float, **options) -> np.ndarray:
    """:func:`~voiceconv.audio.io.load_audio`, refusing a recording longer than ``max_seconds``."""
    def too_long(seconds: float, at_least: bool = False) -> AudioError:
        return AudioError(path, f"is {'more than ' if at_least else ''}{seconds / 60:.1f} minutes long; spectrogram "
                                f"images are limited to {max_seconds / 60:g} minutes",
                          "cut it into shorter pieces, e.g. with sox or ffmpeg")

    declared = audio_info(path).duration  # the header: refused before decoding anything
    if declared > max_seconds:
        raise too_long(declared)
    limit, blocks, total = int(max_seconds * config.sample_rate), [], 0
    for block in stream_audio(path, config.sample_rate):
        total += len(block)
        if total > limit:  # a header that understated the length
            raise too_long(total / config.sample_rate, at_least=True)
        blocks.append(block)
    wav = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    del blocks
    return prepare_waveform(wav, config.sample_rate, name=str(path),
                            min_seconds=config.n_fft / config.sample_rate, **options)


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
