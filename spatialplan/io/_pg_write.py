"""Publish result tables into a PostGIS schema: all of them or none, in one transaction.

:func:`publish_tables` (used by ``spatialplan check --publish URL``) writes each table with
``COPY`` into ``schema.name``: geometry columns as ``geometry(Geometry, SRID)`` with a GiST
index, integers as ``bigint``, floats as ``double precision``, booleans, timestamps, the rest
as ``text``. In one transaction it drops every table named in ``replace`` (so a table this run
does not produce does not linger from an earlier one) and creates the new ones; a failure
rolls everything back and the previous tables stay as they were. Readers (QGIS) see the old
tables or the new ones, never a mix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan.errors import OutputError
from spatialplan.io.postgis import _reason, connect, mask_url

__all__ = ["publish_tables"]

log = logging.getLogger(__name__)


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "bigint"
    if pd.api.types.is_float_dtype(series):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    return "text"


def _values(series: pd.Series, kind: str) -> list:
    """Return the column as Python values for COPY (None for missing; text for odd objects)."""
    values = series.astype(object).where(series.notna(), None).tolist()
    if kind != "text":
        return values
    return [v if v is None or isinstance(v, str) else
            json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, list | dict | tuple)
            else str(v) for v in values]


def _geometry_values(series: gpd.GeoSeries, srid: int) -> list:
    geoms = np.asarray(series.array, dtype=object)
    missing = shapely.is_missing(geoms)
    out = np.full(len(geoms), None, dtype=object)
    if (~missing).any():
        out[~missing] = shapely.to_wkb(shapely.set_srid(geoms[~missing], srid), hex=True,
                                       include_srid=True)
    return out.tolist()


def _write_table(conn: Any, schema: str, name: str, frame: pd.DataFrame) -> None:
    """Create ``schema.name`` and COPY ``frame`` into it; GiST index on its geometry."""
    from psycopg import sql

    geom = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    srid = 0
    if geom is not None and frame.crs is not None:
        srid = frame.crs.to_epsg() or 0
    cols, types, columns = [], [], []
    for col in frame.columns:
        kind = (sql.SQL("geometry(Geometry, {})").format(sql.Literal(srid)) if col == geom
                else sql.SQL(_sql_type(frame[col])))
        cols.append(sql.SQL("{} {}").format(sql.Identifier(str(col)), kind))
        types.append("geometry" if col == geom else _sql_type(frame[col]))
        columns.append(_geometry_values(frame[col], srid) if col == geom
                       else _values(frame[col], types[-1]))
    table = sql.Identifier(schema, name)
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(cols)))
    names = sql.SQL(", ").join(sql.Identifier(str(c)) for c in frame.columns)
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
            table, names)) as copy:
        for row in zip(*columns, strict=True):
            copy.write_row(row)
    if geom is not None:
        conn.execute(sql.SQL("CREATE INDEX {} ON {} USING GIST ({})").format(
            sql.Identifier(f"{name}_{geom}_gist"), table, sql.Identifier(str(geom))))


def _manifest_frame(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """Return the manifest as a table: one row per top-level key, its value as JSON text."""
    return pd.DataFrame({
        "key": list(manifest),
        "value": [json.dumps(v, ensure_ascii=False, default=str) for v in manifest.values()]})


def publish_tables(url: str, tables: Mapping[str, pd.DataFrame], *, schema: str = "spatialplan",
                   manifest: Mapping[str, Any] | None = None,
                   replace: Collection[str] = ()) -> list[str]:
    """Write ``tables`` (and ``manifest`` as table ``manifest``) into ``schema``, atomically.

    Parameters
    ----------
    url
        PostgreSQL URL without password (see :func:`spatialplan.io.postgis.check_url`).
    tables
        Table name → (Geo)DataFrame.
    schema
        Target schema (created if missing).
    manifest
        The run's manifest; written as the table ``manifest`` (``key``, ``value`` JSON).
    replace
        Further table names to drop in the same transaction (tables of an earlier run).

    Returns
    -------
    list of str
        The tables written, ``schema.name``.

    Raises
    ------
    DataSourceError
        The server cannot be reached.
    OutputError
        Writing failed; nothing was changed.

    Example
    -------
    >>> publish_tables("postgresql://planner@/yzt", {"projects": gdf})  # doctest: +SKIP
    ['spatialplan.projects']
    """
    import psycopg
    from psycopg import sql

    frames = dict(tables)
    if manifest is not None:
        frames["manifest"] = _manifest_frame(manifest)
    with connect(url, role="publish", read_only=False) as conn:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(schema)))
                for name in dict.fromkeys([*replace, *frames]):
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(
                        sql.Identifier(schema, name)))
                for name, frame in frames.items():
                    _write_table(conn, schema, name, frame)
        except psycopg.Error as exc:
            raise OutputError(f"publishing to PostgreSQL failed, nothing was changed: "
                              f"{_reason(exc)}", path=mask_url(url), layer=schema,
                              hint="check that the user may create tables in the schema "
                              "(or give another with --schema), then run again") from None
    written = [f"{schema}.{name}" for name in frames]
    log.info("published %d tables into %s: %s", len(written), schema, ", ".join(frames))
    return written
