"""The CRS guard: scale distortion measured over the data, refusal of a distorting named CRS."""

from __future__ import annotations

import doctest
import logging

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from conftest import DATA_DIR

from spatialplan.core import distortion as dist_mod
from spatialplan.core.distortion import check_distortion, measure_distortion, site_scale
from spatialplan.errors import CRSError


@pytest.fixture(scope="module")
def counties():
    return gpd.read_file(DATA_DIR / "guizhou_counties_wgs84.geojson")


def brute_force(gdf, crs):
    """Largest linear and areal distortion over every vertex of ``gdf`` (lon/lat)."""
    lonlat = shapely.get_coordinates(np.asarray(gdf.to_crs(4490).geometry.values))
    f = pyproj.Proj(pyproj.CRS.from_user_input(crs)).get_factors(lonlat[:, 0], lonlat[:, 1])
    linear = np.maximum(np.abs(np.asarray(f.tissot_semimajor) - 1),
                        np.abs(np.asarray(f.tissot_semiminor) - 1))
    return float(linear.max()), float(np.abs(np.asarray(f.areal_scale) - 1).max())


def test_docstring_examples():
    assert doctest.testmod(dist_mod).failed == 0


def test_guizhou_in_zone_36_is_measured_at_its_western_edge(counties):
    d = measure_distortion([counties.to_crs(4545)], "EPSG:4545")
    linear, areal = brute_force(counties, "EPSG:4545")
    # the hull's outline holds the extreme vertices: the maximum is found, not underestimated
    assert d.linear == pytest.approx(linear, rel=1e-3) and d.linear >= linear * (1 - 1e-9)
    assert d.areal == pytest.approx(areal, rel=1e-3)
    assert d.lon < 104.0  # west edge of Guizhou, 4.4° from zone 36's central meridian 108°E
    assert 0.001 < d.linear < 0.01 and d.areal > 0.004
    assert f"{100 * d.linear:.2f} %" in d.text()


@pytest.mark.parametrize(("epsg", "worst_pct"), [(3857, 10.0), (4541, 1.0), (4549, 1.0)])
def test_named_crs_distorting_more_than_1_percent_is_refused(counties, epsg, worst_pct):
    d = measure_distortion([counties.to_crs(epsg)], f"EPSG:{epsg}")
    assert d.worst > worst_pct / 100
    with pytest.raises(CRSError) as exc:
        check_distortion(d, named=True)
    text = str(exc.value)
    assert f"EPSG:{epsg}" in text and f"{100 * d.areal:.2f} % in area" in text
    assert f"{d.lon:.2f}°E" in text
    assert 'crs = "auto"' in text and "EPSG:4545" in text  # the zone nearest the centre


def test_named_crs_between_the_limits_warns(counties, caplog):
    d = measure_distortion([counties.to_crs(4544)], "EPSG:4544")
    assert 0.001 < d.worst < 0.01
    with caplog.at_level(logging.WARNING, logger="spatialplan.core.distortion"):
        check_distortion(d, named=True)
    assert "EPSG:4544" in caplog.text and "EPSG:4545" in caplog.text


def test_auto_choice_is_never_refused(counties, caplog):
    d = measure_distortion([counties.to_crs(4541)], "EPSG:4541")
    with caplog.at_level(logging.WARNING, logger="spatialplan.core.distortion"):
        check_distortion(d, named=False)
    assert "distorts the data" in caplog.text


def test_small_distortion_is_silent(caplog):
    g = gpd.GeoSeries([shapely.box(107.5, 27.5, 108.5, 28.0)], crs=4490).to_crs(4545)
    d = measure_distortion([g], g.crs)
    assert d.worst < 0.001
    with caplog.at_level(logging.WARNING):
        check_distortion(d, named=True)
    assert caplog.text == ""
    assert measure_distortion([g.iloc[:0]], g.crs) is None


def test_site_scale_is_exactly_one_in_the_analysis_zone():
    g = gpd.GeoSeries([shapely.box(107.0, 27.0, 107.001, 27.001), None,
                       shapely.box(103.7, 26.5, 103.701, 26.501)], crs=4490).to_crs(4545)
    lin, area = site_scale(np.asarray(g.values), g.crs)
    assert lin[0] == 1.0 and area[0] == 1.0 and lin[1] == 1.0 and area[1] == 1.0
    # the third lies in zone 35: its factor is k35 / k36 at the site
    lon, lat = 103.7005, 26.5005
    k36 = pyproj.Proj("EPSG:4545").get_factors(lon, lat).parallel_scale
    k35 = pyproj.Proj("EPSG:4544").get_factors(lon, lat).parallel_scale
    assert lin[2] == pytest.approx(k35 / k36, rel=1e-7)
    assert area[2] == pytest.approx((k35 / k36) ** 2, rel=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hull_of_many_geometries_equals_the_hull_of_every_vertex(seed):
    """The bounding-box screen of a large layer keeps every hull vertex: the same polygon."""
    rng = np.random.default_rng(seed)
    n = 5000
    # parcels scattered over an irregular (star-like) region, some empty, some missing
    r = 20_000 * (0.4 + 0.6 * rng.random(n)) * (1 + 0.3 * np.sin(5 * rng.random(n) * 2 * np.pi))
    a = rng.random(n) * 2 * np.pi
    x, y = 500_000 + r * np.cos(a), 3_000_000 + r * np.sin(a)
    size = rng.uniform(5, 400, n)
    geoms = shapely.box(x, y, x + size, y + size * rng.uniform(0.2, 2, n)).astype(object)
    if seed:  # turned about the region's centre: boxes not aligned with the axes
        t = rng.uniform(0, np.pi / 2)
        turn = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        geoms = shapely.transform(geoms, lambda xy: (xy - [500_000, 3_000_000]) @ turn
                                  + [500_000, 3_000_000])
    geoms[rng.choice(n, 20, replace=False)] = shapely.Polygon()
    geoms[rng.choice(n, 20, replace=False)] = None
    hull = dist_mod._hull([geoms])
    every = shapely.convex_hull(shapely.multipoints(shapely.get_coordinates(geoms)))
    assert len(dist_mod._rim(geoms[~shapely.is_missing(geoms)])) < n // 4  # the screen works
    assert hull.wkb == every.wkb


def test_hull_keeps_a_layer_whose_extremes_are_collinear():
    """Parcels along a straight line: no inner polygon, nothing screened, the same hull."""
    xs = np.arange(2000, dtype=float) * 10
    geoms = shapely.box(xs, 0, xs + 5, 5)
    assert len(dist_mod._rim(geoms)) <= len(geoms)
    hull = dist_mod._hull([geoms])
    assert hull.wkb == shapely.convex_hull(
        shapely.multipoints(shapely.get_coordinates(geoms))).wkb


def test_boxes_inside_a_convex_hull_are_inside_it():
    """The half-plane screen never calls a box inside that reaches the hull or beyond it."""
    rng = np.random.default_rng(7)
    hull = shapely.convex_hull(shapely.multipoints(rng.normal(0, 1000, (40, 2))))
    x0, y0 = rng.uniform(-2500, 2500, 20_000), rng.uniform(-2500, 2500, 20_000)
    x1, y1 = x0 + rng.uniform(0, 300, 20_000), y0 + rng.uniform(0, 300, 20_000)
    inside = dist_mod._boxes_inside([x0, y0, x1, y1], hull)
    corners = [shapely.contains_xy(hull, x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
    every = np.logical_and.reduce(corners)
    assert inside.any() and not (inside & ~every).any()
    assert (every & ~inside).sum() < 0.01 * every.sum()  # conservative by a hair only
