"""Element-wise shapely work on chunks in a few threads (private).

Shapely 2 releases the GIL inside its vectorised functions, so a large array split into chunks
runs on several cores from threads. A GEOS prepared geometry builds indexes lazily and is not
safe to share between threads: work on an array holding one stays in the calling thread.

The number of threads is ``SPATIALPLAN_THREADS`` when set, else the CPUs this process may use
(at most 4); :func:`set_threads` overrides both for the process, :func:`limited` for the
calling thread only (the dask engine runs each partition with one thread: its workers already
run one partition per core).

:class:`Overlap` runs a GIL-free function on items while the calling thread is still producing
the next ones (e.g. validity tests on geometries while the rest of the layer is decoded).

A predicate whose first operand is best prepared (a township tested against the parcels it
meets) runs in threads through :func:`map_prepared`: each chunk prepares its own exact copies
(:func:`private_copies`) of the geometries it uses, so no prepared geometry is ever shared;
:func:`query_chunks` splits an STRtree query over ranges of its input geometries the same way.

A function run in threads must not touch the warning filters: ``warnings.catch_warnings`` swaps
the module-global filter list (before Python 3.14), so two threads leaving it out of order
restore each other's filters, e.g. leave an "ignore everything" filter behind for the rest of
the process. ``shapely.is_valid`` and ``shapely.total_bounds`` use it; :func:`is_valid` is the
validity test for threads.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import shapely

__all__ = ["QUIET_IS_VALID", "Overlap", "has_prepared", "is_valid", "limited", "map_chunks",
           "map_items", "map_prepared", "n_threads", "private_copies", "query_chunks",
           "set_threads", "side_by_side"]

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
        return _threads_setting(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


#: most threads SPATIALPLAN_THREADS may ask for
MAX_THREADS = 256


def _threads_setting(text: str) -> int:
    """Read ``SPATIALPLAN_THREADS`` (ASCII digits, 1 to :data:`MAX_THREADS`)."""
    from spatialplan.core._text import visible
    from spatialplan.errors import SettingError

    value = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= value <= MAX_THREADS:
        raise SettingError(
            f"SPATIALPLAN_THREADS must be a whole number from 1 to {MAX_THREADS}, got "
            f"{visible(repr(text[:40]))}",
            hint=f"set SPATIALPLAN_THREADS to 1 ... {MAX_THREADS} (e.g. 2), or unset it to use "
            "the CPUs available (at most 4)")
    return value


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
    bounds = _pieces(n, min_chunk)
    if bounds is None:
        return func(*arrays, **kwargs)
    chunks = [tuple(a[lo:hi] for a in arrays) for lo, hi in itertools.pairwise(bounds)]
    return np.concatenate(map_items(lambda c: func(*c, **kwargs), chunks,
                                    geoms=() if prepared_ok else arrays))


def private_copies(geoms: np.ndarray) -> np.ndarray:
    """Exact copies of ``geoms``: new GEOS objects with the same coordinates, never prepared.

    A thread may prepare its own copies while other threads use the originals (a WKB round
    trip: every coordinate kept bit for bit, Z and M too; ``None`` stays ``None``).

    Examples
    --------
    >>> g = np.array([shapely.box(0, 0, 1, 1), None])
    >>> copies = private_copies(g)
    >>> bool(shapely.equals_identical(copies[0], g[0])), copies[0] is g[0], copies[1]
    (True, False, None)
    """
    return shapely.from_wkb(shapely.to_wkb(np.asarray(geoms, dtype=object), flavor="iso"))


def _pieces(n: int, min_chunk: int | None) -> np.ndarray | None:
    """Chunk bounds over ``n`` rows for :func:`n_threads` threads, or ``None`` for one call."""
    smallest = MIN_CHUNK if min_chunk is None else max(1, int(min_chunk))
    if n // smallest <= 1 or n_threads() <= 1:
        return None
    return np.linspace(0, n, min(n_threads(), n // smallest) + 1).astype(int)


def map_prepared(func: Callable[..., np.ndarray], side: np.ndarray, index: np.ndarray,
                 *arrays: np.ndarray, min_chunk: int | None = None, in_place: bool = True,
                 **kwargs) -> np.ndarray:
    """``func(side[index], *arrays, **kwargs)`` with the geometries of ``side`` prepared.

    For a predicate whose first operand is tested many times (a township against every
    parcel it meets, the townships' outline against every parcel). Each chunk of ``index``,
    in its thread, prepares its own exact copies (:func:`private_copies`) of the geometries
    it uses, so that no prepared geometry is ever shared between threads (nor prepared in
    place while another thread reads it: the caller's objects are left as they are); a chunk
    of an ``index`` sorted by position copies few geometries twice. Only a process computing
    in one thread (:func:`n_threads` is 1, e.g. a dask partition) prepares the geometries of
    ``side`` in place, as ``shapely.prepare`` does: they stay prepared for the next call.

    Parameters
    ----------
    func
        An element-wise predicate of (prepared geometry, other arrays).
    side
        Object array of geometries (or ``None``).
    index
        Positions in ``side``, one per row.
    *arrays
        Further arrays of ``len(index)`` rows, split into the same chunks.
    min_chunk
        Fewest rows per chunk (default :data:`MIN_CHUNK`).
    in_place
        ``False``: never prepare the geometries of ``side`` themselves, not even in one
        thread (a prepared geometry keeps later :func:`map_chunks` predicates on its array
        in one thread).
    **kwargs
        Passed to every call unchanged.

    Returns
    -------
    numpy.ndarray
        Identical to ``func(side[index], *arrays, **kwargs)``.

    Examples
    --------
    >>> towns = np.array([shapely.box(0, 0, 10, 10)])
    >>> parcels = np.array([shapely.box(1, 1, 2, 2), shapely.box(9, 9, 11, 11)])
    >>> map_prepared(shapely.contains_properly, towns, np.array([0, 0]), parcels).tolist()
    [True, False]
    """
    index = np.asarray(index, dtype=np.intp)
    if any(len(a) != len(index) for a in arrays):
        raise ValueError("map_prepared needs arrays as long as the index")

    def one(lo: int, hi: int, *, copies: bool) -> np.ndarray:
        used, inverse = np.unique(index[lo:hi], return_inverse=True)
        own = private_copies(side[used]) if copies else side[used]
        shapely.prepare(own[~shapely.is_missing(own)])
        return func(own[inverse.reshape(-1)], *(a[lo:hi] for a in arrays), **kwargs)

    bounds = _pieces(len(index), min_chunk)
    if bounds is None:
        return one(0, len(index), copies=not in_place or n_threads() > 1)
    return np.concatenate(map_items(lambda span: one(*span, copies=True),
                                    list(itertools.pairwise(bounds.tolist()))))


def query_chunks(tree: shapely.STRtree, geoms: np.ndarray, *, predicate: str | None = None,
                 min_chunk: int | None = None) -> np.ndarray:
    """``tree.query(geoms, predicate=predicate)``, over ranges of ``geoms`` in threads.

    A bulk query gives each input's matches in turn, so the ranges' results, shifted to the
    input positions and concatenated, are the one query's (same pairs, same order). STRtree
    queries release the GIL; the tree is queried once in the calling thread first (GEOS
    builds it on its first query). With a predicate, inputs holding a prepared geometry are
    replaced by private copies (:func:`private_copies`) unless the process computes in one
    thread: a predicate query uses the preparation of each input geometry (or a temporary one
    of its own), and a prepared geometry must not be used by two threads at once.

    Examples
    --------
    >>> tree = shapely.STRtree(np.array([shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)]))
    >>> query_chunks(tree, np.array([shapely.box(0, 0, 9, 9)])).tolist()
    [[0, 0], [0, 1]]
    """
    geoms = np.asarray(geoms, dtype=object)
    bounds = _pieces(len(geoms), min_chunk)
    if bounds is None:
        if predicate is not None and n_threads() > 1 and has_prepared(geoms):
            geoms = private_copies(geoms)
        return tree.query(geoms, predicate=predicate)
    tree.query(shapely.Point(0.0, 0.0))  # built here, not by two threads at once

    def one(span: tuple[int, int]) -> np.ndarray:
        lo, hi = span
        part = geoms[lo:hi]
        if predicate is not None and has_prepared(part):
            part = private_copies(part)
        found = tree.query(part, predicate=predicate)
        found[0] += lo
        return found

    return np.concatenate(map_items(one, list(itertools.pairwise(bounds.tolist()))), axis=1)


def side_by_side(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """``(first(), second())``, ``second`` run in another thread while ``first`` runs here.

    For two independent jobs that each alternate GIL-free GEOS work with Python: together
    they keep both cores busy. With one thread (:func:`n_threads`) they run one after the
    other. ``second`` may use as many threads as the caller (:func:`limited` included) and
    runs without the caller's context variables (so without progress bars: one job's bars
    at a time). Both jobs are always finished before this returns or raises;
    ``first``'s exception wins over ``second``'s.

    The jobs may read the same geometries, never prepare them: a predicate on shared
    geometries goes through :func:`map_prepared` or :func:`query_chunks`, whose private
    copies keep every prepared geometry to one thread. Neither may use
    ``warnings.catch_warnings`` (see the module's notes; validity goes through
    :func:`is_valid`); a few rare paths of pandas and geopandas do (a ``total_bounds`` of
    nothing but empty geometries, a cast of an object column), where at worst one of their
    narrow "ignore" filters outlives its block.

    Examples
    --------
    >>> side_by_side(lambda: 1, lambda: 2)
    (1, 2)
    """
    threads = n_threads()
    if threads <= 1:
        return first(), second()

    def beside() -> Any:
        with limited(threads):  # the caller's thread count, also where it was limited
            return second()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spatialplan-beside") as pool:
        later = pool.submit(beside)
        try:
            here = first()
        except BaseException:
            later.cancel()
            wait([later])
            raise
        return here, later.result()


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


def _lib_is_valid_is_quiet() -> bool:
    """Whether ``shapely.lib.is_valid`` reports an invalid geometry without a Python warning."""
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shapely.lib.is_valid(np.array([bowtie], dtype=object))
    return not caught


#: ``shapely.lib.is_valid`` raises no Python warning for an invalid geometry (shapely turned
#: GEOS's notices into warnings once; checked when this module is imported), so
#: :func:`is_valid` may run in threads
QUIET_IS_VALID = _lib_is_valid_is_quiet()
#: serialises the ``catch_warnings`` of :func:`is_valid` when it needs one
_FILTERS_LOCK = threading.Lock()


def is_valid(geoms: np.ndarray) -> np.ndarray:
    """``shapely.is_valid`` of an array, without touching the warning filters when it can.

    ``shapely.is_valid`` wraps the GEOS call in ``warnings.catch_warnings`` to hide the
    notice GEOS gives for an invalid geometry, which is not thread-safe (see the module's
    docstring). With :data:`QUIET_IS_VALID` the GEOS call is made directly (same result, no
    warning); otherwise this is ``shapely.is_valid``, one call at a time (a lock), so that
    two validity tests never restore each other's filters (a caller whose own thread uses
    ``catch_warnings`` meanwhile, like the two-pass read, must then not use threads).

    Examples
    --------
    >>> is_valid(np.array([shapely.box(0, 0, 1, 1), None])).tolist()
    [True, False]
    """
    if QUIET_IS_VALID:
        return shapely.lib.is_valid(np.asarray(geoms, dtype=object))
    with _FILTERS_LOCK:
        return shapely.is_valid(geoms)


def has_prepared(array: np.ndarray) -> bool:
    """Whether an object array holds a prepared shapely geometry.

    GEOS builds a prepared geometry's indexes lazily, so it is not safe to share between
    threads; such arrays stay in the calling thread. Arrays of other types never hold one.
    """
    array = np.asarray(array)
    return array.dtype == object and len(array) > 0 and bool(shapely.is_prepared(array).any())


class Overlap:
    """``func`` applied to items handed over one at a time, in threads, while the caller goes on.

    Meant for a caller that holds the GIL while it produces items (decoding WKB, building
    frames) and a ``func`` that releases it (GEOS predicates): the workers compute on the items
    already produced while the caller produces the next ones or does other work. At most
    :func:`n_threads` threads (or ``threads``) compute at once: ``n_threads() - 1`` workers
    (read when the object is made, in the calling thread) and the caller, which computes, in
    :meth:`results`, every item no worker has started yet. With one thread nothing runs in
    the background. Each call of ``func`` runs under :func:`limited` ``(1)``; an item holding
    a prepared geometry (see :func:`has_prepared`) is computed in the calling thread.

    Use it as a context manager: leaving the block (normally or by an exception, a
    ``KeyboardInterrupt`` too) cancels the items not started and waits for the running ones
    (:meth:`cancel`), so no thread outlives the block.

    Examples
    --------
    >>> import shapely
    >>> with Overlap(shapely.is_valid) as work:
    ...     for part in (np.array([shapely.box(0, 0, 1, 1)]), np.array([None])):
    ...         work.submit(part)
    ...     [r.tolist() for r in work.results()]
    [[True], [False]]
    """

    def __init__(self, func: Callable[..., Any], *, threads: int | None = None) -> None:
        self._func = func
        self._workers = (n_threads() if threads is None else threads) - 1
        self._pool: ThreadPoolExecutor | None = None
        self._items: list[tuple[Future | None, tuple]] = []

    def __len__(self) -> int:
        """Count the items submitted (and not cancelled)."""
        return len(self._items)

    @property
    def threaded(self) -> bool:
        """Whether submitted items may be computed in worker threads."""
        return self._workers > 0

    def submit(self, *args: Any) -> None:
        """Hand over one item (the positional arguments of one call of ``func``)."""
        future = None
        if self._workers > 0 and not any(has_prepared(a) for a in args
                                          if isinstance(a, np.ndarray)):
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers,
                                                thread_name_prefix="spatialplan-overlap")
            future = self._pool.submit(self._call, args)
        self._items.append((future, args))

    def results(self) -> list[Any]:
        """Return the results of every item in submission order, or raise the first failure.

        The calling thread computes the items no worker has started, from the last one back
        (the workers take them from the first on), then waits for the workers' ones. On an
        exception every item is cancelled or waited for (see :meth:`cancel`) before it
        propagates.
        """
        try:
            mine: dict[int, tuple[bool, Any]] = {}
            for k in range(len(self._items) - 1, -1, -1):
                future, args = self._items[k]
                if future is not None and not future.cancel():
                    break  # a worker has taken it, and every item before it
                mine[k] = self._outcome(args)
            out = []
            for k, (future, _) in enumerate(self._items):
                if k not in mine:
                    assert future is not None  # an item without a future is computed here
                    out.append(future.result())
                elif mine[k][0]:
                    out.append(mine[k][1])
                else:
                    raise mine[k][1]
            return out
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Forget every item: cancel those not started, wait for the running ones."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._items = []

    def __enter__(self) -> Overlap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def _outcome(self, args: tuple) -> tuple[bool, Any]:
        """Compute one item here: (True, result) or (False, the exception)."""
        try:
            return True, self._call(args)
        except Exception as exc:  # raised in item order by results()
            return False, exc

    def _call(self, args: tuple) -> Any:
        with limited(1):
            return self._func(*args)
