"""Planning a batch: which files the inputs contribute, where each one's output goes, and the failure list.

:func:`plan_batch` turns inputs (files and folder trees) into :class:`BatchItem` s with their output paths
and the inputs that cannot be converted; :func:`shard` splits a plan between torchrun's processes;
:func:`write_failures` lists the failures in a CSV file without ever replacing a user's file or an input.
Nothing here reads audio or loads a model.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from voiceconv.audio.io import UNSUPPORTED_CONTAINERS, AUDIO_EXTENSIONS, WRITABLE_FORMATS, entry_problem, output_format
from voiceconv.errors import AudioError, VoiceconvError
from voiceconv.files import atomic_output

#: Output formats, as ``--format`` names them.
OUTPUT_FORMATS = tuple(suffix.lstrip(".") for suffix in WRITABLE_FORMATS)
#: Extensions a folder search takes without a glob: readable audio, and audio containers that are reported unreadable.
AUDIO_LIKE_EXTENSIONS = frozenset(AUDIO_EXTENSIONS | UNSUPPORTED_CONTAINERS)
FAILURE_COLUMNS = ["file", "reason"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets take for the start of a formula
MAX_FAILURE_LIST_BYTES = 64 * 1024 * 1024
MAX_FAILURE_LIST_NAMES = 100

Failure = tuple[Path, str]  # (input file or folder, reason)


class BatchUsageError(VoiceconvError):
    """A batch that cannot start as asked (the CLI exits 2), e.g. an output folder inside an input folder."""


@dataclass(frozen=True)
class BatchItem:
    """One conversion of a batch."""

    source: Path
    destination: Path


def plan_batch(inputs: Iterable[str | Path], out_dir: str | Path, *, glob: str | None = None, audio_format: str = "wav",
               allow_out_inside_input: bool = False) -> tuple[list[BatchItem], list[Failure]]:
    """Decide every input file's output path: ``(items sorted by source, failures)``.

    Failures are inputs that do not exist, folders with nothing to convert,
    and files whose output path is already another file's output or is an
    input itself. Raises :class:`BatchUsageError` for a format that cannot
    be written, an ``out_dir`` that is a file, or an ``out_dir`` inside an
    input folder unless ``allow_out_inside_input`` (files under ``out_dir``
    are then never taken as inputs).
    """
    inputs, out_dir = [Path(p) for p in inputs], Path(out_dir)
    suffix = _output_suffix(audio_format)
    _check_out_dir(inputs, out_dir, allow_out_inside_input)
    found: list[tuple[Path, Path]] = []
    failures: list[Failure] = []
    for path in inputs:
        files, problems = _input_files(path, out_dir, glob)
        found += [(source, out_dir / relative.parent / f"{relative.stem}{suffix}") for source, relative in files]
        failures += problems
    items, clashes = _assign_destinations(found)
    return sorted(items, key=lambda item: str(item.source)), failures + clashes


def write_failures(out_dir: str | Path, failures: Iterable[Failure], name: str = "failures.csv") -> Path | None:
    """Write the failures (columns file, reason) atomically as ``out_dir/name`` and return its path; with no
    failures, remove the stale list an earlier run left there and return None.

    Only a failure list is ever replaced or removed (:func:`is_failure_list`: voiceconv's two columns under
    the header ``file,reason``): when ``out_dir/name`` is another file, a user's own or one of the run's inputs,
    it stays untouched and the list goes to the first name free for it, ``failures-2.csv``, ``failures-3.csv``...
    Cells a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) get a leading
    apostrophe, as spreadsheet tools expect.
    """
    failures = list(failures)
    path = _failure_list_path(Path(out_dir), name, {_absolute(source) for source, _ in failures})
    if not failures:
        path.unlink(missing_ok=True)  # an earlier list, or nothing
        return None
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(FAILURE_COLUMNS)
        writer.writerows((spreadsheet_safe(str(source)), spreadsheet_safe(reason)) for source, reason in failures)
    return path


def is_failure_list(path: str | Path) -> bool:
    """Whether ``path`` is a regular file holding a failure list as :func:`write_failures` writes them."""
    path = Path(path)
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FAILURE_LIST_BYTES:
            return False
        with open(path, newline="", encoding="utf-8") as file:
            rows = csv.reader(file)
            return next(rows, None) == FAILURE_COLUMNS and all(len(row) == 2 for row in rows)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a leading apostrophe when a spreadsheet would take it for a formula (OWASP's CSV injection)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _failure_list_path(out_dir: Path, name: str, inputs: set[str]) -> Path:
    """Where this run's failure list goes: ``name`` unless another file (or an input) is there, else the first
    ``<stem>-<n><suffix>`` that is free or holds an earlier list."""
    first = Path(name)
    for n in range(1, MAX_FAILURE_LIST_NAMES + 1):
        path = out_dir / (name if n == 1 else f"{first.stem}-{n}{first.suffix}")
        if _absolute(path) in inputs:
            continue
        if not (path.exists() or path.is_symlink()) or is_failure_list(path):
            return path
    raise VoiceconvError(f"{out_dir}: no free name for the failure list ({name} and {MAX_FAILURE_LIST_NAMES - 1} "
                         "others are taken by other files)")


def _absolute(path: str | Path) -> str:
    return os.path.normcase(os.path.abspath(path))


def shard(items: list[BatchItem], rank: int, world_size: int) -> list[BatchItem]:
    """This process's share of a sorted plan: every ``world_size``-th item from ``rank``."""
    return items[rank::world_size]


