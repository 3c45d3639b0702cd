"""How a conversion cuts its input: windows with context and cross-fades, and WORLD chunks cut in pauses.

Long audio is converted in windows: each window keeps ``window`` seconds of
output, sees ``context`` more input on each side (so the generator and
Griffin-Lim never work at a cut), and meets its neighbour in a ``crossfade``
raised-cosine cross-fade.

WORLD aligns the input separately, in chunks of half a window cut at the
input's quietest moments (:class:`QuietChunks`): WORLD's synthesis is only
continuous within one call, so chunks meet where there is nothing to be
discontinuous. Live conversion converts each WORLD chunk as its own window
instead (``Windowing(window=None)``): a sample then waits for one cut, not
for a chunk and then a window. The cutters here work one block at a time, so
memory is bounded by a few windows whatever the input length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from voiceconv.audio.features import FeatureConfig
from voiceconv.errors import VoiceconvError

Piece = tuple[int, np.ndarray, tuple[int, int], bool]  # (offset, samples, (kept from, kept to), is_last)
ResamplerKind = Literal["soxr", "sinc"]  # how input at another rate reaches the model's (Windowing.resampler)
MAX_REFINE_ITERATIONS = 1000
MAX_THREADS = 1024


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
        """The plan in whole hops at ``features.sample_rate``; at least one STFT window of context."""
        hop, rate = features.hop_length, features.sample_rate
        hops = lambda seconds: max(1, round(seconds * rate / hop)) * hop  # noqa: E731
        fade = hops(crossfade)
        context = max(context, features.n_fft / rate)  # every window holds at least one STFT frame of context
        if window < 2 * crossfade:
            raise VoiceconvError(f"window_seconds ({window}) must be at least twice crossfade_seconds ({crossfade})")
        return cls(stride=hops(window), margin=hops(context) + fade // 2, crossfade=fade, fade_in=raised_cosine(fade))

    def segment(self, index: int) -> tuple[int, int]:
        """Input span ``[start, end)`` that window ``index`` converts (``end`` may pass the input's end)."""
        return max(0, index * self.stride - self.margin), (index + 1) * self.stride + self.margin


@dataclass(frozen=True)
class QuietChunks:
    """How a stream is cut for WORLD: chunks of about ``length`` samples, each ending at the quietest
    ``frame`` of its last ``search`` samples, with ``context`` samples of the next chunk after it and ``lead``
    samples of the previous one before it (a lead-in costs no delay: it has already arrived).

    Neighbouring chunks meet in a ``len(fade_in)``-sample cross-fade centred on the cut, where the speech is
    at its quietest, so their separately synthesized waveforms never have to agree in phase.
    """

    length: int
    search: int
    context: int
    frame: int
    fade_in: np.ndarray  # [fade] raised cosine 0 -> 1
    ahead: int  # chunks aligned ahead of the one being used
    lead: int  # samples of the previous chunk that go with this one, before its first cut (at least ``context``)

    @classmethod
    def for_windows(cls, windows: WindowPlan | None, sample_rate: int, length_seconds: float | None = None,
                    context_seconds: float = 0.2, lead_seconds: float | None = None) -> QuietChunks:
        """Chunks of ``length_seconds`` (default: half a conversion window, at least 1 s), the cut anywhere in
        the chunk's second half, ``context_seconds`` of context, 10 ms frames, a 20 ms cross-fade, and a
        window's worth of chunks aligned ahead (one chunk when ``windows`` is None: the chunks are the windows);
        ``lead_seconds`` of the previous chunk before each (None: ``context_seconds``)."""
        frame, fade = round(0.01 * sample_rate), round(0.02 * sample_rate)
        if length_seconds is None:
            if windows is None:
                raise VoiceconvError("chunks that are the conversion windows need a length (align_chunk)")
            length = max(windows.stride // 2, sample_rate)
        else:
            length = round(length_seconds * sample_rate)
        context = round(context_seconds * sample_rate)
        lead = context if lead_seconds is None else round(lead_seconds * sample_rate)
        if length < 4 * frame or context < fade or lead < context:
            raise VoiceconvError(f"WORLD chunks must be at least {4 * frame / sample_rate} s long "
                                 f"(got {length_seconds}) with at least {fade / sample_rate} s of context "
                                 f"(got {context_seconds}), and a lead-in no shorter than the context "
                                 f"(got {lead_seconds})")
        ahead = 1 if windows is None else -(-windows.stride // length) + 1
        return cls(length=length, search=length // 2, context=context, frame=frame, fade_in=raised_cosine(fade),
                   ahead=ahead, lead=lead)

    def cutter(self) -> QuietCutter:
        """A :class:`QuietCutter` that cuts a stream into these chunks one block at a time."""
        return QuietCutter(self)

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

    ``window=None`` converts each WORLD chunk as its own window: its WORLD
    context (at least one STFT window) is the window's context, and windows
    meet in the chunks' cross-fade at a quiet moment (``context`` and
    ``crossfade`` are unused). A sample then waits only for its chunk to be
    cut, about ``align_chunk + align_context``: what live conversion needs.

    ``align_lead_in`` (None: ``align_context``) is how much input before a
    chunk WORLD analyses with it: input that has already arrived, so a longer
    lead-in costs compute but no delay.

    ``refine_iterations`` (None: the pipeline's own, 4 by default) is how many
    Griffin-Lim iterations refine each window's STFT when the model refines
    its aligned input: short windows can take fewer for the same quality.
    ``torch_threads`` (None: the caller's) is how many torch threads convert
    each window: short windows run faster on one. ``world_threads`` (None:
    as many as torch has) is how many WORLD chunks a file conversion aligns
    at once while a window converts; the output does not depend on it.

    ``resampler`` is how input at another rate is brought to the model's:
    ``soxr`` (steep; fed 100-ms blocks at 48 kHz it returns audio 12-34 ms
    behind) or ``sinc`` (:class:`~voiceconv.audio.resample.StreamResampler`:
    a windowed sinc that holds back about 1 ms, for live input).
    """

    window: float | None = 10.0
    context: float = 0.5
    crossfade: float = 0.25
    align_chunk: float | None = None
    align_context: float = 0.2
    align_lead_in: float | None = None
    refine_iterations: int | None = None
    torch_threads: int | None = None
    world_threads: int | None = None
    resampler: ResamplerKind = "soxr"

    @property
    def chunks_are_windows(self) -> bool:
        """Each WORLD chunk is converted as its own window (``window`` is None)."""
        return self.window is None

    def plan(self, features: FeatureConfig) -> tuple[WindowPlan | None, QuietChunks]:
        """The windows (None when the chunks are the windows) and WORLD chunks in samples at
        ``features.sample_rate``."""
        rate = features.sample_rate
        if self.refine_iterations is not None and not 0 <= self.refine_iterations <= MAX_REFINE_ITERATIONS:
            raise VoiceconvError(f"refine_iterations must be 0-{MAX_REFINE_ITERATIONS}, got {self.refine_iterations}")
        for name in ("torch_threads", "world_threads"):
            threads = getattr(self, name)
            if threads is not None and not 1 <= threads <= MAX_THREADS:
                raise VoiceconvError(f"{name} must be 1-{MAX_THREADS}, got {threads}")
        if self.resampler not in get_args(ResamplerKind):
            kinds = ", ".join(get_args(ResamplerKind))
            raise VoiceconvError(f"resampler must be one of {kinds}, got {self.resampler!r}")
        if self.chunks_are_windows:
            context = max(self.align_context, features.n_fft / rate)  # a window's context: one STFT window at least
            lead = None if self.align_lead_in is None else max(self.align_lead_in, context)
            return None, QuietChunks.for_windows(None, rate, self.align_chunk, context, lead)
        windows = WindowPlan.from_seconds(features, self.window, self.context, self.crossfade)
        return windows, QuietChunks.for_windows(windows, rate, self.align_chunk, self.align_context, self.align_lead_in)

    def max_held_back_seconds(self, features: FeatureConfig) -> float:
        """The most audio a stream cut this way has taken in but not yet returned (at ``features.sample_rate``; add
        the block being filled and, when the stream resamples, the resampler's (``resampler``)): the sum of
        :meth:`waits_seconds`."""
        return sum(self.waits_seconds(features))

    def waits_seconds(self, features: FeatureConfig) -> tuple[float, float]:
        """The most a sample waits for its conversion window and for its WORLD chunk, in seconds. A window's first
        sample waits for the window's end, its right context and half its cross-fade; the last of those waits for
        the WORLD chunk holding it to be cut: a chunk's length and context past where it starts, plus half the
        chunks' cross-fade. When the chunks are the windows, only the second wait remains."""
        windows, chunks = self.plan(features)
        chunk_wait = chunks.length + chunks.context + len(chunks.fade_in) // 2
        # + 1: a window is cut one sample past its end, as it is then known not to be the last
        window_wait = 0 if windows is None else windows.stride + windows.margin + windows.crossfade // 2 + 1
        return window_wait / features.sample_rate, chunk_wait / features.sample_rate


#: Files: 10-s windows with 0.5 s of context each side, WORLD chunks of 5 s (the Converter's default).
FILE_WINDOWING = Windowing()
#: Live conversion: each WORLD chunk (0.075-0.15 s, cut at its quietest moment, 64 ms of context after it and a
#: 0.3-s lead-in before it, for F0 tracking alone: WORLD analyses and synthesizes from the lead-in's end) is a
#: window, refined with 4 Griffin-Lim iterations on one torch thread. Chosen with benchmarks/live_latency.py and
#: live_quality.py on two dev pairs (README, "Live conversion"): heard 370 ms against 440 for 0.2-s chunks with
#: 80 ms of context each side, at equal MCD and within 0.04 DNSMOS; without the lead-in, 0.15-s chunks lost 0.08
#: DNSMOS on SF1 -> TM1 (a 0.1-s one cost Kathleen 0.09 dB MCD for 3% less compute, session 18). 4 iterations
#: instead of 8 kept MCD within 0.04 dB and DNSMOS within 0.01 on both pairs (2 cost SF1 -> TM1 0.08 dB MCD, none
#: cost Kathleen 0.11); one torch thread runs these short windows faster than two. A microphone's rate is brought
#: to the model's by the sinc resampler, which holds back about 1 ms where soxr held back 12-34 ms: heard 346 ms
#: against 367 at 100-ms blocks in the same run (session 17), its 16-kHz output within 75 dB of soxr's below 7 kHz.
LIVE_WINDOWING = Windowing(window=None, align_chunk=0.15, align_context=0.064, align_lead_in=0.3, refine_iterations=4,
                           torch_threads=1, resampler="sinc")


class QuietCutter:
    """Cuts a stream into :class:`QuietChunks` one block at a time: ``buffer[i]`` is input sample
    ``offset + i``, and the next chunk owns input from ``start``."""

    def __init__(self, chunks: QuietChunks):
        self.chunks = chunks
        self.buffer, self.offset, self.start = np.zeros(0, np.float32), 0, 0

    def push(self, block: np.ndarray) -> list[Piece]:
        """The chunks that ``block`` completes, each ``(offset, samples, (cut before, cut after), False)``:
        ``samples[i]`` is input sample ``offset + i`` and reaches ``context`` past its cuts."""
        chunks, cut_chunks = self.chunks, []
        self.buffer = np.concatenate([self.buffer, np.asarray(block, dtype=np.float32)])
        while self.offset + len(self.buffer) >= self.start + chunks.length + chunks.context:
            search_from = self.start + chunks.length - chunks.search - self.offset
            cut = chunks.quietest(self.buffer, search_from) + self.offset
            chunk = self.buffer[: cut + chunks.context - self.offset]
            cut_chunks.append((self.offset, chunk, (self.start, cut), False))
            self.start, keep_from = cut, max(0, cut - chunks.lead)
            self.buffer, self.offset = self.buffer[keep_from - self.offset :], keep_from
        return cut_chunks

    def finish(self) -> list[Piece]:
        """The last chunk (none at all for empty input)."""
        if self.offset + len(self.buffer) > self.start:
            return [(self.offset, self.buffer, (self.start, self.offset + len(self.buffer)), True)]
        return []


class WindowCutter:
    """Cuts a stream of ``[n, 2]`` blocks (input beside aligned input) into the windows of a :class:`WindowPlan`,
    forgetting what lies before the next window."""

    def __init__(self, plan: WindowPlan):
        self.plan, self.index = plan, 0
        self.buffer, self.buffer_start = np.zeros((0, 2), np.float32), 0  # buffer[i] is stream sample buffer_start + i
        self.total = 0

    def feed(self, blocks, last: bool):
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
        self.buffer = np.concatenate([self.buffer, block])

    def _next_window(self, is_last: bool) -> Piece:
        start, end = self.plan.segment(self.index)
        span = self.buffer[start - self.buffer_start : end - self.buffer_start]
        kept = (self.index * self.plan.stride, (self.index + 1) * self.plan.stride)
        self.index += 1
        next_start = self.plan.segment(self.index)[0]
        self.buffer, self.buffer_start = self.buffer[next_start - self.buffer_start :], next_start
        return start, span, kept, is_last


class CrossfadeJoiner:
    """One stream from overlapping pieces ``(offset, samples, (kept from, kept to), is_last)``, one piece at a
    time, where ``samples[i]`` is stream sample ``offset + i`` (mono, or ``[n, channels]``).

    Each piece gives its kept span, and neighbours meet in a raised-cosine cross-fade of ``len(fade_in)``
    samples centred on their boundary, so every piece but the last must reach half a fade past its kept span.
    The joiner keeps the last piece's part under the next cross-fade.
    """

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


def raised_cosine(length: int) -> np.ndarray:
    """A fade-in ``[length]`` from 0 to 1 (its complement is the matching fade-out)."""
    return (0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)).astype(np.float32)
