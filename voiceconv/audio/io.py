"""Reading and writing audio files, robustly.

Everything libsndfile reads is accepted (WAV, FLAC, OGG Vorbis/Opus, MP3,
AIFF, ...). Files are read in blocks, downmixed to mono and resampled with
soxr as they stream, so a long multi-channel 48 kHz file never sits in memory
at its original size. Every problem raises a specific :class:`AudioError`
naming the file and what to do about it.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from voiceconv.files import atomic_output
from voiceconv.errors import (
    AudioFileNotFoundError,
    CorruptAudioError,
    EmptyAudioError,
    NonFiniteAudioError,
    SilentAudioError,
    TooShortError,
    UnsupportedFormatError,
)

#: Containers libsndfile can read, as shown to users in error messages.
READABLE_FORMATS = "WAV, FLAC, OGG (Vorbis/Opus), MP3, AIFF, AU, CAF, W64"
#: Output formats by file extension: (libsndfile format, subtype).
WRITABLE_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
#: Leading bytes of containers libsndfile understands; a file that starts like
#: one of these but fails to decode is corrupt rather than "not audio".
_AUDIO_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b".snd", b"caff", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
#: Containers libsndfile cannot read, named in errors with a conversion hint.
UNSUPPORTED_CONTAINERS = {".m4a", ".mp4", ".aac", ".webm", ".wma", ".mkv", ".mov", ".amr", ".3gp"}

_EXACT_LENGTH_FORMATS = {"WAV", "WAVEX", "RF64", "W64", "FLAC", "AIFF", "AU", "CAF"}

DEFAULT_BLOCK_SECONDS = 30.0
SILENCE_PEAK_DBFS = -60.0
LOUDNESS_BLOCK_SECONDS = 0.4  # BS.1770 gating block


#: File extensions treated as audio when a folder is searched.
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"}


def audio_files(folder: str | Path) -> list[Path]:
    """Audio files (by extension) under ``folder``, recursively, sorted; an error if it is not a folder. Only
    regular files: see :func:`audio_entries` for the rest and why they are left out."""
    return audio_entries(folder)[0]


def audio_entries(folder: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``(regular audio files, [(entry, why it is not read)])`` under ``folder``, recursively, sorted, by extension.

    An entry with an audio extension that is not a regular file (a pipe, a device, a socket, a broken link or a
    link loop) is listed with its reason, and so is a link whose target lies outside ``folder``: no link leads
    out of the folder it was given. Links to folders are not descended into. Raises an error if ``folder`` is not
    a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioFileNotFoundError(folder, "is not a folder of audio files", "check the path")
    root = folder.resolve()
    files, refused = [], []
    for parent, dirs, names in os.walk(folder):
        linked_dirs = [d for d in dirs if os.path.islink(os.path.join(parent, d))]  # os.walk does not enter them
        for name in names + linked_dirs:
            path = Path(parent) / name
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            problem = entry_problem(path, root)
            if problem is None:
                files.append(path)
            else:
                refused.append((path, problem))
    return sorted(files), sorted(refused)


def entry_problem(path: Path, root: Path) -> str | None:
    """Why the folder entry ``path`` is not read (None: a regular file, or a link to one inside ``root``, the
    resolved folder it was found in)."""
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            target = path.resolve(strict=True)
            if not target.is_relative_to(root):
                return "not a regular file: a link leading out of the folder (not followed)"
            mode = os.stat(target).st_mode
    except (OSError, RuntimeError):
        return "not a regular file: a broken link or a link loop"
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "a socket"
            if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special")
    return f"not a regular file: {kind} (not read)"


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about it."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Read an audio file's header; raises an :class:`AudioError` for unusable files."""
    path = _check_exists(path)
    with _open(path) as f:
        return AudioInfo(str(path), f.samplerate, f.channels, f.frames, f.format)


