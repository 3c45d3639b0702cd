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

The package's parts: :mod:`~voiceconv.batch.plan` (what goes where, the
failure list), :mod:`~voiceconv.batch.run` (converting a plan) and
:mod:`~voiceconv.batch.workers` (the crash-tolerant worker pool); torchrun's
environment and the device come from :mod:`voiceconv.runtime`.
"""

from voiceconv.batch.plan import (OUTPUT_FORMATS, BatchItem, BatchUsageError, Failure, is_failure_list, plan_batch,
                                  shard, spreadsheet_safe, write_failures)
from voiceconv.batch.run import BatchReport, run_batch
from voiceconv.batch.workers import WORKER_DIED, TaskFailed, in_worker_pool
from voiceconv.runtime import LaunchError, resolve_device, torchrun_rank, worker_threads

__all__ = [
    "OUTPUT_FORMATS", "WORKER_DIED", "BatchItem", "BatchReport", "BatchUsageError", "Failure", "LaunchError",
    "TaskFailed", "in_worker_pool", "is_failure_list", "plan_batch", "resolve_device", "run_batch", "shard",
    "spreadsheet_safe", "torchrun_rank", "worker_threads", "write_failures",
]
