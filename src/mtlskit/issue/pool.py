"""The forked worker pool that batch issuance and batch renewal share.

Workers inherit the signer through fork (the CA key is never serialised), take ranges of
the batch, and die with their parent. The parent alone decides when to stop.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Callable, Iterator

POLL_SECONDS = 0.1  # how often the parent looks at a stop request while it waits for workers
PARALLEL_THRESHOLD = 64
TASK_SIZE = 100  # items per worker task: few round trips, little imbalance at the end

Range = tuple[int, int]


def worker_count(count: int) -> int:
    return min(os.cpu_count() or 1, max(1, count // PARALLEL_THRESHOLD))


def start(workers: int) -> "multiprocessing.pool.Pool":
    """A pool of forked workers that ignore SIGINT, die on SIGTERM and with this process."""
    return multiprocessing.get_context("fork").Pool(workers, _start_worker, (os.getpid(),))


def task_ranges(count: int, workers: int, most: int | None = None) -> Iterator[Range]:
    """[start, stop) ranges of the batch: a few tasks per worker at least, ``most`` items
    per task at most."""
    size = max(1, min(most or TASK_SIZE, count // (workers * 8)))
    return ((first, min(first + size, count)) for first in range(0, count, size))


def results(pool, work: Callable[[Range], list], tasks: Iterator[Range],
            stop_requested: Callable[[], bool]) -> Iterator:
    """``work``'s results in order, from the pool (or in this process when there is none);
    stops early, without waiting for a worker, on a stop request."""
    if pool is None:
        for task in tasks:
            if stop_requested():
                return
            yield from work(task)
        return
    pending = pool.imap(work, tasks)
    while not stop_requested():
        try:
            yield from pending.next(POLL_SECONDS)
        except multiprocessing.TimeoutError:
            continue
        except StopIteration:
            return


def _start_worker(parent_pid: int) -> None:
    """Pool initializer: the parent alone decides when to stop (SIGINT and SIGTERM sent to
    the process group are its to handle), and a worker never outlives a killed parent (it
    holds the journal's lock, and would keep staging what nobody records)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass  # elsewhere: the range functions check the parent before each task
