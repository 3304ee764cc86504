"""The fast paths of reading: each must give what the slow path gives, and refuse what it refuses.

Covers the bounding-box test of ``check_inside_china``, the vectorised geometry validation,
Z/M dropping, one SQLite ``quick_check`` per GeoPackage per ``read_plan``, one inside-China
check per layer, the Arrow read and the ``feature_id`` column, and the overlapped read of a
large layer (geometries screened in threads while the rest is decoded): the same Plan, logs
and errors as a sequential read, and no thread left behind.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
from conftest import LAT, LON, square, write_layer
from pandas.testing import assert_frame_equal

import spatialplan.core.crs as crs_mod
import spatialplan.io._read_arrow as arrow_mod
import spatialplan.io.read as read_mod
from spatialplan.core._parallel import Overlap
from spatialplan.core.crs import CHINA_LONLAT_BOUNDS, _bbox_inside_china, check_inside_china
from spatialplan.errors import CRSError, DataSourceError
from spatialplan.io._validate import _classify, screen_geometries, validate_geometries
from spatialplan.io.read import read_layer, read_plan

# -- check_inside_china: bounding-box fast path ----------------------------------------------


def _spy_fast_path(monkeypatch) -> list[bool]:
    """Record every answer of the bounding-box test."""
    answers: list[bool] = []
    real = crs_mod._bbox_inside_china

    def spy(*args, **kwargs):
        answers.append(real(*args, **kwargs))
        return answers[-1]

    monkeypatch.setattr(crs_mod, "_bbox_inside_china", spy)
    return answers


def _gk_squares(n: int, *, x0: float = 450_000.0, y0: float = 3_070_000.0) -> gpd.GeoSeries:
    return gpd.GeoSeries([square(x0 + 200.0 * i, y0 + 100.0 * (i % 7), 50.0) for i in range(n)],
                         crs="EPSG:4545")


def test_inside_layer_passes_on_the_fast_path(monkeypatch):
    answers = _spy_fast_path(monkeypatch)
    check_inside_china(_gk_squares(500))
    assert answers == [True]


def test_one_vertex_outside_china_is_still_refused_and_named(monkeypatch):
    answers = _spy_fast_path(monkeypatch)
    geoms = list(_gk_squares(500))
    # one vertex ~ 0.9°N (south of lat 3) in the middle of the layer
    geoms[250] = shapely.Polygon([(500_000, 3_070_000), (500_100, 3_070_000), (500_000, 100_000)])
    with pytest.raises(CRSError) as err:
        check_inside_china(gpd.GeoSeries(geoms, crs="EPSG:4545"), layer="farmland")
    assert answers == [False]
    msg = str(err.value)
    assert "1 of 2499 coordinates fall outside China" in msg
    assert "first: x=500000.000, y=100000.000" in msg and "farmland" in msg


def test_layer_near_the_edge_of_the_rectangle_takes_the_exact_path(monkeypatch):
    answers = _spy_fast_path(monkeypatch)
    y = pyproj.Transformer.from_crs(4490, 4545, always_xy=True).transform(108.0, 3.004)[1]
    check_inside_china(_gk_squares(20, x0=500_000.0, y0=y))  # within the 0.01° margin
    assert answers == [False]  # not proven by the outline, then every coordinate passed


def test_non_finite_coordinates_are_still_refused():
    g = gpd.GeoSeries([square(450_000, 3_070_000, 10),
                       shapely.LineString([(450_000, 3_070_000), (np.inf, 3_070_000)])],
                      crs="EPSG:4545")
    with pytest.raises(CRSError, match="1 coordinates are not finite"):
        check_inside_china(g)


def test_lonlat_layer_uses_the_exact_corners(monkeypatch):
    answers = _spy_fast_path(monkeypatch)
    check_inside_china(gpd.GeoSeries([square(LON, LAT, 0.1)], crs="EPSG:4490"))
    with pytest.raises(CRSError, match="outside China"):
        check_inside_china(gpd.GeoSeries([square(LON, LAT, 0.1), shapely.Point(140, 30)],
                                         crs="EPSG:4490"))
    assert answers == [True, False]


@pytest.mark.parametrize("epsg", [4545, 4524, 4534, 4554, 3857, 32648])
def test_fast_path_never_accepts_a_box_with_a_point_outside(epsg):
    """Random boxes near China's edges: a True answer means every point in the box is inside."""
    rng = np.random.default_rng(epsg)
    crs = pyproj.CRS.from_epsg(epsg)
    to_xy = pyproj.Transformer.from_crs(4490, crs, always_xy=True)
    to_ll = pyproj.Transformer.from_crs(crs, 4490, always_xy=True)
    lon0, lat0, lon1, lat1 = CHINA_LONLAT_BOUNDS
    accepted = 0
    for _ in range(150):
        lon = rng.uniform(lon0 - 3, lon1 + 3, 2)
        lat = rng.uniform(lat0 - 3, lat1 + 3, 2)
        x, y = to_xy.transform(lon, lat)
        if not np.isfinite([*x, *y]).all():
            continue
        bounds = (min(x), min(y), max(x), max(y))
        if not _bbox_inside_china(bounds, to_ll):
            continue
        accepted += 1
        px = rng.uniform(bounds[0], bounds[2], 4000)
        py = rng.uniform(bounds[1], bounds[3], 4000)
        plon, plat = to_ll.transform(np.r_[px, bounds[0], bounds[2]],
                                     np.r_[py, bounds[1], bounds[3]])
        assert ((plon >= lon0) & (plon <= lon1) & (plat >= lat0) & (plat <= lat1)).all()
    assert accepted > 0


