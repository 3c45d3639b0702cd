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

Every stage keeps its state between blocks (:class:`ConversionStream`), so the
same path also converts audio as it arrives: ``Converter.open_stream`` takes
blocks with ``push`` and returns what is ready so far. A stream and a file cut
with the same :class:`Windowing` give the same samples (bit for bit); live
streams use :data:`LIVE_WINDOWING`, whose short windows and chunks hold back
about half a second.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from voiceconv.audio.features import FeatureConfig, MelImageEncoder, SpeakerStats
from voiceconv.audio.io import SILENCE_PEAK_DBFS, audio_writer, loudness, prepare_waveform, stream_audio
from voiceconv.errors import EmptyAudioError, NonFiniteAudioError, SilentAudioError, TooShortError
from voiceconv.audio.vocoder import DEFAULT_ITERATIONS, GriffinLimVocoder
from voiceconv.audio.world import Alignment, Pitch, PitchStats, WorldSettings, change_voice, parse_pitch
from voiceconv.errors import VoiceconvError
from voiceconv.modelcheck import check_output, load_voice_model
from voiceconv.modelfile import ModelFileError
from voiceconv.models.cyclegan import apply_generator, build_image_generator, checked_direction
from voiceconv.models.voice_model import ALIGNED_INPUTS, GENERATORS, SPEAKERS, generator_weights, read_stats

