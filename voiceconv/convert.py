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
``crossfade_seconds`` raised-cosine cross-fade, and each window's loudness
is matched to its input's (BS.1770), so output loudness follows the input.

WORLD aligns the input separately, in chunks of half a window cut at the
input's quietest moments (:class:`QuietChunks`): WORLD's synthesis is only
continuous within one call, so chunks meet where there is nothing to be
discontinuous. The chunks of the next window are aligned on one core while
the current window converts; memory is bounded by a few windows whatever the
input length.
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from voiceconv.audio.features import FeatureConfig, MelImageEncoder, SpeakerStats
from voiceconv.audio.io import SILENCE_PEAK_DBFS, audio_writer, loudness, prepare_waveform, stream_audio
from voiceconv.errors import EmptyAudioError, SilentAudioError, TooShortError
from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, GriffinLimVocoder
from voiceconv.audio.world import Alignment, Pitch, PitchStats, change_voice, parse_pitch
from voiceconv.errors import VoiceconvError
from voiceconv.modelcheck import check_output, load_voice_model
from voiceconv.modelfile import ModelFileError
from voiceconv.models.cyclegan import apply_generator, build_image_generator
from voiceconv.models.voice_model import ALIGNED_INPUTS, GENERATORS, SPEAKERS, generator_weights, read_stats

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
        for direction in GENERATORS:
            net = build_image_generator(config, in_ch, 1, self.features.n_mels)
            net.load_state_dict(generator_weights(tensors, direction))
            self.generators[direction] = net.to(self.device).eval()
        self.stats = {side: read_stats(tensors, side).to(self.device) for side in SPEAKERS}
        self.alignments = model_alignments(header, model_path)  # {direction: Alignment} or {} for models from before alignment
        # What each direction's generator normalizes its (aligned) input with: the aligned corpus's statistics.
        self.input_stats = {direction: (read_stats(tensors, direction) or self.stats[direction[0]]).to(self.device)
                            for direction in ALIGNED_INPUTS}
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
        """Mono blocks at the model's sample rate -> converted blocks, in memory bounded by a few windows.

        Input is consumed lazily; raises :class:`AudioError` (naming ``name``)
        for input that is empty, too short or silent.
        """
        alignment = self.alignment(direction, pitch)  # checks direction and pitch before reading anything
        with ThreadPoolExecutor(1, thread_name_prefix="voiceconv-world") as pool:
            paired = self._aligned_stream(blocks, alignment, pool)  # [n, 2]: input beside its aligned version
            pieces = ((start, self._convert_segment(segment[:, 0], segment[:, 1], direction), boundaries, is_last)
                      for start, segment, boundaries, is_last in self._windows(_WindowReader(paired), name))
            yield from join_crossfaded(pieces, self.windows.fade_in)

    def _aligned_stream(self, blocks: Iterable[np.ndarray], alignment: Alignment | None,
                        pool: ThreadPoolExecutor) -> Iterator[np.ndarray]:
        """Blocks ``[n, 2]``: the input (column 0) beside its WORLD-aligned version (column 1), one stream.

        WORLD's synthesis is only continuous within one call, so the input is
        aligned in chunks cut at its quietest moments (:class:`QuietChunks`),
        each with context on both sides, joined in a short cross-fade there.
        The chunks of the next window are aligned in ``pool`` while the current
        one converts (pyworld releases the GIL).
        """
        if alignment is None or alignment.is_identity:
            for block in blocks:
                block = np.asarray(block, dtype=np.float32)
                yield np.stack([block, block], axis=1)
            return
        chunks = QuietChunks.for_windows(self.windows, self.features.sample_rate)
        rate = self.features.sample_rate

        def align(chunk: tuple[int, np.ndarray, tuple[int, int], bool]) -> tuple[int, np.ndarray, tuple[int, int], bool]:
            start, wav, boundaries, is_last = chunk
            aligned = change_voice(wav, rate, alignment) if len(wav) >= self.features.n_fft else wav  # too short: refused later
            return start, np.stack([wav, aligned], axis=1), boundaries, is_last

        aligned = _ahead(pool, chunks.split(blocks), align, depth=chunks.ahead)
        yield from join_crossfaded(aligned, chunks.fade_in)

    def _windows(self, reader: _WindowReader, name: str
                 ) -> Iterator[tuple[int, np.ndarray, tuple[int, int], bool]]:
        """``(start sample, input span [n, 2], (kept from, kept to), is_last)`` of each window of the plan."""
        for index in itertools.count():
            start, wanted_end = self.windows.segment(index)
            segment, is_last = reader.read(start, wanted_end)
            if is_last:
                self._check_input(reader, name)
            yield start, segment, (index * self.windows.stride, (index + 1) * self.windows.stride), is_last
            if is_last:
                return

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
    fade_in: np.ndarray  # [crossfade] raised cosine 0 -> 1

    @classmethod
    def from_seconds(cls, features: FeatureConfig, window: float, context: float, crossfade: float) -> WindowPlan:
        hop, rate = features.hop_length, features.sample_rate
        hops = lambda seconds: max(1, round(seconds * rate / hop)) * hop  # noqa: E731
        fade = hops(crossfade)
        context = max(context, features.n_fft / rate)  # every window holds at least one STFT frame of context
        if window < 2 * crossfade:
            raise VoiceconvError(f"window_seconds ({window}) must be at least twice crossfade_seconds ({crossfade})")
        return cls(stride=hops(window), margin=hops(context) + fade // 2, crossfade=fade, fade_in=_raised_cosine(fade))

    def segment(self, index: int) -> tuple[int, int]:
        """Input span ``[start, end)`` that window ``index`` converts (``end`` may pass the input's end)."""
        return max(0, index * self.stride - self.margin), (index + 1) * self.stride + self.margin


@dataclass(frozen=True)
class QuietChunks:
    """How a stream is cut for WORLD: chunks of about ``length`` samples, each ending at the quietest
    ``frame`` of its last ``search`` samples, with ``context`` samples of the neighbours on each side.

    Neighbouring chunks meet in a ``len(fade_in)``-sample cross-fade centred on the cut, where the speech is
    at its quietest, so their separately synthesized waveforms never have to agree in phase.
    """

    length: int
    search: int
    context: int
    frame: int
    fade_in: np.ndarray  # [fade] raised cosine 0 -> 1
    ahead: int = 1  # chunks aligned ahead of the one being used

    @classmethod
    def for_windows(cls, windows: WindowPlan, sample_rate: int) -> QuietChunks:
        """Half a conversion window per chunk (at least 1 s), the cut anywhere in the chunk's second half, 0.2 s
        of context, 10 ms frames, a 20 ms cross-fade, and a window's worth of chunks aligned ahead."""
        length = max(windows.stride // 2, sample_rate)
        return cls(length=length, search=length // 2, context=round(0.2 * sample_rate), frame=round(0.01 * sample_rate),
                   fade_in=_raised_cosine(round(0.02 * sample_rate)), ahead=-(-windows.stride // length) + 1)

    def split(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray, tuple[int, int], bool]]:
        """``(offset, samples, (cut before, cut after), is_last)`` per chunk, read lazily: ``samples[i]`` is input
        sample ``offset + i``, the chunk owns input ``[cut before, cut after)`` and its samples reach
        ``context`` beyond each cut (less at the input's ends)."""
        buffer, offset, start = np.zeros(0, np.float32), 0, 0  # buffer[i] is input sample offset + i
        for block in blocks:
            buffer = np.concatenate([buffer, np.asarray(block, dtype=np.float32)])
            while offset + len(buffer) >= start + self.length + self.context:
                cut = self._quietest(buffer, start + self.length - self.search - offset) + offset
                yield offset, buffer[: cut + self.context - offset], (start, cut), False
                start, keep_from = cut, max(0, cut - self.context)
                buffer, offset = buffer[keep_from - offset :], keep_from
        if offset + len(buffer) > start:  # nothing at all for empty input
            yield offset, buffer, (start, offset + len(buffer)), True

    def _quietest(self, buffer: np.ndarray, search_from: int) -> int:
        """Index in ``buffer`` of the quietest moment in ``[search_from, search_from + search)``: the middle of the
        frame whose neighbourhood (the cross-fade's length each side) holds the least energy; among equally
        quiet ones (a pause), the middle one."""
        region = buffer[search_from : search_from + self.search]
        frames = len(region) // self.frame
        energy = np.square(region[: frames * self.frame].reshape(frames, self.frame)).sum(axis=1)  # [frames]
        reach = -(-len(self.fade_in) // self.frame)  # frames each side
        nearby = np.convolve(energy, np.ones(2 * reach + 1), mode="same")  # [frames]
        quiet = np.flatnonzero(nearby <= nearby.min() * (1 + 1e-6))
        return search_from + int(quiet[len(quiet) // 2]) * self.frame + self.frame // 2


def join_crossfaded(pieces: Iterable[tuple[int, np.ndarray, tuple[int, int], bool]], fade_in: np.ndarray
                    ) -> Iterator[np.ndarray]:
    """One stream from overlapping pieces ``(offset, samples, (kept from, kept to), is_last)``, where
    ``samples[i]`` is stream sample ``offset + i`` (mono, or ``[n, channels]``). Each piece gives its kept span,
    and neighbours meet in a raised-cosine cross-fade of ``len(fade_in)`` samples centred on their boundary,
    so every piece but the last must reach half a fade past its kept span."""
    half, previous_tail = len(fade_in) // 2, None  # previous_tail: the last piece over the next cross-fade
    for offset, samples, (kept_from, kept_to), is_last in pieces:
        ramp = fade_in if samples.ndim == 1 else fade_in[:, None]
        emit_from = kept_from - offset - (0 if previous_tail is None else half)
        emit_to = len(samples) if is_last else kept_to - half - offset
        block = samples[emit_from:emit_to].copy()
        if previous_tail is not None:
            block[: len(ramp)] = block[: len(ramp)] * ramp + previous_tail * (1.0 - ramp)
        yield block
        previous_tail = samples[emit_to : emit_to + len(ramp)]


class _WindowReader:
    """Serves spans ``[start, end)`` of a stream of ``[n, 2]`` blocks (input beside aligned input), forgetting
    what lies before ``start``; it tracks the input's length and peak."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.blocks = iter(blocks)
        self.buffer, self.buffer_start = np.zeros((0, 2), np.float32), 0
        self.total, self.peak, self.finished = 0, 0.0, False

    def read(self, start: int, end: int) -> tuple[np.ndarray, bool]:
        """Samples ``[start, min(end, input end))`` and whether they reach the input's end."""
        while not self.finished and self.buffer_start + len(self.buffer) <= end:  # one sample past end: is there more?
            block = next(self.blocks, None)
            if block is None:
                self.finished = True
                break
            self.total += len(block)
            self.peak = max(self.peak, float(np.abs(block[:, 0]).max(initial=0.0)))
            self.buffer = np.concatenate([self.buffer[start - self.buffer_start :], block])
            self.buffer_start = start
        span = self.buffer[start - self.buffer_start : end - self.buffer_start]
        return span, self.finished and self.buffer_start + len(self.buffer) <= end


def _raised_cosine(length: int) -> np.ndarray:
    """A fade-in ``[length]`` from 0 to 1 (its complement is the matching fade-out)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)).astype(np.float32)


def _ahead(pool: ThreadPoolExecutor, items: Iterable[Item], work: Callable[[Item], Result], depth: int
           ) -> Iterator[Result]:
    """``work(item)`` for each item in order, with ``work`` on up to ``depth`` later items already running in
    ``pool`` (items are drawn ``depth`` ahead of what the consumer has taken)."""
    pending: collections.deque[Future] = collections.deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) > depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


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
