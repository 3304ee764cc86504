"""The web map's villages ("1+N" reach): village points coloured by reach, popups, paths.

A village is drawn at its point (a polygon's representative point) and coloured by how many of
the facility types with a limit it reaches within that limit: red for none, through orange and
yellow, to green for all. Its popup lists, per type, the road distance, the limit, the nearest
serving project, or why the roads do not join it. The paths (village → roads → site) are a
separate layer, off until switched on in the layer control.

Pure data: geometries (in the layer's CRS) and properties with escaped HTML; the map module
projects and draws them.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan.core._textcut import shorten
from spatialplan.render._html import escape, format_value
from spatialplan.render._labels import facility_names

__all__ = ["VILLAGE_NAMES", "path_features", "reach_color", "village_features"]

#: layer-control names
VILLAGE_NAMES = {"villages": "村庄（按可达设施类数着色） Villages by facility types reached",
                 "paths": "村至最近项目道路路径 Village paths to the nearest project"}

#: reached share → colour (none, some, most, all)
_RAMP = ("#d62728", "#ff7f0e", "#ffd92f", "#2ca02c")
_NO_REACH_COLOR = "#808080"
#: characters of a name shown in a popup
_TEXT_LIMIT = 200


def reach_color(reached: int, total: int) -> str:
    """Return the colour of a village reaching ``reached`` of ``total`` types.

    Examples
    --------
    >>> reach_color(0, 4), reach_color(4, 4), reach_color(0, 0)
    ('#d62728', '#2ca02c', '#808080')
    """
    if total <= 0:
        return _NO_REACH_COLOR
    if reached >= total:
        return _RAMP[-1]
    if reached <= 0:
        return _RAMP[0]
    return _RAMP[1] if reached / total < 0.5 else _RAMP[2]


def village_features(
    villages: gpd.GeoDataFrame, reach: pd.DataFrame | None, *, catalog: Any = None,
) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, int], int]:
    """Return the village points, their properties, the count per colour, and the type count.

    Each property dict has ``_s`` (the colour, the style key), ``_p`` (the popup HTML) and
    ``_t`` (the tooltip), all escaped.
    """
    pts = shapely.point_on_surface(villages.geometry.to_numpy())
    rows = _by_village(reach)
    total = int(reach["facility"].nunique()) if reach is not None and len(reach) else 0
    props: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    codes = villages["village_code"].astype(str).to_numpy()
    names = (villages["name"].to_numpy(dtype=object) if "name" in villages
             else np.full(len(villages), None, dtype=object))
    for code, name in zip(codes, names, strict=True):
        mine = rows.get(code)
        reached = int(mine["within_limit"].astype(bool).sum()) if mine is not None else 0
        color = reach_color(reached, total)
        counts[color] = counts.get(color, 0) + 1
        title = f"{shorten(name, _TEXT_LIMIT)} ({code})"
        head = (f"<b>{escape(title)}</b><br>可达 reached: {reached} / {total} 类 types")
        props.append({"_s": color, "_p": head + _facility_table(mine, catalog),
                      "_t": escape(f"{title}: {reached} / {total}")})
    return np.asarray(pts), props, counts, total


def _by_village(reach: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    if reach is None or len(reach) == 0:
        return {}
    frame = pd.DataFrame(reach.drop(columns=[c for c in reach.columns
                                             if str(reach[c].dtype) == "geometry"]))
    return {str(k): g for k, g in frame.groupby(frame["village_code"].astype(str), sort=False)}


def _minutes(rec: Any) -> str:
    """`` · 12.3 min / 20.0 min`` when the row has a travel time (its limit if any), else ""."""
    minutes = getattr(rec, "network_min", None)
    if minutes is None or pd.isna(minutes):
        return ""
    limit = getattr(rec, "limit_min", None)
    cap = "" if limit is None or pd.isna(limit) else f" / {format_value(limit, digits=1)} min"
    return f" · {format_value(minutes, digits=1)} min{cap}"


def _facility_table(rows: pd.DataFrame | None, catalog: Any) -> str:
    """Return the popup's table: one line per facility type."""
    if rows is None:
        return ""
    lines = []
    for rec in rows.itertuples(index=False):
        if pd.notna(rec.network_m):
            ok = "✓ 在服务距离内 within" if rec.within_limit else "✗ 超出 beyond"
            what = (f"{format_value(rec.network_m, digits=0)} m / "
                    f"{format_value(rec.limit_m, digits=0)} m{_minutes(rec)} {ok} · "
                    f"{rec.project_id}")
        else:
            what = f"✗ {rec.reason}"
        label = f"{facility_names(str(rec.facility), catalog)} {rec.facility}"
        lines.append(f"<tr><th style='text-align:left;padding-right:6px'>{escape(label)}</th>"
                     f"<td>{escape(what)}</td></tr>")
    return f"<table class='sp-kv'>{''.join(lines)}</table>"


def path_features(reach: pd.DataFrame, *, catalog: Any = None
                  ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Return the path lines of the reach rows that have one, with an escaped tooltip each."""
    geoms = np.asarray(reach.geometry.to_numpy(), dtype=object)
    ok = np.array([g is not None and not shapely.is_empty(g) for g in geoms], dtype=bool)
    props = []
    for rec in reach.loc[ok].itertuples(index=False):
        props.append({"_s": "in" if rec.within_limit else "out",
                      "_t": escape(f"{shorten(rec.name, _TEXT_LIMIT)} → "
                                   f"{facility_names(str(rec.facility), catalog)} "
                                   f"{rec.project_id}: "
                                   f"{format_value(rec.network_m, digits=0)} m")})
    return geoms[ok], props
