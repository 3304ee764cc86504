"""Tests for spatialplan.io.bubiao (部标坐标 TXT) and the ``import-txt`` command."""

from __future__ import annotations

import logging
import math

import pyogrio
import pytest
from conftest import DATA_DIR
from hypothesis import given, settings
from hypothesis import strategies as st

from spatialplan.cli import main
from spatialplan.errors import CRSError, DataSourceError, GeometryError
from spatialplan.io.bubiao import bubiao_crs, read_bubiao_txt

SAMPLE = DATA_DIR / "sample_site_bubiao_gbk.txt"

HEADER = ["[属性描述]", "坐标系=2000国家大地坐标系", "几度分带=3", "投影类型=高斯克吕格",
          "计量单位=米", "带号=36", "[地块坐标]"]  # lines 1-7; the first parcel header is line 8


def square(x0=3070000.0, y0=36461000.0, size=100.0, *, ring=1, start=1, close=True):
    pts = [(x0, y0), (x0, y0 + size), (x0 + size, y0 + size), (x0 + size, y0)]
    if close:
        pts.append(pts[0])
    return [f"J{start + i},{ring},{x:.3f},{y:.3f}" for i, (x, y) in enumerate(pts)]


def parcel(vertices, *, no="1", area="1.0000", landuse="1309", count=None):
    n = len(vertices) if count is None else count
    return [f"{n},{area},{no},地块{no},面,,公用设施,{landuse},@", *vertices]


def write(tmp_path, lines, *, encoding="utf-8", name="site.txt", newline="\r\n"):
    path = tmp_path / name
    path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    return path


# ----- the real-layout sample (tests/data) ------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    return read_bubiao_txt(SAMPLE)


def test_sample_parcels_areas_crs(sample):
    assert sample.crs.to_epsg() == 4524
    assert list(sample.columns) == ["parcel_no", "name", "use", "landuse", "declared_area_m2",
                                    "area_m2", "area_mismatch", "n_points", "source_line",
                                    "geometry"]
    assert sample["parcel_no"].tolist() == ["1", "2"]
    assert sample["name"].tolist() == ["示例镇污水处理厂", "示例镇垃圾转运站"]
    assert sample["landuse"].tolist() == ["1302", "1309"]
    assert sample["area_m2"].tolist() == pytest.approx([15_000.0, 9_400.0])
    assert sample["declared_area_m2"].tolist() == pytest.approx([15_000.0, 7_600.0])
    assert sample["area_mismatch"].tolist() == [False, True]
    assert sample["n_points"].tolist() == [5, 10]
    assert sample["source_line"].tolist() == [13, 19]
    assert sample.attrs["encoding"] == "GB18030"
    assert sample.attrs["header"]["带号"] == "36"


def test_sample_geometry_axes_and_hole(sample):
    first, second = sample.geometry
    minx, miny, maxx, maxy = first.bounds
    assert (minx, miny, maxx, maxy) == (36461000.0, 3070000.0, 36461150.0, 3070100.0)
    assert len(second.interiors) == 1
    assert second.exterior.is_ccw and not second.interiors[0].is_ccw
    assert all(g.is_valid for g in sample.geometry)


def test_sample_mismatch_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="spatialplan.io.bubiao"):
        read_bubiao_txt(SAMPLE)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and "parcel 2" in messages[0] and "line 19" in messages[0]


@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", False), ("utf-8", True)])
def test_utf8_variant(tmp_path, sample, encoding, bom):
    text = SAMPLE.read_bytes().decode("gbk")
    data = text.encode(encoding)
    path = tmp_path / "site_utf8.txt"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    sites = read_bubiao_txt(path)
    assert sites.attrs["encoding"] == "UTF-8"
    assert sites["name"].tolist() == sample["name"].tolist()
    assert sites["area_m2"].tolist() == pytest.approx(sample["area_m2"].tolist())


def test_explicit_encoding_wins(tmp_path):
    assert read_bubiao_txt(SAMPLE, encoding="GBK")["name"].iloc[0] == "示例镇污水处理厂"
    with pytest.raises(DataSourceError, match=r"line 1: cannot be decoded as utf-8"):
        read_bubiao_txt(SAMPLE, encoding="utf-8")
    with pytest.raises(DataSourceError, match="unknown encoding"):
        read_bubiao_txt(SAMPLE, encoding="no-such-codec")


# ----- CRS --------------------------------------------------------------------------------------

def test_unprefixed_easting_uses_header_zone(tmp_path):
    path = write(tmp_path, HEADER + parcel(square(y0=461000.0)))
    sites = read_bubiao_txt(path)
    assert sites.crs.to_epsg() == 4545
    assert sites.geometry.iloc[0].bounds[0] == 461000.0
    assert sites["area_m2"].iloc[0] == pytest.approx(10_000.0)
    assert "header 带号" in sites.attrs["crs_reason"]


def test_unprefixed_without_zone_is_refused(tmp_path):
    header = [h for h in HEADER if not h.startswith("带号")]
    path = write(tmp_path, header + parcel(square(y0=461000.0)))
    with pytest.raises(CRSError, match="line 8: eastings carry no zone prefix"):
        read_bubiao_txt(path)


