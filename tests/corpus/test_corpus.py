"""Malformed-input corpus: every case through the API and through the CLI.

Each case builds its input in code (GeoJSON text, WKB through pyogrio, raw bytes) inside
``tmp_path`` and states one expected outcome:

- :class:`Err`: a specific :mod:`spatialplan.errors` class and message fragment; the CLI exits 2
  with ``spatialplan: error:``, the same fragment and the names of the file / layer / feature,
  and never a traceback;
- :class:`Rec`: a recorded repair or rejection of one feature (``Layer.repaired`` /
  ``Layer.rejected``); ``spatialplan validate`` exits 0 and shows the feature and the reason;
- :class:`Ok`: the input is accepted and a check on the API result holds (e.g. an encoding was
  detected, two CRSs were reprojected); the CLI exits 0 and shows the given text.

Cases are grouped: geometry, CRS, encoding and files, fields, raster, plan and rulebook, 部标
TXT. ``CASES`` is the corpus; ``test_corpus_size`` keeps it at 60 cases or more.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from conftest import DATA_DIR

from spatialplan import errors
from spatialplan.analysis.overlay import line_conflicts, township_stats
from spatialplan.analysis.terrain import read_terrain, site_slope_stats
from spatialplan.cli import main
from spatialplan.core.crs import detect_gcj02_offset
from spatialplan.io.bubiao import read_bubiao_txt
from spatialplan.io.output import check_output_dir
from spatialplan.io.read import read_layer, read_plan
from spatialplan.rules.rulebook import read_rules

LON, LAT = 107.5, 27.8
D = 0.01  # feature size in degrees (~1 km)
GK36 = "EPSG:4545"  # CGCS2000 GK CM 108°E, no prefix


# -- outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Err:
    """The API raises ``cls`` with ``fragment``; the CLI exits 2 naming ``names``."""

    cls: type[errors.SpatialPlanError]
    fragment: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rec:
    """Feature ``feature`` of ``role`` is ``kind`` (repaired/rejected) with ``fragment``."""

    role: str
    feature: str
    kind: str
    fragment: str


@dataclass(frozen=True)
class Ok:
    """Accepted; ``check(result)`` holds and the CLI output contains ``shown``."""

    check: Callable[[Any], bool]
    shown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """One malformed input: how to build it, how to run it, what must happen."""

    id: str
    build: Callable[[Path], Path]
    expect: Err | Rec | Ok
    api: Callable[[Path], Any] = field(default=lambda p: read_plan(p))
    cli: Callable[[Path], list[str]] = field(default=lambda p: ["validate", str(p), "-q"])


# -- builders --------------------------------------------------------------------------------


def square(x: float = LON, y: float = LAT, size: float = D) -> shapely.Polygon:
    return shapely.box(x, y, x + size, y + size)


def ring(*pts: tuple[float, float]) -> list[list[float]]:
    """Coordinates of a ring from offsets (in units of D) around (LON, LAT)."""
    return [[LON + dx * D, LAT + dy * D] for dx, dy in pts]


SQUARE_RING = ring((0, 0), (1, 0), (1, 1), (0, 1), (0, 0))


def geojson(path: Path, geometries: list[dict | None], props: list[dict] | None = None) -> Path:
    """Write a GeoJSON FeatureCollection as text (shapely cannot build some of these)."""
    props = props or [{} for _ in geometries]
    feats = [{"type": "Feature", "properties": p, "geometry": g}
             for g, p in zip(geometries, props, strict=True)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}),
                    encoding="utf-8")
    return path


def poly(*rings: list) -> dict:
    return {"type": "Polygon", "coordinates": list(rings)}


def write_plan(folder: Path, layers: dict[str, str], *, extra: str = "") -> Path:
    """plan.toml naming ``layers`` (role → TOML body lines of the table)."""
    text = '[plan]\nname = "corpus"\n' + extra
    for role, body in layers.items():
        text += f"\n[layers.{role}]\n{body}\n"
    plan = folder / "plan.toml"
    plan.write_text(text, encoding="utf-8")
    return plan


def geometry_case(*bad: dict | None, role: str = "redline", extra_body: str = "",
                  props: list[dict] | None = None) -> Callable[[Path], Path]:
    """A plan with one layer: a good square (feature 0) then the ``bad`` geometries."""

    def build(tmp: Path) -> Path:
        geojson(tmp / f"{role}.geojson", [poly(SQUARE_RING), *bad], props)
        return write_plan(tmp, {role: f'path = "{role}.geojson"\n{extra_body}'})

    return build


def gdf_case(frame: Callable[[], gpd.GeoDataFrame], *, role: str = "redline",
             name: str = "layer.gpkg", body: str = "",
             townships: bool = False, **write: Any) -> Callable[[Path], Path]:
    """A plan with one layer written by pyogrio (and optionally the default townships)."""

    def build(tmp: Path) -> Path:
        pyogrio.write_dataframe(frame(), tmp / name, **write)
        layers = {}
        if townships:
            pyogrio.write_dataframe(towns(), tmp / "towns.gpkg")
            layers["townships"] = 'path = "towns.gpkg"'
        layers[role] = f'path = "{name}"\n{body}'
        return write_plan(tmp, layers)

    return build


def towns(crs: str = "EPSG:4490") -> gpd.GeoDataFrame:
    g = gpd.GeoDataFrame({"XZQDM": ["520123001"], "XZQMC": ["示范镇"]},
                         geometry=[square(size=5 * D)], crs="EPSG:4490")
    return g.to_crs(crs)


def lines(crs: str = "EPSG:4490", n: int = 1) -> gpd.GeoDataFrame:
    g = gpd.GeoDataFrame(geometry=[square(LON + i * 2 * D) for i in range(n)], crs="EPSG:4490")
    return g.to_crs(crs)


def projects(**columns: list) -> gpd.GeoDataFrame:
    n = len(next(iter(columns.values()))) if columns else 2
    data = {"XMDM": [f"XM{i}" for i in range(n)], "XMMC": [f"项目{i}" for i in range(n)],
            "XMLB": ["卫生院"] * n}
    data.update(columns)
    return gpd.GeoDataFrame(data, geometry=[square(LON + i * 2 * D) for i in range(n)],
                            crs="EPSG:4490")


def with_crs(frame: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """Declare ``crs`` without transforming (a wrong .prj)."""
    return frame.set_crs(crs, allow_override=True)


def shifted(frame: gpd.GeoDataFrame, dx: float, dy: float = 0.0) -> gpd.GeoDataFrame:
    out = frame.copy()
    out.geometry = shapely.transform(out.geometry.values, lambda c: c + np.array([dx, dy]))
    return out


def swapped(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.copy()
    out.geometry = shapely.transform(out.geometry.values, lambda c: c[:, ::-1])
    return out


def shapefile(tmp: Path, frame: gpd.GeoDataFrame, *, encoding: str = "GBK",
              drop: tuple[str, ...] = (), cpg: str | None = None, name: str = "towns") -> Path:
    """Write ``frame`` as a shapefile, then remove sidecars / rewrite the .cpg."""
    shp = tmp / f"{name}.shp"
    pyogrio.write_dataframe(frame, shp, encoding=encoding)
    for suffix in drop:
        shp.with_suffix(suffix).unlink(missing_ok=True)
    if cpg is not None:
        shp.with_suffix(".cpg").write_text(cpg, encoding="ascii")
    return shp


def shp_case(frame: Callable[[], gpd.GeoDataFrame], *, role: str = "townships",
             body: str = "", **kw: Any) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        shapefile(tmp, frame(), **kw)
        return write_plan(tmp, {role: f'path = "towns.shp"\n{body}'})

    return build


def file_case(name: str, content: bytes | Callable[[Path], None], *, role: str = "redline",
              body: str = "") -> Callable[[Path], Path]:
    """A plan whose layer file is ``content`` (raw bytes, or written by a function)."""

    def build(tmp: Path) -> Path:
        target = tmp / name
        if callable(content):
            content(target)
        else:
            target.write_bytes(content)
        return write_plan(tmp, {role: f'path = "{name}"\n{body}'})

    return build


def gpkg_bytes(tmp: Path) -> bytes:
    path = tmp / "_good.gpkg"
    pyogrio.write_dataframe(lines(n=40), path)
    data = path.read_bytes()
    path.unlink()
    return data


def truncated_gpkg(target: Path) -> None:
    data = gpkg_bytes(target.parent)
    target.write_bytes(data[: len(data) // 2])


def corrupted_gpkg(target: Path) -> None:
    """Overwrite 32 bytes of the second page: GDAL then reads 31 of 40 features, no error."""
    data = bytearray(gpkg_bytes(target.parent))
    page = int.from_bytes(data[16:18], "big")
    data[page + 8: page + 40] = b"\xa5" * 32
    target.write_bytes(bytes(data))


def vrt_text(target: Path, source: str = "towns.gpkg") -> str:
    pyogrio.write_dataframe(towns(), target.parent / source)
    return (f'<OGRVRTDataSource><OGRVRTLayer name="t"><SrcDataSource relativeToVRT="1">'
            f"{source}</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")


def raw_plan(text: str | bytes) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        pyogrio.write_dataframe(lines(), tmp / "red.gpkg")
        plan = tmp / "plan.toml"
        if isinstance(text, bytes):
            plan.write_bytes(text)
        else:
            plan.write_text(text.replace("RED", 'path = "red.gpkg"'), encoding="utf-8")
        return plan

    return build


def rules_api(plan: Path) -> dict:
    return read_rules(plan.parent / "rules.toml")


def rules_case(text: str) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        (tmp / "rules.toml").write_text(text, encoding="utf-8")
        pyogrio.write_dataframe(lines(), tmp / "red.gpkg")
        return write_plan(tmp, {"redline": 'path = "red.gpkg"'},
                          extra='[rules]\npath = "rules.toml"\n')

    return build


# rasters: a 60 x 60 DEM of 10 m cells in EPSG:4545 around the townships


def _dem_origin() -> tuple[float, float]:
    x, y = towns(GK36).total_bounds[[0, 3]]
    return float(x) + 200.0, float(y) - 200.0


def write_dem(path: Path, *, crs: str | None = GK36, nodata: float | None = -9999.0,
              hole: tuple[slice, slice] | None = None, offset_m: float = 0.0) -> Path:
    x0, y0 = _dem_origin()
    rows = np.arange(60, dtype="float32")[:, None]
    cols = np.arange(60, dtype="float32")[None, :]
    z = (500.0 + 3.0 * rows + 2.0 * cols).astype("float32")
    if hole is not None:
        z[hole] = nodata
    with rasterio.open(path, "w", driver="GTiff", width=60, height=60, count=1,
                       dtype="float32", crs=crs, nodata=nodata,
                       transform=Affine(10.0, 0.0, x0 + offset_m, 0.0, -10.0, y0)) as ds:
        ds.write(z, 1)
    return path


def site_in_dem(dx: float = 150.0, size: float = 200.0) -> gpd.GeoDataFrame:
    x0, y0 = _dem_origin()
    return gpd.GeoDataFrame({"feature_id": ["projects:0"]},
                            geometry=[shapely.box(x0 + dx, y0 - dx - size, x0 + dx + size,
                                                  y0 - dx)], crs=GK36)


def dem_plan(**dem: Any) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        pyogrio.write_dataframe(towns(), tmp / "towns.gpkg")
        write_dem(tmp / "dem.tif", **dem)
        return write_plan(tmp, {"townships": 'path = "towns.gpkg"'},
                          extra='[rasters.dem]\npath = "dem.tif"\n')

    return build


def terrain_cli(p: Path) -> list[str]:
    return ["terrain", str(p), "--out", str(p.parent / "out"), "-q"]


def dem_path(p: Path) -> Path:
    return p.parent / "dem.tif"


# 部标 TXT


BUBIAO_HEADER = ("[属性描述]\n坐标系=2000国家大地坐标系\n几度分带=3\n投影类型=高斯克吕格\n"
                 "计量单位=米\n带号=36\n[地块坐标]\n")
BUBIAO_PARCEL = ("5,1.0,1,示例站,面,,公用设施,1309,@\nJ1,1,3070000,36461000\n"
                 "J2,1,3070000,36461100\nJ3,1,3070100,36461100\nJ4,1,3070100,36461000\n"
                 "J1,1,3070000,36461000\n")


def txt_case(text: str, *, encoding: str = "gbk") -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "site.txt"
        path.write_bytes(text.encode(encoding))
        return path

    return build


def import_cli(p: Path) -> list[str]:
    return ["import-txt", str(p), "--out", str(p.parent / "sites.gpkg")]


# -- checks on results -----------------------------------------------------------------------


def layer(plan: Any, role: str) -> Any:
    return plan.layers[role]


def accounted(plan: Any) -> bool:
    return all(lyr.n_in == lyr.n_ok + lyr.n_repaired + lyr.n_rejected
               for lyr in plan.layers.values())


def two_crs_areas_agree(plan: Any) -> bool:
    a, b = (float(plan.layers[r].data.area.sum()) for r in ("redline", "farmland"))
    return plan.crs.to_epsg() == 4545 and accounted(plan) and abs(a - b) < 1e-3 * a


def gcj_case(which: str) -> Callable[[Path], Path]:
    """花溪区 outline (``which``: gcj02 or wgs84) beside the WGS84 reference outline.

    The CLI side reads the outline as a layer: it is accepted (GCJ-02 cannot be recognised
    without a reference, see :func:`spatialplan.core.crs.detect_gcj02_offset`).
    """

    def build(tmp: Path) -> Path:
        shutil.copy(DATA_DIR / f"huaxi_520111_{which}.geojson", tmp / "outline.geojson")
        shutil.copy(DATA_DIR / "huaxi_520111_wgs84.geojson", tmp / "reference.geojson")
        return write_plan(tmp, {"redline": 'path = "outline.geojson"'})

    return build


# -- the corpus ------------------------------------------------------------------------------

BOWTIE = ring((0, 0), (1, 1), (1, 0), (0, 1), (0, 0))
SELF_TOUCH = ring((0, 0), (2, 0), (1, 1), (2, 2), (0, 2), (1, 1), (0, 0))
SPIKE = ring((0, 0), (1, 0), (1, .5), (2, .5), (1, .5), (1, 1), (0, 1), (0, 0))
UNCLOSED = ring((0, 0), (1, 0), (1, 1), (0, 1))
TOO_SHORT = ring((0, 0), (1, 0), (0, 0))
OVERLAPPING_SHELLS = {"type": "MultiPolygon", "coordinates": [
    [ring((0, 0), (2, 0), (2, 2), (0, 2), (0, 0))], [ring((1, 1), (3, 1), (3, 3), (1, 3), (1, 1))]]}
HOLE_OUTSIDE = poly(ring((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)),
                    ring((3, 3), (4, 3), (4, 4), (3, 4), (3, 3)))


def nan_polygon() -> shapely.Polygon:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shapely warns on NaN coordinates
        return shapely.Polygon([(LON, LAT), (LON + D, LAT), (np.nan, LAT + D), (LON, LAT)])


def _gc(*parts: dict) -> dict:
    return {"type": "GeometryCollection", "geometries": list(parts)}


LINE = {"type": "LineString", "coordinates": ring((0, 0), (1, 1))}
POINT = {"type": "Point", "coordinates": [LON, LAT]}

GEOMETRY = [
    Case("bowtie", geometry_case(poly(BOWTIE)),
         Rec("redline", "redline:1", "repaired", "Self-intersection")),
    Case("self-touching-ring", geometry_case(poly(SELF_TOUCH)),
         Rec("redline", "redline:1", "repaired", "Ring Self-intersection")),
    Case("spike", geometry_case(poly(SPIKE)),
         Rec("redline", "redline:1", "repaired", "repaired with make_valid")),
    Case("unclosed-ring", geometry_case(poly(UNCLOSED)),
         Rec("redline", "redline:1", "rejected", "unreadable geometry")),
    Case("too-short-ring", geometry_case(poly(TOO_SHORT)),
         Rec("redline", "redline:1", "rejected", "Too few points")),
    Case("none-geometry", geometry_case(None),
         Rec("redline", "redline:1", "rejected", "geometry is missing")),
    Case("empty-geometry", geometry_case(poly()),
         Rec("redline", "redline:1", "rejected", "geometry is empty")),
    Case("collection-with-polygon", geometry_case(_gc(poly(SQUARE_RING), LINE)),
         Rec("redline", "redline:1", "repaired", "non-polygonal parts dropped")),
    Case("collection-without-polygon", geometry_case(_gc(LINE, POINT)),
         Rec("redline", "redline:1", "rejected", "without polygonal parts")),
    Case("point-in-polygon-layer", geometry_case(POINT),
         Rec("redline", "redline:1", "rejected", "Point in a polygon layer")),
    Case("line-in-polygon-layer", geometry_case(LINE),
         Rec("redline", "redline:1", "rejected", "LineString in a polygon layer")),
    Case("point-site-buffered", geometry_case(
        POINT, role="projects", extra_body="point_radius_m = 30",
        props=[{"XMDM": "A", "XMMC": "a", "XMLB": "卫生院"},
               {"XMDM": "B", "XMMC": "b", "XMLB": "学校"}]),
         Rec("projects", "projects:1", "repaired", "buffered to point_radius_m = 30")),
    Case("overlapping-shells", geometry_case(OVERLAPPING_SHELLS),
         Rec("redline", "redline:1", "rejected", "would change the area")),
    Case("hole-outside-shell", geometry_case(HOLE_OUTSIDE),
         Rec("redline", "redline:1", "rejected", "turn the hole into land")),
    Case("nan-coordinate", gdf_case(lambda: gpd.GeoDataFrame(geometry=[
        square(), nan_polygon()], crs="EPSG:4490")),
         Rec("redline", "redline:1", "rejected", "non-finite coordinates")),
    Case("z-coordinates", geometry_case(poly([[x, y, 1200.0] for x, y in SQUARE_RING])),
         Ok(lambda p: layer(p, "redline").source.n_zm_dropped == 1
            and not layer(p, "redline").data.has_z.any(), ("n_zm_dropped",))),
    Case("m-coordinates", geometry_case(poly([[x, y, 1.0, 7.0] for x, y in SQUARE_RING])),
         Ok(lambda p: layer(p, "redline").source.n_zm_dropped == 1
            and not layer(p, "redline").data.has_z.any(), ("n_zm_dropped",))),
    Case("duplicate-project-id", gdf_case(lambda: projects(XMDM=["XM1", "XM1", "XM2"]),
                                          role="projects"),
         Rec("projects", "projects:1", "rejected", "duplicate project_id 'XM1'")),
    Case("duplicate-township-code", gdf_case(lambda: gpd.GeoDataFrame(
        {"XZQDM": ["520123001"] * 2, "XZQMC": ["甲镇", "乙镇"]},
        geometry=[square(), square(LON + 2 * D)], crs="EPSG:4490"), role="townships"),
         Err(errors.FieldError, "duplicate township code '520123001'",
             ("layer.gpkg", "townships:1"))),
    Case("near-coincident-edges", gdf_case(lambda: gpd.GeoDataFrame(geometry=[
        square(), shapely.box(LON + D + 1e-12, LAT, LON + 2 * D, LAT + D)], crs="EPSG:4490")),
         Ok(lambda p: line_conflicts(redline=layer(p, "redline").data).empty,
            ("n_rejected",)),
         ),
    Case("site-touches-redline-edge", gdf_case(
        lambda: gpd.GeoDataFrame({"XZQDM": ["1"], "XZQMC": ["甲"]},
                                 geometry=[shapely.box(LON + D, LAT, LON + 2 * D, LAT + D)],
                                 crs="EPSG:4490"), role="townships", name="t.gpkg"),
         Ok(lambda p: float(township_stats(
             layer(p, "townships").data,
             redline=lines(GK36).assign(feature_id="redline:0"))["redline_m2"].iloc[0]) == 0.0,
            ("townships",))),
]

CRS = [
    Case("missing-prj", shp_case(towns, drop=(".prj",)),
         Err(errors.CRSError, "layer has no CRS", ("towns.shp", "townships"))),
    Case("missing-prj-assumed", shp_case(towns, drop=(".prj",), body='assume_crs = "EPSG:4490"'),
         Ok(lambda p: layer(p, "townships").source.crs_source == "assumed", ("assumed",))),
    Case("metres-declared-degrees", gdf_case(lambda: with_crs(lines(GK36), "EPSG:4490")),
         Err(errors.CRSError, "look projected", ("layer.gpkg", "redline"))),
    Case("degrees-declared-metres", gdf_case(lambda: with_crs(lines(), GK36)),
         Err(errors.CRSError, "fall outside China", ("layer.gpkg", "redline"))),
    Case("outside-area-of-use", gdf_case(lambda: with_crs(lines(GK36), "EPSG:2326")),
         Err(errors.CRSError, "outside the area of use", ("layer.gpkg", "redline"))),
    Case("wrong-zone-far-from-townships",
         gdf_case(lambda: with_crs(lines(GK36), "EPSG:4544"), townships=True),
         Err(errors.CRSError, "km from the townships", ("layer.gpkg", "redline"))),
    Case("latlon-swapped", gdf_case(lambda: swapped(lines())),
         Err(errors.CRSError, "longitude and latitude are swapped", ("layer.gpkg",))),
    Case("prefixed-eastings-unprefixed-crs", gdf_case(lambda: shifted(lines(GK36), 36e6)),
         Err(errors.CRSError, "EPSG:4524", ("layer.gpkg", "redline"))),
    Case("unprefixed-eastings-prefixed-crs",
         gdf_case(lambda: with_crs(lines(GK36), "EPSG:4524")),
         Err(errors.CRSError, "expects zone-prefixed eastings", ("layer.gpkg",))),
    Case("prefixed-eastings-prefixed-crs", gdf_case(lambda: lines("EPSG:4524")),
         Ok(lambda p: p.crs.to_epsg() == 4545 and layer(p, "redline").source.crs.to_epsg()
            == 4524, ("EPSG:4524",))),
    Case("xian80", gdf_case(lambda: lines("EPSG:4610")),
         Err(errors.CRSError, "ballpark", ("layer.gpkg", "redline"))),
    Case("beijing54-gk", gdf_case(lambda: with_crs(lines(GK36), "EPSG:2435")),
         Err(errors.CRSError, "Beijing 1954", ("layer.gpkg",))),
    Case("two-layers-two-crs", lambda tmp: (
        pyogrio.write_dataframe(lines(), tmp / "red.gpkg"),
        pyogrio.write_dataframe(lines("EPSG:4524"), tmp / "farm.gpkg"),
        write_plan(tmp, {"redline": 'path = "red.gpkg"', "farmland": 'path = "farm.gpkg"'}))[-1],
         Ok(two_crs_areas_agree, ("EPSG:4490", "EPSG:4524", "EPSG:4545"))),
    Case("web-mercator", gdf_case(lambda: lines("EPSG:3857")),
         Ok(lambda p: p.crs.to_epsg() == 4545 and abs(
             float(layer(p, "redline").data.area.sum()) - float(lines(GK36).area.sum())) < 1.0,
            ("EPSG:3857",))),
    Case("plan-crs-geographic", gdf_case(lambda: lines(), body=""),
         Err(errors.CRSError, "is not projected"),
         cli=lambda p: ["validate", str(p), "--crs", "EPSG:4490"],
         api=lambda p: read_plan(p, crs="EPSG:4490")),
    Case("gcj02-outline", gcj_case("gcj02"),
         Ok(lambda r: r.likely_gcj02 and 300 < r.offset_m < 800, ("EPSG:4326",)),
         api=lambda p: detect_gcj02_offset(gpd.read_file(p.parent / "outline.geojson"),
                                           gpd.read_file(p.parent / "reference.geojson"))),
    Case("wgs84-outline-not-gcj02", gcj_case("wgs84"),
         Ok(lambda r: not r.likely_gcj02 and r.offset_m < 50, ("EPSG:4326",)),
         api=lambda p: detect_gcj02_offset(gpd.read_file(p.parent / "outline.geojson"),
                                           gpd.read_file(p.parent / "reference.geojson"))),
]


def names_are(expected: str, how: str) -> Callable[[Any], bool]:
    def check(plan: Any) -> bool:
        lyr = layer(plan, "townships")
        return (lyr.data["name"].tolist() == [expected]
                and lyr.source.encoding_source.startswith(how))

    return check


def long_names() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"XZQDM": ["520123001"], "XZQMC_name": ["示范镇"]},
                            geometry=[square()], crs="EPSG:4490")


def two_layers(target: Path) -> None:
    pyogrio.write_dataframe(lines(), target, layer="a")
    pyogrio.write_dataframe(lines(), target, layer="b")


FILES = [
    Case("gbk-without-cpg", shp_case(towns, drop=(".cpg",)),
         Ok(names_are("示范镇", "detected"), ("GB18030", "detected"))),
    Case("gbk-name-also-valid-utf8", shp_case(lambda: towns().assign(XZQMC=["一"]),
                                               drop=(".cpg",)),
         Ok(names_are("一", "detected"), ("GB18030", "detected"))),
    Case("cpg-utf8-but-gbk", shp_case(towns, cpg="UTF-8"),
         Ok(names_are("示范镇", "detected (.cpg"), ("GB18030", "does not fit"))),
    Case("cpg-1252-but-gbk", shp_case(towns, cpg="1252"),
         Err(errors.DataSourceError, "multi-byte", ("towns.cpg", "townships"))),
    Case("declared-utf8-but-gbk", shp_case(towns, body='encoding = "UTF-8"'),
         Err(errors.DataSourceError, "utf-8", ("towns.shp", "townships"))),
    Case("field-name-cut-to-10-bytes",
         shp_case(long_names, encoding="UTF-8", body='fields = { name = "XZQMC_name_zh" }'),
         Err(errors.FieldError, "fields that exist: feature_id, XZQDM, XZQMC_name",
             ("towns.shp", "XZQMC_name_zh", "did you mean 'XZQMC_name'", "10 bytes"))),
    Case("shapefile-missing-dbf", shp_case(towns, drop=(".dbf",)),
         Err(errors.DataSourceError, ".dbf", ("towns.shp", "townships"))),
    Case("shapefile-missing-shx", shp_case(towns, drop=(".shx",)),
         Err(errors.DataSourceError, ".shx", ("towns.shp", "townships"))),
    Case("truncated-gpkg", file_case("red.gpkg", truncated_gpkg),
         Err(errors.DataSourceError, "GeoPackage", ("red.gpkg", "redline"))),
    Case("corrupted-gpkg", file_case("red.gpkg", corrupted_gpkg),
         Err(errors.DataSourceError, "integrity check", ("red.gpkg", "redline"))),
    Case("text-named-gpkg", file_case("red.gpkg", b"hello, not a database\n"),
         Err(errors.DataSourceError, "not an SQLite database", ("red.gpkg",))),
    Case("empty-geojson-file", file_case("red.geojson", b""),
         Err(errors.DataSourceError, "empty", ("red.geojson",))),
    Case("broken-json", file_case("red.geojson", b'{"type": "FeatureCollection", "features": ['),
         Err(errors.DataSourceError, "cannot open", ("red.geojson",))),
    Case("csv-file", file_case("red.csv", b"x,y\n107.5,27.8\n"),
         Err(errors.DataSourceError, "not accepted", ("red.csv",))),
    Case("image-named-shp", file_case("red.shp", b"\x89PNG\r\n\x1a\n" + b"\0" * 100),
         Err(errors.DataSourceError, "not a Shapefile", ("red.shp",))),
    Case("ogr-vrt", file_case("red.vrt", lambda t: t.write_text(vrt_text(t))),
         Err(errors.DataSourceError, "OGR_VRT", ("red.vrt",))),
    Case("vrt-named-geojson", file_case("red.geojson", lambda t: t.write_text(vrt_text(t))),
         Err(errors.DataSourceError, "does not look like GeoJSON", ("red.geojson",))),
    Case("vrt-named-gpkg", file_case("red.gpkg", lambda t: t.write_text(vrt_text(t))),
         Err(errors.DataSourceError, "not an SQLite database", ("red.gpkg",))),
    Case("multi-layer-without-layer", file_case("red.gpkg", two_layers),
         Err(errors.DataLayerError, "2 layers", ("red.gpkg", "layers: a, b"))),
    Case("layer-not-found", file_case("red.gpkg", two_layers, body='layer = "c"'),
         Err(errors.DataLayerError, "layer 'c' not found", ("red.gpkg",))),
    Case("missing-file", lambda tmp: write_plan(tmp, {"redline": 'path = "nope.gpkg"'}),
         Err(errors.DataSourceError, "not found", ("nope.gpkg", "redline"))),
    Case("empty-projects-layer", gdf_case(lambda: projects().iloc[:0], role="projects"),
         Err(errors.DataLayerError, "no features", ("layer.gpkg", "projects"))),
    Case("empty-redline-layer", lambda tmp: (
        pyogrio.write_dataframe(lines().iloc[:0], tmp / "empty.gpkg"),
        pyogrio.write_dataframe(lines(), tmp / "farm.gpkg"),
        write_plan(tmp, {"redline": 'path = "empty.gpkg"',
                         "farmland": 'path = "farm.gpkg"'}))[-1],
         Ok(lambda p: layer(p, "redline").n_in == 0, ("redline",))),
]

FIELDS = [
    Case("missing-required-field", gdf_case(lambda: projects().drop(columns="XMMC"),
                                            role="projects"),
         Err(errors.FieldError, "required field 'name'", ("layer.gpkg", "projects",
                                                          "XMDM"))),
    Case("mapped-field-missing", gdf_case(lambda: projects(), role="projects",
                                          body='fields = { facility = "SSLB" }'),
         Err(errors.FieldError, "'SSLB' mapped to 'facility' does not exist",
             ("layer.gpkg", "XMLB"))),
    Case("dates-mixed-formats", gdf_case(lambda: projects(mapped_on=[
        "2024-01-05", "2024/1/5", "20240105", "2024年1月5日"]), role="projects"),
         Ok(lambda p: layer(p, "projects").data["mapped_on"].dt.strftime("%F").tolist()
            == ["2024-01-05"] * 4, ("projects",))),
    Case("date-day-first", gdf_case(lambda: projects(mapped_on=["2024-01-05", "05/01/2024"]),
                                    role="projects"),
         Err(errors.FieldError, "'05/01/2024'", ("layer.gpkg", "projects:1"))),
    Case("date-impossible", gdf_case(lambda: projects(start_on=["2024-01-05", "2024-02-30"]),
                                     role="projects"),
         Err(errors.FieldError, "day is out of range", ("projects:1",))),
    Case("investment-with-units", gdf_case(lambda: projects(ZTZ=["1,250.5万元", "12万"]),
                                           role="projects"),
         Ok(lambda p: layer(p, "projects").data["investment_wan"].tolist() == [1250.5, 12.0],
            ("projects",))),
    Case("investment-not-numeric", gdf_case(lambda: projects(ZTZ=["100", "约200"]),
                                            role="projects"),
         Err(errors.FieldError, "'约200' (not a number)", ("layer.gpkg", "projects:1"))),
    Case("unknown-status", gdf_case(lambda: projects(status=["在建", "搁置"]), role="projects"),
         Err(errors.FieldError, "'搁置'", ("projects:1",))),
    Case("year-out-of-range", gdf_case(lambda: projects(start_year=["2025", "25"]),
                                       role="projects"),
         Err(errors.FieldError, "'25'", ("projects:1",))),
]

RASTER = [
    Case("dem-without-nodata", dem_plan(nodata=None),
         Err(errors.RasterError, "no nodata value", ("dem.tif",)),
         api=lambda p: read_terrain(dem_path(p), crs=GK36), cli=terrain_cli),
    Case("dem-without-crs", dem_plan(crs=None),
         Err(errors.RasterError, "has no CRS", ("dem.tif",)),
         api=lambda p: read_terrain(dem_path(p), crs=GK36), cli=terrain_cli),
    Case("dem-not-overlapping", dem_plan(offset_m=50_000.0),
         Err(errors.RasterError, "overlaps the DEM", ("dem.tif", "townships")),
         api=lambda p: site_slope_stats(site_in_dem(), dem_path(p)), cli=terrain_cli),
    Case("dem-hole-under-site", dem_plan(hole=(slice(0, 60), slice(0, 26))),
         Ok(lambda s: s["flag"].iloc[0] == "partial_coverage"
            and 0.3 < s["coverage"].iloc[0] < 0.8, ("partial_coverage",)),
         api=lambda p: site_slope_stats(site_in_dem(), dem_path(p)),
         cli=lambda p: ["terrain", str(p), "--out", str(p.parent / "out"), "-q"]),
    Case("dem-xian80", dem_plan(crs="EPSG:2381"),
         Err(errors.CRSError, "ballpark", ("dem.tif",)),
         api=lambda p: read_terrain(dem_path(p), crs=GK36), cli=terrain_cli),
    Case("dem-not-a-raster", lambda tmp: (
        pyogrio.write_dataframe(towns(), tmp / "towns.gpkg"),
        (tmp / "dem.tif").write_text("not a tiff"),
        write_plan(tmp, {"townships": 'path = "towns.gpkg"'},
                   extra='[rasters.dem]\npath = "dem.tif"\n'))[-1],
         Err(errors.RasterError, "cannot open", ("dem.tif",)),
         api=lambda p: read_terrain(dem_path(p), crs=GK36), cli=terrain_cli),
]

PLAN = [
    Case("unknown-top-key", raw_plan("[plan]\nnmae = 'x'\n[layers.redline]\nRED\n"),
         Err(errors.PlanError, "unknown key 'plan.nmae'", ("plan.toml",))),
    Case("unknown-layer-key", raw_plan("[layers.redline]\nRED\npth = 'x'\n"),
         Err(errors.PlanError, "layers.redline.pth", ("plan.toml",))),
    Case("unknown-role", raw_plan("[layers.redlines]\nRED\n"),
         Err(errors.PlanError, "unknown layer role 'layers.redlines'", ("plan.toml",))),
    Case("wrong-type-path", raw_plan("[layers.redline]\npath = 5\n"),
         Err(errors.PlanError, "'layers.redline.path' must be str", ("plan.toml",))),
    Case("wrong-type-table", raw_plan("layers = 3\n"),
         Err(errors.PlanError, "'layers' must be a table", ("plan.toml",))),
    Case("bad-as-of", raw_plan("[plan]\nas_of = '26/11/2026'\n[layers.redline]\nRED\n"),
         Err(errors.PlanError, "plan.as_of", ("plan.toml",))),
    Case("bad-toml", raw_plan("[layers.redline\nRED\n"),
         Err(errors.PlanError, "not valid TOML", ("plan.toml",))),
    Case("plan-not-utf8", raw_plan("[plan]\nname = '示范'\n".encode("gbk")),
         Err(errors.PlanError, "UTF-8", ("plan.toml",))),
    Case("unknown-encoding", raw_plan("[layers.redline]\nRED\nencoding = 'klingon'\n"),
         Err(errors.PlanError, "not a known encoding", ("plan.toml",))),
    Case("unknown-canonical-field", raw_plan("[layers.redline]\nRED\nfields = { code = 'A' }\n"),
         Err(errors.PlanError, "layers.redline.fields.code", ("plan.toml",))),
    Case("radius-on-line-layer", raw_plan("[layers.redline]\nRED\npoint_radius_m = 30\n"),
         Err(errors.PlanError, "only allowed for projects", ("plan.toml",))),
    Case("remote-http", raw_plan("[layers.redline]\npath = 'http://example.org/r.gpkg'\n"),
         Err(errors.DataSourceError, "remote", ("http://example.org/r.gpkg",))),
    Case("remote-vsicurl", raw_plan("[layers.redline]\npath = '/vsicurl/https://e.org/r.gpkg'\n"),
         Err(errors.DataSourceError, "remote", ("/vsicurl/",))),
    Case("vsizip-local", raw_plan("[layers.redline]\npath = '/vsizip/red.zip/red.gpkg'\n"),
         Err(errors.DataSourceError, "virtual", ("/vsizip/",))),
    Case("rulebook-unknown-key", rules_case("[tolerance]\nmin_overlap_m3 = 1\n"),
         Err(errors.RulebookError, "tolerance.min_overlap_m3", ("rules.toml",)),
         api=rules_api),
    Case("rulebook-wrong-type", rules_case("[tolerance]\nmin_overlap_m2 = 'big'\n"),
         Err(errors.RulebookError, "must be a number", ("rules.toml",)),
         api=rules_api),
    Case("rulebook-negative", rules_case("[tolerance]\nmin_overlap_m2 = -5\n"),
         Err(errors.RulebookError, "non-negative", ("rules.toml",)),
         api=rules_api),
    Case("output-over-input", dem_plan(),
         Err(errors.OutputError, "contains the input", ("plan.toml", "output folder")),
         api=lambda p: check_output_dir(p.parent, [p.parent / "towns.gpkg"]),
         cli=lambda p: ["terrain", str(p), "--out", str(p.parent), "-q"]),
]

BUBIAO = [
    Case("bubiao-xian80", txt_case(BUBIAO_HEADER.replace("2000国家大地坐标系", "1980西安坐标系")
                                   + BUBIAO_PARCEL),
         Err(errors.CRSError, "refused", ("site.txt",)),
         api=read_bubiao_txt, cli=import_cli),
    Case("bubiao-short-ring", txt_case(BUBIAO_HEADER + "3,1.0,1,站,面,,公用设施,1309,@\n"
                                       "J1,1,3070000,36461000\nJ2,1,3070000,36461100\n"
                                       "J1,1,3070000,36461000\n"),
         Err(errors.GeometryError, "3", ("site.txt",)), api=read_bubiao_txt, cli=import_cli),
    Case("bubiao-bad-number", txt_case(BUBIAO_HEADER + BUBIAO_PARCEL.replace("3070100,3646",
                                                                            "30701OO,3646")),
         Err(errors.DataSourceError, "line", ("site.txt",)), api=read_bubiao_txt,
         cli=import_cli),
    Case("bubiao-swapped-axes", txt_case(BUBIAO_HEADER + "5,1.0,1,站,面,,公用设施,1309,@\n"
                                         "J1,1,36461000,3070000\nJ2,1,36461100,3070000\n"
                                         "J3,1,36461100,3070100\nJ4,1,36461000,3070100\n"
                                         "J1,1,36461000,3070000\n"),
         Err(errors.CRSError, "are they swapped", ("site.txt",)), api=read_bubiao_txt,
         cli=import_cli),
    Case("bubiao-no-coordinates", txt_case("[属性描述]\n坐标系=2000国家大地坐标系\n"),
         Err(errors.DataSourceError, "地块坐标", ("site.txt",)), api=read_bubiao_txt,
         cli=import_cli),
]

CASES = GEOMETRY + CRS + FILES + FIELDS + RASTER + PLAN + BUBIAO


def test_corpus_size() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


# -- runners ---------------------------------------------------------------------------------


def _reason(plan: Any, rec: Rec) -> str:
    table = getattr(plan.layers[rec.role], rec.kind)
    rows = table[table["feature_id"] == rec.feature]
    assert len(rows) == 1, f"{rec.feature} not {rec.kind}: {table}"
    return str(rows["reason"].iloc[0])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api(case: Case, tmp_path: Path) -> None:
    built = case.build(tmp_path)
    expect = case.expect
    if isinstance(expect, Err):
        with pytest.raises(expect.cls) as info:
            case.api(built)
        assert expect.fragment in str(info.value)
        assert isinstance(info.value, errors.SpatialPlanError)
        return
    result = case.api(built)
    if isinstance(expect, Rec):
        assert expect.fragment in _reason(result, expect)
        assert accounted(result)
    else:
        assert expect.check(result)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = case.build(tmp_path)
    code = main(case.cli(built))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    expect = case.expect
    if isinstance(expect, Err):
        assert code == 2, out + err
        message = " ".join(err.split())
        assert message.count("spatialplan: error:") == 1
        assert err.rstrip("\n").splitlines()[-1].startswith("spatialplan: error:")
        assert expect.fragment in message
        for name in expect.names:
            assert name in message, f"{name!r} not named in: {message}"
        return
    assert code == 0, out + err
    text = " ".join((out + err).split())
    if isinstance(expect, Rec):
        assert expect.feature in text and expect.fragment in text
    else:
        for shown in expect.shown:
            assert shown in text, f"{shown!r} not shown in: {text}"


def test_gpkg_integrity_check_is_read_only(tmp_path: Path) -> None:
    """The integrity check opens GeoPackages read-only: the file is not modified."""
    path = tmp_path / "red.gpkg"
    pyogrio.write_dataframe(lines(), path)
    before = path.read_bytes()
    read_layer(path, role="redline")
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*-journal")) and not list(tmp_path.glob("*-wal"))
    with sqlite3.connect(path) as con:  # still a valid database
        assert con.execute("PRAGMA quick_check").fetchone() == ("ok",)
    con.close()
