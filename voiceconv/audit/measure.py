"""The cheap per-file checks of an audit: one streamed pass over each recording measures its duration, sample rate,
BS.1770 loudness, clipped share, silence share, an SNR estimate and its sound between the edge silences, and flags
what is unusable whatever the rest of the folder holds (then what differs from the folder's majority)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from voiceconv.audio.io import LoudnessMeter, audio_info, check_level, stream_audio
from voiceconv.audit.report import AuditSettings, FileAudit
from voiceconv.errors import AudioError

#: The rate every folder-level method analyses at (the speaker encoder's and the default features').
ANALYSIS_RATE = 16000
CLIP_LEVEL = 0.999  # a sample at or above this magnitude counts as clipped
FRAME_SECONDS = 0.032  # frames of the silence and SNR estimates
SILENCE_BELOW_PEAK_DB = 40.0  # a frame this far below the loudest frame is silence (as trim_silences)
MAX_ANALYSIS_SECONDS = 60.0  # the folder-level methods look at this much of each file
KEPT_SECONDS = 300.0  # audio at ANALYSIS_RATE kept while a file is read (19 MB); longer files' sound is read again
TRIM_HOP, TRIM_TOP_DB = 128, 40.0  # the edge-silence trim's hop (frames of 4 hops) and threshold, as trim_silences


def measure_file(path: Path, speaker: str, settings: AuditSettings) -> tuple[FileAudit, np.ndarray | None]:
    """(the file's measurements and absolute-threshold reasons, its sound at ANALYSIS_RATE ``[samples]``, at most
    MAX_ANALYSIS_SECONDS). The file is read block by block, so memory stays bounded whatever its length (an hour
    of audio costs what a minute does)."""
    audit = FileAudit(path, speaker)
    try:
        rate = audio_info(path).sample_rate
        meter = FileMeter(rate)
        for block in stream_audio(path, rate):  # [samples] at the file's own rate
            meter.push(block)
        meter.finish(path)
        sound = meter.sound()
        if sound is None:  # longer than what is kept while reading: read its sound again
            sound = _sound_again(path, *meter.sound_span())
    except AudioError as err:
        audit.reasons.append(f"unreadable: {err.problem}")
        return audit, None
    audit.seconds, audit.sample_rate = meter.samples / rate, rate
    audit.loudness_lufs = meter.loudness.lufs()
    audit.clipped_share = meter.clipped / meter.samples
    audit.silence_share, audit.snr_db = silence_and_snr_of_powers(meter.frame_powers_db())
    start, end = meter.sound_span()
    audit.sound_seconds = (end - start) / ANALYSIS_RATE
    audit.reasons.extend(absolute_reasons(audit, settings))
    return audit, sound


class FileMeter:
    """One pass over a file's blocks (mono ``[n]`` at ``rate``) collects what :func:`measure_file` reports, in
    memory that grows by a few numbers per 32 ms: sample count, peak, clipped samples, loudness, the power of each
    ``FRAME_SECONDS`` frame, and at ANALYSIS_RATE the energy of each 128-sample hop (for the edge-silence trim,
    as :func:`~voiceconv.audio.io.trim_silences` does it) with the first KEPT_SECONDS of the audio itself."""

    def __init__(self, rate: int):
        import soxr

        self.rate, self.samples, self.peak, self.clipped = rate, 0, 0.0, 0
        self.loudness = LoudnessMeter(rate)
        self._frame = max(1, int(FRAME_SECONDS * rate))
        self._frames: list[np.ndarray] = []  # mean squares of the whole frames
        self._frame_carry = np.zeros(0, np.float32)
        self._resampler = None if rate == ANALYSIS_RATE else soxr.ResampleStream(rate, ANALYSIS_RATE, 1,
                                                                                   dtype="float32", quality="HQ")
        self._hops: list[np.ndarray] = []  # sums of squares of TRIM_HOP samples at ANALYSIS_RATE
        self._hop_carry = np.zeros(0, np.float32)
        self._analysis_samples = 0
        self._kept: list[np.ndarray] | None = []  # the audio at ANALYSIS_RATE while it is short enough to keep

    def push(self, block: np.ndarray) -> None:
        """Measure the next samples."""
        self.samples += len(block)
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
        self.clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        self.loudness.push(block)
        whole, self._frame_carry = _whole(np.concatenate([self._frame_carry, block]), self._frame)
        self._frames.append(np.mean(whole.astype(np.float64) ** 2, axis=1))
        self._push_analysis(block if self._resampler is None else self._resampler.resample_chunk(block))

    def finish(self, path: Path) -> None:
        """The file has ended: refuse it, as the loaders do, when it held no sound."""
        check_level(path, self.samples, self.peak)
        if self._resampler is not None:
            self._push_analysis(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        if len(self._hop_carry):
            self._hops.append(np.array([np.sum(self._hop_carry.astype(np.float64) ** 2)]))

    def frame_powers_db(self) -> np.ndarray:
        """Each ``FRAME_SECONDS`` frame's power in dB ``[frames]`` (a file shorter than one frame: the whole)."""
        powers = np.concatenate(self._frames) if self._frames else np.zeros(0)
        if not len(powers):
            powers = np.array([np.mean(self._frame_carry.astype(np.float64) ** 2)])
        return 10 * np.log10(powers + 1e-12)

    def sound_span(self) -> tuple[int, int]:
        """(first, end) sample at ANALYSIS_RATE of the sound between the edge silences, as ``trim_silences``."""
        hops = np.concatenate(self._hops) if self._hops else np.zeros(0)
        padded = np.concatenate([np.zeros(2), hops, np.zeros(2)])
        frames = 1 + self._analysis_samples // TRIM_HOP  # librosa's centred frames of 4 hops
        mse = (padded[0:frames] + padded[1:frames + 1] + padded[2:frames + 2] + padded[3:frames + 3]) / (4 * TRIM_HOP)
        mse = np.maximum(mse, 1e-10)
        loud = np.flatnonzero(10 * np.log10(mse) > 10 * np.log10(mse.max()) - TRIM_TOP_DB)
        if not len(loud):
            return 0, 0
        return int(loud[0] * TRIM_HOP), int(min(self._analysis_samples, (loud[-1] + 1) * TRIM_HOP))

    def sound(self) -> np.ndarray | None:
        """The sound between the edge silences at ANALYSIS_RATE, at most MAX_ANALYSIS_SECONDS; None when the file was
        too long to keep (read it again: :func:`_sound_again`)."""
        if self._kept is None:
            return None
        start, end = self.sound_span()
        kept = np.concatenate(self._kept) if self._kept else np.zeros(0, np.float32)
        return kept[start:min(end, start + int(MAX_ANALYSIS_SECONDS * ANALYSIS_RATE))]

    def _push_analysis(self, block: np.ndarray) -> None:
        self._analysis_samples += len(block)
        whole, self._hop_carry = _whole(np.concatenate([self._hop_carry, block]), TRIM_HOP)
        self._hops.append(np.sum(whole.astype(np.float64) ** 2, axis=1))
        if self._kept is not None:
            self._kept.append(block)
            if self._analysis_samples > KEPT_SECONDS * ANALYSIS_RATE:
                self._kept = None


