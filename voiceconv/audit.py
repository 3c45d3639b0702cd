"""Audit a speaker's training recordings: what every file measures, and the files that do not belong.

A speaker is a folder of recordings (searched recursively, as ``voiceconv train`` reads it). Every file gets
cheap measurements (duration, sample rate, BS.1770 loudness, clipped share, silence share, an SNR estimate)
and is flagged, with the reason, when

- it cannot be read (missing, not audio, corrupt, truncated, empty, silent: the loader's own message),
- it is shorter than ``min_seconds`` of sound (edge silence trimmed, as training reads it),
- more than ``max_clipped_share`` of its samples sit at full scale (``|x| >= 0.999``),
- its SNR estimate is below ``min_snr_db`` (noise, hum, a recording without pauses or speech dynamics),
- more than ``max_silence_share`` of it is silence,
- its sample rate differs from the folder's majority, or its loudness is ``max_loudness_deviation_lu`` away
  from the folder's median,
- (method ``embedding``, the default) its Resemblyzer speaker embedding is far from the folder's centroid:
  another speaker, music, anything the speaker encoder does not hear as this voice. The centroid is built
  from the files the cheap checks passed, then again from the closer half of them; a file is flagged when
  its cosine distance exceeds what a clean file of its length scores by more than
  ``median + embedding_mad_k * MAD`` of the folder's excesses, and exceeds ``min_embedding_distance``.
- (method ``likelihood``, the fallback without the ``eval`` extra) its log-mel frames are unlikely under a
  full-covariance Gaussian of the folder's frames (robust threshold on the folder's mean log-likelihoods).
  It finds music and tones but few other voices, and scores noise as *more* likely than speech (the cheap
  checks catch noise). A VAE of the folder's spectrogram crops, the lecture's way, was measured too and
  found only the tones; benchmarks/audit_outliers.py holds both and README "Auditing training data" the table.

Nothing in the audited folders is written to. The library imports no gradio and no training code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from voiceconv.audio.io import LoudnessMeter, audio_entries, audio_files, audio_info, check_level, stream_audio
from voiceconv.errors import AudioError, VoiceconvError

#: The rate every folder-level method analyses at (the speaker encoder's and the default features').
ANALYSIS_RATE = 16000
#: Minutes of sound per speaker asked for when no recipe says (about 60 VCC2016 sentences): enough for audible
#: conversion in the recipes' experience; a recipe's ``data.min_seconds`` is the hard floor training refuses below.
DEFAULT_NEEDED_MINUTES = 5.0
#: Methods beyond the cheap per-file checks, in the order they run.
METHODS = ("embedding", "likelihood")
DEFAULT_METHODS = ("embedding",)
CLIP_LEVEL = 0.999  # a sample at or above this magnitude counts as clipped
FRAME_SECONDS = 0.032  # frames of the silence and SNR estimates
SILENCE_BELOW_PEAK_DB = 40.0  # a frame this far below the loudest frame is silence (as trim_silences)
MAX_ANALYSIS_SECONDS = 60.0  # the folder-level methods look at this much of each file
KEPT_SECONDS = 300.0  # audio at ANALYSIS_RATE kept while a file is read (19 MB); longer files' sound is read again
TRIM_HOP, TRIM_TOP_DB = 128, 40.0  # the edge-silence trim's hop (frames of 4 hops) and threshold, as trim_silences
MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation is 1.4826 MADs
CACHE_VERSION = 2  # raise when what a cached result holds changes (2: streamed measurements)
EMBED_BATCH_FILES = 64  # files whose speaker-encoder windows go through the network at once
MIN_FILES_FOR_A_CUT = 5  # the folder-level methods need this many trusted files to say what is normal


@dataclass(frozen=True)
class AuditSettings:
    """Thresholds of the checks; the defaults are the ones benchmarks/audit_outliers.py measured."""

    min_seconds: float = 0.5  # sound after edge-silence trimming (VCC2016's shortest sentences hold 0.9 s)
    max_clipped_share: float = 0.001
    min_snr_db: float = 15.0
    max_silence_share: float = 0.8
    max_loudness_deviation_lu: float = 20.0
    embedding_mad_k: float = 6.0
    min_embedding_distance: float = 0.15  # cosine distance; clean VCC2016 files over 4 s of sound: at most 0.10
    likelihood_mad_k: float = 4.0
    likelihood_mels: int = 40


class Flags:
    """What an audited file's ``reasons`` (list of text) say: whether it is flagged, and why."""

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def reason(self) -> str:
        """Every reason, ``; ``-joined; '' when the file is clean."""
        return "; ".join(self.reasons)


