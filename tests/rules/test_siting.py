"""Tests of the 8+X siting rules on tiny scenarios built in code (metric CRS EPSG:4545)."""

from __future__ import annotations

import doctest
import importlib
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from spatialplan.errors import CRSError, DataLayerError, FieldError, RulebookError
from spatialplan.rules.catalog import read_catalog
from spatialplan.rules.rulebook import RULE_IDS, merge_rules
from spatialplan.rules.siting import (
    COVERAGE_COLUMNS,
    FINDING_COLUMNS,
    PROJECT_COLUMNS,
    check_projects,
    facility_coverage,
    unmapped_builds,
    worst_status,
)

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 2_900_000.0
AS_OF = "2024-06-30"


def box(x0, y0, x1, y1):
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def layer(geoms, crs=CRS, **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=crs)


_DEFAULTS = {
    "name": "项目",
    "facility": "school",
    "township_code": "T1",
    "status": "planned",
    "mapped_on": "2023-01-01",
    "permit_on": None,
    "start_on": None,
    "finish_on": None,
    "investment_wan": 100.0,
    "start_year": 2025,
    "end_year": 2026,
}


def register(*sites, **overrides):
    """Projects P0, P1, ... on ``sites``; ``overrides`` maps a field to a list of values."""
    n = len(sites)
    data = {"project_id": [f"P{i}" for i in range(n)],
            "feature_id": [f"projects:{i}" for i in range(n)]}
    for key, default in _DEFAULTS.items():
        data[key] = list(overrides.pop(key, [default] * n))
    assert not overrides, overrides
    frame = pd.DataFrame(data)
    for key in ("mapped_on", "permit_on", "start_on", "finish_on"):
        frame[key] = pd.to_datetime(frame[key])
    for key in ("start_year", "end_year"):
        frame[key] = frame[key].astype("Int64")
    return gpd.GeoDataFrame(frame, geometry=list(sites), crs=CRS)


def finding(findings, pid, rule):
    rows = findings[(findings["project_id"] == pid) & (findings["rule"] == rule)
                    & (findings["subject"] == "project")]
    assert len(rows) == 1, (pid, rule, len(rows))
    return rows.iloc[0]


def statuses(findings, rule):
    f = findings[(findings["rule"] == rule) & (findings["subject"] == "project")]
    return dict(zip(f["project_id"], f["status"], strict=True))


def check(projects, **kw):
    kw.setdefault("as_of", AS_OF)
    return check_projects(projects, **kw)


@pytest.fixture(scope="module")
def catalog():
    return read_catalog()


# ------------------------------------------------------------------ shape of the results


def test_result_shape_and_accounting_with_rejected_and_empty(catalog):
    projects = register(box(0, 0, 50, 50), shapely.Polygon(), None, box(100, 0, 150, 50),
                        facility=["school", "market", "school", "no-such-thing"])
    rejected = pd.DataFrame({"feature_id": ["projects:9"], "reason": ["self-intersection"],
                             "project_id": ["P9"], "name": ["坏项目"], "facility": ["school"]})
    res, fnd = check(projects, rejected=rejected, catalog=catalog,
                     townships=layer([box(-1000, -1000, 1000, 1000)], code=["T1"]))
    assert len(res) == len(projects) + len(rejected)
    assert list(res.columns) == [*PROJECT_COLUMNS, "geometry"]
    assert list(fnd.columns) == list(FINDING_COLUMNS)
    assert len(fnd) == len(res) * len(RULE_IDS)
    assert res["project_id"].tolist() == ["P0", "P1", "P2", "P3", "P9"]
    verdict = dict(zip(res["project_id"], res["verdict"], strict=True))
    assert verdict["P1"] == verdict["P2"] == verdict["P3"] == verdict["P9"] == "error"
    assert verdict["P0"] != "error"
    assert "选址范围为空" in finding(fnd, "P1", "township")["message"]
    assert "no site geometry" in finding(fnd, "P2", "redline")["message"]
    # non-geometric rules still run on a project without a site
    assert finding(fnd, "P2", "map_first")["status"] == "pass"
    assert "unknown facility type" in finding(fnd, "P3", "landuse")["message"]
    assert finding(fnd, "P3", "township")["status"] == "pass"
    rej = fnd[fnd["project_id"] == "P9"]
    assert (rej["status"] == "error").all() and len(rej) == len(RULE_IDS)
    assert "self-intersection" in res.loc[4, "reasons"]
    assert res.loc[4, "geometry"] is None
    assert res.loc[0, "facility_name"] == "学校" and res.loc[0, "group"] == "8"


def test_empty_register(catalog):
    res, fnd = check(register(), catalog=catalog)
    assert len(res) == 0 and len(fnd) == 0
    assert list(fnd.columns) == list(FINDING_COLUMNS)


