"""Batch conversion: audio files and folder trees -> converted files under one output folder.

:func:`plan_batch` decides what goes where: a file input becomes
``OUT_DIR/<stem>.<format>``; a folder input is searched recursively and its
tree mirrored under ``OUT_DIR``. :func:`run_batch` converts the plan in this
process or in ``jobs`` worker processes and reports what it converted,
skipped and could not convert; :func:`write_failures` lists the failures in
a CSV file. ``voiceconv convert`` and the web page both use them.

Which files a folder input contributes: without a glob, those with an audio
extension (readable ones, and containers such as .m4a that cannot be read,
so that those are reported rather than silently left out); with a glob,
every file whose path inside the folder matches it (``Path.match``), and the
ones that are not audio are reported as failures. Hidden files and folders
(names starting with ".") and anything under ``OUT_DIR`` are never taken
from folders. A file named as an input is always tried.

Guarantees: inputs are only read; no output ever replaces an input; an
output appears only once complete (temporary file + rename, by
:meth:`Converter.convert_file`), so an interrupted batch leaves no
half-written outputs, and a rerun skips finished outputs, removes the
temporary files a killed run left and converts the rest. Worker processes
notice a parent killed with ``kill -9`` and exit, removing their temporary
files. Two runs into one output folder at once are safe: a run removes only
the temporary files no live process is writing (:func:`~voiceconv.files.remove_abandoned`),
so the worst case is a file converted twice, each output complete. The
failure list replaces or removes only a failure list, never a user's file
or an input (:func:`write_failures`).
"""

from __future__ import annotations

import csv
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from voiceconv.audio.io import UNSUPPORTED_CONTAINERS, AUDIO_EXTENSIONS, WRITABLE_FORMATS, output_format
from voiceconv.errors import AudioError, VoiceconvError
from voiceconv.files import atomic_output, partial_output_target, remove_abandoned

if TYPE_CHECKING:
    from voiceconv.convert import Converter

