"""Tests of spatialplan.core._geodesic: ellipsoidal areas of plane (Gauss-Krüger) polygons."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapely
from conftest import equal_area_m2
from pyproj import CRS
from shapely import box

from spatialplan.core._geodesic import geodesic_areas

GK = CRS("EPSG:4545")  # CGCS2000 3-degree GK zone 36, CM 108°E
X_WEST, Y0 = 350_000.0, 2_988_000.0  # 150 km west of the central meridian, ~27°N


def test_area_of_the_plane_polygon_not_of_geodesic_edges():
    """A 20 km square off the central meridian: its straight plane edges, not geodesics."""
    square = shapely.affinity.translate(box(0, 0, 20_000, 20_000), X_WEST, Y0)
    got = geodesic_areas(np.array([square]), GK)[0]
    assert got == pytest.approx(equal_area_m2(square), rel=1e-10)
    assert got < square.area * (1 - 4e-4)  # GK enlarges areas by ~k² off the meridian


def test_pieces_add_up_to_the_whole():
    """Cutting a polygon does not change its ellipsoidal area (shared edges cancel, split
    edges follow the plane edge), so a township's line areas add up to its own."""
    whole = shapely.affinity.translate(
        shapely.Polygon([(0, 0), (30_000, 2_000), (25_000, 18_000), (-3_000, 15_000)]),
        X_WEST, Y0)
    cut = shapely.affinity.translate(box(-5_000, -1_000, 12_345, 20_000), X_WEST, Y0)
    pieces = np.array([shapely.intersection(whole, cut), shapely.difference(whole, cut), None])
    areas = geodesic_areas(np.concatenate([[whole], pieces]), GK)
    assert np.isnan(areas[3])
    assert areas[1] + areas[2] == pytest.approx(areas[0], rel=1e-11)


def _one_ring_at_a_time(geoms: np.ndarray) -> np.ndarray:
    """The areas as computed before issue 21: one thread, pyproj's public call per ring."""
    from pyproj import Geod, Transformer

    out = np.full(len(geoms), np.nan)
    present = np.flatnonzero(~shapely.is_missing(geoms))
    split = shapely.orient_polygons(shapely.segmentize(geoms[present], 100.0))
    parts, part_owner = shapely.get_parts(split, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    lon, lat = Transformer.from_crs(GK, "EPSG:4490", always_xy=True).transform(
        coords[:, 0], coords[:, 1])
    bounds = np.searchsorted(ring_of, np.arange(len(rings) + 1))
    geod = Geod(ellps="GRS80")
    ring_area = np.array([geod.polygon_area_perimeter(lon[a:b], lat[a:b])[0]
                          for a, b in itertools.pairwise(bounds)])
    per_part = np.bincount(ring_part, weights=ring_area, minlength=len(part_owner))
    out[present] = np.abs(np.bincount(part_owner, weights=per_part, minlength=len(present)))
    return out


@pytest.mark.parametrize("threads", [1, 3])
def test_chunks_in_threads_give_identical_areas(monkeypatch, threads):
    """Geometries measured in chunks in threads: the same bits as one ring at a time."""
    from spatialplan.core import _geodesic, _parallel

    rng = np.random.default_rng(5)
    shapes = []
    for k in range(60):
        x, y = X_WEST + rng.uniform(0, 50_000), Y0 + rng.uniform(0, 50_000)
        outer = box(x, y, x + rng.uniform(50, 3_000), y + rng.uniform(50, 3_000))
        if k % 3 == 0:  # a hole
            outer = outer.difference(outer.centroid.buffer(20, quad_segs=3))
        if k % 7 == 0:  # two parts
            outer = shapely.union(outer, shapely.affinity.translate(outer, 10_000, 0))
        shapes.append(outer if k % 11 else None)
    geoms = np.array(shapes, dtype=object)
    monkeypatch.setattr(_geodesic, "GEOM_CHUNK", 7)
    calls = []
    real = _geodesic.map_items
    monkeypatch.setattr(_geodesic, "map_items", lambda f, items: calls.append(len(items))
                        or real(f, items))
    with _parallel.limited(threads):
        got = geodesic_areas(geoms, GK)
    want = _one_ring_at_a_time(geoms)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert (got[~np.isnan(got)] == want[~np.isnan(want)]).all()
    assert max(calls) == threads  # one chunk per thread at a time


def test_chunks_balance_vertices_and_cover_every_thread(monkeypatch):
    """Few large geometries still make one chunk per thread, cut by vertex counts."""
    from spatialplan.core import _geodesic, _parallel

    x = X_WEST + np.arange(300) * 100.0
    small = shapely.box(x, Y0, x + 50, Y0 + 50)  # 5 vertices each
    big = shapely.buffer(shapely.points(x[:3], Y0 + 5_000), 2_000, quad_segs=500)  # ~2,000
    geoms = np.concatenate([big, small])
    with _parallel.limited(2):
        bounds = _geodesic._chunks(geoms)
        assert bounds[0] == 0 and bounds[-1] == len(geoms) and len(bounds) == 3
        # the three circles hold 4/5 of the vertices: the first chunk stops inside them
        assert bounds[1] <= 3
        with_threads = geodesic_areas(geoms, GK)
    with _parallel.limited(1):
        assert _geodesic._chunks(geoms) == [0, len(geoms)]
        alone = geodesic_areas(geoms, GK)
    assert (with_threads == alone).all()
    with _parallel.limited(4):  # 63 geometries: fewer than MIN_CHUNK per thread, one chunk
        assert _geodesic._chunks(geoms[:63]) == [0, 63]
    monkeypatch.setattr(_geodesic, "GEOM_CHUNK", 100)  # many geometries: one chunk per 100
    with _parallel.limited(1):
        assert len(_geodesic._chunks(geoms)) - 1 == 3
