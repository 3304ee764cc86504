"""Reading layers and plans: sources, encodings, CRS checks, fields, accounting, reports."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import LAT, LON, square, write_layer

from spatialplan.errors import (
    CRSError,
    DataLayerError,
    DataSourceError,
    FieldError,
    RasterError,
)
from spatialplan.io.plan import RasterSpec
from spatialplan.io.read import (
    detect_dbf_encoding,
    feature_issues,
    open_raster,
    raster_report,
    read_layer,
    read_plan,
    validation_report,
)

NAMES = ["示范镇", "乌江镇"]


def gbk_shapefile(tmp_path, gdf, *, cpg=None):
    path = write_layer(gdf, tmp_path / "xzq.shp", encoding="GBK")
    (tmp_path / "xzq.cpg").unlink()
    if cpg is not None:
        (tmp_path / "xzq.cpg").write_text(cpg, encoding="ascii")
    return path


# -- encodings ------------------------------------------------------------------------------


def test_gbk_shapefile_without_cpg_reads_correct_chinese(tmp_path, townships_gdf):
    path = gbk_shapefile(tmp_path, townships_gdf)
    assert detect_dbf_encoding(tmp_path / "xzq.dbf") == "GB18030"
    lyr = read_layer(path, role="townships")
    assert lyr.data["name"].tolist() == NAMES
    assert lyr.source.encoding == "GB18030"
    assert lyr.source.encoding_source == "detected"


def test_cpg_is_honoured(tmp_path, townships_gdf):
    path = gbk_shapefile(tmp_path, townships_gdf, cpg="GBK")
    lyr = read_layer(path, role="townships")
    assert lyr.data["name"].tolist() == NAMES
    assert (lyr.source.encoding, lyr.source.encoding_source) == ("gbk", "cpg")


def test_wrong_cpg_falls_back_to_detection(tmp_path, townships_gdf, caplog):
    path = gbk_shapefile(tmp_path, townships_gdf, cpg="UTF-8")
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        lyr = read_layer(path, role="townships")
    assert lyr.data["name"].tolist() == NAMES
    assert lyr.source.encoding_source.startswith("detected (.cpg")
    assert "does not decode" in caplog.text


def test_declared_encoding_wins(tmp_path, townships_gdf):
    path = gbk_shapefile(tmp_path, townships_gdf, cpg="GBK")
    lyr = read_layer(path, role="townships", encoding="ISO-8859-1")
    assert (lyr.source.encoding, lyr.source.encoding_source) == ("ISO-8859-1", "declared")
    assert lyr.data["name"].tolist() != NAMES  # the user asked for it
    lyr = read_layer(path, role="townships", encoding="GB18030")
    assert lyr.data["name"].tolist() == NAMES


def test_utf8_shapefile_without_cpg(tmp_path, townships_gdf):
    path = write_layer(townships_gdf, tmp_path / "u.shp", encoding="UTF-8")
    (tmp_path / "u.cpg").unlink(missing_ok=True)
    lyr = read_layer(path, role="townships")
    assert lyr.data["name"].tolist() == NAMES
    assert (lyr.source.encoding, lyr.source.encoding_source) == ("UTF-8", "detected")


def test_geopackage_is_utf8_by_format(tmp_path, townships_gdf):
    lyr = read_layer(write_layer(townships_gdf, tmp_path / "t.gpkg"), role="townships")
    assert (lyr.source.encoding, lyr.source.encoding_source) == ("UTF-8", "format")
    assert lyr.source.driver == "GPKG" and lyr.source.layer == "t"


# -- sources --------------------------------------------------------------------------------


def test_missing_file_and_not_geodata(tmp_path):
    with pytest.raises(DataSourceError, match="not found"):
        read_layer(tmp_path / "nope.gpkg", role="redline")
    bad = tmp_path / "bad.gpkg"
    bad.write_text("hello", encoding="utf-8")
    with pytest.raises(DataSourceError, match="cannot open"):
        read_layer(bad, role="redline")


def test_remote_source_refused(tmp_path):
    with pytest.raises(DataSourceError, match="remote"):
        read_layer("/vsicurl/https://example.org/a.gpkg", role="redline")


def test_multilayer_source_needs_layer(tmp_path, townships_gdf):
    path = tmp_path / "controls.gpkg"
    write_layer(townships_gdf, path, layer="STBHHX")
    write_layer(townships_gdf, path, layer="YJJBNT")
    with pytest.raises(DataLayerError, match="2 layers") as exc:
        read_layer(path, role="redline")
    assert "STBHHX" in exc.value.hint and "YJJBNT" in exc.value.hint
    with pytest.raises(DataLayerError, match="'CZKFBJ' not found") as exc:
        read_layer(path, role="udb", layer="CZKFBJ")
    assert "STBHHX" in exc.value.hint
    assert read_layer(path, role="farmland", layer="YJJBNT").n_in == 2


def test_vrt_driver_refused(tmp_path, townships_gdf):
    write_layer(townships_gdf, tmp_path / "t.gpkg")
    vrt = tmp_path / "t.vrt"
    vrt.write_text('<OGRVRTDataSource><OGRVRTLayer name="t"><SrcDataSource>t.gpkg'
                   "</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"OGR_VRT.* not accepted"):
        read_layer(vrt, role="townships")
    csv = tmp_path / "t.csv"
    csv.write_text("x,y\n1,2\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match="not accepted"):
        read_layer(csv, role="townships")


def test_real_guizhou_counties_geojson(data_dir):
    lyr = read_layer(data_dir / "guizhou_counties_wgs84.geojson", role="redline",
                     crs="EPSG:4545")
    assert lyr.n_in == 88
    assert lyr.n_in == lyr.n_ok + lyr.n_repaired + lyr.n_rejected
    assert lyr.source.crs.to_epsg() == 4326 and lyr.source.crs_source == "source"
    assert lyr.data.crs.to_epsg() == 4545
    assert lyr.data["feature_id"].iloc[0] == "redline:0"


# -- CRS ------------------------------------------------------------------------------------


def test_missing_crs_error_unless_assumed(tmp_path, townships_gdf):
    path = write_layer(townships_gdf, tmp_path / "t.shp")
    (tmp_path / "t.prj").unlink()
    with pytest.raises(CRSError, match="no CRS") as exc:
        read_layer(path, role="townships")
    assert "assume_crs" in exc.value.hint
    lyr = read_layer(path, role="townships", assume_crs="EPSG:4490", crs="EPSG:4545")
    assert lyr.source.crs_source == "assumed"
    assert lyr.data.crs.to_epsg() == 4545


def _prefixed(townships_gdf, label):
    g = townships_gdf.to_crs("EPSG:4524")
    return g.set_crs(label, allow_override=True)


def test_zone_prefixed_layer_accepted_under_4524(tmp_path, townships_gdf):
    path = write_layer(_prefixed(townships_gdf, "EPSG:4524"), tmp_path / "p.gpkg")
    lyr = read_layer(path, role="townships", crs="EPSG:4545")
    assert lyr.data.total_bounds[0] == pytest.approx(450728.2, abs=1)


def test_zone_prefixed_layer_refused_under_4545(tmp_path, townships_gdf):
    path = write_layer(_prefixed(townships_gdf, "EPSG:4545"), tmp_path / "p.gpkg")
    with pytest.raises(CRSError, match="zone prefix 36") as exc:
        read_layer(path, role="townships")
    assert "EPSG:4524" in exc.value.hint


def test_xian80_layer_refused(tmp_path, townships_gdf):
    path = write_layer(townships_gdf.set_crs("EPSG:4610", allow_override=True),
                       tmp_path / "x.gpkg")
    with pytest.raises(CRSError, match="Xian 1980"):
        read_layer(path, role="townships")


def test_swapped_lonlat_refused(tmp_path, townships_gdf):
    swapped = townships_gdf.set_geometry(
        shapely.transform(townships_gdf.geometry.values, lambda c: c[:, ::-1]))
    path = write_layer(swapped, tmp_path / "s.gpkg")
    with pytest.raises(CRSError, match="swapped"):
        read_layer(path, role="townships")


def test_coordinates_outside_china_refused(tmp_path, townships_gdf):
    moved = townships_gdf.set_geometry(townships_gdf.geometry.translate(-100, 0))
    with pytest.raises(CRSError, match="outside China"):
        read_layer(write_layer(moved, tmp_path / "m.gpkg"), role="townships")


# -- fields ---------------------------------------------------------------------------------


def test_missing_required_field_names_layer_field_and_existing(tmp_path, townships_gdf):
    path = write_layer(townships_gdf.drop(columns="XZQMC"), tmp_path / "t.gpkg")
    with pytest.raises(FieldError) as exc:
        read_layer(path, role="townships")
    text = str(exc.value)
    assert "'name'" in text and "townships" in text and "XZQMC" in text
    assert "XZQDM" in exc.value.hint


def test_plan_fields_override_aliases_case_insensitive(tmp_path, townships_gdf):
    g = townships_gdf.rename(columns={"XZQDM": "dm", "XZQMC": "Mc"})
    g["XZQMC"] = ["wrong", "wrong"]
    lyr = read_layer(write_layer(g, tmp_path / "t.gpkg"), role="townships",
                     fields={"code": "DM", "name": "mc"})
    assert lyr.data["name"].tolist() == NAMES
    assert lyr.source.fields == {"code": "dm", "name": "Mc"}
    assert list(lyr.data.columns[:3]) == ["feature_id", "code", "name"]
    assert "XZQMC" in lyr.data.columns  # other fields kept
    with pytest.raises(FieldError, match="'NOPE'") as exc:
        read_layer(tmp_path / "t.gpkg", role="townships", fields={"code": "NOPE"})
    assert "dm" in exc.value.hint


def test_numeric_codes_become_strings_with_warning(tmp_path, townships_gdf, caplog):
    g = townships_gdf.assign(XZQDM=[520123001, 520123002])
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        lyr = read_layer(write_layer(g, tmp_path / "t.gpkg"), role="townships")
    assert lyr.data["code"].tolist() == ["520123001", "520123002"]
    assert "leading zeros" in caplog.text


def projects_frame(**cols):
    n = len(next(iter(cols.values())))
    base = {"XMDM": [f"P{i:03d}" for i in range(n)], "XMMC": ["项目"] * n,
            "SSLX": ["school"] * n}
    base.update(cols)
    geoms = [square(LON + i * 0.01, LAT, 0.001) for i in range(n)]
    return gpd.GeoDataFrame(base, geometry=geoms, crs="EPSG:4490")


def test_dates_numbers_years_status_parsed(tmp_path):
    g = projects_frame(
        mapped_on=["2024-01-05", "2024/1/5", "20240105", "2024年1月5日", None],
        ZTZ=["1,250.5", "300", "", "12万元", None],
        start_year=["2024", "2025年", None, "2026", "2027"],
        status=["planned", "在建", "已建", None, "completed"],
    )
    lyr = read_layer(write_layer(g, tmp_path / "p.gpkg"), role="projects")
    d = lyr.data
    assert d["mapped_on"].dtype == "datetime64[ns]"
    assert d["mapped_on"].iloc[:4].tolist() == [pd.Timestamp("2024-01-05")] * 4
    assert pd.isna(d["mapped_on"].iloc[4])
    assert d["investment_wan"].tolist()[:2] == [1250.5, 300.0]
    assert np.isnan(d["investment_wan"].iloc[2]) and d["investment_wan"].iloc[3] == 12.0
    assert str(d["start_year"].dtype) == "Int64" and d["start_year"].iloc[1] == 2025
    assert d["status"].tolist()[:3] == ["planned", "under_construction", "completed"]
    assert d["permit_on"].isna().all() and d["permit_on"].dtype == "datetime64[ns]"
    assert d["township_code"].isna().all()
    assert d["project_id"].tolist()[0] == "P000"


def test_datetime_objects_accepted(tmp_path):
    g = projects_frame(mapped_on=[dt.datetime(2024, 3, 1, 12, 0), dt.datetime(2025, 1, 2)])
    lyr = read_layer(write_layer(g, tmp_path / "p.gpkg"), role="projects")
    assert lyr.data["mapped_on"].tolist() == [pd.Timestamp("2024-03-01"),
                                             pd.Timestamp("2025-01-02")]


@pytest.mark.parametrize(
    ("column", "values", "bad"),
    [("mapped_on", ["2024-01-05", "soon"], "soon"),
     ("ZTZ", ["12", "many"], "many"),
     ("end_year", ["2024", "20x4"], "20x4"),
     ("status", ["planned", "dreaming"], "dreaming")],
)


def test_unparseable_value_names_feature_and_value(tmp_path, column, values, bad):
    g = projects_frame(**{column: values})
    with pytest.raises(FieldError, match=bad) as exc:
        read_layer(write_layer(g, tmp_path / "p.gpkg"), role="projects")
    assert exc.value.feature == "projects:1"


# -- geometries and accounting --------------------------------------------------------------


def test_geometry_accounting_and_ids_by_source_position(tmp_path):
    bowtie = shapely.Polygon([(LON, LAT), (LON + .01, LAT + .01), (LON + .01, LAT),
                              (LON, LAT + .01), (LON, LAT)])
    overlap = shapely.MultiPolygon([square(LON, LAT, .01), square(LON + .005, LAT + .005, .01)])
    z = shapely.Polygon([(LON, LAT, 1), (LON + .01, LAT, 1), (LON, LAT + .01, 1)])
    g = gpd.GeoDataFrame({"k": range(5)},
                         geometry=[square(LON, LAT, .01), None, bowtie, overlap, z],
                         crs="EPSG:4490")
    lyr = read_layer(write_layer(g, tmp_path / "g.gpkg"), role="redline", crs="EPSG:4545")
    assert (lyr.n_in, lyr.n_ok, lyr.n_repaired, lyr.n_rejected) == (5, 2, 1, 2)
    assert lyr.data["feature_id"].tolist() == ["redline:0", "redline:2", "redline:4"]
    assert lyr.rejected["feature_id"].tolist() == ["redline:1", "redline:3"]
    assert lyr.repaired["area_before_m2"].iloc[0] > 1e5  # m², ellipsoidal in source
    assert lyr.source.n_zm_dropped == 1
    assert not lyr.data.geometry.has_z.any()


def test_point_projects_buffered_with_radius(tmp_path):
    g = projects_frame(XMDM=["A", "B"])
    g = g.set_geometry([shapely.Point(LON, LAT), square(LON, LAT, .001)])
    path = write_layer(g, tmp_path / "p.gpkg")
    assert read_layer(path, role="projects").n_rejected == 1
    lyr = read_layer(path, role="projects", point_radius_m=25, crs="EPSG:4545")
    assert lyr.n_repaired == 1 and lyr.n_rejected == 0
    assert lyr.data.geometry.iloc[0].area == pytest.approx(np.pi * 625, rel=0.01)


# -- rasters and plans ----------------------------------------------------------------------


def write_dem(path, *, nodata=None, crs="EPSG:4545"):
    import rasterio
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       crs=crs, transform=Affine(30, 0, 450000, 0, -30, 3080000),
                       nodata=nodata) as ds:
        ds.write(np.ones((1, 4, 4), dtype="float32"))
    return path


def test_open_raster_reports_missing_nodata(tmp_path):
    src = open_raster(RasterSpec(name="dem", path=write_dem(tmp_path / "d.tif")))
    assert src.problems == ["no nodata value"] and src.crs.to_epsg() == 4545
    assert src.res == (30.0, 30.0)
    src.require(nodata=False)
    with pytest.raises(RasterError, match="nodata"):
        src.require()
    fixed = open_raster(RasterSpec(name="dem", path=tmp_path / "d.tif", nodata=-9999))
    assert fixed.problems == [] and fixed.nodata == -9999 and fixed.nodata_source == "declared"
    with pytest.raises(RasterError, match="not found"):
        open_raster(RasterSpec(name="dem", path=tmp_path / "none.tif"))


def test_read_plan_end_to_end(tmp_path, townships_gdf):
    write_layer(townships_gdf, tmp_path / "towns.gpkg", layer="XZQ")
    gbk_shapefile(tmp_path, townships_gdf.rename(columns={"XZQMC": "MC"}))
    write_dem(tmp_path / "dem.tif")
    (tmp_path / "plan.toml").write_text(
        '[plan]\nname = "示范镇"\nas_of = "2026-11-26"\n'
        '[layers.townships]\npath = "towns.gpkg"\n'
        '[layers.udb]\npath = "xzq.shp"\nfields = { zone = "MC" }\n'
        '[rasters.dem]\npath = "dem.tif"\n', encoding="utf-8")
    plan = read_plan(tmp_path / "plan.toml")
    assert plan.crs.to_epsg() == 4545 and "auto" in plan.crs_reason
    assert plan.as_of == dt.date(2026, 11, 26)
    assert plan.layers["udb"].data["zone"].tolist() == NAMES
    assert all(lyr.data.crs.to_epsg() == 4545 for lyr in plan.layers.values())
    assert "tolerance" in plan.rules and plan.catalog is not None
    report = validation_report(plan)
    assert report["role"].tolist() == ["townships", "udb"]
    assert report.set_index("role").loc["udb", "encoding_source"] == "detected"
    assert (report["n_in"] == report["n_ok"] + report["n_repaired"]
            + report["n_rejected"]).all()
    assert feature_issues(plan).empty
    assert raster_report(plan)["problems"].tolist() == ["no nodata value"]
    again = read_plan(tmp_path / "plan.toml", crs="EPSG:4544", as_of=dt.date(2030, 1, 1))
    assert again.crs.to_epsg() == 4544 and again.as_of == dt.date(2030, 1, 1)


def test_feature_issues_lists_repairs_and_rejections(tmp_path):
    g = gpd.GeoDataFrame(geometry=[None, shapely.Point(LON, LAT), square(LON, LAT, .01)],
                         crs="EPSG:4490")
    lyr = read_layer(write_layer(g, tmp_path / "r.gpkg"), role="redline")
    issues = feature_issues({"redline": lyr})
    assert issues["feature_id"].tolist() == ["redline:0", "redline:1"]
    assert set(issues["kind"]) == {"rejected"}
    assert list(issues.columns) == ["role", "feature_id", "kind", "reason", "area_before_m2",
                                    "area_after_m2"]


@pytest.mark.parametrize(("suffix", "driver"),
                         [(".gpkg", "GPKG"), (".geojson", "GeoJSON"), (".fgb", "FlatGeobuf"),
                          (".shp", "ESRI Shapefile"), (".gdb", "OpenFileGDB")])
def test_formats_read_the_same(tmp_path, townships_gdf, suffix, driver):
    options = {"driver": driver, "layer": "XZQ"} if suffix == ".gdb" else {}
    lyr = read_layer(write_layer(townships_gdf, tmp_path / f"t{suffix}", **options),
                     role="townships", crs="EPSG:4545")
    assert lyr.source.driver == driver
    # FlatGeobuf's spatial index may reorder features: ids follow the order as stored
    pairs = sorted(zip(lyr.data["code"], lyr.data["name"], strict=True))
    assert pairs == [("520123001", NAMES[0]), ("520123002", NAMES[1])]
    assert lyr.data["feature_id"].tolist() == ["townships:0", "townships:1"]


def test_assume_crs_overrides_a_wrong_prj_with_warning(tmp_path, townships_gdf, caplog):
    path = write_layer(_prefixed(townships_gdf, "EPSG:4545"), tmp_path / "p.gpkg")
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        lyr = read_layer(path, role="townships", assume_crs="EPSG:4524", crs="EPSG:4545")
    assert lyr.source.crs_source == "assumed (overrides source)"
    assert lyr.source.crs.to_epsg() == 4524
    assert "overrides the source CRS" in caplog.text


def _ring_geojson(path, *, unclosed: int) -> None:
    """Five 0.01° squares west to east, GeoJSON ids 50, 40, ..., 10; one ring not closed."""
    feats = []
    for k, x0 in enumerate([LON - 1.0, LON - 0.9, LON, LON + 0.02, LON + 0.04]):
        ring = [[x0, LAT], [x0 + 0.01, LAT], [x0 + 0.01, LAT + 0.01], [x0, LAT + 0.01]]
        if k != unclosed:
            ring.append(ring[0])
        feats.append({"type": "Feature", "id": 50 - 10 * k, "properties": {"name": f"f{k}"},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}),
                    encoding="utf-8")


@pytest.mark.parametrize("positions", [None, "file order"])


def test_unreadable_geometry_keeps_its_source_id_with_bbox(tmp_path, positions):
    # the bbox leaves out the first two features and the FIDs run backwards, so the rows are
    # reordered after the read: the unreadable one must keep its own id and reason
    path = tmp_path / "red.geojson"
    _ring_geojson(path, unclosed=4)
    full = read_layer(path, role="redline")
    fp = None if positions is None else (lambda fids: (50 - np.asarray(fids)) // 10)
    lyr = read_layer(path, role="redline", bbox=(LON - 0.01, LAT - 0.01, LON + 0.06, LAT + 0.02),
                     feature_positions=fp)
    ids = ({"f2": "redline:30", "f3": "redline:20", "f4": "redline:10"} if positions is None
           else dict(zip(full.data["name"], full.data["feature_id"], strict=True))
           | dict(zip(full.rejected["name"], full.rejected["feature_id"], strict=True)))
    assert lyr.data.set_index("name")["feature_id"].to_dict() == {"f2": ids["f2"],
                                                                  "f3": ids["f3"]}
    assert lyr.rejected["name"].tolist() == ["f4"]
    assert lyr.rejected["feature_id"].tolist() == [ids["f4"]]
    assert lyr.rejected["reason"].iloc[0].startswith("unreadable geometry")
    assert full.rejected["reason"].iloc[0].startswith("unreadable geometry")


def test_raster_report_names_a_dem_far_coarser_than_the_sites(tmp_path):
    import dataclasses

    import rasterio
    from affine import Affine

    from spatialplan.core._resources import demo_dir

    plan = read_plan(demo_dir() / "plan.toml")
    assert "far coarser" not in raster_report(plan).set_index("name").loc["dem", "problems"]
    path = tmp_path / "coarse.tif"  # 0.2° cells (about 20 km) over the demo townships
    with rasterio.open(path, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32",
                       crs="EPSG:4490", transform=Affine(0.2, 0, 106.8, 0, -0.2, 28.6),
                       nodata=-9999) as ds:
        ds.write(np.full((1, 8, 8), 900.0, dtype="float32"))
    coarse = dataclasses.replace(plan, rasters={"dem": open_raster(RasterSpec(name="dem",
                                                                              path=path))})
    problems = raster_report(coarse).set_index("name").loc["dem", "problems"]
    assert "far coarser than the sites" in problems
    width = re.search(r"cells are ([\d,]+) m wide", problems)
    assert width and 18_000 < int(width.group(1).replace(",", "")) < 23_000
def test_read_plan_measures_the_chosen_zone_over_several_zones(tmp_path, data_dir):
    import shutil

    shutil.copy(data_dir / "guizhou_counties_wgs84.geojson", tmp_path / "gz.geojson")
    (tmp_path / "plan.toml").write_text(
        '[plan]\nname = "贵州"\n[layers.townships]\npath = "gz.geojson"\n'
        'fields = { code = "district_adcode", name = "district_name" }\n', encoding="utf-8")
    plan = read_plan(tmp_path / "plan.toml")
    d = plan.crs_distortion
    assert plan.crs.to_epsg() == 4545 and "spans zones 35-37" in plan.crs_reason
    assert d.text() in plan.crs_reason and d.lon < 104.0  # the western counties
    assert 0.001 < d.linear < 0.01 and 0.002 < d.areal < 0.01  # warned, not refused
    with pytest.raises(CRSError, match=r"EPSG:4541 .* % in area"):
        read_plan(tmp_path / "plan.toml", crs="EPSG:4541")