Direction = Literal["a2b", "b2a"]
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
                 window_seconds: float = 10.0, context_seconds: float = 0.5, crossfade_seconds: float = 0.25,
                 align_chunk_seconds: float | None = None, world: WorldSettings | None = None):
        """``world``: analyse the input with these WORLD settings instead of the ones the model file stores (its
        fitted F0 statistics and warp kept), e.g. :data:`~voiceconv.audio.world.DEFAULT_SETTINGS`' coarser
        analysis for a model trained before it; None (the default) converts exactly as the model was trained."""
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
        if world is not None:
            self.alignments = {d: replace(a, settings=world.check()) for d, a in self.alignments.items()}
        # What each direction's generator normalizes its (aligned) input with: the aligned corpus's statistics.
        self.input_stats = {direction: (read_stats(tensors, direction) or self.stats[direction[0]]).to(self.device)
                            for direction in ALIGNED_INPUTS}
        self.encoder = MelImageEncoder(self.features, self.device)
        self.vocoder = vocoder_for(self.features, bool(self.alignments), n_iter, self.device)
        self.windowing = Windowing(window_seconds, context_seconds, crossfade_seconds, align_chunk_seconds)
        self.windows, self.chunks = self.windowing.plan(self.features)  # checks the lengths

    @property
    def speakers(self) -> dict[str, str]:
        return {side: self.header["speakers"][side]["name"] for side in "ab"}

    @torch.inference_mode()
    def convert_image(self, image: torch.Tensor, direction: Direction = "a2b") -> torch.Tensor:
        """Log-mel image ``[1, n_mels, T]`` of one speaker (aligned to the other, see :meth:`align`) -> the other
        speaker's image."""
        target = "b" if checked_direction(direction) == "a2b" else "a"
        net = self.generators[direction]
        return convert_image(lambda x: apply_generator(net, x, self.mask_frames), image.to(self.device),
                             self.input_stats[direction], self.stats[target])

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
        wav = np.concatenate(list(_resample_stream([np.asarray(wav, dtype=np.float32)], sample_rate,
                                                   self.features.sample_rate)))
        wav = prepare_waveform(wav, self.features.sample_rate, min_seconds=self.minimum_seconds)
        return np.concatenate(list(self.convert_stream([wav], direction, pitch=pitch, windowing=windowing)))

    def convert_stream(self, blocks: Iterable[np.ndarray], direction: Direction = "a2b",
                       name: str = "<waveform>", pitch: Pitch = "auto",
                       windowing: Windowing | None = None) -> Iterator[np.ndarray]:
        """Mono blocks at the model's sample rate -> converted blocks, in memory bounded by a few windows.

        Input is consumed lazily; raises :class:`AudioError` (naming ``name``)
        for input that is empty, too short or silent. The next window's WORLD
        chunks are aligned on a second thread while the current window converts.
        """
        windowing = windowing or self.windowing
        chunks = windowing.plan(self.features)[1]
        with ThreadPoolExecutor(1, thread_name_prefix="voiceconv-world") as pool:
            stream = self.open_stream(self.features.sample_rate, direction, pitch, windowing, name, pool, chunks.ahead)
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

        ``windowing`` defaults to :data:`LIVE_WINDOWING` (short windows, little delay). Everything the stream
        returns, joined, equals :meth:`convert` of the whole input with the same ``windowing``.
        ``pool`` and ``ahead``: WORLD-align up to ``ahead`` chunks in ``pool`` while windows convert (more
        throughput, more delay); by default each chunk is aligned as soon as it is cut, on the caller's thread.
        """
        alignment = self.alignment(direction, pitch)  # checks direction and pitch before anything is pushed
        return ConversionStream(self, sample_rate, direction, alignment, windowing or LIVE_WINDOWING, name,
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

    def _check_input(self, reader: _WindowCutter, name: str) -> None:
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
class Windowing:
    """How a conversion cuts its input, in seconds (rounded to whole hops when used).

    Each window keeps ``window`` seconds of output, converts ``context`` more
    input on each side and meets its neighbour in a ``crossfade``; WORLD
    aligns the input in chunks of about ``align_chunk`` seconds (``None``: half
    a window, at least 1 s) cut at quiet moments, each seeing
    ``align_context`` seconds past its cuts. A stream cut this way holds back
    at most :meth:`max_held_back_seconds`, about ``window + context +
    crossfade + align_chunk + align_context``.
    """

    window: float = 10.0
    context: float = 0.5
    crossfade: float = 0.25
    align_chunk: float | None = None
    align_context: float = 0.2

    def plan(self, features: FeatureConfig) -> tuple[WindowPlan, QuietChunks]:
        """The windows and WORLD chunks in samples at ``features.sample_rate``."""
        windows = WindowPlan.from_seconds(features, self.window, self.context, self.crossfade)
        return windows, QuietChunks.for_windows(windows, features.sample_rate, self.align_chunk, self.align_context)

    def max_held_back_seconds(self, features: FeatureConfig) -> float:
        """The most audio a stream cut this way has taken in but not yet returned (at ``features.sample_rate``; add
        the block being filled and, when the stream resamples, soxr's few milliseconds). A window's first sample
        waits for the window's end, its right context and half its cross-fade; the last of those waits for the
        WORLD chunk holding it to be cut: a chunk's length and context past where it starts, plus half the
        chunks' cross-fade."""
        windows, chunks = self.plan(features)
        window_wait = windows.stride + windows.margin + windows.crossfade // 2 + 1  # one sample past: not the last
        chunk_wait = chunks.length + chunks.context + len(chunks.fade_in) // 2
        return (window_wait + chunk_wait) / features.sample_rate


FILE_WINDOWING = Windowing()
# Live conversion: 0.16-s windows with 64 ms of context (one STFT window at 16 kHz), WORLD chunks of 0.1-0.2 s with
# 80 ms of context.
# Chosen with benchmarks/live_latency.py on 2 cores: it holds back 0.46 s (median, 100-ms blocks; 0.66 s at most) at a
# compute real-time factor near 0.2; its output is 2.7 dB (mean log-mel) from FILE_WINDOWING's, where 3-s windows are
# 2.4 dB from it and the same windows with 50 ms of WORLD context 2.85 dB.
LIVE_WINDOWING = Windowing(window=0.128, context=0.064, crossfade=0.048, align_chunk=0.2, align_context=0.08)


class ConversionStream:
    """A conversion fed as the audio arrives (made by :meth:`Converter.open_stream`).

    :meth:`push` takes a block ``[n]`` at the input's rate and returns the
    converted audio ready so far (possibly empty) at the model's rate;
    :meth:`finish` returns the rest. Each stage of the file conversion keeps
    its state between pushes (resampler, WORLD chunks cut at quiet moments,
    windows with context, cross-fades, loudness matching per window), so
    whatever the block sizes, the pushes' and finish's outputs joined are the
    samples :meth:`Converter.convert` gives the whole input with the same
    :class:`Windowing`. Not safe to share between threads; one stream per
    speaker.
    """

    def __init__(self, converter: Converter, sample_rate: int, direction: Direction, alignment: Alignment | None,
                 windowing: Windowing, name: str = "<stream>", pool: ThreadPoolExecutor | None = None,
                 ahead: int = 0):
        rate = converter.features.sample_rate
        windows, chunks = windowing.plan(converter.features)
        self.converter, self.direction, self.name, self.windowing = converter, direction, name, windowing
        self.input_rate, self.sample_rate = int(sample_rate), rate
        self.samples_in = self.samples_out = 0  # pushed (at input_rate), returned (at sample_rate)
        self.finished = False
        self._resampler = _Resampler(self.input_rate, rate)
        self._aligner = _Aligner(alignment, chunks, rate, converter.features.n_fft, pool, ahead)
        self._windows = _WindowCutter(windows)
        self._joiner = _CrossfadeJoiner(windows.fade_in)

    @property
    def held_back_seconds(self) -> float:
        """Audio pushed but not yet returned: the delay the windows and chunks add, in seconds."""
        return self.samples_in / self.input_rate - self.samples_out / self.sample_rate

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add mono samples ``[n]`` (float, at the stream's input rate); returns converted ``[m]``, maybe ``m = 0``."""
        block = self._checked(block)
        self.samples_in += len(block)
        return self._run([self._resampler.push(block)], last=False)

    def finish(self) -> np.ndarray:
        """The end of the input: returns the rest of the converted audio. Raises :class:`AudioError` when the
        whole stream was empty, shorter than :attr:`Converter.minimum_seconds` or silent, as :meth:`Converter.convert`
        does."""
        self._check_open()
        return self._run([self._resampler.finish()], last=True)

    def _run(self, blocks: list[np.ndarray], last: bool) -> np.ndarray:
        self.finished = True  # until this push completes: a stream that raised takes nothing more
        pieces = []
        for start, segment, kept, is_last in self._windows.feed(self._aligner.feed(blocks, last), last):
            if is_last:
                self.converter._check_input(self._windows, self.name)
            converted = self.converter._convert_segment(segment[:, 0], segment[:, 1], self.direction)  # [n]
            pieces.append(self._joiner.add((start, converted, kept, is_last)))
        self.finished = last
        out = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        self.samples_out += len(out)
        return out

    def _checked(self, block: np.ndarray) -> np.ndarray:
        self._check_open()
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 1:
            raise VoiceconvError(f"{self.name}: expected a mono block [samples], got shape {block.shape}")
        if not np.isfinite(block).all():
            self.finished = True
            raise NonFiniteAudioError(self.name, "contains NaN or infinite samples", "check the audio source")
        return block

    def _check_open(self) -> None:
        if self.finished:
            raise VoiceconvError(f"{self.name}: the stream is finished (or failed); open a new one")


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
    def for_windows(cls, windows: WindowPlan, sample_rate: int, length_seconds: float | None = None,
                    context_seconds: float = 0.2) -> QuietChunks:
        """Chunks of ``length_seconds`` (default: half a conversion window, at least 1 s), the cut anywhere in
        the chunk's second half, ``context_seconds`` of context, 10 ms frames, a 20 ms cross-fade, and a
        window's worth of chunks aligned ahead."""
        frame, fade = round(0.01 * sample_rate), round(0.02 * sample_rate)
        if length_seconds is None:
            length = max(windows.stride // 2, sample_rate)
        else:
            length = round(length_seconds * sample_rate)
        context = round(context_seconds * sample_rate)
        if length < 4 * frame or context < fade:
            raise VoiceconvError(f"WORLD chunks must be at least {4 * frame / sample_rate} s long "
                                 f"(got {length_seconds}) with at least {fade / sample_rate} s of context "
                                 f"(got {context_seconds})")
        return cls(length=length, search=length // 2, context=context, frame=frame, fade_in=_raised_cosine(fade),
                   ahead=-(-windows.stride // length) + 1)

    def split(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray, tuple[int, int], bool]]:
        """``(offset, samples, (cut before, cut after), is_last)`` per chunk, read lazily: ``samples[i]`` is input
        sample ``offset + i``, the chunk owns input ``[cut before, cut after)`` and its samples reach
        ``context`` beyond each cut (less at the input's ends)."""
        cutter = _QuietCutter(self)
        for block in blocks:
            yield from cutter.push(block)
        yield from cutter.finish()

    def quietest(self, buffer: np.ndarray, search_from: int) -> int:
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


Piece = tuple[int, np.ndarray, tuple[int, int], bool]  # (offset, samples, (kept from, kept to), is_last)


class _QuietCutter:
    """:meth:`QuietChunks.split` one block at a time: ``buffer[i]`` is input sample ``offset + i``, and the
    next chunk owns input from ``start``."""

    def __init__(self, chunks: QuietChunks):
        self.chunks = chunks
        self.buffer, self.offset, self.start = np.zeros(0, np.float32), 0, 0

    def push(self, block: np.ndarray) -> list[Piece]:
        """The chunks that ``block`` completes (each reaching ``context`` past its cut)."""
        chunks, cut_chunks = self.chunks, []
        self.buffer = np.concatenate([self.buffer, np.asarray(block, dtype=np.float32)])
        while self.offset + len(self.buffer) >= self.start + chunks.length + chunks.context:
            search_from = self.start + chunks.length - chunks.search - self.offset
            cut = chunks.quietest(self.buffer, search_from) + self.offset
            cut_chunks.append((self.offset, self.buffer[: cut + chunks.context - self.offset], (self.start, cut), False))
            self.start, keep_from = cut, max(0, cut - chunks.context)
            self.buffer, self.offset = self.buffer[keep_from - self.offset :], keep_from
        return cut_chunks

    def finish(self) -> list[Piece]:
        """The last chunk (none at all for empty input)."""
        if self.offset + len(self.buffer) > self.start:
            return [(self.offset, self.buffer, (self.start, self.offset + len(self.buffer)), True)]
        return []


class _Aligner:
    """Mono blocks -> blocks ``[n, 2]``: the input (column 0) beside its WORLD-aligned version (column 1).

    WORLD's synthesis is only continuous within one call, so the input is
    aligned in chunks cut at its quietest moments (:class:`QuietChunks`), each
    with context on both sides, joined in a short cross-fade there. With a
    ``pool``, up to ``ahead`` chunks are aligned there while the caller uses
    the earlier ones (pyworld releases the GIL).
    """

    def __init__(self, alignment: Alignment | None, chunks: QuietChunks, sample_rate: int, n_fft: int,
                 pool: ThreadPoolExecutor | None, ahead: int):
        self.alignment, self.sample_rate, self.n_fft = alignment, sample_rate, n_fft
        self.cutter, self.joiner = _QuietCutter(chunks), _CrossfadeJoiner(chunks.fade_in)
        self.pool, self.ahead = pool, ahead if pool is not None else 0
        self.pending: collections.deque[Future] = collections.deque()  # chunks being aligned, in order

    @property
    def is_identity(self) -> bool:
        return self.alignment is None or self.alignment.is_identity

    def feed(self, blocks: Iterable[np.ndarray], last: bool) -> Iterator[np.ndarray]:
        """The paired blocks ``[n, 2]`` that ``blocks`` complete (all the rest when ``last``), lazily."""
        if self.is_identity:
            for block in blocks:
                yield np.stack([block, block], axis=1)
            return
        for chunk in self._chunks(blocks, last):
            self.pending.append(self._start(chunk))
            while len(self.pending) > self.ahead:
                yield self.joiner.add(self.pending.popleft().result())
        while last and self.pending:
            yield self.joiner.add(self.pending.popleft().result())

    def _chunks(self, blocks: Iterable[np.ndarray], last: bool) -> Iterator[Piece]:
        for block in blocks:
            yield from self.cutter.push(block)
        if last:
            yield from self.cutter.finish()

    def _start(self, chunk: Piece) -> Future:
        if self.pool is not None:
            return self.pool.submit(self._align, chunk)
        done: Future = Future()
        done.set_result(self._align(chunk))
        return done

    def _align(self, chunk: Piece) -> Piece:
        start, wav, boundaries, is_last = chunk
        too_short = len(wav) < self.n_fft  # refused later, when the whole input is known
        aligned = wav if too_short else change_voice(wav, self.sample_rate, self.alignment)
        return start, np.stack([wav, aligned], axis=1), boundaries, is_last


class _WindowCutter:
    """Cuts a stream of ``[n, 2]`` blocks (input beside aligned input) into the windows of a :class:`WindowPlan`,
    forgetting what lies before the next window; it tracks the input's length and peak."""

    def __init__(self, plan: WindowPlan):
        self.plan, self.index = plan, 0
        self.buffer, self.buffer_start = np.zeros((0, 2), np.float32), 0  # buffer[i] is stream sample buffer_start + i
        self.total, self.peak = 0, 0.0

    def feed(self, blocks: Iterable[np.ndarray], last: bool) -> Iterator[Piece]:
        """``(start sample, input span [n, 2], (kept from, kept to), is_last)`` of each window that ``blocks``
        complete; when ``last``, the rest, down to the one that reaches the input's end."""
        for block in blocks:
            self._append(block)
            while self.total > self.plan.segment(self.index)[1]:  # a sample past its end: not the last
                yield self._next_window(is_last=False)
        while last:
            is_last = self.total <= self.plan.segment(self.index)[1]
            yield self._next_window(is_last)
            last = not is_last

    def _append(self, block: np.ndarray) -> None:
        self.total += len(block)
        self.peak = max(self.peak, float(np.abs(block[:, 0]).max(initial=0.0)))
        self.buffer = np.concatenate([self.buffer, block])

    def _next_window(self, is_last: bool) -> Piece:
        start, end = self.plan.segment(self.index)
        span = self.buffer[start - self.buffer_start : end - self.buffer_start]
        kept = (self.index * self.plan.stride, (self.index + 1) * self.plan.stride)
        self.index += 1
        next_start = self.plan.segment(self.index)[0]
        self.buffer, self.buffer_start = self.buffer[next_start - self.buffer_start :], next_start
        return start, span, kept, is_last


class _CrossfadeJoiner:
    """:func:`join_crossfaded` one piece at a time; it keeps the last piece's part under the next cross-fade."""

    def __init__(self, fade_in: np.ndarray):
        self.fade_in, self.previous_tail = fade_in, None

    def add(self, piece: Piece) -> np.ndarray:
        """The stream samples that ``piece`` completes."""
        offset, samples, (kept_from, kept_to), is_last = piece
        half = len(self.fade_in) // 2
        ramp = self.fade_in if samples.ndim == 1 else self.fade_in[:, None]
        emit_from = kept_from - offset - (0 if self.previous_tail is None else half)
        emit_to = len(samples) if is_last else kept_to - half - offset
        block = samples[emit_from:emit_to].copy()
        if self.previous_tail is not None:
            block[: len(ramp)] = block[: len(ramp)] * ramp + self.previous_tail * (1.0 - ramp)
        self.previous_tail = samples[emit_to : emit_to + len(ramp)]
        return block


def join_crossfaded(pieces: Iterable[Piece], fade_in: np.ndarray) -> Iterator[np.ndarray]:
    """One stream from overlapping pieces ``(offset, samples, (kept from, kept to), is_last)``, where
    ``samples[i]`` is stream sample ``offset + i`` (mono, or ``[n, channels]``). Each piece gives its kept span,
    and neighbours meet in a raised-cosine cross-fade of ``len(fade_in)`` samples centred on their boundary,
    so every piece but the last must reach half a fade past its kept span."""
    joiner = _CrossfadeJoiner(fade_in)
    for piece in pieces:
        yield joiner.add(piece)


class _Resampler:
    """Block-by-block resampling with soxr (a no-op when the rates match); soxr's streaming output does not
    depend on how the input is cut into blocks."""

    def __init__(self, rate_in: int, rate_out: int):
        if rate_in != rate_out:
            import soxr

            self.soxr = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")
        else:
            self.soxr = None

    def push(self, block: np.ndarray) -> np.ndarray:
        return block if self.soxr is None else self.soxr.resample_chunk(block)

    def finish(self) -> np.ndarray:
        empty = np.zeros(0, np.float32)
        return empty if self.soxr is None else self.soxr.resample_chunk(empty, last=True)


def _raised_cosine(length: int) -> np.ndarray:
    """A fade-in ``[length]`` from 0 to 1 (its complement is the matching fade-out)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)).astype(np.float32)


def _matching_gain(source: np.ndarray, converted: np.ndarray, sample_rate: int) -> float:
    """Gain that gives ``converted`` the loudness of ``source`` (BS.1770), within +-MAX_GAIN_DB."""
    if not np.any(converted) or not np.any(source):
        return 1.0
    difference = loudness(source, sample_rate) - loudness(converted, sample_rate)
    return float(10 ** (np.clip(difference, -MAX_GAIN_DB, MAX_GAIN_DB) / 20))


def _resample_stream(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int) -> Iterator[np.ndarray]:
    """Resample a block stream with soxr (a no-op when the rates match)."""
    resampler = _Resampler(rate_in, rate_out)
    for block in blocks:
        yield resampler.push(block)
    yield resampler.finish()


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