def test_read_plan_checks_inside_china_once_per_unchanged_layer(tmp_path, monkeypatch,
                                                                 townships_gdf):
    calls: list[int] = []
    real = crs_mod.check_inside_china

    def counting(gdf, **kwargs):
        calls.append(len(gdf))
        return real(gdf, **kwargs)

    monkeypatch.setattr(crs_mod, "check_inside_china", counting)
    monkeypatch.setattr(read_mod, "check_inside_china", counting)
    write_layer(townships_gdf.to_crs(4545), tmp_path / "towns.gpkg")
    write_layer(townships_gdf, tmp_path / "udb.gpkg")  # lon/lat: reprojected, checked again
    (tmp_path / "plan.toml").write_text(
        '[plan]\nname = "t"\ncrs = "EPSG:4545"\n[layers.townships]\npath = "towns.gpkg"\n'
        '[layers.udb]\npath = "udb.gpkg"\n', encoding="utf-8")
    read_plan(tmp_path / "plan.toml")
    assert len(calls) == 3  # townships once (same CRS), udb before and after reprojection


# -- validate_geometries: vectorised fast path -----------------------------------------------


def _reference(gdf: gpd.GeoDataFrame, **options) -> list[tuple]:
    """Every feature through the slow path: (state, geometry WKB or None, reason)."""
    out = []
    for g in gdf.geometry:
        if g is not None and (g.has_z or getattr(g, "has_m", False)):
            g = shapely.force_2d(g)
        state, new, reason, _, _ = _classify(g, crs=gdf.crs, **options)
        out.append((state, None if new is None else new.wkb, reason))
    return out


