"""PostGIS layers: read a table named in a plan, safely.

A layer's ``path`` may be a PostgreSQL URL (``postgresql://user@host:port/db?sslmode=require``,
or the unix-socket form ``postgresql://user@/db?host=/run/postgresql``) and its ``layer`` a
``schema.table``. Rules:

- **Credentials** come from ``PGPASSWORD``, ``~/.pgpass`` or a ``PGSERVICE`` entry (libpq reads
  them); a password written in the URL is refused (:func:`check_url`).
- **Identifiers** (schema, table, columns) are quoted by :class:`psycopg.sql.Identifier`, never
  pasted into SQL; the optional ``where`` filter is a restricted grammar
  (:func:`parse_where`): column comparisons joined by ``AND``, values sent as parameters.
- **Read-only**: every read runs in a read-only transaction; a connection that fails or times
  out is a :class:`~spatialplan.errors.DataSourceError` naming the host and the reason.

Rows are read in the order of the table's primary key (one column), else of ``ctid``; the
geometry as WKB (``ST_AsBinary``), the CRS from the column's SRID. The frame then takes the
same validation and accounting path as a file's (:mod:`spatialplan.io.read`).

Example
-------
>>> from spatialplan.io.postgis import is_postgres, parse_where
>>> is_postgres("postgresql://planner@db.example/yzt"), is_postgres("a.gpkg")
(True, False)
>>> parse_where("dlbm = '0101' AND area > 10")
[('dlbm', '=', '0101'), ('area', '>', 10)]
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from spatialplan.errors import DataLayerError, DataSourceError, PlanError
from spatialplan.io._pg_arrow import arrow_read_ok, plain, read_arrow_frame

__all__ = [
    "DRIVER",
    "check_url",
    "connect",
    "is_postgres",
    "mask_url",
    "parse_where",
    "read_table",
    "split_table",
    "table_summary",
]

log = logging.getLogger(__name__)

#: the ``driver`` a PostGIS layer reports (validation report, manifest)
DRIVER = "PostgreSQL"
_SCHEMES = ("postgresql://", "postgres://")
#: seconds to wait for a connection (unless the URL sets ``connect_timeout``)
CONNECT_TIMEOUT_S = 10
_CRED_HINT = ("remove the password from the URL and give it in the PGPASSWORD environment "
              "variable, in ~/.pgpass or in a PGSERVICE entry (pg_service.conf)")


def is_postgres(path: object) -> bool:
    """Return True for a ``postgresql://`` or ``postgres://`` URL.

    Example
    -------
    >>> is_postgres("postgres://u@h/db")
    True
    """
    return isinstance(path, str) and path.strip().lower().startswith(_SCHEMES)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for logs, errors and reports).

    Example
    -------
    >>> mask_url("postgresql://u:secret@h/db?password=x")
    'postgresql://u:***@h/db?password=***'
    """
    text = re.sub(r"(://[^/@:]*:)[^@/]*@", r"\1***@", url.strip())
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", text)


def check_url(url: str, *, where: str | None = None, plan: object = None) -> str:
    """Return the URL, stripped, after refusing a password written in it or an unusable URL.

    Raises
    ------
    PlanError
        A password in the URL (``user:password@`` or ``?password=``), or a URL libpq cannot
        parse; the message shows the URL masked.

    Example
    -------
    >>> check_url("postgresql://planner@/yzt?host=/run/postgresql")
    'postgresql://planner@/yzt?host=/run/postgresql'
    """
    from psycopg.conninfo import conninfo_to_dict

    text = url.strip()
    masked = mask_url(text)
    try:
        params = conninfo_to_dict(text)
    except Exception as exc:
        raise PlanError(f"'{where or 'path'}' is not a usable PostgreSQL URL: {masked}",
                        path=plan, hint="write postgresql://user@host:port/database "
                        "(unix socket: postgresql://user@/database?host=/run/postgresql)"
                        ) from exc
    if "password" in params or masked != text:
        raise PlanError(f"'{where or 'path'}' holds a password: {masked}; a plan never "
                        "carries credentials", path=plan, hint=_CRED_HINT)
    return text


