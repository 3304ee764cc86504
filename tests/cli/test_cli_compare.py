"""``spatialplan compare BEFORE AFTER --out DIR`` end to end."""

from __future__ import annotations

import json
import shutil

import pyogrio
import pytest

from spatialplan.cli import main
from spatialplan.core._resources import demo_dir

DEMO_PLAN = str(demo_dir() / "plan.toml")
HOSTILE = "<script>alert(1)</script>=HYPERLINK(\"http://x\")"


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "a"
    assert main(["check", DEMO_PLAN, "--out", str(out), "--no-map", "--no-layout", "-q"]) == 0
    return out


@pytest.fixture
def run_b(run_a, tmp_path):
    """A copy of run A whose XM0101 has a hostile name and a failing verdict."""
    out = tmp_path / "b"
    shutil.copytree(run_a, out)
    gpkg = out / "results.gpkg"
    projects = pyogrio.read_dataframe(gpkg, layer="projects")
    row = projects["project_id"] == "XM0101"
    projects.loc[row, "name"] = HOSTILE
    projects.loc[row, "verdict"] = "fail"
    pyogrio.write_dataframe(projects, gpkg, layer="projects")
    return out


def test_compare_writes_the_changes(run_a, run_b, tmp_path, capsys):
    out = tmp_path / "changes"
    assert main(["compare", str(run_a), str(run_b), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "projects changed: 1 (verdict 1)" in stdout
    assert {p.name for p in out.iterdir()} == {
        "changes.csv", "changes.xlsx", "township_changes.csv", "township_changes.xlsx",
        "changes.html", "changes_map.html", "manifest.json"}
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["project_changes"] == 1
    assert manifest["before"]["source"] == str(run_a)


def test_hostile_names_are_escaped_everywhere(run_a, run_b, tmp_path):
    out = tmp_path / "changes"
    assert main(["compare", str(run_a), str(run_b), "--out", str(out)]) == 0
    for page in ("changes.html", "changes_map.html"):
        text = (out / page).read_text(encoding="utf-8")
        assert "<script>alert(1)" not in text
        # the page escapes the name; the map's popup escapes it too, then folium writes the
        # popup's HTML as JSON with <, > and & as \u escapes
        assert ("&lt;script&gt;alert(1)" in text
                or "\\u0026lt;script\\u0026gt;alert(1)" in text)
    csv = (out / "changes.csv").read_text(encoding="utf-8-sig")
    assert "<script>alert(1)</script>=HYPERLINK" in csv  # text kept whole
    assert ",=HYPERLINK" not in csv and ",\"=HYPERLINK" not in csv


def test_different_plans_are_compared_with_a_warning(run_a, run_b, tmp_path, capsys):
    manifest = json.loads((run_b / "manifest.json").read_text(encoding="utf-8"))
    manifest["plan"]["name"] = "另一个规划"
    (run_b / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["compare", str(run_a), str(run_b / "results.gpkg"),
                 "--out", str(tmp_path / "c")]) == 0
    assert "checked different plans" in capsys.readouterr().err


@pytest.mark.parametrize("what", ["empty folder", "stats output", "not a gpkg", "missing"])
def test_not_a_check_output_is_refused(what, run_a, tmp_path, capsys):
    side = tmp_path / "side"
    if what == "empty folder":
        side.mkdir()
    elif what == "stats output":
        assert main(["stats", DEMO_PLAN, "--out", str(side), "-q"]) == 0
        capsys.readouterr()
    elif what == "not a gpkg":
        side = tmp_path / "results.gpkg"
        side.write_text("project_id,verdict\n", encoding="utf-8")
    assert main(["compare", str(run_a), str(side), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert next(line for line in err.splitlines() if "error" in line).startswith(
        "spatialplan: error: ")
    assert {"empty folder": "is not an output folder", "stats output": "no `projects` layer",
            "not a gpkg": "is not a GeoPackage", "missing": "does not exist"}[what] in err
    assert not (tmp_path / "c").exists()


def test_an_output_folder_holding_a_run_is_refused(run_a, run_b, capsys):
    assert main(["compare", str(run_a), str(run_b), "--out", str(run_b)]) == 2
    assert "contains the input" in capsys.readouterr().err