def _mixed_layer(n: int = 4000) -> gpd.GeoDataFrame:
    """Valid squares with every kind of slow case spread through."""
    x = 450_000.0 + 30.0 * np.arange(n)
    geoms = shapely.box(x, 3_070_000.0, x + 20.0, 3_070_020.0).astype(object)
    bowtie = shapely.Polygon([(0, 0), (20, 20), (20, 0), (0, 20), (0, 0)])
    specials = [None, shapely.Polygon(), bowtie, shapely.Point(1, 1),
                shapely.LineString([(0, 0), (1, 1)]),
                shapely.Polygon([(0, 0, 1), (9, 0, 2), (9, 9, 3)]),
                shapely.GeometryCollection([square(0, 0, 1), shapely.Point(5, 5)]),
                shapely.MultiPolygon([square(0, 0, 10), square(5, 5, 10)])]
    for k, pos in enumerate(range(7, n, n // 40)):
        geoms[pos] = specials[k % len(specials)]
    return gpd.GeoDataFrame({"v": np.arange(n)}, geometry=geoms, crs="EPSG:4545")


@pytest.mark.parametrize("options", [{"polygonal": True, "point_radius_m": None},
                                     {"polygonal": True, "point_radius_m": 5.0},
                                     {"polygonal": False, "point_radius_m": None},
                                     {"geometry": "line", "point_radius_m": None},
                                     {"geometry": "point", "point_radius_m": None}])
def test_vectorised_validation_matches_the_per_feature_path(options, monkeypatch):
    monkeypatch.setattr("spatialplan.core._parallel.MIN_CHUNK", 500)  # is_valid in threads
    monkeypatch.setenv("SPATIALPLAN_THREADS", "3")
    gdf = _mixed_layer()
    ok, rejected, repaired = validate_geometries(gdf, role="farmland", **options)
    ref = _reference(gdf, **options)
    states = np.array([r[0] for r in ref])
    assert len(ok) == int((states != "rejected").sum())
    assert ok["feature_id"].tolist() == [f"farmland:{i}" for i in np.flatnonzero(
        states != "rejected")]
    assert [g.wkb for g in ok.geometry] == [r[1] for r in ref if r[0] != "rejected"]
    assert repaired["feature_id"].tolist() == [f"farmland:{i}" for i in np.flatnonzero(
        states == "repaired")]
    assert rejected["reason"].tolist() == [r[2] for r in ref if r[0] == "rejected"]
    n_ok = len(ok) - len(repaired)
    assert n_ok == int((states == "ok").sum())
    assert len(gdf) == n_ok + len(repaired) + len(rejected)


def test_valid_layer_keeps_its_geometry_objects():
    gdf = _gk_squares(10).to_frame("geometry")
    ok, rejected, repaired = validate_geometries(gdf, role="udb")
    assert rejected.empty and repaired.empty and ok.attrs["n_zm_dropped"] == 0
    assert all(a is b for a, b in zip(ok.geometry, gdf.geometry, strict=True))


def test_z_coordinates_are_dropped_and_counted_through_read_layer(tmp_path):
    flat = [square(LON + 0.01 * i, LAT, 0.005) for i in range(6)]
    geoms = [shapely.force_3d(g, 400.0) if i % 2 else g for i, g in enumerate(flat)]
    path = write_layer(gpd.GeoDataFrame({"MC": list("abcdef")}, geometry=geoms,
                                        crs="EPSG:4490"), tmp_path / "z.gpkg")
    lyr = read_layer(path, role="redline")
    assert lyr.source.n_zm_dropped == 3
    assert not lyr.data.geometry.has_z.any()
    assert [g.wkb for g in lyr.data.geometry] == [g.wkb for g in flat]
    assert lyr.n_ok == 6 and lyr.n_repaired == 0 and lyr.n_rejected == 0


# -- GeoPackage quick_check: once per file per read_plan -------------------------------------


def _three_layer_plan(tmp_path: Path, townships_gdf: gpd.GeoDataFrame) -> Path:
    write_layer(townships_gdf, tmp_path / "towns.gpkg")
    for name in ("STBHHX", "YJJBNT", "CZKFBJ"):
        write_layer(gpd.GeoDataFrame(geometry=[square(LON + 0.01, LAT + 0.01, 0.005)],
                                     crs="EPSG:4490"), tmp_path / "lines.gpkg", layer=name)
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[plan]\nname = "t"\n[layers.townships]\npath = "towns.gpkg"\n'
        '[layers.redline]\npath = "lines.gpkg"\nlayer = "STBHHX"\n'
        '[layers.farmland]\npath = "lines.gpkg"\nlayer = "YJJBNT"\n'
        '[layers.udb]\npath = "lines.gpkg"\nlayer = "CZKFBJ"\n', encoding="utf-8")
    return plan


def test_geopackage_with_three_layers_is_checked_once_per_read_plan(tmp_path, monkeypatch,
                                                                     townships_gdf):
    plan = _three_layer_plan(tmp_path, townships_gdf)
    checked: list[str] = []
    real = read_mod._check_sqlite

    def counting(path, **kwargs):
        checked.append(Path(path).name)
        return real(path, **kwargs)

    monkeypatch.setattr(read_mod, "_check_sqlite", counting)
    read_plan(plan)
    assert sorted(checked) == ["lines.gpkg", "towns.gpkg"]
    read_plan(plan)  # no cache between calls: a file may have changed
    assert sorted(checked) == ["lines.gpkg", "lines.gpkg", "towns.gpkg", "towns.gpkg"]
    read_layer(tmp_path / "lines.gpkg", role="redline", layer="STBHHX")
    assert checked.count("lines.gpkg") == 3  # read_layer on its own always checks


def test_damaged_geopackage_read_by_three_layers_is_still_refused(tmp_path, townships_gdf):
    plan = _three_layer_plan(tmp_path, townships_gdf)
    read_plan(plan)
    data = bytearray((tmp_path / "lines.gpkg").read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page + 8: page + 40] = b"\xa5" * 32
    (tmp_path / "lines.gpkg").write_bytes(bytes(data))
    with pytest.raises(DataSourceError, match="damaged"):
        read_plan(plan)


# -- Arrow reads -------------------------------------------------------------------------------


def _spy_arrow(monkeypatch) -> list[bool]:
    used: list[bool] = []
    real = pyogrio.read_dataframe

    def spy(*args, **kwargs):
        used.append(bool(kwargs.get("use_arrow")))
        return real(*args, **kwargs)

    monkeypatch.setattr(read_mod.pyogrio, "read_dataframe", spy)
    return used


def _chinese_frame() -> gpd.GeoDataFrame:
    n = 5
    return gpd.GeoDataFrame({
        "XZQDM": [f"52012300{i}" for i in range(n)],
        "名称": ["示范镇", "乌江镇", None, "", " 甲 "],
        "空列": pd.Series([None] * n, dtype=object),
        "MJ": [1.5, np.nan, 3.0, 4.25, 5.0],
        "BSM": pd.array([1, None, 3, 4, 2**40], dtype="Int64"),
        "XH": np.arange(n, dtype="int32"),
    }, geometry=[square(LON + 0.01 * i, LAT, 0.005) for i in range(n - 1)] + [
        shapely.MultiPolygon([square(LON, LAT + 0.01, 0.004)])], crs="EPSG:4490")


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_arrow_and_classic_reads_give_identical_frames(tmp_path, monkeypatch, suffix):
    path = write_layer(_chinese_frame(), tmp_path / f"t{suffix}")
    used = _spy_arrow(monkeypatch)
    info = pyogrio.read_info(path)
    fast = read_mod._read_frame(path, layer=None, encoding=None, role="townships", info=info)
    classic = read_mod._read_frame(path, layer=None, encoding=None, role="townships")
    assert used == [True, False]
    assert fast.attrs == classic.attrs
    assert fast.crs == classic.crs and fast.geometry.name == classic.geometry.name
    assert [g.wkb for g in fast.geometry] == [g.wkb for g in classic.geometry]
    assert_frame_equal(pd.DataFrame(fast.drop(columns="geometry")),
                       pd.DataFrame(classic.drop(columns="geometry")), check_exact=True)
    assert [repr(t) for t in fast.dtypes] == [repr(t) for t in classic.dtypes]
    names = dict(zip(fast["XZQDM"], fast["名称"], strict=True))  # FlatGeobuf sorts the rows
    assert [names["520123000"], names["520123001"]] == ["示范镇", "乌江镇"]


def test_arrow_read_layer_keeps_chinese_text_and_field_mapping(tmp_path, monkeypatch):
    path = write_layer(_chinese_frame(), tmp_path / "t.gpkg")
    used = _spy_arrow(monkeypatch)
    lyr = read_layer(path, role="townships", fields={"name": "名称"})
    assert used == [True]
    assert lyr.data["name"].tolist() == ["示范镇", "乌江镇", None, None, "甲"]
    assert lyr.data["code"].tolist() == [f"52012300{i}" for i in range(5)]
    assert lyr.data["空列"].tolist() == [None] * 5


def test_arrow_and_classic_bbox_reads_give_identical_frames(tmp_path, monkeypatch):
    path = write_layer(_chinese_frame(), tmp_path / "t.gpkg")
    used = _spy_arrow(monkeypatch)
    info = pyogrio.read_info(path)
    box = (LON + 0.015, LAT - 1, LON + 1, LAT + 1)  # the dask partitions' read
    fast = read_mod._read_frame(path, layer=None, encoding=None, role="townships", info=info,
                                bbox=box)
    classic = read_mod._read_frame(path, layer=None, encoding=None, role="townships", bbox=box)
    assert used == [True, False]
    assert 0 < len(fast) < len(_chinese_frame())
    assert fast.index.tolist() == classic.index.tolist()  # the source FIDs
    assert [g.wkb for g in fast.geometry] == [g.wkb for g in classic.geometry]
    assert_frame_equal(pd.DataFrame(fast.drop(columns="geometry")),
                       pd.DataFrame(classic.drop(columns="geometry")), check_exact=True)
    assert [repr(t) for t in fast.dtypes] == [repr(t) for t in classic.dtypes]


@pytest.mark.parametrize("case", ["date", "bool", "shapefile"])
def test_classic_read_where_arrow_would_differ(tmp_path, monkeypatch, case):
    g = _chinese_frame()[["XZQDM", "geometry"]].assign(MC=["a", "b", "c", "d", "e"])
    if case == "date":
        g["RQ"] = pd.to_datetime(["2024-01-05", None, "2024-02-01", "2023-12-31", None])
    if case == "bool":
        g["B"] = [True, False, True, False, True]
    path = write_layer(g, tmp_path / ("t.shp" if case == "shapefile" else "t.gpkg"))
    used = _spy_arrow(monkeypatch)
    lyr = read_layer(path, role="redline")
    assert used == [False]
    assert lyr.n_in == 5


def test_unreadable_geometry_falls_back_to_the_classic_read(tmp_path, monkeypatch):
    ring = [[LON, LAT], [LON + 0.01, LAT], [LON + 0.01, LAT + 0.01], [LON, LAT + 0.01]]
    feats = [{"type": "Feature", "properties": {"MC": f"f{k}"},
              "geometry": {"type": "Polygon", "coordinates": [ring + ([ring[0]] if k else [])]}}
             for k in range(3)]
    path = tmp_path / "r.geojson"
    path.write_text(pd.io.json.ujson_dumps({"type": "FeatureCollection", "features": feats}),
                    encoding="utf-8")
    used = _spy_arrow(monkeypatch)
    lyr = read_layer(path, role="redline")
    assert used[0] is True and used[-1] is False
    assert lyr.rejected["feature_id"].tolist() == ["redline:0"]
    assert lyr.rejected["reason"].iloc[0].startswith("unreadable geometry")
    assert lyr.data["MC"].tolist() == ["f1", "f2"]


def _gbk_in_utf8_source(path: Path) -> Path:
    """One feature whose text field holds GBK bytes in a format that must be UTF-8."""
    gbk = "示范镇".encode("gbk")
    if path.suffix == ".geojson":
        path.write_bytes(b'{"type": "FeatureCollection", "features": [{"type": "Feature", '
                         b'"properties": {"MC": "' + gbk + b'"}, "geometry": {"type": '
                         b'"Polygon", "coordinates": [[[107.5, 27.8], [107.6, 27.8], '
                         b'[107.6, 27.9], [107.5, 27.8]]]}}]}')
        return path
    write_layer(gpd.GeoDataFrame({"MC": ["x"]}, geometry=[square(LON, LAT, 0.01)],
                                 crs="EPSG:4490"), path, layer="bad")
    con = sqlite3.connect(path)
    for fn in ("ST_IsEmpty", "ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY"):  # rtree triggers
        con.create_function(fn, 1, lambda g: 0)
    con.execute("UPDATE bad SET MC = CAST(? AS TEXT)", (gbk,))
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg"])
def test_text_that_is_not_utf8_gets_the_classic_error(tmp_path, monkeypatch, suffix):
    path = _gbk_in_utf8_source(tmp_path / f"bad{suffix}")
    used = _spy_arrow(monkeypatch)
    with pytest.raises(DataSourceError, match="codec can't decode") as err:
        read_layer(path, role="redline")
    assert used == [True, False]  # Arrow wraps the bytes without a word: checked, then classic
    assert "fix encoding" in str(err.value)


# -- feature ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_feature_ids_match_the_list_of_f_strings(n):
    rows = np.arange(n)[::-1].copy()
    a = pd.DataFrame({"x": np.arange(n)})
    b = a.copy()
    a.insert(0, "feature_id", [f"parcels:{i}" for i in rows])
    b.insert(0, "feature_id", read_mod._feature_ids("parcels", rows))
    assert_frame_equal(a, b, check_exact=True)
    assert repr(a["feature_id"].dtype) == repr(b["feature_id"].dtype)


# -- field parsing: each distinct str / int value parsed once ----------------------------------


def _projects(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"feature_id": [f"projects:{i}" for i in range(n)],
                         "XMDM": [f"XM{i}" for i in range(n)], "XMMC": ["项目"] * n,
                         "XMLB": ["01"] * n, **columns})


