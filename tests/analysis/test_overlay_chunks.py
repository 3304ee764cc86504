"""The coverage certificate computed chunk by chunk (_overlay_pairs.coverage_certificate).

A layer larger than one chunk is certified on spatial chunks, then on the chunk unions. It must
accept a clean coverage split over several chunks, reject every overlap whatever chunks its
polygons fall in (crossing, duplicated, nested), and give the township areas of the one-level
path.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely import Polygon, box

from spatialplan.analysis import _overlay_geom as g
from spatialplan.analysis import _overlay_pairs as _pairs
from spatialplan.analysis import overlay

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 2_988_000.0


def _grid(n: int, size: float, seed: int, rows: int | None = None) -> np.ndarray:
    """A disjoint coverage of n x n (or n x rows) jittered quads sharing their vertices, on the
    mm grid."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n + 1) * size, np.arange((rows or n) + 1) * size)
    xs = np.round(X0 + xs + rng.uniform(-0.3, 0.3, xs.shape) * size, 3)
    ys = np.round(Y0 + ys + rng.uniform(-0.3, 0.3, ys.shape) * size, 3)
    return np.array([Polygon([(xs[i, j], ys[i, j]), (xs[i, j + 1], ys[i, j + 1]),
                              (xs[i + 1, j + 1], ys[i + 1, j + 1]), (xs[i + 1, j], ys[i + 1, j])])
                     for i in range(rows or n) for j in range(n)], dtype=object)


def _boxes(nx: int, ny: int) -> list[Polygon]:
    """nx x ny unit squares (a clean coverage), shifted to the analysis area."""
    return [box(X0 + i, Y0 + j, X0 + i + 1, Y0 + j + 1) for i in range(nx) for j in range(ny)]


def _labels(geoms: np.ndarray, size: int) -> np.ndarray:
    """Chunk number of each polygon in the certificate's split."""
    labels = np.full(len(geoms), -1)
    for k, idx in enumerate(_pairs._spatial_chunks(geoms, size)):
        labels[idx] = k
    return labels


def _chunks_alone_certified(geoms: np.ndarray, size: int) -> bool:
    """Every chunk passes the one-level certificate by itself (so only level two can reject)."""
    return all(_pairs.coverage_certificate(geoms[idx], chunk_size=len(geoms))[0]
               for idx in _pairs._spatial_chunks(geoms, size))


