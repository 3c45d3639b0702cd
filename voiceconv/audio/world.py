"""The WORLD voice changer: pitch alignment by formula, before any network sees the speech.

WORLD (Morise et al. 2016, via pyworld) splits speech into F0, a smooth
spectral envelope and an aperiodicity per frame. Two closed-form changes
bring one speaker towards another:

* **log-Gaussian normalized F0 transform** (as in CycleGAN-VC, Kaneko &
  Kameoka 2018, sec. 4.1): on voiced frames
  ``log f0' = (log f0 - mu_src) / sigma_src * sigma_tgt + mu_tgt``;
* **spectral envelope warp**: the envelope resampled along frequency by one
  factor ``alpha`` (``sp'(f) = sp(f / alpha)``: alpha > 1 moves formants up),
  fitted so that the two speakers' average log envelopes between
  :data:`WARP_FIT_MIN_HZ` and :data:`WARP_FIT_MAX_HZ` match best once their
  levels are removed.

Aperiodicity is kept; WORLD resynthesizes the waveform. With both changes this
is the classic DSP voice changer that ``voiceconv evaluate --baselines``
reports ("world-vc"); the converter applies the same :class:`Alignment` to its
input so the generator never has to move harmonics across an octave.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

import numpy as np

from voiceconv.errors import ConfigError

F0_FLOOR_HZ, F0_CEIL_HZ = 60.0, 600.0
WARP_SEARCH = (0.76, 1.24)  # the envelope warp factors tried when fitting
WARP_STEPS = 49  # 0.01 apart
WARP_FIT_MIN_HZ, WARP_FIT_MAX_HZ = 300.0, 5000.0
WARP_FIT_POINTS = 200
FIT_FILES = 30  # recordings per speaker used for the statistics and the warp
SEMITONE = math.log(2.0) / 12.0  # one semitone in natural-log F0
MAX_PITCH_SEMITONES = 24.0
Pitch = str | float | None  # "auto" / None, "source", "+N" / "-N" semitones, or a number of semitones


def _pyworld():
    import warnings

    with warnings.catch_warnings():  # pyworld imports the deprecated pkg_resources
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        import pyworld
    return pyworld


@dataclass(frozen=True)
class WorldSettings:
    """How WORLD analyses speech. The defaults were chosen by ``benchmarks/world_f0.py`` (quality and speed of
    the voice changer on held-out VCC2016 and Kathleen utterances)."""

    f0_method: Literal["dio", "harvest"] = "dio"  # DIO (refined by StoneMask) or Harvest
    frame_period_ms: float = 10.0  # F0's frames, and synthesis's
    dio_speed: int = 1  # DIO's internal decimation (1 = none); larger is faster and coarser
    stonemask: bool = True  # refine DIO's F0 with StoneMask
    # CheapTrick's and D4C's frames (None: F0's frames). Coarser frames are analysed on F0 read at the nearest F0
    # frame and interpolated back to F0's frames for synthesis.
    envelope_period_ms: float | None = None
    aperiodicity_period_ms: float | None = None

    def header(self) -> dict:
        """What a model header stores: fields left at the values of models from before they existed are left out,
        so such models read the same in older code."""
        values = vars(self).copy()
        for name, legacy in LEGACY_FIELDS.items():
            if values[name] == legacy:
                del values[name]
        return values

    def check(self) -> WorldSettings:
        periods = (self.frame_period_ms, self.envelope_period_ms or self.frame_period_ms,
                   self.aperiodicity_period_ms or self.frame_period_ms)
        if self.f0_method not in ("dio", "harvest") or not all(1.0 <= p <= 50.0 for p in periods) \
                or not 1.0 <= self.frame_period_ms <= 20.0 or self.dio_speed not in range(1, 13) \
                or not isinstance(self.stonemask, bool):
            raise ValueError(f"unsupported WORLD settings {vars(self)}")
        return self


#: The new fields' values for model files written before they existed (so read without them).
LEGACY_FIELDS = {"stonemask": True, "envelope_period_ms": None, "aperiodicity_period_ms": None}


#: What new models train with, stored in their files (older files keep theirs: :data:`LEGACY_FIELDS`). DIO at 10 ms
#: frames kept the WORLD voice changer's quality within 0.3 dB MCD of 5 ms frames at 0.36x their time, and Harvest's
#: at 0.16x (benchmarks/world_f0.py). Issue 22: DIO's decimation 2 and D4C every 32 ms (interpolated to F0's 10 ms)
#: took the analysis plus synthesis from 29.5 to ~21 ms per second of audio (benchmarks/world_stages.py; DIO's voicing
#: equal on 99.1% of frames) with the voice changer's VCC dev SF1 -> TM1 scores held (MCD 9.74 -> 9.64 dB, ASR WER
#: 0.39 -> 0.38, DNSMOS 3.15 -> 3.15) and the shipped model's Kathleen -> rms too when analysing so (MCD 7.59 -> 7.66,
#: WER 0.37 -> 0.38, DNSMOS 3.00 -> 2.99). CheapTrick at 16 ms cost that model 0.21 dB MCD, so it stays at 10 ms.
DEFAULT_SETTINGS = WorldSettings(dio_speed=2, aperiodicity_period_ms=32.0)
#: What models written before these settings existed analyse with (their headers say only method, period, speed).
OLD_SETTINGS = WorldSettings()
#: The classic DSP voice changer the evaluation compares against: 5 ms frames, its best quality.
REFERENCE_SETTINGS = WorldSettings(frame_period_ms=5.0)


@dataclass(frozen=True)
class PitchStats:
    """A speaker's voiced log-F0 Gaussian: mean and standard deviation of ln(F0 / 1 Hz)."""

    log_f0_mean: float
    log_f0_std: float

    @property
    def median_hz(self) -> float:
        return math.exp(self.log_f0_mean)