def test_repeated_values_parse_like_single_ones():
    from spatialplan.io._fields import apply_fields

    df = _projects(KSNF=[2025, 2025, "2026年", "2026年", None, 2025],
                   JSZT=["在建", "在建", "planned", "在建", None, "planned"],
                   ZTZ=[1, 1, 1.0, "1,250.5万元", "1,250.5万元", np.nan])
    mapping = {"project_id": "XMDM", "name": "XMMC", "facility": "XMLB",
               "start_year": "KSNF", "status": "JSZT", "investment_wan": "ZTZ"}
    out = apply_fields(df, mapping, role="projects")
    assert out["start_year"].tolist() == [2025, 2025, 2026, 2026, pd.NA, 2025]
    assert out["status"].tolist() == ["under_construction", "under_construction", "planned",
                                      "under_construction", None, "planned"]
    assert out["investment_wan"].tolist()[:5] == [1.0, 1.0, 1.0, 1250.5, 1250.5]


def test_a_bad_repeated_value_names_its_first_feature_and_true_is_not_one():
    from spatialplan.errors import FieldError
    from spatialplan.io._fields import apply_fields

    mapping = {"project_id": "XMDM", "name": "XMMC", "facility": "XMLB", "start_year": "KSNF"}
    with pytest.raises(FieldError, match="projects:1 has a value that cannot be read: 'x'"):
        apply_fields(_projects(KSNF=[2025, "x", 2025, "x"]), mapping, role="projects")
    mapping = {"project_id": "XMDM", "name": "XMMC", "facility": "XMLB",
               "investment_wan": "ZTZ"}
    with pytest.raises(FieldError, match="projects:1 has a value that cannot be read: True"):
        apply_fields(_projects(ZTZ=pd.Series([1, True], dtype=object)), mapping,
                     role="projects")