def test_verdict_is_worst_of_findings(catalog):
    assert worst_status(["pass", "review", "not_applicable"]) == "review"
    assert worst_status(["fail", "error", "review"]) == "error"
    assert worst_status(["not_applicable"]) == "pass"
    projects = register(box(0, 0, 50, 50), box(200, 0, 250, 50))
    farmland = layer([box(40, 0, 60, 50)])
    res, fnd = check(projects, farmland=farmland, catalog=catalog)
    for pid, verdict in zip(res["project_id"], res["verdict"], strict=True):
        assert verdict == worst_status(fnd.loc[fnd["project_id"] == pid, "status"])
    assert res["verdict"].tolist() == ["fail", "pass"]
    assert res.loc[1, "reasons"] == "各项检查均符合 / all checks passed"


def test_geographic_crs_refused(catalog):
    projects = register(box(0, 0, 1, 1)).set_crs("EPSG:4490", allow_override=True)
    with pytest.raises(CRSError, match="geographic"):
        check(projects, catalog=catalog)


def test_layer_in_other_crs_refused(catalog):
    with pytest.raises(CRSError, match="redline"):
        check(register(box(0, 0, 1, 1)), redline=layer([box(0, 0, 1, 1)], crs="EPSG:4544"),
              catalog=catalog)


# ------------------------------------------------------------------ township


def test_township_rule(catalog):
    towns = layer([box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)], code=["T1", "T2"],
                  name=["甲镇", "乙镇"])
    projects = register(
        box(10, 10, 60, 60),  # inside T1
        box(980, 10, 1030, 60),  # crosses into T2
        box(1100, 10, 1150, 60),  # wholly in T2
        box(999.99, 10, 1050, 60),  # 0.5 m² in T1 — declared T2: boundary noise
        box(3000, 0, 3050, 50),  # no township at all
        township_code=["T1", "T1", "T1", "T2", "T1"],
    )
    res, fnd = check(projects, townships=towns, catalog=catalog)
    assert statuses(fnd, "township") == {"P0": "pass", "P1": "review", "P2": "fail",
                                         "P3": "review", "P4": "fail"}
    assert "跨乡镇边界" in finding(fnd, "P1", "township")["message"]
    assert "乙镇（T2）" in finding(fnd, "P2", "township")["message"]
    assert "boundary noise" in finding(fnd, "P3", "township")["message"]
    assert res["township_found"].tolist()[:4] == ["T1", "T2", "T2", "T2"]
    assert pd.isna(res.loc[4, "township_found"])
    _res2, fnd2 = check(projects, catalog=catalog)
    assert set(statuses(fnd2, "township").values()) == {"not_applicable"}


def test_township_undeclared_or_unknown_is_review(catalog):
    towns = layer([box(0, 0, 1000, 1000)], code=["T1"])
    projects = register(box(10, 10, 60, 60), box(10, 100, 60, 160), township_code=[None, "T7"])
    _res, fnd = check(projects, townships=towns, catalog=catalog)
    assert statuses(fnd, "township") == {"P0": "review", "P1": "review"}


# ------------------------------------------------------------------ control lines


def test_redline_rule(catalog):
    red = layer([box(0, 0, 100, 100)])
    projects = register(
        box(200, 0, 250, 50),  # clear
        box(50, 0, 150, 50),  # school inside → fail
        box(50, 100, 150, 150).union(box(90, 60, 95, 100)),  # road crossing → review (认定)
        box(99.99, 0, 150, 50),  # 0.5 m² sliver → boundary noise review
        facility=["school", "school", "road", "school"],
    )
    res, fnd = check(projects, redline=red, catalog=catalog)
    assert statuses(fnd, "redline") == {"P0": "pass", "P1": "fail", "P2": "review",
                                        "P3": "review"}
    assert "认定" in finding(fnd, "P2", "redline")["message"]
    assert "边界误差" in finding(fnd, "P3", "redline")["message"]
    assert res["redline_m2"].round(3).tolist() == [0.0, 2500.0, 200.0, 0.5]
    assert "142号" in finding(fnd, "P1", "redline")["source"]


def test_farmland_fail_reports_m2_and_mu(catalog):
    farm = layer([box(0, 0, 24.69, 50)])
    projects = register(box(0, 0, 100, 50), box(200, 0, 250, 50), box(24.68, 0, 80, 50))
    res, fnd = check(projects, farmland=farm, catalog=catalog)
    f = finding(fnd, "P0", "farmland")
    assert f["status"] == "fail"
    assert f["message"] == ("占用永久基本农田 1234.5 m²（1.85 亩） / "
                            "occupies permanent basic farmland 1234.5 m² (1.85 mu)")
    assert f["measure"] == pytest.approx(1234.5) and f["unit"] == "m2"
    assert res.loc[0, "farmland_mu"] == pytest.approx(1234.5 * 3 / 2000)
    assert statuses(fnd, "farmland") == {"P0": "fail", "P1": "pass", "P2": "review"}
    assert "第35条" in f["source"]


