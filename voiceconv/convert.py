"""The one conversion path: waveform -> WORLD pitch alignment -> log-mel image -> generator -> image
-> Griffin-Lim -> waveform.

Pitch is converted by formula before the image is made (:mod:`voiceconv.audio.world`:
log-Gaussian F0 transform and an envelope warp, both stored in the model
file), so the generator only learns what a formula cannot. ``pitch`` on
every conversion method overrides the model's F0 transform: ``"auto"`` (the
model's), ``"source"`` (the speaker's own pitch) or ``"+N"`` / ``"-N"``
semitones; see :func:`parse_pitch`.

The Python API, the CLI (single files and batches), evaluation, the web page
and the training loop's validation media all go through :func:`convert_image`
and :class:`Converter`.

Long audio is converted in windows: each window keeps ``window_seconds`` of
output, sees ``context_seconds`` more input on each side (so the generator
and Griffin-Lim never work at a cut), and meets its neighbour in a
``crossfade_seconds`` raised-cosine cross-fade. Memory is bounded by two
windows whatever the input length (the next one is pitch-aligned while one
converts), and each window's loudness is matched to its input's (BS.1770),
so output loudness follows the input.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from voiceconv.audio.features import FeatureConfig, MelImageEncoder
from voiceconv.audio.io import SILENCE_PEAK_DBFS, audio_writer, loudness, prepare_waveform, stream_audio
from voiceconv.errors import EmptyAudioError, SilentAudioError, TooShortError
from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, GriffinLimVocoder
from voiceconv.audio.world import Alignment, Pitch, PitchStats, change_voice, parse_pitch
from voiceconv.data.speakers import SpeakerStats
from voiceconv.errors import VoiceconvError
from voiceconv.modelcheck import check_output, load_voice_model
from voiceconv.modelfile import ModelFileError, prefixed
from voiceconv.models.cyclegan import apply_generator, build_image_generator

Direction = Literal["a2b", "b2a"]
Item, Result = TypeVar("Item"), TypeVar("Result")
SIZE_MULTIPLE = 4  # the generators downsample twice by 2
MAX_GAIN_DB = 24.0  # loudness matching never amplifies or attenuates a window by more than this
# Refining the aligned input's STFT: 8 iterations scored within 0.02 DNSMOS and 0.03 dB MCD of 32 on Kathleen -> rms
# (8 held-out sentences), at a quarter of the vocoder's time.
REFINE_ITERATIONS = 8


def convert_image(generate: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                  source: SpeakerStats, target: SpeakerStats) -> torch.Tensor:
    """Convert a log-mel image ``[1, n_mels, T]`` in [-1, 1] to the target speaker's ``[1, n_mels, T]`` in [-1, 1].

    Normalizes with the source speaker's statistics, pads the width to a
    multiple of 4 (edge frames repeated), runs ``generate`` on ``[1, 1, n_mels, T']``,
    crops, and maps back with the target speaker's statistics.
    """
    frames = image.shape[-1]
    pad = (-frames) % SIZE_MULTIPLE
    normalized = source.normalize(image)[None]  # [1, 1, n_mels, T]
    normalized = F.pad(normalized, (0, pad, 0, 0), mode="replicate")
    converted = generate(normalized)[0, :, :, :frames]  # [1, n_mels, T]
    return target.denormalize(converted).clamp(-1.0, 1.0)


def vocoder_for(features: FeatureConfig, refine: bool, n_iter: int | None = None,
                device: torch.device | str = "cpu") -> GriffinLimVocoder:
    """The vocoder conversion uses: ``n_iter`` Griffin-Lim iterations, by default :data:`REFINE_ITERATIONS` when
    refining a pitch-aligned input's STFT (it starts consistent) and :data:`DEFAULT_ITERATIONS` otherwise."""
    default = REFINE_ITERATIONS if refine else DEFAULT_ITERATIONS
    return GriffinLimVocoder(features, n_iter=default if n_iter is None else n_iter, device=device)


def vocode(vocoder: GriffinLimVocoder, converted: torch.Tensor, input_image: torch.Tensor, input_wav: torch.Tensor,
           refine: bool) -> torch.Tensor:
    """Waveform ``[1, samples]`` of a converted image ``[1, n_mels, T]``. A pitch-aligned model's output is a
    change of its input (``input_image`` of ``input_wav``), applied to the input's own STFT (``refine``); other
    models' images go through the mel pseudo-inverse, with Griffin-Lim seeded by the input's phase either way."""
    if refine:
        return vocoder.refine(converted, input_image, input_wav)
    return vocoder(converted, reference=input_wav)


@dataclass(frozen=True)
class ConversionResult:
    """What :meth:`Converter.convert_file` did."""

    source: Path
    destination: Path
    seconds: float  # input duration
    sample_rate: int  # of the written file


class Converter:
    """A loaded voice model: converts waveforms and files of any length between its two speakers."""

    def __init__(self, model_path: str | Path, device: str = "cpu", n_iter: int | None = None,
                 window_seconds: float = 10.0, context_seconds: float = 0.5, crossfade_seconds: float = 0.25):
        model = load_voice_model(model_path)  # every header field and tensor checked: see voiceconv.modelcheck
        tensors, header = model.tensors, model.header
        self.path, self.header, self.device = Path(model_path), header, torch.device(device)
        self.features, config = model.features, model.config
        self.mask_frames = config.mask_frames
        in_ch = 2 if config.mask_frames else 1
        self.generators = {}
        for direction, name in (("a2b", "G_AB"), ("b2a", "G_BA")):
            net = build_image_generator(config, in_ch, 1, self.features.n_mels)
            net.load_state_dict(prefixed(tensors, name))
            self.generators[direction] = net.to(self.device).eval()
        self.stats = {side: SpeakerStats(**prefixed(tensors, f"stats.{side}")).to(self.device) for side in "ab"}
        self.alignments = model_alignments(header, model_path)  # {direction: Alignment} or {} for models from before alignment
        # What each direction's generator normalizes its (aligned) input with: the aligned corpus's statistics.
        self.input_stats = {direction: (SpeakerStats(**prefixed(tensors, f"stats.{direction}")).to(self.device)
                                        if f"stats.{direction}.mean" in tensors else self.stats[direction[0]])
                            for direction in ("a2b", "b2a")}
        self.encoder = MelImageEncoder(self.features, self.device)
        self.vocoder = vocoder_for(self.features, bool(self.alignments), n_iter, self.device)
        self.windows = WindowPlan.from_seconds(self.features, window_seconds, context_seconds, crossfade_seconds)

    @property
    def speakers(self) -> dict[str, str]:
        return {side: self.header["speakers"][side]["name"] for side in "ab"}

    @torch.inference_mode()
    def convert_image(self, image: torch.Tensor, direction: Direction = "a2b") -> torch.Tensor:
        """Log-mel image ``[1, n_mels, T]`` of one speaker (aligned to the other, see :meth:`align`) -> the other
        speaker's image."""
        target = "b" if _check_direction(direction) == "a2b" else "a"
        net = self.generators[direction]
        return convert_image(lambda x: apply_generator(net, x, self.mask_frames), image.to(self.device),
                             self.input_stats[direction], self.stats[target])

    def alignment(self, direction: Direction = "a2b", pitch: Pitch = "auto") -> Alignment | None:
        """The WORLD alignment applied to input of ``direction`` (None: none at all) under the ``pitch`` setting."""
        shift = parse_pitch(pitch)
        aligned = self.alignments.get(_check_direction(direction))
        if aligned is None:  # a model from before alignment: its generator moves the pitch itself
            return None if shift is None else Alignment(PitchStats(0.0, 1.0), PitchStats(0.0, 1.0), 1.0, shift)
        return aligned.with_pitch(shift)

    def convert(self, wav: np.ndarray, sample_rate: int, direction: Direction = "a2b",
                pitch: Pitch = "auto") -> np.ndarray:
        """Mono waveform ``[samples]`` at ``sample_rate`` -> converted waveform at the model's sample rate."""
        wav = np.concatenate(list(_resample_stream([np.asarray(wav, dtype=np.float32)], sample_rate,
                                                   self.features.sample_rate)))
        wav = prepare_waveform(wav, self.features.sample_rate, min_seconds=self.minimum_seconds)
        return np.concatenate(list(self.convert_stream([wav], direction, pitch=pitch)))

    def convert_stream(self, blocks: Iterable[np.ndarray], direction: Direction = "a2b",
                       name: str = "<waveform>", pitch: Pitch = "auto") -> Iterator[np.ndarray]:
        """Mono blocks at the model's sample rate -> converted blocks, in memory bounded by two windows.

        Input is consumed lazily; raises :class:`AudioError` (naming ``name``)
        for input that is empty, too short or silent.
        """
        alignment = self.alignment(direction, pitch)  # checks direction and pitch before reading anything
        plan, previous_tail = self.windows, None  # previous_tail: the last window's output over the next cross-fade
        windows = self._windows(_WindowReader(blocks), name)
        with ThreadPoolExecutor(1, thread_name_prefix="voiceconv-world") as pool:
            # WORLD releases the GIL: the next window is aligned on one core while this one is converted.
            align = partial(self._align_segment, alignment=alignment)
            for (index, start, segment, is_last), aligned in _one_ahead(pool, windows, align):
                output = self._convert_segment(segment, aligned, direction)  # [len(segment)]
                emit_from = 0 if index == 0 else plan.fade_start(index) - start
                emit_to = len(segment) if is_last else plan.fade_start(index + 1) - start
                block = output[emit_from:emit_to].copy()
                if previous_tail is not None:
                    block[: plan.crossfade] = block[: plan.crossfade] * plan.fade_in + previous_tail * plan.fade_out
                yield block
                previous_tail = output[emit_to : emit_to + plan.crossfade]

    def _windows(self, reader: _WindowReader, name: str) -> Iterator[tuple[int, int, np.ndarray, bool]]:
        """``(index, start sample, input span, is_last)`` of each window of the plan, read lazily."""
        for index in itertools.count():
            start, wanted_end = self.windows.segment(index)
            segment, is_last = reader.read(start, wanted_end)
            if is_last:
                self._check_input(reader, name)
            yield index, start, segment, is_last
            if is_last:
                return

    def _align_segment(self, window: tuple[int, int, np.ndarray, bool], alignment: Alignment | None) -> np.ndarray:
        segment = window[2]
        return segment if alignment is None else change_voice(segment, self.features.sample_rate, alignment)

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
        converted = _resample_stream(self.convert_stream(blocks, direction, name=str(source), pitch=pitch),
                                     self.features.sample_rate, rate)
        with audio_writer(destination, rate) as writer:
            for block in converted:
                writer.write(block)
        return ConversionResult(source, destination, writer.frames / rate, rate)

    @property
    def minimum_seconds(self) -> float:
        """Shortest input that can be converted: one STFT window."""
        return self.features.n_fft / self.features.sample_rate

    @torch.inference_mode()
    def _convert_segment(self, wav: np.ndarray, aligned: np.ndarray, direction: Direction) -> np.ndarray:
        """One window ``[samples]`` and its pitch-aligned version -> converted ``[samples]``, loudness matched to
        the input."""
        source = torch.from_numpy(aligned).to(self.device)  # also seeds Griffin-Lim's phase: harmonics at the new pitch
        image = self.encoder(source)  # [1, n_mels, T]
        converted = self.convert_image(image, direction)
        reference = source[None, : self.features.samples_for(image.shape[-1])]
        out = vocode(self.vocoder, converted, image, reference, refine=bool(self.alignments))
        out = out[0].cpu().numpy()  # [(T-1) * hop]
        out = np.pad(out, (0, len(wav) - len(out)))
        return check_output(self.path, out * _matching_gain(wav, out, self.features.sample_rate))

    def _check_input(self, reader: _WindowReader, name: str) -> None:
        rate = self.features.sample_rate
        if reader.total == 0:
            raise EmptyAudioError(name, "contains no audio samples", "record or export it again")
        if reader.total < self.minimum_seconds * rate:
            raise TooShortError(name, f"is {reader.total / rate:.3f} s long, at least {self.minimum_seconds} s of "
                                      "sound is needed", "use a longer recording")
        if reader.peak < 10 ** (SILENCE_PEAK_DBFS / 20):
            raise SilentAudioError(name, f"is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS)",
                                   "check the microphone or the file's volume")


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a long conversion start and end, in samples (all multiples of the hop).

    Window ``k`` keeps output ``[k*hop_w, (k+1)*hop_w)`` (give or take half a
    cross-fade) and converts input ``[k*hop_w - margin, (k+1)*hop_w + margin)``.
    """

    stride: int  # kept samples per window
    margin: int  # context on each side, including half the cross-fade
    crossfade: int
    fade_in: np.ndarray  # [crossfade] raised cosine 0 -> 1; fade_out = 1 - fade_in
    fade_out: np.ndarray

    @classmethod
    def from_seconds(cls, features: FeatureConfig, window: float, context: float, crossfade: float) -> WindowPlan:
        hop, rate = features.hop_length, features.sample_rate
        hops = lambda seconds: max(1, round(seconds * rate / hop)) * hop  # noqa: E731
        fade = hops(crossfade)
        context = max(context, features.n_fft / rate)  # every window holds at least one STFT frame of context
        if window < 2 * crossfade:
            raise VoiceconvError(f"window_seconds ({window}) must be at least twice crossfade_seconds ({crossfade})")
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
        return cls(stride=hops(window), margin=hops(context) + fade // 2, crossfade=fade, fade_in=ramp,
                   fade_out=1.0 - ramp)

    def segment(self, index: int) -> tuple[int, int]:
        """Input span ``[start, end)`` that window ``index`` converts (``end`` may pass the input's end)."""
        return max(0, index * self.stride - self.margin), (index + 1) * self.stride + self.margin

    def fade_start(self, index: int) -> int:
        """First sample of the cross-fade into window ``index`` (``index`` >= 1)."""
        return index * self.stride - self.crossfade // 2


class _WindowReader:
    """Serves spans ``[start, end)`` of a block stream, forgetting what lies before ``start``."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.blocks = iter(blocks)
        self.buffer, self.buffer_start = np.zeros(0, np.float32), 0
        self.total, self.peak, self.finished = 0, 0.0, False

    def read(self, start: int, end: int) -> tuple[np.ndarray, bool]:
        """Samples ``[start, min(end, input end))`` and whether they reach the input's end."""
        while not self.finished and self.buffer_start + len(self.buffer) <= end:  # one sample past end: is there more?
            block = next(self.blocks, None)
            if block is None:
                self.finished = True
                break
            block = np.asarray(block, dtype=np.float32)
            self.total += len(block)
            self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
            self.buffer = np.concatenate([self.buffer[start - self.buffer_start :], block])
            self.buffer_start = start
        span = self.buffer[start - self.buffer_start : end - self.buffer_start]
        return span, self.finished and self.buffer_start + len(self.buffer) <= end


def _one_ahead(pool: ThreadPoolExecutor, items: Iterable[Item], work: Callable[[Item], Result]
               ) -> Iterator[tuple[Item, Result]]:
    """``(item, work(item))`` in order, with ``work`` on the next item already running in ``pool``."""
    pending = None
    for item in items:
        future = pool.submit(work, item)
        if pending is not None:
            yield pending[0], pending[1].result()
        pending = (item, future)
    if pending is not None:
        yield pending[0], pending[1].result()


def _matching_gain(source: np.ndarray, converted: np.ndarray, sample_rate: int) -> float:
    """Gain that gives ``converted`` the loudness of ``source`` (BS.1770), within +-MAX_GAIN_DB."""
    if not np.any(converted) or not np.any(source):
        return 1.0
    difference = loudness(source, sample_rate) - loudness(converted, sample_rate)
    return float(10 ** (np.clip(difference, -MAX_GAIN_DB, MAX_GAIN_DB) / 20))


def _resample_stream(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int) -> Iterator[np.ndarray]:
    """Resample a block stream with soxr (a no-op when the rates match)."""
    if rate_in == rate_out:
        yield from blocks
        return
    import soxr

    resampler = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")
    for block in blocks:
        yield resampler.resample_chunk(block)
    yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def model_alignments(header: dict, path: str | Path = "model") -> dict[str, Alignment]:
    """The per-direction WORLD alignments a model file carries (``{}`` for files from before alignment)."""
    stored = header.get("alignment")
    if stored is None:
        return {}
    try:
        a2b = Alignment.from_dict(stored)
        for stats in (a2b.source, a2b.target):
            if not (math.isfinite(stats.log_f0_mean) and math.isfinite(stats.log_f0_std) and stats.log_f0_std > 0):
                raise ValueError("log-F0 statistics must be finite, with a positive standard deviation")
        if not (math.isfinite(a2b.warp) and 0.5 <= a2b.warp <= 2.0):
            raise ValueError(f"warp {a2b.warp} is outside [0.5, 2]")
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: damaged 'alignment' field in the model header ({err})") from None
    return {"a2b": a2b, "b2a": a2b.reverse()}


def _check_direction(direction: str) -> str:
    if direction not in ("a2b", "b2a"):
        raise VoiceconvError(f"direction must be 'a2b' or 'b2a', got {direction!r}")
    return direction
