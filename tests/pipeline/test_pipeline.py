"""The whole job on the demo: every project once, every rule fires, outputs all-or-nothing."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pyogrio
import pytest

import spatialplan as sp
from spatialplan.core._resources import demo_dir
from spatialplan.errors import OutputError
from spatialplan.rules.rulebook import RULE_IDS
from spatialplan.rules.siting import VERDICT_ORDER

VERDICTS = {"pass", "review", "fail", "error"}


def test_every_project_exactly_once(demo_plan, demo_result):
    projects = demo_result.projects
    layer = demo_plan.layers["projects"]
    assert len(projects) == layer.n_in
    assert projects["project_id"].is_unique
    source_ids = set(layer.data["feature_id"]) | set(layer.rejected["feature_id"])
    assert set(projects["feature_id"]) == source_ids
    assert set(projects["verdict"]) <= VERDICTS


def test_verdict_is_worst_finding(demo_result):
    order = {s: i for i, s in enumerate(VERDICT_ORDER)}
    findings = demo_result.findings
    own = findings[findings.get("subject", "project") == "project"]
    counted = own[own["status"] != "not_applicable"]
    worst = counted.groupby("project_id")["status"].agg(lambda s: max(s, key=order.__getitem__))
    verdicts = demo_result.projects.set_index("project_id")["verdict"]
    assert (worst.reindex(verdicts.index) == verdicts).all()


@pytest.mark.parametrize("rule", RULE_IDS)
def test_every_rule_passes_somewhere_and_fires_somewhere(demo_result, rule):
    statuses = set(demo_result.findings.loc[demo_result.findings["rule"] == rule, "status"])
    assert "pass" in statuses
    assert statuses & {"review", "fail"}, f"{rule} never fires on the demo"


def test_planted_cases_match_expected(demo_result):
    expected = pd.read_csv(demo_dir() / "expected.csv", dtype=str)
    findings = demo_result.findings
    for row in expected.itertuples():
        got = findings.loc[(findings["project_id"] == row.project_id)
                           & (findings["rule"] == row.rule), "status"]
        assert row.status in set(got), f"{row.project_id} {row.rule}: {list(got)} ({row.note})"


def test_township_stats_carry_coverage(demo_result):
    stats = demo_result.township_stats
    assert stats["township_code"].is_unique
    for col in ("area_m2", "area_ellipsoidal_m2", "redline_share", "farmland_mu", "udb_ha",
                "n_projects", "eight_present", "eight_missing"):
        assert col in stats.columns
    assert stats["n_projects"].sum() == len(demo_result.projects)


def test_run_stats_has_no_projects(demo_plan):
    stats = sp.run_stats(demo_plan)
    assert stats.projects is None and stats.verdict_counts() == {}
    assert len(stats.township_stats) == len(demo_plan.layers["townships"].data)


def test_write_check_subset_and_manifest(demo_plan, demo_result, tmp_path):
    written = sp.write_check(demo_plan, demo_result, tmp_path / "out",
                             outputs=["gpkg", "schedule"])
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["manifest.json", "results.gpkg", "schedule.csv", "schedule.xlsx"]
    layers = set(pyogrio.list_layers(written["results"])[:, 0])
    assert {"projects", "findings", "township_stats", "line_conflicts"} <= layers
    manifest = json.loads(written["manifest"].read_text(encoding="utf-8"))
    assert manifest["analysis_crs"] == demo_plan.crs.to_string()
    assert manifest["counts"]["projects_in"] == manifest["counts"]["projects_out"]
    assert all(len(item["sha256"]) == 64 for item in manifest["inputs"])
    assert manifest["tolerance"]["min_overlap_m2"] == demo_result.tolerance["min_overlap_m2"]
    # the analysis zone's measured scale distortion on the data (the demo: one zone, tiny)
    assert manifest["crs_distortion"] == demo_plan.crs_distortion.as_dict()
    assert 0 < manifest["crs_distortion"]["areal_pct"] < 0.1


def test_write_check_refuses_input_folder(demo_plan, demo_result):
    with pytest.raises(OutputError, match="contains the input"):
        sp.write_check(demo_plan, demo_result, demo_dir(), outputs=["gpkg"])


def test_failed_run_leaves_nothing(demo_plan, demo_result, tmp_path, monkeypatch):
    from spatialplan.render import schedule

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(schedule, "write_schedule_csv", broken)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match=r"cannot write schedule.csv: the disk is full .No "
                                          r"space.*nothing in .* was changed"):
        sp.write_check(demo_plan, demo_result, out, outputs=["gpkg", "schedule"])
    assert not out.exists()  # the failed run removes the folder it created


def test_write_check_announces_its_files_not_the_staging_folder(demo_plan, demo_result,
                                                                tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level("INFO", logger="spatialplan"):
        written = sp.write_check(demo_plan, demo_result, out, outputs=["gpkg", "report"])
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    announced = [m for m in infos if m.startswith("writing ")]
    assert announced == [f"writing 3 files into {out}: results.gpkg, report.html, "
                         "manifest.json"]
    assert sorted(p.name for p in written.values()) == ["manifest.json", "report.html",
                                                        "results.gpkg"]
    assert not [m for m in infos if "staging" in m]  # the temporary folder is not shown


def test_write_check_names_a_missing_schedule(demo_plan, demo_result, tmp_path):
    # a result built by hand with projects but no 时序表: a clear error (was an AttributeError
    # on None), and nothing is published
    result = dataclasses.replace(demo_result, schedule=None)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="needs its 时序表"):
        sp.write_check(demo_plan, result, out, outputs=["schedule"])
    assert not out.exists()