def _output_suffix(audio_format: str) -> str:
    suffix = "." + audio_format.lower().lstrip(".")
    try:
        output_format(Path(f"output{suffix}"))
    except AudioError as err:
        raise BatchUsageError(f"output format {audio_format!r}: {err.problem} ({err.advice})") from None
    return suffix


def _check_out_dir(inputs: list[Path], out_dir: Path, allow_inside_input: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchUsageError(f"{out_dir}: the output folder is a file; choose a folder")
    if allow_inside_input:
        return
    for path in inputs:
        if path.is_dir() and out_dir.resolve().is_relative_to(path.resolve()):
            raise BatchUsageError(
                f"{out_dir}: the output folder is inside the input folder {path}, so outputs would mix with inputs; "
                "choose a folder outside it, or pass --allow-out-inside-input (files under the output folder are "
                "then never taken as inputs)")


def _input_files(path: Path, out_dir: Path, glob: str | None) -> tuple[list[tuple[Path, Path]], list[Failure]]:
    """One input's ``(file, its path relative to the output folder)`` pairs, and its problems."""
    if path.is_dir():
        return _folder_files(path, out_dir, glob)
    if path.is_file():
        return [(path, Path(path.name))], []
    return [], [(path, "not a regular file or folder" if path.exists() else "no such file or folder")]


def _folder_files(folder: Path, out_dir: Path, glob: str | None) -> tuple[list[tuple[Path, Path]], list[Failure]]:
    """Files under ``folder`` that ``glob`` selects, recursively, leaving out hidden names and ``out_dir``; entries
    that are not regular files, and links leading out of ``folder``, are problems (never opened)."""
    excluded, base = out_dir.resolve(), folder.resolve()
    found: list[tuple[Path, Path]] = []
    problems: list[Failure] = []

    def unreadable(err: OSError) -> None:
        problems.append((Path(err.filename), f"cannot read the folder: {err.strerror}"))

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        root = Path(root)
        if root.resolve() == excluded:
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (root / d).resolve() != excluded)
        for name in sorted(files):
            path, relative = root / name, (root / name).relative_to(folder)
            if name.startswith(".") or not _selected(relative, glob):
                continue
            problem = entry_problem(path, base)  # links leading out of the folder are not followed
            if problem is None:
                found.append((path, relative))
            else:
                problems.append((path, problem))
    if not found and not problems:
        what = f"files matching {glob!r}" if glob else "audio files"
        problems.append((folder, f"no {what} in this folder (hidden files and the output folder are left out)"))
    return found, problems


def _selected(relative: Path, glob: str | None) -> bool:
    if glob is None:
        return relative.suffix.lower() in AUDIO_LIKE_EXTENSIONS
    return relative.match(glob)


def _assign_destinations(found: list[tuple[Path, Path]]) -> tuple[list[BatchItem], list[Failure]]:
    """First come, first served: an output path already taken, or one that is an input, is a failure."""
    inputs = {source.resolve() for source, _ in found}
    owners: dict[Path, Path] = {}  # resolved output -> input
    items: list[BatchItem] = []
    failures: list[Failure] = []
    for source, destination in found:
        key = destination.resolve()
        owner = owners.get(key)
        if owner is not None and owner.resolve() == source.resolve():
            continue  # the same file named twice (e.g. itself and its folder)
        if key in inputs:
            failures.append((source, f"its output {destination} would overwrite an input file"))
        elif owner is not None:
            failures.append((source, f"its output {destination} is already the output of {owner}; "
                                     "convert one of them separately"))
        else:
            owners[key] = source
            items.append(BatchItem(source, destination))
    return items, failures
