"""What the page's buttons do, without gradio: convert one clip, convert a batch of uploads.

Each request works in its own folder under the app's work folder; folders
older than an hour are swept away when a new request starts.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voiceconv.audio.io import audio_info, load_audio, save_audio
from voiceconv.batch import BatchItem, Failure, plan_batch, run_batch, write_failures
from voiceconv.convert import Converter
from voiceconv.errors import AudioError
from voiceconv.web.archive import copy_upload, extract_zip
from voiceconv.web.limits import Limits, UploadError, check_duration, check_upload_size, duration_problem
from voiceconv.web.spectrogram import colorize

JOB_MAX_AGE_SECONDS = 3600


@dataclass(frozen=True)
class ClipResult:
    """A converted clip: the audio file and both spectrograms as RGB pictures."""

    audio: Path
    input_picture: np.ndarray
    output_picture: np.ndarray


def new_job_dir(work_root: Path, max_age_seconds: float = JOB_MAX_AGE_SECONDS) -> Path:
    """A fresh private folder for one request; removes request folders older than ``max_age_seconds``."""
    work_root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - max_age_seconds
    for old in work_root.glob("job-*"):
        if old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="job-", dir=work_root))


def load_upload(path: str | Path | None, sample_rate: int, limits: Limits) -> np.ndarray:
    """An uploaded or recorded file as a mono float32 waveform at ``sample_rate``, within the limits."""
    if not path:
        raise UploadError("no audio yet: record with the microphone, upload a file or pick an example")
    name = Path(path).name
    check_upload_size(path, limits)
    check_duration(name, audio_info(path).duration, limits)  # the header, before decoding anything
    wav = load_audio(path, sample_rate)
    check_duration(name, len(wav) / sample_rate, limits)  # compressed formats only estimate it in the header
    return wav


def convert_clip(converter: Converter, path: str | Path | None, direction: str, limits: Limits,
                 job_dir: Path, pitch: str | float = "auto") -> ClipResult:
    """Convert one upload; writes ``<name>_<target speaker>.wav`` into ``job_dir``."""
    rate = converter.features.sample_rate
    wav = load_upload(path, rate, limits)
    converted = converter.convert(wav, rate, direction, pitch)
    target = converter.speakers["b" if direction == "a2b" else "a"]
    audio = save_audio(job_dir / f"{Path(path).stem}_{target}.wav", converted, rate)
    return ClipResult(audio, _picture(converter, wav), _picture(converter, converted))


def _picture(converter: Converter, wav: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return colorize(converter.encoder(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))))


@dataclass(frozen=True)
class BatchResult:
    """A converted batch: the zip to download, the failures as table rows, a one-line summary."""

    archive: Path
    failure_rows: list[list[str]]
    summary: str


def gather_uploads(uploads: Sequence[str | Path], folder: Path, limits: Limits) -> Path:
    """Copy uploaded audio files and unpack uploaded zips (checked by :func:`extract_zip`) into ``folder``."""
    if not uploads:
        raise UploadError("no files yet: upload audio files or a zip of them")
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for upload in uploads:
        check_upload_size(upload, limits)
        if Path(upload).suffix.lower() == ".zip":
            count += len(extract_zip(upload, folder, limits))
        else:
            copy_upload(upload, folder)
            count += 1
        if count > limits.max_batch_files:
            raise UploadError(f"{count} files uploaded; {limits.files_limit_name} is limited "
                              f"to {limits.max_batch_files}")
    if count == 0:
        raise UploadError("the uploads hold no files to convert (an empty zip?)")
    return folder


def convert_batch(converter: Converter, uploads: Sequence[str | Path], direction: str, limits: Limits,
                  job_dir: Path, pitch: str | float = "auto",
                  on_file: Callable[[int, int], None] | None = None) -> BatchResult:
    """Convert every uploaded file (zips unpacked) to wav; the result zip holds them and ``failures.csv``.

    Files that are not audio, are damaged, or are longer than
    ``limits.max_seconds`` are failures, listed with the reason; the others
    still convert. Paths in the report are the names inside the upload. ``on_file(done, total)`` follows the
    conversions (see :func:`voiceconv.batch.run_batch`).
    """
    inputs = gather_uploads(uploads, job_dir / "inputs", limits)
    out_dir = job_dir / "converted"
    items, failures = plan_batch([inputs], out_dir, glob="*", audio_format="wav")
    items, too_long = _within_duration(items, limits)
    report = run_batch(converter.path, items, direction, progress=False, converter=converter,
                       planning_failures=[*failures, *too_long], pitch=pitch, on_file=on_file)
    failures = [(_shown_path(source, inputs), reason) for source, reason in report.failures]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_failures(out_dir, failures)
    shutil.rmtree(inputs, ignore_errors=True)
    archive = zip_files(out_dir, job_dir / f"{_archive_name(converter, direction)}.zip")
    summary = f"Converted {len(report.converted)} file(s) in {report.wall_seconds:.1f} s; {len(failures)} failed."
    return BatchResult(archive, [[str(path), reason] for path, reason in failures], summary)


def zip_files(folder: Path, archive: Path) -> Path:
    """Zip the files under ``folder`` (paths relative to it; empty folders left out) into ``archive``."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            out.write(path, path.relative_to(folder).as_posix())
    return archive


def _archive_name(converter: Converter, direction: str) -> str:
    """E.g. ``kathleen_to_rms`` for a2b with the default model."""
    source, target = ("a", "b") if direction == "a2b" else ("b", "a")
    return f"{converter.speakers[source]}_to_{converter.speakers[target]}"


def _within_duration(items: list[BatchItem], limits: Limits) -> tuple[list[BatchItem], list[Failure]]:
    """Items short enough to convert, and failures for the longer ones (unreadable ones fail when converted)."""
    kept, too_long = [], []
    for item in items:
        try:
            problem = duration_problem(audio_info(item.source).duration, limits)
        except AudioError:
            problem = None
        if problem:
            too_long.append((item.source, problem))
        else:
            kept.append(item)
    return kept, too_long


def _shown_path(source: Path, inputs: Path) -> Path:
    """``source`` as the user named it: relative to the upload folder."""
    return source.relative_to(inputs) if source.is_relative_to(inputs) else Path(source.name)