@dataclass
class FileAudit(Flags):
    """One recording: its measurements (None where unreadable) and the reasons it is flagged."""

    path: Path
    speaker: str
    seconds: float | None = None
    sample_rate: int | None = None
    loudness_lufs: float | None = None
    clipped_share: float | None = None
    silence_share: float | None = None
    snr_db: float | None = None
    sound_seconds: float | None = None  # after edge-silence trimming
    embedding_distance: float | None = None  # cosine distance to the folder's speaker centroid
    likelihood_score: float | None = None  # mean negative log-likelihood of its log-mel frames (folder Gaussian)
    reasons: list[str] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return self.seconds is not None


@dataclass(frozen=True)
class SpeakerSummary:
    """One speaker folder: how much usable sound it holds against what the recipe needs."""

    name: str
    folder: Path
    files: int
    flagged: int
    minutes: float  # sound (edge silence trimmed) in the files not flagged
    needed_minutes: float

    @property
    def enough(self) -> bool:
        return self.minutes >= self.needed_minutes


@dataclass
class AuditReport:
    """Every audited file, a summary per speaker, and notes on the methods (e.g. one that could not run)."""

    files: list[FileAudit]
    speakers: list[SpeakerSummary]
    methods: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[FileAudit]:
        return [f for f in self.files if f.flagged]

    def markdown(self) -> str:
        """The report for people: speakers, flagged files, then every file's measurements."""
        return _markdown(self)

    def csv_text(self) -> str:
        """``file,flagged,reason`` for every file; flagged is ``yes`` or ``no``."""
        return table_csv(self.files)

    def write_csv(self, path: str | Path) -> Path:
        """Write :meth:`csv_text` to ``path`` atomically."""
        return write_text(path, self.csv_text())

    def write_markdown(self, path: str | Path) -> Path:
        return write_text(path, self.markdown())


# --- the API -------------------------------------------------------------------------------------------------
def audit_folders(folders: Sequence[str | Path], needed_minutes: float = DEFAULT_NEEDED_MINUTES,
                  methods: Iterable[str] = DEFAULT_METHODS, settings: AuditSettings = AuditSettings(),
                  names: Sequence[str] | None = None, cache_dir: str | Path | None = None) -> AuditReport:
    """One report over several speaker folders (one speaker per folder; outliers are judged within each).

    ``cache_dir`` keeps each folder's results, keyed by every file's path, size and modification time and by
    the settings: auditing an unchanged folder again reads them back (``voiceconv train`` uses its run folder).
    """
    if not folders:
        raise VoiceconvError("no folders to audit: name at least one folder of recordings")
    for folder in folders:
        audio_files(folder)  # a missing folder fails before the speaker encoder loads
    methods = _checked_methods(methods)
    encoder, notes = None, []
    if "embedding" in methods and not _all_cached(folders, methods, settings, cache_dir):
        encoder, methods, notes = _encoder_or_fallback(methods)
    reports = [audit_speaker_folder(folder, needed_minutes, methods, settings, name=names[i] if names else None,
                                    encoder=encoder, cache_dir=cache_dir) for i, folder in enumerate(folders)]
    return AuditReport([f for r in reports for f in r.files], [s for r in reports for s in r.speakers],
                       reports[0].methods, notes + [n for r in reports for n in r.notes if n not in notes])