def test_self_overlapping_layer_not_double_counted(catalog):
    farm = layer([box(0, 0, 30, 50), box(10, 0, 40, 50)])
    res, _fnd = check(register(box(0, 0, 100, 50)), farmland=farm, catalog=catalog)
    assert res.loc[0, "farmland_m2"] == pytest.approx(2000.0)


def test_tolerance_from_rulebook(catalog):
    rules = merge_rules({"tolerance": {"min_overlap_m2": 200.0}})
    farm = layer([box(0, 0, 2, 50)])  # 100 m²
    _res, fnd = check(register(box(0, 0, 100, 50)), farmland=farm, rules=rules, catalog=catalog)
    f = finding(fnd, "P0", "farmland")
    assert f["status"] == "review" and "200 m²" in f["message"]


def test_cropland_rule(catalog):
    crop = layer([box(0, 0, 50, 100)])
    projects = register(box(0, 0, 100, 50), box(200, 0, 250, 50))
    res, fnd = check(projects, cropland=crop, catalog=catalog)
    assert statuses(fnd, "cropland") == {"P0": "review", "P1": "pass"}
    assert "占补平衡" in finding(fnd, "P0", "cropland")["message"]
    assert res.loc[0, "cropland_m2"] == pytest.approx(2500.0)
    _res, fnd = check(projects, catalog=catalog)
    assert set(statuses(fnd, "cropland").values()) == {"not_applicable"}


def test_udb_rule(catalog):
    udb = layer([box(0, 0, 500, 500)], zone=["010100"])
    projects = register(
        box(10, 10, 60, 60),  # school inside
        box(600, 0, 650, 50),  # school outside → review
        box(600, 100, 650, 150),  # sewage outside → pass (allowed)
        box(10, 499.99, 60, 550),  # market 50.5 %... mostly outside → review
        box(10, 100, 60, 150).union(box(499.995, 200, 500.095, 205)),  # 0.5 m² outside: noise
        facility=["school", "school", "sewage", "market", "school"],
    )
    res, fnd = check(projects, udb=udb, catalog=catalog)
    assert statuses(fnd, "udb") == {"P0": "pass", "P1": "review", "P2": "pass",
                                    "P3": "review", "P4": "review"}
    assert "分区 010100" in finding(fnd, "P0", "udb")["message"]
    assert "allowed" in finding(fnd, "P2", "udb")["message"]
    assert "boundary noise" in finding(fnd, "P4", "udb")["message"]
    assert res["outside_udb_m2"].round(2).tolist()[:3] == [0.0, 2500.0, 2500.0]


# ------------------------------------------------------------------ land use


def test_landuse_rule(catalog):
    parcels = layer([box(0, 0, 100, 100), box(100, 0, 200, 100), box(200, 0, 300, 100),
                     box(300, 0, 400, 100)], landuse=["080403", "0701", "0804", "1401"])
    projects = register(
        box(10, 10, 60, 60),  # all 080403 → pass
        box(60, 10, 140, 60),  # half 0701 → review
        box(110, 10, 160, 60),  # all 0701 → fail
        box(1000, 0, 1050, 50),  # no parcel → review
        box(210, 10, 260, 60),  # parent code 0804 → fail unless parent_counts
    )
    res, fnd = check(projects, parcels=parcels, catalog=catalog)
    assert statuses(fnd, "landuse") == {"P0": "pass", "P1": "review", "P2": "fail",
                                        "P3": "review", "P4": "fail"}
    assert res["landuse_compatible_share"].round(3).tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert "0701" in finding(fnd, "P2", "landuse")["message"]
    rules = merge_rules({"landuse": {"parent_counts": True}})
    _res, fnd = check(projects, parcels=parcels, catalog=catalog, rules=rules)
    assert finding(fnd, "P4", "landuse")["status"] == "pass"
    _res, fnd = check(projects, catalog=catalog)
    assert set(statuses(fnd, "landuse").values()) == {"not_applicable"}


def test_landuse_unknown_code_is_review_naming_it(catalog):
    parcels = layer([box(0, 0, 100, 100), box(100, 0, 200, 100), box(200, 0, 300, 100),
                     box(300, 0, 400, 100)], landuse=["0899", "080599", "0701", "080403"])
    projects = register(
        box(10, 10, 60, 60),  # all on 0899 (not in the 2023 table) → review, not a 0 % fail
        box(110, 10, 160, 60),  # 080599 under sports (0805): not compatible by prefix
        box(260, 10, 340, 60),  # half 0701, half 080403 → review as before
        box(160, 10, 240, 60),  # 080599 and 0701: the unknown code keeps it from failing
        facility=["school", "sports", "school", "school"],
    )
    res, fnd = check(projects, parcels=parcels, catalog=catalog)
    assert statuses(fnd, "landuse") == {"P0": "review", "P1": "review", "P2": "review",
                                        "P3": "review"}
    assert res["landuse_compatible_share"].round(3).tolist() == [0.0, 0.0, 0.5, 0.0]
    for pid, code in (("P0", "0899"), ("P1", "080599"), ("P3", "080599")):
        message = finding(fnd, pid, "landuse")["message"]
        assert code in message and "not in the 2023 land-use classification" in message
    assert "not in the 2023" not in finding(fnd, "P2", "landuse")["message"]
    rules = merge_rules({"landuse": {"parent_counts": True}})
    _res, fnd = check(projects, parcels=parcels, catalog=catalog, rules=rules)
    assert finding(fnd, "P0", "landuse")["status"] == "review"
    message = finding(fnd, "P0", "landuse")["message"]
    assert "parcel code(s) 0899 not in" in message and "地块代码 0899" in message


