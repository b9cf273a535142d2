"""Fixed batches of work in forked worker processes, with the same numbers whatever the core count.

The fitter's work is many small numpy calls that hold the GIL between them, so threads do not
pay (measured on 2 cores: 1.0-1.2x for bootstrap refits, 1.19x wall time for 34% more CPU over
start blocks); forked processes do.  :func:`map_batches` runs ``fn(token, batch)`` for every
batch, in this process or in worker processes forked from it, and yields the results in the
batches' order.  What ``fn`` needs besides its batch (the model, the data, the starts) is
registered under ``token`` before the fork, so that the children inherit it and only the
batches and the results are pickled.  The batches are the caller's, fixed whatever the number
of workers: the numbers then do not depend on the machine.

Where fork is missing or not safe (Windows; macOS, whose system libraries may crash in a
forked child) or not allowed (inside a daemonic process, such as a ``multiprocessing.Pool``
worker) the batches run in threads when the caller allows it, else in this process.
Code generated for a law should be loaded before the fork (``before_fork``: the callers evaluate
the model once, :func:`scalinglaws.fitting.fitter.load_code`), and the generator's lock is
renewed in every child (``scalinglaws.laws.derive``).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np

from scalinglaws.data.errors import OptionError

#: the state of running batch jobs, by token: forked workers inherit it
JOBS: dict[int, object] = {}
_tokens = itertools.count()


def cores() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - platforms without sched_getaffinity
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether worker processes are forked here: not on macOS, nor where fork is missing, nor inside a
    daemonic process (a ``multiprocessing.Pool`` worker, which may not have children)."""
    return (sys.platform != "darwin" and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


def workers_for(n_jobs: int | None, n_batches: int, threads: bool = True) -> int:
    """How many workers ``n_jobs`` (None: every core) gives for ``n_batches`` batches: 1 means this
    process alone (also where there is no fork and ``threads`` is False)."""
    if not (threads or can_fork()):
        return 1
    return max(1, min(n_jobs or cores(), n_batches))


def map_batches(fn: Callable, state: object, batches: Iterable, workers: int,
                progress: Callable[[float], None] | None = None,
                before_fork: Callable[[], None] | None = None) -> Iterator:
    """``fn(token, batch)`` for every batch, in order, ``state`` registered under ``token`` meanwhile
    (``JOBS[token]``).  ``workers`` > 1: forked worker processes (threads where fork is missing);
    ``progress(fraction done)`` after each batch; ``before_fork()`` runs here first when processes
    are forked (to load what every child would otherwise load for itself)."""
    batches = list(batches)
    token = next(_tokens)
    JOBS[token] = state
    pool = None
    try:
        if workers <= 1 or len(batches) <= 1:
            results = (fn(token, b) for b in batches)
        else:
            if can_fork():
                if before_fork is not None:
                    before_fork()
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
            else:
                pool = ThreadPoolExecutor(max_workers=workers)
            results = pool.map(fn, itertools.repeat(token), batches)
        for done, out in enumerate(results, 1):
            if progress:
                progress(done / len(batches))
            yield out
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        del JOBS[token]


def validate_jobs(n_jobs) -> None:
    """``n_jobs`` must be None (every core) or a whole number >= 1."""
    if n_jobs is not None and not (isinstance(n_jobs, (int, np.integer)) and not isinstance(n_jobs, bool)
                                   and n_jobs >= 1):
        raise OptionError("n_jobs", f"must be a whole number >= 1, got {n_jobs}")
