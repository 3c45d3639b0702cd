"""The audit's API: audit speaker folders (cheap checks, then the folder-level methods), with a cache of each
folder's results keyed by its files and the settings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from voiceconv.audio.io import audio_entries, audio_files
from voiceconv.audit.measure import flag_folder_deviations, measure_file
from voiceconv.audit.outliers import (DEFAULT_METHODS, METHODS, encoder_or_fallback, flag_embedding_outliers,
                                      flag_likelihood_outliers)
from voiceconv.audit.report import AuditReport, AuditSettings, FileAudit, summarize_speaker, write_text
from voiceconv.errors import VoiceconvError

#: Minutes of sound per speaker asked for when no recipe says (about 60 VCC2016 sentences): enough for audible
#: conversion in the recipes' experience; a recipe's ``data.min_seconds`` is the hard floor training refuses below.
DEFAULT_NEEDED_MINUTES = 5.0
CACHE_VERSION = 2  # raise when what a cached result holds changes (2: streamed measurements)


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
        encoder, methods, notes = encoder_or_fallback(methods)
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
        encoder, methods, notes = encoder_or_fallback(methods)
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


def _checked_methods(methods: Iterable[str]) -> tuple[str, ...]:
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise VoiceconvError(f"unknown audit method(s) {', '.join(unknown)}; valid: {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in methods)
