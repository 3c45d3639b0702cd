"""Conversion as the audio arrives: every stage of the file conversion, keeping its state between blocks.

:class:`ConversionStream` takes blocks with ``push`` and returns what is ready so far: the resampler, the
WORLD chunks cut at quiet moments (aligned on a second thread when a pool is given), the windows with
context, each window through :func:`~voiceconv.convert.pipeline.segment`, and the cross-fades. A stream and
a file cut with the same :class:`~voiceconv.convert.windowing.Windowing` give the same samples (bit for bit).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from voiceconv.audio.io import check_level
from voiceconv.audio.resample import StreamResampler
from voiceconv.audio.world import Alignment, change_voice
from voiceconv.convert.pipeline import Pipeline, segment
from voiceconv.convert.windowing import CrossfadeJoiner, Piece, QuietChunks, ResamplerKind, WindowCutter, Windowing
from voiceconv.errors import NonFiniteAudioError, TooShortError, VoiceconvError
from voiceconv.models.directions import Direction
from voiceconv.runtime import torch_threads


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

    def __init__(self, pipeline: Pipeline, sample_rate: int, direction: Direction, alignment: Alignment | None,
                 windowing: Windowing, name: str = "<stream>", pool: ThreadPoolExecutor | None = None,
                 ahead: int = 0):
        rate = pipeline.features.sample_rate
        windows, chunks = windowing.plan(pipeline.features)
        pipeline = pipeline.with_refine_iterations(windowing.refine_iterations)
        self.pipeline, self.direction, self.name, self.windowing = pipeline, direction, name, windowing
        self.input_rate, self.sample_rate = int(sample_rate), rate
        self.samples_in = self.samples_out = 0  # pushed (at input_rate), returned (at sample_rate)
        self.finished = False
        self._resampler = open_resampler(self.input_rate, rate, windowing.resampler)
        self._aligner = Aligner(alignment, chunks, rate, pipeline.features.n_fft, pool, ahead)
        self._windows = None if windows is None else WindowCutter(windows)  # None: the WORLD chunks are the windows
        self._joiner = CrossfadeJoiner(chunks.fade_in if windows is None else windows.fade_in)
        self._input = InputTally()

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
        for block in blocks:
            self._input.add(block)
        if last:
            check_input(self._input, self.pipeline, self.name)
        pieces = []
        with torch_threads(self.windowing.torch_threads):
            for start, span, kept, is_last in self._cut_windows(blocks, last):
                converted = segment(self.pipeline, span[:, 0], span[:, 1], self.direction)  # [n]
                pieces.append(self._joiner.add((start, converted, kept, is_last)))
        self.finished = last
        if last:
            self._aligner.close()
        out = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        self.samples_out += len(out)
        return out

    def _cut_windows(self, blocks: list[np.ndarray], last: bool) -> Iterator[Piece]:
        """The windows ``(start, span [n, 2], kept, is_last)`` that ``blocks`` complete: input beside aligned input,
        cut from the aligned stream, or each WORLD chunk as it is aligned."""
        if self._windows is None:
            return (self._aligner.window_of(chunk) for chunk in self._aligner.chunks(blocks, last))
        return self._windows.feed(self._aligner.feed(blocks, last), last)

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


class InputTally:
    """How many samples a stream's input has had so far, and its peak."""

    def __init__(self):
        self.total, self.peak = 0, 0.0

    def add(self, block: np.ndarray) -> None:
        self.total += len(block)
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))


def check_input(tally: InputTally, pipeline: Pipeline, name: str) -> None:
    """Refuse a whole input (as ``tally`` counted it) that is empty, shorter than one STFT window or silent."""
    rate = pipeline.features.sample_rate
    if 0 < tally.total < pipeline.minimum_seconds * rate:
        raise TooShortError(name, f"is {tally.total / rate:.3f} s long, at least {pipeline.minimum_seconds} s of "
                                  "sound is needed", "use a longer recording")
    check_level(name, tally.total, tally.peak)  # empty or silent