def split_table(layer: str | None, *, role: str, url: str) -> tuple[str, str]:
    """Return (schema, table) of ``schema.table`` (a bare ``table`` is in ``public``)."""
    if not layer or not layer.strip():
        raise DataLayerError("a PostgreSQL layer needs layer = \"schema.table\"",
                             path=mask_url(url), layer=role,
                             hint=f'add layer = "schema.table" under [layers.{role}]')
    schema, dot, table = layer.strip().partition(".")
    return (schema, table) if dot else ("public", schema)


def _host(params: dict[str, Any]) -> str:
    host = params.get("host") or os.environ.get("PGHOST") or "the local socket"
    port = params.get("port") or os.environ.get("PGPORT")
    return f"{host}:{port}" if port else str(host)


@contextlib.contextmanager
def connect(url: str, *, role: str | None = None, read_only: bool = True) -> Iterator[Any]:
    """Open a connection (read-only transaction by default); failure → DataSourceError.

    The connection waits at most :data:`CONNECT_TIMEOUT_S` seconds (unless the URL sets
    ``connect_timeout``); the error names the host and libpq's reason, never a password.

    Example
    -------
    >>> with connect("postgresql://planner@/yzt") as conn:  # doctest: +SKIP
    ...     conn.execute("SELECT 1")
    """
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    url = check_url(url, where=role)
    params = conninfo_to_dict(url)
    extra: dict[str, Any] = {"application_name": "spatialplan"}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        conn = psycopg.connect(url, **extra)
    except psycopg.Error as exc:
        raise DataSourceError(f"cannot connect to PostgreSQL at {_host(params)}: "
                              f"{_reason(exc)}", path=mask_url(url), layer=role,
                              hint="check the host, port, database and user in the URL, that "
                              "the server runs and accepts you, and the password in "
                              "PGPASSWORD / ~/.pgpass / PGSERVICE") from None
    try:
        conn.read_only = read_only
        yield conn
    finally:
        conn.close()


def _reason(exc: BaseException) -> str:
    """Libpq's message on one line, with the password of the environment masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    secret = os.environ.get("PGPASSWORD")
    return text.replace(secret, "***") if secret else text


# -- the where filter ------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<qid>"(?:[^"]|"")+")|(?P<op><=|>=|<>|!=|=|<|>)|(?P<punct>[(),])|(?P<word>[^\W\d]\w*))""",
                    re.X)
_OPS = ("=", "<>", "!=", "<", "<=", ">", ">=")


