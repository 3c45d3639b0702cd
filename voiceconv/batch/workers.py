"""A crash-tolerant pool of spawned worker processes, for any picklable task (it knows nothing of audio).

:func:`in_worker_pool` runs a task on every item in ``jobs`` processes and yields each item's outcome as it
finishes; a worker that dies (out of memory, a crash in a native library) fails only the item it was running,
as a :class:`TaskFailed` whose reason is :data:`WORKER_DIED`. :func:`watch_parent` lets a worker notice that
the process that started it is gone (``kill -9``) and stop.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from typing import TypeVar

WORKER_DIED = "the worker process converting it died (out of memory, or a crash in a native library)"
PARENT_CHECK_SECONDS = 0.5  # how often a worker checks that the process that started it is still alive
PARENT_GONE_GRACE_SECONDS = 30.0  # for a worker to unwind its conversion once its parent is gone

Item = TypeVar("Item")


@dataclass(frozen=True)
class TaskFailed:
    """The outcome :func:`in_worker_pool` gives an item whose task returned nothing: ``reason`` says why."""

    reason: str


def watch_parent(parent: int) -> None:
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


def in_worker_pool(items: Iterable[Item], jobs: int, initializer: tuple[Callable, tuple],
                   task: Callable, task_args: tuple = ()) -> Iterator[tuple[Item, object]]:
    """``(item, task(item, *task_args))`` for every item, from ``jobs`` spawned processes, as they finish.

    A worker that dies breaks its pool: the items that were in flight are
    rerun one at a time in a fresh pool, so only an item that kills a worker
    again fails, with a :class:`TaskFailed` whose ``reason`` is :data:`WORKER_DIED`; the others carry on. Closing the
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
        yield item, outcome or TaskFailed(reason=WORKER_DIED)
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
        return TaskFailed(reason=f"unexpected {type(err).__name__} in a worker process: {err}")