@pytest.mark.parametrize("dtype", ["object", "str", pd.StringDtype("python")])
def test_text_fields_strip_like_python_whatever_the_dtype(dtype):
    from spatialplan.io._fields import _to_text

    raw = ["0101", " 0101 ", "", "   ", "\u3000示范镇\u3000", "\x1c01\x1c", None, "0101"]
    out = _to_text(pd.Series(raw, dtype=dtype), "landuse", role="parcels")
    assert out.dtype == object
    assert out.tolist() == ["0101", "0101", None, None, "示范镇", "01", None, "0101"]


# -- overlapped reading: geometries screened in threads while the layer is decoded ------------


def _overlap_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("spatialplan-overlap")]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_overlap_gives_the_serial_results_in_order(threads):
    callers: list[int] = []

    def area(geoms):
        callers.append(threading.get_ident())
        return shapely.area(geoms)

    parts = [_gk_squares(n).values for n in (5, 1, 9, 3)]
    prepared = _gk_squares(4).values
    shapely.prepare(prepared)
    with Overlap(area, threads=threads) as work:
        for part in [*parts, prepared]:
            work.submit(part)
        got = work.results()
    assert [g.tolist() for g in got] == [shapely.area(p).tolist() for p in [*parts, prepared]]
    assert callers[-1] == threading.get_ident() or threads > 1  # prepared: calling thread
    assert not _overlap_threads()


def test_overlap_raises_the_first_failure_in_order_and_leaves_no_thread():
    def fail_on(item):
        if item in (1, 3):
            time.sleep(0.05 if item == 1 else 0.0)  # item 3 fails first in time
            raise ValueError(f"item {item}")
        return item

    with Overlap(fail_on, threads=3) as work:
        for item in range(5):
            work.submit(item)
        with pytest.raises(ValueError, match="item 1"):
            work.results()
        assert len(work) == 0  # everything cancelled or waited for
    assert not _overlap_threads()


def test_leaving_an_overlap_by_an_exception_cancels_what_has_not_started():
    ran: list[int] = []

    def slow(item):
        time.sleep(0.02)
        ran.append(item)

    with pytest.raises(KeyboardInterrupt), Overlap(slow, threads=2) as work:
        for item in range(50):
            work.submit(item)
        raise KeyboardInterrupt
    assert len(ran) < 50 and not _overlap_threads()


def test_threaded_validity_leaves_the_warning_filters_alone(monkeypatch):
    from spatialplan.core import _parallel
    from spatialplan.io._validate import screen_geometries

    monkeypatch.setattr(_parallel, "MIN_CHUNK", 100)
    monkeypatch.setenv("SPATIALPLAN_THREADS", "3")
    before = list(warnings.filters)
    geoms = np.asarray(_mixed_layer(3000).geometry.values)
    for _ in range(3):
        _, _, ok = screen_geometries(geoms)
    assert warnings.filters == before  # shapely.is_valid's catch_warnings in threads broke this
    polygons = np.isin(shapely.get_type_id(geoms), (3, 6)) & ~shapely.is_empty(geoms)
    assert ok.tolist() == (polygons & shapely.is_valid(geoms)).tolist()


