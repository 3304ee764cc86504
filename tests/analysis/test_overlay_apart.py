"""The certificate's second level without a union, for layers whose chunks do not meet.

When no polygon of one chunk union meets a polygon of another (the parcels of a layer that do
not touch), ``_overlay_pairs._certified_apart`` replaces the coverage union of the chunk
unions by an exact pairwise test of the pairs whose bounding boxes meet. It must give the
verdict, pieces and suspects of the union path, and still find every overlap.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import Polygon

from spatialplan.analysis import _overlay_pairs as _pairs

X0, Y0 = 500_000.0, 2_988_000.0


def _apart(n: int, seed: int, *, size: float = 100.0) -> np.ndarray:
    """n x n jittered quads, each shrunk to 80 % around its centre: none touches another."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n + 1) * size, np.arange(n + 1) * size)
    xs = X0 + xs + rng.uniform(-0.3, 0.3, xs.shape) * size
    ys = Y0 + ys + rng.uniform(-0.3, 0.3, ys.shape) * size
    quads = []
    for i in range(n):
        for j in range(n):
            corners = np.array([(xs[a, b], ys[a, b]) for a, b in
                                [(i, j), (i, j + 1), (i + 1, j + 1), (i + 1, j)]])
            centre = corners.mean(axis=0)
            quads.append(Polygon(np.round(centre + 0.8 * (corners - centre), 3)))
    geoms = np.array(quads, dtype=object)
    assert len(shapely.STRtree(geoms).query(geoms, predicate="intersects")[0]) == len(geoms)
    return geoms


def _labels(geoms: np.ndarray, size: int) -> np.ndarray:
    """Chunk number of each polygon in the certificate's split."""
    labels = np.full(len(geoms), -1)
    for k, idx in enumerate(_pairs._spatial_chunks(geoms, size)):
        labels[idx] = k
    return labels


def _union_path(monkeypatch, geoms: np.ndarray, size: int) -> tuple:
    """The certificate as it was: the second level always by coverage union."""
    with monkeypatch.context() as m:
        m.setattr(_pairs, "_certified_apart", lambda unions, total, parts=None: False)
        return _pairs.coverage_certificate(geoms, chunk_size=size, return_suspects=True)


def _same(new: tuple, old: tuple) -> None:
    """Same verdict, the same pieces vertex for vertex, the same suspects."""
    assert new[0] == old[0]
    assert (new[1] is None) == (old[1] is None)
    if new[1] is not None:
        assert len(new[1]) == len(old[1])
        assert shapely.equals_exact(new[1], old[1], tolerance=0).all()
    assert new[2].tolist() == old[2].tolist()


@pytest.mark.parametrize("size", [7, 50])
def test_apart_layer_needs_no_second_union(monkeypatch, size):
    geoms = _apart(15, 0)
    old = _union_path(monkeypatch, geoms, size)
    assert old[0]

    def no_union(unions, total):
        raise AssertionError("the second level ran a coverage union")

    monkeypatch.setattr(_pairs, "_certified_together", no_union)
    new = _pairs.coverage_certificate(geoms, chunk_size=size, return_suspects=True)
    _same(new, old)
    assert len(new[1]) == len(geoms)