def test_landuse_parent_counts_names_parcel_code(catalog):
    parcels = layer([box(0, 0, 100, 100)], landuse=["0804"])
    projects = register(box(10, 10, 60, 60))
    rules = merge_rules({"landuse": {"parent_counts": True}})
    _res, fnd = check(projects, parcels=parcels, catalog=catalog, rules=rules)
    row = finding(fnd, "P0", "landuse")
    assert row["status"] == "pass"
    assert "parcel codes 0804, parent codes counted" in row["message"]
    assert "地块代码 0804" in row["message"]


# ------------------------------------------------------------------ slope


def _slope_frame(rows):
    frame = pd.DataFrame(rows, columns=["id", "slope_mean_deg", "slope_max_deg", "share_over_15",
                                        "share_over_25", "elev_mean_m", "coverage", "n_pixels",
                                        "flag"])
    return frame.set_index("id")


def test_slope_rule_and_per_facility_override(catalog):
    projects = register(*[box(100 * i, 0, 100 * i + 50, 50) for i in range(7)],
                        facility=["school"] * 5 + ["road", "road"])
    slope = _slope_frame([
        ("projects:0", 5.0, 9.0, 0.0, 0.0, 900.0, 1.0, 25.0, "ok"),
        ("projects:1", 18.0, 24.0, 0.6, 0.0, 900.0, 1.0, 25.0, "ok"),
        ("projects:2", 28.0, 40.0, 1.0, 0.7, 900.0, 1.0, 25.0, "ok"),
        ("projects:3", 8.0, 30.0, 0.2, 0.4, 900.0, 1.0, 25.0, "ok"),  # 40 % over 25° → fail
        ("projects:4", 5.0, 6.0, 0.0, 0.0, 900.0, 1.0, 1.5, "too_few_pixels"),
        ("projects:5", 28.0, 33.0, 1.0, 0.7, 900.0, 1.0, 25.0, "ok"),  # road: 35° limit → review
        # projects:6 missing → review
    ])
    res, fnd = check(projects, slope=slope, catalog=catalog)
    assert statuses(fnd, "slope") == {"P0": "pass", "P1": "review", "P2": "fail", "P3": "fail",
                                      "P4": "review", "P5": "review", "P6": "review"}
    assert res.loc[2, "slope_mean_deg"] == 28.0 and res.loc[2, "slope_max_deg"] == 40.0
    assert res.loc[2, "slope_over_limit_share"] == 0.7
    assert "35°" in finding(fnd, "P5", "slope")["message"]
    rules = merge_rules({"facility": {"school": {"slope": {"limit_deg": 15.0,
                                                           "review_from_deg": 10.0}}}})
    _res, fnd = check(projects, slope=slope, catalog=catalog, rules=rules)
    assert finding(fnd, "P1", "slope")["status"] == "fail"
    assert finding(fnd, "P5", "slope")["status"] == "review"
    _res, fnd = check(projects, catalog=catalog)
    assert set(statuses(fnd, "slope").values()) == {"not_applicable"}


def test_slope_of_a_site_on_too_few_cells_is_judged_by_the_cells_around_it(catalog):
    projects = register(*[box(100 * i, 0, 100 * i + 20, 30) for i in range(4)])
    slope = _slope_frame([(f"projects:{i}", 1.0, 2.0, 0.0, 0.0, 900.0, 1.0, 0.7,
                           "too_few_pixels") for i in range(4)])
    slope["around_slope_max_deg"] = [3.0, 18.0, 30.0, np.nan]  # P3: around not measured
    slope["around_slope_mean_deg"] = [1.0, 6.0, 9.0, np.nan]
    slope["around_m"] = [30.0, 30.0, 30.0, np.nan]
    _res, fnd = check(projects, slope=slope, catalog=catalog)
    assert statuses(fnd, "slope") == {"P0": "pass", "P1": "review", "P2": "review",
                                      "P3": "review"}
    p0 = finding(fnd, "P0", "slope")
    assert "坡度按周边一个像元（30 m）范围判断" in p0["message"]
    assert "too few DEM cells (0.7)" in p0["message"] and "the measure" in p0["message"]
    assert (p0["measure"], p0["unit"]) == (3.0, "deg")  # the figure it was judged by
    assert finding(fnd, "P1", "slope")["measure"] == 18.0
    assert "near or over the limit" in finding(fnd, "P2", "slope")["message"]
    p3 = finding(fnd, "P3", "slope")
    assert "indicative only" in p3["message"] and p3["measure"] == 1.0
    rules = merge_rules({"slope": {"review_from_deg": 2.0}})  # 3° around is no longer gentle
    _res, fnd = check(projects, slope=slope, catalog=catalog, rules=rules)
    assert finding(fnd, "P0", "slope")["status"] == "review"


