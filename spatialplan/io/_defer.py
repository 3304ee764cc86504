"""Deferred layers: a layer opened for its count, extent and CRS only, its features left unread.

The dask engine's partitions read their own extent of the lines and parcels
(:mod:`spatialplan.pipeline.engine`); its driver only needs to know what each such layer is.
:func:`spatialplan.io.read.read_plan` (``defer=``) opens the source (a file through
:func:`file_summary`, a PostGIS table through :func:`spatialplan.io.postgis.table_summary`) and
keeps a :class:`spatialplan.io.read.Layer` whose ``data`` holds no row, ``deferred=True``,
``n_in`` the source's feature count and ``extent`` the bounds of its features; these helpers
are the parts that need no reader.

>>> plan = read_plan("plan.toml", defer=("parcels",))  # doctest: +SKIP
>>> plan.layers["parcels"].deferred, len(plan.layers["parcels"].data)  # doctest: +SKIP
(True, 0)
"""

from __future__ import annotations

import contextlib
import sqlite3
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import shapely

from spatialplan.errors import DataLayerError, DataSourceError

__all__ = ["NOT_DEFERRABLE", "dense_fid_start", "extent_in", "file_summary",
           "refuse_declared_type", "stand_in"]

#: the roles the driver needs whole (the partitions are cut from them)
NOT_DEFERRABLE = ("townships", "projects", "built")
#: vertices per side of an extent's outline when it is taken to another CRS
_DENSIFY = 21


def file_summary(path: Path | str, *, layer: str | None, role: str, encoding: str | None
                  ) -> tuple[int, tuple[float, float, float, float] | None, Any, list[str], Any]:
    """Feature count, total bounds (None when empty), CRS, fields, geometry type of a layer."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = pyogrio.read_info(path, layer=layer, encoding=encoding,
                                     force_feature_count=True, force_total_bounds=True)
    except Exception as exc:
        raise DataSourceError(f"cannot read layer information: {exc}", path=path,
                              layer=role) from exc
    bounds = info.get("total_bounds")
    ok = bounds is not None and bool(np.all(np.isfinite(bounds)))
    return (int(info.get("features") or 0), tuple(float(v) for v in bounds) if ok else None,
            info.get("crs"), [str(f) for f in info.get("fields", [])],
            info.get("geometry_type"))


def dense_fid_start(path: Path | str, *, layer: str | None) -> int | None:
    """Return the first FID of a GeoPackage layer whose FIDs are dense (None: not known so).

    Asked of SQLite (``min``, ``max``, ``count`` of the FID column, read-only), so the dask
    driver reads no FID list for the usual GeoPackage; anything else returns None.
    """
    if not (isinstance(path, Path) and path.suffix.lower() == ".gpkg" and path.is_file()):
        return None
    info = pyogrio.read_info(path, layer=layer)
    table, fid = info.get("layer_name"), info.get("fid_column")
    if not table or not fid:
        return None
    quoted = [f'"{name.replace(chr(34), chr(34) * 2)}"' for name in (fid, table)]
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                                uri=True)) as con:
            low, high, n = con.execute(  # identifiers quoted as SQLite's; no value pasted
                f"SELECT min({quoted[0]}), max({quoted[0]}), count(*) FROM {quoted[1]}"  # noqa: S608
            ).fetchone()
    except sqlite3.Error:
        return None
    if n == 0:
        return 0
    return int(low) if isinstance(low, int) and high - low + 1 == n else None


def stand_in(extent: tuple[float, float, float, float] | None, crs: Any) -> gpd.GeoDataFrame:
    """Return a deferred layer's ``extent`` as one box feature in ``crs``.

    What :func:`~spatialplan.core.crs.choose_analysis_crs` (bounds), the distortion measure and
    the near-the-townships check see in place of the features: the box holds every one of them.
    """
    geoms = [] if extent is None else [shapely.box(*extent)]
    return gpd.GeoDataFrame(geometry=gpd.GeoSeries(geoms, crs=crs))


def extent_in(extent: Iterable[float] | None, src: Any, dst: Any, *, pad: float = 0.0
              ) -> tuple[float, float, float, float] | None:
    """Bounds in ``dst`` of the box ``extent`` in ``src`` (its outline densified).

    ``pad``: a transformed box is widened by this share of its larger side on every side (a
    safety margin); a box in the same CRS is returned as it is.
    """
    if extent is None:
        return None
    src, dst = pyproj.CRS.from_user_input(src), pyproj.CRS.from_user_input(dst)
    box = tuple(float(v) for v in extent)
    if src.equals(dst):
        return box  # type: ignore[return-value]
    tr = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    xmin, ymin, xmax, ymax = (float(v) for v in tr.transform_bounds(*box,
                                                                     densify_pts=_DENSIFY))
    margin = pad * max(xmax - xmin, ymax - ymin, 1e-9) if pad else 0.0
    return (xmin - margin, ymin - margin, xmax + margin, ymax + margin)


def _family(geometry_type: str | None) -> str | None:
    """``polygons``, ``lines`` or ``points`` for a declared geometry type; None if mixed."""
    name = "".join(c for c in str(geometry_type or "").upper() if c.isalpha())
    for family, words in (("polygons", ("POLYGON", "SURFACE")),
                          ("lines", ("LINESTRING", "CURVE")), ("points", ("POINT",))):
        if any(w in name for w in words):
            return family
    return None


def refuse_declared_type(geometry_type: str | None, *, geometry: str, role: str, where: str,
                         path: object) -> None:
    """Refuse a deferred layer whose declared geometry type is not its role's ``geometry``.

    A full read refuses a layer none of whose features is of its role's type; a deferred
    layer is judged by the type its source declares (a file layer's, a PostGIS
    ``geometry_columns`` entry). A generic type (``Unknown``, ``GEOMETRY``) is left to the
    partitions, which reject stray features one by one.
    """
    family = _family(geometry_type)
    wanted = {"polygon": "polygons", "line": "lines", "point": "points"}.get(geometry)
    if family is None or wanted is None or family == wanted:
        return
    raise DataLayerError(
        f"the {role} layer holds {family}, not {wanted} (its declared geometry type is "
        f"{geometry_type})", path=path, layer=where,
        hint=f"give the {role} layer as {wanted} (check the layer name in the plan)")