def test_prefix_without_header_zone(tmp_path):
    header = [h for h in HEADER if not h.startswith("带号")]
    path = write(tmp_path, header + parcel(square(y0=35461000.0)))
    assert read_bubiao_txt(path).crs.to_epsg() == 4523


def test_header_zone_disagrees_with_prefix(tmp_path):
    path = write(tmp_path, HEADER + parcel(square(y0=35461000.0)))
    with pytest.raises(CRSError, match="line 6: 带号=36 disagrees"):
        read_bubiao_txt(path)


@pytest.mark.parametrize("datum", ["1980西安坐标系", "西安80", "1954北京坐标系", "北京54"])
def test_old_datums_refused(tmp_path, datum):
    header = [f"坐标系={datum}" if h.startswith("坐标系") else h for h in HEADER]
    path = write(tmp_path, header + parcel(square()))
    with pytest.raises(CRSError, match=r"line 2: .*refused: no datum transformation"):
        read_bubiao_txt(path)


@pytest.mark.parametrize(("line", "match"), [
    ("几度分带=6", "only 3-degree"),
    ("坐标系=WGS84", "unsupported coordinate system"),
    ("计量单位=度", "metres"),
])
def test_other_crs_problems(tmp_path, line, match):
    key = line.split("=")[0]
    header = [line if h.startswith(key) else h for h in HEADER]
    with pytest.raises(CRSError, match=match):
        read_bubiao_txt(write(tmp_path, header + parcel(square())))


def test_missing_coordinate_system(tmp_path):
    header = [h for h in HEADER if not h.startswith("坐标系")]
    with pytest.raises(CRSError, match="坐标系"):
        read_bubiao_txt(write(tmp_path, header + parcel(square())))


def test_bubiao_crs():
    assert bubiao_crs(35, prefixed=True) == "EPSG:4523"
    assert bubiao_crs(37, prefixed=False) == "EPSG:4546"
    with pytest.raises(CRSError):
        bubiao_crs(19, prefixed=True)


# ----- parsing details --------------------------------------------------------------------------

def test_ring_closed_and_several_parcels(tmp_path):
    lines = HEADER + parcel(square(close=False), no="A") + parcel(
        square(x0=3071000.0, size=50.0), no="B", area="0.2500")
    sites = read_bubiao_txt(write(tmp_path, lines, newline="\n"))
    assert sites["parcel_no"].tolist() == ["A", "B"]
    assert sites["area_m2"].tolist() == pytest.approx([10_000.0, 2_500.0])
    assert sites["area_mismatch"].tolist() == [False, False]
    assert sites["source_line"].tolist() == [8, 13]
    assert sites.geometry.iloc[0].exterior.is_closed


def test_blank_declared_area_not_flagged(tmp_path):
    sites = read_bubiao_txt(write(tmp_path, HEADER + parcel(square(), area="")))
    assert math.isnan(sites["declared_area_m2"].iloc[0])
    assert not sites["area_mismatch"].iloc[0]


def test_clockwise_hole_input_and_eight_field_header(tmp_path):
    hole = square(x0=3070020.0, y0=36461020.0, size=10.0, ring=2, start=6)[::-1]
    lines = [*HEADER, "10,0.99,7,老格式,面,,公用设施,@", *square(), *hole]
    sites = read_bubiao_txt(write(tmp_path, lines))
    assert sites["landuse"].iloc[0] == ""
    assert sites["area_m2"].iloc[0] == pytest.approx(9_900.0)


@settings(max_examples=25, deadline=None)
@given(w=st.floats(1, 2000), h=st.floats(1, 2000), zone=st.sampled_from([35, 36, 37]))
def test_rectangle_area_invariant(tmp_path_factory, w, h, zone):
    x0, y0 = 3_000_000.0, zone * 1_000_000 + 400_000.0
    pts = [(x0, y0), (x0, y0 + w), (x0 + h, y0 + w), (x0 + h, y0)]
    ring = [f"J{i},1,{x:.3f},{y:.3f}" for i, (x, y) in enumerate(pts, 1)]
    lines = [*HEADER[:-2], f"带号={zone}", "[地块坐标]", *parcel(ring, area=f"{w * h / 10000:.6f}")]
    sites = read_bubiao_txt(write(tmp_path_factory.mktemp("h"), lines))
    assert sites.crs.to_epsg() == 4488 + zone
    assert sites["area_m2"].iloc[0] == pytest.approx(round(w, 3) * round(h, 3), rel=1e-6)
    assert not sites["area_mismatch"].iloc[0]


# ----- malformed files: the error names the line -------------------------------------------------

def _bowtie():
    return ["J1,1,3070000,36461000", "J2,1,3070100,36461100", "J3,1,3070000,36461100",
            "J4,1,3070100,36461000", "J1,1,3070000,36461000"]