def audit_speaker_folder(folder: str | Path, needed_minutes: float = DEFAULT_NEEDED_MINUTES,
                         methods: Iterable[str] = DEFAULT_METHODS, settings: AuditSettings = AuditSettings(),
                         name: str | None = None, encoder=None, cache_dir: str | Path | None = None) -> AuditReport:
    """Audit one speaker's folder: cheap checks on every file, then the folder-level ``methods``.

    ``encoder`` (a :class:`voiceconv.evaluate.speaker.SpeakerEncoder`) is loaded when not given and the
    ``embedding`` method is asked for; without the ``eval`` extra, the ``likelihood`` method runs instead, with
    a note. ``cache_dir``: see :func:`audit_folders`. Raises :class:`VoiceconvError` when ``folder`` is not a
    folder or holds no audio files.
    """
    folder = Path(folder)
    files, refused = audio_entries(folder)
    if not files and not refused:
        raise VoiceconvError(f"{folder}: no audio files in this folder (looked for "
                             "wav, flac, ogg, mp3, ...; searched recursively)")
    methods = _checked_methods(methods)
    speaker = name or folder.name
    cache = _cache_file(cache_dir, folder, files, methods, settings)
    if cache is not None and cache.is_file() and not refused:
        return _read_cached_report(cache, speaker, folder, needed_minutes)
    report = _audit_files(files, folder, speaker, needed_minutes, methods, settings, encoder, refused)
    if cache is not None and not report.notes:  # a method skipped (no eval extra) runs again next time
        _write_cached_report(cache, report)
    return report


def _audit_files(files: list[Path], folder: Path, speaker: str, needed_minutes: float, methods: tuple[str, ...],
                 settings: AuditSettings, encoder, refused: list[tuple[Path, str]] = ()) -> AuditReport:
    """The report of ``files``, with a row for each ``refused`` entry (a pipe, a device, a link leading out of the
    folder: never opened) giving its reason."""
    audits, waves = [], {}
    for path in files:
        audit, wave = measure_file(path, speaker, settings)
        audits.append(audit)
        if wave is not None:
            waves[path] = wave
    flag_folder_deviations(audits, settings)
    audits = sorted(audits + [FileAudit(path, speaker, reasons=[reason]) for path, reason in refused],
                    key=lambda a: a.path)
    notes: list[str] = []
    if "embedding" in methods and encoder is None:
        encoder, methods, notes = _encoder_or_fallback(methods)
    ran = ["checks"]
    if "embedding" in methods:
        flag_embedding_outliers(audits, waves, encoder, settings)
        ran.append("embedding")
    if "likelihood" in methods:
        flag_likelihood_outliers(audits, waves, settings)
        ran.append("likelihood")
    summary = summarize_speaker(speaker, folder, audits, needed_minutes)
    return AuditReport(audits, [summary], ran, notes)


def needed_minutes_of_recipe(recipe) -> float:
    """Minutes per speaker a voice recipe needs: its ``data.min_seconds`` (the floor training refuses below)."""
    return float(recipe.data.min_seconds) / 60.0


# --- cheap per-file checks -----------------------------------------------------------------------------------
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


# --- speaker-embedding distance --------------------------------------------------------------------------
def _encoder_or_fallback(methods: tuple[str, ...]):
    """(SpeakerEncoder, methods, []) or, without the ``eval`` extra, (None, methods with ``likelihood`` instead of
    ``embedding``, [a note saying so]). Loading the encoder takes about a second."""
    from voiceconv.evaluate.extras import MissingExtraError

    try:
        from voiceconv.evaluate.speaker import SpeakerEncoder

        return SpeakerEncoder(), methods, []
    except MissingExtraError as err:
        fallback = tuple(m for m in METHODS if m != "embedding" and m in (*methods, "likelihood"))
        note = (f"speaker-embedding check skipped: {err}; the spectrogram-likelihood check runs instead (it finds "
                "music and tones, misses most other voices)")
        return None, fallback, [note]


