"""``spatialplan check PLAN PLAN ... --out DIR``: one sub-folder per plan, the county roll-up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from spatialplan.cli import main
from spatialplan.core._resources import demo_dir
from spatialplan.pipeline.many import PlanRun, folder_names, roll_up


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    """A folder of plans: the demo twice (as 520398 and 520399) and a plan that cannot run."""
    root = tmp_path_factory.mktemp("county")
    plans = root / "plans"
    for name in ("520398", "520399"):
        shutil.copytree(demo_dir(), plans / name)
    (plans / "broken.toml").write_text('[plan]\nname = "坏"\n[layers.townships]\n'
                                       'path = "missing.shp"\n', encoding="utf-8")
    (plans / "rules.toml").write_text("[slope]\nlimit_deg = 25.0\n", encoding="utf-8")
    out = root / "out"
    code = main(["check", str(plans), "--out", str(out), "--no-map", "--no-layout", "-q"])
    return plans, out, code


def test_each_plan_in_its_folder_and_a_bad_one_reported(county):
    _, out, code = county
    assert code == 2  # one plan failed
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["520398", "520399"]
    assert (out / "520399" / "results.gpkg").is_file()
    runs = pd.read_csv(out / "runs.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert runs["folder"].tolist() == ["520398", "520399", "broken"]  # rules.toml: no plan
    assert runs["status"].tolist() == ["ok", "ok", "error"]
    assert "missing.shp" in runs["error"].iloc[2]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == {"plans": 3, "failed": 1, "counties": 1, "townships": 8}


def test_the_roll_up_over_all_plans(county):
    _, out, _ = county
    one = pd.read_csv(out / "520399" / "county_summary.csv", encoding="utf-8-sig")
    both = pd.read_csv(out / "county_summary.csv", encoding="utf-8-sig")
    assert len(both) == 1 and both["县级行政区代码"].astype(str).tolist() == ["520399"]
    for column in ("项目数", "符合项目数", "不符合项目数", "总投资(万元)"):
        assert both[column].iloc[0] == 2 * one[column].iloc[0]
    towns = pd.read_csv(out / "county_townships.csv", encoding="utf-8-sig")
    assert len(towns) == 8 and towns["县内排名"].tolist() == sorted(towns["县内排名"])


def test_one_plan_file_keeps_the_folder_as_before(tmp_path):
    out = tmp_path / "out"
    assert main(["check", str(demo_dir() / "plan.toml"), "--out", str(out), "--no-map",
                 "--no-layout", "-q"]) == 0
    assert (out / "results.gpkg").is_file() and not (out / "runs.csv").exists()


def test_an_output_folder_among_the_plans_is_refused(county, capsys):
    plans, _, _ = county
    assert main(["check", str(plans), "--out", str(plans), "-q"]) == 2
    assert "holds the plan" in capsys.readouterr().err


def test_folder_names_are_unique_and_safe():
    assert folder_names([Path("a/plan.toml"), Path("b/a/plan.toml"), Path("../x:y.toml")]) == [
        "a", "a-2", "x_y"]


def test_a_county_over_two_plans_is_ranked_as_one():
    def stats(codes, rates):
        return pd.DataFrame({
            "township_code": codes, "township_name": codes, "county_code": ["520111"] * 2,
            "n_projects": [4, 4], "n_pass": [int(r * 4) for r in rates], "n_review": [0, 0],
            "n_fail": [4 - int(r * 4) for r in rates], "n_error": [0, 0],
            "investment_wan": [1.0, 1.0], "eight_share": [0.5, 0.5], "compliance_rate": rates})

    runs = [PlanRun(plan=Path("a.toml"), folder=Path("a"),
                    township_stats=stats(["520111001", "520111002"], [0.25, 1.0])),
            PlanRun(plan=Path("b.toml"), folder=Path("b"),
                    township_stats=stats(["520111003", "520111004"], [0.5, 0.75])),
            PlanRun(plan=Path("c.toml"), folder=Path("c"), error="bad")]
    counties, towns = roll_up(runs)
    assert towns["township_code"].tolist() == ["520111002", "520111004", "520111003",
                                               "520111001"]
    assert towns["county_rank"].tolist() == [1, 2, 3, 4]
    assert counties["n_projects"].tolist() == [16]
    assert counties["compliance_rate"].iloc[0] == pytest.approx(10 / 16)
