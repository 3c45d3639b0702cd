"""The Converter: a voice model loaded for conversion of waveforms, files and streams of any length."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from voiceconv.audio.features import MelImageEncoder, SpeakerStats
from voiceconv.audio.io import audio_writer, prepare_waveform, stream_audio
from voiceconv.audio.world import Alignment, Pitch, PitchStats, WorldSettings, parse_pitch
from voiceconv.convert.pipeline import Pipeline
from voiceconv.convert.stream import ConversionStream, resample_stream
from voiceconv.convert.windowing import Windowing
from voiceconv.errors import VoiceconvError
from voiceconv.modelfiles.layout import SPEAKERS
from voiceconv.modelfiles.voice import VoiceModel
from voiceconv.models.directions import DIRECTIONS, Direction, checked_direction


@dataclass(frozen=True)
class ConversionResult:
    """What :meth:`Converter.convert_file` did."""

    source: Path
    destination: Path
    seconds: float  # input duration
    sample_rate: int  # of the written file


class Converter:
    """A loaded voice model: converts waveforms and files of any length between its two speakers."""

    def __init__(self, model: VoiceModel | str | Path, device: str = "cpu", n_iter: int | None = None,
                 window_seconds: float = 10.0, context_seconds: float = 0.5, crossfade_seconds: float = 0.25,
                 align_chunk_seconds: float | None = None, world: WorldSettings | None = None):
        """``model``: a :class:`VoiceModel` or a model file's path (every header field and tensor checked).
        ``world``: analyse the input with these WORLD settings instead of the ones the model file stores (its
        fitted F0 statistics and warp kept), e.g. :data:`~voiceconv.audio.world.DEFAULT_SETTINGS`' coarser
        analysis for a model trained before it; None (the default) converts exactly as the model was trained."""
        model = model if isinstance(model, VoiceModel) else VoiceModel.from_file(model)
        self.model, self.path, self.header, self.device = model, model.path, model.header, torch.device(device)
        self.features, self.mask_frames = model.features, model.config.mask_frames
        self.alignments = dict(model.alignment)  # {direction: Alignment}, {} for models from before alignment
        if world is not None:
            self.alignments = {d: replace(a, settings=world.check()) for d, a in self.alignments.items()}
        self.pipeline = Pipeline.from_model(model, self.device, n_iter)
        self.windowing = Windowing(window_seconds, context_seconds, crossfade_seconds, align_chunk_seconds)
        self.windowing.plan(self.features)  # checks the lengths

    @property
    def speakers(self) -> dict[str, str]:
        """The speakers' names by side: ``{"a": ..., "b": ...}``."""
        return self.model.speakers

    @property
    def stats(self) -> dict[str, SpeakerStats]:
        """What each side's converted images are mapped onto (:attr:`VoiceModel.output_stats`, on the converter's
        device), by side."""
        return {side: self.pipeline.stats[side] for side in SPEAKERS}

    @property
    def input_stats(self) -> dict[str, SpeakerStats]:
        """What each direction's generator normalizes its (aligned) input with, by direction."""
        return {direction: self.pipeline.stats[direction] for direction in DIRECTIONS}

    @property
    def encoder(self) -> MelImageEncoder:
        """The log-mel image encoder: waveform ``[samples]`` -> ``[1, n_mels, T]``."""
        return self.pipeline.encoder

    @property
    def minimum_seconds(self) -> float:
        """Shortest input that can be converted: one STFT window."""
        return self.pipeline.minimum_seconds

    @torch.inference_mode()
    def convert_image(self, image: torch.Tensor, direction: Direction = "a2b") -> torch.Tensor:
        """Log-mel image ``[1, n_mels, T]`` of one speaker (aligned to the other, see :meth:`alignment`) -> the other
        speaker's image."""
        return self.pipeline.convert_image(image, checked_direction(direction))

    def alignment(self, direction: Direction = "a2b", pitch: Pitch = "auto") -> Alignment | None:
        """The WORLD alignment applied to input of ``direction`` (None: none at all) under the ``pitch`` setting."""
        shift = parse_pitch(pitch)
        aligned = self.alignments.get(checked_direction(direction))
        if aligned is None:  # a model from before alignment: its generator moves the pitch itself
            return None if shift is None else Alignment(PitchStats(0.0, 1.0), PitchStats(0.0, 1.0), 1.0, shift)
        return aligned.with_pitch(shift)

    def convert(self, wav: np.ndarray, sample_rate: int, direction: Direction = "a2b",
                pitch: Pitch = "auto", windowing: Windowing | None = None) -> np.ndarray:
        """Mono waveform ``[samples]`` at ``sample_rate`` -> converted waveform at the model's sample rate.

        ``windowing`` cuts it (default: the converter's own, :attr:`windowing`).
        """
        rate, windowing = self.features.sample_rate, windowing or self.windowing
        wav = np.concatenate(list(resample_stream([np.asarray(wav, dtype=np.float32)], sample_rate, rate,
                                                  windowing.resampler)))
        wav = prepare_waveform(wav, rate, min_seconds=self.minimum_seconds)
        return np.concatenate(list(self.convert_stream([wav], direction, pitch=pitch, windowing=windowing)))

    def convert_stream(self, blocks: Iterable[np.ndarray], direction: Direction = "a2b",
                       name: str = "<waveform>", pitch: Pitch = "auto",
                       windowing: Windowing | None = None) -> Iterator[np.ndarray]:
        """Mono blocks at the model's sample rate -> converted blocks, in memory bounded by a few windows.

        Input is consumed lazily; raises :class:`AudioError` (naming ``name``)
        for input that is empty, too short or silent. While a window converts,
        the WORLD chunks after it are aligned on ``windowing.world_threads``
        threads, by default as many as torch may use (the process's share of
        the cores; pyworld releases the GIL), so WORLD, the larger stage, runs
        on every core. ``windowing`` defaults to the converter's own, as :meth:`open_stream`'s does.
        """
        windowing = windowing or self.windowing
        chunks, threads = windowing.plan(self.features)[1], windowing.world_threads or torch.get_num_threads()
        with ThreadPoolExecutor(threads, thread_name_prefix="voiceconv-world") as pool:
            stream = self.open_stream(self.features.sample_rate, direction, pitch, windowing, name, pool,
                                      max(chunks.ahead, threads))
            for block in blocks:
                converted = stream.push(block)
                if len(converted):
                    yield converted
            yield stream.finish()

    def open_stream(self, sample_rate: int, direction: Direction = "a2b", pitch: Pitch = "auto",
                    windowing: Windowing | None = None, name: str = "<stream>",
                    pool: ThreadPoolExecutor | None = None, ahead: int = 0) -> ConversionStream:
        """A :class:`ConversionStream` of mono audio at ``sample_rate``: ``push`` blocks as they arrive, get back
        the converted audio ready so far (at the model's rate), ``finish`` for the rest.

        ``windowing`` defaults to the converter's own (:attr:`windowing`, as :meth:`convert`'s does); live
        audio passes :data:`~voiceconv.convert.windowing.LIVE_WINDOWING` (short windows, little delay).
        Everything the stream returns, joined, equals :meth:`convert` of the whole input with the same
        ``windowing``. ``pool`` and ``ahead``: WORLD-align up to ``ahead`` chunks in ``pool`` while windows
        convert (more throughput, more delay); by default each chunk is aligned as soon as it is cut, on the
        caller's thread.
        """
        alignment = self.alignment(direction, pitch)  # checks direction and pitch before anything is pushed
        return ConversionStream(self.pipeline, sample_rate, direction, alignment, windowing or self.windowing, name,
                                pool, ahead)

    def convert_file(self, source: str | Path, destination: str | Path, direction: Direction = "a2b",
                     sample_rate: int | None = None, pitch: Pitch = "auto") -> ConversionResult:
        """Convert an audio file into ``destination`` (format from its extension), streaming and atomically.

        ``sample_rate`` resamples the output (default: the model's rate). The
        destination appears only when the whole file converted; any error
        leaves it untouched and raises an :class:`AudioError` naming the file.
        """
        source, destination = Path(source), Path(destination)
        if destination.resolve() == source.resolve():
            raise VoiceconvError(f"{destination}: output would overwrite the input; choose another output path")
        rate = sample_rate or self.features.sample_rate
        blocks = stream_audio(source, self.features.sample_rate)
        converted = resample_stream(self.convert_stream(blocks, direction, name=str(source), pitch=pitch),
                                    self.features.sample_rate, rate)
        with audio_writer(destination, rate) as writer:
            for block in converted:
                writer.write(block)
        return ConversionResult(source, destination, writer.frames / rate, rate)