def embed_files(waves: dict[Path, np.ndarray], encoder) -> tuple[dict[Path, np.ndarray], dict[Path, str]]:
    """({path: unit embedding [256]}, {path: why it could not be embedded}).

    A :class:`~voiceconv.evaluate.speaker.SpeakerEncoder` embeds the partial windows of many files in one
    batch (the same embeddings as its ``embed`` to 1e-6; 0.046 s a VCC2016 file against 0.061 one by one, on
    the busy 2-core machine); any other object with ``embed(wave, rate)`` is asked file by file.
    """
    embeddings, failures, speech = {}, {}, {}
    batched = hasattr(encoder, "_preprocess") and hasattr(encoder, "_encoder")
    for path, wave in waves.items():
        try:
            if batched:
                speech[path] = encoder._preprocess(wave, ANALYSIS_RATE)  # [samples]: the encoder's own checks
            else:
                embeddings[path] = encoder.embed(wave, ANALYSIS_RATE)
        except ValueError as err:  # too little speech after the encoder's voice-activity trimming
            failures[path] = str(err)
    paths = list(speech)
    for start in range(0, len(paths), EMBED_BATCH_FILES):
        chunk = paths[start:start + EMBED_BATCH_FILES]
        embeddings.update(zip(chunk, _embed_batch(encoder._encoder, [speech[p] for p in chunk])))
    return embeddings, failures


def _embed_batch(voice_encoder, utterances: list[np.ndarray]) -> list[np.ndarray]:
    """Resemblyzer's ``embed_utterance`` for several preprocessed utterances, their partials in one forward pass."""
    import torch
    from resemblyzer import audio

    windows, counts = [], []
    for wav in utterances:
        wav_slices, mel_slices = voice_encoder.compute_partial_slices(len(wav), 1.3, 0.75)  # embed_utterance's
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = audio.wav_to_mel_spectrogram(wav)  # [frames, 40]
        windows += [mel[s] for s in mel_slices]
        counts.append(len(mel_slices))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as SpeakerEncoder.embed: the LSTM is tiny, two threads wait on each other
    try:
        with torch.no_grad():
            partials = voice_encoder(torch.from_numpy(np.array(windows))).cpu().numpy()  # [windows, 256]
    finally:
        torch.set_num_threads(threads)
    ends = np.cumsum(counts)
    return [_unit(partials[end - count:end].mean(axis=0)).astype(np.float32) for end, count in zip(ends, counts)]


def robust_centroid_distances(embeddings: np.ndarray, trusted: np.ndarray) -> np.ndarray:
    """Cosine distances ``[N]`` of unit ``embeddings`` ``[N, D]`` to a centroid of the ``trusted`` ``[N]`` bool ones:
    the mean of all trusted, then again of the trusted closer half (outliers pull the first mean, not the second)."""
    pool = embeddings[trusted] if trusted.any() else embeddings
    centroid = _unit(pool.mean(axis=0))
    distances = 1.0 - pool @ centroid
    closer = pool[distances <= np.median(distances)]
    centroid = _unit(closer.mean(axis=0))
    return 1.0 - embeddings @ centroid


def robust_threshold(values: np.ndarray, k: float, floor: float = -np.inf) -> float:
    """``max(median + k * MAD-sigma, floor)`` of ``values``: a cut that a minority of outliers does not move."""
    median = float(np.median(values))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    return max(median + k * mad, floor)


def duration_adjusted_excess(distances: np.ndarray, seconds: np.ndarray, trusted: np.ndarray, k: float,
                             rounds: int = 3) -> tuple[np.ndarray, float]:
    """(each file's distance above what a clean file of its length scores ``[N]``, the cut on that excess).

    A short utterance gives a noisier embedding, so clean files' distances shrink with length (VCC2016: median
    0.16 under 1.6 s of sound, 0.05 over 4 s). The expected distance ``a + b / seconds`` is fitted by least
    squares to the ``trusted`` files, then refitted to those under the cut ``median + k * MAD`` of the
    residuals, ``rounds`` times, so the outliers among the trusted do not bend the fit.
    """
    design = np.stack([np.ones_like(seconds), 1.0 / np.maximum(seconds, 0.1)], axis=1)  # [N, 2]
    kept = trusted.copy()
    for _ in range(rounds):
        coefficients = np.linalg.lstsq(design[kept], distances[kept], rcond=None)[0]  # [2]
        excess = distances - design @ coefficients  # [N]
        cut = robust_threshold(excess[kept], k)
        kept = trusted & (excess <= cut)
    return excess, cut