# ------------------------------------------------------------------ setback


def test_setback_rule(catalog):
    parcels = layer([box(1000, 0, 1100, 100)], landuse=["0701"])
    projects = register(
        box(0, 0, 50, 50),  # sewage
        box(80, 0, 130, 50),  # school 30 m away → both fail
        box(900, 200, 950, 250),  # refuse 50 m from the 0701 parcel → ok (min 50)
        box(960, 0, 990, 50),  # refuse 10 m from residential parcel → fail
        box(500, 500, 550, 550),  # park: no setback applies
        box(400, 0, 450, 50),  # elder care far from everything → pass
        facility=["sewage", "school", "refuse", "refuse", "park", "elder_care"],
    )
    res, fnd = check(projects, parcels=parcels, catalog=catalog)
    assert statuses(fnd, "setback") == {"P0": "fail", "P1": "fail", "P2": "pass", "P3": "fail",
                                        "P4": "not_applicable", "P5": "pass"}
    f = finding(fnd, "P0", "setback")
    assert f["measure"] == pytest.approx(30.0) and "100 m" in f["message"]
    assert "0701" in finding(fnd, "P3", "setback")["message"]
    assert res.loc[1, "setback_min_m"] == pytest.approx(30.0)


def test_setback_unknown_facility_in_rulebook(catalog):
    rules = merge_rules({"setback": {"pairs": [{"from": "nuclear", "to": "school", "min_m": 5}]}})
    with pytest.raises(RulebookError, match="nuclear"):
        check(register(box(0, 0, 5, 5)), rules=rules, catalog=catalog)


# ------------------------------------------------------------------ project overlap


def test_project_overlap_rule(catalog):
    projects = register(box(0, 0, 50, 50), box(40, 0, 90, 50), box(200, 0, 250, 50),
                        box(249.99, 0, 300, 50), box(500, 0, 550, 50), box(550, 0, 600, 50))
    res, fnd = check(projects, catalog=catalog)
    assert statuses(fnd, "project_overlap") == {"P0": "review", "P1": "review", "P2": "review",
                                                "P3": "review", "P4": "pass", "P5": "pass"}
    assert "P1" in finding(fnd, "P0", "project_overlap")["message"]
    assert "boundary noise" in finding(fnd, "P2", "project_overlap")["message"]
    assert res.loc[0, "project_overlap_m2"] == pytest.approx(500.0)


# ------------------------------------------------------------------ map first, as built


def test_map_first_rule(catalog):
    projects = register(
        *[box(100 * i, 0, 100 * i + 50, 50) for i in range(5)],
        status=["completed", "under_construction", "completed", "planned", "planned"],
        mapped_on=["2021-01-01", None, "2023-05-01", None, "2025-01-01"],
        permit_on=["2021-06-01", "2022-01-01", "2022-01-01", None, None],
        start_on=["2021-09-01", "2022-03-01", "2022-03-01", None, None],
    )
    _res, fnd = check(projects, catalog=catalog)
    assert statuses(fnd, "map_first") == {"P0": "pass", "P1": "fail", "P2": "fail",
                                          "P3": "review", "P4": "review"}
    assert finding(fnd, "P0", "map_first")["measure"] == 151.0
    assert "晚于" in finding(fnd, "P2", "map_first")["message"]


def test_as_built_rule_and_unmapped_builds(catalog):
    projects = register(
        box(0, 0, 100, 100), box(200, 0, 300, 100), box(400, 0, 500, 100), box(600, 0, 700, 100),
        status=["completed", "completed", "completed", "planned"],
        permit_on=["2023-02-01"] * 4, start_on=["2023-03-01"] * 4, finish_on=["2024-01-01"] * 4,
    )
    built = layer(
        [box(1, 1, 99, 99), box(250, 0, 350, 100), box(900, 0, 950, 50), box(960, 0, 990, 30)],
        project_id=["P0", "P1", "X-77", None],
        feature_id=["built:0", "built:1", "built:2", "built:3"],
    )
    res, fnd = check(projects, built=built, catalog=catalog)
    assert statuses(fnd, "as_built") == {"P0": "pass", "P1": "fail", "P2": "review",
                                         "P3": "not_applicable"}
    assert res.loc[1, "built_inside_share"] == pytest.approx(0.5)
    lost = fnd[fnd["subject"] == "unmapped_build"]
    assert lost["project_id"].tolist() == ["X-77", "built:3"]
    assert set(lost["rule"]) == {"as_built"} and set(lost["status"]) == {"fail"}
    assert "未落图先建设" in lost.iloc[0]["message"]
    assert len(res) == 4  # unmapped builds never add project rows
    assert len(fnd) == 4 * len(RULE_IDS) + 2
    assert unmapped_builds(built, projects)["project_id"].tolist() == ["X-77", "built:3"]
    _res, fnd = check(projects, catalog=catalog)
    assert set(statuses(fnd, "as_built").values()) == {"not_applicable"}


