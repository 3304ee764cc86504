"""County rules as plug-ins: ``@sp.siting_rule`` modules named by a rulebook (issue 16)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import textwrap
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

import spatialplan as sp
from spatialplan.cli import main
from spatialplan.errors import PlanError, RulebookError
from spatialplan.pipeline.write import build_manifest
from spatialplan.rules.rulebook import RULE_IDS, read_rules

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_070_000.0  # ≈ 107.5°E 27.7°N in CGCS2000 GK zone 36
SOURCE = "某县自然资源局 2026 第3号"

#: the plug-in of the issue, reporting the nearest river within its search radius
RIVER_RULE = f'''
import numpy as np
import pandas as pd
import spatialplan as sp


@sp.siting_rule("river_setback", layers=["rivers"], source="{SOURCE}",
                search_radius_m="min_m")
def river_setback(sites, layers, *, min_m=50.0):
    rivers = layers["rivers"]
    if len(rivers):
        dist = sites.geometry.distance(rivers.geometry.union_all()).to_numpy()
    else:
        dist = np.full(len(sites), np.inf)
    near = dist < min_m
    return pd.DataFrame({{
        "project_id": sites["project_id"].to_numpy(),
        "status": np.where(near, "fail", "pass"),
        "measure": np.where(near, dist, np.nan),
        "unit": "m",
        "message": [f"距河道 {{d:.0f}} m / {{d:.0f}} m from a river" if n
                    else f"no river within {{min_m:g}} m" for d, n in zip(dist, near)],
    }})
'''


def _write_plan(folder: Path, *, rules: str = "", plugin: str = RIVER_RULE,
                river_x: float = 230.0, plan_extra: str = "",
                with_rivers: bool = True, point_site: bool = False) -> Path:
    """One 2 km township, three sites 30, 60 and 100 m west of a river (a line)."""
    folder.mkdir(parents=True, exist_ok=True)
    towns = gpd.GeoDataFrame({"XZQDM": ["520123001"], "XZQMC": ["河镇"]},
                             geometry=[shapely.box(X0, Y0, X0 + 2000, Y0 + 2000)], crs=CRS)
    pyogrio.write_dataframe(towns, folder / "xzq.gpkg")
    right = X0 + river_x
    sites = [shapely.box(right - 30 - 100, Y0 + 100, right - 30, Y0 + 200),
             shapely.box(right - 60 - 100, Y0 + 400, right - 60, Y0 + 500),
             shapely.box(right - 100 - 100, Y0 + 700, right - 100, Y0 + 800)]
    projects = gpd.GeoDataFrame(
        {"XMDM": ["P30", "P60", "P100"], "XMMC": ["公园", "停车场", "文化站"],
         "XZQDM": ["520123001"] * 3, "XMLB": ["park", "parking", "culture"]},
        geometry=sites, crs=CRS)
    if point_site:  # rejected at read (no point_radius_m): verdict error for every rule
        projects = pd.concat([projects, gpd.GeoDataFrame(
            {"XMDM": ["PT"], "XMMC": ["公厕"], "XZQDM": ["520123001"], "XMLB": ["toilet"]},
            geometry=[shapely.Point(X0 + 1500, Y0 + 1500)], crs=CRS)], ignore_index=True)
    pyogrio.write_dataframe(projects, folder / "projects.gpkg")
    rivers = gpd.GeoDataFrame({"NAME": ["清水河"]}, crs=CRS, geometry=[
        shapely.LineString([(right, Y0), (right, Y0 + 2000)])])
    pyogrio.write_dataframe(rivers, folder / "rivers.gpkg")
    (folder / "county_rules.py").write_text(plugin, encoding="utf-8")
    (folder / "rules.toml").write_text(
        '[plugins]\nmodules = ["county_rules.py"]\n\n' + rules, encoding="utf-8")
    text = ['[plan]', 'name = "plug-in test"', 'crs = "EPSG:4545"', 'as_of = "2026-06-30"', '',
            '[layers.townships]', 'path = "xzq.gpkg"', '',
            '[layers.projects]', 'path = "projects.gpkg"', '']
    if with_rivers:
        text += ['[layers.rivers]', 'path = "rivers.gpkg"', '']
    text += ['[rules]', 'path = "rules.toml"', '', plan_extra]
    (folder / "plan.toml").write_text("\n".join(text), encoding="utf-8")
    return folder / "plan.toml"


def _by(result, rule: str = "river_setback"):
    f = result.findings
    return f[f["rule"] == rule].set_index("project_id")


def test_river_setback_plugin_runs_like_a_builtin_rule(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path))
    assert plan.layers["rivers"].data.geom_type.tolist() == ["LineString"]
    result = sp.run_check(plan)
    river = _by(result)
    assert river["status"].to_dict() == {"P30": "fail", "P60": "pass", "P100": "pass"}
    assert river.loc["P30", "measure"] == pytest.approx(30.0)
    assert (river["source"] == SOURCE).all()
    # after every built-in rule, once per project
    rules = result.findings[result.findings["project_id"] == "P30"]["rule"].tolist()
    assert rules == [*RULE_IDS, "river_setback"]
    # the finding joins the verdict and the reasons
    projects = result.projects.set_index("project_id")
    assert projects.loc["P30", "verdict"] == "fail"
    assert "30 m from a river" in projects.loc["P30", "reasons"]


def test_rejected_projects_get_the_plugin_rule_with_its_source(tmp_path):
    result = sp.run_check(sp.read_plan(_write_plan(tmp_path, point_site=True)))
    river = _by(result)
    assert river.loc["PT", "status"] == "error" and river.loc["PT", "source"] == SOURCE
    assert len(result.findings) == 4 * (len(RULE_IDS) + 1)


def test_rulebook_parameters_reach_the_plugin(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path, rules="[river_setback]\nmin_m = 80\n"))
    assert plan.rules["river_setback"]["min_m"] == 80.0
    river = _by(sp.run_check(plan))
    assert river["status"].to_dict() == {"P30": "fail", "P60": "fail", "P100": "pass"}


def test_disabled_plugin_is_not_applicable(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path, rules="[river_setback]\nenabled = false\n"))
    assert set(_by(sp.run_check(plan))["status"]) == {"not_applicable"}


@pytest.mark.parametrize(("body", "reason"), [
    ("raise ValueError('no gauge data\\nfor 2026')", r"ValueError: no gauge data\nfor 2026"),
    ("return 42", "a int, not a DataFrame"),
    ("return pd.DataFrame({'project_id': sites['project_id']})",
     "no column status, measure, unit, message"),
    ("return pd.DataFrame({'project_id': ['ZZ'], 'status': ['pass'], 'measure': [1.0],"
     " 'unit': ['m'], 'message': ['x']})", "unknown project ids: ZZ"),
])
def test_a_broken_plugin_gives_error_findings_naming_it(tmp_path, body, reason):
    plugin = textwrap.dedent(f'''
        import pandas as pd
        import spatialplan as sp

        @sp.siting_rule("bad_rule", layers=["rivers"], source="test")
        def bad_rule(sites, layers):
            {body}
        ''')
    plan = sp.read_plan(_write_plan(tmp_path, plugin=plugin))
    result = sp.run_check(plan)  # never a crash
    bad = _by(result, "bad_rule")
    assert set(bad["status"]) == {"error"}
    assert all("bad_rule (county_rules.py)" in m and reason in m for m in bad["message"])
    assert set(result.projects["verdict"]) == {"error"}
    # the built-in rules ran as usual
    assert (_by(result, "township")["status"] == "pass").all()


def test_wrong_rows_are_errors_for_the_sites_they_concern(tmp_path):
    plugin = textwrap.dedent('''
        import pandas as pd
        import spatialplan as sp

        @sp.siting_rule("rowwise", layers=["rivers"], source="test")
        def rowwise(sites, layers):
            return pd.DataFrame({"project_id": ["P30", "P60", "P60"],
                                 "status": ["maybe", "pass", "pass"],
                                 "measure": [1.0, 2.0, 3.0], "unit": "m",
                                 "message": ["a", "b", "c"]})
        ''')
    result = sp.run_check(sp.read_plan(_write_plan(tmp_path, plugin=plugin)))
    rows = _by(result, "rowwise")
    assert rows["status"].to_dict() == {"P30": "error", "P60": "error", "P100": "error"}
    assert "status 'maybe'" in rows.loc["P30", "message"]
    assert "returned 2 findings" in rows.loc["P60", "message"]
    assert "returned no finding" in rows.loc["P100", "message"]


def test_a_missing_layer_is_an_error_finding(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path, with_rivers=False))
    river = _by(sp.run_check(plan))
    assert set(river["status"]) == {"error"}
    assert all("needs the layer rivers" in m for m in river["message"])


@pytest.fixture()
def cli_logging():
    """Put back the logging set-up the CLI replaces (its handler writes to capsys' stderr)."""
    root, ours = logging.getLogger(), logging.getLogger("spatialplan")
    handlers, level, our_level = root.handlers[:], root.level, ours.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    ours.setLevel(our_level)


def test_plugin_that_fails_to_import_is_exit_2(tmp_path, capsys, cli_logging):
    plan = _write_plan(tmp_path, plugin="import spatialplan\nraise RuntimeError('broken county')\n")
    with pytest.raises(RulebookError, match=r"county_rules.py.*RuntimeError: broken county"):
        sp.read_plan(plan)
    assert main(["check", str(plan), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "county_rules.py" in err and "broken county" in err and "Traceback" not in err


def test_plugin_by_module_name(tmp_path, monkeypatch):
    """An importable module name works like a file; the manifest records its file."""
    plan = _write_plan(tmp_path / "plan")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "qianxi_rules.py").write_text(RIVER_RULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    (tmp_path / "plan" / "rules.toml").write_text('[plugins]\nmodules = ["qianxi_rules"]\n',
                                                  encoding="utf-8")
    loaded = sp.read_plan(plan)
    assert loaded.rules["plugins"]["files"][0]["path"] == str(tmp_path / "lib" / "qianxi_rules.py")
    assert _by(sp.run_check(loaded))["status"]["P30"] == "fail"
    (tmp_path / "plan" / "rules.toml").write_text('[plugins]\nmodules = ["no_such_rules"]\n',
                                                  encoding="utf-8")
    with pytest.raises(RulebookError, match="ModuleNotFoundError"):
        sp.read_plan(plan)


def test_missing_plugin_file_is_a_rulebook_error(tmp_path):
    plan = _write_plan(tmp_path)
    (tmp_path / "county_rules.py").unlink()
    with pytest.raises(RulebookError, match=r"plug-in file 'county_rules.py' not found"):
        sp.read_plan(plan)


def test_rule_id_clashes_are_refused(tmp_path):
    builtin = RIVER_RULE.replace('"river_setback", layers', '"setback", layers')
    with pytest.raises(RulebookError, match="'setback' is taken by a built-in rule"):
        sp.read_plan(_write_plan(tmp_path / "a", plugin=builtin))
    folder = tmp_path / "b"
    plan = _write_plan(folder)
    (folder / "more_rules.py").write_text(RIVER_RULE, encoding="utf-8")
    (folder / "rules.toml").write_text(
        '[plugins]\nmodules = ["county_rules.py", "more_rules.py"]\n', encoding="utf-8")
    with pytest.raises(RulebookError, match=r"'river_setback' of 'more_rules.py' is also "
                                           r"defined by 'county_rules.py'"):
        sp.read_plan(plan)


@pytest.mark.parametrize(("rules", "named"), [
    ("[river_setback]\nmin_mm = 80\n", "unknown rulebook key 'river_setback.min_mm'"),
    ('[river_setback]\nmin_m = "far"\n', "'river_setback.min_m' must be a number"),
    ("[plugins_extra]\nx = 1\n", "unknown rulebook key 'plugins_extra'"),
])
def test_plugin_tables_are_validated(tmp_path, rules, named):
    _write_plan(tmp_path, rules=rules)
    with pytest.raises(RulebookError, match=named):
        read_rules(tmp_path / "rules.toml")


def test_plugin_table_without_plugin_is_unknown(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[river_setback]\nmin_m = 80\n", encoding="utf-8")
    with pytest.raises(RulebookError, match="unknown rulebook key 'river_setback'"):
        read_rules(path)


def test_plan_role_no_plugin_declares_is_refused(tmp_path):
    plan = _write_plan(tmp_path, plan_extra='[layers.lakes]\npath = "rivers.gpkg"\n')
    with pytest.raises(PlanError, match=r"unknown layer role 'layers.lakes'") as exc:
        sp.read_plan(plan)
    assert "rivers" in exc.value.hint  # the plug-ins' roles are listed


def test_manifest_and_log_name_the_plugin(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="spatialplan"):
        plan = sp.read_plan(_write_plan(tmp_path))
    digest = hashlib.sha256((tmp_path / "county_rules.py").read_bytes()).hexdigest()
    assert f"loaded plug-in rules: river_setback (county_rules.py sha256 {digest[:12]}" in (
        caplog.text)
    manifest = build_manifest(plan, sp.run_check(plan), {})
    assert manifest["plugins"] == [{"module": "county_rules.py",
                                    "path": str(tmp_path / "county_rules.py"),
                                    "sha256": digest, "rules": ["river_setback"]}]
    assert {"path": str(tmp_path / "county_rules.py"), "sha256": digest} in manifest["inputs"]


def test_report_lists_the_plugin_rule_and_its_source(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path))
    written = sp.write_check(plan, sp.run_check(plan), tmp_path / "out", outputs=("report",))
    html = written["report"].read_text(encoding="utf-8")
    sources = html[html.index("规则依据 Rule sources"):]
    # after the built-in rules (registry order), marked as a plug-in, with its source
    assert sources.index("所属乡镇 township") < sources.index("river_setback（插件 plug-in）")
    assert SOURCE in sources


def test_a_plugin_changed_after_reading_is_refused(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path))
    (tmp_path / "county_rules.py").write_text(RIVER_RULE + "\n# edited\n", encoding="utf-8")
    with pytest.raises(RulebookError, match="changed since the rulebook was read"):
        sp.run_check(plan)


# --------------------------------------------------------------------------- as_of


def test_run_check_as_of_reaches_every_writer(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path))
    when = dt.date(2031, 2, 3)
    result = sp.run_check(plan, as_of=when)
    assert result.as_of == when and plan.as_of == dt.date(2026, 6, 30)
    written = sp.write_check(plan, result, tmp_path / "out", outputs=("report", "layout"))
    import json

    manifest = json.loads(written["manifest"].read_text(encoding="utf-8"))
    assert manifest["plan"]["as_of"] == "2031-02-03"
    html = written["report"].read_text(encoding="utf-8")
    assert "2031-02-03" in html and "2026-06-30" not in html
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    figs = sp.check_layouts(plan, result)
    try:
        texts = " ".join(t.get_text() for fig in figs for t in fig.findobj(Text))
    finally:
        for fig in figs:
            plt.close(fig)
    assert "2031-02-03" in texts and "2026-06-30" not in texts


def test_run_stats_result_carries_the_plan_date(tmp_path):
    plan = sp.read_plan(_write_plan(tmp_path))
    assert sp.run_stats(plan).as_of == plan.as_of


# --------------------------------------------------------------------------- dask engine


def _two_township_plan(folder: Path, plugin: str = RIVER_RULE) -> Path:
    """Townships A (west) and B (east), 2 km each; a site in B's west half (owned by A's
    partition: the k-d cut lies at B's centre) 30 m west of a river east of that cut."""
    folder.mkdir(parents=True, exist_ok=True)
    towns = gpd.GeoDataFrame(
        {"XZQDM": ["520123001", "520123002"], "XZQMC": ["甲镇", "乙镇"]},
        geometry=[shapely.box(X0, Y0, X0 + 2000, Y0 + 2000),
                  shapely.box(X0 + 2000, Y0, X0 + 4000, Y0 + 2000)], crs=CRS)
    pyogrio.write_dataframe(towns, folder / "xzq.gpkg")
    cut = X0 + 3000
    projects = gpd.GeoDataFrame(
        {"XMDM": ["P30", "P_FAR"], "XMMC": ["公园", "文化站"],
         "XZQDM": ["520123002", "520123001"], "XMLB": ["park", "culture"]},
        geometry=[shapely.box(cut - 100, Y0 + 500, cut, Y0 + 600),
                  shapely.box(X0 + 500, Y0 + 500, X0 + 600, Y0 + 600)], crs=CRS)
    pyogrio.write_dataframe(projects, folder / "projects.gpkg")
    rivers = gpd.GeoDataFrame({"NAME": ["清水河"]}, crs=CRS, geometry=[
        shapely.LineString([(cut + 30, Y0 + 300), (cut + 30, Y0 + 900)])])
    pyogrio.write_dataframe(rivers, folder / "rivers.gpkg")
    (folder / "county_rules.py").write_text(plugin, encoding="utf-8")
    # no built-in setbacks: the plug-in's radius alone must widen the partitions
    (folder / "rules.toml").write_text('[plugins]\nmodules = ["county_rules.py"]\n\n'
                                       '[setback]\npairs = []\n', encoding="utf-8")
    (folder / "plan.toml").write_text("\n".join([
        '[plan]', 'crs = "EPSG:4545"', 'as_of = "2026-06-30"', '',
        '[layers.townships]', 'path = "xzq.gpkg"', '',
        '[layers.projects]', 'path = "projects.gpkg"', '',
        '[layers.rivers]', 'path = "rivers.gpkg"', '',
        '[rules]', 'path = "rules.toml"', '']), encoding="utf-8")
    return folder / "plan.toml"


def test_dask_engine_runs_plugins_with_their_search_radius(tmp_path):
    distributed = pytest.importorskip("distributed")
    from conftest import assert_same_results

    from spatialplan.pipeline.engine import _search_radius, run_check_dask

    plan = sp.read_plan(_two_township_plan(tmp_path))
    assert _search_radius(plan.rules) == pytest.approx(51.0)  # min_m, plus the 1 m margin
    local = sp.run_check(plan, as_of="2027-01-01")
    assert _by(local)["status"].to_dict() == {"P30": "fail", "P_FAR": "pass"}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        dask = run_check_dask(plan, scheduler=client, partition_size=1, as_of="2027-01-01")
    assert_same_results(local, dask)
    assert dask.as_of == local.as_of == dt.date(2027, 1, 1)


# --------------------------------------------------------------------------- DESIGN.md example


def _design_example() -> str:
    """The plug-in of DESIGN.md's "A county rule in ten lines", as written there."""
    text = (Path(__file__).resolve().parents[2] / "DESIGN.md").read_text(encoding="utf-8")
    after = text[text.index("**A county rule in ten lines**"):]
    return after[after.index("```python\n") + 10:after.index("\n```", after.index("```python"))]


def test_the_design_plugin_example_runs_as_documented(tmp_path):
    code = _design_example()
    assert "@sp.siting_rule(" in code and len(code.strip().splitlines()) <= 12
    plan_path = _two_township_plan(tmp_path, plugin=code)
    rules = tmp_path / "rules.toml"
    rules.write_text(rules.read_text(encoding="utf-8") + "\n[river_setback]\nmin_m = 80\n",
                     encoding="utf-8")
    result = sp.run_check(sp.read_plan(plan_path))
    found = _by(result)
    assert found.loc["P30", "status"] == "fail"  # 30 m from the river, the rulebook asks 80
    assert found.loc["P30", "measure"] == pytest.approx(30.0)
    assert found.loc["P_FAR", "status"] == "pass"
    assert set(found["source"]) == {"某县自然资源局 2026 第3号"}
