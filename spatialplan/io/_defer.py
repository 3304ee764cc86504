"""Deferred layers: a layer opened for its count, extent and CRS only, its features left unread.

The dask engine's partitions read their own extent of the lines and parcels
(:mod:`spatialplan.pipeline.engine`); its driver only needs to know what each such layer is.
:func:`read_deferred` opens the source (a file through ``pyogrio.read_info``, a PostGIS table
through :func:`spatialplan.io.postgis.table_summary`) and returns a
:class:`spatialplan.io.read.Layer` whose ``data`` holds no row, ``deferred=True``, ``n_in`` the
source's feature count and ``extent`` the bounds of its features.

>>> plan = read_plan("plan.toml", defer=("parcels",))  # doctest: +SKIP
>>> plan.layers["parcels"].deferred, len(plan.layers["parcels"].data)  # doctest: +SKIP
(True, 0)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import shapely

from spatialplan.errors import DataSourceError

if TYPE_CHECKING:
    from spatialplan.io.plan import LayerSpec
    from spatialplan.io.read import Layer

__all__ = ["NOT_DEFERRABLE", "extent_in", "read_deferred", "stand_in"]

#: the roles the driver needs whole (the partitions are cut from them)
NOT_DEFERRABLE = ("townships", "projects", "built")
#: vertices per side of an extent's outline when it is taken to another CRS
_DENSIFY = 21


def read_deferred(ls: LayerSpec, *, role: str, allow_remote: bool = False,
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
    from spatialplan.io._fields import map_fields
    from spatialplan.io.postgis import DRIVER, is_postgres, mask_url, table_summary
    from spatialplan.io.read import Layer, SourceInfo, _assign_crs, _open_file
    from spatialplan.io.roles import layer_role

    where = f"{role} ({ls.layer})" if ls.layer else role
    if is_postgres(ls.path):
        path: Path | str = str(ls.path).strip()
        summary = table_summary(str(path), layer=ls.layer, role=role, where=ls.where,
                                geometry_column=ls.geometry_column)
        layer, n, bounds, crs = ls.layer, summary["n"], summary["bounds"], summary["crs"]
        driver, enc, enc_source, columns = DRIVER, "UTF-8", "format", summary["columns"]
    else:
        path, layer, info, enc, enc_source = _open_file(
            ls.path, role=role, layer=ls.layer, encoding=ls.encoding, allow_remote=allow_remote,
            bbox=None, sqlite_checked=sqlite_checked, sqlite_pending=sqlite_pending)
        n, bounds, crs, columns = _file_summary(
            path, layer=layer, role=role, encoding=enc if enc_source != "format" else None)
        driver = str(info.get("driver"))
    # a missing or wrongly mapped field fails here, as a full read would, not in a partition
    mapping = map_fields(columns, role=layer_role(role, geometry=ls.geometry,
                                                  fields=ls.fields or {}),
                         fields=ls.fields, layer=where, path=path)
    empty = gpd.GeoDataFrame({"feature_id": np.array([], dtype=object)},
                             geometry=gpd.GeoSeries([], crs=crs))
    empty, crs_source = _assign_crs(empty, assume_crs=ls.assume_crs, role=where, path=path)
    source = SourceInfo(path=mask_url(str(path)) if is_postgres(path) else path, layer=layer,
                        driver=driver, encoding=enc, encoding_source=enc_source,
                        crs=pyproj.CRS.from_user_input(empty.crs), crs_source=crs_source,
                        fields=dict(mapping))
    return Layer(role=role, data=empty, rejected=empty.iloc[:0].drop(columns="geometry"),
                 repaired=empty.iloc[:0].drop(columns="geometry"), source=source, n_in=n,
                 deferred=True, extent=bounds)


def _file_summary(path: Path | str, *, layer: str | None, role: str, encoding: str | None
                  ) -> tuple[int, tuple[float, float, float, float] | None, Any, list[str]]:
    """Feature count, total bounds (None when empty), CRS and field names of a file layer."""
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
            info.get("crs"), [str(f) for f in info.get("fields", [])])


def stand_in(layer: Layer) -> gpd.GeoDataFrame:
    """Return the extent of a deferred layer as one box feature in the CRS of its ``data``.

    What :func:`~spatialplan.core.crs.choose_analysis_crs` (bounds), the distortion measure and
    the near-the-townships check see in place of the features: the box holds every one of them.
    """
    geoms = [] if layer.extent is None else [shapely.box(*layer.extent)]
    return gpd.GeoDataFrame(geometry=gpd.GeoSeries(geoms, crs=layer.data.crs))


def extent_in(extent: Iterable[float] | None, src: Any, dst: Any
              ) -> tuple[float, float, float, float] | None:
    """Bounds in ``dst`` of the box ``extent`` in ``src`` (its outline densified)."""
    if extent is None:
        return None
    src, dst = pyproj.CRS.from_user_input(src), pyproj.CRS.from_user_input(dst)
    box = tuple(float(v) for v in extent)
    if src.equals(dst):
        return box  # type: ignore[return-value]
    tr = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    out = tr.transform_bounds(*box, densify_pts=_DENSIFY)
    return tuple(float(v) for v in out)  # type: ignore[return-value]