MALFORMED = {
    "bad number": (HEADER + parcel([*square()[:2], "J3,1,30701OO.000,36461100.000",
                                    *square()[3:]]), DataSourceError, "line 11: X"),
    "bad ring number": (HEADER + parcel(["J1,a,3070000,36461000", *square()[1:]]),
                        DataSourceError, "line 9: ring number"),
    "bad point count": (HEADER + parcel(square(), count=6), DataSourceError,
                        "line 8: parcel 1 header says 6 points but 5"),
    "bad area": (HEADER + parcel(square(), area="1,5"), DataSourceError, "line 8: parcel header"),
    "missing coordinate section": (HEADER[:-1], DataSourceError,
                                   r"line 6: missing section \[地块坐标\]"),
    "missing header section": (HEADER[1:], DataSourceError, "line 1: text before the first"),
    "empty coordinate section": (HEADER, DataSourceError, "holds no parcel"),
    "vertex before header": (HEADER + square(), DataSourceError, "line 8: vertex line before"),
    "short vertex line": (HEADER + parcel([*square()[:4], "J1,1,3070000"]), DataSourceError,
                          "line 13: vertex line has 3 fields"),
    "bad header line": ([*HEADER[:2], "垃圾行", *HEADER[2:], *parcel(square())], DataSourceError,
                        "line 3: expected key=value"),
    "two points": (HEADER + parcel(["J1,1,3070000,36461000", "J2,1,3070000,36461100",
                                    "J3,1,3070000,36461000"]), GeometryError,
                   "line 9: parcel 1: ring 1 has fewer than 3 distinct points"),
    "inconsistent prefix": (HEADER + parcel([*square()[:2], "J3,1,3070100.000,461100.000",
                                             *square()[3:]]), DataSourceError,
                            "line 11: inconsistent zone prefix"),
    "hole outside": (HEADER + parcel(square() + square(x0=3080000.0, ring=2, start=6)),
                     GeometryError, "line 14: parcel 1: ring 2 is not inside"),
    "ring resumes": (HEADER + parcel([*square()[:2], "J9,2,3070050,36461050", *square()[2:]]),
                     DataSourceError, "line 12: parcel 1: ring 1 resumes"),
    "no exterior": (HEADER + parcel(square(ring=2)), DataSourceError, "line 9: .*expected the "
                    "exterior ring 1"),
    "bow-tie": (HEADER + parcel(_bowtie(), no="X7"), GeometryError,
                "line 8: parcel X7 is not a valid polygon: Self-intersection"),
    "swapped axes": (HEADER + parcel([",".join([p.split(",")[0], "1", p.split(",")[3],
                                                p.split(",")[2]]) for p in square()]),
                     CRSError, "line 9: the easting's zone prefix 3 .*swapped"),
    "local coordinates": (HEADER + parcel(square(x0=1000.0, y0=461000.0)), DataSourceError,
                          "line 9: northing X=1000.000 is outside China"),
    "easting out of zone": (HEADER + parcel(square(y0=36961000.0)), DataSourceError,
                            "line 9: easting Y=36961000.000"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed(tmp_path, case):
    lines, error, match = MALFORMED[case]
    with pytest.raises(error, match=match) as err:
        read_bubiao_txt(write(tmp_path, lines))
    assert str(tmp_path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataSourceError, match="cannot read"):
        read_bubiao_txt(tmp_path / "nope.txt")


# ----- CLI --------------------------------------------------------------------------------------

def test_cli_import_txt(tmp_path, capsys):
    out = tmp_path / "sites.gpkg"
    assert main(["import-txt", str(SAMPLE), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "EPSG:4524" in stdout and "parcels: 2" in stdout
    assert "area mismatches (> 1%): 1" in stdout and "9,400.0 m²" in stdout
    assert pyogrio.list_layers(out)[:, 0].tolist() == ["sites"]
    back = pyogrio.read_dataframe(out, layer="sites")
    assert back.crs.to_epsg() == 4524
    assert back["area_m2"].tolist() == pytest.approx([15_000.0, 9_400.0])
    assert back["landuse"].tolist() == ["1302", "1309"]
    assert back["area_mismatch"].tolist() == [False, True]


def test_cli_refuses_overwrite_then_allows_it(tmp_path, capsys):
    out = tmp_path / "sites.gpkg"
    assert main(["import-txt", str(SAMPLE), "--out", str(out), "--layer", "a"]) == 0
    assert main(["import-txt", str(SAMPLE), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["import-txt", str(SAMPLE), "--out", str(out), "--overwrite",
                 "--encoding", "GBK", "--layer", "b"]) == 0
    assert pyogrio.list_layers(out)[:, 0].tolist() == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["sites.gpkg"]  # no temporary left


def test_cli_bad_file_exits_2_without_traceback(tmp_path, capsys):
    bad = write(tmp_path, HEADER + parcel(square(), count=4))
    out = tmp_path / "sites.gpkg"
    assert main(["import-txt", str(bad), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("spatialplan: error: line 8:")
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()
    assert main(["import-txt", str(bad), "--out", str(tmp_path / "x.shp")]) == 2
