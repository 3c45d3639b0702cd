"""Running a plan: converting its items with a :class:`~voiceconv.convert.Converter`, here or in worker processes.

:func:`run_batch` skips finished outputs, removes the temporary files a killed run left, converts the rest
(in this process, or in :func:`~voiceconv.batch.workers.in_worker_pool` workers that each load the model once)
and returns a :class:`BatchReport` of what it converted, skipped and could not convert.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voiceconv.batch.plan import BatchItem, Failure
from voiceconv.batch.workers import TaskFailed, in_worker_pool, watch_parent
from voiceconv.errors import AudioError, VoiceconvError
from voiceconv.files import partial_output_target, remove_abandoned
from voiceconv.runtime import resolve_device, worker_threads

if TYPE_CHECKING:
    from voiceconv.convert import Converter


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


def run_batch(model_path: str | Path, items: Iterable[BatchItem], direction: str = "a2b", *, overwrite: bool = False,
              jobs: int = 1, sample_rate: int | None = None, progress: bool = True,
              planning_failures: Iterable[Failure] = (), converter: Converter | None = None,
              device: str = "cpu", pitch: str | float | None = "auto",
              on_file: Callable[[int, int], None] | None = None) -> BatchReport:
    """Convert ``items`` with the model; outputs that already exist are skipped unless ``overwrite``.

    ``jobs`` > 1 converts in that many spawned worker processes, each loading
    the model once and using its share of the CPU cores; a worker that dies
    fails only the file it was converting. ``progress`` shows a progress bar
    on stderr when it is a terminal, and prints each failure there.
    ``planning_failures`` (from :func:`plan_batch`) start the report's
    failures; ``converter``, an already loaded model, saves loading
    ``model_path`` in this process. ``device`` (see :func:`resolve_device`)
    places the model, in every worker too: on a GPU, ``jobs`` workers share
    it while each runs WORLD on its share of the CPU cores. ``pitch`` is
    :meth:`Converter.convert`'s. ``on_file(done, total)`` is called
    after each file, converted or failed (the page's progress bar). Ctrl-C (KeyboardInterrupt) stops the
    batch cleanly and returns the report so far with ``interrupted`` set.
    Raises :class:`~voiceconv.errors.ModelFileError` before converting
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
        for done, (item, outcome) in enumerate(results, 1):
            _record(report, item, outcome)
            if outcome.reason is not None:
                show(f"failed: {item.source}: {outcome.reason}", file=sys.stderr)
            bar.update()
            if on_file is not None:
                on_file(done, len(todo))
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        results.close()  # stops the workers when interrupted
        _remove_partial_outputs(todo)  # what a worker that died left
        bar.close()
        report.wall_seconds = time.monotonic() - started
    return report


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


def _conversions(converter: Converter, todo: list[BatchItem], jobs: int, direction: str, sample_rate: int | None,
                 pitch: str | float | None) -> Iterator[tuple[BatchItem, _Outcome | TaskFailed]]:
    """``(item, outcome)`` for every item as it finishes, from this process or from ``jobs`` workers."""
    if jobs > 1 and len(todo) > 1:
        return _convert_in_workers(converter.path, str(converter.device), todo, min(jobs, len(todo)), direction,
                                   sample_rate, pitch)
    return ((item, _convert_one(converter, item, direction, sample_rate, pitch)) for item in todo)


def _record(report: BatchReport, item: BatchItem, outcome: _Outcome | TaskFailed) -> None:
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


# --- worker processes: each loads the model once ----------------------------------------------------------------

_worker_converter: Converter | None = None
_worker_busy = False


def _start_worker(model_path: str, device: str, threads: int) -> None:
    """Worker initializer: load the model once onto ``device``; Ctrl-C is left to the parent, SIGTERM stops cleanly,
    and so does the parent's death (see :func:`~voiceconv.batch.workers.watch_parent`)."""
    global _worker_converter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    threading.Thread(target=watch_parent, args=(os.getppid(),), name="voiceconv-parent-watch", daemon=True).start()
    import torch

    from voiceconv.convert import Converter

    torch.set_num_threads(threads)
    _worker_converter = Converter(model_path, device=device)


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


def _convert_in_workers(model_path: Path, device: str, items: list[BatchItem], jobs: int, direction: str,
                        sample_rate: int | None, pitch: str | float | None
                        ) -> Iterator[tuple[BatchItem, _Outcome | TaskFailed]]:
    initializer = (_start_worker, (str(model_path), device, worker_threads(jobs)))
    return in_worker_pool(items, jobs, initializer, _convert_in_worker, (direction, sample_rate, pitch))