def _shared_edge_across_chunks(geoms: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """A pair of polygons of different chunks sharing an edge."""
    i, j = shapely.STRtree(geoms).query(geoms, predicate="touches")
    keep = (i < j) & (labels[i] != labels[j])
    i, j = i[keep], j[keep]
    shared = shapely.length(shapely.intersection(geoms[i], geoms[j])) > 0
    return int(i[shared][0]), int(j[shared][0])


# --- the split -------------------------------------------------------------------------------


def test_spatial_chunks_partition_the_layer():
    geoms = _grid(30, 100.0, 0)
    chunks = _pairs._spatial_chunks(geoms, 50)
    assert len(chunks) > 10
    assert all(0 < len(c) <= 50 for c in chunks)
    assert np.array_equal(np.sort(np.concatenate(chunks)), np.arange(len(geoms)))
    assert all(np.all(np.diff(c) > 0) for c in chunks)  # input order kept within a chunk
    # compact: a chunk's bounding box is a small part of the layer's
    whole = shapely.area(shapely.box(*shapely.total_bounds(geoms)))
    spans = [shapely.area(shapely.box(*shapely.total_bounds(geoms[c]))) for c in chunks]
    assert max(spans) < whole / 5
    assert [c.tolist() for c in _pairs._spatial_chunks(geoms, len(geoms))] == [
        list(range(len(geoms)))]


# --- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 50, None])
def test_clean_coverage_over_several_chunks_is_certified(size):
    geoms = _grid(30, 100.0, 1)
    if size is not None:
        assert len(_pairs._spatial_chunks(geoms, size)) > 1
    certified, parts = _pairs.coverage_certificate(geoms, chunk_size=size)
    assert certified
    total = shapely.area(geoms).sum()
    assert shapely.area(parts).sum() == pytest.approx(total, rel=1e-12)
    # pieces of the union with disjoint interiors
    assert shapely.area(shapely.union_all(parts)) == pytest.approx(total, rel=1e-12)
    assert shapely.equals(shapely.union_all(parts), shapely.coverage_union_all(geoms))


def test_chunk_unions_run_in_threads():
    from spatialplan.core import _parallel

    geoms = _grid(20, 100.0, 2)
    with _parallel.limited(1):
        one = _pairs.coverage_certificate(geoms, chunk_size=30)
    with _parallel.limited(3):
        three = _pairs.coverage_certificate(geoms, chunk_size=30)
    assert one[0] and three[0]
    assert shapely.equals_exact(one[1], three[1], tolerance=0).all()
    shapely.prepare(geoms[0])  # a prepared geometry keeps the work in this thread
    assert _pairs.coverage_certificate(geoms, chunk_size=30)[0]


def test_missing_empty_and_single():
    assert _pairs.coverage_certificate(np.array([None, shapely.Polygon()], dtype=object),
                                  chunk_size=1) == (True, None)
    certified, parts = _pairs.coverage_certificate(
        np.array([None, box(0, 0, 1, 1)], dtype=object), chunk_size=1)
    assert certified and len(parts) == 1 and shapely.area(parts[0]) == 1.0
    geoms = np.array([None, *_boxes(4, 4), None], dtype=object)
    certified, parts = _pairs.coverage_certificate(geoms, chunk_size=3,
                                              areas=shapely.area(geoms))
    assert certified and shapely.area(parts).sum() == pytest.approx(16.0)


# --- rejected --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 25])
def test_overlapping_pair_in_different_chunks_is_rejected(size):
    geoms = _grid(10, 100.0, 3)
    a, b = _shared_edge_across_chunks(geoms, _labels(geoms, size))
    # bulge a into b across their shared edge: one new vertex, a's other edges unchanged
    ring = list(geoms[a].exterior.coords)[:-1]
    edge = next(k for k in range(len(ring))
                if shapely.equals(shapely.LineString([ring[k], ring[(k + 1) % len(ring)]]),
                                  shapely.intersection(geoms[a], geoms[b])))
    start, end = np.array(ring[edge]), np.array(ring[(edge + 1) % len(ring)])
    middle = (start + end) / 2
    tip = np.round(middle + 0.1 * (np.array(geoms[b].centroid.coords[0]) - middle), 3)
    assert shapely.contains_xy(geoms[b], *tip)
    bulged = geoms.copy()
    bulged[a] = Polygon([*ring[:edge + 1], tuple(tip), *ring[edge + 1:]])
    assert bulged[a].is_valid and shapely.area(shapely.intersection(bulged[a], geoms[b])) > 0
    labels = _labels(bulged, size)
    assert labels[a] != labels[b]
    if size > 1:
        assert _chunks_alone_certified(bulged, size)  # only the second level can see it
    assert _pairs.coverage_certificate(bulged, chunk_size=size) == (False, None)
    assert _pairs.overlap_pairs(bulged, certified=False)[0].tolist() == [min(a, b)]


def test_duplicate_in_another_chunk_is_rejected(monkeypatch):
    geoms = np.array([*_boxes(8, 8), _boxes(8, 8)[3]], dtype=object)  # a copy of polygon 3
    assert _pairs.coverage_certificate(geoms, chunk_size=1) == (False, None)
    assert _pairs.coverage_certificate(geoms, chunk_size=16) == (False, None)
    # the copy with the other half of the layer: both chunks are clean coverages by themselves
    left = np.flatnonzero(shapely.bounds(geoms[:64])[:, 0] < X0 + 4)
    right = np.setdiff1d(np.arange(64), left)
    assert 3 in left
    split = [np.append(right, 64), left]
    monkeypatch.setattr(_pairs, "_spatial_chunks", lambda geoms, size: split)
    assert all(_pairs._certified_union(geoms[c], shapely.area(geoms[c]).sum()) is not None
               for c in split)
    assert _pairs.coverage_certificate(geoms, chunk_size=40) == (False, None)


def test_nested_polygon_in_another_chunk_is_rejected():
    # 10 x 6 squares; a double-width one in row 0 (columns 4-5) holds a small square whose
    # centre lies west of the median split, the big square's east of it
    squares = [s for s in _boxes(10, 6) if not (s.bounds[1] == Y0 and 4 <= s.bounds[0] - X0 <= 5)]
    big = Polygon([(X0 + x, Y0 + y) for x, y in [(4, 0), (5, 0), (6, 0), (6, 1), (5, 1), (4, 1)]])
    small = box(X0 + 4.1, Y0 + 0.1, X0 + 4.2, Y0 + 0.2)
    geoms = np.array([*squares, big, small], dtype=object)
    labels = _labels(geoms, 32)
    assert labels.max() == 1 and labels[-1] != labels[-2]
    assert _chunks_alone_certified(geoms, 32)
    assert _pairs.coverage_certificate(geoms, chunk_size=32) == (False, None)
    assert _pairs.coverage_certificate(geoms, chunk_size=1) == (False, None)
    assert _pairs.coverage_certificate(geoms, chunk_size=len(geoms)) == (False, None)


def test_gap_between_chunks_is_still_certified():
    geoms = np.delete(_grid(12, 100.0, 4), [30, 31, 42, 43, 100])  # holes in the coverage
    certified, parts = _pairs.coverage_certificate(geoms, chunk_size=10)
    assert certified
    assert shapely.area(parts).sum() == pytest.approx(shapely.area(geoms).sum(), rel=1e-12)


# --- township areas --------------------------------------------------------------------------


def _towns(n: int, seed: int) -> gpd.GeoDataFrame:
    """Townships that are not a coverage: overlapping and with gaps, crossing the layer's edge."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-300, 2300, (n, 2))
    geoms = [shapely.buffer(shapely.Point(X0 + x, Y0 + y), float(rng.uniform(150, 500)),
                            quad_segs=4) for x, y in xy]
    # on the mm grid by rounding: set_precision would attach a 1 mm precision model, and GEOS
    # would then snap-round every overlay with a township as first operand
    geoms = shapely.transform(np.array(geoms, dtype=object), lambda xy: np.round(xy, 3))
    assert shapely.is_valid(geoms).all()
    return gpd.GeoDataFrame({"feature_id": [f"townships:{k}" for k in range(n)],
                             "code": [f"5201{k:05d}" for k in range(n)],
                             "name": [f"镇{k}" for k in range(n)]},
                            geometry=list(geoms), crs=CRS)


@pytest.mark.parametrize("seed", [0, 1])
def test_township_areas_equal_the_one_level_path(monkeypatch, seed):
    towns = _towns(25, seed)
    farm = gpd.GeoDataFrame({"feature_id": [f"farmland:{k}" for k in range(900)]},
                            geometry=list(_grid(30, 70.0, seed)), crs=CRS)
    monkeypatch.setattr(_pairs, "CERTIFICATE_CHUNK", 10**9)
    flat = overlay.control_line_report(towns, farmland=farm)
    chunks = []
    real = _pairs._spatial_chunks
    monkeypatch.setattr(_pairs, "_spatial_chunks",
                        lambda geoms, size: chunks.append(len(geoms)) or real(geoms, size))
    monkeypatch.setattr(_pairs, "CERTIFICATE_CHUNK", 40)
    chunked = overlay.control_line_report(towns, farmland=farm)
    assert chunks == [900]
    got, want = chunked.township_stats["farmland_m2"], flat.township_stats["farmland_m2"]
    assert got.to_numpy() == pytest.approx(want.to_numpy(), rel=1e-9, abs=1e-6)
    assert (want > 0).sum() > 10
    # and with geopandas directly
    pieces = gpd.overlay(towns[["code", "geometry"]], farm, how="intersection",
                         keep_geom_type=True)
    expected = (pieces.assign(a=pieces.area).groupby("code")["a"].sum()
                .reindex(towns["code"]).fillna(0.0).to_numpy())
    assert got.to_numpy() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    out_got, out_want = chunked.outside_townships, flat.outside_townships
    assert out_got.drop(columns="geometry").equals(out_want.drop(columns="geometry"))
    assert len(chunked.line_conflicts) == len(flat.line_conflicts) == 0


def test_union_path_needs_no_per_zone_fallback(monkeypatch):
    """A long band crossing many townships: the whole union is clipped once per township, the
    chunk pieces only where they are, under a vertex budget that the whole union exceeds."""
    geoms = _grid(120, 50.0, 2, rows=3)
    zones = np.array([shapely.box(X0 + x, Y0 - 100, X0 + x + 300, Y0 + 300)
                      for x in range(-100, 6000, 300)], dtype=object)
    _, whole = _pairs.coverage_certificate(geoms, chunk_size=len(geoms))
    _, pieces = _pairs.coverage_certificate(geoms, chunk_size=20)
    assert len(whole) == 1 and len(pieces) > 10

    def clipped(parts):
        _zi, pi = shapely.STRtree(parts).query(zones, predicate="intersects")
        return int(shapely.get_num_coordinates(parts)[pi].sum())

    budget = (clipped(pieces) + clipped(whole)) // 2
    assert clipped(pieces) < budget < clipped(whole)
    monkeypatch.setattr(g, "MAX_CLIP_COORDS", budget)
    assert g.union_zone_areas(zones, whole, grid_size=0.001) is None
    fast = g.union_zone_areas(zones, pieces, grid_size=0.001)
    slow = g.coverage_zone_areas(zones, geoms, grid_size=0.001)
    assert fast == pytest.approx(slow, rel=1e-9, abs=1e-6)
    assert fast.sum() == pytest.approx(shapely.area(geoms).sum(), rel=1e-12)


# --- snapping in threads ---------------------------------------------------------------------


def test_snap_to_grid_in_threads_is_identical(monkeypatch):
    from spatialplan.core import _parallel

    geoms = shapely.transform(_grid(12, 100.0, 5), lambda xy: xy + 0.0004)  # off the grid
    geoms[3] = None
    monkeypatch.setattr(_parallel, "MIN_CHUNK", 10)
    with _parallel.limited(1):
        serial = g.snap_to_grid(geoms, 0.001)
    with _parallel.limited(3):
        threaded = g.snap_to_grid(geoms, 0.001)
    assert threaded[3] is None and serial[3] is None
    keep = np.flatnonzero(~shapely.is_missing(geoms))
    assert shapely.equals_exact(serial[keep], threaded[keep], tolerance=0).all()
    coords = shapely.get_coordinates(threaded[keep])
    assert np.abs(coords * 1000 - np.rint(coords * 1000)).max() < 1e-6
    shapely.prepare(geoms[5])  # a prepared geometry keeps the work in this thread
    with _parallel.limited(3):
        prepared = g.snap_to_grid(geoms, 0.001)
    assert shapely.equals_exact(serial[keep], prepared[keep], tolerance=0).all()


@pytest.mark.parametrize(
    "module", ["spatialplan.analysis._overlay_geom", "spatialplan.analysis._overlay_pairs"]
)
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_clip_to_boxes_equals_one_clip_per_pair():
    """Parts are clipped per distinct zone box in one call; each equals its own pair's clip."""
    rng = np.random.default_rng(3)
    zones = shapely.buffer(shapely.points(rng.random((7, 2)) * 5000), 400)
    zi = rng.integers(0, 7, 300)
    near = shapely.get_coordinates(shapely.centroid(zones[zi])) + rng.normal(0, 300, (300, 2))
    parts = shapely.buffer(shapely.points(near), 60)
    got = g._clip_to_boxes(parts, zones[zi], margin=1.0)
    box = shapely.bounds(zones[zi])
    want = np.array([shapely.clip_by_rect(p, x0 - 1, y0 - 1, x1 + 1, y1 + 1)
                     for p, (x0, y0, x1, y1) in zip(parts, box, strict=True)], dtype=object)
    assert np.all(shapely.equals_exact(got, want, 0) | (shapely.is_empty(got)
                                                         & shapely.is_empty(want)))
    assert shapely.is_empty(got).any() and not shapely.is_empty(got).all()
    assert len(g._clip_to_boxes(parts[:0], zones[:0])) == 0
    # grouped by the zone positions instead of the distinct boxes: the same clips
    by_zone = g._clip_to_boxes(parts, zones[zi], margin=1.0, groups=zi)
    assert np.all(shapely.equals_exact(by_zone, got, 0) | (shapely.is_empty(got)
                                                            & shapely.is_empty(by_zone)))


# --- the three tables side by side, predicates on private prepared copies ------------------------


def _report_layers():
    """Townships (a coverage) and three lines crossing their edges, overlapping each other."""
    towns = _grid(6, 1000.0, 11)
    farm = _grid(60, 100.0, 12)
    farm = np.concatenate([farm, farm[:40]])  # copies of earlier parcels: self-overlaps
    red = shapely.buffer(shapely.points(X0 + np.arange(8) * 700.0, Y0 + 2500.0), 260.0)
    udb = np.array([box(X0 + 1500, Y0 + 900, X0 + 3100, Y0 + 4200),
                    box(X0 - 400, Y0 + 5200, X0 + 800, Y0 + 6900)], dtype=object)

    def frame(role, geoms, **extra):
        return gpd.GeoDataFrame({"feature_id": [f"{role}:{k}" for k in range(len(geoms))],
                                 **extra}, geometry=list(geoms), crs=CRS)

    return dict(townships=frame("townships", towns, code=[f"5201{k:05d}" for k in range(36)],
                                name=[f"镇{k}" for k in range(36)]),
                farmland=frame("farmland", farm), redline=frame("redline", red),
                udb=frame("udb", udb))


def _same_frames(a, b):
    import pandas as pd

    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    geometry = a.geometry.name
    pd.testing.assert_frame_equal(a.drop(columns=geometry), b.drop(columns=geometry),
                                  check_exact=True)
    ga, gb = a.geometry.to_numpy(), b.geometry.to_numpy()
    assert (shapely.is_missing(ga) == shapely.is_missing(gb)).all()
    assert shapely.equals_identical(ga[~shapely.is_missing(ga)],
                                    gb[~shapely.is_missing(gb)]).all()


def test_report_in_threads_is_identical_and_prepares_nothing(monkeypatch):
    from spatialplan.core import _parallel

    with _parallel.limited(1):  # a one-thread run prepares the townships in place
        serial = overlay.control_line_report(**_report_layers())
    layers = _report_layers()
    # every threaded path taken: tiny chunks, and the tables side by side
    monkeypatch.setattr(_parallel, "MIN_CHUNK", 50)
    monkeypatch.setattr(g, "ZONE_CHUNK", 2)
    monkeypatch.setattr(g, "OVERLAY_CHUNK", 20)
    calls = []
    side_by_side = _parallel.side_by_side
    monkeypatch.setattr(overlay, "side_by_side",
                        lambda *jobs: calls.append(1) or side_by_side(*jobs))
    _parallel.set_threads(3)
    try:
        threaded = overlay.control_line_report(**layers)
    finally:
        _parallel.set_threads(None)
    assert calls == [1, 1]  # what the tables share, then the tables
    assert len(serial.line_conflicts) > 50 and (serial.outside_townships["outside_m2"] > 0).all()
    for a, b in zip(serial, threaded, strict=True):
        _same_frames(a, b)
    for gdf in layers.values():  # the caller's geometries were never prepared
        assert not _parallel.has_prepared(gdf.geometry.to_numpy())


def test_side_by_side_runs_both_and_raises_the_first_failure():
    import threading
    import time

    from spatialplan.core import _parallel

    where = {}

    def job(name, fail=False, pause=0.0):
        def run():
            time.sleep(pause)
            where[name] = threading.get_ident()
            if fail:
                raise ValueError(name)
            return name
        return run

    _parallel.set_threads(2)
    try:
        assert _parallel.side_by_side(job("a"), job("b")) == ("a", "b")
        assert where["a"] == threading.get_ident() != where["b"]
        where.clear()
        with pytest.raises(ValueError, match=r"^a$"):
            _parallel.side_by_side(job("a", fail=True), job("b", fail=True, pause=0.2))
        assert "b" in where  # the second job finished before the error came out
        with pytest.raises(ValueError, match=r"^b$"):
            _parallel.side_by_side(job("a"), job("b", fail=True))
        _parallel.set_threads(1)
        where.clear()
        assert _parallel.side_by_side(job("a"), job("b")) == ("a", "b")
        assert where["a"] == where["b"] == threading.get_ident()
    finally:
        _parallel.set_threads(None)
