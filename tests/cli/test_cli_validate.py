"""``spatialplan validate``: per-layer report, JSON output, exit code 2 on fatal problems."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely
from conftest import LAT, LON, square, write_layer

from spatialplan.cli import main


def _plan_of(tmp_path, townships_gdf, role, gdf):
    """A plan of the townships and one more layer (``role``, written as ``<role>.gpkg``)."""
    write_layer(townships_gdf, tmp_path / "towns.gpkg")
    write_layer(gdf, tmp_path / f"{role}.gpkg")
    plan = tmp_path / "plan.toml"
    plan.write_text('[plan]\nname = "示范镇"\n[layers.townships]\npath = "towns.gpkg"\n'
                    f'[layers.{role}]\npath = "{role}.gpkg"\n', encoding="utf-8")
    return plan


def make_plan(tmp_path, townships_gdf):
    redline = gpd.GeoDataFrame(
        geometry=[square(LON, LAT, .01), None,
                  shapely.Polygon([(LON, LAT), (LON + .01, LAT + .01), (LON + .01, LAT),
                                   (LON, LAT + .01)])],
        crs="EPSG:4490")
    return _plan_of(tmp_path, townships_gdf, "redline", redline)


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
def _tbmj_plan(tmp_path, townships_gdf, tbmj):
    """A plan whose farmland carries 三调 TBMJ (text, as some exports store it)."""
    from pyproj import Geod

    geoms = [square(LON + k * .002, LAT, .001) for k in range(len(tbmj))]
    geod = Geod(ellps="GRS80")
    farm = gpd.GeoDataFrame({"TBMJ": [f"{abs(geod.geometry_area_perimeter(g)[0]):.2f}"
                                      if v == "true" else v
                                      for g, v in zip(geoms, tbmj, strict=True)]},
                            geometry=geoms, crs="EPSG:4490")
    return _plan_of(tmp_path, townships_gdf, "farmland", farm)


def test_validate_compares_tbmj_with_the_ellipsoidal_area(tmp_path, townships_gdf, capsys):
    """Official areas are ellipsoidal: validate sets the sum of TBMJ beside ours, and names the
    values that are no area instead of guessing them."""
    plan = _tbmj_plan(tmp_path, townships_gdf, ["true", "true", "abc", None, "-5", "true"])
    assert main(["validate", str(plan), "--json"]) == 0
    row, = json.loads(capsys.readouterr().out)["tbmj"]
    assert (row["role"], row["field"], row["n_features"], row["n_compared"]) == (
        "farmland", "TBMJ", 6, 3)
    assert (row["n_missing"], row["n_not_numeric"]) == (1, 2)
    assert row["not_numeric"] == "farmland:2='abc'; farmland:4='-5'"
    assert row["tbmj_sum_m2"] == pytest.approx(3 * 1.1e4, rel=0.02)  # 0.001° squares
    assert row["ellipsoidal_m2"] == pytest.approx(row["tbmj_sum_m2"], rel=1e-6)
    assert abs(row["relative_difference"]) < 1e-6
    assert main(["validate", str(plan), "-q"]) == 0
    out = capsys.readouterr().out
    assert "TBMJ (图斑面积, ellipsoidal m²)" in out and "椭球面积" in out
    assert "farmland: 2 TBMJ values are not numbers" in out and "farmland:4='-5'" in out


def test_validate_tbmj_that_does_not_reconcile(tmp_path, townships_gdf, capsys):
    """A TBMJ far from the area of its polygon shows as a large relative difference."""
    plan = _tbmj_plan(tmp_path, townships_gdf, ["1"])
    assert main(["validate", str(plan), "--json"]) == 0
    row, = json.loads(capsys.readouterr().out)["tbmj"]
    assert row["n_not_numeric"] == 0 and row["not_numeric"] == ""
    assert row["tbmj_sum_m2"] == 1.0
    assert row["relative_difference"] > 1000  # ~1.1e4 m² computed against 1 m² recorded


def test_validate_without_tbmj_has_no_comparison(tmp_path, townships_gdf, capsys):
    assert main(["validate", str(make_plan(tmp_path, townships_gdf)), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tbmj"] == []
    assert main(["validate", str(make_plan(tmp_path, townships_gdf)), "-q"]) == 0
    assert "TBMJ" not in capsys.readouterr().out
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
