"""The fitter's small matrix work runs on one BLAS thread.

A fit multiplies many small matrices (starts x runs by a handful of columns) and solves
many tiny systems; a multi-threaded BLAS spends more time waking its threads than working
on them, and on a loaded machine it can be many times slower.  :func:`one_blas_thread`
limits BLAS to one thread for the duration of a fit or a bootstrap (``threadpoolctl``),
whatever the user's environment says; where the fitter parallelises (bootstrap batches) it
does so with worker processes, in fixed batches, so the numbers do not depend on the core count.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_depth = threading.local()


@contextmanager
def one_blas_thread():
    """BLAS limited to one thread inside the block (re-entrant; a no-op without threadpoolctl)."""
    if getattr(_depth, "n", 0) or threading.current_thread() is not threading.main_thread():
        yield  # already limited by an outer block, or inside a worker the caller limited
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    _depth.n = 1
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        _depth.n = 0