def wav_data_shortfall(path: str | Path) -> int:
    """Bytes missing from a RIFF/WAVE file's ``data`` chunk (0 when complete or not a WAV).

    libsndfile silently shortens truncated WAV files to what is present; the
    header's declared chunk size tells us the file was cut short.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(4) != b"RIFF" or not (f.read(4) and f.read(4) == b"WAVE"):
            return 0
        while True:
            header = f.read(8)
            if len(header) < 8:
                return 0
            chunk_id, chunk_size = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk_id == b"data":
                if chunk_size == 0xFFFFFFFF:  # streaming writers leave the size unset
                    return 0
                return max(0, f.tell() + chunk_size - size)
            f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)


def stream_audio(
    path: str | Path, sample_rate: int, block_seconds: float = DEFAULT_BLOCK_SECONDS
) -> Iterator[np.ndarray]:
    """Yield the file as mono float32 blocks at ``sample_rate``, in bounded memory.

    Raises :class:`CorruptAudioError` when decoding fails midway or the file is
    shorter than its header declares, :class:`NonFiniteAudioError` on NaN/inf.
    """
    path = _check_exists(path)
    missing = wav_data_shortfall(path)
    if missing:
        raise CorruptAudioError(path, f"truncated: the WAV header declares {missing} more bytes of audio than the file holds",
                                "the download or copy was cut short; get the complete file")
    with _open(path) as f:
        declared = f.frames
        block_frames = max(1, int(block_seconds * f.samplerate))
        resampler = None if f.samplerate == sample_rate else soxr.ResampleStream(
            f.samplerate, sample_rate, 1, dtype="float32", quality="HQ"
        )
        read = 0
        while True:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)  # [frames, channels]
            except (sf.LibsndfileError, RuntimeError) as err:
                where = f" after {read / f.samplerate:.2f} s" if read else ""
                raise CorruptAudioError(path, f"decoding failed{where}: {err}",
                                        "the file is damaged or truncated; re-export it from the original") from None
            last = len(block) < block_frames
            read += len(block)
            if not np.isfinite(block).all():
                raise NonFiniteAudioError(path, "contains NaN or infinite samples",
                                          "re-export it as 16-bit PCM")
            mono = block.mean(axis=1)  # [frames]
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if len(mono):
                yield mono.astype(np.float32, copy=False)
            if last:
                break
    # Compressed formats estimate their length from headers; allow them 2 % slack.
    expected = declared if f.format in _EXACT_LENGTH_FORMATS else int(0.98 * declared)
    if read < expected:
        raise CorruptAudioError(path, f"truncated: header declares {declared} samples, file holds {read}",
                                "the download or copy was cut short; get the complete file")


def load_audio(
    path: str | Path,
    sample_rate: int,
    *,
    trim_silence: bool = False,
    loudness_lufs: float | None = None,
    min_seconds: float = 0.1,
) -> np.ndarray:
    """Load any readable audio file as a mono float32 waveform ``[samples]`` at ``sample_rate``.

    Optionally trims leading/trailing silence and normalizes loudness to
    ``loudness_lufs`` (ITU-R BS.1770). Raises a specific
    :class:`AudioError` for missing, non-audio, corrupt, empty, too short,
    silent or non-finite input.
    """
    blocks = list(stream_audio(path, sample_rate))
    wav = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return prepare_waveform(wav, sample_rate, name=str(path), trim_silence=trim_silence,
                            loudness_lufs=loudness_lufs, min_seconds=min_seconds)


def prepare_waveform(
    wav: np.ndarray,
    sample_rate: int,
    *,
    name: str = "<waveform>",
    trim_silence: bool = False,
    loudness_lufs: float | None = None,
    min_seconds: float = 0.1,
) -> np.ndarray:
    """Validate an in-memory mono waveform and apply optional trimming / loudness normalization."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"expected a mono waveform [samples], got shape {wav.shape}")
    if len(wav) and not np.isfinite(wav).all():
        raise NonFiniteAudioError(name, "contains NaN or infinite samples", "re-export it as 16-bit PCM")
    check_level(name, len(wav), float(np.abs(wav).max(initial=0.0)))
    if trim_silence:
        wav = trim_silences(wav)
    if len(wav) < min_seconds * sample_rate:
        raise TooShortError(name, f"is {len(wav) / sample_rate:.3f} s long, at least {min_seconds} s of sound is needed",
                            "use a longer recording")
    if loudness_lufs is not None:
        wav = normalize_loudness(wav, sample_rate, loudness_lufs)
    return wav


def check_level(name: str | Path, samples: int, peak: float) -> None:
    """Refuse audio of ``samples`` samples with this ``peak`` magnitude when it is empty or silent, as the loaders do
    (for readers that go through a file block by block)."""
    if samples == 0:
        raise EmptyAudioError(name, "contains no audio samples", "record or export it again")
    if peak < 10 ** (SILENCE_PEAK_DBFS / 20):
        raise SilentAudioError(name, f"is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS)",
                               "check the microphone or the file's volume")