def test_schedule_rule(catalog):
    projects = register(
        *[box(100 * i, 0, 100 * i + 50, 50) for i in range(5)],
        status=["under_construction", "under_construction", "completed", "planned", "demolished"],
        permit_on=["2023-01-01", None, "2022-01-01", None, None],
        start_on=["2023-03-01", "2024-09-01", "2022-03-01", None, None],
        finish_on=[None, None, "2024-12-01", None, None],
        start_year=[2023, 2024, 2022, 2030, 2025],
        end_year=[2025, 2025, 2024, 2040, 2026],
    )
    _res, fnd = check(projects, catalog=catalog)
    assert statuses(fnd, "schedule") == {"P0": "pass", "P1": "review", "P2": "review",
                                         "P3": "review", "P4": "review"}
    assert "plan period" in finding(fnd, "P3", "schedule")["message"]
    assert finding(fnd, "P1", "schedule")["measure"] == 2.0


def test_map_first_other_branches(catalog):
    """Unmapped but permitted, mapped after the as-of date, lead time without dates."""
    projects = register(
        *[box(100 * i, 0, 100 * i + 50, 50) for i in range(4)],
        status=["planned", "planned", "planned", "completed"],
        mapped_on=[None, "2024-08-01", "2024-01-01", "2022-03-05"],
        permit_on=["2023-04-02", None, None, "2022-02-01"],
        start_on=["2023-05-01", None, None, None],
    )
    _res, fnd = check(projects, catalog=catalog)
    assert statuses(fnd, "map_first") == {"P0": "fail", "P1": "review", "P2": "pass",
                                          "P3": "fail"}
    assert "2023-04-02" in finding(fnd, "P0", "map_first")["message"]
    assert np.isnan(finding(fnd, "P0", "map_first")["measure"])
    assert "2024-06-30" in finding(fnd, "P1", "map_first")["message"]
    assert np.isnan(finding(fnd, "P2", "map_first")["measure"])
    late = finding(fnd, "P3", "map_first")
    assert late["measure"] == -32.0 and "the planning permit (2022-02-01)" in late["message"]


def test_disabled_rule_is_not_applicable(catalog):
    rules = merge_rules({"farmland": {"enabled": False}})
    farm = layer([box(0, 0, 100, 100)])
    res, fnd = check(register(box(0, 0, 50, 50)), farmland=farm, rules=rules, catalog=catalog)
    assert finding(fnd, "P0", "farmland")["status"] == "not_applicable"
    assert res.loc[0, "verdict"] == "pass"


# ------------------------------------------------------------------ coverage, scale


def test_facility_coverage(catalog):
    towns = layer([box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000)], code=["T1", "T2"])
    projects = register(box(0, 0, 50, 50), box(100, 0, 150, 50), box(200, 0, 250, 50),
                        facility=["school", "parking", "road"], township_code=["T1", "T1", None])
    res, _fnd = check(projects, townships=towns, catalog=catalog)
    cov = facility_coverage(res, towns, catalog=catalog)
    assert cov["township_code"].tolist() == ["T1", "T2"]
    t1 = cov.iloc[0]
    assert t1["n_projects"] == 3  # the undeclared road is counted where it lies
    assert t1["eight_present"] == "road;school"
    assert "school" not in t1["eight_missing"].split(";")
    assert len(t1["eight_missing"].split(";")) == 6
    assert (t1["n_group_8"], t1["n_group_X"]) == (2, 1)
    assert cov.iloc[1]["n_projects"] == 0 and cov.iloc[1]["eight_present"] == ""


