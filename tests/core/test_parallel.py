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


def _zones_and_parcels():
    """Zones (some repeated, one missing) and parcels, with every zone-parcel candidate pair."""
    zones = shapely.buffer(shapely.points(np.arange(0, 1e5, 5e3), 5e4), 3e3, quad_segs=32)
    zones = np.concatenate([zones, zones[:3], [None]])  # the same objects twice, and a gap
    parcels = _geoms(40_000)
    parcels = parcels[~shapely.is_missing(parcels) & shapely.is_valid(parcels)]
    zi, pi = shapely.STRtree(parcels).query(zones)
    return zones, parcels, zi, pi


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_map_prepared_is_the_prepared_predicate(threads):
    _parallel.set_threads(threads)
    zones, parcels, zi, pi = _zones_and_parcels()
    copies = _parallel.private_copies(zones)
    expected = {name: getattr(shapely, name)(copies[zi], parcels[pi])
                for name in ("contains_properly", "touches", "intersects")}
    for name, want in expected.items():
        got = _parallel.map_prepared(getattr(shapely, name), zones, zi, parcels[pi],
                                     min_chunk=1_000)
        np.testing.assert_array_equal(got, want)
        assert name == "touches" or (want.any() and not want.all())  # the test could fail
    # with threads the caller's zones are never prepared; in a one-thread process they are
    assert _parallel.has_prepared(zones) == (threads == 1)
    small = _parallel.map_prepared(shapely.intersects, zones, zi[:10], parcels[pi[:10]])
    np.testing.assert_array_equal(small, expected["intersects"][:10])  # one call, no threads
    assert _parallel.has_prepared(zones) == (threads == 1)


def test_map_prepared_copies_when_told_and_checks_lengths():
    _parallel.set_threads(1)
    zones, parcels, zi, pi = _zones_and_parcels()
    got = _parallel.map_prepared(shapely.contains_properly, zones, zi, parcels[pi],
                                 in_place=False)
    np.testing.assert_array_equal(got, shapely.contains_properly(zones[zi], parcels[pi]))
    assert not _parallel.has_prepared(zones)
    xy = shapely.get_coordinates(shapely.centroid(parcels[:50]))
    inside = _parallel.map_prepared(shapely.contains_xy, zones[:1], np.zeros(50, np.intp),
                                    xy[:, 0], xy[:, 1])
    np.testing.assert_array_equal(inside, shapely.contains_xy(zones[0], xy[:, 0], xy[:, 1]))
    with pytest.raises(ValueError, match="as long as the index"):
        _parallel.map_prepared(shapely.touches, zones, zi, parcels[pi][:-1])


def test_private_copies_are_exact_and_new():
    geoms = np.array([shapely.Polygon([(0.1, 0.2, 3.0), (1e-9, 5, 4), (7, 7, 5)]),
                      shapely.box(1 / 3, 2 / 3, 4 / 3, 5 / 3), shapely.Polygon(), None,
                      shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(2, 2, 3, 3)])],
                     dtype=object)
    shapely.prepare(geoms[1])
    copies = _parallel.private_copies(geoms)
    assert shapely.equals_identical(copies[[0, 1, 2, 4]], geoms[[0, 1, 2, 4]]).all()
    assert copies[3] is None and shapely.has_z(copies[0])
    measured = shapely.from_wkt("POLYGON M ((0 0 1, 1 0 2, 1 1 3, 0 0 1))")
    assert shapely.equals_identical(_parallel.private_copies(np.array([measured]))[0], measured)
    assert shapely.has_m(_parallel.private_copies(np.array([measured]))[0])
    assert not any(c is g for c, g in zip(copies[[0, 1, 2, 4]], geoms[[0, 1, 2, 4]],
                                          strict=True))
    assert not shapely.is_prepared(copies[1]) and shapely.is_prepared(geoms[1])


@pytest.mark.parametrize("prepare", [False, True])
@pytest.mark.parametrize("predicate", [None, "intersects"])
def test_query_chunks_is_the_bulk_query(prepare, predicate):
    _parallel.set_threads(3)
    zones, parcels, _, _ = _zones_and_parcels()
    tree = shapely.STRtree(parcels)  # not queried yet: query_chunks builds it first
    if prepare:
        shapely.prepare(zones[~shapely.is_missing(zones)])
    got = _parallel.query_chunks(tree, zones, predicate=predicate, min_chunk=4)
    with _parallel.limited(1):
        serial = _parallel.query_chunks(tree, zones, predicate=predicate, min_chunk=4)
    np.testing.assert_array_equal(got, tree.query(zones, predicate=predicate))
    np.testing.assert_array_equal(serial, got)
    assert got.shape[1] > 1_000
    # the repeated zones found the same parcels twice
    first = got[1][got[0] == 0]
    np.testing.assert_array_equal(got[1][got[0] == len(zones) - 4], first)
