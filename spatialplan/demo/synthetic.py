"""Deterministic generator of the synthetic demo township (示范镇（虚构）).

The demo is **synthetic**: four fictional townships of a fictional county (code 520399) placed in
real Guizhou coordinates (about 107.5°E, 27.8°N, CGCS2000), with a procedural karst DEM, the three
control lines, survey cultivated land, detailed-plan parcels, an "8+X" project register with
as-built footprints, a GBK shapefile without ``.cpg`` and a 部标 TXT site. Every siting rule passes
somewhere and fires somewhere; the deliberately planted cases are listed in ``expected.csv``.

The same ``seed`` always gives the same contents (GeoPackage and shapefile bytes may differ only by
the timestamps the drivers write). Only numpy's ``RandomState`` is used for randomness.

Run ``python -m spatialplan.demo OUT_DIR`` to write a fresh copy; the committed copy lives in
``layers/demo/`` (see :func:`spatialplan.core._resources.demo_dir`).

Examples
--------
>>> from spatialplan.demo.synthetic import build_demo
>>> plan_path = build_demo("/tmp/demo")  # doctest: +SKIP
>>> plan_path.name  # doctest: +SKIP
'plan.toml'
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from spatialplan.demo._parts import (
    FILLER_CODES,
    LANDUSE_NAMES,
    ORPHAN_ID,
    TOWNSHIPS,
    UDB_FLEX,
    UDB_MAIN,
    UDB_SPECIAL,
    ZONES,
    _block,
    _Frame,
    _plant,
    _Planted,
    _Project,
    _register,
    _udb_box,
    _udb_poly,
    _village_parcels,
)
from spatialplan.demo._villages import village_rows

__all__ = ["DEFAULT_SEED", "build_demo"]

log = logging.getLogger("spatialplan.demo.synthetic")

DEFAULT_SEED = 20261126
"""Seed of the committed demo (the as-of date of the demo plan)."""

AS_OF = "2026-11-26"
GK_CRS = "EPSG:4545"  # CGCS2000 3-degree GK zone 36 (CM 108°E), no zone prefix
GEO_CRS = "EPSG:4490"  # CGCS2000 geographic
ORIGIN = (450000.0, 3076000.0)  # local (0, 0) in EPSG:4545, about 107.49°E, 27.80°N
ZONE = 36
COUNTY = "520399"  # fictional county code (not assigned in Guizhou)
CELL = 30.0
DEM_NODATA = -9999.0
GK_GRID = 0.001  # metres: coordinates are rounded to the millimetre
GEO_GRID = 1e-9  # degrees (~0.1 mm)


# ---------------------------------------------------------------------------------------------
# small geometry helpers (local metres, origin ORIGIN)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ---------------------------------------------------------------------------------------------
# terrain


@dataclass
class _Dem:
    """The DEM grid (float32 metres) and derived slope (degrees) in local coordinates."""

    elev: np.ndarray
    slope: np.ndarray
    height: np.ndarray  # height above the valley floor
    x0: float  # west edge, local
    y1: float  # north edge, local

    @property
    def transform(self) -> Affine:
        return Affine(CELL, 0.0, ORIGIN[0] + self.x0, 0.0, -CELL, ORIGIN[1] + self.y1)

    @property
    def local_transform(self) -> Affine:
        return Affine(CELL, 0.0, self.x0, 0.0, -CELL, self.y1)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = self.elev.shape
        xs = self.x0 + CELL * (np.arange(cols) + 0.5)
        ys = self.y1 - CELL * (np.arange(rows) + 0.5)
        return np.meshgrid(xs, ys)


def _waves(rng: np.random.RandomState, xx: np.ndarray, yy: np.ndarray, n: int,
           lam: tuple[float, float], ridged: bool) -> np.ndarray:
    """Sum of ``n`` plane waves with random direction, wavelength and phase, scaled to [0, 1]."""
    out = np.zeros_like(xx)
    for _ in range(n):
        theta = rng.uniform(0, np.pi)
        wavelength = rng.uniform(*lam)
        phase = rng.uniform(0, 2 * np.pi)
        arg = (np.cos(theta) * xx + np.sin(theta) * yy) * (2 * np.pi / wavelength) + phase
        wave = 1.0 - np.abs(np.sin(arg)) if ridged else np.sin(arg)
        out += wave
    lo, hi = out.min(), out.max()
    return (out - lo) / (hi - lo)


def _slope_deg(elev: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(elev.astype(np.float64), CELL)
    return np.degrees(np.arctan(np.hypot(gx, gy)))


def _make_dem(frame: _Frame, rng: np.random.RandomState) -> _Dem:
    """Karst terrain: flat valley floors through the seats, steep ridged peaks between them."""
    x0, x1, y0, y1 = -9000.0, 9000.0, -6000.0, 6000.0
    cols, rows = int((x1 - x0) / CELL), int((y1 - y0) / CELL)
    dem = _Dem(np.zeros((rows, cols), np.float32), np.zeros((rows, cols)), np.zeros((rows, cols)),
               x0, y1)
    xx, yy = dem.cell_centres()
    dn = np.abs(yy - frame.valley_y(xx, "n"))
    ds = np.abs(yy - frame.valley_y(xx, "s"))
    d = np.minimum(dn, ds)
    w_north = dn / (dn + ds + 1e-9)
    floor = (780.0 - 0.005 * (xx - x0)) * (1 - w_north) + (720.0 - 0.005 * (xx - x0)) * w_north
    floor += 0.02 * np.minimum(d, frame.floor_halfwidth(xx))
    floor += 3.0 * (_waves(rng, xx, yy, 3, (900.0, 1600.0), ridged=False) - 0.5)
    mountain = _smoothstep((d - frame.floor_halfwidth(xx)) / 650.0)
    broad = _waves(rng, xx, yy, 3, (5000.0, 9000.0), ridged=False)
    karst = _waves(rng, xx, yy, 7, (900.0, 2200.0), ridged=True)
    relief = (420.0 + 210.0 * broad) * (0.2 + 0.8 * karst**1.5)
    elev = floor + mountain * relief
    dem.elev = np.round(elev, 1).astype(np.float32)
    dem.slope = _slope_deg(dem.elev)
    dem.height = dem.elev - floor
    return dem


def _box_mean(mask: np.ndarray, k: int) -> np.ndarray:
    """Mean of a boolean grid over a ``k`` x ``k`` window (edges padded)."""
    pad = k // 2
    a = np.pad(mask.astype(np.float64), pad, mode="edge")
    c = np.cumsum(np.cumsum(a, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s / (k * k)


class _Cutter:
    """Many exclusion polygons behind an STR tree: cut a small geometry by the nearby ones."""

    def __init__(self, parts: Sequence) -> None:
        flat = [p for g in parts for p in shapely.get_parts(g) if not p.is_empty]
        self.parts = np.asarray(flat, dtype=object)
        self.tree = shapely.STRtree(self.parts)

    def hits(self, geom) -> bool:
        return len(self.tree.query(geom, predicate="intersects")) > 0

    def cut(self, geom):
        idx = self.tree.query(geom, predicate="intersects")
        if len(idx) == 0:
            return geom
        return geom.difference(shapely.union_all(self.parts[idx]))


# ---------------------------------------------------------------------------------------------
# townships


def _wobbly_line(points: np.ndarray, normal: np.ndarray, rng: np.random.RandomState,
                 amp: float, taper: bool) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 1.0, len(points))
    off = np.zeros(len(points))
    for scale in (1.0, 0.35):
        lam = rng.uniform(0.3, 0.6) * scale
        off += amp * scale * np.sin(2 * np.pi * t / lam + rng.uniform(0, 2 * np.pi))
    if taper:
        off *= np.sin(np.pi * t)
    pts = points + off[:, None] * normal[None, :]
    return [(float(x), float(y)) for x, y in pts]


def _make_townships(rng: np.random.RandomState) -> list[Polygon | MultiPolygon]:
    """Four townships forming a coverage; township 1 has an exclave inside township 0."""
    corners = [(-8000.0, -5000.0), (8000.0, -5000.0), (8000.0, 5000.0), (-8000.0, 5000.0)]
    ring: list[tuple[float, float]] = []
    for k in range(4):
        a, b = np.array(corners[k]), np.array(corners[(k + 1) % 4])
        n = int(np.linalg.norm(b - a) // 250) + 1
        pts = np.linspace(a, b, n)
        direction = (b - a) / np.linalg.norm(b - a)
        normal = np.array([direction[1], -direction[0]])
        ring.extend(_wobbly_line(pts, normal, rng, 220.0, taper=True)[:-1])
    outline = Polygon(ring)
    ys = np.arange(-5800.0, 5801.0, 100.0)
    ns = _wobbly_line(np.column_stack([np.zeros_like(ys), ys]), np.array([1.0, 0.0]), rng,
                      300.0, taper=False)
    xs = np.arange(-8800.0, 8801.0, 100.0)
    ew = _wobbly_line(np.column_stack([xs, np.zeros_like(xs)]), np.array([0.0, 1.0]), rng,
                      260.0, taper=False)
    noded = shapely.union_all([outline.exterior, LineString(ns), LineString(ew)])
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    if len(faces) != 4:
        raise RuntimeError(f"demo townships: expected 4 faces, got {len(faces)}")
    order = {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}
    towns: list[Polygon | MultiPolygon] = [Polygon()] * 4
    for face in faces:
        c = face.centroid
        towns[order[(c.x < 0, c.y > 0)]] = face
    angles = np.linspace(0, 2 * np.pi, 25)[:-1]
    radius = 380.0 + 40.0 * np.sin(3 * angles + rng.uniform(0, 2 * np.pi))
    exclave = Polygon(np.column_stack([-2600.0 + radius * np.cos(angles),
                                       1000.0 + radius * np.sin(angles)]))
    towns[0] = towns[0].difference(exclave)
    towns[1] = MultiPolygon([towns[1], exclave])
    return towns


# ---------------------------------------------------------------------------------------------
# development boundary and parcels


def _make_udb(frame: _Frame) -> list[dict]:
    rows = []
    for town, (_code, name, *_rest) in enumerate(TOWNSHIPS):
        for key, pts in (("main", UDB_MAIN), ("flex", UDB_FLEX), ("special", UDB_SPECIAL)):
            zone_code, zone_name = ZONES[key]
            rows.append({"town": town, "GHFQDM": zone_code, "GHFQMC": zone_name,
                         "CZMC": name.replace("（虚构）", "") + "镇区（虚构）",
                         "geometry": _udb_poly(frame, town, pts)})
    return rows


def _town_blocks(frame: _Frame, town: int, area: BaseGeometry, fixed: dict[tuple[int, int], object],
                 rng: np.random.RandomState) -> list[tuple[Polygon, str]]:
    """Cut the 11 x 6 grid of blocks of one town inside ``area``, with their land-use codes.

    A block's code is drawn from :data:`FILLER_CODES` unless a project fixes it (``fixed``,
    possibly split in a west and an east part); pieces under 3,000 m² are dropped.
    """
    blocks: list[tuple[Polygon, str]] = []
    for i in range(11):
        for j in range(6):
            code = FILLER_CODES[rng.randint(len(FILLER_CODES))]
            u0, v0, u1, v1 = _block(i, j)
            if u0 > 800.0:
                code = "16"  # the flexible zone stays in reserve (留白)
            spec = fixed.get((i, j), code)
            if isinstance(spec, tuple):  # ("split", u, west code, east code)
                _, us, west, east = spec
                parts = [((u0, v0, us, v1), west), ((us, v0, u1, v1), east)]
            else:
                parts = [((u0, v0, u1, v1), spec)]
            for bounds, c in parts:
                geom = _udb_box(frame, town, *bounds).intersection(area)
                if geom.area >= 3000.0:
                    blocks.append((geom, str(c)))
    return blocks


def _make_parcels(frame: _Frame, udb_rows: list[dict], projects: list[_Project],
                  rng: np.random.RandomState) -> list[dict]:
    """Blocks with 2023 用地用海 codes and the street network (1207) inside each boundary."""
    rows: list[dict] = []
    for town in range(len(TOWNSHIPS)):
        area = shapely.union_all([r["geometry"] for r in udb_rows
                                  if r["town"] == town and r["GHFQDM"] in ("21", "22")])
        fixed: dict[tuple[int, int], object] = {}
        for p in projects:
            if p.town == town:
                fixed.update(p.parcels)
        blocks = _town_blocks(frame, town, area, fixed, rng)
        streets = area.difference(shapely.union_all([g for g, _ in blocks]))
        streets = [g for g in shapely.get_parts(streets) if g.area >= 500.0]
        code_t = TOWNSHIPS[town][0]
        for n, (geom, code) in enumerate([*blocks, *[(g, "1207") for g in streets]]):
            rows.append({"DKBH": f"{code_t[-3:]}-{n + 1:03d}", "YDYHDM": code,
                         "YDYHMC": LANDUSE_NAMES[code],
                         "RJL": 0.0 if code in ("1207", "1401", "1402", "1403", "16")
                         else round(float(rng.uniform(0.8, 2.5)), 1),
                         "GHLX": "详细规划", "geometry": geom})
    return rows


def _find_slope_site(dem: _Dem, town_poly: Polygon, seat: tuple[float, float],
                     avoid: _Cutter, *, lo: float, hi: float, mean_lo: float,
                     mean_hi: float) -> Polygon:
    """Closest 120 m x 90 m site to ``seat`` whose every slope cell (plus a ring) is in range."""
    win_r, win_c = 5, 6  # 3 x 4 cell site + 1 cell ring
    view = np.lib.stride_tricks.sliding_window_view(dem.slope, (win_r, win_c))
    ok = (view.min(axis=(2, 3)) >= lo) & (view.max(axis=(2, 3)) <= hi)
    mean = view.mean(axis=(2, 3))
    ok &= (mean >= mean_lo) & (mean <= mean_hi)
    rows, cols = np.nonzero(ok)
    x = dem.x0 + CELL * (cols + 1)  # west edge of the inner site
    y = dem.y1 - CELL * (rows + 1)  # north edge
    cx, cy = x + 60.0, y - 45.0
    dist = np.hypot(cx - seat[0], cy - seat[1])
    inner = town_poly.buffer(-300.0)
    for k in np.lexsort((cols, rows, np.round(dist))):
        if not 1200.0 <= dist[k] <= 4000.0:
            continue
        site = box(x[k], y[k] - 90.0, x[k] + 120.0, y[k])
        if inner.contains(site) and not avoid.hits(site):
            return site
    raise RuntimeError("demo: no hillside site found for the slope case")


# ---------------------------------------------------------------------------------------------
# red line, farmland, cropland


def _redline(dem: _Dem, towns_union: Polygon, udb: Polygon, planted: _Planted) -> list[dict]:
    steep = (dem.height > 220.0) & (dem.slope > 20.0)
    mask = _box_mean(steep, 7) > 0.45
    polys = [shape(g) for g, v in rasterio.features.shapes(
        mask.astype(np.uint8), mask=mask, transform=dem.local_transform, connectivity=8) if v]
    merged = shapely.union_all(polys).intersection(towns_union).difference(udb.buffer(80.0))
    parts = [p for p in shapely.get_parts(merged) if p.area > 50_000.0]
    parts = list(shapely.coverage_simplify(parts, 20.0)) if parts else []
    parts = [p for p in parts if p.is_valid and not p.is_empty]
    rows = []
    for n, p in enumerate(sorted(parts, key=lambda g: (g.centroid.x, g.centroid.y))):
        kind = ("石漠化防治" if n % 3 == 0 else "水土保持" if n % 3 == 1 else "生物多样性维护")
        rows.append({"HXMC": f"喀斯特山地生态保护红线{n + 1:02d}（虚构）", "HXLX": kind,
                     "geometry": p})
    for geom, name, kind in planted.redline:
        rows.append({"HXMC": name, "HXLX": kind, "geometry": geom})
    return rows


def _fields(frame: _Frame, dem: _Dem, rng: np.random.RandomState, exclude: _Cutter,
            towns_union: Polygon) -> list[Polygon]:
    """Rectangular paddy fields on the gentle valley floors, a few hundred of them."""
    out: list[Polygon] = []
    inner = towns_union.buffer(-30.0)
    shapely.prepare(inner)
    for valley in ("n", "s"):
        for x in np.arange(-8000.0, 8000.0, 240.0):
            yc = float(frame.valley_y(x + 120.0, valley))
            half = float(frame.floor_halfwidth(np.array(x + 120.0)))
            for v in np.arange(-half, half - 150.0, 180.0):
                if rng.uniform() > 0.62:
                    continue
                m0, m1, m2, m3 = rng.uniform(12.0, 40.0, 4)
                cell = box(x + m0, yc + v + m1, x + 240.0 - m2, yc + v + 180.0 - m3)
                cell = affinity.rotate(cell, rng.uniform(-2.0, 2.0))
                c = cell.centroid
                r = int((dem.y1 - c.y) // CELL)
                k = int((c.x - dem.x0) // CELL)
                if dem.slope[r, k] > 6.0:
                    continue
                piece = exclude.cut(cell)
                if not inner.contains(piece):
                    piece = piece.intersection(inner)
                for part in shapely.get_parts(piece):
                    if part.area >= 4000.0 and part.geom_type == "Polygon":
                        out.append(shapely.simplify(part, 0.5))
    return out


def _dry_land(dem: _Dem, rng: np.random.RandomState, exclude: _Cutter, towns_union: Polygon,
              n: int = 140) -> list[Polygon]:
    """Scattered dry-land (旱地 0103) patches on the lower hillsides (slope 6-15°)."""
    xx, yy = dem.cell_centres()
    cand = np.nonzero((dem.slope.ravel() > 6.0) & (dem.slope.ravel() < 15.0)
                      & (dem.height.ravel() < 120.0))[0]
    inner = towns_union.buffer(-30.0)
    shapely.prepare(inner)
    out: list[Polygon] = []
    for idx in rng.choice(cand, size=min(len(cand), n * 3), replace=False):
        if len(out) >= n:
            break
        x, y = float(xx.ravel()[idx]), float(yy.ravel()[idx])
        g = box(x - 60.0, y - 40.0, x + 60.0, y + 40.0)
        g = affinity.rotate(g, rng.uniform(0.0, 90.0))
        if out and (shapely.distance(np.asarray(out, dtype=object), g) < 10.0).any():
            continue
        g = exclude.cut(g)
        if not inner.contains(g):
            g = g.intersection(inner)
        g = max(shapely.get_parts(g), key=lambda p: p.area, default=Polygon())
        if g.geom_type == "Polygon" and g.area >= 3000.0:
            out.append(shapely.simplify(g, 0.5))
    return out


# ---------------------------------------------------------------------------------------------
# writing


def _to_gk(geoms: Sequence) -> np.ndarray:
    moved = shapely.transform(np.asarray(geoms, dtype=object),
                              lambda c: c + np.array(ORIGIN))
    return shapely.set_precision(moved, GK_GRID)


def _to_geo(geoms: Sequence) -> np.ndarray:
    tr = Transformer.from_crs(GK_CRS, GEO_CRS, always_xy=True)

    def fwd(c: np.ndarray) -> np.ndarray:
        x, y = tr.transform(c[:, 0] + ORIGIN[0], c[:, 1] + ORIGIN[1])
        return np.column_stack([x, y])

    moved = shapely.transform(np.asarray(geoms, dtype=object), fwd)
    return shapely.set_precision(moved, GEO_GRID)


def _ellipsoidal_m2(geoms_geo: np.ndarray) -> list[float]:
    geod = CRS(GEO_CRS).get_geod()
    return [round(abs(geod.geometry_area_perimeter(g)[0]), 2) for g in geoms_geo]


def _frame_of(rows: list[dict], crs: str, *, drop: Sequence[str] = ()) -> gpd.GeoDataFrame:
    geoms = [r["geometry"] for r in rows]
    attrs = [{k: v for k, v in r.items() if k != "geometry" and k not in drop} for r in rows]
    geo = _to_gk(geoms) if crs == GK_CRS else _to_geo(geoms)
    return gpd.GeoDataFrame(attrs, geometry=list(geo), crs=crs)


def _write_gpkg(path: Path, layers: dict[str, gpd.GeoDataFrame]) -> None:
    if path.exists():
        path.unlink()
    for name, gdf in layers.items():
        pyogrio.write_dataframe(gdf, path, layer=name, driver="GPKG", append=path.exists())


def _write_gbk_shapefile(path: Path, gdf: gpd.GeoDataFrame) -> None:
    """Write ``gdf`` as a GBK shapefile with **no** ``.cpg`` and no code page in the .dbf."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(path.stem + ".*"):
        old.unlink()
    pyogrio.write_dataframe(gdf, path, driver="ESRI Shapefile", encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = path.with_suffix(".dbf")
    raw = bytearray(dbf.read_bytes())
    raw[29] = 0  # language driver id: none (as many legacy GBK files)
    dbf.write_bytes(bytes(raw))


def _write_dem(path: Path, dem: _Dem) -> None:
    data = dem.elev.copy()
    rows, cols = data.shape
    r, c = np.indices(data.shape)
    data[(r + c) < 30] = DEM_NODATA  # a data void in the north-west corner, outside the towns
    profile = {
        "driver": "GTiff", "dtype": "float32", "count": 1, "width": cols, "height": rows,
        "crs": CRS(GK_CRS).to_wkt(), "transform": dem.transform, "nodata": DEM_NODATA,
        "compress": "deflate", "predictor": 3, "tiled": True, "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(DESCRIPTION="synthetic DEM of the spatialplan demo (虚构, not real)")


def _write_bubiao(path: Path, project: _Project, site_gk: Polygon) -> None:
    """Write one site as a 部标 TXT (GBK, CRLF, zone-prefixed eastings, EPSG:4524)."""
    coords = list(orient(site_gk, sign=1.0).exterior.coords)
    lines = [
        "[属性描述]", "格式版本号=1.01版本", "数据产生单位=spatialplan 示范数据（虚构）",
        f"数据产生日期={AS_OF}", "坐标系=2000国家大地坐标系", "几度分带=3",
        "投影类型=高斯克吕格", "计量单位=米", f"带号={ZONE}", "精度=0.001",
        "转换参数=,,,,,,", "[地块坐标]",
        f"{len(coords)},{site_gk.area / 10000:.4f},1,{project.name}（虚构）,面,,公用设施,1302,@",
    ]
    for n, (x, y) in enumerate(coords):
        label = n + 1 if n < len(coords) - 1 else 1
        lines.append(f"J{label},1,{y:.3f},{x + ZONE * 1_000_000:.3f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))


PLAN_TOML = """\
# spatialplan demo plan: SYNTHETIC data (示范镇（虚构）), generated by `python -m spatialplan.demo`.
# Do not edit by hand: rebuild with the generator (tests check the committed copy against it).

[plan]
name = "示范镇（虚构）乡镇国土空间规划 8+X 示范"
crs = "auto"
as_of = "{as_of}"

# GBK shapefile WITHOUT .cpg and without an `encoding` key: exercises encoding detection.
[layers.townships]
path = "xzq/XZQ.shp"

[layers.redline]
path = "planning.gpkg"
layer = "STBHHX"

[layers.farmland]
path = "planning.gpkg"
layer = "YJJBNT"

[layers.udb]
path = "planning.gpkg"
layer = "CZKFBJ"

[layers.cropland]
path = "planning.gpkg"
layer = "DLTB"

[layers.parcels]
path = "planning.gpkg"
layer = "KZXXGH_DK"

[layers.projects]
path = "planning.gpkg"
layer = "XS_XMKJFW"
fields = {{ status = "JSZT", mapped_on = "LTRQ", permit_on = "XKRQ", start_on = "KGRQ", \
finish_on = "JGRQ", start_year = "KSNF", end_year = "JSNF" }}

[layers.built]
path = "planning.gpkg"
layer = "JG_FW"

# the "1+N" village reach: villages (CJDM, CJMC, RK) and roads; the seats come from the
# development boundary (no seats layer)
[layers.villages]
path = "planning.gpkg"
layer = "CJ"

[layers.roads]
path = "planning.gpkg"
layer = "DL"

[rasters.dem]
path = "dem.tif"

# [rules] is omitted: the defaults in layers/catalog/rules.toml apply.
"""

README_MD = """\
# Demo township (示范镇（虚构）) — SYNTHETIC DATA

Everything in this folder is **invented** by `spatialplan/demo/synthetic.py`
(`python -m spatialplan.demo OUT_DIR`, seed {seed}). The four townships, their codes (fictional
county 520399), names (marked （虚构）), terrain, control lines, parcels and projects do not
describe any real place or plan; only the coordinate frame is real (CGCS2000, around 107.5°E,
27.8°N, Guizhou). Do not edit the files by hand: `tests/demo/test_demo.py` checks that they equal
a fresh build.

Files:

- `plan.toml`: the plan file (paths relative to it, `crs = "auto"`, as-of {as_of}).
- `planning.gpkg`: layers `XZQ`, `STBHHX`, `YJJBNT`, `CZKFBJ` (EPSG:4490) and `DLTB`,
  `KZXXGH_DK`, `XS_XMKJFW`, `JG_FW`, `CJ`, `DL` (EPSG:4545).
- `xzq/XZQ.shp`: the townships again, as a **GBK shapefile without .cpg** (and no code page in
  the .dbf header); the plan reads this copy, with no `encoding` key.
- `dem.tif`: procedural karst DEM, 30 m cells, float32, EPSG:4545, nodata -9999 (a void in the
  north-west corner, outside the townships), deflate, tiled.
- `sites/XM0107.txt`: the site of project XM0107 as a 部标坐标 TXT (GBK, CRLF, zone 36,
  zone-prefixed eastings, EPSG:4524).
- `expected.csv`: the planted cases (`project_id, rule, status, note`) the siting checks must
  reproduce.

Layers and fields:

- `XZQ`: `XZQDM` (9 digits), `XZQMC`, `BZ`. 青山镇 has an exclave inside 示范镇 (a hole there).
- `STBHHX`: `HXMC`, `HXLX`; karst peaks from the DEM (height above the valley floor > 220 m and
  slope > 20°), plus a spring and a wetland protection area on the valley floors.
- `YJJBNT`: `TBBH`, `DLBM` (0101/0102), `TBMJ` (ellipsoidal m²), on gentle valley floors.
  Planted QA cases: one patch overlaps the 示范镇 boundary by 480 m² (conflict) and one the
  青山镇 boundary by 0.6 m² (boundary noise).
- `CZKFBJ`: `GHFQDM`/`GHFQMC` 21 城镇集中建设区, 22 城镇弹性发展区, 23 特别用途区 (the zone
  names are standard; the two-digit codes are illustrative [unconfirmed]).
- `DLTB`: survey cultivated land only (`DLBM` 0101/0102/0103, `DLMC`, `TBMJ`).
- `KZXXGH_DK`: `DKBH`, `YDYHDM` (用地用海 2023, text), `YDYHMC`, `RJL`, `GHLX` (详细规划
  blocks inside the boundaries, 村庄规划 parcels under the sites outside them).
- `XS_XMKJFW`: `XMDM`, `XMMC`, `XZQDM`, `XMLB` (facility: catalogue code or Chinese name/alias),
  `JSXZ` (建设性质: 新建/扩建/改建/迁建/续建, two written `改、扩建` and `续建项目` as registers
  do; read as `construction_type` and normalised), `JSZT` (status), `LTRQ`/`XKRQ`/`KGRQ`/`JGRQ`
  (mapped/permit/start/finish dates as text, mostly ISO, a few `2024/3/5` and `20240305`),
  `ZTZ` (万元), `KSNF`/`JSNF` (years), `YDMJ` (m², planar); `plan.toml` maps the
  non-standard names.
- `JG_FW`: as-built footprints, `XMDM`, `JZMC`; `{orphan}` has no planned project.
- `CJ`: villages (points), `CJDM` (12 digits), `CJMC`, `RK` (population); three per
  township. `DL`: roads, `DLDJ` (县道/村道): one along each valley through both seats, one
  joining the valleys, a branch to each village; the branch of 岩脚村 (520399201003) stops 60 m
  short of its valley road, so that village is reported as not connected.
"""


def _expected_rows() -> list[tuple[str, str, str, str]]:
    """Planted (and a few reference) cases the siting checks must reproduce."""
    return [
        ("XM0101", "township", "pass", "reference project: passes every rule"),
        ("XM0101", "redline", "pass", "reference"),
        ("XM0101", "farmland", "pass", "reference"),
        ("XM0101", "cropland", "pass", "reference"),
        ("XM0101", "udb", "pass", "inside 城镇集中建设区"),
        ("XM0101", "landuse", "pass", "on 080602"),
        ("XM0101", "slope", "pass", "flat valley floor"),
        ("XM0101", "project_overlap", "pass", "reference"),
        ("XM0101", "map_first", "pass", "mapped before permit and start"),
        ("XM0101", "as_built", "pass", "footprint = site shrunk by 8 m"),
        ("XM0101", "schedule", "pass", "completed 2023-10-30"),
        ("XM0109", "township", "review", "road crosses from 示范镇 into 青山镇"),
        ("XM0210", "township", "fail", "lies in 青山镇, declared 清溪镇 520399103"),
        ("XM0301", "redline", "fail", "school 4800 m² inside the spring red line"),
        ("XM0301", "udb", "review", "side effect: the red-line part is outside the boundary"),
        ("XM0208", "redline", "review", "water intake 1200 m² in the wetland red line (认定)"),
        ("XM0110", "farmland", "fail", "village service centre on 1050 m² of basic farmland"),
        ("XM0110", "cropland", "review", "side effect: the farmland patch is also 0101/0102"),
        ("XM0308", "cropland", "review", "parking on 1000 m² of dry land 0103 (not farmland)"),
        ("XM0308", "farmland", "pass", "no basic farmland under it"),
        ("XM0402", "udb", "review", "school outside the development boundary"),
        ("XM0402", "landuse", "pass", "on a village-plan 080403 parcel"),
        ("XM0107", "udb", "pass", "sewage plant outside the boundary is allowed"),
        ("XM0105", "landuse", "pass", "97% on 1401 (3 m on 120803)"),
        ("XM0201", "landuse", "review", "2/3 on 080602, rest street and 070102"),
        ("XM0103", "landuse", "fail", "market entirely on 070102 residential"),
        ("XM0410", "slope", "fail", "every cell steeper than 27°"),
        ("XM0408", "slope", "pass", "600 m² toilet on 0.7 cells: the cells 30 m around are flat"),
        ("XM0309", "slope", "review", "every cell between 16° and 24°"),
        ("XM0108", "setback", "fail", "refuse transfer station 30 m from school XM0102"),
        ("XM0102", "setback", "fail", "side effect: school 30 m from refuse XM0108"),
        ("XM0206", "setback", "pass", "sewage plant far from sensitive uses"),
        ("XM0105", "project_overlap", "review", "overlaps XM0106 by 360 m²"),
        ("XM0106", "project_overlap", "review", "overlaps XM0105 by 360 m²"),
        ("XM0304", "map_first", "fail", "completed without mapped_on"),
        ("XM0207", "map_first", "fail", "mapped 2025-05-10 after start 2025-03-01"),
        ("XM0111", "as_built", "fail", "built footprint 60% outside its site"),
        ("XM0203", "as_built", "pass", "footprint inside its site"),
        (ORPHAN_ID, "as_built", "fail", "built footprint with no planned project"),
        ("XM0209", "schedule", "review", "completed but finish_on 2027-03-01 after as_of"),
        ("XM0409", "schedule", "review", "start_year 2027 > end_year 2025"),
    ]


# ---------------------------------------------------------------------------------------------
# self-check of the planted geometry


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"demo self-check failed: {what}")


def _self_check(towns: list, sites: dict[str, Polygon], udb: Polygon, red: Polygon,
                farm: Polygon, crop: Polygon, dem: _Dem, projects: list[_Project]) -> None:
    planted_red = {"XM0301", "XM0208"}
    planted_farm = {"XM0110"}
    planted_crop = {"XM0110", "XM0308"}
    for p in projects:
        g = sites[p.pid]
        home = towns[p.town]
        if p.pid != "XM0109":
            _check(home.contains(g), f"{p.pid} inside its township")
        _check((g.intersection(red).area > 100) == (p.pid in planted_red), f"{p.pid} red line")
        _check((g.intersection(farm).area > 100) == (p.pid in planted_farm), f"{p.pid} farmland")
        _check((g.intersection(crop).area > 100) == (p.pid in planted_crop), f"{p.pid} cropland")
    _check(abs(sites["XM0105"].intersection(sites["XM0106"]).area - 360.0) < 1.0, "overlap")
    overlaps = sum(sites[a].intersects(sites[b]) and sites[a].intersection(sites[b]).area > 0
                   for a in sites for b in sites if a < b)
    _check(overlaps == 1, f"exactly one project overlap, got {overlaps}")
    _check(sites["XM0109"].intersection(towns[1]).area > 5000, "road crosses the boundary")
    _check(not udb.intersects(red) or udb.intersection(red).area == 0, "red line vs UDB")
    _check(abs(farm.intersection(udb).area - 480.6) < 1.0,
           f"farmland in UDB is the planted 480.6 m², got {farm.intersection(udb).area}")
    _check(red.intersection(farm).area == 0, "red line vs farmland")
    for pid in ("XM0101", "XM0102", "XM0107", "XM0206", "XM0402"):
        mask = rasterio.features.geometry_mask([sites[pid]], dem.elev.shape,
                                               dem.local_transform, invert=True,
                                               all_touched=True)
        _check(float(dem.slope[mask].max()) < 10.0, f"{pid} on flat ground")


# ---------------------------------------------------------------------------------------------
# public entry point


def build_demo(out_dir: str | Path, *, seed: int = DEFAULT_SEED) -> Path:
    """Build the synthetic demo township into ``out_dir`` and return its ``plan.toml`` path.

    Parameters
    ----------
    out_dir
        Folder to write into (created if needed). Files of an earlier build are overwritten.
    seed
        Seed of :class:`numpy.random.RandomState`; the same seed gives the same contents.

    Returns
    -------
    Path
        The ``plan.toml`` of the demo.

    Examples
    --------
    >>> plan = build_demo(tmp_path / "demo")  # doctest: +SKIP
    >>> sorted(p.name for p in plan.parent.iterdir())  # doctest: +SKIP
    ['README.md', 'dem.tif', 'expected.csv', 'plan.toml', 'planning.gpkg', 'sites', 'xzq']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng_frame = np.random.RandomState(seed)
    frame = _Frame(rng_frame.uniform(0, 2 * np.pi), rng_frame.uniform(0, 2 * np.pi))
    towns = _make_townships(np.random.RandomState(seed + 1))
    towns_union = shapely.union_all(towns)
    dem = _make_dem(frame, np.random.RandomState(seed + 2))
    udb_rows = _make_udb(frame)
    udb = shapely.union_all([r["geometry"] for r in udb_rows])
    projects = _register()
    sites = {p.pid: p.site(frame) for p in projects if p.site is not None}
    planted = _plant(frame, sites)
    red_rows = _redline(dem, towns_union, udb, planted)
    red = shapely.union_all([r["geometry"] for r in red_rows])

    red_parts = [r["geometry"] for r in red_rows]
    udb_parts = [r["geometry"] for r in udb_rows]
    site_list = list(sites.values())
    avoid = _Cutter([*shapely.buffer(red_parts, 60.0), *shapely.buffer(udb_parts, 300.0),
                     *shapely.buffer(site_list, 300.0)])
    sites["XM0309"] = _find_slope_site(dem, towns[2], frame.seat(2), avoid, lo=16.0, hi=24.0,
                                       mean_lo=18.0, mean_hi=22.0)
    avoid = _Cutter([*avoid.parts, sites["XM0309"].buffer(300.0)])
    sites["XM0410"] = _find_slope_site(dem, towns[3], frame.seat(3), avoid, lo=27.0, hi=60.0,
                                       mean_lo=29.0, mean_hi=60.0)
    for p in projects:
        p.geometry = sites[p.pid]

    parcel_rows = _make_parcels(frame, udb_rows, projects, np.random.RandomState(seed + 3))
    parcel_rows += _village_parcels(projects, udb)
    built_rows = [{"XMDM": p.pid, "JZMC": p.name + "（建成范围）",
                   "geometry": p.built(sites[p.pid])} for p in projects if p.built is not None]
    built_rows.append({"XMDM": ORPHAN_ID, "JZMC": "龙井乡未落图仓储用房（虚构）",
                       "geometry": planted.orphan})

    keep_out = [*shapely.buffer(udb_parts, 40.0), *shapely.buffer(red_parts, 15.0),
                *shapely.buffer(list(sites.values()), 30.0),
                *shapely.buffer([r["geometry"] for r in built_rows], 20.0),
                *shapely.buffer(planted.farmland + planted.cropland, 15.0)]
    rng_farm = np.random.RandomState(seed + 4)
    fields = _fields(frame, dem, rng_farm, _Cutter(keep_out), towns_union)
    farmland = fields + planted.farmland
    farm_union = shapely.union_all(farmland)
    dry = _dry_land(dem, rng_farm, _Cutter([*keep_out, *shapely.buffer(farmland, 10.0)]),
                    towns_union)
    dry += planted.cropland

    _self_check(towns, sites, udb, red, farm_union, shapely.union_all(farmland + dry), dem,
                projects)
    _write_all(out, seed=seed, towns=towns, dem=dem, udb_rows=udb_rows,
               red_rows=red_rows, farmland=farmland, dry=dry, parcel_rows=parcel_rows,
               projects=projects, built_rows=built_rows, rng=rng_farm,
               villages=village_rows(frame))
    log.info("demo township written to %s (seed %d)", out, seed)
    return out / "plan.toml"


def _township_of(towns: list, geom) -> str:
    c = geom.representative_point()
    for (code, *_), t in zip(TOWNSHIPS, towns, strict=True):
        if t.contains(c):
            return code
    return TOWNSHIPS[0][0]


def _write_all(out: Path, *, seed: int, towns: list, dem: _Dem,
               udb_rows: list[dict], red_rows: list[dict], farmland: list[Polygon],
               dry: list[Polygon], parcel_rows: list[dict], projects: list[_Project],
               built_rows: list[dict], rng: np.random.RandomState,
               villages: tuple[list[dict], list[dict]]) -> None:
    names = {code: name for code, name, *_ in TOWNSHIPS}
    xzq = _frame_of([{"XZQDM": code, "XZQMC": name, "BZ": "虚构示范数据", "geometry": t}
                     for (code, name, *_), t in zip(TOWNSHIPS, towns, strict=True)], GEO_CRS)
    red = _frame_of([{"BSM": n + 1, **r} for n, r in enumerate(red_rows)], GEO_CRS)
    farm_rows = []
    for n, g in enumerate(farmland):
        code = _township_of(towns, g)
        farm_rows.append({"BSM": n + 1, "TBBH": f"{code[-3:]}{n + 1:04d}",
                          "DLBM": "0101" if rng.uniform() < 0.7 else "0102",
                          "ZLDWMC": names[code].replace("（虚构）", "") + "某村（虚构）",
                          "geometry": g})
    farm = _frame_of(farm_rows, GEO_CRS)
    farm["TBMJ"] = _ellipsoidal_m2(farm.geometry.values)
    udb = _frame_of([{"BSM": n + 1, **r} for n, r in enumerate(udb_rows)], GEO_CRS, drop=("town",))
    dlmc = {"0101": "水田", "0102": "水浇地", "0103": "旱地"}
    crop_rows = [{"BSM": r["BSM"], "DLBM": r["DLBM"], "DLMC": dlmc[r["DLBM"]],
                  "geometry": r["geometry"]} for r in farm_rows]
    crop_rows += [{"BSM": len(crop_rows) + n + 1, "DLBM": "0103", "DLMC": "旱地", "geometry": g}
                  for n, g in enumerate(dry)]
    crop = _frame_of(crop_rows, GK_CRS)
    crop["TBMJ"] = _ellipsoidal_m2(_to_geo(list(crop_rows[k]["geometry"]
                                                for k in range(len(crop_rows)))))
    parcels = _frame_of(parcel_rows, GK_CRS)
    proj_rows = []
    for p in projects:
        town = p.town if p.declared_town is None else p.declared_town
        mapped, permit, start, finish = p.dates
        proj_rows.append({
            "XMDM": p.pid, "XMMC": p.name, "XZQDM": TOWNSHIPS[town][0], "XMLB": p.facility,
            "JSXZ": p.kind, "JSZT": p.status, "LTRQ": mapped, "XKRQ": permit, "KGRQ": start,
            "JGRQ": finish, "ZTZ": p.investment, "KSNF": p.years[0], "JSNF": p.years[1],
            "YDMJ": round(p.geometry.area, 2), "BZ": "虚构示范项目", "geometry": p.geometry})
    proj = _frame_of(proj_rows, GK_CRS)
    built = _frame_of(built_rows, GK_CRS)

    _write_gpkg(out / "planning.gpkg", {
        "XZQ": xzq, "STBHHX": red, "YJJBNT": farm, "CZKFBJ": udb, "DLTB": crop,
        "KZXXGH_DK": parcels, "XS_XMKJFW": proj, "JG_FW": built,
        "CJ": _frame_of(villages[0], GK_CRS), "DL": _frame_of(villages[1], GK_CRS)})
    _write_gbk_shapefile(out / "xzq" / "XZQ.shp", xzq)
    _write_dem(out / "dem.tif", dem)
    txt_project = next(p for p in projects if p.pid == "XM0107")
    _write_bubiao(out / "sites" / "XM0107.txt", txt_project,
                  proj.geometry[proj["XMDM"] == "XM0107"].iloc[0])
    with open(out / "expected.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["project_id", "rule", "status", "note"])
        writer.writerows(_expected_rows())
    (out / "plan.toml").write_text(PLAN_TOML.format(as_of=AS_OF), encoding="utf-8")
    (out / "README.md").write_text(README_MD.format(seed=seed, as_of=AS_OF, orphan=ORPHAN_ID),
                                   encoding="utf-8")


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: python -m spatialplan.demo OUT_DIR\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.stdout.write(f"{build_demo(argv[0])}\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
