"""Streaming resampling that holds back about a millisecond: for live input, where every millisecond is heard.

soxr (what files are read and written with) resamples with a steep filter in blocks of its own: fed a
microphone's 100-ms blocks at 48 kHz, it returns 16-kHz audio 12-34 ms behind what it was given, and a player
that never runs dry inherits the worst of that. :class:`StreamResampler` is a polyphase windowed-sinc
resampler (the rational ``up/down`` filter of ``scipy.signal.resample_poly``: a Kaiser-windowed sinc cut at the
lower Nyquist frequency) computed output by output as soon as the ``zero_crossings`` input samples after it
have arrived: 48 samples (1 ms) at 48 -> 16 kHz, about 1 ms at 44.1 -> 16 kHz.

Each output is a fixed sum over its own taps, so how the input is cut into blocks never changes a sample.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

ZERO_CROSSINGS = 16  # of the sinc, each side: the filter's reach, in periods of the faster rate's Nyquist frequency
KAISER_BETA = 8.0  # stopband about 80 dB down
MAX_OUTPUTS_AT_ONCE = 1 << 16  # outputs computed together: bounds the memory of one push


@lru_cache(maxsize=8)
def polyphase_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """The anti-aliasing filter split into its ``up`` phases ``[up, taps]``, and its half length (the delay at the
    upsampled rate). Phase ``p`` holds ``h[p], h[p + up], h[p + 2 up], ...`` of the ``2 half + 1``-tap filter."""
    from scipy.signal import firwin  # here: scipy.signal takes longer to import than a model file takes to load

    fastest = max(up, down)
    half = ZERO_CROSSINGS * fastest
    taps = firwin(2 * half + 1, 1.0 / fastest, window=("kaiser", KAISER_BETA)) * up  # x up: zero-stuffing's gain
    per_phase = -(-len(taps) // up)
    padded = np.zeros(per_phase * up)
    padded[: len(taps)] = taps
    phases = padded.reshape(per_phase, up).T.copy()  # [up, per_phase]
    phases.setflags(write=False)
    return phases, half


class StreamResampler:
    """Mono float blocks at ``rate_in`` -> blocks at ``rate_out``, each output sample returned once the input
    samples its filter reaches have arrived. ``push`` then ``finish`` joined equal :func:`resample` of the whole
    input, however it was cut; the output has ``ceil(n * rate_out / rate_in)`` samples, aligned in time with the
    input (a zero-phase filter, as ``scipy.signal.resample_poly``)."""

    def __init__(self, rate_in: int, rate_out: int):
        divisor = math.gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // divisor, int(rate_in) // divisor
        self.identity = self.up == self.down
        if not self.identity:
            self.phases, self.half = polyphase_filter(self.up, self.down)
            self.reversed_phases = np.ascontiguousarray(self.phases[:, ::-1])  # [up, taps], newest input's tap last
        self.history = np.zeros(0)  # input samples from index history_start on (float64)
        self.history_start = 0
        self.received = 0  # input samples so far
        self.emitted = 0  # output samples so far

    @property
    def held_back_inputs(self) -> int:
        """Input samples at most between an input and the output it completes (the filter's reach ahead)."""
        return 0 if self.identity else -(-self.half // self.up)

    def push(self, block: np.ndarray) -> np.ndarray:
        """The output samples that ``block`` completes ``[m]`` (float32)."""
        block = np.asarray(block, dtype=np.float32)
        if self.identity:
            return block
        self.history = np.concatenate([self.history, block.astype(np.float64)])
        self.received += len(block)
        # output n reaches input (n down + half) // up: complete once that one has arrived
        ready = max(0, (self.received * self.up - 1 - self.half) // self.down + 1)
        return self._emit(ready)

    def finish(self) -> np.ndarray:
        """The rest of the output, the input taken as silent after its end."""
        if self.identity:
            return np.zeros(0, np.float32)
        return self._emit(-(-self.received * self.up // self.down))

    def _emit(self, until: int) -> np.ndarray:
        pieces = []
        while self.emitted < until:
            count = min(until - self.emitted, MAX_OUTPUTS_AT_ONCE)
            pieces.append(self._outputs(self.emitted, count))
            self.emitted += count
        self._forget_before(self._reach(self.emitted) - self.phases.shape[1] + 1)
        return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)

    def _reach(self, n: int) -> int:
        """The last input index that output ``n`` reaches."""
        return (n * self.down + self.half) // self.up

    def _outputs(self, first: int, count: int) -> np.ndarray:
        """Outputs ``first .. first + count - 1``: y[n] = sum_j phases[p_n, j] x[r_n - j] ``[count]``, with r_n the
        last input that output n reaches and p_n its filter phase."""
        position = np.arange(first, first + count) * self.down + self.half  # [count] on the upsampled time axis
        reach, phase = position // self.up, position % self.up  # [count] each
        taps = self.phases.shape[1]
        lowest = int(reach[0]) - taps + 1
        window = self._inputs(lowest, int(reach[-1]) + 1)  # x[lowest .. reach[-1]], zeros where none arrived
        step = window.strides[0]
        out = np.empty(count)
        # Outputs `up` apart share a phase and reach `down` inputs further: each such class is one product of
        # a strided view [rows, taps] (row i: the taps' inputs, oldest first) with its phase reversed.
        for first_of_class in range(min(self.up, count)):
            rows = len(range(first_of_class, count, self.up))
            oldest = int(reach[first_of_class]) - taps + 1 - lowest
            inputs = as_strided(window[oldest:], shape=(rows, taps), strides=(self.down * step, step), writeable=False)
            out[first_of_class :: self.up] = inputs @ self.reversed_phases[phase[first_of_class]]
        return out

    def _inputs(self, start: int, stop: int) -> np.ndarray:
        """Input samples ``[start, stop)`` as float64, zero before the first and after the last received."""
        out = np.zeros(stop - start)
        lo, hi = max(start, self.history_start), min(stop, self.history_start + len(self.history))
        if hi > lo:
            out[lo - start : hi - start] = self.history[lo - self.history_start : hi - self.history_start]
        return out

    def _forget_before(self, index: int) -> None:
        drop = min(max(0, index - self.history_start), len(self.history))
        self.history, self.history_start = self.history[drop:], self.history_start + drop


def resample(wav: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``wav`` ``[n]`` at ``rate_in`` -> ``[ceil(n * rate_out / rate_in)]`` at ``rate_out``, as a
    :class:`StreamResampler` gives it."""
    resampler = StreamResampler(rate_in, rate_out)
    return np.concatenate([resampler.push(wav), resampler.finish()])
