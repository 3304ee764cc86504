"""Setbacks from control-line features and a plan's own layers (``to_layers`` of a pair)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

import spatialplan as sp
from spatialplan.cli import main
from spatialplan.errors import RulebookError
from spatialplan.rules._registry import rule_by_id
from spatialplan.rules.rulebook import merge_rules
from spatialplan.rules.siting import check_projects

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_070_000.0


def _rules(to_layers, min_m=50.0):
    return merge_rules({"setback": {"pairs": [
        {"from": ["sewage"], "to_layers": to_layers, "min_m": min_m,
         "source": "某县 2026 第1号"}]}})


def _sites(*gaps):
    """Sewage sites 20 m wide, each ``gap`` metres west of x = 0 (a red line east of it)."""
    n = len(gaps)
    return gpd.GeoDataFrame(
        {"project_id": [f"P{i}" for i in range(n)], "name": ["污水处理站"] * n,
         "facility": ["sewage"] * n, "township_code": ["T1"] * n},
        geometry=[shapely.box(X0 - g - 20, Y0 + 100 * i, X0 - g, Y0 + 100 * i + 20)
                  for i, g in enumerate(gaps)], crs=CRS)


RED = gpd.GeoDataFrame(geometry=[shapely.box(X0, Y0 - 100, X0 + 500, Y0 + 1000)], crs=CRS)


def _setback(findings):
    return findings[findings["rule"] == "setback"].set_index("project_id")


def test_sewage_near_the_red_line_fails_naming_it():
    res, fnd = check_projects(_sites(40, 60, -10), redline=RED, rules=_rules(["redline"]),
                              as_of="2026-06-30")
    f = _setback(fnd)
    assert f["status"].to_dict() == {"P0": "fail", "P1": "pass", "P2": "fail"}
    zh = f.loc["P0", "message"].split(" / ")[0]
    assert "距生态保护红线 40.0 m（应 ≥ 50 m）" in zh
    assert "the ecological red line" in f.loc["P0", "message"]
    assert f.loc["P0", "measure"] == pytest.approx(40.0)
    assert f.loc["P2", "measure"] == 0.0  # overlapping the line: 0 m (the redline rule judges it)
    assert res.set_index("project_id").loc["P0", "setback_min_m"] == pytest.approx(40.0)


def test_missing_control_line_is_not_checked_and_said_so():
    _, fnd = check_projects(_sites(40), rules=_rules(["redline"]), as_of="2026-06-30")
    f = _setback(fnd).loc["P0"]
    assert f["status"] == "not_applicable" and "未提供生态保护红线图层" in f["message"]


def test_plans_own_layer_role_as_target():
    river = gpd.GeoDataFrame(geometry=[shapely.LineString([(X0 - 5, Y0), (X0 - 5, Y0 + 50)])],
                             crs=CRS)
    _, fnd = check_projects(_sites(40), rules=_rules(["rivers"], 100.0),
                            layers={"rivers": river}, as_of="2026-06-30")
    f = _setback(fnd).loc["P0"]
    assert f["status"] == "fail" and "距rivers 图层 35.0 m" in f["message"]


def test_unknown_layer_role_is_a_rulebook_error():
    with pytest.raises(RulebookError, match="'rivers', which the plan does not have"):
        check_projects(_sites(40), redline=RED, rules=_rules(["rivers"]), as_of="2026-06-30")
    with pytest.raises(RulebookError, match="not a setback target"):
        _rules(["townships"])
    with pytest.raises(RulebookError, match="not a layer role"):
        _rules(["Red Line"])
    with pytest.raises(RulebookError, match="has no target"):
        merge_rules({"setback": {"pairs": [{"from": "sewage", "to_layers": [], "min_m": 5}]}})
    with pytest.raises(RulebookError, match=r"pairs\[0\]\.to' is missing"):
        merge_rules({"setback": {"pairs": [{"from": "sewage", "min_m": 5}]}})


def test_search_radius_covers_layer_pairs():
    assert rule_by_id("setback").radius(_rules(["redline"], 250.0)) == 250.0


# ------------------------------------------------------------------ through a plan, both engines


def _plan(folder: Path, to_layers: str) -> Path:
    """Townships A and B (2 km each); a sewage site in B's west half (owned by A's partition:
    the k-d cut lies at B's centre) 40 m west of a red-line polygon east of that cut."""
    folder.mkdir(parents=True, exist_ok=True)
    towns = gpd.GeoDataFrame(
        {"XZQDM": ["520123001", "520123002"], "XZQMC": ["甲镇", "乙镇"]},
        geometry=[shapely.box(X0, Y0, X0 + 2000, Y0 + 2000),
                  shapely.box(X0 + 2000, Y0, X0 + 4000, Y0 + 2000)], crs=CRS)
    pyogrio.write_dataframe(towns, folder / "xzq.gpkg")
    cut = X0 + 3000
    projects = gpd.GeoDataFrame(
        {"XMDM": ["P40", "P_FAR"], "XMMC": ["污水处理站", "污水处理站"],
         "XZQDM": ["520123002", "520123001"], "XMLB": ["sewage", "sewage"]},
        geometry=[shapely.box(cut - 100, Y0 + 500, cut, Y0 + 600),
                  shapely.box(X0 + 500, Y0 + 500, X0 + 600, Y0 + 600)], crs=CRS)
    pyogrio.write_dataframe(projects, folder / "projects.gpkg")
    red = gpd.GeoDataFrame(geometry=[shapely.box(cut + 40, Y0 + 300, cut + 400, Y0 + 900)],
                           crs=CRS)
    pyogrio.write_dataframe(red, folder / "redline.gpkg")
    (folder / "rules.toml").write_text(
        "[setback]\n[[setback.pairs]]\nfrom = [\"sewage\"]\n"
        f"to_layers = {to_layers}\nmin_m = 50.0\n", encoding="utf-8")
    (folder / "plan.toml").write_text("\n".join([
        '[plan]', 'crs = "EPSG:4545"', 'as_of = "2026-06-30"', '',
        '[layers.townships]', 'path = "xzq.gpkg"', '',
        '[layers.redline]', 'path = "redline.gpkg"', '',
        '[layers.projects]', 'path = "projects.gpkg"', '',
        '[rules]', 'path = "rules.toml"', '']), encoding="utf-8")
    return folder / "plan.toml"


def test_red_line_setback_same_in_both_engines(tmp_path):
    distributed = pytest.importorskip("distributed")
    from conftest import assert_same_results

    from spatialplan.pipeline.engine import run_check_dask

    plan = sp.read_plan(_plan(tmp_path, '["redline"]'))
    local = sp.run_check(plan)
    assert _setback(local.findings)["status"].to_dict() == {"P40": "fail", "P_FAR": "pass"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        dask = run_check_dask(plan, scheduler=client, partition_size=1)
    assert_same_results(local, dask)


def test_cli_refuses_a_layer_the_plan_lacks(tmp_path, capsys):
    plan = _plan(tmp_path, '["rivers"]')
    assert main(["check", str(plan), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "rivers" in err and "Traceback" not in err
