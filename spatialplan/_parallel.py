"""Element-wise shapely work on chunks in a few threads (private).

Shapely 2 releases the GIL inside its vectorised functions, so a large array split into chunks
runs on several cores from threads. Only element-wise functions of *unprepared* geometries go
through here (``is_valid``, ``area``, ``make_valid``...): a GEOS prepared geometry builds
indexes lazily and is not safe to share between threads.

The number of threads is ``SPATIALPLAN_THREADS`` when set, else the CPUs this process may use
(at most 4); :func:`set_threads` overrides both for the process, :func:`limited` for the
calling thread only (the dask engine runs each partition with one thread: its workers already
run one partition per core).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["limited", "map_chunks", "n_threads", "set_threads"]

#: arrays shorter than this run in the calling thread: threads cost more than they save
MIN_CHUNK = 25_000
_override: int | None = None
_local = threading.local()


def set_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (``None``: back to the environment / CPU default)."""
    global _override
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    _override = n


@contextlib.contextmanager
def limited(n: int) -> Iterator[None]:
    """Let :func:`map_chunks` use at most ``n`` threads when called from this thread."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    before = getattr(_local, "limit", None)
    _local.limit = n
    try:
        yield
    finally:
        _local.limit = before


def n_threads() -> int:
    """Threads :func:`map_chunks` may use."""
    limit = getattr(_local, "limit", None)
    if limit is not None:
        return limit
    if _override is not None:
        return _override
    env = os.environ.get("SPATIALPLAN_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(
                f"SPATIALPLAN_THREADS must be a positive integer, got {env!r}") from None
        if value < 1:
            raise ValueError(f"SPATIALPLAN_THREADS must be a positive integer, got {env!r}")
        return value
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def map_chunks(func: Callable[..., np.ndarray], *arrays: np.ndarray, **kwargs) -> np.ndarray:
    """``func(*arrays, **kwargs)``, computed on aligned chunks in threads and concatenated.

    Parameters
    ----------
    func
        An element-wise vectorised function (one output per input row).
    *arrays
        Arrays of one length, split into the same chunks.
    **kwargs
        Passed to every call unchanged.

    Returns
    -------
    numpy.ndarray
        Identical to ``func(*arrays, **kwargs)``.

    Examples
    --------
    >>> import shapely
    >>> map_chunks(shapely.area, np.array([shapely.box(0, 0, 2, 2)])).tolist()
    [4.0]
    """
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("map_chunks needs arrays of one length")
    threads = min(n_threads(), n // MIN_CHUNK)
    if threads <= 1:
        return func(*arrays, **kwargs)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    chunks = [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(bounds[:-1], bounds[1:],
                                                                   strict=True)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = list(pool.map(lambda c: func(*c, **kwargs), chunks))
    return np.concatenate(parts)
