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


def _plan_with_parcels(tmp_path, townships_gdf, codes):
    plan = make_plan(tmp_path, townships_gdf)
    parcels = gpd.GeoDataFrame(
        {"YDYHDM": codes},
        geometry=[square(LON + 0.001 * i, LAT + 0.001, 0.0008) for i in range(len(codes))],
        crs="EPSG:4490")
    write_layer(parcels, tmp_path / "parcels.gpkg")
    plan.write_text(plan.read_text(encoding="utf-8")
                    + '[layers.parcels]\npath = "parcels.gpkg"\n', encoding="utf-8")
    return plan


def test_validate_lists_unknown_landuse_codes(tmp_path, townships_gdf, capsys):
    plan = _plan_with_parcels(tmp_path, townships_gdf,
                              ["0899", "080403", "0899", "899", "080599", None])
    assert main(["validate", str(plan), "-q"]) == 0
    out = capsys.readouterr().out
    assert "parcel land-use codes not in the land-use code table: 2" in out
    assert "0899" in out and "080599" in out
    assert main(["validate", str(plan), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["unknown_landuse_codes"] == [{"code": "0899", "n_parcels": 3},
                                             {"code": "080599", "n_parcels": 1}]
    import spatialplan as sp

    report = sp.unknown_landuse_report(sp.read_plan(plan))
    assert report.to_dict(orient="list") == {"code": ["0899", "080599"], "n_parcels": [3, 1]}


def test_validate_json_no_unknown_landuse_codes(tmp_path, townships_gdf, capsys):
    plan = _plan_with_parcels(tmp_path, townships_gdf, ["080403", "1401"])
    assert main(["validate", str(plan), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unknown_landuse_codes"] == []
    assert main(["validate", str(plan), "-q"]) == 0
    assert "not in the land-use code table" not in capsys.readouterr().out