@dataclass(frozen=True)
class Alignment:
    """How a source speaker's speech is brought to a target before it becomes an image.

    ``pitch_shift`` replaces the statistical F0 transform when set: ``0.0``
    keeps the source's own pitch, ``+N`` / ``-N`` moves it by N semitones.
    """

    source: PitchStats
    target: PitchStats
    warp: float = 1.0
    pitch_shift: float | None = None
    settings: WorldSettings = DEFAULT_SETTINGS

    def reverse(self) -> Alignment:
        """The alignment of the opposite direction (target -> source)."""
        return Alignment(self.target, self.source, 1.0 / self.warp, settings=self.settings)

    def with_pitch(self, pitch_shift: float | None) -> Alignment:
        return replace(self, pitch_shift=pitch_shift)

    @property
    def is_identity(self) -> bool:
        return self.pitch_shift == 0.0 and abs(self.warp - 1.0) < 1e-9

    def to_dict(self) -> dict:
        return {"source": vars(self.source).copy(), "target": vars(self.target).copy(), "warp": self.warp,
                "world": self.settings.header()}

    @classmethod
    def from_dict(cls, values: dict) -> Alignment:
        settings = WorldSettings(**values.get("world", {})).check()
        return cls(PitchStats(**values["source"]), PitchStats(**values["target"]), float(values["warp"]),
                   settings=settings)


@dataclass(frozen=True)
class WorldFrames:
    """WORLD analysis of one waveform: F0 ``[frames]`` (0 = unvoiced), envelope and aperiodicity ``[frames, bins]``."""

    f0: np.ndarray
    envelope: np.ndarray
    aperiodicity: np.ndarray


