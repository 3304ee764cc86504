"""Hostile-input corpus, part two (issue 15, items 9 and 12): each class of input, not one example.

- non-finite coordinates (NaN, ±infinity; in x, y, a hole, one part of a multi-geometry, a Z
  that would be dropped) on every read path: GeoPackage through Arrow, in two passes with the
  validity screened in threads, the classic read, and Shapefile; then whole plans (the CRS
  chosen from the extent, a layer whose every feature is bad) and 部标 TXT;
- numeric field values: NaN, infinity, negative and absurdly large investments, years;
- a GBK ``.dbf`` without ``.cpg`` holding UTF-8 records;
- a DEM too small for a 3x3 slope window.

Every input is built in code inside ``tmp_path``. GeoJSON cannot carry NaN, GeoPackage can;
pyogrio refuses to write a non-finite coordinate to a Shapefile, so the ``.shp`` is written
with a sentinel value whose bytes are then replaced (:func:`write_bad_layer`).
"""

from __future__ import annotations

import json
import logging
import math
import struct
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from test_corpus import write_plan

from spatialplan import errors
from spatialplan.cli import main
from spatialplan.io import _read_arrow as arrow_mod
from spatialplan.io import read as read_mod
from spatialplan.io.bubiao import read_bubiao_txt
from spatialplan.io.read import read_layer, read_plan

nan, inf = math.nan, math.inf

LON, LAT = 107.5, 27.8
#: a zone-36 prefixed Gauss-Krüger easting / northing near (LON, LAT): EPSG:4524
X, Y = 36_451_700.0, 3_077_500.0
PREFIXED = "EPSG:4524"
#: the sentinel written where a coordinate is to be non-finite (never a real coordinate here)
SENTINEL = {"EPSG:4524": X + 12.345, "EPSG:4490": LON + 0.00012345}
Z_SENTINEL = 1234.5678


# -- builders --------------------------------------------------------------------------------


def _unit(crs: str) -> tuple[float, float, float]:
    """(x0, y0, size of a feature) in the CRS's units."""
    return (X, Y, 100.0) if crs == PREFIXED else (LON, LAT, 0.001)


def _square(crs: str, k: float = 0.0) -> shapely.Polygon:
    x0, y0, d = _unit(crs)
    return shapely.box(x0 + 3 * k * d, y0, x0 + 3 * k * d + d, y0 + d)


def _with_sentinel(crs: str, kind: str) -> shapely.Geometry:
    """A feature holding the sentinel where its bad coordinate goes (see :data:`VARIANTS`)."""
    x0, y0, d = _unit(crs)
    s = SENTINEL[crs]
    shell = [(x0, y0), (x0 + d, y0), (x0 + d, y0 + d), (x0, y0 + d), (x0, y0)]
    if kind == "x":
        return shapely.Polygon([(x0, y0), (x0 + d, y0), (s, y0 + d), (x0, y0)])
    if kind == "y":
        return shapely.Polygon([(x0, y0), (x0 + d, y0), (x0 + d, s), (x0, y0)])
    if kind == "hole":
        hole = [(x0 + d / 4, y0 + d / 4), (x0 + d / 2, y0 + d / 4), (s, y0 + d / 2),
                (x0 + d / 4, y0 + d / 4)]
        return shapely.Polygon(shell, [hole])
    if kind == "part":
        bad = shapely.Polygon([(x0 + 2 * d, y0), (x0 + 3 * d, y0), (s, y0 + d),
                               (x0 + 2 * d, y0)])
        return shapely.MultiPolygon([shapely.Polygon(shell), bad])
    if kind == "z":
        return shapely.Polygon([(x, y, Z_SENTINEL if i == 2 else 400.0)
                                for i, (x, y) in enumerate(shell)])
    if kind == "far":  # finite vertices in zone 37 (or far east): only the NaN rejects it
        far = 1_000_000.0 if crs == PREFIXED else 3.0
        return shapely.Polygon([(x0 + far, y0), (x0 + far + d, y0), (s, y0 + d),
                                (x0 + far, y0)])
    raise AssertionError(kind)


#: variant → (where the bad coordinate is, the value it gets)
VARIANTS = {
    "nan-x": ("x", nan), "inf-y": ("y", inf), "inf-x": ("x", inf), "minus-inf-x": ("x", -inf),
    "nan-in-hole": ("hole", nan), "multipolygon-one-bad-part": ("part", inf),
    "nan-z": ("z", nan), "nan-far-from-the-rest": ("far", nan),
}