def _neighbours(geoms: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """Pairs of polygons of different chunks within 60 m of each other."""
    i, j = shapely.STRtree(geoms).query(geoms, predicate="dwithin", distance=60.0)
    keep = (i < j) & (labels[i] != labels[j])
    return list(zip(i[keep].tolist(), j[keep].tolist(), strict=True))


def _grown_into(geoms: np.ndarray, a: int, b: int) -> Polygon:
    """Polygon ``a`` grown to a point 20 % inside ``b`` (the convex hull of both)."""
    near = np.array(shapely.shortest_line(geoms[b], geoms[a]).coords[0])
    centre = np.array(geoms[b].centroid.coords[0])
    tip = shapely.Point(np.round(near + 0.2 * (centre - near), 3))
    return shapely.convex_hull(shapely.union(geoms[a], tip))


def _planted_overlap(geoms: np.ndarray, size: int, pick: int = 0) -> tuple[np.ndarray, int, int]:
    """The layer with one polygon grown over a polygon of another chunk, meeting no other (from
    the ``pick``-th pair of neighbours on)."""
    for a, b in _neighbours(geoms, _labels(geoms, size))[pick:]:
        grown = geoms.copy()
        grown[a] = _grown_into(geoms, a, b)
        labels = _labels(grown, size)
        met = shapely.STRtree(grown).query(grown[a], predicate="intersects")
        if labels[a] != labels[b] and sorted(met.tolist()) == sorted([a, b]):
            return grown, a, b
    raise AssertionError("no pair to plant an overlap in")


def test_planted_overlap_across_chunks_is_found(monkeypatch):
    grown, a, b = _planted_overlap(_apart(15, 1), 50)
    labels = _labels(grown, 50)
    assert grown[a].is_valid and shapely.area(shapely.intersection(grown[a], grown[b])) > 0
    assert all(_pairs.coverage_certificate(grown[labels == k], chunk_size=len(grown))[0]
               for k in range(labels.max() + 1))  # only the second level can see it
    calls = []
    apart = _pairs._certified_apart
    monkeypatch.setattr(_pairs, "_certified_apart", lambda unions, total, parts=None:
                        calls.append(1) or apart(unions, total, parts=parts))
    new = _pairs.coverage_certificate(grown, chunk_size=50, return_suspects=True)
    assert calls and not new[0]
    assert a in new[2] or b in new[2]
    pairs = _pairs.overlap_pairs(grown, certified=False, suspects=new[2])
    assert (min(a, b), max(a, b)) in set(zip(*(p.tolist() for p in pairs), strict=True))
    _same(new, _union_path(monkeypatch, grown, 50))


@pytest.mark.parametrize("pick", [0, 60, 150, 260])
def test_overlap_in_any_batch_is_found(monkeypatch, pick):
    # 900 polygons in chunks of 50: ~180 candidate pairs across chunks, tested in batches of
    # 64, then 116; the overlap planted at different places of that list
    grown, a, b = _planted_overlap(_apart(30, 1), 50, pick)
    assert not _pairs._certified_apart(*_level_two(grown, 50))
    new = _pairs.coverage_certificate(grown, chunk_size=50, return_suspects=True)
    assert not new[0] and (a in new[2] or b in new[2])
    _same(new, _union_path(monkeypatch, grown, 50))


def _level_two(geoms: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """The chunk unions of ``geoms`` (all certified) and their polygons' total area."""
    areas = shapely.area(geoms)
    unions = _pairs._chunk_unions(geoms, areas, _pairs._spatial_chunks(geoms, size))
    assert not shapely.is_missing(unions).any()
    return unions, float(areas.sum())


def test_touching_chunks_fall_back_to_the_union(monkeypatch):
    geoms = _apart(15, 2)
    a, b = _neighbours(geoms, _labels(geoms, 50))[0]
    # a replaced by a polygon that shares one of b's edges: touching, not overlapping
    ring = np.array(geoms[b].exterior.coords)[:-1]
    k = int(np.argmin(shapely.distance(geoms[a], shapely.points((ring + np.roll(ring, -1, 0))
                                                                / 2))))
    p, q = ring[k], ring[(k + 1) % len(ring)]
    out = np.round((p + q) / 2 + 0.5 * ((p + q) / 2 - ring.mean(axis=0)), 3)
    touching = geoms.copy()
    touching[a] = Polygon([tuple(q), tuple(p), tuple(out)])
    assert touching[a].is_valid and shapely.touches(touching[a], geoms[b])
    labels = _labels(touching, 50)
    assert labels[a] != labels[b]
    together = []
    union = _pairs._certified_together
    monkeypatch.setattr(_pairs, "_certified_together",
                        lambda unions, total: together.append(1) or union(unions, total))
    new = _pairs.coverage_certificate(touching, chunk_size=50, return_suspects=True)
    assert together  # the exact test saw the touch and left the verdict to the union
    _same(new, _union_path(monkeypatch, touching, 50))


@pytest.mark.parametrize("seed", range(16))
def test_random_layers_agree_with_the_union_path(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    geoms = _apart(12, 100 + seed)
    moved = rng.choice(len(geoms), size=int(rng.integers(0, 4)), replace=False)
    for k in moved:  # shifted by up to 5, 15 or 40 m: apart from or over others
        shift = rng.uniform(-1, 1, 2) * rng.choice([5, 15, 40])
        geoms[k] = shapely.transform(geoms[k], lambda c, d=shift: np.round(c + d, 3))
    if rng.random() < 0.3:  # a copy
        geoms = np.append(geoms, geoms[int(rng.integers(len(geoms)))])
    size = int(rng.choice([5, 16, 40]))
    _same(_pairs.coverage_certificate(geoms, chunk_size=size, return_suspects=True),
          _union_path(monkeypatch, geoms, size))


def test_only_polygons_near_another_chunk_are_paired():
    # chunk 0 spans x 0..10, chunk 1 x 10..20: boxes touching at x = 10 count
    boxes = np.array([[0.0, 0, 10, 10], [10, 0, 20, 10]])
    bounds = np.array([[1.0, 1, 2, 2], [8, 1, 10, 2], [10, 5, 11, 6], [15, 5, 16, 6]])
    owner = np.array([0, 0, 1, 1])
    assert _pairs._near_other_box(bounds, owner, boxes).tolist() == [False, True, True, False]


def test_control_line_report_is_identical_to_the_union_path(monkeypatch):
    """The whole report of an apart layer split into chunks: every table equal, bit for bit."""
    import geopandas as gpd
    import pandas as pd

    from spatialplan.analysis import overlay

    rng = np.random.default_rng(7)
    centres = rng.uniform(-200, 1700, (12, 2)) + np.array([X0, Y0])
    disks = shapely.buffer(shapely.points(centres), 400.0, quad_segs=4)
    towns = gpd.GeoDataFrame(
        {"feature_id": [f"townships:{k}" for k in range(12)],
         "code": [f"5201{k:05d}" for k in range(12)], "name": [f"镇{k}" for k in range(12)]},
        geometry=list(shapely.transform(disks, lambda c: np.round(c, 3))), crs="EPSG:4545")
    geoms = _apart(15, 3)
    farm = gpd.GeoDataFrame({"feature_id": [f"farmland:{k}" for k in range(len(geoms))]},
                            geometry=list(geoms), crs="EPSG:4545")
    monkeypatch.setattr(_pairs, "CERTIFICATE_CHUNK", 40)
    calls = []
    apart = _pairs._certified_apart
    monkeypatch.setattr(_pairs, "_certified_apart", lambda unions, total, parts=None:
                        calls.append(1) or apart(unions, total, parts=parts))
    new = overlay.control_line_report(towns, farmland=farm)
    assert calls
    with monkeypatch.context() as m:
        m.setattr(_pairs, "_certified_apart", lambda unions, total, parts=None: False)
        old = overlay.control_line_report(towns, farmland=farm)
    assert (new.township_stats["farmland_m2"] > 0).sum() > 5
    for name in ("township_stats", "outside_townships", "line_conflicts"):
        a, b = getattr(new, name), getattr(old, name)
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"),
                                      check_exact=True)
        ga, gb = a.geometry.to_numpy(), b.geometry.to_numpy()
        missing = shapely.is_missing(ga) & shapely.is_missing(gb)
        assert np.all(shapely.equals_exact(ga, gb, tolerance=0) | missing)