def test_facility_coverage_counts_only_projects_that_do_not_fail(catalog):
    towns = layer([box(0, 0, 1000, 1000)], code=["T1"])
    farm = layer([box(300, 0, 400, 100)])
    projects = register(box(0, 0, 50, 50), box(300, 0, 350, 50), box(360, 0, 390, 30),
                        shapely.Polygon(), box(100, 0, 150, 50), box(320, 60, 350, 90),
                        facility=["road", "school", "market", "health_center", "market",
                                  "park"])
    res, _fnd = check(projects, townships=towns, farmland=farm, catalog=catalog)
    verdict = dict(zip(res["project_id"], res["verdict"], strict=True))
    assert verdict["P1"] == verdict["P2"] == verdict["P5"] == "fail"  # on the farmland
    assert verdict["P3"] == "error" and verdict["P4"] != "fail"  # no site; a market that is fine
    cov = facility_coverage(res, towns, catalog=catalog).iloc[0]
    assert cov["eight_present"] == "road;market"  # the market through P4, not P2
    assert cov["eight_noncompliant"] == "school;park"
    assert cov["eight_unchecked"] == "health_center"
    missing = set(cov["eight_missing"].split(";"))
    assert {"school", "park", "health_center"} <= missing and "market" not in missing
    assert len(missing) == 6


def test_facility_coverage_columns_and_verdict_required(catalog):
    towns = layer([box(0, 0, 1000, 1000)], code=["T1"])
    res, _fnd = check(register(box(0, 0, 50, 50)), townships=towns, catalog=catalog)
    cov = facility_coverage(res, towns, catalog=catalog)
    assert list(cov.columns) == list(COVERAGE_COLUMNS)
    with pytest.raises(FieldError, match="verdict"):
        facility_coverage(res.drop(columns="verdict"), towns, catalog=catalog)


@pytest.mark.slow
def test_ten_thousand_projects_are_quick(catalog):
    rng = np.random.default_rng(7)
    n = 10_000
    xy = rng.uniform(0, 20_000, size=(n, 2))
    sites = shapely.box(X0 + xy[:, 0], Y0 + xy[:, 1], X0 + xy[:, 0] + 40, Y0 + xy[:, 1] + 30)
    codes = np.array(list(catalog.facilities.index))
    projects = register(*sites, facility=list(rng.choice(codes, n)))
    farm = layer(shapely.box(X0 + xy[:500, 0] - 10, Y0 + xy[:500, 1] - 10,
                             X0 + xy[:500, 0] + 15, Y0 + xy[:500, 1] + 15))
    towns = layer([box(0, 0, 10_000, 20_100), box(10_000, 0, 20_100, 20_100)], code=["T1", "T2"])
    udb = layer([box(0, 0, 8000, 8000)])
    parcels = layer([box(0, 0, 10_000, 10_000)], landuse=["0701"])
    start = time.perf_counter()
    res, fnd = check(projects, farmland=farm, townships=towns, udb=udb, parcels=parcels,
                     catalog=catalog)
    elapsed = time.perf_counter() - start
    assert len(res) == n and len(fnd) == n * len(RULE_IDS)
    assert (res.loc[:499, "farmland_m2"] > 0).all()
    assert elapsed < 60, elapsed


def test_duplicate_feature_ids_refused(catalog):
    projects = register(box(0, 0, 5, 5), box(10, 0, 15, 5))
    projects["feature_id"] = ["projects:0", "projects:0"]
    with pytest.raises(DataLayerError, match="projects:0"):
        check(projects, catalog=catalog)


@pytest.mark.parametrize(
    "module",
    ["spatialplan.rules.rulebook", "spatialplan.rules.siting", "spatialplan.analysis.schedule",
     "spatialplan.rules._geom", "spatialplan.rules._dates", "spatialplan.rules._sites"],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_intersecting_pairs_same_on_either_index_side(monkeypatch):
    """Indexing the sites (large other layer) finds exactly the pairs indexing the layer does."""
    from spatialplan.rules import _geom

    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 5000, 3000), rng.uniform(0, 5000, 3000)
    others = shapely.box(x, y, x + 60, y + 60)
    sx, sy = rng.uniform(0, 5000, 40), rng.uniform(0, 5000, 40)
    sites = shapely.box(sx, sy, sx + 150, sy + 90)
    sites[3] = shapely.box(-500, -500, -400, -400)  # meets nothing
    touching = shapely.box(x[0] + 60, y[0], x[0] + 100, y[0] + 60)  # shares an edge only
    sites = np.append(sites, touching)
    via_sites = _geom._intersecting_pairs(sites, others)
    monkeypatch.setattr(_geom, "_INDEX_SITES_RATIO", 10**9)
    via_others = _geom._intersecting_pairs(sites, others)
    assert len(via_sites[0]) > 40
    for a, b in zip(via_sites, via_others, strict=True):
        np.testing.assert_array_equal(a, b)
    assert 3 not in via_sites[0]
    assert 0 in via_sites[1][via_sites[0] == len(sites) - 1]  # touching pairs are candidates


def test_missing_township_code_is_undeclared_not_nan(catalog):
    """A register whose township column is NaN (float) says "not declared", never "nan"."""
    towns = layer([box(0, 0, 1000, 1000)], code=["T1"])
    projects = register(box(10, 10, 60, 60), box(10, 100, 60, 160), township_code=[None, "T1"])
    projects["township_code"] = pd.Series([np.nan, "T1"], dtype=object)
    _res, fnd = check(projects, townships=towns, catalog=catalog)
    assert statuses(fnd, "township") == {"P0": "review", "P1": "pass"}
    text = " ".join(fnd.loc[fnd["rule"] == "township", "message"].astype(str))
    assert "未填写所属乡镇" in text and "nan" not in text