def _replace(geom: shapely.Geometry, sentinel: float, value: float) -> shapely.Geometry:
    def swap(coords: np.ndarray) -> np.ndarray:
        return np.where(coords == sentinel, value, coords)

    return shapely.transform(geom, swap, include_z=bool(geom.has_z))


def write_bad_layer(path: Path, geoms: list[shapely.Geometry], crs: str, value: float,
                    **columns: list) -> Path:
    """Write ``geoms`` with every sentinel (x/y: :data:`SENTINEL`, z: :data:`Z_SENTINEL`)
    replaced by ``value``: directly in a GeoPackage, by patching the bytes of a Shapefile."""
    frame = gpd.GeoDataFrame(columns or {"n": list(range(len(geoms)))}, geometry=geoms,
                             crs=crs)
    sentinels = (SENTINEL[crs], Z_SENTINEL)
    if path.suffix == ".shp":
        pyogrio.write_dataframe(frame, path, encoding="UTF-8")
        data = path.read_bytes()
        found = sum(data.count(struct.pack("<d", s)) for s in sentinels)
        assert found >= sum(shapely.get_coordinates(g, include_z=g.has_z).__eq__(s).sum()
                            for g in geoms for s in sentinels)
        for s in sentinels:
            data = data.replace(struct.pack("<d", s), struct.pack("<d", value))
        path.write_bytes(data)
        return path
    for s in sentinels:
        frame.geometry = [_replace(g, s, value) for g in frame.geometry]
    pyogrio.write_dataframe(frame, path)
    return path


def _spy_split(monkeypatch: pytest.MonkeyPatch) -> list:
    """Read every GeoPackage in two passes (geometries screened in threads); record 1 per
    geometry pass, then whether the screened validity was used (False: a warning while
    decoding, e.g. shapely's on a NaN, made it one whole read)."""
    monkeypatch.setattr(arrow_mod, "_SPLIT_MIN_FEATURES", 1)
    monkeypatch.setattr(arrow_mod, "_DECODE_BATCH", 2)
    monkeypatch.setenv("SPATIALPLAN_THREADS", "2")
    calls: list[int] = []
    real = arrow_mod._decode_geometries

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(arrow_mod, "_decode_geometries", spy)
    real_screened = read_mod._screened

    def screened(*args, **kwargs):
        out = real_screened(*args, **kwargs)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(read_mod, "_screened", screened)
    return calls