def trim_silences(wav: np.ndarray, top_db: float = 40.0) -> np.ndarray:
    """Drop leading and trailing parts more than ``top_db`` below the peak."""
    import librosa

    trimmed, _ = librosa.effects.trim(wav, top_db=top_db, frame_length=512, hop_length=128)
    return trimmed


def loudness(wav: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4 with gating, via torchaudio).

    Clips shorter than the 400 ms gating block, or gated away entirely
    (quieter than -70 LUFS), get an RMS estimate instead, so the result is
    finite for any non-zero signal.
    """
    import torch
    import torchaudio.functional

    value = -np.inf
    if len(wav) >= int(LOUDNESS_BLOCK_SECONDS * sample_rate):
        # torchaudio's K-weighting filters clamp to [-1, 1], and their treble shelf lifts a full-scale signal
        # past it: measure a copy scaled to a 0.1 peak, then undo the scale.
        peak = float(np.abs(wav).max(initial=0.0))
        scale = 0.1 / peak if peak > 0.0 else 1.0
        samples = torch.from_numpy(np.asarray(wav, dtype=np.float32) * np.float32(scale))[None]  # [1 channel, samples]
        value = float(torchaudio.functional.loudness(samples, sample_rate)) - 20 * np.log10(scale)
    if not np.isfinite(value):
        value = 20 * np.log10(np.sqrt(np.mean(np.asarray(wav, dtype=np.float64) ** 2)) + 1e-12) - 0.691
    return float(value)


class LoudnessMeter:
    """:func:`loudness` of audio pushed block by block (mono ``[n]`` at ``sample_rate``), in memory that grows by
    one number per 100 ms of audio: the same BS.1770-4 measure (K-weighting, 400-ms blocks overlapping by 75%,
    absolute and relative gates, the RMS estimate where gating leaves nothing), computed in float64."""

    def __init__(self, sample_rate: int):
        from scipy.signal import lfilter_zi

        self.sample_rate = sample_rate
        self.step = max(1, int(round(LOUDNESS_BLOCK_SECONDS * sample_rate / 4)))  # 100 ms
        self._filters = [(b, a, lfilter_zi(b, a) * 0.0) for b, a in _k_weighting(sample_rate)]
        self._carry = np.zeros(0)
        self._energies: list[np.ndarray] = []  # sums of squares of the K-weighted audio, per 100 ms
        self._sum_squares, self._samples = 0.0, 0

    def push(self, block: np.ndarray) -> None:
        """Measure the next samples."""
        from scipy.signal import lfilter

        x = np.asarray(block, dtype=np.float64)
        self._sum_squares += float(x @ x)
        self._samples += len(x)
        for i, (b, a, state) in enumerate(self._filters):
            x, state = lfilter(b, a, x, zi=state)
            self._filters[i] = (b, a, state)
        x = np.concatenate([self._carry, x])
        whole = len(x) // self.step
        self._energies.append(np.sum(x[:whole * self.step].reshape(whole, self.step) ** 2, axis=1))
        self._carry = x[whole * self.step:]

    def lufs(self) -> float:
        """The integrated loudness of everything pushed, in LUFS."""
        value = -np.inf
        if self._samples >= int(LOUDNESS_BLOCK_SECONDS * self.sample_rate):
            steps = np.concatenate(self._energies)
            blocks = (steps[:-3] + steps[1:-2] + steps[2:-1] + steps[3:]) / (4 * self.step)  # [blocks]
            value = _gated_loudness(blocks)
        if not np.isfinite(value):
            value = 20 * np.log10(np.sqrt(self._sum_squares / max(self._samples, 1)) + 1e-12) - 0.691
        return float(value)


def _gated_loudness(blocks: np.ndarray) -> float:
    """BS.1770's gated loudness of the 400-ms blocks' mean squares ``[blocks]`` (-inf when nothing passes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        levels = -0.691 + 10 * np.log10(blocks)
        gated = levels > -70.0
        if not gated.any():
            return -np.inf
        relative = -0.691 + 10 * np.log10(blocks[gated].mean()) - 10.0
        gated &= levels > relative
        return float(-0.691 + 10 * np.log10(blocks[gated].mean())) if gated.any() else -np.inf


def _k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770's two K-weighting biquads as torchaudio makes them: a 4-dB treble shelf at 1500 Hz, a 38-Hz high-pass;
    ``[(b [3], a [3])]`` normalised to ``a[0] = 1``."""
    w0, q = 2 * np.pi * 1500.0 / rate, 1 / np.sqrt(2)
    gain, alpha, cos = 10 ** (4.0 / 40), np.sin(w0) / 2 / q, np.cos(w0)
    t1, t2, t3 = 2 * np.sqrt(gain) * alpha, (gain - 1) * cos, (gain + 1) * cos
    shelf = (np.array([gain * ((gain + 1) + t2 + t1), -2 * gain * ((gain - 1) + t3), gain * ((gain + 1) + t2 - t1)]),
             np.array([(gain + 1) - t2 + t1, 2 * ((gain - 1) - t3), (gain + 1) - t2 - t1]))
    w0 = 2 * np.pi * 38.0 / rate
    alpha, cos = np.sin(w0) / 2 / 0.5, np.cos(w0)
    highpass = (np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]), np.array([1 + alpha, -2 * cos, 1 - alpha]))
    return [(b / a[0], a / a[0]) for b, a in (shelf, highpass)]


def normalize_loudness(wav: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Scale to ``target_lufs`` integrated loudness (BS.1770), never past 0.99 peak."""
    peak = float(np.abs(wav).max(initial=0.0))
    if peak == 0.0:
        return wav
    gain = min(10 ** ((target_lufs - loudness(wav, sample_rate)) / 20), 0.99 / peak)
    return (wav * gain).astype(np.float32)


def output_format(path: str | Path) -> tuple[str, str]:
    """libsndfile (format, subtype) for writing ``path``, from its extension; a clear error when impossible."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_FORMATS:
        raise UnsupportedFormatError(path, f"cannot write {suffix or 'files without extension'}",
                                     f"use one of {', '.join(WRITABLE_FORMATS)}")
    container, subtype = WRITABLE_FORMATS[suffix]
    if not sf.check_format(container, subtype):
        raise UnsupportedFormatError(path, f"the installed libsndfile cannot write {suffix}", "choose .wav or .flac")
    return container, subtype


class AudioWriter:
    """Mono float32 blocks -> an audio file, clipped to [-1, 1]; see :func:`audio_writer`."""

    def __init__(self, file: sf.SoundFile):
        self.file, self.frames = file, 0

    def write(self, block: np.ndarray) -> None:
        block = np.clip(np.asarray(block, dtype=np.float32), -1.0, 1.0)
        self.file.write(block)
        self.frames += len(block)


@contextmanager
def audio_writer(path: str | Path, sample_rate: int) -> Iterator[AudioWriter]:
    """Write a mono file block by block, atomically: ``path`` appears only when the block closes without error."""
    container, subtype = output_format(path)
    with atomic_output(path) as tmp:
        with sf.SoundFile(tmp, "w", sample_rate, 1, subtype, format=container) as file:
            yield AudioWriter(file)


def save_audio(path: str | Path, wav: np.ndarray, sample_rate: int) -> Path:
    """Write ``wav`` ``[samples]`` atomically (temporary file + rename); format from the extension.

    A crash midway never leaves a half-written file at ``path``.
    """
    with audio_writer(path, sample_rate) as writer:
        writer.write(wav)
    return Path(path)


def _check_exists(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise AudioFileNotFoundError(path, "no such file", "check the path")
    if not path.is_file():
        raise AudioFileNotFoundError(path, "is not a regular file", "pass an audio file, not a folder")
    if path.stat().st_size == 0:
        raise EmptyAudioError(path, "is an empty file (0 bytes)", "record or export it again")
    return path


def _open(path: Path) -> sf.SoundFile:
    try:
        f = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise _classify_open_error(path, err) from None
    if f.frames == 0:
        f.close()
        raise EmptyAudioError(path, "contains no audio samples (header only)", "record or export it again")
    return f


def _classify_open_error(path: Path, err: Exception) -> Exception:
    with open(path, "rb") as f:
        head = f.read(12)
    convert = (f"readable formats: {READABLE_FORMATS}; convert it first, "
               f"e.g. ffmpeg -i '{path.name}' '{path.stem}.wav'")
    if head[4:8] == b"ftyp":
        return UnsupportedFormatError(path, "is an MP4/M4A/AAC container, which cannot be read", convert)
    if path.suffix.lower() in UNSUPPORTED_CONTAINERS:
        return UnsupportedFormatError(path, f"{path.suffix} files cannot be read", convert)
    if head.startswith(_AUDIO_MAGIC):
        return CorruptAudioError(path, f"looks like audio but cannot be decoded ({err})",
                                 "the file is damaged or truncated; re-export it from the original")
    return UnsupportedFormatError(path, "is not an audio file libsndfile can read",
                                  f"readable formats: {READABLE_FORMATS}")
