"""``--catalog FILE`` on the plan commands: used by the check, listed in the manifest, refused
with exit 2 and a one-paragraph message when malformed."""

from __future__ import annotations

import argparse
import hashlib
import json

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from conftest import LAT, LON, square, write_layer

from spatialplan.cli import build_parser, main
from spatialplan.rules.catalog import read_catalog

BUNDLED = read_catalog().path


def _catalog(path, outside_udb="allowed", column="outside_udb"):
    df = pd.read_csv(BUNDLED, dtype=str, keep_default_na=False)
    df.loc[df["code"] == "school", column] = outside_udb
    df.to_csv(path, index=False, encoding="utf-8")
    return path


def _plan(folder):
    """One township, a development boundary in its west half, a school in its east half."""
    write_layer(gpd.GeoDataFrame({"XZQDM": ["520123001"], "XZQMC": ["示范镇"]},
                                 geometry=[square(LON, LAT, .02)], crs="EPSG:4490"),
                folder / "towns.gpkg")
    write_layer(gpd.GeoDataFrame(geometry=[square(LON + .001, LAT + .001, .008)],
                                 crs="EPSG:4490"), folder / "udb.gpkg")
    write_layer(gpd.GeoDataFrame({"XMDM": ["P1"], "XMMC": ["中心小学"], "XMLB": ["学校"],
                                  "XZQDM": ["520123001"]},
                                 geometry=[square(LON + .012, LAT + .005, .001)],
                                 crs="EPSG:4490"), folder / "projects.gpkg")
    plan = folder / "plan.toml"
    plan.write_text('[plan]\nname = "示范镇"\nas_of = "2026-06-30"\n'
                    '[layers.townships]\npath = "towns.gpkg"\n'
                    '[layers.udb]\npath = "udb.gpkg"\n'
                    '[layers.projects]\npath = "projects.gpkg"\n', encoding="utf-8")
    return plan


def _udb_status(out):
    findings = pyogrio.read_dataframe(out / "results.gpkg", layer="findings")
    return findings.set_index(["project_id", "rule"]).loc[("P1", "udb"), "status"]


def test_check_uses_the_catalogue_and_lists_it(tmp_path):
    plan = _plan(tmp_path)
    argv = ["check", str(plan), "--no-map", "--no-layout", "-q"]
    assert main([*argv, "--out", str(tmp_path / "default")]) == 0
    assert _udb_status(tmp_path / "default") == "review"
    manifest = json.loads((tmp_path / "default" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["catalog"]["bundled"] is True
    assert manifest["catalog"]["path"] == str(BUNDLED)

    cat = _catalog(tmp_path / "my_types.csv")
    assert main([*argv, "--catalog", str(cat), "--out", str(tmp_path / "user")]) == 0
    assert _udb_status(tmp_path / "user") == "pass"
    manifest = json.loads((tmp_path / "user" / "manifest.json").read_text(encoding="utf-8"))
    sha = hashlib.sha256(cat.read_bytes()).hexdigest()
    assert {"path": str(cat), "sha256": sha} in manifest["inputs"]
    assert manifest["catalog"]["path"] == str(cat) and manifest["catalog"]["sha256"] == sha
    assert manifest["catalog"]["bundled"] is False


def test_catalog_option_overrides_the_plans(tmp_path):
    plan = _plan(tmp_path)
    _catalog(tmp_path / "plan_types.csv", outside_udb="review")
    plan.write_text('[catalog]\npath = "plan_types.csv"\n' + plan.read_text(encoding="utf-8"),
                    encoding="utf-8")
    argv = ["check", str(plan), "--no-map", "--no-layout", "-q"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert _udb_status(tmp_path / "a") == "review"
    cat = _catalog(tmp_path / "cli_types.csv")
    assert main([*argv, "--catalog", str(cat), "--out", str(tmp_path / "b")]) == 0
    assert _udb_status(tmp_path / "b") == "pass"


@pytest.mark.parametrize("command", ["check", "stats", "schedule", "map", "layout"])
def test_bad_catalogue_is_exit_2_naming_file_row_and_fix(tmp_path, command, capsys):
    plan = _plan(tmp_path)
    bad = _catalog(tmp_path / "bad.csv", outside_udb="maybe")
    code = main([command, str(plan), "--catalog", str(bad), "--out", str(tmp_path / "o"),
                 "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("spatialplan: error:") and "Traceback" not in err
    assert "unknown outside_udb 'maybe'" in err and "line " in err
    assert str(bad) in err and "Fix:" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_missing_catalogue_is_exit_2(tmp_path, capsys):
    code = main(["stats", str(_plan(tmp_path)), "--catalog", str(tmp_path / "nope.csv"),
                 "--out", str(tmp_path / "o"), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "facility catalogue not found" in err and "nope.csv" in err


def test_output_folder_holding_the_catalogue_is_refused(tmp_path, capsys):
    plan = _plan(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    cat = _catalog(out / "my_types.csv")
    assert main(["stats", str(plan), "--catalog", str(cat), "--out", str(out), "-q"]) == 2
    assert "my_types.csv" in capsys.readouterr().err


def test_every_command_with_rules_has_catalog():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    with_rules = [name for name, p in sub.choices.items()
                  if any("--rules" in a.option_strings for a in p._actions)]
    assert with_rules
    for name in with_rules:
        options = {o for a in sub.choices[name]._actions for o in a.option_strings}
        assert "--catalog" in options, name