#: Output formats, as ``--format`` names them.
OUTPUT_FORMATS = tuple(suffix.lstrip(".") for suffix in WRITABLE_FORMATS)
#: Extensions a folder search takes without a glob: readable audio, and audio containers that are reported unreadable.
AUDIO_LIKE_EXTENSIONS = frozenset(AUDIO_EXTENSIONS | UNSUPPORTED_CONTAINERS)
WORKER_DIED = "the worker process converting it died (out of memory, or a crash in a native library)"
FAILURE_COLUMNS = ["file", "reason"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets take for the start of a formula
MAX_FAILURE_LIST_BYTES = 64 * 1024 * 1024
MAX_FAILURE_LIST_NAMES = 100
PARENT_CHECK_SECONDS = 0.5  # how often a worker checks that the process that started it is still alive
PARENT_GONE_GRACE_SECONDS = 30.0  # for a worker to unwind its conversion once its parent is gone

Failure = tuple[Path, str]  # (input file or folder, reason)
Item = TypeVar("Item")


class BatchUsageError(VoiceconvError):
    """A batch that cannot start as asked (the CLI exits 2), e.g. an output folder inside an input folder."""


@dataclass(frozen=True)
class BatchItem:
    """One conversion of a batch."""

    source: Path
    destination: Path


@dataclass
class BatchReport:
    """What a batch did: ``converted`` and ``skipped`` hold output paths, ``failures`` (input, reason) pairs."""

    converted: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that already existed
    failures: list[Failure] = field(default_factory=list)
    audio_seconds: float = 0.0  # duration of the audio converted
    wall_seconds: float = 0.0
    interrupted: bool = False

    @property
    def real_time_factor(self) -> float | None:
        """Wall time per second of audio converted (below 1: faster than real time); None before any audio."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else None

    def summary(self) -> str:
        """One line: how many files converted, skipped and failed, seconds of audio, wall time, real-time factor."""
        rtf = self.real_time_factor
        speed = f", real-time factor {rtf:.3f}" if rtf is not None else ""
        return (f"converted {len(self.converted)}, skipped {len(self.skipped)} (output already there), "
                f"failed {len(self.failures)}; {self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s{speed}")


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


def run_batch(model_path: str | Path, items: Iterable[BatchItem], direction: str = "a2b", *, overwrite: bool = False,
              jobs: int = 1, sample_rate: int | None = None, progress: bool = True,
              planning_failures: Iterable[Failure] = (), converter: Converter | None = None,
              device: str = "cpu", pitch: str | float | None = "auto") -> BatchReport:
    """Convert ``items`` with the model; outputs that already exist are skipped unless ``overwrite``.

    ``jobs`` > 1 converts in that many spawned worker processes, each loading
    the model once and using its share of the CPU cores; a worker that dies
    fails only the file it was converting. ``progress`` shows a progress bar
    on stderr when it is a terminal, and prints each failure there.
    ``planning_failures`` (from :func:`plan_batch`) start the report's
    failures; ``converter``, an already loaded model, saves loading
    ``model_path`` in this process. ``device`` (see :func:`resolve_device`)
    places the model; on a GPU the files go through it one after another and
    ``jobs`` is not used. ``pitch`` is :meth:`Converter.convert`'s. Ctrl-C (KeyboardInterrupt) stops the
    batch cleanly and returns the report so far with ``interrupted`` set.
    Raises :class:`~voiceconv.modelfile.ModelFileError` before converting
    anything when the model cannot be loaded.
    """
    from tqdm import tqdm

    from voiceconv.convert import Converter

    started = time.monotonic()
    items = list(items)
    report = BatchReport(failures=list(planning_failures))
    converter = converter or Converter(model_path, device=resolve_device(device))  # also checks the model before any worker starts
    todo = _not_done(items, overwrite, report)
    _remove_partial_outputs(items)
    converter.alignment(direction, pitch)  # a bad direction or pitch is one error, not one per file
    results = _conversions(converter, todo, jobs, direction, sample_rate, pitch)
    bar = tqdm(total=len(todo), unit="file", desc="converting", file=sys.stderr, disable=None if progress else True)
    show = bar.write if progress else lambda line, file=None: None
    for source, reason in report.failures:
        show(f"failed: {source}: {reason}", file=sys.stderr)
    try:
        for item, outcome in results:
            _record(report, item, outcome)
            if outcome.reason is not None:
                show(f"failed: {item.source}: {outcome.reason}", file=sys.stderr)
            bar.update()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        results.close()  # stops the workers when interrupted
        _remove_partial_outputs(todo)  # what a worker that died left
        bar.close()
        report.wall_seconds = time.monotonic() - started
    return report


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


def torchrun_rank() -> tuple[int, int]:
    """``(rank, world size)`` from torchrun's RANK and WORLD_SIZE; ``(0, 1)`` outside torchrun."""
    try:
        rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise BatchUsageError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} "
                              "must be integers") from None
    if not 0 <= rank < world_size:
        raise BatchUsageError(f"RANK={rank} must be in [0, WORLD_SIZE={world_size})")
    return rank, world_size


def resolve_device(device: str) -> str:
    """``auto`` -> this process's GPU (``cuda:<LOCAL_RANK>`` under torchrun) when one is visible, else ``cpu``."""
    import torch

    if device != "auto":
        return device
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"


def shard(items: list[BatchItem], rank: int, world_size: int) -> list[BatchItem]:
    """This process's share of a sorted plan: every ``world_size``-th item from ``rank``."""
    return items[rank::world_size]


