"""What changed between two checks: projects and township indicators, row by row.

Pure functions on the tables of two runs (no files): :func:`project_changes` matches the
projects by ``project_id`` and lists each change as a row; :func:`township_changes` does the
same for the indicators of ``township_stats``. A project or a township that did not change
has no row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

log = logging.getLogger(__name__)

__all__ = [
    "CHANGE_KINDS",
    "DATE_FIELDS",
    "MOVE_TOLERANCE_M",
    "PROJECT_CHANGE_COLUMNS",
    "TOWNSHIP_CHANGE_COLUMNS",
    "project_changes",
    "township_changes",
]

#: the kinds of project change, in the order rows of one project are listed
CHANGE_KINDS = ("added", "removed", "verdict", "moved", "status", "dates", "investment",
                "reasons")
#: a site whose outline moved by less than this (Hausdorff distance, metres) did not move
MOVE_TOLERANCE_M = 0.01
#: the project fields whose change is a ``dates`` change
DATE_FIELDS = ("mapped_on", "permit_on", "start_on", "finish_on", "start_year", "end_year")
#: the columns of :func:`project_changes`
PROJECT_CHANGE_COLUMNS = ("project_id", "name", "township_code", "facility", "change", "before",
                          "after", "moved_m")
#: the columns of :func:`township_changes`
TOWNSHIP_CHANGE_COLUMNS = ("township_code", "township_name", "change", "indicator", "before",
                           "after")
#: columns of ``township_stats`` that identify a township rather than measure it
_TOWNSHIP_KEYS = ("township_code", "township_name", "feature_id", "geometry")
#: two indicator values closer than this (relative, and absolute for values near 0) are equal:
#: the local and the dask engine may differ in the last bits of a sum
_REL_TOL, _ABS_TOL = 1e-9, 1e-6


# --------------------------------------------------------------------------- projects


def project_changes(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """List every change of a project between two checks, one row per project and kind.

    Parameters
    ----------
    before, after
        The ``projects`` tables of two checks (``project_id``, ``verdict``, ``reasons``,
        ``status``, the :data:`DATE_FIELDS`, ``investment_wan`` and the site geometry; missing
        fields are not compared). ``before`` is reprojected to the CRS of ``after`` when they
        differ.

    Returns
    -------
    geopandas.GeoDataFrame
        :data:`PROJECT_CHANGE_COLUMNS` and ``geometry_before`` (the site before, a
        GeoSeries in the CRS of ``after``; the active geometry is the site after). ``change``
        is one of :data:`CHANGE_KINDS`; ``before`` and ``after`` are texts: the verdict of an
        added or removed project, the old and new value (``dates``: the changed fields as
        ``field=value``; ``moved``: the centroid ``x, y`` in metres), and ``moved_m`` the
        Hausdorff distance between the two outlines of a moved site. Rows are ordered by
        township, project and :data:`CHANGE_KINDS`.

    Examples
    --------
    >>> a = gpd.GeoDataFrame({"project_id": ["P1"], "verdict": ["pass"]},
    ...                      geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:4545")
    >>> b = a.assign(verdict="fail")
    >>> project_changes(a, b)[["project_id", "change", "before", "after"]].values.tolist()
    [['P1', 'verdict', 'pass', 'fail']]
    """
    if before.crs is not None and after.crs is not None and before.crs != after.crs:
        before = before.to_crs(after.crs)
    old, new = _keyed(before, "before"), _keyed(after, "after")
    rows: list[dict[str, Any]] = []
    for key in old.index.difference(new.index):
        rows.append(_row(old.loc[key], "removed", _text(old.loc[key], "verdict"), ""))
    for key in new.index.difference(old.index):
        rows.append(_row(new.loc[key], "added", "", _text(new.loc[key], "verdict")))
    both = new.index.intersection(old.index)
    rows += _value_rows(old.loc[both], new.loc[both])
    rows += _moved_rows(old.loc[both], new.loc[both])
    return _frame(rows, old, new, after.crs)


def _keyed(projects: gpd.GeoDataFrame, side: str) -> gpd.GeoDataFrame:
    """Index the projects by a unique key: ``project_id``, numbered where it repeats.

    A repeated id gets ``#2``, ``#3``... in feature order and an empty id the row's
    ``feature_id``; both are logged, since such projects are matched by position only.
    """
    if "project_id" not in projects.columns:
        raise KeyError(f"the {side} projects have no project_id column")
    ids = projects["project_id"].astype(object).where(projects["project_id"].notna(), "")
    ids = ids.astype(str).str.strip()
    blank = ids == ""
    if blank.any():
        fallback = (projects["feature_id"].astype(str) if "feature_id" in projects.columns
                    else pd.Series([f"row {i}" for i in range(len(projects))],
                                   index=projects.index))
        ids = ids.where(~blank, "(" + fallback + ")")
        log.warning("%d %s projects have no project_id: matched by their feature id",
                    int(blank.sum()), side)
    nth = ids.groupby(ids).cumcount()
    if (nth > 0).any():
        dup = sorted(set(ids[nth > 0]))
        log.warning("%s projects repeat project_id %s: matched in feature order",
                    side, ", ".join(dup[:10]) + (" ..." if len(dup) > 10 else ""))
        ids = ids.where(nth == 0, ids + "#" + (nth + 1).astype(str))
    out = projects.copy()
    out.index = pd.Index(ids.to_numpy(), name="key")
    return out


def _text(row: pd.Series, field: str) -> str:
    """Return ``row[field]`` as a text (empty when missing)."""
    return _as_text(row.get(field))


def _as_text(value: Any) -> str:
    """Return a cell as the text a change table shows (dates as ISO, whole floats as ints)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value == value.normalize() else value.isoformat()
    if isinstance(value, float | np.floating):
        return f"{float(value):.10g}"
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _row(project: pd.Series, change: str, before: str, after: str,
         moved_m: float = math.nan) -> dict[str, Any]:
    return {"key": project.name, "project_id": _text(project, "project_id") or str(project.name),
            "name": _text(project, "name"), "township_code": _text(project, "township_code"),
            "facility": _text(project, "facility"), "change": change, "before": before,
            "after": after, "moved_m": moved_m}


def _differs(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Whether two aligned columns differ, row by row (missing equals missing).

    Numbers within 1e-9 relative (1e-6 absolute) are equal: the local and the dask engine may
    differ in the last bits of a sum.
    """
    a_missing, b_missing = a.isna().to_numpy(), b.isna().to_numpy()
    both = ~a_missing & ~b_missing
    differ = np.zeros(len(a), dtype=bool)
    if both.any():
        x, y = a.to_numpy()[both], b.to_numpy()[both]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) \
                and not pd.api.types.is_bool_dtype(a):
            differ[both] = ~np.isclose(x.astype(float), y.astype(float), rtol=_REL_TOL,
                                       atol=_ABS_TOL)
        else:
            differ[both] = np.array([_as_text(u) != _as_text(v) for u, v in zip(x, y, strict=True)],
                                    dtype=bool)
    return differ | (a_missing != b_missing)


def _value_rows(old: pd.DataFrame, new: pd.DataFrame) -> list[dict[str, Any]]:
    """List the value changes (verdict, status, dates, investment, reasons) of matched projects."""
    single = {"verdict": "verdict", "status": "status", "investment": "investment_wan",
              "reasons": "reasons"}
    changed: dict[str, np.ndarray] = {}
    for change, field in single.items():
        if field in old.columns and field in new.columns:
            changed[change] = _differs(old[field], new[field])
    dates = [f for f in DATE_FIELDS if f in old.columns and f in new.columns]
    date_diff = {f: _differs(old[f], new[f]) for f in dates}
    rows = []
    for i in np.flatnonzero(np.logical_or.reduce([*changed.values(), *date_diff.values(),
                                                  np.zeros(len(new), dtype=bool)])):
        o, n = old.iloc[i], new.iloc[i]
        for change, differ in changed.items():
            if differ[i]:
                field = single[change]
                rows.append(_row(n, change, _as_text(o[field]), _as_text(n[field])))
        moved = [f for f in dates if date_diff[f][i]]
        if moved:
            rows.append(_row(n, "dates", _fields_text(o, moved), _fields_text(n, moved)))
    return rows


def _fields_text(row: pd.Series, fields: Sequence[str]) -> str:
    return "; ".join(f"{f}={_as_text(row[f])}" for f in fields)


def _moved_rows(old: gpd.GeoDataFrame, new: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Rows of the sites whose outline moved by :data:`MOVE_TOLERANCE_M` or more."""
    a = np.asarray(old.geometry.array, dtype=object)
    b = np.asarray(new.geometry.array, dtype=object)
    a_missing, b_missing = shapely.is_missing(a) | shapely.is_empty(a), \
        shapely.is_missing(b) | shapely.is_empty(b)
    both = ~a_missing & ~b_missing
    dist = np.full(len(a), np.nan)
    dist[both] = shapely.hausdorff_distance(a[both], b[both])
    moved = (both & (dist >= MOVE_TOLERANCE_M)) | (a_missing != b_missing)
    rows = []
    for i in np.flatnonzero(moved):
        rows.append(_row(new.iloc[i], "moved", _centroid_text(a[i]), _centroid_text(b[i]),
                         float(dist[i])))
    return rows


def _centroid_text(geom: Any) -> str:
    if geom is None or shapely.is_empty(geom):
        return "no site"
    c = shapely.centroid(geom)
    return f"{c.x:.2f}, {c.y:.2f}"


def _frame(rows: list[dict[str, Any]], old: gpd.GeoDataFrame, new: gpd.GeoDataFrame,
           crs: Any) -> gpd.GeoDataFrame:
    """Order the rows and attach the sites before and after."""
    table = pd.DataFrame(rows, columns=["key", *PROJECT_CHANGE_COLUMNS])
    order = {k: i for i, k in enumerate(CHANGE_KINDS)}
    table = table.assign(_k=table["change"].map(order)).sort_values(
        ["township_code", "project_id", "key", "_k"], kind="stable").drop(columns="_k")
    keys = table["key"].to_numpy()
    before_geom = old.geometry.reindex(keys).array if len(old) else [None] * len(keys)
    after_geom = new.geometry.reindex(keys).array if len(new) else [None] * len(keys)
    out = gpd.GeoDataFrame(table.drop(columns="key").reset_index(drop=True),
                           geometry=gpd.GeoSeries(np.asarray(after_geom, dtype=object),
                                                  crs=crs), crs=crs)
    out["geometry_before"] = gpd.GeoSeries(np.asarray(before_geom, dtype=object), crs=crs)
    return out


# --------------------------------------------------------------------------- townships


def township_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """List every changed indicator of every township between two checks.

    Parameters
    ----------
    before, after
        ``township_stats`` of two checks, keyed by ``township_code``. Every column other than
        the code, the name, ``feature_id`` and the geometry is an indicator; one present on
        only one side is compared with an empty value.

    Returns
    -------
    pandas.DataFrame
        :data:`TOWNSHIP_CHANGE_COLUMNS`: ``change`` is ``added`` or ``removed`` (a township on
        one side only; ``indicator`` empty) or ``changed`` (one row per changed indicator, with
        its value before and after). Numbers within 1e-9 relative (1e-6 absolute) are equal.

    Examples
    --------
    >>> a = pd.DataFrame({"township_code": ["1"], "township_name": ["甲"], "n_projects": [2]})
    >>> township_changes(a, a.assign(n_projects=3)).values.tolist()
    [['1', '甲', 'changed', 'n_projects', '2', '3']]
    """
    old, new = _by_code(before, "before"), _by_code(after, "after")
    indicators = [c for c in dict.fromkeys([*new.columns, *old.columns])
                  if c not in _TOWNSHIP_KEYS]
    rows = []
    for code in old.index.difference(new.index):
        rows.append((code, _text(old.loc[code], "township_name"), "removed", "", "", ""))
    for code in new.index.difference(old.index):
        rows.append((code, _text(new.loc[code], "township_name"), "added", "", "", ""))
    both = new.index.intersection(old.index)
    o, n = old.loc[both], new.loc[both]
    for column in indicators:
        a = o[column] if column in o.columns else pd.Series(np.nan, index=both)
        b = n[column] if column in n.columns else pd.Series(np.nan, index=both)
        for i in np.flatnonzero(_differs(a, b)):
            rows.append((both[i], _text(n.iloc[i], "township_name"), "changed", column,
                         _as_text(a.iloc[i]), _as_text(b.iloc[i])))
    table = pd.DataFrame(rows, columns=list(TOWNSHIP_CHANGE_COLUMNS))
    order = {c: i for i, c in enumerate(indicators)}
    return table.assign(_i=table["indicator"].map(order).fillna(-1)).sort_values(
        ["township_code", "_i"], kind="stable").drop(columns="_i").reset_index(drop=True)


def _by_code(stats: pd.DataFrame, side: str) -> pd.DataFrame:
    if "township_code" not in stats.columns:
        raise KeyError(f"the {side} township_stats have no township_code column")
    codes = stats["township_code"].astype(str)
    if codes.duplicated().any():
        raise ValueError(f"the {side} township_stats repeat township codes "
                         f"{sorted(set(codes[codes.duplicated()]))[:10]}")
    out = pd.DataFrame(stats.drop(columns=[c for c in ("geometry",) if c in stats.columns]))
    out.index = pd.Index(codes.to_numpy(), name="code")
    return out
