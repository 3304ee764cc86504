"""Read layers and plans: sources, encodings, CRS, field mapping, validation and accounting.

:func:`read_layer` reads one vector source through pyogrio, picks the text encoding (declared,
``.cpg`` or detected from the ``.dbf`` bytes — never mojibake), checks the CRS (missing, Xian80 /
Beijing54, zone prefix, lon/lat swap, inside China), maps the user's field names to canonical
ones, parses dates and numbers, gives every feature a ``feature_id`` and validates geometries
with accounting. :func:`read_plan` does this for every layer of a plan, chooses the analysis
CRS, reprojects, opens rasters and loads the catalogue and rulebook.

Example
-------
>>> from spatialplan.io.read import read_plan, validation_report
>>> plan = read_plan("layers/demo/plan.toml")  # doctest: +SKIP
>>> validation_report(plan)[["role", "n_in", "n_ok", "n_rejected"]]  # doctest: +SKIP
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as _dt
import logging
import sqlite3
import warnings
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely

from spatialplan.core import _gdal_env
from spatialplan.core._inputs import check_raster, check_siblings, require_regular
from spatialplan.core._parallel import QUIET_IS_VALID, Overlap, n_threads
from spatialplan.core._progress import progress
from spatialplan.core.crs import (
    _to_analysis,
    _xy_bounds,
    check_area_of_use,
    check_inside_china,
    check_latlon_swap,
    check_near_reference,
    check_zone_prefix,
    choose_analysis_crs,
    refuse_ballpark,
    to_analysis,
)
from spatialplan.core.distortion import Distortion, check_distortion, measure_distortion
from spatialplan.errors import CRSError, DataLayerError, DataSourceError, FieldError, RasterError
from spatialplan.io._defer import (
    NOT_DEFERRABLE,
    extent_in,
    file_summary,
    refuse_declared_type,
    stand_in,
)
from spatialplan.io._encoding import (
    _choose_encoding,
    _sidecar,
    _warn_utf8_records,
    detect_dbf_encoding,
)
from spatialplan.io._fields import apply_fields, map_fields
from spatialplan.io._read_arrow import _arrow_read_ok, _read_arrow
from spatialplan.io._validate import non_finite, screen_geometries, validate_geometries
from spatialplan.io.plan import (
    LayerSpec,
    PlanSpec,
    RasterSpec,
    check_local_path,
    is_remote,
    read_plan_spec,
)
from spatialplan.io.postgis import is_postgres, mask_url, read_table
from spatialplan.io.roles import BUILTIN_ROLES, LAYER_ROLES, LayerRole, layer_role

__all__ = [
    "ALLOWED_DRIVERS",
    "Layer",
    "Plan",
    "RasterSource",
    "SourceInfo",
    "detect_dbf_encoding",
    "feature_issues",
    "open_raster",
    "raster_report",
    "read_layer",
    "read_plan",
    "read_spec_layer",
    "tbmj_report",
    "unknown_landuse_report",
    "validation_report",
]

log = logging.getLogger(__name__)

_gdal_env.lock_down()  # no network, no VRT code or raw files, for every GDAL open that follows

#: vector drivers read by spatialplan (others, e.g. "OGR_VRT", are refused)
ALLOWED_DRIVERS = ("GPKG", "ESRI Shapefile", "GeoJSON", "FlatGeobuf", "OpenFileGDB")
_ALLOWED_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gdb")


@dataclass
class SourceInfo:
    """Where a layer came from and how it was decoded.

    Attributes
    ----------
    path, layer, driver
        The source file, the layer name inside it and the GDAL driver.
    encoding
        Text encoding used (``None`` when not applicable).
    encoding_source
        How it was chosen: ``declared``, ``cpg``, ``detected``, ``format`` (UTF-8 by format).
    crs
        The source CRS (``None`` only if the source had none and nothing was assumed).
    crs_source
        ``source`` or ``assumed`` (``assume_crs``).
    fields
        Field mapping used, canonical name → source field name.
    n_zm_dropped
        Features whose Z/M coordinates were dropped.
    """

    path: Path | str
    layer: str | None
    driver: str
    encoding: str | None
    encoding_source: str
    crs: pyproj.CRS | None
    crs_source: str = "source"
    fields: dict[str, str] = field(default_factory=dict)
    n_zm_dropped: int = 0


@dataclass
class Layer:
    """One read layer: accepted features, rejected and repaired ones, and its source.

    Invariant: ``n_in == n_ok + n_repaired + n_rejected`` and ``n_ok + n_repaired == len(data)``,
    except for a deferred layer (``deferred=True``, :func:`read_plan`'s ``defer``): only opened,
    its ``data`` holds no feature, ``n_in`` is the source's feature count and ``extent`` their
    bounds in the CRS of ``data``. Its ``rejected`` and ``repaired`` features are those the dask
    partitions report (``accounted=True`` once :func:`~spatialplan.pipeline.engine.run_check_dask`
    has run; the first invariant then holds again).
    """

    role: str
    data: gpd.GeoDataFrame
    rejected: pd.DataFrame
    repaired: pd.DataFrame
    source: SourceInfo
    n_in: int
    #: the geometries of ``data`` as validated (the objects themselves, in order); a function
    #: handed exactly these objects may skip a repeated validity test (see
    #: :func:`spatialplan.analysis.overlay.control_line_report`'s ``known_valid``)
    validated: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: full-read row positions of the features whose Z/M coordinates were dropped
    zm_dropped: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64),
                                   repr=False, compare=False)
    #: full-read row positions of every feature read (kept or rejected), in source order
    read_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64),
                                  repr=False, compare=False)
    #: only opened (count, extent, CRS): its features are read elsewhere (the dask partitions)
    deferred: bool = False
    #: a deferred layer whose repaired and rejected features the partitions have reported
    #: (:func:`spatialplan.pipeline.engine.run_check_dask`): its counts are then known
    accounted: bool = False
    #: a deferred layer's feature bounds (minx, miny, maxx, maxy) in the CRS of ``data``
    extent: tuple[float, float, float, float] | None = None

    @property
    def n_repaired(self) -> int:
        """Number of features kept after a recorded repair."""
        return len(self.repaired)

    @property
    def n_rejected(self) -> int:
        """Number of features rejected (listed in ``rejected``)."""
        return len(self.rejected)

    @property
    def n_ok(self) -> int:
        """Number of features kept unchanged."""
        if self.deferred:
            return self.n_in - len(self.repaired) - len(self.rejected)
        return len(self.data) - len(self.repaired)


@dataclass
class RasterSource:
    """An opened (not loaded) raster, e.g. the DEM.

    ``crs`` and ``nodata`` are the effective values (the plan's ``assume_crs`` / ``nodata``
    applied; the plan's own values are kept in ``assume_crs`` and ``nodata_override``).
    ``problems`` lists what is missing (no CRS, no nodata); :meth:`require` raises only when a
    caller actually needs those properties.
    """

    name: str
    path: Path | str
    crs: pyproj.CRS | None
    nodata: float | None
    res: tuple[float, float]
    bounds: tuple[float, float, float, float]
    crs_source: str = "source"
    nodata_source: str = "source"
    problems: list[str] = field(default_factory=list)
    assume_crs: str | None = None
    nodata_override: float | None = None

    def require(self, *, crs: bool = True, nodata: bool = True) -> None:
        """Raise :class:`RasterError` if the CRS or nodata value needed by the caller is missing.

        Example
        -------
        >>> dem.require(crs=True, nodata=True)  # doctest: +SKIP
        """
        if crs and self.crs is None:
            raise RasterError("raster has no CRS", path=self.path, layer=self.name,
                              hint=f"add assume_crs under [rasters.{self.name}] in the plan")
        if nodata and self.nodata is None:
            raise RasterError("raster has no nodata value", path=self.path, layer=self.name,
                              hint=f"add nodata = <value> under [rasters.{self.name}]")


@dataclass
class Plan:
    """A read plan: every layer in the analysis CRS, rasters, rules and catalogue.

    ``rules`` is the merged rulebook (:func:`spatialplan.rules.rulebook.read_rules`), ``catalog``
    the :class:`spatialplan.rules.catalog.Catalog`, ``rules_path`` the user's rulebook file if any,
    ``catalog_path`` the user's facility catalogue if any.
    """

    name: str
    path: Path | None
    crs: pyproj.CRS
    crs_reason: str
    as_of: _dt.date
    layers: dict[str, Layer]
    rasters: dict[str, RasterSource] = field(default_factory=dict)
    rules: dict = field(default_factory=dict)
    catalog: Any = None
    rules_path: Path | None = None
    catalog_path: Path | None = None
    #: the analysis CRS's largest scale distortion on the data (None: no geometry)
    crs_distortion: Distortion | None = None


# -- sources ---------------------------------------------------------------------------------


def _open_info(path: Path | str, *, role: str, layer: str | None,
               sqlite_checked: set[Path] | None = None,
               sqlite_pending: dict[Path, Future] | None = None) -> tuple[str | None, dict]:
    """Return (layer name, pyogrio info) after checking existence, layers and driver.

    ``sqlite_checked`` and ``sqlite_pending`` (see :func:`_sniff`) let one :func:`read_plan`
    call check each GeoPackage once, however many of its layers the plan reads.
    """
    if isinstance(path, Path) and not path.exists():
        raise DataSourceError("data source not found", path=path, layer=role,
                              hint="check the path in the plan (relative to the plan file)")
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    if suffix not in _ALLOWED_SUFFIXES:
        kind = {".vrt": " (OGR_VRT)", ".csv": " (CSV)", ".kml": " (KML)"}.get(suffix, "")
        raise DataSourceError(
            f"format '{suffix or '(no suffix)'}'{kind} is not accepted", path=path, layer=role,
            hint="convert to GeoPackage (.gpkg), Shapefile (.shp), GeoJSON (.geojson), "
            "FlatGeobuf (.fgb) or FileGDB (.gdb)",
        )
    if isinstance(path, Path):
        require_regular(path, error=DataSourceError, layer=role, folder_ok=suffix == ".gdb",
                        what="the data source")
        check_siblings(path, error=DataSourceError, layer=role)
        _sniff(path, suffix, role=role, sqlite_checked=sqlite_checked,
               sqlite_pending=sqlite_pending)
    layer = _pick_layer(path, layer=layer, role=role)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = pyogrio.read_info(path, layer=layer)
    except Exception as exc:
        raise DataSourceError(f"cannot read layer information: {exc}", path=path,
                              layer=role) from exc
    if info.get("driver") not in ALLOWED_DRIVERS:
        raise DataSourceError(
            f"driver {info.get('driver')!r} is not accepted", path=path, layer=role,
            hint="convert to one of: " + ", ".join(ALLOWED_DRIVERS),
        )
    return layer, info


def _pick_layer(path: Path | str, *, layer: str | None, role: str) -> str:
    """Return the layer to read: ``layer``, checked to exist, or the source's only layer."""
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # pyogrio raises its own DataSourceError family
        raise DataSourceError(f"cannot open as vector data: {exc}", path=path, layer=role,
                              hint="use a GeoPackage, Shapefile, GeoJSON, FlatGeobuf or "
                              "FileGDB") from exc
    names = [str(n) for n in layers[:, 0]] if len(layers) else []
    if not names:
        raise DataLayerError("data source has no layers", path=path, layer=role,
                             hint="check the file")
    if layer is None:
        if len(names) > 1:
            raise DataLayerError(
                f"data source has {len(names)} layers; say which one to read", path=path,
                layer=role, hint=f'add layer = "..." under [layers.{role}]; layers: '
                + ", ".join(names),
            )
        return names[0]
    if layer not in names:
        raise DataLayerError(f"layer '{layer}' not found in the data source", path=path,
                             layer=role, hint="layers in the source: " + ", ".join(names))
    return layer


_SQLITE_MAGIC = b"SQLite format 3\x00"
_SHP_MAGIC = b"\x00\x00\x27\x0a"  # file code 9994, big-endian
_FGB_MAGIC = b"fgb\x03"


def _sniff(path: Path, suffix: str, *, role: str, sqlite_checked: set[Path] | None = None,
           sqlite_pending: dict[Path, Future] | None = None) -> None:
    """Check a local file's content matches its suffix before GDAL opens it.

    GDAL picks the driver from the content, not the name: an OGR VRT (which can read other
    local files) or any other format renamed to ``.gpkg`` / ``.geojson`` would otherwise be
    opened by its own driver. Also requires the ``.shx`` and ``.dbf`` of a shapefile (without
    its ``.dbf`` GDAL reads the geometries and silently drops every attribute) and runs
    SQLite's ``quick_check`` on a GeoPackage, unless the GeoPackage (resolved path) is in
    ``sqlite_checked``, the files already checked by this :func:`read_plan` call; a file that
    passes is added to it. When ``sqlite_pending`` holds the file's check, started ahead by
    :func:`_sqlite_checks_ahead`, its outcome is awaited here instead (same error, same place).
    """
    if path.is_dir():
        if suffix != ".gdb":
            raise DataSourceError("the path is a folder, not a data file", path=path,
                                  layer=role, hint="name the data file itself")
        return
    if suffix == ".gdb":
        raise DataSourceError("a FileGDB is a folder, but this is a file", path=path,
                              layer=role, hint="name the .gdb folder")
    with path.open("rb") as fh:
        head = fh.read(512)
    if not head:
        raise DataSourceError("the file is empty (0 bytes)", path=path, layer=role,
                              hint="re-export the layer")
    if suffix == ".gpkg":
        _sniff_gpkg(path, head, role=role, sqlite_checked=sqlite_checked,
                    sqlite_pending=sqlite_pending)
    elif suffix in (".geojson", ".json"):
        text = head.removeprefix(codecs.BOM_UTF8).lstrip()
        if not text.startswith(b"{"):
            raise DataSourceError("the file does not look like GeoJSON (it does not start "
                                  "with '{')", path=path, layer=role,
                                  hint="re-export the layer as GeoJSON")
    elif suffix == ".shp":
        _sniff_shp(path, head, role=role)
    elif suffix == ".fgb" and not head.startswith(_FGB_MAGIC):
        raise DataSourceError("not a FlatGeobuf file", path=path, layer=role,
                              hint="re-export the layer as FlatGeobuf")


def _sniff_gpkg(path: Path, head: bytes, *, role: str, sqlite_checked: set[Path] | None,
                sqlite_pending: dict[Path, Future] | None) -> None:
    """Run the GeoPackage part of :func:`_sniff`: SQLite header, then ``quick_check`` once."""
    if not head.startswith(_SQLITE_MAGIC):
        raise DataSourceError("cannot open as GeoPackage: the file is not an SQLite "
                              "database",
                              path=path, layer=role,
                              hint="re-export the layer as GeoPackage")
    key = path.resolve()
    if sqlite_checked is None or key not in sqlite_checked:
        ahead = sqlite_pending.pop(key, None) if sqlite_pending is not None else None
        if ahead is None:
            _check_sqlite(path, role=role)
        else:
            ahead.result()
        if sqlite_checked is not None:
            sqlite_checked.add(key)


def _sniff_shp(path: Path, head: bytes, *, role: str) -> None:
    """Run the Shapefile part of :func:`_sniff`: the .shp header and the .shx, .dbf beside it."""
    if not head.startswith(_SHP_MAGIC):
        raise DataSourceError("not a Shapefile: the .shp header is wrong", path=path,
                              layer=role, hint="re-export the layer as Shapefile")
    for side in (".shx", ".dbf"):
        if _sidecar(path, side) is None:
            raise DataSourceError(
                f"the shapefile's {side} file is missing", path=path, layer=role,
                hint=f"copy {path.with_suffix(side).name} beside the .shp (a shapefile is "
                ".shp + .shx + .dbf, usually .prj and .cpg too)")


def _check_sqlite(path: Path, *, role: str) -> None:
    """Run SQLite's ``quick_check`` on a GeoPackage, read-only; damage → DataSourceError."""
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            rows = con.execute("PRAGMA quick_check(5)").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise DataSourceError(f"the GeoPackage is damaged: SQLite integrity check failed ({exc})",
                              path=path, layer=role,
                              hint="restore the file from a backup or re-export it") from exc
    problems = [" ".join(str(r[0]).replace("*** in database main ***", "").split())
                for r in rows if r and r[0] != "ok"]
    if problems:
        raise DataSourceError(
            "the GeoPackage is damaged: SQLite integrity check found " + "; ".join(problems)[:300],
            path=path, layer=role, hint="restore the file from a backup or re-export it")


@contextlib.contextmanager
def _sqlite_checks_ahead(spec: PlanSpec, roles: list[str]) -> Iterator[dict[Path, Future]]:
    """Start the ``quick_check`` of every local GeoPackage of a plan in one background thread.

    The files are checked in the order the layers first use them, while the layers before
    are read (SQLite releases the GIL); :func:`_sniff` then waits for a file's check where it
    would have run it, with the error for the layer that first reads the file. Yields
    resolved path → future (empty with one thread, :func:`spatialplan.core._parallel.n_threads`,
    and without a file first read after the first layer); on leaving, checks not started are
    cancelled and a running one is waited for.
    """
    ahead: dict[Path, tuple[Path, str]] = {}  # resolved path → (path, first role using it)
    for role in roles:
        path = spec.layers[role].path
        if isinstance(path, Path) and not is_remote(path) and path.suffix.lower() == ".gpkg" \
                and path.is_file():
            ahead.setdefault(path.resolve(), (path, role))
    # the first layer's file is checked where it is read: nothing is read before it
    ahead = {key: item for key, item in ahead.items() if item[1] != roles[0]}
    if n_threads() <= 1 or not ahead:
        yield {}
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spatialplan-sqlite")
    try:
        yield {key: pool.submit(_check_sqlite, path, role=role)
               for key, (path, role) in ahead.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- layers ----------------------------------------------------------------------------------


def _read_frame(path: Path | str, *, layer: str | None, encoding: str | None,
                role: str, bbox: tuple[float, float, float, float] | None = None,
                fids: np.ndarray | None = None, info: dict | None = None,
                screening: Overlap | None = None) -> gpd.GeoDataFrame:
    """Read the layer; geometries GEOS cannot build (unclosed ring) become None, recorded.

    ``gdf.attrs["unreadable"]`` maps row position → reason for those features, so that they
    are rejected with that reason instead of failing the whole layer. With the layer's
    pyogrio ``info``, a layer for which :func:`_arrow_read_ok` holds is first read through
    Arrow (same frame, about twice as fast); if that fails in any way (an unreadable
    geometry, text that is not UTF-8...) the classic read decides, with its own errors.
    A large layer read through Arrow hands its geometries, batch by batch as they are
    decoded, to ``screening`` (see :func:`spatialplan.io._read_arrow._read_arrow_split`); otherwise
    nothing is submitted.
    """
    gdf: gpd.GeoDataFrame | None = None
    caught: list[warnings.WarningMessage] = []
    if info is not None and fids is None and _arrow_read_ok(info):
        gdf, caught = _read_arrow(path, layer=layer, info=info, screening=screening, bbox=bbox)
    if gdf is None:
        gdf, caught = _read_classic(path, layer=layer, encoding=encoding, role=role, bbox=bbox,
                                    fids=fids)
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and str(w.message).startswith(
                "invalid value encountered"):
            continue  # shapely on a NaN coordinate: its feature is rejected and named
        log.warning("layer %s: %s", role, w.message)
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise DataLayerError("layer has no geometry column", path=path, layer=role,
                             hint="give a spatial layer")
    return gdf


def _read_classic(path: Path | str, *, layer: str | None, encoding: str | None, role: str,
                  bbox: tuple[float, float, float, float] | None,
                  fids: np.ndarray | None = None) -> tuple[gpd.GeoDataFrame, list]:
    """(frame, warnings) read without Arrow; unreadable geometries recorded (see above).

    A partial read (``bbox`` or ``fids``) has the source FIDs as its index.
    """
    partial = bbox is not None or fids is not None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            gdf = pyogrio.read_dataframe(path, layer=layer, encoding=encoding, bbox=bbox,
                                         fids=fids, fid_as_index=partial, use_arrow=False)
            unreadable: dict[int, str] = {}
        except shapely.errors.GEOSException as exc:
            gdf = pyogrio.read_dataframe(path, layer=layer, encoding=encoding,
                                         on_invalid="ignore", bbox=bbox, fids=fids,
                                         fid_as_index=partial, use_arrow=False)
            unreadable = _unreadable_rows(path, layer=layer, bbox=bbox, fids=fids, gdf=gdf,
                                          error=str(exc))
        except Exception as exc:
            hint = None
            if isinstance(exc, UnicodeDecodeError) or "codec can't decode" in str(exc):
                hint = (f"the text is not {encoding}: fix encoding under [layers.{role}] "
                        "(GBK / GB18030 / UTF-8) or remove it to detect it")
            raise DataSourceError(f"cannot read the layer: {exc}", path=path,
                                  layer=role, hint=hint) from exc
    gdf.attrs["unreadable"] = unreadable
    return gdf, list(caught)


def _unreadable_rows(path: Path | str, *, gdf: gpd.GeoDataFrame, error: str,
                     **options: Any) -> dict[int, str]:
    """Rows whose stored geometry exists but could not be built (None after on_invalid)."""
    options.pop("fid_as_index", None)
    wkb = pyogrio.raw.read(path, columns=[], **options)[2]
    missing = np.asarray(gdf.geometry.isna())
    stored = np.array([w is not None and len(w) > 0 for w in wkb], dtype=bool)
    reason = f"unreadable geometry: {error.split(':', 1)[-1].strip()} (e.g. a ring not closed)"
    return {int(i): reason for i in np.flatnonzero(missing & stored)}


def _assign_crs(gdf: gpd.GeoDataFrame, *, assume_crs: str | None, role: str,
                path: Path | str) -> tuple[gpd.GeoDataFrame, str]:
    if assume_crs is None:
        if gdf.crs is None:
            raise CRSError(
                "layer has no CRS", path=path, layer=role,
                hint=f'add assume_crs = "EPSG:4490" (or the right CRS) under [layers.{role}]',
            )
        return gdf, "source"
    assumed = pyproj.CRS.from_user_input(assume_crs)
    if gdf.crs is not None and not pyproj.CRS.from_user_input(gdf.crs).equals(assumed):
        log.warning("layer %s: assume_crs %s overrides the source CRS %s", role, assume_crs,
                    gdf.crs.name)
        return gdf.set_crs(assumed, allow_override=True), "assumed (overrides source)"
    return gdf.set_crs(assumed, allow_override=True), "assumed" if gdf.crs is None else "source"


def _first_reasons(rejected: pd.DataFrame, *, n: int = 3) -> str:
    """``"id: reason; ..."`` of the first ``n`` rejected features, and how many more."""
    rows = [f"{f}: {r}" for f, r in zip(rejected["feature_id"][:n], rejected["reason"][:n],
                                         strict=True)]
    more = len(rejected) - len(rows)
    return "; ".join(rows) + (f"; and {more} more" if more > 0 else "")

#: shapely type ids of geometries that hold (or may hold) an area: Polygon, MultiPolygon,
#: GeometryCollection (judged feature by feature); Point and MultiPoint; lines
_AREA_TYPES, _POINT_TYPES, _LINE_TYPES = (3, 6, 7), (0, 4), (1, 2, 5)

#: shapely type id → name, for the message naming what a refused layer holds
_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def _refuse_wrong_geometry_layer(gdf: gpd.GeoDataFrame, *, spec: LayerRole, where: str,
                                 path: object) -> None:
    """Refuse a layer none of whose geometries is of its role's type.

    Feature by feature, a stray geometry of another type is rejected and counted; a layer
    with none of the role's type is the wrong layer (e.g. township boundaries exported as
    lines, river areas given for a line role), and rejecting every feature would leave a run
    that measures nothing. A role of any type (a plug-in's layer without ``geometry``) is not
    checked.
    """
    if spec.geometry == "polygon":
        _refuse_non_polygon_layer(gdf, role=spec.name, where=where, path=path,
                                  point_sites=spec.point_sites)
        return
    if spec.geometry not in ("line", "point", "point_or_polygon"):
        return
    geoms = gdf.geometry.values
    types = shapely.get_type_id(geoms)
    types = types[(types >= 0) & ~shapely.is_empty(geoms)]
    wanted = (*_WANTED[spec.geometry], 7)
    if len(types) == 0 or np.isin(types, wanted).any():
        return
    role = spec.name
    found = _found(types)
    what = ("polygons" if np.isin(types, _AREA_TYPES).any()
            else "points" if np.isin(types, _POINT_TYPES).any() else "lines")
    held = _HELD[spec.geometry]
    if spec.builtin:  # pragma: no cover - every built-in role holds polygons today
        fix = f"give the {role} layer as {spec.geometry}s"
    else:
        fix = (f"give the {role} as {spec.geometry}s (the {spec.geometry} layer of the data "
               f"set, not its {what}), or, if the role holds {what}, write geometry = "
               f"\"{_GEOMETRY_OF[what]}\" under [layers.{role}] in the plan file")
    raise DataLayerError(f"the {role} layer holds {what}, not {spec.geometry}s ({found} "
                         f"geometries): the plan declares {role} a {spec.geometry} layer "
                         f"({held})", path=path, layer=where, hint=fix)


#: the geometry type ids a line, point, or point-or-polygon role holds, and their names
_WANTED = {"line": _LINE_TYPES, "point": _POINT_TYPES,
           "point_or_polygon": (*_POINT_TYPES, 3, 6)}
_HELD = {"line": "LineString or MultiLineString", "point": "Point or MultiPoint",
         "point_or_polygon": "Point, MultiPoint, Polygon or MultiPolygon"}

#: a plan's geometry value for each kind of geometry a refused layer holds
_GEOMETRY_OF = {"polygons": "polygon", "lines": "line", "points": "point"}


def _found(types: np.ndarray) -> str:
    """``"2 LineString, 1 Point"``: how many geometries of each type."""
    kinds = pd.Series(types).map(_TYPE_NAMES).value_counts()
    return ", ".join(f"{n} {kind}" for kind, n in kinds.items())


def _refuse_non_polygon_layer(gdf: gpd.GeoDataFrame, *, role: str, where: str,
                              path: object, point_sites: bool = False) -> None:
    """Refuse a layer of a polygon role none of whose geometries is an area.

    Such a layer holds lines or points only.

    Point sites of a role with ``point_sites`` (projects) are the exception: each is buffered
    by ``point_radius_m`` or rejected with a reason naming it.
    """
    geoms = gdf.geometry.values
    types = shapely.get_type_id(geoms)
    present = (types >= 0) & ~shapely.is_empty(geoms)
    types = types[present]
    if len(types) == 0 or np.isin(types, _AREA_TYPES).any():
        return
    if point_sites and np.isin(types, _POINT_TYPES).any():
        return
    found = _found(types)
    lines = bool(np.isin(types, _LINE_TYPES).any())
    what = "lines" if lines else "points"
    if role == "townships" and lines:
        fix = ("give the township areas: the polygon layer (面, e.g. XZQ), not the boundary "
               "lines (线, e.g. XZJX); closed boundary lines can be turned into polygons "
               "(QGIS: Vector > Geometry Tools > Lines to Polygons) and checked")
    elif role == "projects":
        fix = ("give the project sites as polygons, or as points with point_radius_m = 15 (the "
               "site's radius in metres) under [layers.projects] in the plan file")
    else:
        fix = (f"give the {role} areas as polygons (the polygon layer of the data set, not its "
               f"{what})")
    raise DataLayerError(f"the {role} layer holds {what}, not polygons ({found} geometries): "
                         f"a {role} layer must hold areas (Polygon or MultiPolygon)",
                         path=path, layer=where, hint=fix)


def _refuse_no_usable_townships(accepted: gpd.GeoDataFrame, rejected: pd.DataFrame, *,
                                where: str, path: object) -> None:
    """Refuse a townships layer whose every feature was rejected: nothing is left to measure.

    (Rejected projects are each reported with an ``error`` verdict instead.)
    """
    if len(accepted) or not len(rejected):
        return
    raise DataLayerError(f"no usable township: all {len(rejected)} features of the townships "
                         f"layer were rejected, e.g. {_first_reasons(rejected)}", path=path,
                         layer=where,
                         hint="repair the township polygons (each rejection's reason says what is "
                         "wrong) or point the plan to the right layer")


def _note_unreadable(rejected: pd.DataFrame, reasons: dict[str, str]) -> pd.DataFrame:
    """Give features whose geometry could not be built (feature_id → reason) that reason."""
    if not reasons:
        return rejected
    rejected = rejected.copy()
    rejected["reason"] = [reasons.get(f, r) for f, r in
                          zip(rejected["feature_id"], rejected["reason"], strict=True)]
    return rejected


def _check_unique_codes(gdf: pd.DataFrame, *, role: str, layer: str, path: object) -> None:
    """Townships must have unique codes: statistics are reported per code."""
    if role != "townships" or "code" not in gdf.columns:
        return
    codes = gdf["code"]
    dup = codes.notna() & codes.duplicated(keep=False)
    if dup.any():
        code = codes[dup].iloc[0]
        ids = gdf.loc[codes == code, "feature_id"].tolist()
        raise FieldError(
            f"duplicate township code '{code}' ({', '.join(ids)})", path=path, layer=layer,
            feature=ids[-1], hint="give each township one feature (dissolve the parts into "
            "a MultiPolygon) and a unique code")


def _reject_duplicate_ids(accepted: gpd.GeoDataFrame, rejected: pd.DataFrame, *, role: str,
                          layer: str) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Reject every project sharing its project_id with another one: never merge them."""
    if role != "projects" or "project_id" not in accepted.columns:
        return accepted, rejected
    ids = pd.concat([accepted["project_id"], rejected.get("project_id", pd.Series(
        dtype=object))], ignore_index=True)
    counts = ids[ids.notna()].value_counts()
    dups = set(counts[counts > 1].index)
    if not dups:
        return accepted, rejected
    fids = {pid: sorted(list(accepted.loc[accepted["project_id"] == pid, "feature_id"])
                        + list(rejected.loc[rejected["project_id"] == pid, "feature_id"]),
                        key=lambda f: int(f.split(":")[-1])) for pid in dups}

    def why(pid: object) -> str:
        return (f"duplicate project_id '{pid}' (features {', '.join(fids[pid])}): "
                "not merged, give each project its own id")

    move = accepted["project_id"].isin(dups)
    geom = accepted.geometry.name
    moved = pd.DataFrame(accepted.loc[move].drop(columns=geom)).reset_index(drop=True)
    moved.insert(1, "reason", [why(p) for p in moved["project_id"]])
    moved.insert(2, "area_before_m2", np.nan)
    moved.insert(3, "area_after_m2", np.nan)
    rejected = rejected.copy()
    old = rejected["project_id"].isin(dups) if "project_id" in rejected else []
    if len(rejected) and np.any(old):
        rejected.loc[old, "reason"] = [f"{r}; {why(p)}" for r, p in zip(
            rejected.loc[old, "reason"], rejected.loc[old, "project_id"], strict=True)]
    out = pd.concat([rejected, moved[rejected.columns]] if len(rejected) else [moved],
                    ignore_index=True)
    out = out.iloc[np.argsort([int(f.split(":")[-1]) for f in out["feature_id"]],
                              kind="stable")].reset_index(drop=True)
    log.warning("layer %s: %d projects share a project_id and are rejected: %s", layer,
                int(move.sum()), ", ".join(sorted(map(str, dups))))
    return accepted.loc[~move].copy(), out


def read_layer(path: str | Path, *, role: str, layer: str | None = None,
               encoding: str | None = None, assume_crs: str | None = None,
               fields: dict[str, str] | None = None, crs: Any = None,
               point_radius_m: float | None = None, allow_remote: bool = False,
               transformation: str | None = None,
               bbox: tuple[float, float, float, float] | None = None,
               feature_positions: Any = None, geometry: str | None = None,
               where: str | None = None, geometry_column: str | None = None,
               fids: np.ndarray | None = None) -> Layer:
    """Read, check, map and validate one layer.

    Parameters
    ----------
    path
        Vector source (GeoPackage, Shapefile, GeoJSON, FlatGeobuf, FileGDB folder), or a
        PostgreSQL URL without password (``postgresql://user@host/db``; ``layer`` is then
        ``schema.table``, see :mod:`spatialplan.io.postgis`).
    role
        Built-in role (``townships``, ``redline``, ...,
        :data:`spatialplan.io.roles.BUILTIN_ROLES`): decides the geometry type and the
        canonical fields; or a role of one's own with ``geometry``.
    layer
        Layer name; required when the source has several layers.
    encoding
        Declared text encoding; wins over ``.cpg`` and detection (shapefiles).
    assume_crs
        CRS for a source without one (overrides a source CRS with a warning).
    fields
        Canonical name → source field name; overrides the default aliases.
    crs
        Analysis CRS to reproject to; None keeps the source CRS.
    point_radius_m
        Buffer point sites to this radius (m) instead of rejecting them.
    allow_remote
        Accept URLs and ``/vsi*`` paths (refused by default).
    geometry
        ``"polygon"``, ``"line"`` or ``"point"``: declares ``role`` as a role of one's own
        (not built in; its canonical fields are the keys of ``fields``) holding that type,
        or restates a built-in role's (another one is a ``PlanError``).
    transformation
        PROJ pipeline for a datum shift (needed to accept Xian80/Beijing54 sources).
    bbox
        ``(xmin, ymin, xmax, ymax)`` in the source CRS: read only the features intersecting it
        (used by :mod:`spatialplan.pipeline.engine`; ``n_in`` then counts those features only).
    feature_positions
        With ``bbox`` or ``fids``: callable mapping the source FIDs read to their 0-based row
        positions in the whole source, so that ``feature_id`` and row order match a full read.
    fids
        Read only the features with these source FIDs (a PostGIS table: these primary keys,
        or ``ctid`` values for a table without one); ``n_in`` then counts those features
        only. Not with ``bbox``.
    where, geometry_column
        PostGIS layers only: the row filter (:func:`spatialplan.io.postgis.parse_where`) and
        the geometry column of a table that has several.

    Returns
    -------
    Layer

    Raises
    ------
    DataSourceError, DataLayerError, FieldError, CRSError

    Example
    -------
    >>> lyr = read_layer("townships.shp", role="townships", crs="EPSG:4545")  # doctest: +SKIP
    >>> lyr.n_in == lyr.n_ok + lyr.n_repaired + lyr.n_rejected  # doctest: +SKIP
    True
    """
    return _read_layer(path, role=role, layer=layer, encoding=encoding, assume_crs=assume_crs,
                       fields=fields, crs=crs, point_radius_m=point_radius_m,
                       allow_remote=allow_remote, transformation=transformation, bbox=bbox,
                       feature_positions=feature_positions, geometry=geometry,
                       where_filter=where, geometry_column=geometry_column, fids=fids)


def _feature_ids(role: str, rows: np.ndarray) -> Any:
    """``"{role}:{n}"`` for every row position ``n`` (as the list of f-strings would give)."""
    if len(rows) == 0:
        return []
    return (f"{role}:" + pd.Series(np.asarray(rows, dtype=np.int64)).astype(str)).array


#: the vectorised validity screening of a polygon layer's geometries (every built-in role)
_SCREEN = partial(screen_geometries, polygonal=True)


def _screen_for(geometry: str) -> Any:
    """Return the screening function of a layer of ``geometry`` type."""
    return _SCREEN if geometry == "polygon" else partial(screen_geometries, geometry=geometry)


def _screened(screening: Overlap, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Return :func:`screen_geometries` of the layer's ``n`` geometries, or None.

    The result comes from the batches screened while the layer was read. None when nothing was
    submitted or a batch failed (``validate_geometries`` then screens the layer itself and
    raises that error in its usual place).
    """
    if len(screening) == 0:
        return None
    try:
        parts = screening.results()
    except Exception:
        return None
    geoms, zm, ok = (np.concatenate(column) for column in zip(*parts, strict=True))
    return (geoms, zm, ok) if len(geoms) == n else None


def read_spec_layer(ls: LayerSpec, *, role: str, **options: Any) -> Layer:
    """Read one ``[layers.<role>]`` entry of a plan as :func:`read_plan` reads it.

    The entry's path, layer, encoding, CRS, fields, point radius, geometry type, ``where`` and
    geometry column go to the reader; ``options`` are the reader's others (``crs``, ``bbox``,
    ``fids``, ``feature_positions``, ``plugin_role``, ``allow_remote``, ``sqlite_checked``...).
    The dask partitions and the steps that read a deferred layer whole use it too.
    """
    return _read_layer(ls.path, role=role, layer=ls.layer, encoding=ls.encoding,
                       assume_crs=ls.assume_crs, fields=ls.fields,
                       point_radius_m=ls.point_radius_m, geometry=ls.geometry,
                       where_filter=ls.where, geometry_column=ls.geometry_column, **options)


def _read_layer(path: str | Path, *, allow_remote: bool = False, **options: Any) -> Layer:
    """Read a layer as :func:`read_layer` does.

    ``sqlite_checked``, ``sqlite_pending`` as in :func:`_sniff` (one per :func:`read_plan`).
    GDAL stays locked (:mod:`spatialplan.core._gdal_env`) unless ``allow_remote``.
    """
    with _gdal_env.remote_allowed(allow_remote):
        return _read_layer_opened(path, allow_remote=allow_remote, **options)


def _in_source_order(gdf: gpd.GeoDataFrame, unreadable: dict[int, str], *, role: str,
                     partial: bool, feature_positions: Any
                     ) -> tuple[gpd.GeoDataFrame, np.ndarray, dict[str, str]]:
    """Return (frame on a fresh index, source row of each feature, unreadable by feature id).

    A partial read (``bbox`` or ``fids``) is put in source order, its rows the full read's
    positions.
    """
    rows = np.arange(len(gdf))
    if partial:  # index = source FIDs: keep source order and full-read ids
        rows = np.asarray(gdf.index if feature_positions is None
                          else feature_positions(gdf.index.to_numpy()), dtype=np.int64)
    # ``unreadable`` holds positions in the frame as read: map them before any reordering
    by_id = {f"{role}:{rows[i]}": why for i, why in unreadable.items()}
    if partial:
        order = np.argsort(rows, kind="stable")
        gdf, rows = gdf.iloc[order], rows[order]
    return gdf.reset_index(drop=True), rows, by_id


def _check_crs_bounds(gdf: gpd.GeoDataFrame, screened: tuple[np.ndarray, np.ndarray, np.ndarray],
                      src_crs: pyproj.CRS, *, transformation: str | None, where: str,
                      path: Path | str) -> None:
    """Check the layer's bounds fit its CRS: no swapped lat/lon, zone prefix, area of use."""
    # features with a NaN / infinite coordinate are rejected later: keep them out of the
    # bounds the CRS checks read (inf // 1e6 is NaN, and one would mislead every check)
    bad = non_finite(screened)
    bounds = _xy_bounds(gdf.loc[~bad] if bad.any() else gdf)
    check_latlon_swap(bounds, src_crs, layer=where, path=path)
    check_zone_prefix(bounds, src_crs, layer=where, path=path)
    if transformation is None:
        check_area_of_use(bounds, src_crs, layer=where, path=path)


def _screened_valid(accepted: gpd.GeoDataFrame, repaired: pd.DataFrame) -> np.ndarray:
    """Mark the accepted features the screening passed as they are (GEOS holds them valid).

    Every accepted feature is ok as read (:func:`screen_geometries`: valid) or repaired; the
    repaired ones are left to :func:`check_inside_china` to test coordinate by coordinate.
    """
    if len(repaired) == 0:
        return np.ones(len(accepted), dtype=bool)
    return ~accepted["feature_id"].isin(repaired["feature_id"]).to_numpy(dtype=bool)


def _warn_point_sites(rejected: pd.DataFrame, *, where: str) -> None:
    """Log how many point project sites were rejected for want of ``point_radius_m``."""
    n_points = int(rejected["reason"].astype(str).str.contains(
        "gives no point_radius_m", regex=False).sum())
    if n_points:
        log.warning("layer %s: %d point sites rejected (verdict error): add "
                    "point_radius_m = 15 (the site's radius in metres) under "
                    "[layers.projects] in the plan file", where, n_points)


def _open_file(path: str | Path, *, role: str, layer: str | None, encoding: str | None,
               allow_remote: bool, partial: bool, sqlite_checked: set[Path] | None,
               sqlite_pending: dict[Path, Future] | None
               ) -> tuple[Path | str, str | None, dict, str | None, str]:
    """Check and open a file source: (path, layer, pyogrio info, encoding, its source)."""
    check_local_path(path, allow_remote=allow_remote, layer=role)
    path = str(path).strip() if is_remote(path) else Path(path)
    layer, info = _open_info(path, role=role, layer=layer, sqlite_checked=sqlite_checked,
                             sqlite_pending=sqlite_pending)
    enc, enc_source = _choose_encoding(path, info, encoding=encoding, role=role)
    if not partial:  # a partial read (engine) of a layer read whole before: warned then
        _warn_utf8_records(path, info, enc, role=role)
    return path, layer, info, enc, enc_source


def _read_source(path: str | Path, *, database: bool, layer: str | None, role: str,
                 encoding: str | None, bbox: tuple | None, fids: np.ndarray | None, info: dict,
                 where_filter: str | None, geometry_column: str | None,
                 screening: Overlap) -> tuple[gpd.GeoDataFrame, dict]:
    """Read the raw frame of an opened file layer, or of a PostGIS table, and its info."""
    if database:
        return read_table(str(path), layer=layer, role=role, where=where_filter,
                          geometry_column=geometry_column, bbox=bbox, keys=fids,
                          screening=screening)
    return _read_frame(path, layer=layer, encoding=encoding, role=role, bbox=bbox, fids=fids,
                       info=info, screening=screening), info


def _read_layer_opened(path: str | Path, *, role: str, layer: str | None = None,
                       encoding: str | None = None, assume_crs: str | None = None,
                       fields: dict[str, str] | None = None, crs: Any = None,
                       point_radius_m: float | None = None, allow_remote: bool = False,
                       transformation: str | None = None,
                       bbox: tuple[float, float, float, float] | None = None,
                       feature_positions: Any = None,
                       sqlite_checked: set[Path] | None = None,
                       sqlite_pending: dict[Path, Future] | None = None,
                       plugin_role: bool = False, geometry: str | None = None,
                       where_filter: str | None = None,
                       geometry_column: str | None = None,
                       fids: np.ndarray | None = None) -> Layer:
    """Read an opened layer: the body of :func:`_read_layer`.

    ``plugin_role``: a layer of plug-in rules (any role name; without ``geometry`` any
    geometry type: lines and points are kept, invalid ones repaired or rejected);
    ``geometry``: the plan's declared type (:func:`layer_role`).
    """
    if role not in BUILTIN_ROLES and not plugin_role and geometry is None:
        raise DataLayerError(f"unknown layer role '{role}'", path=path,
                             hint="valid roles: " + ", ".join(LAYER_ROLES)
                             + '; or declare your own with geometry="line" (or "polygon", '
                             '"point")')
    spec = layer_role(role, geometry=geometry, fields=fields or {}, plugin=plugin_role)
    screen = _screen_for(spec.geometry)
    partial = bbox is not None or fids is not None
    database = is_postgres(path)
    enc: str | None = None
    info: dict = {}
    if database:  # a PostGIS table: read below, validated as a file's frame
        path = str(path).strip()
        enc, enc_source = "UTF-8", "format"  # the server converts to the client's UTF-8
    else:
        path, layer, info, enc, enc_source = _open_file(
            path, role=role, layer=layer, encoding=encoding, allow_remote=allow_remote,
            partial=partial, sqlite_checked=sqlite_checked, sqlite_pending=sqlite_pending)
    with Overlap(screen, threads=None if QUIET_IS_VALID else 1) as screening:
        gdf, info = _read_source(path, database=database, layer=layer, role=role,
                                 encoding=enc if enc_source != "format" else None, bbox=bbox,
                                 fids=fids, info=info, where_filter=where_filter,
                                 geometry_column=geometry_column, screening=screening)
        where = f"{role} ({layer})" if layer else role
        unreadable = gdf.attrs.pop("unreadable", {})
        gdf, crs_source = _assign_crs(gdf, assume_crs=assume_crs, role=where, path=path)
        gdf, rows, unreadable = _in_source_order(gdf, unreadable, role=role, partial=partial,
                                                 feature_positions=feature_positions)
        gdf.insert(0, "feature_id", _feature_ids(role, rows))
        if len(gdf) == 0 and spec.must_have_features and not partial:
            raise DataLayerError("the layer has no features", path=path, layer=where,
                                 hint=f"check the file and the layer name; a {role} layer "
                                 "cannot be empty")
        if not partial:
            _refuse_wrong_geometry_layer(gdf, spec=spec, where=where, path=path)
        mapping = map_fields(gdf.columns, role=spec, fields=fields, layer=where, path=path)
        gdf = apply_fields(gdf, mapping, role=spec, layer=where, path=path)
        _check_unique_codes(gdf, role=role, layer=where, path=path)
        src_crs = pyproj.CRS.from_user_input(gdf.crs)
        refuse_ballpark(src_crs, transformation=transformation, layer=where, path=path)
        screened = _screened(screening, len(gdf)) or screen(gdf.geometry.values)
        _check_crs_bounds(gdf, screened, src_crs, transformation=transformation, where=where,
                          path=path)
        accepted, rejected, repaired = validate_geometries(
            gdf, role=role, geometry=spec.geometry, point_radius_m=point_radius_m,
            screened=screened)
    rejected = _note_unreadable(rejected, unreadable)
    accepted, rejected = _reject_duplicate_ids(accepted, rejected, role=role, layer=where)
    if role == "townships" and not partial:
        _refuse_no_usable_townships(accepted, rejected, where=where, path=path)
    if role == "projects" and point_radius_m is None and not partial and len(rejected):
        _warn_point_sites(rejected, where=where)
    n_zm = int(accepted.attrs.pop("n_zm_dropped", 0))
    zm_rows = rows[accepted.attrs.pop("zm_dropped_rows", np.array([], dtype=np.intp))]
    if n_zm:
        log.info("layer %s: Z/M coordinates dropped from %d features", where, n_zm)
    validated = np.array(accepted.geometry.array, dtype=object, copy=True)
    if crs is not None:
        accepted = to_analysis(accepted, crs, layer=where, path=path,
                               transformation=transformation)
    elif transformation is None:
        check_inside_china(accepted, layer=where, path=path, valid=_screened_valid(accepted,
                                                                                    repaired))
    source = SourceInfo(path=mask_url(str(path)) if is_postgres(path) else path, layer=layer,
                        driver=str(info.get("driver")),
                        encoding=enc, encoding_source=enc_source, crs=src_crs,
                        crs_source=crs_source, fields=dict(mapping), n_zm_dropped=n_zm)
    log.debug("read layer %s from %s: %d features", where, path, len(gdf))
    return Layer(role=role, data=accepted, rejected=rejected, repaired=repaired, source=source,
                 n_in=len(gdf), validated=validated, zm_dropped=zm_rows, read_rows=rows)


# -- rasters ---------------------------------------------------------------------------------


def open_raster(spec: RasterSpec, *, allow_remote: bool = False) -> RasterSource:
    """Open a raster's metadata with rasterio; missing CRS/nodata go to ``problems``.

    Only GeoTIFF and GDAL VRT files are opened; a VRT's sources must be local GeoTIFFs (or
    VRTs) in its folder, see :func:`spatialplan.core._inputs.check_raster`, unless
    ``allow_remote`` (the user's explicit opt-in, which also lifts the GDAL lock for this
    open).

    Raises
    ------
    RasterError
        If the file is missing, not a regular file, not a GeoTIFF or VRT, or a VRT names a
        source it may not.

    Example
    -------
    >>> from spatialplan.io.plan import RasterSpec
    >>> dem = open_raster(RasterSpec(name="dem", path=Path("dem.tif")))  # doctest: +SKIP
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    driver = None  # a remote raster (allow_remote): GDAL decides
    if isinstance(spec.path, Path):
        driver = check_raster(spec.path, layer=spec.name, allow_remote=allow_remote)
        if not spec.path.exists():
            raise RasterError("raster not found", path=spec.path, layer=spec.name,
                              hint="check the path in the plan (relative to the plan file)")
    try:
        with _gdal_env.remote_allowed(allow_remote), \
                rasterio.open(spec.path, driver=driver) as ds:
            crs = pyproj.CRS.from_wkt(ds.crs.to_wkt()) if ds.crs else None
            nodata, res, bounds = ds.nodata, tuple(ds.res), tuple(ds.bounds)
    except RasterioIOError as exc:
        raise RasterError(f"cannot open raster: {exc}", path=spec.path, layer=spec.name,
                          hint="give a GeoTIFF") from exc
    problems, crs_source, nodata_source = [], "source", "source"
    if spec.assume_crs is not None:
        if crs is not None:
            log.warning("raster %s: assume_crs %s overrides the source CRS", spec.name,
                        spec.assume_crs)
        crs, crs_source = pyproj.CRS.from_user_input(spec.assume_crs), "assumed"
    if spec.nodata is not None:
        nodata, nodata_source = spec.nodata, "declared"
    if crs is None:
        problems.append("no CRS")
    else:
        refuse_ballpark(crs, layer=spec.name, path=spec.path)
    if nodata is None:
        problems.append("no nodata value")
    for p in problems:
        log.warning("raster %s (%s): %s", spec.name, spec.path, p)
    return RasterSource(name=spec.name, path=spec.path, crs=crs,
                        nodata=None if nodata is None else float(nodata),
                        res=(float(res[0]), float(res[1])),
                        bounds=tuple(float(v) for v in bounds),  # type: ignore[arg-type]
                        crs_source=crs_source, nodata_source=nodata_source,
                        problems=problems, assume_crs=spec.assume_crs,
                        nodata_override=spec.nodata)


# -- plans -----------------------------------------------------------------------------------


def read_plan(path_or_spec: str | Path | PlanSpec, *, as_of: _dt.date | None = None,
              crs: Any = None, rules: str | Path | None = None,
              catalog: str | Path | None = None, allow_remote: bool = False,
              defer: Collection[str] = ()) -> Plan:
    """Read every layer and raster of a plan into the analysis CRS.

    Parameters
    ----------
    path_or_spec
        A ``plan.toml`` path or an already parsed :class:`~spatialplan.io.plan.PlanSpec`.
    as_of
        Overrides the plan's as-of date.
    crs
        Overrides the plan's analysis CRS (``"auto"`` or e.g. ``"EPSG:4545"``).
    rules
        Overrides the plan's rulebook file.
    catalog
        Overrides the plan's facility catalogue (``[catalog] path``; a CSV with the columns of
        ``layers/catalog/facility_types.csv``). Read and validated before any layer.
    allow_remote
        Accept remote layer paths.
    defer
        Roles only opened, their features left unread (the dask engine's driver: its
        partitions read them over their own extent): a deferred :class:`Layer` with the
        source's feature count and extent, which stand in for its features in the choice of
        the analysis CRS, the distortion measure and the near-the-townships check. Not
        ``townships``, ``projects`` or ``built``; roles the plan does not have are ignored.

    Returns
    -------
    Plan

    Example
    -------
    >>> plan = read_plan("plan.toml")  # doctest: +SKIP
    >>> plan.crs.to_epsg(), plan.crs_reason  # doctest: +SKIP
    (4545, 'auto: centre of the data 107.500°E 27.800°N lies in 3-degree zone 36 → ...')
    """
    from spatialplan.rules._setback import check_setback_layers
    from spatialplan.rules.catalog import read_catalog
    from spatialplan.rules.rulebook import read_rules

    if isinstance(path_or_spec, PlanSpec):
        spec = path_or_spec
    else:
        spec = read_plan_spec(path_or_spec, allow_remote=allow_remote, plugin_roles=True)
    rules_path = rules if rules is not None else spec.rules_path
    rulebook = read_rules(rules_path)  # before the layers: plug-ins may declare layer roles
    catalog_path = catalog if catalog is not None else spec.catalog_path
    if catalog_path is not None:
        check_local_path(catalog_path, allow_remote=False, layer="catalog")
    facility_catalog = read_catalog(catalog_path)  # a bad catalogue fails before the layers
    extra = _plugin_layer_roles(spec, rulebook)
    check_setback_layers(rulebook, spec.layers, path=rules_path or spec.path)
    layers: dict[str, Layer] = {}
    roles = [r for r in LAYER_ROLES if r in spec.layers] + extra
    _check_defer(defer)
    sqlite_checked: set[Path] = set()  # GeoPackages quick_checked by this call
    with _sqlite_checks_ahead(spec, roles) as sqlite_pending:
        for role in progress(roles, total=len(roles), desc="reading layers"):
            ls = spec.layers[role]
            if role in defer:
                layers[role] = _read_deferred(ls, role=role, allow_remote=allow_remote,
                                             sqlite_checked=sqlite_checked,
                                             sqlite_pending=sqlite_pending)
                continue
            layers[role] = read_spec_layer(ls, role=role, allow_remote=allow_remote,
                                           sqlite_checked=sqlite_checked,
                                           sqlite_pending=sqlite_pending,
                                           plugin_role=role in extra)
    requested = crs if crs is not None else spec.crs
    analysis_crs, reason = choose_analysis_crs(
        [_features(lyr) for lyr in layers.values()], requested=requested)
    log.debug("analysis CRS: %s", reason)
    _all_to_analysis(layers, analysis_crs)
    distortion = _guard_distortion(layers, analysis_crs, requested=requested)
    if distortion is not None:
        reason += f"; {distortion.text()}"
    if "townships" in layers:
        reference = _xy_bounds(layers["townships"].data)
        for role, lyr in layers.items():
            if role != "townships":
                where = f"{role} ({lyr.source.layer})" if lyr.source.layer else role
                check_near_reference(_features(lyr), reference, layer=where,
                                     path=lyr.source.path)
    rasters = {name: open_raster(rs, allow_remote=allow_remote)
               for name, rs in spec.rasters.items()}
    return Plan(name=spec.name, path=spec.path, crs=analysis_crs, crs_reason=reason,
                as_of=as_of or spec.as_of, layers=layers, rasters=rasters,
                rules=rulebook, catalog=facility_catalog,
                rules_path=None if rules_path is None else Path(rules_path),
                catalog_path=None if catalog_path is None else Path(catalog_path),
                crs_distortion=distortion)


def _all_to_analysis(layers: dict[str, Layer], analysis_crs: pyproj.CRS) -> None:
    """Take every layer's features (a deferred layer's extent) into the analysis CRS."""
    for role, lyr in layers.items():
        where = f"{role} ({lyr.source.layer})" if lyr.source.layer else role
        if lyr.deferred:
            lyr.extent = extent_in(lyr.extent, lyr.data.crs, analysis_crs)
            lyr.data = lyr.data.set_crs(analysis_crs, allow_override=True)
            continue
        # read_layer (no crs, no transformation) has checked these geometries inside China
        lyr.data = _to_analysis(lyr.data, analysis_crs, layer=where, path=lyr.source.path,
                                inside_checked=True)


def _read_deferred(ls: LayerSpec, *, role: str, allow_remote: bool = False,
                  sqlite_checked: set[Path] | None = None,
                  sqlite_pending: dict[Path, Future] | None = None) -> Layer:
    """Open one layer of a plan for its count, extent and source CRS, without its features.

    Parameters
    ----------
    ls
        The layer's entry of the plan (:class:`spatialplan.io.plan.LayerSpec`).
    role
        Its role.
    allow_remote, sqlite_checked, sqlite_pending
        As for :func:`spatialplan.io.read.read_layer` within :func:`~spatialplan.io.read.read_plan`.

    Returns
    -------
    Layer
        ``data`` empty (in the source CRS), ``deferred=True``, ``n_in`` the source's feature
        count, ``extent`` the bounds of its features in the source CRS (None when it has none).
    """
    from spatialplan.io.postgis import DRIVER, table_summary

    where = f"{role} ({ls.layer})" if ls.layer else role
    enc: str | None
    if is_postgres(ls.path):
        path: Path | str = str(ls.path).strip()
        summary = table_summary(str(path), layer=ls.layer, role=role, where=ls.where,
                                geometry_column=ls.geometry_column, keys=False)
        layer, n, bounds, crs = ls.layer, summary["n"], summary["bounds"], summary["crs"]
        driver, enc, enc_source, columns = DRIVER, "UTF-8", "format", summary["columns"]
        declared = summary["geometry_type"]
    else:
        path, layer, info, enc, enc_source = _open_file(
            ls.path, role=role, layer=ls.layer, encoding=ls.encoding, allow_remote=allow_remote,
            partial=False, sqlite_checked=sqlite_checked, sqlite_pending=sqlite_pending)
        n, bounds, crs, columns, declared = file_summary(
            path, layer=layer, role=role, encoding=enc if enc_source != "format" else None)
        driver = str(info.get("driver"))
    # a missing field or the wrong kind of layer fails here, as a full read would
    spec = layer_role(role, geometry=ls.geometry, fields=ls.fields or {},
                      plugin=role not in BUILTIN_ROLES)
    mapping = map_fields(columns, role=spec, fields=ls.fields, layer=where, path=path)
    refuse_declared_type(declared, geometry=spec.geometry, role=role, where=where, path=path)
    empty = gpd.GeoDataFrame({"feature_id": np.array([], dtype=object)},
                             geometry=gpd.GeoSeries([], crs=crs))
    empty, crs_source = _assign_crs(empty, assume_crs=ls.assume_crs, role=where, path=path)
    src_crs = pyproj.CRS.from_user_input(empty.crs)
    _check_extent(bounds, src_crs, where=where, path=path)
    source = SourceInfo(path=mask_url(str(path)) if is_postgres(path) else path, layer=layer,
                        driver=driver, encoding=enc, encoding_source=enc_source,
                        crs=src_crs, crs_source=crs_source, fields=dict(mapping))
    return Layer(role=role, data=empty, rejected=empty.iloc[:0].drop(columns="geometry"),
                 repaired=empty.iloc[:0].drop(columns="geometry"), source=source, n_in=n,
                 deferred=True, extent=bounds)


def _check_extent(bounds: tuple[float, float, float, float] | None, src_crs: pyproj.CRS, *,
                  where: str, path: Path | str) -> None:
    """Check a deferred layer's CRS and extent as a full read checks its features' bounds.

    The bounds checks (swapped lat/lon, zone prefix, area of use) read the same bounds; inside
    China is tested on the extent's box, which holds every feature.
    """
    refuse_ballpark(src_crs, layer=where, path=path)
    if bounds is None:
        return
    check_latlon_swap(bounds, src_crs, layer=where, path=path)
    check_zone_prefix(bounds, src_crs, layer=where, path=path)
    check_area_of_use(bounds, src_crs, layer=where, path=path)
    check_inside_china(stand_in(bounds, src_crs), layer=where, path=path)


def _check_defer(defer: Collection[str]) -> None:
    """Refuse deferring a layer the driver needs whole (``NOT_DEFERRABLE``)."""
    if isinstance(defer, str):
        raise TypeError("defer takes a collection of roles, e.g. ('parcels',)")
    whole = [r for r in defer if r in NOT_DEFERRABLE]
    if whole:
        raise ValueError(f"cannot defer {', '.join(whole)}: the check needs their features "
                         f"(deferrable: every role but {', '.join(NOT_DEFERRABLE)})")


def _features(lyr: Layer) -> gpd.GeoDataFrame:
    """Return a layer's features, or a deferred layer's extent as one box (:func:`stand_in`)."""
    return stand_in(lyr.extent, lyr.data.crs) if lyr.deferred else lyr.data


def _guard_distortion(layers: dict[str, Layer], crs: pyproj.CRS, *,
                      requested: Any) -> Distortion | None:
    """Measure the analysis CRS's scale distortion on the layers (all in ``crs``).

    A CRS the plan (or ``--crs``) names is refused above 1 % and warned about above 0.1 %; an
    automatic choice is only warned about (:func:`~spatialplan.core.distortion.check_distortion`).
    """
    distortion = measure_distortion([_features(lyr) for lyr in layers.values()], crs)
    named = requested is not None and not (isinstance(requested, str)
                                           and requested.strip().lower() == "auto")
    check_distortion(distortion, named=named)
    return distortion


def _plugin_layer_roles(spec: PlanSpec, rules: dict) -> list[str]:
    """Return the plan's layer roles that are not built in.

    These are its own (declared with ``geometry``) and those a loaded plug-in rule declares;
    another one is refused.
    """
    from spatialplan.io.roles import unknown_role
    from spatialplan.rules._registry import plugin_rules

    extra = [r for r in spec.layers if r not in BUILTIN_ROLES]
    if all(spec.layers[r].geometry is not None for r in extra):
        return extra
    declared = tuple(dict.fromkeys(role for rule in plugin_rules(rules) for role in rule.layers
                                   if role not in BUILTIN_ROLES))
    for role in extra:
        if spec.layers[role].geometry is None and role not in declared:
            raise unknown_role(role, spec.path, declared)
    return extra


# -- reports ---------------------------------------------------------------------------------


def _layers_of(plan_or_layers: Plan | dict[str, Layer]) -> dict[str, Layer]:
    return plan_or_layers.layers if isinstance(plan_or_layers, Plan) else dict(plan_or_layers)


def validation_report(plan: Plan | dict[str, Layer]) -> pd.DataFrame:
    """One row per layer: source, driver, encoding, source CRS and feature accounting.

    Columns: ``role, path, layer, driver, encoding, encoding_source, source_crs, crs_source,
    n_in, n_ok, n_repaired, n_rejected, n_zm_dropped``. A deferred layer (its features read
    elsewhere, see :func:`read_plan`'s ``defer``) has its source's feature count as ``n_in``
    and no value (NA) in the columns counting validated features.

    Example
    -------
    >>> validation_report(plan).set_index("role")["n_rejected"]  # doctest: +SKIP
    """
    rows = []
    for role, lyr in _layers_of(plan).items():
        src = lyr.source
        crs = src.crs
        rows.append({
            "role": role, "path": str(src.path), "layer": src.layer, "driver": src.driver,
            "encoding": src.encoding, "encoding_source": src.encoding_source,
            "source_crs": (f"EPSG:{crs.to_epsg()}" if crs is not None and crs.to_epsg()
                           else (crs.name if crs is not None else None)),
            "crs_source": src.crs_source,
            "n_in": lyr.n_in, "n_ok": lyr.n_ok, "n_repaired": lyr.n_repaired,
            "n_rejected": lyr.n_rejected, "n_zm_dropped": src.n_zm_dropped,
        })
        if lyr.deferred and not lyr.accounted:  # nothing validated: no count, not a wrong one
            rows[-1].update(dict.fromkeys(("n_ok", "n_repaired", "n_rejected",
                                           "n_zm_dropped"), pd.NA))
    cols = ["role", "path", "layer", "driver", "encoding", "encoding_source", "source_crs",
            "crs_source", "n_in", "n_ok", "n_repaired", "n_rejected", "n_zm_dropped"]
    return pd.DataFrame(rows, columns=cols)


def feature_issues(plan: Plan | dict[str, Layer]) -> pd.DataFrame:
    """One row per repaired or rejected feature of every layer.

    Columns: ``role, feature_id, kind`` (``repaired``/``rejected``), ``reason``,
    ``area_before_m2``, ``area_after_m2``.

    Example
    -------
    >>> feature_issues(plan).query("kind == 'rejected'")  # doctest: +SKIP
    """
    cols = ["role", "feature_id", "kind", "reason", "area_before_m2", "area_after_m2"]
    frames = []
    for role, lyr in _layers_of(plan).items():
        for kind, df in (("repaired", lyr.repaired), ("rejected", lyr.rejected)):
            if len(df):
                part = pd.DataFrame({
                    "role": role, "feature_id": df["feature_id"].to_numpy(), "kind": kind,
                    "reason": df["reason"].to_numpy(),
                    "area_before_m2": df.get("area_before_m2", pd.Series(np.nan, df.index)
                                             ).to_numpy(dtype=float),
                    "area_after_m2": df.get("area_after_m2", pd.Series(np.nan, df.index)
                                            ).to_numpy(dtype=float),
                })
                frames.append(part)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c.startswith("area") else "object")
                             for c in cols})
    return pd.concat(frames, ignore_index=True)[cols]


def _coarse_dem(plan: Plan, r: RasterSource) -> str | None:
    """Return the coarse-DEM note for the plan's project sites, or None (no CRS, no sites)."""
    from affine import Affine

    from spatialplan.io._raster import coarse_dem_note, ground_resolution

    sites = plan.layers.get("projects")
    if r.crs is None or sites is None or len(sites.data) == 0 or min(r.res) <= 0:
        return None
    left, bottom, right, top = r.bounds
    width = max(round((right - left) / r.res[0]), 1)
    height = max(round((top - bottom) / r.res[1]), 1)
    cell = ground_resolution(Affine(r.res[0], 0, left, 0, -r.res[1], top), r.crs, width, height)
    return coarse_dem_note(cell, sites.data.geometry.area.to_numpy())


def unknown_landuse_report(plan: Plan) -> pd.DataFrame:
    """One row per parcel land-use code that is not in the plan's land-use code table.

    Such a code (e.g. ``0899``, or a 2020-edition code) cannot be judged by the ``landuse``
    rule: a site on it gets ``review`` naming the code. Codes are cleaned as the rule cleans
    them (an odd-length digit string gets its lost leading zero back); missing codes are not
    listed. Only the accepted parcels are counted.

    Columns: ``code, n_parcels`` (most parcels first, then by code).

    Example
    -------
    >>> unknown_landuse_report(plan)  # doctest: +SKIP
       code  n_parcels
    0  0899          3
    """
    from spatialplan.rules.catalog import landuse_unknown, read_landuse_codes

    cols = ["code", "n_parcels"]
    lyr = plan.layers.get("parcels")
    if lyr is None or "landuse" not in lyr.data.columns:
        return pd.DataFrame({"code": pd.Series(dtype=object),
                             "n_parcels": pd.Series(dtype="int64")})
    known = (plan.catalog.landuse if plan.catalog is not None else read_landuse_codes()).index
    values = lyr.data["landuse"]
    values = values.astype(object).where(values.notna(), None).tolist()
    unknown_of = {v: landuse_unknown(v, known) for v in set(values)}
    found = pd.Series([unknown_of[v] for v in values], dtype=object)
    counts = found.dropna().value_counts()
    out = pd.DataFrame({"code": counts.index.astype(str), "n_parcels": counts.to_numpy()})
    out = out.sort_values(["n_parcels", "code"], ascending=[False, True], kind="stable")
    return out.reset_index(drop=True)[cols]
def tbmj_report(plan: Plan | dict[str, Layer]) -> pd.DataFrame:
    """One row per control-line or parcel layer carrying ``TBMJ``: its sum against our area.

    Columns (:data:`spatialplan.io._tbmj.TBMJ_COLUMNS`): ``role, field, n_features, n_compared,
    tbmj_sum_m2, ellipsoidal_m2, relative_difference, n_missing, n_not_numeric, not_numeric``;
    see :func:`spatialplan.io._tbmj.compare_tbmj`. Empty when no layer has the field.

    Example
    -------
    >>> tbmj_report(plan).set_index("role")["relative_difference"]  # doctest: +SKIP
    """
    from spatialplan.io._tbmj import tbmj_table

    return tbmj_table(_layers_of(plan))


def raster_report(plan: Plan) -> pd.DataFrame:
    """One row per raster: path, CRS, nodata, resolution and problems.

    The problems of the ``dem`` also say when its cells are far coarser than the project
    sites (:func:`spatialplan.io._raster.coarse_dem_note`).

    Example
    -------
    >>> raster_report(plan)  # doctest: +SKIP
    """
    rows = []
    for name, r in plan.rasters.items():
        note = _coarse_dem(plan, r) if name == "dem" else None
        rows.append({
            "name": name, "path": str(r.path),
            "crs": (f"EPSG:{r.crs.to_epsg()}" if r.crs is not None and r.crs.to_epsg()
                    else (r.crs.name if r.crs is not None else None)),
            "crs_source": r.crs_source, "nodata": r.nodata, "res": r.res,
            "problems": "; ".join([*r.problems, *([note] if note else [])]),
        })
    return pd.DataFrame(rows, columns=["name", "path", "crs", "crs_source", "nodata", "res",
                                       "problems"])
