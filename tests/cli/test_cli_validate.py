"""``spatialplan validate``: per-layer report, JSON output, exit code 2 on fatal problems."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from conftest import LAT, LON, square, write_layer

from spatialplan.cli import main


def make_plan(tmp_path, townships_gdf):
    write_layer(townships_gdf, tmp_path / "towns.gpkg")
    redline = gpd.GeoDataFrame(
        geometry=[square(LON, LAT, .01), None,
                  shapely.Polygon([(LON, LAT), (LON + .01, LAT + .01), (LON + .01, LAT),
                                   (LON, LAT + .01)])],
        crs="EPSG:4490")
    write_layer(redline, tmp_path / "redline.gpkg")
    plan = tmp_path / "plan.toml"
    plan.write_text('[plan]\nname = "示范镇"\n[layers.townships]\npath = "towns.gpkg"\n'
                    '[layers.redline]\npath = "redline.gpkg"\n', encoding="utf-8")
    return plan


def test_validate_prints_report(tmp_path, townships_gdf, capsys):
    assert main(["validate", str(make_plan(tmp_path, townships_gdf)), "-q"]) == 0
    out = capsys.readouterr().out
    assert "analysis CRS: EPSG:4545" in out
    assert "townships" in out and "redline" in out
    assert "repaired features: 1" in out and "rejected features: 1" in out
    assert "redline:1" in out and "geometry is missing" in out


def test_validate_json(tmp_path, townships_gdf, capsys):
    assert main(["validate", str(make_plan(tmp_path, townships_gdf)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["analysis_crs"] == "EPSG:4545"
    red = next(row for row in data["layers"] if row["role"] == "redline")
    assert (red["n_in"], red["n_ok"], red["n_repaired"], red["n_rejected"]) == (3, 1, 1, 1)
    assert {i["kind"] for i in data["issues"]} == {"repaired", "rejected"}


def test_validate_fatal_problem_exits_2(tmp_path, townships_gdf, capsys):
    plan = make_plan(tmp_path, townships_gdf)
    plan.write_text(plan.read_text(encoding="utf-8") + "pth = 1\n", encoding="utf-8")
    assert main(["validate", str(plan)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spatialplan: error:") and "layers.redline.pth" in err
    assert "Traceback" not in err
    assert main(["validate", str(tmp_path / "missing.toml")]) == 2


def test_validate_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "n_in = n_ok + n_repaired + n_rejected" in out and "--json" in out


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:4549"])
def test_validate_refuses_a_distorting_named_crs(tmp_path, townships_gdf, capsys, crs):
    # Web Mercator stretches lengths by 13 % at 27.8°N; zone 40 (120°E) lies 12.5° away
    assert main(["validate", str(make_plan(tmp_path, townships_gdf)), "--crs", crs]) == 2
    err = capsys.readouterr().err
    assert "spatialplan: error: the analysis CRS" in err and "Traceback" not in err
    assert f"analysis CRS {crs}" in err and "% in area" in err and "more than the 1 %" in err
    assert 'crs = "auto"' in err and "EPSG:4545" in err


def test_validate_reports_the_measured_distortion(tmp_path, townships_gdf, capsys):
    assert main(["validate", str(make_plan(tmp_path, townships_gdf)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "scale distortion on the data ≤ 0.00 % in length" in data["crs_reason"]
    assert main(["validate", str(make_plan(tmp_path, townships_gdf)), "--crs", "EPSG:4545",
                 "-q"]) == 0
