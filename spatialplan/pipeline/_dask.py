"""Per-partition work of the dask engine (helpers of :mod:`spatialplan.pipeline.engine`).

What a worker runs for one partition (:func:`_run_partition`): read the lines intersecting its
extent, township statistics (with the line area its townships' overlaps count twice, from the
driver's ``township_conflicts``), line conflicts, outside-every-township pieces, DEM-window terrain
statistics and the siting check of its projects. Also the small tile and bounding-box helpers
shared with the driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from spatialplan.core._parallel import private_copies, side_by_side
from spatialplan.pipeline.result import dem_options

__all__ = [
    "_EXTENT_ROLES",
    "_MARGIN_M",
    "_STAT_ROLES",
    "_Part",
    "_Positions",
    "_Shared",
    "_clip_box",
    "_envelope",
    "_in_tile",
    "_points",
    "_run_partition",
    "_transform_box",
    "feature_positions",
    "read_some",
    "worker_threads",
]

log = logging.getLogger("spatialplan.pipeline.engine")

_EXTENT_ROLES = ("redline", "farmland", "udb", "cropland", "parcels")
_STAT_ROLES = ("redline", "farmland", "udb", "cropland")
_MARGIN_M = 1.0
_DEM_PAD_CELLS = 3


# --------------------------------------------------------------------------- what is sent


@dataclasses.dataclass(frozen=True)
class _Positions:
    """Map source FIDs to 0-based row positions of a full read (picklable)."""

    offset: int | None = None
    fids: np.ndarray | None = None

    def __call__(self, fids: np.ndarray) -> np.ndarray:
        if self.offset is not None:
            return np.asarray(fids, dtype=np.int64) - self.offset
        return pd.Index(self.fids).get_indexer(fids)

    def fids_of(self, positions: np.ndarray) -> np.ndarray:
        """Return the source FIDs (PostGIS keys) of 0-based row positions."""
        if self.offset is not None:
            return np.asarray(positions, dtype=np.int64) + self.offset
        return np.asarray(self.fids)[np.asarray(positions, dtype=np.intp)]


@dataclasses.dataclass
class _Shared:
    """What every partition needs (sent once to every worker)."""

    specs: dict[str, Any]
    positions: dict[str, _Positions]
    source_crs: dict[str, Any]
    crs: Any
    rules: dict
    catalog: Any
    as_of: Any
    tolerance: dict
    townships: gpd.GeoDataFrame
    tiles: list
    world: tuple[float, float, float, float]
    radius: float
    dem: Any = None
    #: overlaps and gaps between all the townships (computed once, in the driver)
    township_conflicts: gpd.GeoDataFrame | None = None
    #: GeoPackages the driver has integrity-checked (``PRAGMA quick_check``) for this run:
    #: partitions do not check them again
    sqlite_checked: frozenset = frozenset()
    #: roles the driver only opened: partitions report what their reads of them rejected,
    #: repaired and saw (:func:`_accounts`), for the driver's feature accounting
    deferred: frozenset = frozenset()
    #: worker address → threads its partition may use: the host's cores shared among the
    #: workers on that host, a partition's share of them (default 1)
    threads: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Part:
    """One partition: its tile, township rows, projects (own + neighbours) and footprints."""

    index: int
    towns: np.ndarray
    projects: gpd.GeoDataFrame
    own: np.ndarray
    rejected: pd.DataFrame | None
    built: gpd.GeoDataFrame | None
    extent: tuple[float, float, float, float]
    dem_extent: tuple[float, float, float, float] | None


# --------------------------------------------------------------------------- tiles and boxes


def _in_tile(xy: np.ndarray, tile: tuple[float, float, float, float]) -> np.ndarray:
    x, y = xy[:, 0], xy[:, 1]
    return (x >= tile[0]) & (x < tile[2]) & (y >= tile[1]) & (y < tile[3])


def _owned_by(geoms: np.ndarray, tile: tuple[float, float, float, float], *,
              bounds: np.ndarray | None = None) -> np.ndarray:
    """Tell which geometries have their representative point in ``tile`` (a mask).

    The same as ``_in_tile(_points(geoms), tile)``, with the point computed only for the
    geometries whose bounding box straddles the tile's edge: the point lies in the geometry,
    so a box wholly inside the half-open tile, or wholly outside it, decides. ``bounds``:
    ``shapely.bounds(geoms)`` when the caller has them.
    """
    b = shapely.bounds(geoms) if bounds is None else bounds
    x0, y0, x1, y1 = tile
    with np.errstate(invalid="ignore"):
        inside = (b[:, 0] >= x0) & (b[:, 2] < x1) & (b[:, 1] >= y0) & (b[:, 3] < y1)
        outside = (b[:, 2] < x0) | (b[:, 0] >= x1) | (b[:, 3] < y0) | (b[:, 1] >= y1)
    unsure = np.flatnonzero(~inside & ~outside)  # NaN bounds too: no point, not owned
    owned = inside
    owned[unsure] = _in_tile(_points(geoms[unsure]), tile)
    return owned


def _points(geoms: np.ndarray) -> np.ndarray:
    """Return representative points of geometries as ``(n, 2)`` (NaN for missing ones)."""
    xy = np.full((len(geoms), 2), np.nan)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if ok.any():
        xy[ok] = shapely.get_coordinates(shapely.point_on_surface(geoms[ok]))
    return xy


def _transform_box(box: tuple | np.ndarray, src: Any,
                   dst: Any) -> tuple[float, float, float, float]:
    """Bounds of ``box`` (in ``src``) in ``dst``: densified edges, plus a safety margin."""
    from spatialplan.io._defer import extent_in

    out = extent_in(box, src, dst, pad=1e-5)
    assert out is not None  # a box in, a box out
    return out


def _envelope(boxes: list) -> tuple[float, float, float, float]:
    arr = np.asarray([b for b in boxes if b is not None], dtype=float)
    return (arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max())


def _clip_box(tile: tuple, world: tuple) -> tuple | None:
    box = (max(tile[0], world[0]), max(tile[1], world[1]), min(tile[2], world[2]),
           min(tile[3], world[3]))
    return box if box[0] <= box[2] and box[1] <= box[3] else None


# --------------------------------------------------------------------------- partition work


def _read_extent(shared: _Shared, role: str, extent: tuple):
    """Read the features of one layer intersecting ``extent`` (analysis CRS).

    A PostGIS table is read straight from the server, through its spatial index
    (``geom && ST_MakeEnvelope(...)`` in the table's SRID). As a full read has them: a
    :class:`spatialplan.io.read.Layer`, or ``None`` when the plan
    has no such layer.
    """
    if role not in shared.specs:
        return None
    box = _transform_box(np.add(extent, (-_MARGIN_M, -_MARGIN_M, _MARGIN_M, _MARGIN_M)),
                         shared.crs, shared.source_crs[role])
    return read_some(shared, role, bbox=box)


def read_some(shared: _Shared, role: str, *, bbox: tuple | None = None,
              positions: np.ndarray | None = None):
    """Read the features of one layer in ``bbox`` (source CRS) or at these row ``positions``.

    Validated and taken to the analysis CRS as in a full read, with the full read's
    ``feature_id`` (a :class:`spatialplan.io.read.Layer`).
    """
    from spatialplan.io.read import read_spec_layer

    fids = None if positions is None else shared.positions[role].fids_of(positions)
    return read_spec_layer(shared.specs[role], role=role, crs=shared.crs, bbox=bbox, fids=fids,
                           feature_positions=shared.positions[role],
                           sqlite_checked=set(shared.sqlite_checked),
                           plugin_role=role not in _EXTENT_ROLES)


def feature_positions(ids: np.ndarray) -> np.ndarray:
    """Return the row positions in ``"{role}:{n}"`` feature ids (``n``) as int64."""
    if len(ids) == 0:
        return np.array([], dtype=np.int64)
    return pd.Series(ids, dtype=object).str.rsplit(":", n=1).str[-1].to_numpy(dtype=np.int64)


def _accounts(read: dict, roles: frozenset) -> dict[str, dict[str, Any]]:
    """Report what a partition's reads of the deferred layers saw, for the driver's accounting.

    Per role: ``seen`` (row positions of every feature read, kept or rejected), ``zm`` (those
    whose Z/M was dropped), ``rejected`` and ``repaired`` (the read's tables). A feature read by
    several partitions is reported by each, identically; the driver keeps one.
    """
    out = {}
    for role in sorted(roles):
        lyr = read.get(role)
        if lyr is None:
            continue
        out[role] = {"seen": np.asarray(lyr.read_rows, dtype=np.int64),
                     "zm": np.asarray(lyr.zm_dropped),
                     "rejected": lyr.rejected, "repaired": lyr.repaired}
    return out


def _own_geometries(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return ``gdf`` with geometry objects of its own (exact copies through WKB).

    Partitions of an in-process cluster run as threads sharing :class:`_Shared`; the overlays
    prepare the township geometries they use, and a GEOS prepared geometry must not be used
    by two threads at once (libgeos/geos#825). Each partition prepares its own copies.
    """
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    own = private_copies(geoms)
    out = gdf.copy()
    out[gdf.geometry.name] = gpd.GeoSeries(own, index=gdf.index, crs=gdf.crs)
    return out


def _run_partition(part: _Part, shared: _Shared) -> dict[str, Any]:
    """Everything one partition reports: its own rows of every result table."""
    from spatialplan.core import _parallel

    shared = dataclasses.replace(shared, townships=_own_geometries(shared.townships))

    # a partition uses the worker's share of its host's cores (one each, when every core
    # runs a worker with one thread)
    with _parallel.limited(_my_threads(shared.threads)):
        # the lines and parcels, then the layers of plug-in rules (read over the same extent,
        # which reaches the largest search radius of any rule beyond the partition's sites)
        roles = _EXTENT_ROLES + tuple(r for r in shared.specs if r not in _EXTENT_ROLES)
        read = {role: _read_extent(shared, role, part.extent) for role in roles}
        lines = {role: None if lyr is None else lyr.data for role, lyr in read.items()}
        known = {role: lyr.validated for role, lyr in read.items() if lyr is not None}
        towns = shared.townships.iloc[part.towns]
        out: dict[str, Any] = _control_lines(part, shared, lines, towns, known)
        out["accounts"] = _accounts(read, shared.deferred)
        slope, out["terrain"], out["dem_hits"] = _terrain(part, shared, towns)
        if len(part.projects) or part.rejected is not None:
            out.update(_siting(part, shared, lines, slope))
    return out


def _my_threads(threads: dict) -> int:
    """Threads this worker's partition may use (:attr:`_Shared.threads`; 1 if not known)."""
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        return 1
    return max(1, int(threads.get(address, 1)))


def worker_threads(client: Any, info: dict | None = None) -> dict[str, int]:
    """Share each host's cores among its workers: worker address → threads for a partition.

    A worker with ``nthreads`` threads runs that many partitions at once; its partitions
    together may use ``cores // workers on the host`` threads. ``info``: the scheduler's
    ``scheduler_info()["workers"]`` when the caller has it.
    """
    import os
    from urllib.parse import urlsplit

    if info is None:
        info = client.scheduler_info().get("workers", {})
    cores = client.run(lambda: len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                       else (os.cpu_count() or 1))
    hosts: dict[str, list[str]] = {}
    for address in info:
        hosts.setdefault(urlsplit(address).hostname or address, []).append(address)
    out = {}
    for members in hosts.values():
        for address in members:
            per_worker = int(cores.get(address, 1)) // len(members)
            out[address] = max(1, per_worker // max(1, int(info[address].get("nthreads", 1))))
    return out


def _siting(part: _Part, shared: _Shared, lines: dict, slope) -> dict[str, pd.DataFrame]:
    """Check the partition's own projects: their rows and findings."""
    from spatialplan.rules import siting

    res, fnd = siting.check_projects(
        part.projects, townships=shared.townships, redline=lines["redline"],
        farmland=lines["farmland"], udb=lines["udb"], cropland=lines["cropland"],
        parcels=lines["parcels"], built=part.built, slope=slope, rules=shared.rules,
        catalog=shared.catalog, as_of=shared.as_of, rejected=part.rejected,
        layers={r: lyr for r, lyr in lines.items() if r not in _EXTENT_ROLES})
    keep = set(part.projects["feature_id"].to_numpy()[part.own])
    if part.rejected is not None:
        keep |= set(part.rejected["feature_id"].astype(str))
    return {"projects": res[res["feature_id"].isin(keep)],
            "findings": fnd[fnd["feature_id"].isin(keep) & (fnd["subject"] == "project")]}


def _control_lines(part: _Part, shared: _Shared, lines: dict, towns: gpd.GeoDataFrame,
                   known: dict) -> dict[str, Any]:
    """Compute the partition's township statistics, line conflicts and outside pieces.

    Every line layer read for the partition is put on the grid and certified once (as
    :func:`spatialplan.analysis.overlay.control_line_report` does for a local run) and shared by the
    three tables; ``known`` holds the geometries its read validated (not tested again).
    """
    from spatialplan.analysis import overlay
    from spatialplan.analysis._overlay_lines import _prepare_lines, _Zones
    from spatialplan.analysis._townships import join_columns

    grid = overlay.DEFAULT_GRID_SIZE
    tolerance = overlay.resolve_tolerance(shared.tolerance)
    given = {r: lines[r] for r in _STAT_ROLES if lines[r] is not None}
    prepared = _prepare_lines(given, grid, known)
    nearby = _Zones(_nearby_townships(shared.townships, lines), grid)
    control = {r: line for r, line in prepared.items() if r in overlay.CONTROL_LINES}

    def statistics() -> pd.DataFrame:
        stats = overlay._stats_frame(_Zones(towns, grid), prepared, crs=shared.crs,
                                     tolerance=tolerance, grid_size=grid, ellipsoidal=True)
        if shared.township_conflicts is not None:  # the area its overlaps count twice
            stats = join_columns(stats, overlay.township_double_counted(
                towns, shared.township_conflicts, **given, grid_size=grid, known_valid=known))
        stats["_pos"] = part.towns
        return stats

    def conflicts_and_outside() -> dict[str, Any]:
        found = overlay._conflict_frame(control, nearby, crs=shared.crs, tolerance=tolerance,
                                        grid_size=grid)
        return {"conflicts": _own_conflicts(part, shared, found),
                "outside": _outside_parts(part, shared, prepared, nearby)}

    # as in a local run: what the tables share once, then the statistics beside the rest
    overlay._shared_once(nearby, prepared)
    stats, rest = side_by_side(statistics, conflicts_and_outside)
    return {"stats": stats, **rest}


def _nearby_townships(townships: gpd.GeoDataFrame, lines: dict) -> gpd.GeoDataFrame:
    """Townships that can meet the features read (for what lies outside every township)."""
    boxes = [tuple(g.total_bounds) for r, g in lines.items()
             if r in _STAT_ROLES and g is not None and len(g)]
    if not boxes:
        return townships.iloc[:0]
    hit = townships.sindex.query(shapely.box(*_envelope(boxes)), predicate="intersects")
    return townships.iloc[np.sort(hit)]


def _own_conflicts(part: _Part, shared: _Shared, found: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Select this partition's rows of the line conflicts.

    Its own townships' rows, and the outside pieces by tile.
    """
    codes = set(shared.townships["code"].to_numpy()[part.towns])
    mine = np.array(found["township_code"].isin(codes), dtype=bool)
    rest = found["township_code"].isna().to_numpy()
    if rest.any():
        geoms = np.asarray(found.geometry.array, dtype=object)[rest]
        mine[np.flatnonzero(rest)] = _owned_by(geoms, shared.tiles[part.index])
    return found[mine]


def _outside_parts(part: _Part, shared: _Shared, prepared: dict, nearby) -> dict[str, dict]:
    """Per line: the outside-every-township pieces of the patches this tile owns, and areas.

    ``prepared`` holds the partition's prepared lines and ``nearby`` the prepared townships
    they can meet; the pieces are cut as in a local run (:func:`_overlay_geom.outside_parts`).
    """
    from spatialplan.analysis import _overlay_geom as _geom
    from spatialplan.analysis import overlay

    grid = overlay.DEFAULT_GRID_SIZE
    tile = shared.tiles[part.index]
    box = _clip_box(tile, shared.world)
    outline, coverage = nearby.dissolved
    out = {}
    for role, line in prepared.items():
        patches = line.geoms
        owned = np.flatnonzero(_owned_by(patches, tile, bounds=line.bounds))
        pairs = line.overlaps
        tile_m2 = 0.0 if box is None else _tile_area(line, box, pairs)
        mine = patches[owned]
        _, cut = _geom.outside_parts(mine, outline, grid_size=grid,
                                     tree=shapely.STRtree(mine), zones=nearby.geoms,
                                     coverage=coverage)
        is_owned = np.zeros(len(patches), dtype=bool)
        is_owned[owned] = True
        overlapping = bool((is_owned[pairs[0]] & is_owned[pairs[1]]).any())
        piece = overlay._outside_row(mine, cut, overlapping=overlapping, grid_size=grid,
                                     areas=line.area[owned])
        pieces = shapely.get_parts(piece["geometry"]) if piece["geometry"] is not None else []
        out[role] = {"n": piece["n_features"], "pieces": np.asarray(pieces, dtype=object),
                     "owned_m2": float(np.nansum(line.area[owned])),
                     "tile_m2": tile_m2, "overlaps": bool(len(pairs[0]))}
    return out


def _tile_area(line, box: tuple[float, float, float, float],
               pairs: tuple[np.ndarray, np.ndarray]) -> float:
    """Dissolved area of a prepared line inside the rectangle ``box``.

    Without overlapping features the dissolved area is the sum of their parts in the box: the
    features whose bounding box lies strictly inside it count whole, and only the others are
    clipped (a tile holds 10⁵ to 10⁶ parcels, its edge a few thousand).
    """
    from spatialplan.analysis import _overlay_geom as _geom
    from spatialplan.analysis import overlay

    grid = overlay.DEFAULT_GRID_SIZE
    zone = np.array([shapely.box(*box)])
    patches = line.geoms
    if len(pairs[0]):
        clip = _geom.clip_to_zones(zone, patches, grid_size=grid, tree=line.tree,
                                   patch_area=line.area)
        return float(_geom.dissolved_zone_areas(
            zone, patches, clip, grid_size=grid, overlaps=pairs)[0][0])
    b = line.bounds
    with np.errstate(invalid="ignore"):
        whole = (b[:, 0] > box[0]) & (b[:, 1] > box[1]) & (b[:, 2] < box[2]) & (b[:, 3] < box[3])
    edge = patches.copy()
    edge[whole] = None
    clip = _geom.clip_to_zones(zone, edge, grid_size=grid)
    return float(np.sum(line.area[whole]) + np.sum(clip.area))


def _terrain(part: _Part, shared: _Shared, towns: gpd.GeoDataFrame):
    """Slope statistics of the partition's own sites and townships from a DEM window.

    Returns the site and township statistics and, per role, how many features there were and
    how many met the DEM window: the driver raises the local engine's "none overlaps the DEM"
    error from the totals (a partition alone cannot tell).
    """
    if shared.dem is None:
        return None, pd.DataFrame(), {}
    from spatialplan.analysis import terrain
    from spatialplan.rules._sites import slope_min_pixels

    with _dem_window(shared.dem, shared.crs, part.dem_extent) as source:
        grid = terrain.read_terrain(source, crs=shared.crs, **dem_options(shared.dem))
    own = part.projects[part.own]
    own = own[~own.geometry.isna() & ~own.geometry.is_empty]
    slope = _zonal_or_empty(functools.partial(terrain.site_slope_stats,
                                              around_below=slope_min_pixels(shared.rules)),
                            own, grid, "feature_id")
    per_town = _zonal_or_empty(terrain.township_terrain_stats, towns, grid, "code")
    window = shapely.box(*grid.bounds)
    hits = {"sites": (len(own), int(own.intersects(window).sum())),
            "townships": (len(towns), int(towns.intersects(window).sum()))}
    return slope, per_town, hits


def _zonal_or_empty(func, frame: gpd.GeoDataFrame, grid, id_column: str) -> pd.DataFrame:
    """``func`` on ``frame``; a dummy cell keeps it working when no row meets the window."""
    if len(frame) == 0:
        return func(frame, grid, id_column=id_column)
    xmin, ymin, xmax, ymax = grid.bounds
    if frame.intersects(shapely.box(xmin, ymin, xmax, ymax)).any():
        return func(frame, grid, id_column=id_column)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    dummy = gpd.GeoDataFrame({id_column: ["\0dummy"]}, crs=frame.crs,
                             geometry=[shapely.box(cx - 1, cy - 1, cx + 1, cy + 1)])
    both = pd.concat([frame[[id_column, frame.geometry.name]], dummy], ignore_index=True)
    return func(both, grid, id_column=id_column).drop(index="\0dummy")


@contextlib.contextmanager
def _dem_window(dem, crs, extent) -> Iterator[Any]:
    """Open the DEM cells around ``extent`` (padded) as a dataset on the same grid."""
    import rasterio
    from affine import Affine
    from rasterio.io import MemoryFile
    from rasterio.windows import Window, from_bounds

    same = dem.crs is not None and pyproj.CRS.from_user_input(dem.crs).equals(
        pyproj.CRS.from_user_input(crs))
    if not same or extent is None:
        log.info("DEM %s is not in the analysis CRS: each partition warps it whole", dem.path)
        yield dem.path
        return
    with rasterio.open(dem.path) as ds:
        win = from_bounds(*extent, transform=ds.transform)
        col0 = max(math.floor(win.col_off) - _DEM_PAD_CELLS, 0)
        row0 = max(math.floor(win.row_off) - _DEM_PAD_CELLS, 0)
        col1 = min(math.ceil(win.col_off + win.width) + _DEM_PAD_CELLS, ds.width)
        row1 = min(math.ceil(win.row_off + win.height) + _DEM_PAD_CELLS, ds.height)
        if col1 - col0 < 3 or row1 - row0 < 3:  # the extent misses the DEM: any corner
            col0, row0, col1, row1 = 0, 0, min(ds.width, 8), min(ds.height, 8)
        window = Window(col0, row0, col1 - col0, row1 - row0)
        profile = ds.profile | {"driver": "GTiff", "width": window.width,
                                "height": window.height,
                                "transform": ds.transform @ Affine.translation(col0, row0)}
        for key in ("blockxsize", "blockysize", "tiled", "compress", "interleave"):
            profile.pop(key, None)
        data = ds.read(window=window)
    with MemoryFile() as mem:
        with mem.open(**profile) as out:
            out.write(data)
        with mem.open() as window_ds:
            yield window_ds