def _whole(samples: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the whole ``size``-sample frames of ``samples`` ``[frames, size]``, the rest)."""
    count = len(samples) // size
    return samples[:count * size].reshape(count, size), samples[count * size:]


def _sound_again(path: Path, start: int, end: int) -> np.ndarray:
    """Samples ``start`` to ``min(end, start + MAX_ANALYSIS_SECONDS)`` of the file at ANALYSIS_RATE, read again."""
    end = min(end, start + int(MAX_ANALYSIS_SECONDS * ANALYSIS_RATE))
    parts, position = [], 0
    for block in stream_audio(path, ANALYSIS_RATE):
        parts.append(block[max(0, start - position):max(0, end - position)])
        position += len(block)
        if position >= end:
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def to_analysis_rate(wav: np.ndarray, rate: int) -> np.ndarray:
    """A waveform ``[samples]`` at ``rate`` resampled to ANALYSIS_RATE (itself when it is already there)."""
    import soxr

    return wav if rate == ANALYSIS_RATE else soxr.resample(wav, rate, ANALYSIS_RATE, quality="HQ").astype(np.float32)


def silence_and_snr(wav: np.ndarray, rate: int) -> tuple[float, float]:
    """(share of frames ``SILENCE_BELOW_PEAK_DB`` below the loudest, SNR estimate in dB) of a whole waveform; see
    :func:`silence_and_snr_of_powers`."""
    meter = FileMeter(rate)
    meter.push(np.asarray(wav, dtype=np.float32))
    return silence_and_snr_of_powers(meter.frame_powers_db())


def silence_and_snr_of_powers(power_db: np.ndarray) -> tuple[float, float]:
    """(share of frames ``SILENCE_BELOW_PEAK_DB`` below the loudest, SNR estimate in dB) from the frames' power in
    dB ``[frames]``.

    The SNR estimate is the 95th percentile of the frames' power in dB (speech) minus the 10th (the noise floor
    in the pauses); a recording without pauses, or of steady noise, scores low.
    """
    silence = float(np.mean(power_db < power_db.max() - SILENCE_BELOW_PEAK_DB))
    snr = float(np.percentile(power_db, 95) - np.percentile(power_db, 10))
    return silence, snr


def absolute_reasons(audit: FileAudit, settings: AuditSettings) -> list[str]:
    """Reasons a readable file is unusable whatever the rest of the folder looks like."""
    reasons = []
    if audit.sound_seconds < settings.min_seconds:
        reasons.append(f"too short: {audit.sound_seconds:.2f} s of sound, at least {settings.min_seconds:g} s needed")
    if audit.clipped_share > settings.max_clipped_share:
        reasons.append(f"clipped: {100 * audit.clipped_share:.1f}% of samples at full scale")
    if audit.snr_db < settings.min_snr_db:
        reasons.append(f"noisy: SNR estimate {audit.snr_db:.1f} dB, below {settings.min_snr_db:g} dB")
    if audit.silence_share > settings.max_silence_share:
        reasons.append(f"mostly silence: {100 * audit.silence_share:.0f}% of the file")
    return reasons


def flag_folder_deviations(audits: list[FileAudit], settings: AuditSettings) -> None:
    """Flag sample rates other than the folder's majority and loudness far from the folder's median."""
    readable = [a for a in audits if a.readable]
    if len(readable) < 3:
        return
    majority_rate, _ = Counter(a.sample_rate for a in readable).most_common(1)[0]
    median_lufs = float(np.median([a.loudness_lufs for a in readable]))
    for a in readable:
        if a.sample_rate != majority_rate:
            a.reasons.append(f"sample rate {a.sample_rate} Hz, the folder's majority is {majority_rate} Hz")
        deviation = a.loudness_lufs - median_lufs
        if abs(deviation) > settings.max_loudness_deviation_lu:
            a.reasons.append(f"{'louder' if deviation > 0 else 'quieter'} than the folder: {a.loudness_lufs:.1f} LUFS, "
                             f"median {median_lufs:.1f} LUFS")
