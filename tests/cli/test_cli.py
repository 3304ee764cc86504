"""The CLI end to end: demo outputs, exit codes, help, errors without tracebacks."""

from __future__ import annotations

import json

import pyogrio
import pytest

from spatialplan.cli import COMMANDS, main
from spatialplan.core._resources import demo_dir

DEMO_PLAN = str(demo_dir() / "plan.toml")

EXPECTED_OUTPUTS = {
    "results.gpkg", "report.html", "map.html", "layout.pdf", "layout.png", "schedule.xlsx",
    "schedule.csv", "manifest.json", "township_stats.csv", "township_stats.xlsx",
    "line_conflicts.csv", "line_conflicts.xlsx", "terrain_stats.csv", "county_summary.csv",
    "county_summary.xlsx", "township_conflicts.csv", "township_conflicts.xlsx",
    "village_reach.csv", "village_reach.xlsx", "village_seat.csv", "village_seat.xlsx",
}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), "-q"]) == 0
    return out


def test_demo_writes_every_deliverable(demo_out):
    assert {p.name for p in demo_out.iterdir()} == EXPECTED_OUTPUTS
    layers = set(pyogrio.list_layers(demo_out / "results.gpkg")[:, 0])
    assert {"projects", "findings", "township_stats", "line_conflicts"} <= layers
    manifest = json.loads((demo_out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["projects_in"] == manifest["counts"]["projects_out"] == len(
        pyogrio.read_dataframe(demo_out / "results.gpkg", layer="projects"))
    assert (demo_out / "map.html").stat().st_size < 5_000_000


def test_demo_shows_the_village_reach(demo_out):
    reach = pyogrio.read_dataframe(demo_out / "results.gpkg", layer="village_reach")
    limits = reach.groupby("facility")["limit_m"].first()
    assert reach["village_code"].nunique() == 12 and len(reach) == 12 * len(limits)
    # 岩脚村: its branch road stops 60 m short of the valley road, so it is never linked
    gap = reach.loc[reach["village_code"] == "520399201003"]
    assert not gap["within_limit"].any() and gap["network_m"].isna().all()
    served = reach.groupby("facility")["network_m"].apply(lambda d: d.notna().any())
    assert served.sum() >= 2  # types with a serving project somewhere; the others say so
    reasons = gap.set_index("facility")["reason"]
    assert reasons[served].str.endswith("no road connection to any serving project").all()
    assert reasons[~served].str.endswith("no serving project of this type").all()
    joined = reach.loc[reach["village_code"] != "520399201003"]
    ok = joined["network_m"].notna()
    assert ok.any() and (joined.loc[ok, "network_m"] >= joined.loc[ok, "straight_m"]).all()
    assert (joined["within_limit"] == (joined["network_m"] <= joined["limit_m"])).all()
    seat = pyogrio.read_dataframe(demo_out / "results.gpkg", layer="village_seat")
    assert seat.loc[~seat["connected"].astype(bool), "village_code"].tolist() == ["520399201003"]
    stats = pyogrio.read_dataframe(demo_out / "results.gpkg", layer="township_stats")
    assert {f"reach_share_{f}" for f in limits.index} <= set(stats.columns)
    report = (demo_out / "report.html").read_text(encoding="utf-8")
    assert "Village reach" in report and "岩脚村（虚构）" in report


def test_demo_summary_on_stdout(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "o"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "verdicts: pass" in out and "EPSG:4545" in out and "min_overlap_m2" in out


@pytest.mark.parametrize(("fail_on", "code"), [(None, 0), ("fail", 1), ("review", 1)])
def test_check_fail_on(tmp_path, fail_on, code):
    argv = ["check", DEMO_PLAN, "--out", str(tmp_path / "o"), "--no-map", "--no-layout", "-q"]
    if fail_on:
        argv += ["--fail-on", fail_on]
    assert main(argv) == code


def test_stats_writes_tables_with_chinese_headers(tmp_path):
    out = tmp_path / "o"
    assert main(["stats", DEMO_PLAN, "--out", str(out), "-q"]) == 0
    header = (out / "township_stats.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert "乡镇代码" in header and "生态保护红线平面面积(亩)" in header
    assert "生态保护红线椭球面积(亩)" in header and "生态保护红线占乡镇比例(椭球面积)" in header
    assert set(pyogrio.list_layers(out / "results.gpkg")[:, 0]) == {
        "township_stats", "line_conflicts", "outside_townships", "township_conflicts"}


def test_schedule_command(tmp_path):
    out = tmp_path / "o"
    assert main(["schedule", DEMO_PLAN, "--out", str(out), "-q"]) == 0
    assert (out / "schedule.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert (out / "schedule.xlsx").exists()


@pytest.mark.parametrize("command", [c.replace("_", "-") for c in COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: spatialplan" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["check", "stats", "schedule", "map", "layout", "validate"])
def test_missing_plan_is_exit_2_without_traceback(tmp_path, command, capsys):
    argv = [command, str(tmp_path / "nope.toml")]
    if command != "validate":
        argv += ["--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nope.toml" in err and "Traceback" not in err


def test_output_folder_holding_inputs_is_refused(capsys):
    assert main(["check", DEMO_PLAN, "--out", str(demo_dir()), "--no-map", "--no-layout"]) == 2
    assert "contains the input" in capsys.readouterr().err


def test_bad_as_of_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["check", DEMO_PLAN, "--out", str(tmp_path), "--as-of", "26/11/2026"])
    assert exc.value.code == 2
