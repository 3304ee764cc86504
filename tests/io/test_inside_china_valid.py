"""``check_inside_china(..., valid=...)``: the box of valid geometries stands in for their
coordinates; the outcome and the error are those of the full test on tricky layers."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from conftest import square

import spatialplan.core.crs as crs_mod
from spatialplan.core.crs import _valid_bounds, check_inside_china
from spatialplan.errors import CRSError

X0, Y0 = 450_000.0, 3_070_000.0


def _outcome(geoms: list, crs: str = "EPSG:4545", **kwargs) -> str | None:
    """None when the check passes, else its message."""
    try:
        check_inside_china(gpd.GeoSeries(geoms, crs=crs), layer="farmland", **kwargs)
    except CRSError as exc:
        return str(exc)
    return None


def _holed(hole: list[tuple[float, float]]) -> shapely.Polygon:
    shell = [(X0, Y0), (X0 + 100, Y0), (X0 + 100, Y0 + 100), (X0, Y0 + 100)]
    return shapely.Polygon(shell, [hole])


def _nan_layers() -> dict[str, list]:
    """Layers with NaN / infinite coordinates (shapely warns while building them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "Z": [shapely.Polygon([(X0, Y0, 5), (X0 + 9, Y0, 5), (X0, Y0 + 9, np.nan)])],
            "NaN in a hole": [_holed([(X0 + 10, Y0 + 10), (X0 + 20, Y0 + 10),
                                      (np.nan, Y0 + 20)])],
            "inf in a hole": [_holed([(X0 + 10, Y0 + 10), (X0 + 20, Y0 + 10),
                                      (np.inf, Y0 + 20)])],
            "NaN first vertex": [shapely.LineString([(np.nan, Y0), (X0, Y0), (X0 + 5, Y0 + 5)])],
            "-inf": [shapely.LineString([(X0, Y0), (-np.inf, Y0)]), square(X0, Y0, 50)],
            "NaN point": [shapely.Point(np.nan, np.nan), shapely.Point(X0, np.nan)],
            "NaN in a multipoint": [shapely.MultiPoint([(X0, Y0), (np.nan, np.nan)])],
        }


FAR_SOUTH = shapely.Polygon([(X0, Y0), (X0 + 100, Y0), (X0, 100_000.0)])
LAYERS = {
    "plain": [square(X0 + 300 * i, Y0, 50) for i in range(20)],
    "missing and empty": [square(X0, Y0, 50), None, shapely.Polygon(), shapely.Point()],
    "only missing": [None, shapely.Polygon()],
    "one vertex outside": [square(X0, Y0, 50), FAR_SOUTH],
    "hole outside the shell (invalid)": [_holed([(X0 + 10, 100_000.0), (X0 + 20, 100_000.0),
                                                 (X0 + 20, 100_010.0)])],
    "collection": [shapely.GeometryCollection([square(X0, Y0, 5), shapely.Point(X0, 10.0)])],
    "points": [shapely.MultiPoint([(X0, Y0), (X0 + 1, Y0 + 1)]), shapely.Point(X0, Y0)],
    **_nan_layers(),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_screened_validity_gives_the_full_tests_outcome(name):
    geoms = LAYERS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GEOS's notice on invalid ones
        valid = shapely.is_valid(np.array(geoms, dtype=object))
    assert _outcome(geoms, valid=valid) == _outcome(geoms)


@pytest.mark.parametrize("name", ["plain", "points", "missing and empty"])
def test_valid_layer_is_proven_from_its_boxes(monkeypatch, name):
    """No coordinate is extracted for a layer of valid geometries inside China."""
    extract = shapely.get_coordinates
    geoms = LAYERS[name]

    def refuse(some, *args, **kwargs):  # the full test extracts every feature's coordinates
        if len(some) == len(geoms):
            raise AssertionError("coordinates extracted")
        return extract(some, *args, **kwargs)

    layer = gpd.GeoSeries(geoms, crs="EPSG:4545")
    valid = shapely.is_valid(np.array(geoms, dtype=object))
    monkeypatch.setattr(shapely, "get_coordinates", refuse)
    check_inside_china(layer, valid=valid)


def test_lonlat_layer_with_valid_flags():
    inside = [square(107.5, 27.8, 0.1)]
    outside = [*inside, shapely.Point(140, 30)]
    for geoms in (inside, outside):
        valid = np.ones(len(geoms), dtype=bool)
        assert _outcome(geoms, "EPSG:4490", valid=valid) == _outcome(geoms, "EPSG:4490")
    assert "outside China" in _outcome(outside, "EPSG:4490", valid=np.ones(2, dtype=bool))


def test_valid_bounds_are_the_coordinates_bounds():
    rng = np.random.default_rng(7)
    geoms = np.array([shapely.box(*sorted(rng.uniform(0, 9, 2)), *sorted(rng.uniform(0, 9, 2)))
                      for _ in range(50)] + [None, shapely.LineString([(-3, 1), (20, 2)])],
                     dtype=object)
    valid = shapely.is_valid(geoms) & (rng.uniform(size=len(geoms)) < 0.5)
    xy = shapely.get_coordinates(geoms)
    assert _valid_bounds(geoms, valid) == (xy[:, 0].min(), xy[:, 1].min(),
                                           xy[:, 0].max(), xy[:, 1].max())
    assert _valid_bounds(np.array([None], dtype=object), np.array([False])) \
        is crs_mod._NO_COORDINATES


def test_valid_needs_one_flag_per_geometry():
    with pytest.raises(ValueError, match="one flag per geometry"):
        check_inside_china(gpd.GeoSeries([square(X0, Y0, 5)], crs="EPSG:4545"),
                           valid=np.array([True, True]))