def extract_f0(wav: np.ndarray, sample_rate: int, settings: WorldSettings = DEFAULT_SETTINGS, refine_from: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """F0 per frame in Hz (0 = unvoiced) and the frame times, by ``settings.f0_method``. StoneMask refines each
    frame on its own, so ``refine_from`` (a lead-in's frames, whose F0 is not used) leaves the frames before it
    at DIO's estimate and the rest exactly as refined in a whole call."""
    pyworld = _pyworld()
    x = np.ascontiguousarray(wav, dtype=np.float64)
    if settings.f0_method == "harvest":
        return pyworld.harvest(x, sample_rate, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ,
                               frame_period=settings.frame_period_ms)
    f0, times = pyworld.dio(x, sample_rate, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ,
                            frame_period=settings.frame_period_ms, speed=settings.dio_speed)
    if settings.stonemask and refine_from < len(f0):
        f0 = f0.copy()
        f0[refine_from:] = pyworld.stonemask(x, np.ascontiguousarray(f0[refine_from:]),
                                             np.ascontiguousarray(times[refine_from:]), sample_rate)
    return f0, times


def spectral(x: np.ndarray, sample_rate: int, f0: np.ndarray, times: np.ndarray, period_ms: float | None,
             which: Literal["cheaptrick", "d4c"]) -> np.ndarray:
    """CheapTrick's envelope or D4C's aperiodicity ``[frames, bins]`` at F0's ``times``, analysed every
    ``period_ms`` (None: at ``times`` themselves) on F0 read at the nearest of ``times``, then interpolated
    linearly back to ``times``."""
    pyworld = _pyworld()
    run = (lambda f, t: pyworld.cheaptrick(x, f, t, sample_rate, f0_floor=F0_FLOOR_HZ)) if which == "cheaptrick" \
        else (lambda f, t: pyworld.d4c(x, f, t, sample_rate))
    step = times[1] - times[0] if len(times) > 1 else 1.0
    if period_ms is None or len(times) < 2 or abs(period_ms / 1000 - step) < 1e-9:
        return run(f0, times)
    period = period_ms / 1000
    coarse_times = np.arange(int(np.ceil(times[-1] / period)) + 1) * period  # the last one at or past the end
    nearest = np.rint(coarse_times / step).astype(int)
    coarse_f0 = f0[np.clip(nearest, 0, len(times) - 1)]
    # A coarse frame that any F0 frame within its half period calls voiced is analysed as voiced (on the nearest
    # such F0): its values reach the voiced F0 frames beside it when interpolated back, where synthesis uses them
    # (it ignores aperiodicity on unvoiced frames), so a voicing edge never gets an unvoiced frame's values.
    reach = int(np.ceil(period / (2 * step) - 1e-9))
    for offset in (o for distance in range(1, reach + 1) for o in (-distance, distance)):
        unvoiced = coarse_f0 == 0
        coarse_f0[unvoiced] = f0[np.clip(nearest[unvoiced] + offset, 0, len(times) - 1)]
    coarse = run(np.ascontiguousarray(coarse_f0), coarse_times)  # [coarse frames, bins]
    return rows_at(coarse, np.minimum(times / period, len(coarse_times) - 1))


def rows_at(rows: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``rows`` ``[n, bins]`` (n >= 2) read at fractional row positions ``[frames]`` in ``[0, n - 1]``, linearly."""
    below = np.minimum(np.floor(position).astype(int), len(rows) - 2)
    weight = (position - below)[:, None]
    return rows[below] * (1.0 - weight) + rows[below + 1] * weight


def analyse(wav: np.ndarray, sample_rate: int, settings: WorldSettings = DEFAULT_SETTINGS,
            pool: Executor | None = None, lead_in_frames: int = 0) -> WorldFrames:
    """F0, spectral envelope (CheapTrick) and aperiodicity (D4C) of a mono waveform ``[samples]``, all at F0's
    frames (envelope and aperiodicity analysed at their own, see :func:`spectral`). With a ``pool``, D4C runs
    there while CheapTrick runs here (pyworld releases the GIL): the same frames in about half the time on two
    cores. The first ``lead_in_frames`` only lead F0's tracking in: the frames returned start after them, at the
    waveform's sample :func:`lead_in_samples`, and their envelope and aperiodicity are analysed on the waveform from
    there on."""
    x = np.ascontiguousarray(wav, dtype=np.float64)
    f0, times = extract_f0(x, sample_rate, settings, refine_from=lead_in_frames)
    if lead_in_frames > 0:
        if lead_in_frames > len(f0) - 2:
            raise ValueError(f"a lead-in of {lead_in_frames} frames leaves fewer than 2 of {len(f0)}")
        x = x[lead_in_samples(lead_in_frames, sample_rate, settings):]
        f0, times = f0[lead_in_frames:], times[lead_in_frames:] - times[lead_in_frames]
    run_d4c = partial(spectral, x, sample_rate, f0, times, settings.aperiodicity_period_ms, "d4c")
    pending = None if pool is None else pool.submit(run_d4c)
    envelope = spectral(x, sample_rate, f0, times, settings.envelope_period_ms, "cheaptrick")
    aperiodicity = run_d4c() if pending is None else pending.result()
    return WorldFrames(f0, envelope, aperiodicity)


def lead_in_samples(frames: int, sample_rate: int, settings: WorldSettings) -> int:
    """Where F0's frame ``frames`` lies in the waveform, in samples."""
    return round(frames * settings.frame_period_ms * sample_rate / 1000)


def synthesize(frames: WorldFrames, sample_rate: int, length: int,
               settings: WorldSettings = DEFAULT_SETTINGS) -> np.ndarray:
    """WORLD synthesis back to a float32 waveform of exactly ``length`` samples."""
    pyworld = _pyworld()
    wav = pyworld.synthesize(np.ascontiguousarray(frames.f0), np.ascontiguousarray(frames.envelope),
                             np.ascontiguousarray(frames.aperiodicity), sample_rate,
                             frame_period=settings.frame_period_ms)
    wav = wav[:length] if len(wav) >= length else np.pad(wav, (0, length - len(wav)))
    return wav.astype(np.float32)


def transform_f0(f0: np.ndarray, alignment: Alignment) -> np.ndarray:
    """The voiced frames of ``f0`` (Hz) moved by the alignment; unvoiced frames (0) stay 0."""
    out = np.zeros_like(f0)
    voiced = f0 > 0
    log_f0 = np.log(f0[voiced])
    if alignment.pitch_shift is not None:
        log_f0 = log_f0 + alignment.pitch_shift * SEMITONE
    else:
        src, tgt = alignment.source, alignment.target
        log_f0 = (log_f0 - src.log_f0_mean) / src.log_f0_std * tgt.log_f0_std + tgt.log_f0_mean
    out[voiced] = np.exp(log_f0)
    return out


def warp_envelope(envelope: np.ndarray, factor: float) -> np.ndarray:
    """Resample an envelope ``[frames, bins]`` along frequency: ``out(f) = in(f / factor)``, edges held."""
    if abs(factor - 1.0) < 1e-9:
        return envelope
    bins = envelope.shape[-1]
    source_bins = np.minimum(np.arange(bins) / factor, bins - 1)  # where each output bin reads the input
    below = np.floor(source_bins).astype(int)
    above = np.minimum(below + 1, bins - 1)
    weight = source_bins - below  # [bins] linear interpolation between the two input bins
    return envelope[..., below] * (1.0 - weight) + envelope[..., above] * weight


def change_voice(wav: np.ndarray, sample_rate: int, alignment: Alignment, pool: Executor | None = None,
                 lead_in: int = 0) -> np.ndarray:
    """The WORLD voice changer: analyse, transform F0, warp the envelope, resynthesize ``[samples]``. ``pool``: see
    :func:`analyse`; ``lead_in``: how many samples at the start only lead F0's tracking in (their output is not used:
    it is silence, and WORLD analyses and synthesizes from the frame after them on)."""
    settings = alignment.settings
    if alignment.is_identity:
        return np.asarray(wav, dtype=np.float32)
    frame = sample_rate * settings.frame_period_ms / 1000  # samples per F0 frame
    skipped = int(max(0, min(lead_in, len(wav) - 2 * frame)) // frame)  # at least 2 frames left
    frames = analyse(wav, sample_rate, settings, pool, skipped)
    changed = WorldFrames(transform_f0(frames.f0, alignment), warp_envelope(frames.envelope, alignment.warp),
                          frames.aperiodicity)
    start = lead_in_samples(skipped, sample_rate, settings)
    out = np.zeros(len(wav), np.float32)
    out[start:] = synthesize(changed, sample_rate, len(wav) - start, settings)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


# --- fitting on two speakers' recordings -----------------------------------------------------------

@dataclass(frozen=True)
class SpeakerWorldProfile:
    """What fitting needs of a speaker: its log-F0 Gaussian and average level-free log envelope ``[bins]``."""

    pitch: PitchStats
    mean_log_envelope: np.ndarray


def speaker_profile(waves: Iterable[np.ndarray], sample_rate: int,
                    settings: WorldSettings = DEFAULT_SETTINGS) -> SpeakerWorldProfile:
    """Pool the voiced frames of a speaker's recordings into its :class:`SpeakerWorldProfile`."""
    pyworld = _pyworld()
    log_f0, log_envelopes = [], []
    for wav in waves:
        x = np.ascontiguousarray(wav, dtype=np.float64)
        f0, times = extract_f0(x, sample_rate, settings)
        voiced = f0 > 0
        if not voiced.any():
            continue
        envelope = pyworld.cheaptrick(x, f0, times, sample_rate, f0_floor=F0_FLOOR_HZ)[voiced]
        log_f0.append(np.log(f0[voiced]))
        log_envelopes.append(np.log(envelope + 1e-12).mean(axis=0))
    if not log_f0:
        raise ValueError("no voiced speech found in the recordings")
    pooled = np.concatenate(log_f0)
    pitch = PitchStats(float(pooled.mean()), float(max(pooled.std(), 1e-3)))
    return SpeakerWorldProfile(pitch, np.mean(log_envelopes, axis=0))


def fit_warp(source: SpeakerWorldProfile, target: SpeakerWorldProfile, sample_rate: int) -> float:
    """The envelope warp factor in :data:`WARP_SEARCH` whose warped source average log envelope, level removed,
    is nearest (least squares) the target's between :data:`WARP_FIT_MIN_HZ` and :data:`WARP_FIT_MAX_HZ`.

    The two are compared on a log-frequency grid, where each formant region weighs alike; below a few hundred
    hertz WORLD's envelope follows F0 rather than the vocal tract, and a linear grid lets the flat top of the
    band decide (it fitted SF1 -> TM1 at 1.24, the wrong way, for one choice of files, 0.92 for another).
    """
    bins = len(source.mean_log_envelope)
    frequencies = np.arange(bins) * (sample_rate / 2) / (bins - 1)
    grid = np.geomspace(WARP_FIT_MIN_HZ, min(WARP_FIT_MAX_HZ, sample_rate / 2), WARP_FIT_POINTS)
    reference = np.interp(grid, frequencies, target.mean_log_envelope)

    def distance(factor: float) -> float:
        warped = np.interp(grid, frequencies, warp_envelope(source.mean_log_envelope[None], factor)[0])
        difference = warped - reference
        return float(np.mean((difference - difference.mean()) ** 2))

    factors = np.linspace(*WARP_SEARCH, WARP_STEPS)
    return float(factors[int(np.argmin([distance(f) for f in factors]))])


def fit_alignment(source_waves: Iterable[np.ndarray], target_waves: Iterable[np.ndarray], sample_rate: int,
                  warp: bool = True, settings: WorldSettings = DEFAULT_SETTINGS) -> Alignment:
    """The source -> target :class:`Alignment` fitted on recordings of each (up to :data:`FIT_FILES` are enough)."""
    source = speaker_profile(source_waves, sample_rate, settings)
    target = speaker_profile(target_waves, sample_rate, settings)
    factor = fit_warp(source, target, sample_rate) if warp else 1.0
    return Alignment(source.pitch, target.pitch, factor, settings=settings)


def spread_picks(count: int, wanted: int = FIT_FILES) -> list[int]:
    """Up to ``wanted`` indices spread evenly over ``range(count)``."""
    return sorted(set(np.linspace(0, count - 1, min(count, wanted)).astype(int).tolist())) if count else []


def parse_pitch(pitch: Pitch) -> float | None:
    """The ``--pitch`` setting as a semitone shift: None for ``"auto"`` (the model's F0 transform), 0.0 for
    ``"source"``, N for ``"+N"`` / ``"-N"`` / a number (fractions allowed, at most 24 semitones either way)."""
    if pitch is None or (isinstance(pitch, str) and pitch.strip().lower() == "auto"):
        return None
    if isinstance(pitch, str) and pitch.strip().lower() == "source":
        return 0.0
    try:
        shift = float(pitch)
    except (TypeError, ValueError):
        raise ConfigError(f"pitch must be 'auto', 'source' or a number of semitones such as +2 or -3.5; "
                          f"got {pitch!r}") from None
    if not math.isfinite(shift) or abs(shift) > MAX_PITCH_SEMITONES:
        raise ConfigError(f"pitch shift {pitch!r} is outside +-{MAX_PITCH_SEMITONES:g} semitones")
    return shift
