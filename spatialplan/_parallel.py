"""Element-wise shapely work on chunks in a few threads (private).

Shapely 2 releases the GIL inside its vectorised functions, so a large array split into chunks
runs on several cores from threads. A GEOS prepared geometry builds indexes lazily and is not
safe to share between threads: work on an array holding one stays in the calling thread.

The number of threads is ``SPATIALPLAN_THREADS`` when set, else the CPUs this process may use
(at most 4); :func:`set_threads` overrides both for the process, :func:`limited` for the
calling thread only (the dask engine runs each partition with one thread: its workers already
run one partition per core).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import shapely

__all__ = ["has_prepared", "limited", "map_chunks", "map_items", "n_threads", "set_threads"]

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


def map_chunks(func: Callable[..., np.ndarray], *arrays: np.ndarray,
               prepared_ok: bool = False, min_chunk: int | None = None,
               **kwargs) -> np.ndarray:
    """``func(*arrays, **kwargs)``, computed on aligned chunks in threads and concatenated.

    Arrays holding a prepared geometry are computed in the calling thread (see
    :func:`has_prepared`) unless ``prepared_ok``.

    Parameters
    ----------
    func
        An element-wise vectorised function (one output per input row).
    *arrays
        Arrays of one length, split into the same chunks.
    prepared_ok
        ``func`` never reads a geometry's preparation (set operations such as
        ``shapely.intersection``, measurements): arrays holding prepared geometries may then go
        to threads. Predicates (``intersects``, ``contains``...) do read it.
    min_chunk
        Fewest rows per chunk (default :data:`MIN_CHUNK`); a costly ``func`` (an overlay)
        pays off in threads on far fewer rows than a cheap one.
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
    smallest = MIN_CHUNK if min_chunk is None else max(1, int(min_chunk))
    if n // smallest <= 1 or n_threads() <= 1:
        return func(*arrays, **kwargs)
    bounds = np.linspace(0, n, min(n_threads(), n // smallest) + 1).astype(int)
    chunks = [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(bounds[:-1], bounds[1:],
                                                                   strict=True)]
    return np.concatenate(map_items(lambda c: func(*c, **kwargs), chunks,
                                    geoms=() if prepared_ok else arrays))


def map_items(func: Callable[[Any], Any], items: Sequence[Any], *,
              geoms: Sequence[np.ndarray] = ()) -> list[Any]:
    """``[func(item) for item in items]``, run in up to :func:`n_threads` threads.

    ``geoms`` are the geometry arrays the calls read with a predicate: when one holds a
    prepared geometry, all calls run in the calling thread (see :func:`has_prepared`).

    Examples
    --------
    >>> map_items(len, [[1], [1, 2]])
    [1, 2]
    """
    threads = min(n_threads(), len(items))
    if threads <= 1 or any(has_prepared(a) for a in geoms):
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(func, items))


def has_prepared(array: np.ndarray) -> bool:
    """Whether an object array holds a prepared shapely geometry.

    GEOS builds a prepared geometry's indexes lazily, so it is not safe to share between
    threads; such arrays stay in the calling thread. Arrays of other types never hold one.
    """
    array = np.asarray(array)
    return array.dtype == object and len(array) > 0 and bool(shapely.is_prepared(array).any())
