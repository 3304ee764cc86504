"""Snapping to the 1 mm grid (``_overlay_geom.snap_to_grid``): numpy rounding, floating precision
afterwards, snap-rounding only where rounding breaks a geometry, nothing dropped."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import shapely
from shapely import Polygon

from spatialplan.analysis import _overlay_geom as g
from spatialplan.analysis import _overlay_lines

X0, Y0 = 500_000.0, 3_400_000.0
MM = 0.001


def _on_grid(geoms: np.ndarray) -> bool:
    coords = shapely.get_coordinates(geoms)
    return bool(np.abs(coords * 1000 - np.rint(coords * 1000)).max() < 1e-6)


def _off_grid_triangles() -> np.ndarray:
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 100, (50, 3, 2)) + np.array([X0, Y0])
    return np.array([Polygon(t).buffer(0) for t in base], dtype=object)


def test_snapped_geometries_are_on_the_grid_in_floating_precision():
    geoms = _off_grid_triangles()
    out = g.snap_to_grid(geoms, MM)
    assert _on_grid(out)
    assert (shapely.get_precision(out) == 0).all()  # set_precision would leave 0.001 here
    assert shapely.is_valid(out).all()
    # same vertices as GEOS' own snap-rounding, to the bit (ring start/order may differ)
    ref = shapely.set_precision(geoms, MM)
    assert shapely.equals_exact(shapely.normalize(out), shapely.normalize(ref), tolerance=0).all()


def test_overlay_of_snapped_off_grid_polygons_is_the_floating_overlay():
    a = Polygon([(X0 + 0.0004, Y0), (X0 + 10.0003, Y0 + 3.0001), (X0 + 2.0002, Y0 + 9.0007)])
    b = Polygon([(X0 + 5.0001, Y0 - 1.0004), (X0 + 9.0006, Y0 + 8.0003), (X0 - 1.0002, Y0 + 6.0)])
    sa, sb = g.snap_to_grid(np.array([a, b], dtype=object), MM)
    out = g.safe_overlay(shapely.intersection, np.array([sa]), np.array([sb]), grid_size=MM)[0]
    floating = shapely.intersection(shapely.set_precision(sa, 0), shapely.set_precision(sb, 0))
    assert shapely.get_precision(out) == 0
    assert shapely.equals_exact(out, floating, tolerance=0)
    # the crossing nodes are off the grid: a 1 mm snap-rounded overlay would have moved them
    assert not _on_grid(np.array([out]))
    rounded = shapely.intersection(sa, sb, grid_size=MM)
    assert shapely.area(out) != shapely.area(rounded)


def test_rounding_that_breaks_a_polygon_falls_back_to_snap_rounding():
    # a 0.6 mm wide inlet: its two walls round onto the same line, the ring overlaps itself
    keyhole = Polygon([(0, 0), (10, 0), (10, 10), (5.0003, 10), (5.0003, 2), (4.9997, 2),
                       (4.9997, 10), (0, 10)])
    assert keyhole.is_valid
    rounded = shapely.transform(keyhole, lambda c: np.rint(c * 1000) / 1000)
    assert not rounded.is_valid  # what plain rounding would give
    out, kept = g.snap_with_report(np.array([keyhole], dtype=object), MM)
    assert len(kept) == 0
    assert out[0].is_valid and not out[0].is_empty
    assert shapely.get_precision(out[0]) == 0
    assert _on_grid(out)
    assert abs(out[0].area - keyhole.area) < 0.01


def test_consecutive_duplicate_vertices_from_rounding_are_kept_valid():
    poly = Polygon([(0, 0), (10.0001, 0), (10.0004, 0.0002), (10, 10), (0, 10)])
    out = g.snap_to_grid(np.array([poly], dtype=object), MM)[0]
    coords = shapely.get_coordinates(out)
    assert (np.diff(coords, axis=0) == 0).all(axis=1).any()  # a repeated vertex
    assert out.is_valid and out.area == 100.0


def test_a_polygon_that_collapses_on_the_grid_is_kept_and_reported(caplog):
    sliver = Polygon([(0, 0.0001), (10, 0.0001), (10, 0.0004), (0, 0.0004)])  # 0.3 mm thin
    square = Polygon([(20.0004, 0), (30, 0), (30, 10), (20, 10)])
    geoms = np.array([square, sliver, None], dtype=object)
    out, kept = g.snap_with_report(geoms, MM)
    assert list(kept) == [1]
    with caplog.at_level(logging.WARNING, logger="spatialplan.analysis.overlay"):
        assert g.snap_to_grid(geoms, MM)[1] is sliver
    assert out[1] is sliver  # original coordinates: never emptied, never None
    assert out[2] is None
    assert _on_grid(out[:1])
    assert "kept with their original coordinates" in caplog.text

    gdf = gpd.GeoDataFrame({"feature_id": ["a", "b", "c"]}, geometry=list(geoms), crs=3857)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spatialplan.analysis.overlay"):
        polys = _overlay_lines._polygons(gdf, "farmland", MM)
    assert polys[1] is sliver
    assert "farmland" in caplog.text and "(first: b)" in caplog.text
    assert len(caplog.records) == 1  # reported once, by the layer


def test_on_grid_input_is_returned_unchanged():
    geoms = np.array([Polygon([(0, 0), (1.001, 0), (1, 1)]), None,
                      Polygon([(X0, Y0), (X0 + 5.123, Y0), (X0, Y0 + 7.5)])], dtype=object)
    assert g.snap_to_grid(geoms, MM) is geoms
    mixed = np.append(geoms, Polygon([(0, 0), (2.0004, 0), (2, 2)]))
    out = g.snap_to_grid(mixed, MM)
    assert all(out[k] is mixed[k] for k in range(3))
    assert out[3] is not mixed[3]


def test_vertices_already_on_the_grid_keep_their_exact_value():
    # an off-grid polygon sharing an edge with an on-grid neighbour: the shared vertices are
    # not moved by an ulp, so the pair still forms a valid coverage
    left = Polygon([(X0, Y0), (X0 + 10.123, Y0 + 0.017), (X0 + 10.456, Y0 + 20.789),
                    (X0 + 0.0004, Y0 + 20)])
    right = Polygon([(X0 + 10.123, Y0 + 0.017), (X0 + 20, Y0), (X0 + 20, Y0 + 20),
                     (X0 + 10.456, Y0 + 20.789)])
    out = g.snap_to_grid(np.array([left, right], dtype=object), MM)
    assert out[1] is right
    assert np.array_equal(shapely.get_coordinates(out[0])[1:3], shapely.get_coordinates(left)[1:3])
    assert bool(shapely.coverage_is_valid(out))


def test_off_grid_flags_rows_in_every_block():
    """The on-grid test runs in blocks: a stray coordinate in a later block is still found."""
    from spatialplan.analysis._overlay_geom import _BLOCK, _off_grid

    coords = np.round(np.random.default_rng(3).uniform(0, 1e6, (3 * _BLOCK + 5, 2)), 3)
    assert _off_grid(coords, 0.001) is None
    coords[2 * _BLOCK + 1, 1] += 0.0004  # 0.4 mm off, in the third block
    flags = _off_grid(coords, 0.001)
    assert flags is not None and flags.sum() == 1 and flags[2 * _BLOCK + 1]


def test_off_grid_geometries_found_in_every_geometry_block(monkeypatch):
    """The layer is read in blocks of geometries: positions are the layer's, gaps included."""
    from spatialplan.analysis import _overlay_geom

    monkeypatch.setattr(_overlay_geom, "_GEOM_BLOCK", 10)
    x = X0 + np.arange(35) * 10.0
    geoms = shapely.box(x, Y0, x + 5, Y0 + 5)
    geoms[[3, 12]] = None
    for k in (0, 11, 29, 34):  # in the first, second, third and last block
        geoms[k] = shapely.box(x[k] + 0.0004, Y0, x[k] + 5, Y0 + 5)
    got = _overlay_geom._off_grid_positions(geoms, MM)
    assert got.tolist() == [0, 11, 29, 34]
    out = g.snap_to_grid(geoms, MM)
    assert [k for k in range(35) if out[k] is not geoms[k]] == [0, 11, 29, 34]
    assert len(_overlay_geom._off_grid_positions(out, MM)) == 0
