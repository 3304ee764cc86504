"""Two checks of the demo, with hand-made changes in between, compared (spatialplan.compare)."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

import spatialplan as sp
from spatialplan.core._resources import demo_dir
from spatialplan.pipeline.write import write_check


def _check(plan_path: Path, out: Path) -> Path:
    plan = sp.read_plan(plan_path)
    write_check(plan, sp.run_check(plan), out, outputs=["gpkg"])
    return out


def _edit_register(gpkg: Path) -> None:
    """The quarter's edits: investment, dates, status, one site moved, one nudged, -1 +1."""
    p = pyogrio.read_dataframe(gpkg, layer="XS_XMKJFW")
    at = {code: i for i, code in enumerate(p["XMDM"])}
    p.loc[at["XM0101"], "ZTZ"] = 2000.0
    p.loc[at["XM0405"], "JSNF"] = 2026
    p.loc[at["XM0404"], "JSZT"] = "under_construction"
    p.loc[at["XM0308"], "geometry"] = shapely.affinity.translate(p.geometry[at["XM0308"]], 5)
    p.loc[at["XM0309"], "geometry"] = shapely.affinity.translate(p.geometry[at["XM0309"]], 0.005)
    new = p.iloc[[at["XM0410"]]].assign(XMDM="XM0411", XMMC="龙井乡第二垃圾收集站")
    p = gpd.GeoDataFrame(pd.concat([p.drop(index=at["XM0106"]), new], ignore_index=True),
                         crs=p.crs)
    pyogrio.write_dataframe(p, gpkg, layer="XS_XMKJFW")


@pytest.fixture(scope="module")
def two_quarters(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("quarters")
    src = tmp / "demo"
    shutil.copytree(demo_dir(), src)
    q1 = _check(src / "plan.toml", tmp / "2026Q1")
    _edit_register(src / "planning.gpkg")
    q2 = _check(src / "plan.toml", tmp / "2026Q2")
    return q1, q2


def test_the_hand_made_changes_and_their_consequences_exactly(two_quarters):
    result = sp.compare(*two_quarters)
    rows = [tuple(r) for r in result.projects[["project_id", "change", "before", "after"]]
            .to_numpy()]
    short = [(pid, kind, b, a) if kind not in ("reasons", "moved") else (pid, kind)
             for pid, kind, b, a in rows]
    assert short == [
        ("XM0101", "investment", "1850", "2000"),
        # XM0106 removed: the park it overlapped now passes
        ("XM0105", "verdict", "review", "pass"), ("XM0105", "reasons"),
        ("XM0106", "removed", "review", ""),
        # moved 5 m east: 100 m² more cultivated land under it; the 5 mm nudge of XM0309 is none
        ("XM0308", "moved"), ("XM0308", "reasons"),
        # under construction without a permit or start date
        ("XM0404", "verdict", "pass", "review"),
        ("XM0404", "status", "planned", "under_construction"), ("XM0404", "reasons"),
        ("XM0405", "dates", "end_year=2025", "end_year=2026"),
        # the copy overlaps the site it was copied from
        ("XM0410", "reasons"),
        ("XM0411", "added", "", "fail"),
    ]
    moved = result.projects[result.projects["change"] == "moved"].iloc[0]
    assert moved["moved_m"] == pytest.approx(5.0)
    assert "1100.0 m²" in result.projects.loc[
        (result.projects["project_id"] == "XM0308") & (result.projects["change"] == "reasons"),
        "after"].iloc[0]
    towns = [tuple(r) for r in result.townships[["township_code", "indicator", "before",
                                                 "after"]].to_numpy()]
    assert towns == [
        # XM0106 (parking, planned, review, 180 万元) removed; XM0105 review -> pass;
        # XM0101 (completed) 1850 -> 2000 万元
        ("520399101", "n_projects", "11", "10"), ("520399101", "n_group_X", "3", "2"),
        ("520399101", "n_pass", "3", "4"), ("520399101", "n_review", "3", "1"),
        ("520399101", "investment_wan", "15315", "15285"),
        ("520399101", "investment_planned_wan", "6420", "6240"),
        ("520399101", "investment_completed_wan", "5095", "5245"),
        ("520399101", "compliance_rate", "0.2727272727", "0.4"),
        ("520399102", "county_rank", "2", "1"),
        # XM0411 (refuse, planned, fail, 120 万元) added; XM0404 (300 万元) pass -> review,
        # planned -> under construction (XM0408 passes in both: issue 17 item 8, slope on
        # small sites)
        ("520399201", "n_projects", "10", "11"), ("520399201", "n_group_8", "9", "10"),
        ("520399201", "n_pass", "7", "6"), ("520399201", "n_review", "2", "3"),
        ("520399201", "n_fail", "1", "2"), ("520399201", "investment_wan", "8260", "8380"),
        ("520399201", "investment_planned_wan", "5820", "5640"),
        ("520399201", "investment_under_construction_wan", "450", "750"),
        ("520399201", "compliance_rate", "0.7", "0.5454545455"),
        ("520399201", "county_rank", "1", "2")]
    assert result.warnings == ()


def test_a_run_compared_with_itself_has_no_rows(two_quarters):
    result = sp.compare(two_quarters[0], two_quarters[0] / "results.gpkg")
    assert len(result.projects) == 0 and len(result.townships) == 0


def test_written_outputs(two_quarters, tmp_path):
    from spatialplan.pipeline.compare import COMPARE_OUTPUTS, write_compare

    written = write_compare(sp.compare(*two_quarters), tmp_path / "changes")
    assert sorted(p.name for p in written.values()) == sorted([*COMPARE_OUTPUTS,
                                                              "manifest.json"])
    csv = pd.read_csv(tmp_path / "changes" / "changes.csv", dtype=str, encoding="utf-8-sig")
    assert list(csv.columns[:7]) == ["project_id", "name", "township_code", "facility",
                                     "change", "before", "after"]
    assert len(csv) == 12
    html = (tmp_path / "changes" / "changes.html").read_text(encoding="utf-8")
    assert "XM0411" in html and "changes_map.html" in html
    site_map = (tmp_path / "changes" / "changes_map.html").read_text(encoding="utf-8")
    assert "XM0308" in site_map and "dashArray" in site_map