def flag_embedding_outliers(audits: list[FileAudit], waves: dict[Path, np.ndarray], encoder,
                            settings: AuditSettings) -> None:
    """Flag files whose speaker embedding is far from the folder's centroid, for their length, or that hold no
    speech to embed. Files the cheap checks flagged neither shape the centroid nor the cut."""
    by_path = {a.path: a for a in audits}
    embeddings, failures = embed_files(waves, encoder)
    for path, problem in failures.items():
        by_path[path].reasons.append(f"no speech found by the speaker encoder ({problem})")
    paths = list(embeddings)
    trusted = np.array([not by_path[p].flagged for p in paths])
    if trusted.sum() < MIN_FILES_FOR_A_CUT:
        return
    distances = robust_centroid_distances(np.stack([embeddings[p] for p in paths]), trusted)  # [N]
    seconds = np.array([by_path[p].sound_seconds for p in paths])
    excess, cut = duration_adjusted_excess(distances, seconds, trusted, settings.embedding_mad_k)
    for path, distance, above in zip(paths, distances, excess):
        by_path[path].embedding_distance = float(distance)
        if above > cut and distance > settings.min_embedding_distance:
            by_path[path].reasons.append(f"sounds unlike the folder's speaker: embedding distance {distance:.2f}, "
                                         f"{above:.2f} above what its length explains (the folder's cut {cut:.2f})")


# --- a likelihood model of the folder's spectrograms (the fallback without a speaker encoder) --------------
def log_mel_frames(wave: np.ndarray, n_mels: int) -> np.ndarray:
    """Log-mel frames ``[T, n_mels]`` (the feature images' [-1, 1] scale) of a waveform at ANALYSIS_RATE."""
    import torch

    from voiceconv.audio.features import FeatureConfig, MelImageEncoder

    encoder = MelImageEncoder(FeatureConfig(sample_rate=ANALYSIS_RATE, n_mels=n_mels))
    return encoder(torch.from_numpy(wave))[0].T.double().numpy()


def gaussian_frame_scores(frames: dict[Path, np.ndarray], trusted: set[Path]) -> dict[Path, float]:
    """{path: mean negative log-likelihood (nats, up to a constant) of its frames ``[T, D]``} under one
    full-covariance Gaussian fitted to the frames of the ``trusted`` files."""
    pool = np.concatenate([frames[p] for p in frames if p in trusted] or list(frames.values()))  # [sum T, D]
    mean = pool.mean(axis=0)
    covariance = np.cov(pool.T) + 1e-4 * np.eye(pool.shape[1])  # ridge: silent mel bands have no variance
    inverse = np.linalg.inv(covariance)
    _, log_det = np.linalg.slogdet(covariance)
    scores = {}
    for path, f in frames.items():
        centred = f - mean  # [T, D]
        mahalanobis = np.einsum("ti,ij,tj->t", centred, inverse, centred)  # [T]
        scores[path] = float(np.mean(0.5 * (mahalanobis + log_det)))
    return scores


def flag_likelihood_outliers(audits: list[FileAudit], waves: dict[Path, np.ndarray], settings: AuditSettings) -> None:
    """Flag files whose log-mel frames are far less likely than the rest under the folder's Gaussian."""
    by_path = {a.path: a for a in audits}
    trusted = {p for p in waves if not by_path[p].flagged}
    if len(trusted) < MIN_FILES_FOR_A_CUT:
        return
    frames = {p: log_mel_frames(w, settings.likelihood_mels) for p, w in waves.items()}
    scores = gaussian_frame_scores(frames, trusted)
    cut = robust_threshold(np.array([scores[p] for p in trusted]), settings.likelihood_mad_k)
    for path, score in scores.items():
        by_path[path].likelihood_score = score
        if score > cut:
            by_path[path].reasons.append(f"unlike the folder's spectrograms: frame log-likelihood {-score:.1f} "
                                         f"(the folder's cut {-cut:.1f})")


