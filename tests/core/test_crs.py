"""CRS policy: GK zones, auto choice, zone prefix, ballpark datums, swaps, inside China."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely

from spatialplan.core.crs import (
    check_inside_china,
    check_latlon_swap,
    check_zone_prefix,
    choose_analysis_crs,
    gk_zone,
    gk_zone_crs,
    refuse_ballpark,
    to_analysis,
)
from spatialplan.errors import CRSError


@pytest.mark.parametrize(
    ("lon", "plain", "prefixed"),
    [(105.2, 4544, 4523), (107.5, 4545, 4524), (109.6, 4546, 4525), (75.0, 4534, 4513),
     (135.0, 4554, 4533), (106.5, 4545, 4524)],
)
def test_gk_zone_crs_codes(lon, plain, prefixed):
    assert gk_zone_crs(lon).to_epsg() == plain
    assert gk_zone_crs(lon, prefixed=True).to_epsg() == prefixed


def test_gk_zone_outside_range():
    assert gk_zone(3.0) == 1
    with pytest.raises(CRSError, match="outside the CGCS2000"):
        gk_zone_crs(3.0)


@pytest.mark.parametrize(("lon", "epsg"), [(107.5, 4545), (105.2, 4544)])
def test_auto_choice_from_bounds(lon, epsg):
    crs, reason = choose_analysis_crs((lon - 0.1, 27.0, lon + 0.1, 27.5))
    assert crs.to_epsg() == epsg
    assert reason.startswith("auto") and f"EPSG:{epsg}" in reason


def test_auto_choice_from_layers_in_different_crs():
    a = gpd.GeoDataFrame(geometry=[shapely.box(107.4, 27.7, 107.6, 27.9)], crs=4490)
    b = to_analysis(a, "EPSG:4524")  # same place, prefixed metres
    crs, _ = choose_analysis_crs({"a": a, "b": b})
    assert crs.to_epsg() == 4545


def test_requested_crs_is_used_and_must_be_projected():
    crs, reason = choose_analysis_crs((107.0, 27.0, 107.1, 27.1), requested="EPSG:4544")
    assert crs.to_epsg() == 4544 and "named in the plan" in reason
    with pytest.raises(CRSError, match="not projected"):
        choose_analysis_crs((107.0, 27.0, 107.1, 27.1), requested="EPSG:4490")


def test_auto_choice_without_geometry():
    empty = gpd.GeoDataFrame(geometry=[None], crs=4490)
    with pytest.raises(CRSError, match="no layer has any geometry"):
        choose_analysis_crs([empty])


def test_zone_prefixed_eastings_accepted_under_4524_refused_under_4545():
    bounds = (36_450_000.0, 3_070_000.0, 36_460_000.0, 3_080_000.0)
    check_zone_prefix(bounds, "EPSG:4524")
    with pytest.raises(CRSError, match="zone prefix 36") as exc:
        check_zone_prefix(bounds, "EPSG:4545", layer="redline")
    assert "EPSG:4524" in exc.value.hint
    assert exc.value.layer == "redline"


def test_prefixed_crs_with_plain_eastings_refused():
    with pytest.raises(CRSError, match="EPSG:4545"):
        check_zone_prefix((450_000.0, 3_070_000.0, 460_000.0, 3_080_000.0), "EPSG:4524")


def test_metres_under_geographic_crs_refused():
    with pytest.raises(CRSError, match="look projected") as exc:
        check_zone_prefix((36_450_000.0, 3_070_000.0, 36_460_000.0, 3_080_000.0), "EPSG:4490")
    assert "EPSG:4524" in exc.value.hint


@pytest.mark.parametrize("code", [4610, 2383, 2343, 4214, 2433])
def test_ballpark_datums_refused(code):
    with pytest.raises(CRSError, match="ballpark"):
        refuse_ballpark(f"EPSG:{code}")


def test_ballpark_accepted_with_user_transformation():
    refuse_ballpark("EPSG:4610", transformation="+proj=noop")
    refuse_ballpark("+proj=longlat +ellps=IAU76 +towgs84=10,20,30,0,0,0,0 +no_defs")
    refuse_ballpark("EPSG:4545")


def test_latlon_swap_detected():
    swapped = gpd.GeoDataFrame(geometry=[shapely.Point(27.8, 107.5)], crs=4490)
    with pytest.raises(CRSError, match="swapped") as exc:
        check_latlon_swap(swapped, swapped.crs, layer="projects")
    assert "longitude" in exc.value.hint
    with pytest.raises(CRSError, match="swapped"):
        to_analysis(swapped, "EPSG:4545")
    check_latlon_swap(gpd.GeoDataFrame(geometry=[shapely.Point(107.5, 27.8)], crs=4490),
                      "EPSG:4490")


def test_to_analysis_reprojects_explicitly_and_keeps_input():
    g = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(107.5, 27.8)], crs=4490)
    out = to_analysis(g, "EPSG:4545")
    assert out.crs.to_epsg() == 4545
    assert out.geometry.x.iloc[0] == pytest.approx(450728.2, abs=1)
    assert out.geometry.y.iloc[0] == pytest.approx(3076378.4, abs=1)
    assert g.crs.to_epsg() == 4490 and g.geometry.x.iloc[0] == 107.5
    assert out["a"].tolist() == [1]


def test_to_analysis_accepts_prefixed_source():
    g = gpd.GeoDataFrame(geometry=[shapely.Point(36_450_728.2, 3_076_378.4)], crs=4524)
    out = to_analysis(g, "EPSG:4545")
    assert out.geometry.x.iloc[0] == pytest.approx(450_728.2, abs=0.01)


def test_to_analysis_needs_a_crs_and_refuses_outside_china():
    with pytest.raises(CRSError, match="no CRS"):
        to_analysis(gpd.GeoDataFrame(geometry=[shapely.Point(1, 1)]), "EPSG:4545")
    paris = gpd.GeoDataFrame(geometry=[shapely.Point(2.35, 48.85)], crs=4326)
    with pytest.raises(CRSError, match="outside China") as exc:
        to_analysis(paris, "EPSG:4545", layer="udb")
    assert exc.value.layer == "udb"


def test_inside_china_handles_missing_and_empty_geometries():
    g = gpd.GeoDataFrame(geometry=[None, shapely.Polygon(), shapely.Point(107, 27)], crs=4490)
    check_inside_china(g)
    assert len(to_analysis(g, "EPSG:4545")) == 3
