"""Site measures far from the analysis zone's central meridian are those of the site's own zone.

Western Guizhou (103.7°E) in zone 36 (central meridian 108°E): the plane stretches lengths by
0.23 % and areas by 0.46 %. The setback and area measures that feed verdicts must stay within
0.1 % of the ground (geodesic) figures.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely

from spatialplan.rules.rulebook import merge_rules
from spatialplan.rules.siting import check_projects

GEOD = pyproj.Geod(ellps="GRS80")  # CGCS2000's ellipsoid
LON, LAT = 103.7, 26.5
SIDE = 0.0005  # degrees, a site of about 50 m x 55 m


def projects(*sites, facility):
    n = len(sites)
    frame = pd.DataFrame({"project_id": [f"P{i}" for i in range(n)],
                          "feature_id": [f"projects:{i}" for i in range(n)],
                          "name": ["项目"] * n, "facility": facility,
                          "township_code": ["T1"] * n, "status": ["planned"] * n,
                          "mapped_on": pd.to_datetime(["2023-01-01"] * n)})
    return gpd.GeoDataFrame(frame, geometry=list(sites), crs=4490).to_crs(4545)


def two_sites_apart(metres):
    """A sewage plant and a school ``metres`` apart on the ground (geodesic), due east."""
    lon1, _, _ = GEOD.fwd(LON, LAT, 90.0, metres)
    a = shapely.box(LON - SIDE, LAT, LON, LAT + SIDE)
    b = shapely.box(lon1, LAT, lon1 + SIDE, LAT + SIDE)
    return projects(a, b, facility=["sewage", "school"])


def setback_rules(min_m):
    return merge_rules({"setback": {"pairs": [{"from": ["sewage"], "to": ["school"],
                                                "min_m": min_m}]}})


def test_setback_at_the_western_edge_is_the_ground_distance():
    res, _ = check_projects(two_sites_apart(30.0), as_of="2024-06-30")
    measured = res.loc[0, "setback_min_m"]
    assert measured == pytest.approx(30.0, abs=0.03)  # zone 36's plane reads 30.07 m


def test_setback_just_short_of_the_limit_fails():
    _, fnd = check_projects(two_sites_apart(29.95), rules=setback_rules(30.0),
                            as_of="2024-06-30")
    f = fnd[(fnd["rule"] == "setback") & (fnd["subject"] == "project")]
    assert f["status"].tolist() == ["fail", "fail"]  # zone 36's plane: 30.02 m, a pass
    _, fnd = check_projects(two_sites_apart(30.05), rules=setback_rules(30.0),
                            as_of="2024-06-30")
    f = fnd[(fnd["rule"] == "setback") & (fnd["subject"] == "project")]
    assert f["status"].tolist() == ["pass", "pass"]


def test_site_and_overlap_areas_at_the_western_edge_are_the_ground_areas():
    site = shapely.box(LON, LAT, LON + 2 * SIDE, LAT + 2 * SIDE)
    half = shapely.box(LON + SIDE, LAT - SIDE, LON + 4 * SIDE, LAT + 3 * SIDE)
    farmland = gpd.GeoDataFrame(geometry=[half], crs=4490).to_crs(4545)
    res, _ = check_projects(projects(site, facility=["school"]), farmland=farmland,
                            as_of="2024-06-30")
    ground = abs(GEOD.geometry_area_perimeter(shapely.segmentize(site, SIDE / 20))[0])
    shared = abs(GEOD.geometry_area_perimeter(
        shapely.segmentize(site.intersection(half), SIDE / 20))[0])
    assert res.loc[0, "area_m2"] == pytest.approx(ground, rel=1e-3)  # zone 36: +0.46 %
    assert res.loc[0, "farmland_m2"] == pytest.approx(shared, rel=1e-3)