def _tokens(text: str, *, fail: Any) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise fail(f"unexpected text at {text[pos:pos + 20].strip()!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _literal(tok: tuple[str, str], *, fail: Any) -> Any:
    kind, text = tok
    if kind == "str":
        return text[1:-1].replace("''", "'")
    if kind == "num":
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "word" and text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    raise fail(f"expected a value ('text', a number, TRUE or FALSE), got {text!r}")


def _column(tok: tuple[str, str], *, fail: Any) -> str:
    kind, text = tok
    if kind == "qid":
        return text[1:-1].replace('""', '"')
    if kind == "word" and text.upper() not in ("AND", "OR", "NOT", "IN", "IS", "NULL",
                                               "SELECT", "TRUE", "FALSE"):
        return text
    raise fail(f"expected a column name, got {text!r}")


def _condition(toks: list[tuple[str, str]], i: int, *, fail: Any) -> tuple[tuple, int]:
    """Parse one ``column op value`` / ``IS [NOT] NULL`` / ``[NOT] IN (...)`` at ``toks[i]``."""
    col = _column(toks[i], fail=fail)
    word = [t[1].upper() if t[0] == "word" else t[1] for t in toks[i + 1:i + 4]]
    if word[:1] == ["IS"]:
        if word[1:3] == ["NOT", "NULL"]:
            return (col, "IS NOT NULL", None), i + 4
        if word[1:2] == ["NULL"]:
            return (col, "IS NULL", None), i + 3
        raise fail("write IS NULL or IS NOT NULL")
    neg = word[:1] == ["NOT"]
    if word[neg:neg + 1] == ["IN"]:
        j = i + 2 + neg
        if j >= len(toks) or toks[j][1] != "(":
            raise fail("IN needs a list in brackets: col IN ('a', 'b')")
        values, j = [], j + 1
        while j < len(toks):
            values.append(_literal(toks[j], fail=fail))
            if j + 1 < len(toks) and toks[j + 1][1] == ")":
                return (col, "NOT IN" if neg else "IN", tuple(values)), j + 2
            if j + 1 >= len(toks) or toks[j + 1][1] != ",":
                raise fail("separate the IN values with commas and close the bracket")
            j += 2
        raise fail("the IN list is not closed")
    if i + 2 < len(toks) and toks[i + 1][0] == "op":
        op = "<>" if toks[i + 1][1] == "!=" else toks[i + 1][1]
        return (col, op, _literal(toks[i + 2], fail=fail)), i + 3
    raise fail(f"expected a comparison ({', '.join(_OPS)}, IN, IS NULL) after {col!r}")


def parse_where(text: str, *, where: str = "where", plan: object = None) -> list[tuple]:
    r"""Parse a layer's ``where`` filter: ``(column, op, value)`` conditions joined by AND.

    Allowed: ``col = value`` (also ``<> != < <= > >=``), ``col [NOT] IN (v, ...)``,
    ``col IS [NOT] NULL``; values are ``'text'`` (``''`` for a quote), numbers, TRUE, FALSE;
    columns are bare names or ``"quoted"``. Anything else (OR, functions, sub-queries,
    comments, ``;``) is refused: the filter is never SQL.

    Raises
    ------
    PlanError
        Naming what was not understood.

    Example
    -------
    >>> parse_where('"地类编码" IN (1, 2) AND yt IS NOT NULL')
    [('地类编码', 'IN', (1, 2)), ('yt', 'IS NOT NULL', None)]
    """
    def fail(why: str) -> PlanError:
        return PlanError(f"'{where}' is not a simple filter: {why} (in {text!r})", path=plan,
                         hint="write column comparisons joined by AND, e.g. "
                         "dlbm IN ('0101', '0102') AND area_m2 > 100; no OR, functions or "
                         "other SQL")

    toks = _tokens(text, fail=fail)
    if not toks:
        raise fail("it is empty")
    conds, i = [], 0
    while True:
        cond, i = _condition(toks, i, fail=fail)
        conds.append(cond)
        if i == len(toks):
            return conds
        if toks[i][0] != "word" or toks[i][1].upper() != "AND" or i + 1 == len(toks):
            raise fail(f"expected AND, got {toks[i][1]!r}")
        i += 1


def _where_sql(conds: list[tuple]) -> tuple[list, list]:
    """Return (psycopg SQL pieces, parameters) of parsed conditions."""
    from psycopg import sql

    parts, params = [], []
    for col, op, value in conds:
        ident = sql.Identifier(col)
        if value is None:
            parts.append(sql.SQL("{} " + op).format(ident))
        elif op in ("IN", "NOT IN"):
            marks = sql.SQL(", ").join(sql.Placeholder() * len(value))
            parts.append(sql.SQL("{} " + op + " ({})").format(ident, marks))
            params.extend(value)
        else:
            parts.append(sql.SQL("{} " + op + " {}").format(ident, sql.Placeholder()))
            params.append(value)
    return parts, params


# -- reading ---------------------------------------------------------------------------------


def _geometry_column(conn: Any, schema: str, table: str, *, wanted: str | None,
                     role: str, url: str) -> tuple[str, int]:
    """Return (geometry column, SRID) of the table, from PostGIS's ``geometry_columns``."""
    rows = conn.execute(
        "SELECT f_geometry_column, srid FROM geometry_columns "
        "WHERE f_table_schema = %s AND f_table_name = %s ORDER BY f_geometry_column",
        (schema, table)).fetchall()
    names = [r[0] for r in rows]
    if not rows:
        exists = conn.execute("SELECT count(*) FROM information_schema.tables WHERE "
                              "table_schema = %s AND table_name = %s",
                              (schema, table)).fetchone()[0]
        why = ("has no geometry column" if exists else "was not found (or you may not read it)")
        raise DataLayerError(f"table {schema}.{table} {why}", path=mask_url(url), layer=role,
                             hint='check layer = "schema.table" in the plan')
    if wanted is None:
        if len(rows) > 1:
            raise DataLayerError(f"table {schema}.{table} has {len(rows)} geometry columns",
                                 path=mask_url(url), layer=role,
                                 hint=f'add geometry_column = "..." under [layers.{role}]; '
                                 "columns: " + ", ".join(names))
        return rows[0][0], int(rows[0][1])
    if wanted not in names:
        raise DataLayerError(f"table {schema}.{table} has no geometry column {wanted!r}",
                             path=mask_url(url), layer=role,
                             hint="geometry columns: " + ", ".join(names))
    return wanted, int(rows[names.index(wanted)][1])


def _table_crs(conn: Any, srid: int) -> pyproj.CRS | None:
    """Return the CRS of an SRID (None for SRID 0: the layer then needs ``assume_crs``)."""
    if srid <= 0:
        return None
    row = conn.execute("SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys "
                       "WHERE srid = %s", (srid,)).fetchone()
    if row is None:
        return pyproj.CRS.from_epsg(srid)
    if str(row[0]).upper() == "EPSG" and row[1]:
        return pyproj.CRS.from_epsg(int(row[1]))
    return pyproj.CRS.from_wkt(row[2])


def _order_key(conn: Any, schema: str, table: str) -> str | None:
    """Return the table's one-column primary key, or None (rows then go in ``ctid`` order)."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND i.indisprimary",
        (schema, table)).fetchall()
    return rows[0][0] if len(rows) == 1 else None


def _columns(conn: Any, schema: str, table: str) -> list[tuple[str, str]]:
    """Return (name, type) of the table's columns in order."""
    return conn.execute(
        "SELECT column_name, udt_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position", (schema, table)).fetchall()


def _source(conn: Any, url: str, layer: str | None, *, role: str,
            geometry_column: str | None) -> dict[str, Any]:
    """Return what a read needs of the table: names, geometry column, SRID, key, columns."""
    schema, table = split_table(layer, role=role, url=url)
    geom, srid = _geometry_column(conn, schema, table, wanted=geometry_column, role=role,
                                  url=url)
    types = {c: t for c, t in _columns(conn, schema, table)
             if t not in ("geometry", "geography")}
    return {"schema": schema, "table": table, "geom": geom, "srid": srid,
            "key": _order_key(conn, schema, table), "columns": list(types), "types": types}


def _select(src: dict[str, Any], *, where: list[tuple] | None, bbox: tuple | None,
            what: Any = None, keys: Any = None) -> tuple[Any, list]:
    """Return the SELECT of a read (or of ``what``) with its filter, and its parameters.

    ``keys``: only the rows with these primary keys (``ctid`` values, as text, for a table
    without one).
    """
    from psycopg import sql

    key = sql.Identifier(src["key"]) if src["key"] else sql.SQL("ctid")
    geom = sql.Identifier(src["geom"])
    if what is None:
        what = sql.SQL(", ").join([
            sql.SQL("{}::text").format(key) if not src["key"] else key,
            *[sql.Identifier(c) for c in src["columns"]],
            sql.SQL("ST_AsBinary({})").format(geom)])
    parts, params = _where_sql(where or [])
    if bbox is not None:
        parts.append(sql.SQL("{} && ST_MakeEnvelope(%s, %s, %s, %s, %s)").format(geom))
        params.extend([*(float(v) for v in bbox), src["srid"]])
    if keys is not None:
        if src["key"]:
            parts.append(sql.SQL("{} = ANY(%s)").format(key))
            params.append([int(k) for k in keys])
        else:
            parts.append(sql.SQL("ctid = ANY(%s::tid[])"))
            params.append([str(k) for k in keys])
    query = sql.SQL("SELECT {} FROM {}").format(what, sql.Identifier(src["schema"],
                                                                      src["table"]))
    if parts:
        query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts)
    return query, params