# --- the cache of a folder's results ------------------------------------------------------------------------
def _cache_file(cache_dir, folder: Path, files: list[Path], methods: tuple[str, ...],
                settings: AuditSettings) -> Path | None:
    if cache_dir is None:
        return None
    listing = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    blob = json.dumps({"files": listing, "methods": methods, "settings": asdict(settings), "version": CACHE_VERSION},
                      sort_keys=True).encode()
    return Path(cache_dir) / f"audit-{folder.name}-{hashlib.sha256(blob).hexdigest()[:16]}.json"


def _all_cached(folders, methods, settings, cache_dir) -> bool:
    caches = [_cache_file(cache_dir, Path(f), audio_files(f), methods, settings) for f in folders]
    return all(c is not None and c.is_file() for c in caches)


def _write_cached_report(cache: Path, report: AuditReport) -> None:
    rows = [{**asdict(f), "path": str(f.path)} for f in report.files]
    write_text(cache, json.dumps({"files": rows, "methods": report.methods, "notes": report.notes}))


def _read_cached_report(cache: Path, speaker: str, folder: Path, needed_minutes: float) -> AuditReport:
    saved = json.loads(cache.read_text(encoding="utf-8"))
    audits = [FileAudit(**{**row, "path": Path(row["path"]), "speaker": speaker}) for row in saved["files"]]
    return AuditReport(audits, [summarize_speaker(speaker, folder, audits, needed_minutes)], saved["methods"],
                       saved["notes"])


# --- summaries and the report ------------------------------------------------------------------------------
def summarize_speaker(name: str, folder: Path, audits: list[FileAudit], needed_minutes: float) -> SpeakerSummary:
    minutes = sum(a.sound_seconds for a in audits if a.readable and not a.flagged) / 60.0
    return SpeakerSummary(name, folder, len(audits), sum(a.flagged for a in audits), round(minutes, 2),
                          needed_minutes)


def _checked_methods(methods: Iterable[str]) -> tuple[str, ...]:
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise VoiceconvError(f"unknown audit method(s) {', '.join(unknown)}; valid: {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in methods)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


def _number(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "" if value is None else f"{value * scale:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(report: AuditReport) -> str:
    lines = ["# Training data audit", "",
             f"Checks run: {', '.join(report.methods)}. {len(report.flagged)} of {len(report.files)} file(s) flagged.",
             *[f"\n> {note}" for note in report.notes], "",
             "| speaker | folder | files | flagged | minutes of sound (unflagged) | needed | enough |",
             "|---|---|---|---|---|---|---|"]
    for s in report.speakers:
        lines.append(f"| {_cell(s.name)} | {_cell(str(s.folder))} | {s.files} | {s.flagged} | {s.minutes:.1f} | "
                     f"{s.needed_minutes:g} | {'yes' if s.enough else 'NO: add recordings'} |")
    if report.flagged:
        lines += ["", "## Flagged files", "", "| file | reason |", "|---|---|"]
        lines += [f"| {_cell(str(f.path))} | {_cell(f.reason)} |" for f in report.flagged]
    lines += ["", "## Every file", "",
              ("| file | speaker | seconds | Hz | LUFS | clipped % | silence % | SNR dB | embedding distance "
               "| flagged | reason |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in report.files:
        lines.append(f"| {_cell(str(f.path))} | {_cell(f.speaker)} | {_number(f.seconds, 2)} | {f.sample_rate or ''} "
                     f"| {_number(f.loudness_lufs)} | {_number(f.clipped_share, 2, 100)} "
                     f"| {_number(f.silence_share, 0, 100)} | {_number(f.snr_db)} | {_number(f.embedding_distance, 3)} "
                     f"| {'yes' if f.flagged else 'no'} | {_cell(f.reason)} |")
    return "\n".join(lines) + "\n"


def table_csv(files) -> str:
    """``file,flagged,reason`` rows of audited files (anything with ``path``, ``flagged`` and ``reason``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "flagged", "reason"])
    for f in files:
        writer.writerow([str(f.path), "yes" if f.flagged else "no", f.reason])
    return out.getvalue()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (a report or a cache file; never into an audited folder)."""
    from voiceconv.files import atomic_output

    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