def _spy_arrow(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record whether each pyogrio read of a whole layer went through Arrow."""
    calls: list[bool] = []
    real = pyogrio.read_dataframe

    def spy(*args, **kwargs):
        calls.append(bool(kwargs.get("use_arrow")))
        return real(*args, **kwargs)

    monkeypatch.setattr("spatialplan.io.read.pyogrio.read_dataframe", spy)
    monkeypatch.setattr("spatialplan.io._read_arrow.pyogrio.read_dataframe", spy)
    return calls


READ_PATHS = ["gpkg-arrow", "gpkg-two-pass", "gpkg-classic", "shapefile"]


def _layer_file(tmp: Path, how: str, geoms: list, crs: str, value: float) -> Path:
    """The layer written for read path ``how`` (a date field keeps a GeoPackage off Arrow)."""
    if how == "shapefile":
        return write_bad_layer(tmp / "layer.shp", geoms, crs, value)
    columns: dict = {"n": list(range(len(geoms)))}
    if how == "gpkg-classic":
        columns["d"] = pd.to_datetime(["2024-01-05"] * len(geoms))
    return write_bad_layer(tmp / "layer.gpkg", geoms, crs, value, **columns)


# -- item 9: non-finite coordinates ----------------------------------------------------------


@pytest.mark.parametrize("how", READ_PATHS)
@pytest.mark.parametrize("crs", [PREFIXED, "EPSG:4490"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_non_finite_coordinate_rejects_its_feature_on_every_read_path(
        variant: str, crs: str, how: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kind, value = VARIANTS[variant]
    split = _spy_split(monkeypatch) if how == "gpkg-two-pass" else None
    arrow = _spy_arrow(monkeypatch)
    geoms = [_square(crs, 0), _with_sentinel(crs, kind), _square(crs, 2)]
    path = _layer_file(tmp_path, how, geoms, crs, value)
    lyr = read_layer(path, role="redline")
    assert lyr.rejected["feature_id"].tolist() == ["redline:1"]
    reason = lyr.rejected["reason"].iloc[0]
    assert reason.startswith("non-finite coordinates (NaN or infinity)")
    assert ("z=nan" if kind == "z" else f"{value:.3f}") in reason
    assert lyr.data["feature_id"].tolist() == ["redline:0", "redline:2"]
    assert lyr.n_in == 3 == lyr.n_ok + lyr.n_repaired + lyr.n_rejected
    assert np.isfinite(shapely.get_coordinates(lyr.data.geometry.values)).all()
    if how.startswith("gpkg"):
        assert arrow[0] is (how != "gpkg-classic")
    if split is not None:  # decoding NaN x/y warns: then one whole read, screened after
        assert split == [1, not (math.isnan(value) and kind != "z")]


def _plan(tmp: Path, layers: dict[str, str], *, extra: str = "") -> Path:
    """plan.toml naming one file per role (role → file name)."""
    return write_plan(tmp, {role: f'path = "{name}"' for role, name in layers.items()},
                      extra=extra)


def _towns(tmp: Path, geoms: list | None = None, value: float = nan) -> Path:
    geoms = geoms or [shapely.box(LON, LAT, LON + 0.05, LAT + 0.05)]
    n = len(geoms)
    return write_bad_layer(tmp / "towns.gpkg", geoms, "EPSG:4490", value,
                           XZQDM=[f"52012300{i + 1}" for i in range(n)],
                           XZQMC=[f"镇{i}" for i in range(n)])


def test_the_audit_case_inf_easting_no_longer_crashes_the_check(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture
                                                                ) -> None:
    """The audit: ``ValueError: cannot convert float NaN to integer`` in check_zone_prefix,
    exit 1. Now the feature is rejected and named, and the check runs."""
    _towns(tmp_path)
    write_bad_layer(tmp_path / "red.gpkg", [_square(PREFIXED), _with_sentinel(PREFIXED, "x")],
                    PREFIXED, inf)
    write_bad_layer(tmp_path / "projects.gpkg",
                    [_square(PREFIXED, 1), _with_sentinel(PREFIXED, "y")], PREFIXED, inf,
                    XMDM=["XM1", "XM2"], XMMC=["卫生院", "学校"], XMLB=["卫生院", "学校"])
    plan = _plan(tmp_path, {"townships": "towns.gpkg", "redline": "red.gpkg",
                            "projects": "projects.gpkg"})
    code = main(["check", str(plan), "--out", str(tmp_path / "out"), "--no-map",
                 "--no-layout", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in out + err
    projects = pyogrio.read_dataframe(tmp_path / "out" / "results.gpkg", layer="projects")
    verdict = dict(zip(projects["project_id"], projects["verdict"], strict=True))
    assert verdict["XM2"] == "error" and verdict["XM1"] != "error"
    assert "non-finite coordinates" in projects.set_index("project_id").loc["XM2", "reasons"]
    assert main(["validate", str(plan), "-q"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for fid in ("redline:1", "projects:1"):
        assert fid in text
    assert "non-finite coordinates" in text


def test_the_extent_and_the_crs_checks_ignore_rejected_features(tmp_path: Path) -> None:
    """Zone choice (``crs = "auto"``) and the zone-prefix check read only features that stay:
    a rejected feature's finite vertices in zone 37 (or at 110.5°E) change neither."""
    _towns(tmp_path)
    write_bad_layer(tmp_path / "red.gpkg", [_square(PREFIXED), _with_sentinel(PREFIXED, "far")],
                    PREFIXED, nan)
    write_bad_layer(tmp_path / "farm.gpkg",
                    [_square("EPSG:4490"), _with_sentinel("EPSG:4490", "far")], "EPSG:4490",
                    inf)
    plan = read_plan(_plan(tmp_path, {"townships": "towns.gpkg", "redline": "red.gpkg",
                                      "farmland": "farm.gpkg"}, extra='crs = "auto"\n'))
    assert plan.crs.to_epsg() == 4545
    assert "spans zones" not in plan.crs_reason
    for role in ("redline", "farmland"):
        lyr = plan.layers[role]
        assert lyr.rejected["feature_id"].tolist() == [f"{role}:1"]
        assert lyr.n_in == 2 and len(lyr.data) == 1


def test_a_townships_layer_whose_every_feature_is_bad_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x0, y0 = LON + 0.01, LAT + 0.01
    s = SENTINEL["EPSG:4490"]
    bad = [shapely.Polygon([(x0, y0), (x0 + 0.01, y0), (s, y0 + 0.01), (x0, y0)]),
           shapely.Polygon([(x0, y0), (x0 + 0.01, y0), (x0 + 0.01, s), (x0, y0)])]
    _towns(tmp_path, bad, inf)
    write_bad_layer(tmp_path / "red.gpkg", [_square("EPSG:4490")], "EPSG:4490", nan)
    plan = _plan(tmp_path, {"townships": "towns.gpkg", "redline": "red.gpkg"})
    with pytest.raises(errors.DataLayerError, match="no usable township: all"):
        read_plan(plan)
    capsys.readouterr()
    for command in (["validate", str(plan), "-q"],
                    ["check", str(plan), "--out", str(tmp_path / "out"), "-q"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.rstrip("\n").splitlines()[-1].startswith("spatialplan: error:")
        err = " ".join(err.split())
        assert "Traceback" not in err and err.count("spatialplan: error:") == 1
        assert "townships:0" in err and "non-finite coordinates" in err


def test_a_control_line_whose_every_feature_is_bad_is_empty_and_accounted(
        tmp_path: Path) -> None:
    _towns(tmp_path)
    write_bad_layer(tmp_path / "red.gpkg", [_with_sentinel(PREFIXED, "x"),
                                            _with_sentinel(PREFIXED, "hole")], PREFIXED, nan)
    plan = read_plan(_plan(tmp_path, {"townships": "towns.gpkg", "redline": "red.gpkg"}))
    red = plan.layers["redline"]
    assert len(red.data) == 0 and red.n_rejected == red.n_in == 2
    assert plan.crs.to_epsg() == 4545  # from the townships


def test_the_crs_checks_refuse_non_finite_bounds_instead_of_crashing() -> None:
    from spatialplan.core.crs import check_zone_prefix

    for bounds in [(X, Y, inf, Y + 1), (nan, Y, X, Y + 1), (-inf, Y, X, Y + 1)]:
        with pytest.raises(errors.CRSError, match="not finite"):
            check_zone_prefix(bounds, PREFIXED)
    check_zone_prefix((nan, nan, nan, nan), PREFIXED)  # no geometry: nothing to check


BUBIAO = ("[属性描述]\n坐标系=2000国家大地坐标系\n几度分带=3\n投影类型=高斯克吕格\n计量单位=米\n"
          "带号=36\n[地块坐标]\n5,1.0,1,示例站,面,,公用设施,1309,@\nJ1,1,3070000,36461000\n"
          "J2,1,3070000,36461100\nJ3,1,3070100,36461100\nJ4,1,3070100,36461000\n"
          "J1,1,3070000,36461000\n")


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
@pytest.mark.parametrize("column", [2, 3])
def test_bubiao_non_finite_coordinate_is_a_line_numbered_error(bad: str, column: int,
                                                              tmp_path: Path) -> None:
    lines = BUBIAO.splitlines()
    fields = lines[10].split(",")  # J3, line 11
    fields[column] = bad
    lines[10] = ",".join(fields)
    path = tmp_path / "site.txt"
    path.write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    with pytest.raises(errors.DataSourceError) as info:
        read_bubiao_txt(path)
    assert "line 11" in str(info.value) and "not a finite number" in str(info.value)


# -- item 12: numeric field values -----------------------------------------------------------


def _projects(tmp: Path, **columns: list) -> Path:
    """A projects GeoPackage of ``n`` valid sites with the given extra columns."""
    n = len(next(iter(columns.values())))
    frame = gpd.GeoDataFrame({
        "XMDM": [f"XM{i}" for i in range(n)], "XMMC": [f"项目{i}" for i in range(n)],
        "XMLB": ["卫生院"] * n, "XZQDM": ["520123001"] * n, **columns,
    }, geometry=[shapely.box(LON + 0.002 * i, LAT, LON + 0.002 * i + 0.001, LAT + 0.001)
                 for i in range(n)], crs="EPSG:4490")
    path = tmp / "projects.gpkg"
    pyogrio.write_dataframe(frame, path)
    return path


INVESTMENTS = [
    ("-1e9", "negative"), ("-0.5万元", "negative"), ("1e308", "above 1e+08"),
    ("200000000", "above 1e+08"), ("inf", "not a finite number"),
    ("Infinity", "not a finite number"), ("1e999", "not a finite number"),
    ("nan", "not a finite number"),
    (-1e9, "negative"), (1e308, "above 1e+08"), (inf, "not a finite number"),
    (-inf, "not a finite number"),
]


@pytest.mark.parametrize(("value", "fragment"), INVESTMENTS,
                         ids=[f"{type(v).__name__}:{v}" for v, _ in INVESTMENTS])
def test_an_investment_out_of_range_is_a_field_error_of_that_project(
        value: object, fragment: str, tmp_path: Path) -> None:
    good = "12.5" if isinstance(value, str) else 12.5
    path = _projects(tmp_path, ZTZ=[good, value, good])
    with pytest.raises(errors.FieldError) as info:
        read_layer(path, role="projects")
    message = str(info.value)
    assert "investment_wan" in message and "projects:1" in message and fragment in message
    assert info.value.feature == "projects:1"
    assert "万元" in (info.value.hint or "")


def test_an_investment_out_of_range_stops_the_cli_naming_the_project(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _towns(tmp_path)
    _projects(tmp_path, ZTZ=["100", "-1e9"])
    plan = _plan(tmp_path, {"townships": "towns.gpkg", "projects": "projects.gpkg"})
    assert main(["check", str(plan), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and err.count("spatialplan: error:") == 1
    assert "projects:1" in err and "investment_wan" in err and "negative" in err
    assert not (tmp_path / "out" / "schedule.xlsx").exists()


def test_accepted_investments_keep_every_schedule_total_finite(tmp_path: Path) -> None:
    """The largest accepted investments (10⁸ 万元 each) add up to finite totals; text with
    units and separators, zero and missing values are read as before."""
    from spatialplan.analysis.schedule import sequence_table

    values = ["1e8", "100000000", "0", "1,250.5万元", "", None]
    path = _projects(tmp_path, ZTZ=values, KSNF=[2025, 2025, 2026, 2026, 2027, None])
    lyr = read_layer(path, role="projects", fields={"start_year": "KSNF"})
    invest = lyr.data["investment_wan"].tolist()
    assert invest[:4] == [1e8, 1e8, 0.0, 1250.5] and all(math.isnan(v) for v in invest[4:])
    table = sequence_table(lyr.data)
    totals = table.loc[table["序号"] == "", "总投资(万元)"].to_numpy(dtype=float)
    assert len(totals) >= 8 and np.isfinite(totals).all()
    assert table.iloc[-1]["总投资(万元)"] == 2e8 + 1250.5


@pytest.mark.parametrize("value", ["inf", "nan", "1e999", "-2025", "20250", "2025.5"])
def test_a_year_that_is_not_a_year_is_a_field_error(value: str, tmp_path: Path) -> None:
    path = _projects(tmp_path, KSNF=["2025", value])
    with pytest.raises(errors.FieldError, match=r"start_year.*projects:1"):
        read_layer(path, role="projects", fields={"start_year": "KSNF"})


# -- item 12: a GBK .dbf without .cpg holding UTF-8 records ----------------------------------


def _gbk_towns(tmp: Path, names: list[str], utf8: dict[int, str] | None = None,
               *, cpg: str | None = None) -> Path:
    """A GBK shapefile of townships named ``names`` (no .cpg unless ``cpg``); then the name
    of each record in ``utf8`` is overwritten, in the .dbf bytes, by that text in UTF-8."""
    n = len(names)
    frame = gpd.GeoDataFrame(
        {"XZQDM": [f"5201230{i:02d}" for i in range(n)], "XZQMC": names,
         "BZ": ["备注文字很长很长很长"] * n},
        geometry=[shapely.box(LON + 0.01 * i, LAT, LON + 0.01 * i + 0.01, LAT + 0.01)
                  for i in range(n)], crs="EPSG:4490")
    shp = tmp / "towns.shp"
    pyogrio.write_dataframe(frame, shp, encoding="GBK")
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    if cpg is not None:
        shp.with_suffix(".cpg").write_text(cpg, encoding="ascii")
    dbf = shp.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    header_len, record_len = struct.unpack("<HH", bytes(data[8:12]))
    width = next(data[pos + 16] for pos in range(32, header_len - 1, 32)
                 if bytes(data[pos:pos + 11]).rstrip(b"\x00") == b"XZQMC")
    for i, text in (utf8 or {}).items():
        start = header_len + i * record_len
        record = bytes(data[start:start + record_len])
        gbk = names[i].encode("gbk")
        offset = record.index(gbk)
        field = text.encode("utf-8").ljust(width, b" ")
        assert len(field) == width, "UTF-8 text longer than the field"
        data[start + offset:start + offset + width] = field
    dbf.write_bytes(bytes(data))
    return shp


def _warnings(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_a_utf8_record_in_a_gbk_dbf_is_named_in_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shp = _gbk_towns(tmp_path, ["示范镇", "中文镇名", "乌江镇"], {1: "中文"})
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        lyr = read_layer(shp, role="townships")
    assert (lyr.source.encoding, lyr.source.encoding_source) == ("GB18030", "detected")
    names = lyr.data["name"].tolist()
    assert names[::2] == ["示范镇", "乌江镇"] and names[1].startswith("涓")  # mojibake, warned
    text = _warnings(caplog)
    assert "townships:1" in text and "UTF-8" in text and "mojibake" in text
    assert "townships:0" not in text and "townships:2" not in text


def test_many_utf8_records_are_counted_and_the_first_named(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    names = [f"示范镇{i}号" for i in range(10)]
    shp = _gbk_towns(tmp_path, names, dict.fromkeys([1, 2, 4, 5, 6, 8, 9], "水田"))
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        read_layer(shp, role="townships", encoding="GBK")  # declared: checked as well
    text = _warnings(caplog)
    assert "7 record(s)" in text and "(7 records)" in text
    assert all(f"townships:{i}," in text for i in (1, 2, 4, 5, 6))
    assert "townships:8" not in text and "townships:0" not in text


@pytest.mark.parametrize("names", [["示范镇", "一", "乌江镇"], ["中文", "水田", "村"]])
def test_a_gbk_dbf_whose_text_happens_to_be_valid_utf8_is_not_flagged(
        names: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """一 in GBK (D2 BB) is valid UTF-8 (Cyrillic shha, U+04BB), so may be a short GBK name: only
    records whose UTF-8 reading is common Chinese are named."""
    shp = _gbk_towns(tmp_path, names)
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        lyr = read_layer(shp, role="townships")
    assert lyr.data["name"].tolist() == names
    assert "mojibake" not in _warnings(caplog)


def test_a_utf8_record_that_is_not_gbk_names_the_record_in_the_error(tmp_path: Path) -> None:
    """示范镇 in UTF-8 (9 bytes) is no GB18030 text: the file is refused, and now the error
    says which record is UTF-8."""
    shp = _gbk_towns(tmp_path, ["示范镇", "中文镇名字", "乌江镇"], {1: "示范镇"})
    with pytest.raises(errors.DataSourceError, match="neither UTF-8 nor GBK") as info:
        read_layer(shp, role="townships")
    assert "mixes encodings" in str(info.value) and "townships:1" in str(info.value)
    assert "townships:0" not in str(info.value)


# -- item 12: a DEM smaller than Horn's 3x3 window -------------------------------------------


def _dem(path: Path, rows: int, cols: int, *, crs: str = "EPSG:4545",
         cell: float = 10.0) -> Path:
    """A valid DEM of ``rows`` x ``cols`` cells over the townships of :func:`_towns`."""
    if crs == "EPSG:4545":
        x0, y0 = 451_000.0, 3_080_000.0
    else:
        x0, y0, cell = LON + 0.01, LAT + 0.04, cell / 100_000
    z = (500.0 + np.arange(rows * cols, dtype="float32").reshape(rows, cols))
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1,
                       dtype="float32", crs=crs, nodata=-9999.0,
                       transform=Affine(cell, 0.0, x0, 0.0, -cell, y0)) as ds:
        ds.write(z, 1)
    return path


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (2, 2), (1, 5), (5, 1), (2, 40)])
@pytest.mark.parametrize("crs", ["EPSG:4545", "EPSG:4490"])
def test_a_dem_smaller_than_3x3_says_slope_needs_3x3_cells(rows: int, cols: int, crs: str,
                                                          tmp_path: Path) -> None:
    from spatialplan.analysis.terrain import read_terrain

    path = _dem(tmp_path / "dem.tif", rows, cols, crs=crs)
    with pytest.raises(errors.RasterError) as info:
        read_terrain(path, crs="EPSG:4545")
    assert (f"slope needs at least 3x3 cells (the DEM has {cols}x{rows} cells, columns x "
            "rows)") in str(info.value)
    assert "no valid cell" not in str(info.value)


def test_a_3x3_dem_has_exactly_one_slope_cell(tmp_path: Path) -> None:
    from spatialplan.analysis.terrain import NODATA, read_terrain

    terrain = read_terrain(_dem(tmp_path / "dem.tif", 3, 3), crs="EPSG:4545")
    assert int((terrain.slope != NODATA).sum()) == 1


@pytest.mark.parametrize("command", ["terrain", "check"])
def test_a_1x1_dem_stops_the_cli_with_the_size(command: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    _towns(tmp_path)
    _projects(tmp_path, ZTZ=["100"])
    _dem(tmp_path / "dem.tif", 1, 1)
    plan = _plan(tmp_path, {"townships": "towns.gpkg", "projects": "projects.gpkg"},
                 extra='[rasters.dem]\npath = "dem.tif"\n')
    args = [command, str(plan), "--out", str(tmp_path / "out"), "-q"]
    assert main(args + (["--no-map", "--no-layout"] if command == "check" else [])) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and err.count("spatialplan: error:") == 1
    assert "slope needs at least 3x3 cells (the DEM has 1x1" in err and "dem.tif" in err


@pytest.mark.parametrize("value", [nan, inf])
def test_a_point_site_with_a_non_finite_coordinate_is_rejected_not_buffered(
        value: float, tmp_path: Path) -> None:
    s = SENTINEL["EPSG:4490"]
    path = write_bad_layer(tmp_path / "sites.gpkg",
                           [shapely.Point(LON, LAT), shapely.Point(LON + 0.01, s)],
                           "EPSG:4490", value, XMDM=["A", "B"], XMMC=["甲", "乙"],
                           XMLB=["卫生院", "学校"])
    lyr = read_layer(path, role="projects", point_radius_m=20.0)
    assert lyr.rejected["feature_id"].tolist() == ["projects:1"]
    assert "non-finite coordinates" in lyr.rejected["reason"].iloc[0]
    assert lyr.repaired["feature_id"].tolist() == ["projects:0"]  # buffered


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_geojson_text_with_nan_or_infinity_tokens_rejects_the_feature(
        token: str, tmp_path: Path) -> None:
    """JSON has no NaN, but GDAL's GeoJSON reader accepts the tokens NaN and Infinity."""
    good = [[LON, LAT], [LON + 0.01, LAT], [LON + 0.01, LAT + 0.01], [LON, LAT]]
    bad = [[LON, LAT], [LON + 0.01, LAT], ["TOKEN", LAT + 0.01], [LON, LAT]]
    features = [{"type": "Feature", "properties": {"n": i},
                 "geometry": {"type": "Polygon", "coordinates": [ring]}}
                for i, ring in enumerate([good, bad, good])]
    text = json.dumps({"type": "FeatureCollection", "features": features})
    path = tmp_path / "red.geojson"
    path.write_text(text.replace('"TOKEN"', token), encoding="utf-8")
    lyr = read_layer(path, role="redline")
    assert lyr.rejected["feature_id"].tolist() == ["redline:1"]
    assert "non-finite coordinates" in lyr.rejected["reason"].iloc[0]
    assert lyr.n_in == 3 and len(lyr.data) == 2


def test_shapely_nan_warning_is_not_passed_on_as_a_layer_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """shapely warns "invalid value encountered in from_wkb" on a NaN: the feature is rejected
    and named, so that warning is not repeated as a warning about the layer."""
    path = write_bad_layer(tmp_path / "red.gpkg", [_square(PREFIXED), _with_sentinel(
        PREFIXED, "x")], PREFIXED, nan)
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        lyr = read_layer(path, role="redline")
    assert lyr.n_rejected == 1 and "invalid value" not in _warnings(caplog)