def _split_reads(monkeypatch, *, threads: int = 2, batch: int = 64) -> list[bool]:
    """Read layers of 100+ features in two passes, in batches of ``batch``; record each
    ``read_dataframe`` call's ``read_geometry``."""
    monkeypatch.setattr(arrow_mod, "_SPLIT_MIN_FEATURES", 100)
    monkeypatch.setattr(arrow_mod, "_DECODE_BATCH", batch)
    monkeypatch.setenv("SPATIALPLAN_THREADS", str(threads))
    calls: list[bool] = []
    real = pyogrio.read_dataframe

    def spy(*args, **kwargs):
        calls.append(kwargs.get("read_geometry", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(read_mod.pyogrio, "read_dataframe", spy)
    return calls


def _farmland(n: int = 700, *, specials: bool = True) -> gpd.GeoDataFrame:
    """``n`` small parcels in lon/lat with text, numbers and missing values; every kind of
    geometry the validation treats specially when ``specials``."""
    x = LON + 0.0015 * (np.arange(n) % 30)
    y = LAT + 0.0015 * (np.arange(n) // 30)
    geoms = shapely.box(x, y, x + 0.001, y + 0.001).astype(object)
    if specials:
        bowtie = shapely.Polygon([(LON, LAT), (LON + 0.001, LAT + 0.001), (LON + 0.001, LAT),
                                  (LON, LAT + 0.001), (LON, LAT)])
        z = shapely.force_3d(square(LON, LAT, 0.001), 300.0)
        for k, g in enumerate([None, bowtie, shapely.Point(LON, LAT), z,
                               shapely.MultiPolygon([square(LON, LAT, 0.001)])]):
            geoms[37 + (n // 6) * k] = g
    return gpd.GeoDataFrame({
        "BSM": np.arange(n, dtype="int64"),
        "DLMC": [("水田" if i % 3 else None) for i in range(n)],
        "MJ": np.where(np.arange(n) % 5, 1.25 * np.arange(n), np.nan),
    }, geometry=geoms, crs="EPSG:4490")


def _assert_same_frame(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    assert a.attrs == b.attrs and a.crs == b.crs and a.geometry.name == b.geometry.name
    assert [repr(t) for t in a.dtypes.drop(a.geometry.name)] == \
        [repr(t) for t in b.dtypes.drop(b.geometry.name)]
    assert [None if g is None else g.wkb for g in a.geometry] == \
        [None if g is None else g.wkb for g in b.geometry]
    assert_frame_equal(pd.DataFrame(a.drop(columns=a.geometry.name)),
                       pd.DataFrame(b.drop(columns=b.geometry.name)), check_exact=True)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
@pytest.mark.parametrize("columns", ["all", "none"])
def test_two_pass_arrow_read_gives_the_single_read_frame(tmp_path, monkeypatch, suffix,
                                                         columns):
    frame = _farmland()
    if columns == "none":
        frame = frame[["geometry"]]
    path = write_layer(frame, tmp_path / f"f{suffix}")
    info = pyogrio.read_info(path)
    calls = _split_reads(monkeypatch)
    with Overlap(read_mod._SCREEN) as screening:
        split = read_mod._read_frame(path, layer=None, encoding=None, role="farmland",
                                     info=info, screening=screening)
        screened = read_mod._screened(screening, len(split))
    whole = read_mod._read_frame(path, layer=None, encoding=None, role="farmland", info=info)
    classic = read_mod._read_frame(path, layer=None, encoding=None, role="farmland")
    assert calls == [False, True, True]  # attributes, then the single and classic reads
    _assert_same_frame(split, whole)
    _assert_same_frame(split, classic)
    assert screened is not None
    geoms, zm, ok = screened
    assert all(a is b for a, b in zip(np.asarray(split.geometry.values)[~zm], geoms[~zm],
                                      strict=True))
    _flat, zm_all, ok_all = screen_geometries(np.asarray(split.geometry.values))
    assert zm.tolist() == zm_all.tolist() and ok.tolist() == ok_all.tolist()


def _layer_plan(tmp_path: Path, townships_gdf: gpd.GeoDataFrame, *, farmland=None,
                udb_fields: str = "") -> Path:
    """Townships, red line and farmland (one GeoPackage), a development boundary and
    projects: the big farmland layer between small ones."""
    write_layer(townships_gdf, tmp_path / "towns.gpkg")
    lines = tmp_path / "lines.gpkg"
    write_layer(_farmland(120, specials=False), lines, layer="STBHHX")
    write_layer(_farmland() if farmland is None else farmland, lines, layer="YJJBNT")
    write_layer(_farmland(300).assign(GHFQDM="21"), tmp_path / "udb.gpkg")
    write_layer(gpd.GeoDataFrame(
        {"XMDM": ["XM1", "XM2"], "XMMC": ["卫生院", "学校"], "XMLB": ["01", "02"],
         "LTRQ": ["2024-01-05", "2024年2月1日"]},
        geometry=[square(LON + 0.001, LAT + 0.001, 0.001), square(LON + 0.02, LAT, 0.001)],
        crs="EPSG:4490"), tmp_path / "projects.gpkg")
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[plan]\nname = "t"\n[layers.townships]\npath = "towns.gpkg"\n'
        '[layers.redline]\npath = "lines.gpkg"\nlayer = "STBHHX"\n'
        '[layers.farmland]\npath = "lines.gpkg"\nlayer = "YJJBNT"\n'
        f'[layers.udb]\npath = "udb.gpkg"\n{udb_fields}'
        '[layers.projects]\npath = "projects.gpkg"\n'
        'fields = { mapped_on = "LTRQ" }\n', encoding="utf-8")
    return plan


def _read_logged(plan: Path, caplog) -> tuple:
    """(Plan or the error raised, every log record as (logger, level, message))."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="spatialplan"):
        try:
            result = read_plan(plan)
        except Exception as exc:  # compared below
            result = exc
    assert not _overlap_threads()
    return result, [(r.name, r.levelname, r.getMessage()) for r in caplog.records]


def _assert_same_plan(a, b) -> None:
    assert a.crs == b.crs and a.crs_reason == b.crs_reason and list(a.layers) == list(b.layers)
    for role, la in a.layers.items():
        lb = b.layers[role]
        _assert_same_frame(la.data, lb.data)
        assert_frame_equal(la.data.index.to_frame(), lb.data.index.to_frame())
        assert_frame_equal(la.rejected, lb.rejected, check_exact=True)
        assert_frame_equal(la.repaired, lb.repaired, check_exact=True)
        assert (la.n_in, la.n_ok, la.n_repaired, la.n_rejected) == \
            (lb.n_in, lb.n_ok, lb.n_repaired, lb.n_rejected)
        assert la.source == lb.source
        assert [g.wkb for g in la.validated] == [g.wkb for g in lb.validated]


def test_overlapped_read_plan_gives_the_sequential_plan_and_logs(tmp_path, monkeypatch, caplog,
                                                                townships_gdf):
    plan = _layer_plan(tmp_path, townships_gdf)
    calls = _split_reads(monkeypatch, threads=1)
    sequential, seq_logs = _read_logged(plan, caplog)
    assert False not in calls  # one thread: every layer read whole
    monkeypatch.setenv("SPATIALPLAN_THREADS", "2")
    calls.clear()
    overlapped, logs = _read_logged(plan, caplog)
    assert calls.count(False) == 3  # red line, farmland and the development boundary
    _assert_same_plan(overlapped, sequential)
    assert logs == seq_logs
    farmland = overlapped.layers["farmland"]
    assert (farmland.n_repaired, farmland.n_rejected, farmland.source.n_zm_dropped) == (1, 2, 1)


def _inject_screening_fault(monkeypatch, fault):
    """Make reading fail as ``fault`` says ("field" needs no patch: the plan names a bad field)."""
    from spatialplan.io import _validate

    if fault == "interrupt":  # Ctrl-C while the farmland's geometries are still screened
        real_apply = read_mod.apply_fields

        def interrupted(df, mapping, *, role, **kwargs):
            if getattr(role, "name", role) == "farmland":  # a LayerRole, or a name
                raise KeyboardInterrupt
            return real_apply(df, mapping, role=role, **kwargs)

        monkeypatch.setattr(read_mod, "apply_fields", interrupted)
    if fault == "screen":  # a batch fails in its thread: validation screens it again
        def failing(geoms):
            if threading.current_thread().name.startswith("spatialplan-overlap"):
                raise shapely.errors.GEOSException("batch failed")
            return screen_geometries(geoms)

        monkeypatch.setattr(read_mod, "_SCREEN", failing)
    if fault == "validate":  # GEOS fails on one geometry: in its batch and in the layer
        real_fast = _validate._fast_ok

        def fast_ok(geoms, *, geometry):
            if (shapely.get_type_id(geoms) == 0).any():  # the point
                raise shapely.errors.GEOSException("IllegalArgumentException: broken")
            return real_fast(geoms, geometry=geometry)

        monkeypatch.setattr(_validate, "_fast_ok", fast_ok)


@pytest.mark.parametrize("fault", ["field", "interrupt", "screen", "validate"])
def test_an_error_while_geometries_are_screened_is_the_sequential_error(
        tmp_path, monkeypatch, caplog, townships_gdf, fault):
    plan = _layer_plan(tmp_path, townships_gdf, udb_fields='fields = { zone = "NOPE" }\n'
                       if fault == "field" else "")
    _inject_screening_fault(monkeypatch, fault)
    _split_reads(monkeypatch, threads=1)
    if fault == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            read_plan(plan)
        monkeypatch.setenv("SPATIALPLAN_THREADS", "2")
        with pytest.raises(KeyboardInterrupt):
            read_plan(plan)
        assert not _overlap_threads()
        return
    sequential, seq_logs = _read_logged(plan, caplog)
    monkeypatch.setenv("SPATIALPLAN_THREADS", "2")
    overlapped, logs = _read_logged(plan, caplog)
    assert logs == seq_logs
    if fault == "screen":
        _assert_same_plan(overlapped, sequential)
        return
    assert isinstance(overlapped, Exception) and type(overlapped) is type(sequential)
    assert str(overlapped) == str(sequential)
    assert ("NOPE" if fault == "field" else "broken") in str(overlapped)


@pytest.mark.parametrize("case", ["unreadable", "warning"])
def test_two_pass_read_falls_back_to_the_single_read(tmp_path, monkeypatch, caplog,
                                                    townships_gdf, case):
    plan = _layer_plan(tmp_path, townships_gdf)
    if case == "unreadable":  # a ring not closed: the single read fails too, then the classic
        doc = json.loads(_farmland(300, specials=False).to_json())  # read names the feature
        doc["features"][150]["geometry"]["coordinates"][0].pop()
        (tmp_path / "farmland.geojson").write_text(json.dumps(doc), encoding="utf-8")
        plan.write_text(plan.read_text(encoding="utf-8").replace(
            'path = "lines.gpkg"\nlayer = "YJJBNT"', 'path = "farmland.geojson"'),
            encoding="utf-8")
    if case == "warning":  # a warning only the geometry pass gives: the layer is read whole
        real_open = pyogrio.raw.open_arrow

        def warning_open(*args, **kwargs):
            if kwargs.get("columns") == []:
                warnings.warn("geometry pass only", RuntimeWarning, stacklevel=2)
            return real_open(*args, **kwargs)

        monkeypatch.setattr(pyogrio.raw, "open_arrow", warning_open)
    calls = _split_reads(monkeypatch, threads=1)
    sequential, seq_logs = _read_logged(plan, caplog)
    monkeypatch.setenv("SPATIALPLAN_THREADS", "2")
    calls.clear()
    overlapped, logs = _read_logged(plan, caplog)
    _assert_same_plan(overlapped, sequential)
    assert logs == seq_logs
    if case == "warning":  # every geometry pass warned: no layer read in two passes
        assert False not in calls
        return
    # GDAL warns of the open ring in the geometry pass: read whole, which fails, then classic
    farmland = [True, True, True]  # (twice: the second time keeping what it can read)
    assert calls == [True, False, *farmland, False, True]
    rejected = overlapped.layers["farmland"].rejected
    assert rejected["feature_id"].tolist() == ["farmland:150"]
    assert rejected["reason"].iloc[0].startswith("unreadable geometry")


# -- GeoPackage quick_check ahead, in a background thread -------------------------------------


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page + 8: page + 40] = b"\xa5" * 32
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("threads", [1, 2])
def test_geopackages_are_checked_ahead_in_one_background_thread(tmp_path, monkeypatch,
                                                                townships_gdf, threads):
    plan = _three_layer_plan(tmp_path, townships_gdf)
    checked: list[tuple[str, str]] = []
    real = read_mod._check_sqlite

    def recording(path, **kwargs):
        checked.append((Path(path).name, threading.current_thread().name))
        return real(path, **kwargs)

    monkeypatch.setattr(read_mod, "_check_sqlite", recording)
    monkeypatch.setenv("SPATIALPLAN_THREADS", str(threads))
    read_plan(plan)
    assert sorted(name for name, _ in checked) == ["lines.gpkg", "towns.gpkg"]
    where = dict(checked)  # the first layer's file where it is read: nothing comes before it
    assert where["towns.gpkg"] == threading.main_thread().name
    assert where["lines.gpkg"].startswith("spatialplan-sqlite") == (threads > 1)
    assert not [t for t in threading.enumerate() if t.name.startswith("spatialplan-sqlite")]


@pytest.mark.parametrize("first_bad", [False, True])
def test_a_damaged_geopackage_checked_ahead_gives_the_sequential_error(
        tmp_path, monkeypatch, townships_gdf, first_bad):
    plan = _three_layer_plan(tmp_path, townships_gdf)
    _damage(tmp_path / "lines.gpkg")
    if first_bad:  # the townships fail first: their error, whatever the check ahead found
        write_layer(townships_gdf.drop(columns="XZQMC"), tmp_path / "towns.gpkg")
    errors = []
    for threads in ("1", "2"):
        monkeypatch.setenv("SPATIALPLAN_THREADS", threads)
        with pytest.raises(Exception) as err:
            read_plan(plan)
        errors.append((type(err.value), str(err.value)))
        assert not [t for t in threading.enumerate() if t.name.startswith("spatialplan-")]
    assert errors[0] == errors[1]
    assert ("XZQMC" if first_bad else "damaged") in errors[0][1]
    assert ("townships" if first_bad else "redline") in errors[0][1]


def test_the_caller_takes_the_items_no_worker_has_started_from_the_back():
    by: dict[int, str] = {}

    def slow(item):
        time.sleep(0.01)
        by[item] = threading.current_thread().name
        return item

    with Overlap(slow, threads=2) as work:
        for item in range(20):
            work.submit(item)
        assert work.results() == list(range(20))
    mine = sorted(k for k, name in by.items() if name == threading.current_thread().name)
    assert mine and mine == list(range(20 - len(mine), 20))  # a run at the end


def test_flatgeobuf_with_a_missing_geometry_is_read_classically(tmp_path):
    """GDAL 3.12's Arrow stream of a FlatGeobuf without spatial index holding a missing
    geometry crashed the process: FlatGeobuf is read the classic way (in a child process
    here, so that a crash fails this test instead of killing the test run)."""
    import subprocess
    import sys

    geoms = [square(LON + 0.01 * i, LAT, 0.004) for i in range(700)]
    geoms[5] = None
    frame = gpd.GeoDataFrame({"BSM": np.arange(700)}, geometry=geoms, crs="EPSG:4490")
    path = tmp_path / "f.fgb"
    pyogrio.write_dataframe(frame, path, layer_options={"SPATIAL_INDEX": "NO"})
    assert not read_mod._arrow_read_ok(pyogrio.read_info(path))
    code = (f"import spatialplan as sp; lyr = sp.read_layer({str(path)!r}, role='redline'); "
            "print(lyr.n_in, lyr.n_ok, lyr.n_rejected)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["700", "699", "1"]