def worker_threads(jobs: int) -> int:
    """Torch threads for each of ``jobs`` converting processes, sharing the cores with torchrun's other local ranks."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, cpus // (jobs * local_processes))


# --- planning ---------------------------------------------------------------------------------------------------


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
    """Files under ``folder`` that ``glob`` selects, recursively, leaving out hidden names and ``out_dir``."""
    excluded = out_dir.resolve()
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
            if path.is_file():
                found.append((path, relative))
            else:
                problems.append((path, "not a regular file (a broken link, pipe or device)"))
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


# --- running ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    seconds: float = 0.0
    reason: str | None = None  # why it failed; None when converted


def _not_done(items: list[BatchItem], overwrite: bool, report: BatchReport) -> list[BatchItem]:
    """Items to convert; those whose output exists go to ``report.skipped`` unless ``overwrite``."""
    todo = []
    for item in items:
        if not overwrite and item.destination.is_file():
            report.skipped.append(item.destination)
        else:
            todo.append(item)
    return todo


def _remove_partial_outputs(items: list[BatchItem]) -> None:
    """Delete the temporary files a killed run left beside these items' outputs (never anything else, and never
    one that a running process is still writing)."""
    names: dict[Path, set[str]] = {}
    for item in items:
        names.setdefault(item.destination.parent, set()).add(item.destination.name)
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # no such folder yet
            continue
        for entry in entries:
            if partial_output_target(entry.name) in wanted and entry.is_file(follow_symlinks=False):
                remove_abandoned(entry.path)  # not one a concurrent run (or a live worker) is writing


def _conversions(converter: Converter, todo: list[BatchItem], jobs: int, direction: str,
                 sample_rate: int | None, pitch: str | float | None) -> Iterator[tuple[BatchItem, _Outcome]]:
    """``(item, outcome)`` for every item as it finishes, from this process or from ``jobs`` workers."""
    if jobs > 1 and len(todo) > 1 and converter.device.type == "cpu":
        return _convert_in_workers(converter.path, todo, min(jobs, len(todo)), direction, sample_rate, pitch)
    return ((item, _convert_one(converter, item, direction, sample_rate, pitch)) for item in todo)


def _record(report: BatchReport, item: BatchItem, outcome: _Outcome) -> None:
    if outcome.reason is None:
        report.converted.append(item.destination)
        report.audio_seconds += outcome.seconds
    else:
        report.failures.append((item.source, outcome.reason))


def _convert_one(converter: Converter, item: BatchItem, direction: str, sample_rate: int | None,
                 pitch: str | float | None = "auto") -> _Outcome:
    """Convert one item; a problem with it becomes the failure's reason instead of an exception."""
    try:
        result = converter.convert_file(item.source, item.destination, direction, sample_rate, pitch)
    except AudioError as err:
        return _Outcome(reason=err.problem + (f" ({err.advice})" if err.advice else ""))
    except VoiceconvError as err:
        return _Outcome(reason=str(err).removeprefix(f"{item.source}: "))
    except OSError as err:  # e.g. an unwritable output folder, a full disk
        return _Outcome(reason=f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
    except Exception as err:  # a bug: show it, but let the other files convert
        traceback.print_exc()
        return _Outcome(reason=f"unexpected {type(err).__name__}: {err} (a bug in voiceconv; please report it)")
    return _Outcome(seconds=result.seconds)


# --- worker processes -------------------------------------------------------------------------------------------

_worker_converter: Converter | None = None
_worker_busy = False


def _start_worker(model_path: str, threads: int) -> None:
    """Worker initializer: load the model once; Ctrl-C is left to the parent, SIGTERM stops cleanly, and so does
    the parent's death (see :func:`_watch_parent`)."""
    global _worker_converter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="voiceconv-parent-watch", daemon=True).start()
    import torch

    from voiceconv.convert import Converter

    torch.set_num_threads(threads)
    _worker_converter = Converter(model_path)