# ------------------------------------------------------------------ shared overlays, threads


def _every_layer_case():
    """A register with crossings, self-overlapping layers, overlapping sites, and every layer."""
    layers = {
        "townships": layer([box(0, 0, 300, 500), box(300, 0, 700, 500)], code=["T1", "T2"],
                           name=["甲镇", "乙镇"]),
        "redline": layer([box(20, 20, 60, 60), box(560, 0, 700, 40)]),
        "farmland": layer([box(100, 0, 160, 40), box(140, 0, 200, 40), box(400, 0, 410, 10)]),
        "cropland": layer([box(0, 100, 700, 130), box(0, 129.9, 700, 140)]),
        "udb": layer([box(0, 0, 350, 500), box(350, 0, 450, 60)], zone=["Z1", "Z2"]),
        "parcels": layer([box(0, 0, 330, 250), box(330, 0, 700, 250)],
                         landuse=["080403", "0701"]),
    }
    sites = [box(10 + 60 * i, 10, 50 + 60 * i, 120) for i in range(11)]
    sites.append(box(15, 15, 45, 45))  # overlaps P0
    facility = ["school", "road", "sewage", "market", "school", "refuse", "park", "school",
                "elder_care", "power", "health_center", "school"]
    codes = ["T1"] * 5 + ["T2"] * 6 + [None]
    return register(*sites, facility=facility, township_code=codes), layers


def test_threaded_overlays_equal_one_thread(catalog, monkeypatch):
    """The layers overlaid in threads give exactly the one-thread results."""
    from geopandas.testing import assert_geodataframe_equal

    from spatialplan.core import _parallel
    from spatialplan.rules import _sites

    calls = []
    original = _sites.map_items

    def spy(func, items, **kw):
        calls.append((len(items), _parallel.n_threads()))
        return original(func, items, **kw)

    monkeypatch.setattr(_sites, "map_items", spy)
    projects, layers = _every_layer_case()
    with _parallel.limited(1):
        one = check(projects, catalog=catalog, **layers)
    with _parallel.limited(3):
        many = check(projects, catalog=catalog, **layers)
    assert calls == [(7, 1), (7, 3)]  # six layers and the sites with each other
    assert_geodataframe_equal(one[0], many[0])
    pd.testing.assert_frame_equal(one[1], many[1])
    assert {"pass", "review", "fail"} <= set(one[1]["status"])
    assert one[0].loc[0, "project_overlap_m2"] == pytest.approx(900.0)


def test_each_layer_overlaid_once(catalog, monkeypatch):
    """Rules sharing a layer share its overlay (udb: covered area and zones)."""
    from spatialplan.rules import _sites

    counts: dict[str, int] = {}

    def counting(name):
        original = getattr(_sites, name)

        def wrapper(*args, **kw):
            counts[name] = counts.get(name, 0) + 1
            return original(*args, **kw)

        monkeypatch.setattr(_sites, name, wrapper)

    counting("site_overlaps")
    counting("self_overlap_pairs")
    projects, layers = _every_layer_case()
    _res, fnd = check(projects, catalog=catalog, **layers)
    assert counts == {"site_overlaps": 6, "self_overlap_pairs": 1}
    assert "Z1" in finding(fnd, "P0", "udb")["message"]


@pytest.mark.parametrize("what", ["layers", "sites"])
def test_prepared_geometries_same_results(catalog, what):
    """Prepared layers (overlaid in threads) or sites (kept in one thread): same results."""
    from spatialplan.core import _parallel

    projects, layers = _every_layer_case()
    with _parallel.limited(3):
        plain = check(projects, catalog=catalog, **layers)
        frames = layers.values() if what == "layers" else [projects]
        for gdf in frames:
            shapely.prepare(np.asarray(gdf.geometry.array, dtype=object))
        prepared = check(projects, catalog=catalog, **layers)
    pd.testing.assert_frame_equal(plain[1], prepared[1])
    assert plain[0]["verdict"].tolist() == prepared[0]["verdict"].tolist()


def test_missing_facility_is_named_missing_not_nan(catalog):
    """A register without a facility type says "facility type missing", never "nan"."""
    projects = register(box(0, 0, 50, 50), box(100, 0, 150, 50), facility=[None, "school"])
    res, fnd = check(projects, catalog=catalog)
    message = finding(fnd, "P0", "udb")["message"]
    assert finding(fnd, "P0", "udb")["status"] == "error"
    assert "facility type missing" in message and "nan" not in message
    assert res.loc[0, "verdict"] == "error" and "nan" not in res.loc[0, "reasons"]
    assert finding(fnd, "P1", "udb")["status"] != "error"