class Aligner:
    """Mono blocks -> blocks ``[n, 2]``: the input (column 0) beside its WORLD-aligned version (column 1).

    WORLD's synthesis is only continuous within one call, so the input is
    aligned in chunks cut at its quietest moments (:class:`QuietChunks`), each
    with context on both sides, joined in a short cross-fade there. With a
    ``pool``, up to ``ahead`` chunks are aligned there while the caller uses
    the earlier ones (pyworld releases the GIL). Without one (live
    conversion), the caller's thread aligns each chunk, with its aperiodicity
    analysed on a second thread beside the envelope.
    """

    def __init__(self, alignment: Alignment | None, chunks: QuietChunks, sample_rate: int, n_fft: int,
                 pool: ThreadPoolExecutor | None, ahead: int):
        self.alignment, self.sample_rate, self.n_fft = alignment, sample_rate, n_fft
        self.cutter, self.joiner = chunks.cutter(), CrossfadeJoiner(chunks.fade_in)
        self.pool, self.ahead = pool, ahead if pool is not None else 0
        self.pending: collections.deque[Future] = collections.deque()  # chunks being aligned, in order
        self.spectral_pool: ThreadPoolExecutor | None = None  # D4C beside CheapTrick, aligning on the calling thread

    @property
    def is_identity(self) -> bool:
        return self.alignment is None or self.alignment.is_identity

    def feed(self, blocks: Iterable[np.ndarray], last: bool) -> Iterator[np.ndarray]:
        """The paired blocks ``[n, 2]`` that ``blocks`` complete (all the rest when ``last``), lazily."""
        if self.is_identity:
            for block in blocks:
                yield np.stack([block, block], axis=1)
            return
        for chunk in self.chunks(blocks, last):
            yield self.joiner.add(chunk)

    def chunks(self, blocks: Iterable[np.ndarray], last: bool) -> Iterator[Piece]:
        """The aligned chunks ``(offset, [n, 2], (cut before, cut after), is_last)`` that ``blocks`` complete, in
        order, each reaching the chunks' context past its cuts (not yet cross-faded)."""
        for chunk in self._cut(blocks, last):
            self.pending.append(self._start(chunk))
            while len(self.pending) > self.ahead:
                yield self.pending.popleft().result()
        while last and self.pending:
            yield self.pending.popleft().result()

    def window_of(self, chunk: Piece) -> Piece:
        """An aligned chunk as a conversion window: its WORLD lead-in cut to the context it has after its cut."""
        offset, span, (kept_from, kept_to), is_last = chunk
        start = self._window_start(offset, kept_from)
        return start, span[start - offset :], (kept_from, kept_to), is_last

    def _window_start(self, offset: int, kept_from: int) -> int:
        """Where the conversion window of a chunk starting at ``offset`` (first kept sample ``kept_from``) starts."""
        return max(offset, kept_from - self.cutter.chunks.context)

    def close(self) -> None:
        """Let the aperiodicity thread go (a stream dropped unfinished lets it go when collected)."""
        if self.spectral_pool is not None:
            self.spectral_pool.shutdown()

    def _cut(self, blocks: Iterable[np.ndarray], last: bool) -> Iterator[Piece]:
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
        too_short = len(wav) < self.n_fft  # refused when the whole input is known
        if too_short or self.is_identity:
            return start, np.stack([wav, wav], axis=1), boundaries, is_last
        if self.pool is None and self.spectral_pool is None:
            self.spectral_pool = ThreadPoolExecutor(1, thread_name_prefix="voiceconv-d4c")
        # what lies more than a context before the conversion window only leads WORLD in
        lead_in = max(0, self._window_start(start, boundaries[0]) - self.cutter.chunks.context - start)
        aligned = change_voice(wav, self.sample_rate, self.alignment, self.spectral_pool, lead_in)
        return start, np.stack([wav, aligned], axis=1), boundaries, is_last


class SoxrResampler:
    """Block-by-block resampling with soxr; its streaming output does not depend on how the input is cut."""

    def __init__(self, rate_in: int, rate_out: int):
        import soxr

        self.soxr = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    def push(self, block: np.ndarray) -> np.ndarray:
        """The resampled samples ``block`` completes."""
        return self.soxr.resample_chunk(block)

    def finish(self) -> np.ndarray:
        """The rest, at the end of the input."""
        return self.soxr.resample_chunk(np.zeros(0, np.float32), last=True)


def open_resampler(rate_in: int, rate_out: int, kind: ResamplerKind = "soxr") -> SoxrResampler | StreamResampler:
    """A block-by-block resampler (``push``, ``finish``) of ``kind`` (see :class:`Windowing`); equal rates pass
    through untouched."""
    if kind == "sinc" or rate_in == rate_out:
        return StreamResampler(rate_in, rate_out)
    return SoxrResampler(rate_in, rate_out)


def resample_stream(blocks: Iterable[np.ndarray], rate_in: int, rate_out: int,
                    kind: ResamplerKind = "soxr") -> Iterator[np.ndarray]:
    """Resample a block stream (a no-op when the rates match), with soxr or the low-latency sinc resampler."""
    resampler = open_resampler(rate_in, rate_out, kind)
    for block in blocks:
        yield resampler.push(block)
    yield resampler.finish()