def _frame(rows: list[tuple], columns: list[str], crs: pyproj.CRS | None
           ) -> tuple[gpd.GeoDataFrame, dict[int, str]]:
    """Build the frame (index = order key) and the rows whose WKB GEOS cannot build."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * (len(columns) + 2)
    wkb = np.empty(len(rows), dtype=object)
    wkb[:] = cols[-1]  # bytes (binary cursor) or None
    geoms = shapely.from_wkb(wkb, on_invalid="ignore")
    stored = np.not_equal(wkb, None)
    unreadable = {int(i): "unreadable geometry (e.g. a ring not closed)"
                  for i in np.flatnonzero(shapely.is_missing(geoms) & stored)}
    data = {name: plain(values) for name, values in zip(columns, cols[1:-1], strict=True)}
    index = pd.Index(list(cols[0]), name="fid")
    frame = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, index=index, crs=crs),
                             index=index, crs=crs)
    return frame, unreadable


def read_table(url: str, *, layer: str | None, role: str, where: str | None = None,
               geometry_column: str | None = None, bbox: tuple | None = None,
               keys: Any = None, screening: Any = None
               ) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Read one PostGIS table (in a read-only transaction) as a raw frame and its info.

    Parameters
    ----------
    url
        The PostgreSQL URL (no password).
    layer
        ``schema.table`` (a bare name: ``public``).
    role
        The plan role (for messages).
    where
        The plan's filter (:func:`parse_where`).
    geometry_column
        Needed when the table has several geometry columns.
    bbox
        ``(xmin, ymin, xmax, ymax)`` in the table's SRID: only rows whose geometry's box
        meets it, through the spatial index (``&&``).
    keys
        Only the rows with these primary keys (``ctid`` values for a table without one).
    screening
        A :class:`spatialplan.core._parallel.Overlap` the decoded geometries are handed to,
        batch by batch, as they are decoded (the Arrow read only; see :mod:`._pg_arrow`).

    Returns
    -------
    tuple
        The frame (index: the primary key, else the ``ctid`` as text; ``attrs["unreadable"]``
        as for files) in key order, and an info dict (``driver``, ``features``, ``crs``, ...).

    Example
    -------
    >>> gdf, info = read_table("postgresql://u@/db", layer="yzt.stbhhx",
    ...                        role="redline")  # doctest: +SKIP
    """
    from psycopg import sql

    conds = parse_where(where) if where else None
    with connect(url, role=role) as conn, _query_errors(url, role), conn.transaction():
        src = _source(conn, url, layer, role=role, geometry_column=geometry_column)
        crs = _table_crs(conn, src["srid"])
        query, params = _select(src, where=conds, bbox=bbox, keys=keys)
        key = sql.Identifier(src["key"]) if src["key"] else sql.SQL("ctid")
        query += sql.SQL(" ORDER BY {}").format(key)
        arrow = arrow_read_ok(url, src)
        if arrow:  # the query as psycopg renders it: identifiers and values quoted by psycopg
            import psycopg

            text = psycopg.ClientCursor(conn).mogrify(query, params)
        else:
            with conn.cursor(name="spatialplan_read", binary=True) as cur:
                cur.itersize = 20000
                cur.execute(query, params)
                rows = cur.fetchall()
    if arrow:
        with _arrow_errors(url, role):
            frame, unreadable = read_arrow_frame(url, text, src, crs,
                                                 timeout_s=CONNECT_TIMEOUT_S,
                                                 screening=screening)
    else:
        frame, unreadable = _frame(rows, src["columns"], crs)
    frame.attrs["unreadable"] = unreadable
    info = {"driver": DRIVER, "features": len(frame), "crs": crs, "srid": src["srid"],
            "key": src["key"], "geometry_column": src["geom"]}
    log.debug("read %d rows of %s.%s", len(frame), src["schema"], src["table"])
    return frame, info