def _watch_parent(parent: int) -> None:
    """Stop this worker as SIGTERM does once ``parent`` is gone (``kill -9`` gives it no chance to say so).

    Without this a worker whose parent was killed waits on the task queue forever, and keeps its pipes (and
    multiprocessing's resource tracker) alive with it. A worker that is converting unwinds, which removes its
    temporary file; one that cannot unwind within :data:`PARENT_GONE_GRACE_SECONDS` exits anyway.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(PARENT_GONE_GRACE_SECONDS)
    os._exit(128 + signal.SIGTERM)


def _stop_worker(signum: int, frame) -> None:
    if _worker_busy:
        raise KeyboardInterrupt  # unwinds convert_file, which removes its temporary file
    os._exit(128 + signum)


def _convert_in_worker(item: BatchItem, direction: str, sample_rate: int | None, pitch: str | float | None) -> _Outcome:
    global _worker_busy
    try:
        _worker_busy = True
        return _convert_one(_worker_converter, item, direction, sample_rate, pitch)
    except KeyboardInterrupt:  # SIGTERM from the parent: the temporary file is gone, leave
        os._exit(128 + signal.SIGTERM)
    finally:
        _worker_busy = False


def _convert_in_workers(model_path: Path, items: list[BatchItem], jobs: int, direction: str,
                        sample_rate: int | None, pitch: str | float | None) -> Iterator[tuple[BatchItem, _Outcome]]:
    initializer = (_start_worker, (str(model_path), worker_threads(jobs)))
    return in_worker_pool(items, jobs, initializer, _convert_in_worker, (direction, sample_rate, pitch))


def in_worker_pool(items: Iterable[Item], jobs: int, initializer: tuple[Callable, tuple],
                   task: Callable, task_args: tuple = ()) -> Iterator[tuple[Item, object]]:
    """``(item, task(item, *task_args))`` for every item, from ``jobs`` spawned processes, as they finish.

    A worker that dies breaks its pool: the items that were in flight are
    rerun one at a time in a fresh pool, so only an item that kills a worker
    again fails, with an outcome whose ``reason`` is :data:`WORKER_DIED`; the others carry on. Closing the
    iterator early (Ctrl-C) sends the workers SIGTERM.
    """
    queue: deque[Item] = deque(items)
    suspects: deque[Item] = deque()
    while queue or suspects:
        with _worker_pool(jobs, initializer) as pool:
            healthy = yield from _one_at_a_time(pool, suspects, task, task_args)
            if healthy:
                yield from _all_at_once(pool, queue, suspects, jobs, task, task_args)


@contextmanager
def _worker_pool(jobs: int, initializer: tuple[Callable, tuple]) -> Iterator[ProcessPoolExecutor]:
    function, args = initializer
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=function, initargs=args)
    try:
        yield pool
    except BaseException:  # Ctrl-C, or the caller stopped iterating
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """SIGTERM every worker: one converting removes its temporary file and exits, an idle one just exits."""
    processes = list((pool._processes or {}).values())  # no public way before Python 3.14's terminate_workers()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=30)


def _one_at_a_time(pool: ProcessPoolExecutor, suspects: deque[Item], task: Callable,
                   task_args: tuple) -> Iterator[tuple[Item, object]]:
    """Run the suspects singly: the one whose worker dies fails. Returns False when the pool broke."""
    while suspects:
        item = suspects.popleft()
        outcome = _outcome(pool.submit(task, item, *task_args))
        yield item, outcome or _Outcome(reason=WORKER_DIED)
        if outcome is None:
            return False
    return True


def _all_at_once(pool: ProcessPoolExecutor, queue: deque[Item], suspects: deque[Item], jobs: int,
                 task: Callable, task_args: tuple) -> Iterator[tuple[Item, object]]:
    """Run the queue with ``jobs`` items in flight; when the pool breaks, the items in flight become suspects."""
    running: dict[Future, Item] = {}
    while queue or running:
        try:
            while queue and len(running) < jobs:
                running[pool.submit(task, queue[0], *task_args)] = queue[0]
                queue.popleft()
        except BrokenProcessPool:
            if not running:
                return
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        broken = False
        for future in done:
            item, outcome = running.pop(future), _outcome(future)
            if outcome is None:
                broken = True
                suspects.append(item)
            else:
                yield item, outcome
        if broken:
            wait(running)
            for future, item in running.items():
                outcome = _outcome(future)
                if outcome is None:
                    suspects.append(item)
                else:
                    yield item, outcome
            return


def _outcome(future: Future) -> object | None:
    """A finished task's outcome; None when its worker died."""
    try:
        return future.result()
    except BrokenProcessPool:
        return None
    except Exception as err:  # the task raised past its own error handling: report, carry on
        return _Outcome(reason=f"unexpected {type(err).__name__} in a worker process: {err}")
