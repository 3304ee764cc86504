"""The thread-chunked element-wise helper gives exactly the serial result."""

import numpy as np
import pytest
import shapely

from spatialplan.core import _parallel


@pytest.fixture(autouse=True)
def _reset():
    yield
    _parallel.set_threads(None)


def _geoms(n: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1e5, n), rng.uniform(0, 1e5, n)
    geoms = shapely.box(x, y, x + rng.uniform(1, 50, n), y + rng.uniform(1, 50, n))
    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    geoms[::997] = bowtie
    geoms[5] = None
    return geoms


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_same_result_as_serial(threads):
    _parallel.set_threads(threads)
    geoms = _geoms(3 * _parallel.MIN_CHUNK + 17)
    got = _parallel.map_chunks(shapely.is_valid, geoms)
    assert got.dtype == bool and len(got) == len(geoms)
    np.testing.assert_array_equal(got, shapely.is_valid(geoms))
    assert (~got).sum() == len(geoms[::997]) + 1  # the bow-ties and the missing one
    other = _geoms(len(geoms))[::-1].copy()
    np.testing.assert_array_equal(_parallel.map_chunks(shapely.intersects, geoms, other),
                                  shapely.intersects(geoms, other))


def test_env_and_errors(monkeypatch):
    monkeypatch.setenv("SPATIALPLAN_THREADS", "3")
    assert _parallel.n_threads() == 3
    monkeypatch.setenv("SPATIALPLAN_THREADS", "zero")
    with pytest.raises(ValueError, match="SPATIALPLAN_THREADS"):
        _parallel.n_threads()
    _parallel.set_threads(1)
    assert _parallel.n_threads() == 1
    with pytest.raises(ValueError, match="positive"):
        _parallel.set_threads(0)
    with pytest.raises(ValueError, match="one length"):
        _parallel.map_chunks(shapely.intersects, np.empty(2, object), np.empty(3, object))


def test_limited_applies_to_the_calling_thread_only():
    import threading

    _parallel.set_threads(3)
    seen = {}
    with _parallel.limited(1):
        seen["inside"] = _parallel.n_threads()
        other = threading.Thread(target=lambda: seen.update(other=_parallel.n_threads()))
        other.start()
        other.join()
    seen["after"] = _parallel.n_threads()
    assert seen == {"inside": 1, "other": 3, "after": 3}
    with pytest.raises(ValueError, match="positive"), _parallel.limited(0):
        pass


def test_prepared_geometries_stay_in_the_calling_thread(monkeypatch):
    import threading

    _parallel.set_threads(3)
    monkeypatch.setattr(_parallel, "MIN_CHUNK", 10)
    geoms = _geoms(100)
    seen = set()

    def area(g):
        seen.add(threading.get_ident())
        return shapely.area(g)

    np.testing.assert_array_equal(_parallel.map_chunks(area, geoms), shapely.area(geoms))
    assert seen and threading.get_ident() not in seen  # worker threads did the work
    shapely.prepare(geoms[7])
    seen.clear()
    np.testing.assert_array_equal(_parallel.map_chunks(area, geoms), shapely.area(geoms))
    assert seen == {threading.get_ident()}
    assert _parallel.map_items(len, [[1], [1, 2]], geoms=[geoms]) == [1, 2]
    assert not _parallel.has_prepared(np.arange(3))


def test_prepared_ok_and_min_chunk_send_set_operations_to_threads(monkeypatch):
    import threading

    from spatialplan.analysis import _overlay_geom

    _parallel.set_threads(2)
    geoms = _geoms(300)
    geoms = geoms[~shapely.is_missing(geoms) & shapely.is_valid(geoms)]
    other = shapely.buffer(geoms, 3.0)
    shapely.prepare(geoms[7])  # a prepared geometry no longer pins a set operation
    seen = set()

    def inter(a, b):
        seen.add(threading.get_ident())
        return shapely.intersection(a, b)

    got = _parallel.map_chunks(inter, geoms, other, prepared_ok=True, min_chunk=100)
    assert seen and threading.get_ident() not in seen
    assert shapely.equals_exact(got, shapely.intersection(geoms, other), 0).all()
    seen.clear()
    _parallel.map_chunks(inter, geoms, other, min_chunk=100)  # default: predicates may read it
    assert seen == {threading.get_ident()}
    seen.clear()
    _parallel.map_chunks(inter, geoms, other, prepared_ok=True)  # 300 rows < MIN_CHUNK
    assert seen == {threading.get_ident()}

    # safe_overlay uses it: same pieces as the serial overlay, in order
    monkeypatch.setattr(_overlay_geom, "OVERLAY_CHUNK", 50)
    threaded = _overlay_geom.safe_overlay(shapely.intersection, geoms, other, grid_size=None)
    with _parallel.limited(1):
        serial = _overlay_geom.safe_overlay(shapely.intersection, geoms, other, grid_size=None)
    assert shapely.equals_exact(threaded, serial, 0).all()


def test_is_valid_fallback_in_threads_leaves_the_warning_filters(monkeypatch):
    """Without a quiet ``shapely.lib.is_valid``, the fallback (``shapely.is_valid``, which
    swaps the filters) runs one call at a time, so threads cannot restore each other's."""
    import warnings

    monkeypatch.setattr(_parallel, "QUIET_IS_VALID", False)
    monkeypatch.setattr(_parallel, "MIN_CHUNK", 10)
    monkeypatch.setattr(_parallel, "_override", 4)
    geoms = np.array([shapely.box(i, 0, i + 1, 1) for i in range(4000)], dtype=object)
    before = list(warnings.filters)
    for _ in range(20):
        assert _parallel.map_chunks(_parallel.is_valid, geoms).all()
    assert list(warnings.filters) == before