@contextlib.contextmanager
def _named_errors(url: str, role: str, operational: type, error: type) -> Iterator[None]:
    """Name a driver's errors during a read: connection lost or server error.

    A lost connection (``operational``) becomes DataSourceError, a server error (``error``:
    unknown column, no right...) DataLayerError.
    """
    try:
        yield
    except operational as exc:
        raise DataSourceError(f"the PostgreSQL connection failed: {_reason(exc)}",
                              path=mask_url(url), layer=role,
                              hint="check the server and the network, then run again") from None
    except error as exc:
        raise DataLayerError(f"the PostgreSQL read failed: {_reason(exc)}", path=mask_url(url),
                             layer=role, hint="check the layer, geometry_column and where of "
                             "the plan against the table") from None


def _query_errors(url: str, role: str) -> contextlib.AbstractContextManager[None]:
    """Name psycopg's errors during a read (:func:`_named_errors`)."""
    import psycopg

    return _named_errors(url, role, psycopg.OperationalError, psycopg.Error)


def _arrow_errors(url: str, role: str) -> contextlib.AbstractContextManager[None]:
    """Name the ADBC read's errors as psycopg's are named (:func:`_named_errors`)."""
    from adbc_driver_manager import dbapi

    return _named_errors(url, role, dbapi.OperationalError, dbapi.Error)


