"""What changed between two checks (spatialplan.analysis.compare), on tables built in code."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from spatialplan.analysis.compare import (
    MOVE_TOLERANCE_M,
    PROJECT_CHANGE_COLUMNS,
    project_changes,
    township_changes,
)

CRS = "EPSG:4545"


def _projects(**changes) -> gpd.GeoDataFrame:
    """Three projects; keyword arguments replace a column."""
    data = {
        "project_id": ["P1", "P2", "P3"], "name": ["卫生院", "小学", "市场"],
        "township_code": ["520399101", "520399101", "520399102"],
        "facility": ["health_center", "school", "market"], "verdict": ["pass", "review", "fail"],
        "reasons": ["ok", "slope", "red line"], "status": ["planned", "planned", "completed"],
        "start_on": pd.to_datetime(["2025-01-01", None, "2022-03-01"]),
        "end_year": [2026, 2027, 2023], "investment_wan": [100.0, np.nan, 300.0],
    }
    data.update(changes)
    geoms = changes.pop("geometry", [shapely.box(0, 0, 10, 10), shapely.box(100, 0, 110, 10),
                                     shapely.box(200, 0, 210, 10)])
    data.pop("geometry", None)
    return gpd.GeoDataFrame(data, geometry=geoms, crs=CRS)


def _rows(changes: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in changes[["project_id", "change", "before", "after"]].to_numpy()]


def test_identical_runs_have_no_rows():
    out = project_changes(_projects(), _projects())
    assert len(out) == 0
    assert list(out.columns[:len(PROJECT_CHANGE_COLUMNS)]) == list(PROJECT_CHANGE_COLUMNS)


@pytest.mark.parametrize(("column", "values", "expected"), [
    ("verdict", ["pass", "fail", "fail"], ("P2", "verdict", "review", "fail")),
    ("status", ["planned", "under_construction", "completed"],
     ("P2", "status", "planned", "under_construction")),
    ("investment_wan", [100.0, 50.0, 300.0], ("P2", "investment", "", "50")),
    ("reasons", ["ok", "slope 16°", "red line"], ("P2", "reasons", "slope", "slope 16°")),
    ("end_year", [2026, 2028, 2023], ("P2", "dates", "end_year=2027", "end_year=2028")),
    ("start_on", pd.to_datetime(["2025-01-01", "2026-05-01", "2022-03-01"]),
     ("P2", "dates", "start_on=", "start_on=2026-05-01")),
])
def test_each_kind_of_value_change(column, values, expected):
    out = project_changes(_projects(), _projects(**{column: values}))
    assert _rows(out) == [expected]


def test_several_changes_of_one_project_are_rows_in_kind_order():
    after = _projects(verdict=["fail", "review", "fail"], reasons=["farmland", "slope", "red line"],
                      investment_wan=[120.0, np.nan, 300.0])
    assert _rows(project_changes(_projects(), after)) == [
        ("P1", "verdict", "pass", "fail"), ("P1", "investment", "100", "120"),
        ("P1", "reasons", "ok", "farmland")]


def test_added_and_removed():
    after = _projects().iloc[[0, 1]]
    extra = _projects().iloc[[2]].assign(project_id="P9", verdict="review")
    out = project_changes(_projects(), pd.concat([after, extra]))
    assert sorted(_rows(out)) == [("P3", "removed", "fail", ""), ("P9", "added", "", "review")]
    removed = out[out["change"] == "removed"].iloc[0]
    assert removed["geometry"] is None and removed["geometry_before"] is not None


def test_moved_only_from_one_centimetre():
    base = _projects()
    geoms = list(base.geometry)
    just_under = shapely.affinity.translate(geoms[0], xoff=MOVE_TOLERANCE_M * 0.9)
    over = shapely.affinity.translate(geoms[1], yoff=MOVE_TOLERANCE_M * 1.1)
    out = project_changes(base, _projects(geometry=[just_under, over, geoms[2]]))
    assert _rows(out) == [("P2", "moved", "105.00, 5.00", "105.00, 5.01")]
    assert out["moved_m"].iloc[0] == pytest.approx(0.011)


def test_a_reshaped_site_moved_by_its_hausdorff_distance():
    geoms = list(_projects().geometry)
    out = project_changes(_projects(), _projects(geometry=[shapely.box(0, 0, 10, 13), *geoms[1:]]))
    assert out["change"].tolist() == ["moved"]
    assert out["moved_m"].iloc[0] == pytest.approx(3.0)


def test_before_in_another_crs_is_reprojected_before_comparing():
    before = _projects().set_geometry(
        _projects().geometry.translate(500_000, 3_000_000)).set_crs(CRS, allow_override=True)
    after = before.copy()
    out = project_changes(before.to_crs(4490), after)
    assert len(out) == 0  # the reprojection round trip moves nothing by a centimetre


def test_repeated_and_missing_ids_are_matched_in_order():
    before = _projects(project_id=["P1", "P1", None], feature_id=["f0", "f1", "f2"])
    after = before.assign(verdict=["pass", "fail", "fail"])
    out = project_changes(before, after)
    assert _rows(out) == [("P1", "verdict", "review", "fail")]


def test_township_changes():
    before = pd.DataFrame({"township_code": ["1", "2"], "township_name": ["甲", "乙"],
                           "redline_m2": [1000.0, 0.0], "eight_missing": ["school", ""],
                           "n_projects": [3, 4]})
    after = pd.DataFrame({"township_code": ["1", "3"], "township_name": ["甲", "丙"],
                          "redline_m2": [1000.0 + 1e-8, 5.0], "eight_missing": ["", ""],
                          "n_projects": [4, 1]})
    out = township_changes(before, after)
    assert [tuple(r) for r in out.to_numpy()] == [
        ("1", "甲", "changed", "eight_missing", "school", ""),
        ("1", "甲", "changed", "n_projects", "3", "4"),
        ("2", "乙", "removed", "", "", ""),
        ("3", "丙", "added", "", "", "")]