def table_summary(url: str, *, layer: str | None, role: str, where: str | None = None,
                  geometry_column: str | None = None, keys: bool = True) -> dict[str, Any]:
    """Return the counts and extent of a table, without reading its rows.

    ``read_plan(..., defer=...)`` opens a deferred table with it (``keys=False``), the dask
    engine's driver asks for the row positions (``keys=True``).

    Returns ``n`` (rows), ``bounds`` (``ST_Extent`` in the table's SRID, None when empty),
    ``crs``, ``columns`` (the attribute columns), ``geometry_type`` (as declared in
    ``geometry_columns``), ``key`` and ``key_min`` (an integer primary key whose values are
    dense: row positions are then ``key - key_min``), else, with ``keys``, ``keys``: every key
    in order.

    Example
    -------
    >>> table_summary("postgresql://u@/db", layer="yzt.ntbh", role="farmland")  # doctest: +SKIP
    """
    from psycopg import sql

    conds = parse_where(where) if where else None
    with connect(url, role=role) as conn, _query_errors(url, role), conn.transaction():
        src = _source(conn, url, layer, role=role, geometry_column=geometry_column)
        key = sql.Identifier(src["key"]) if src["key"] else sql.SQL("ctid")
        ext = sql.SQL("ST_Extent({})").format(sql.Identifier(src["geom"]))
        kval = key if src["key"] else sql.SQL("NULL")
        what = sql.SQL("count(*), ST_XMin({e}), ST_YMin({e}), ST_XMax({e}), ST_YMax({e}), "
                       "min({k}), max({k})").format(e=ext, k=kval)
        query, params = _select(src, where=conds, bbox=None, what=what)
        row = conn.execute(query, params).fetchone()
        out = {"n": int(row[0]), "crs": _table_crs(conn, src["srid"]), "key": src["key"],
               "columns": list(src["columns"]), "geometry_type": conn.execute(
                   "SELECT type FROM geometry_columns WHERE f_table_schema = %s AND "
                   "f_table_name = %s AND f_geometry_column = %s",
                   (src["schema"], src["table"], src["geom"])).fetchone()[0],
               "bounds": None if row[1] is None else tuple(float(v) for v in row[1:5])}
        dense = (src["key"] and isinstance(row[5], int) and isinstance(row[6], int)
                 and row[6] - row[5] + 1 == out["n"])
        if dense:
            out["key_min"] = int(row[5])
        elif keys:
            keys, kparams = _select(src, where=conds, bbox=None, what=sql.SQL(
                "{}::text").format(key) if not src["key"] else key)
            out["keys"] = np.array([r[0] for r in conn.execute(
                keys + sql.SQL(" ORDER BY {}").format(key), kparams).fetchall()], dtype=object)
    return out
