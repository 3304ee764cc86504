"""What changed between two checks, as a page and a map (``changes.html``, ``changes_map.html``).

:func:`render_changes` builds one self-contained HTML page (inline CSS, no scripts): the two
runs compared, the counts per kind of change, the warnings, and the project and township
change tables. :func:`changes_map` draws each changed site before (dashed) and after (coloured
by its kind of change) on a Folium map. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from folium.utilities import JsCode

from spatialplan._version import __version__
from spatialplan.render._html import escape, html_table

__all__ = ["CHANGE_NAMES", "MAX_ROWS", "changes_map", "render_changes"]

#: rows shown per table of the page (all rows are in the CSV/XLSX files)
MAX_ROWS = 1000
#: the kinds of project change in Chinese
CHANGE_NAMES = {"added": "新增", "removed": "删除", "verdict": "结论变化", "moved": "选址移动",
                "status": "建设状态变化", "dates": "日期变化", "investment": "投资变化",
                "reasons": "原因变化", "changed": "指标变化"}
#: the colour of a changed site after the change, by kind
_COLORS = {"added": "#1a9850", "removed": "#7f7f7f", "verdict": "#d73027", "moved": "#4575b4",
           "status": "#fdae61", "dates": "#fee090", "investment": "#abd9e9",
           "reasons": "#f46d43"}
_PROJECT_HEADERS = {"project_id": "项目编号 project", "name": "项目名称 name",
                    "township_code": "乡镇代码 township", "facility": "设施 facility",
                    "change": "变化 change", "before": "之前 before", "after": "之后 after",
                    "moved_m": "移动距离(m) moved"}
_TOWNSHIP_HEADERS = {"township_code": "乡镇代码 township", "township_name": "乡镇 name",
                     "change": "变化 change", "indicator": "指标 indicator",
                     "before": "之前 before", "after": "之后 after"}
_CSS = """
body { font: 14px/1.45 "Noto Sans SC", "Microsoft YaHei", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 17px; border-bottom: 1px solid #ccc; }
table.data { border-collapse: collapse; margin: 8px 0 16px; }
table.data th, table.data td { border: 1px solid #bbb; padding: 3px 7px; vertical-align: top; }
table.data th { background: #eee; } td.num { text-align: right; }
.warn { background: #fff3cd; border: 1px solid #d39e00; padding: 6px 10px; }
footer { margin-top: 24px; color: #777; font-size: 12px; }
"""
#: binds each feature's popup (``_p``, escaped HTML) and tooltip (``_t``)
_BIND_JS = """function(feature, layer) {
    var p = feature.properties || {};
    if (p._c && layer.setStyle) { layer.setStyle({color: p._c, fillColor: p._c}); }
    if (p._p) { layer.bindPopup(p._p, {maxWidth: 460}); }
    if (p._t) { layer.bindTooltip(p._t, {sticky: true}); }
}"""


def render_changes(*, projects: pd.DataFrame, townships: pd.DataFrame,
                   before: Mapping[str, Any], after: Mapping[str, Any],
                   warnings: Sequence[str] = (), map_file: str | None = None,
                   max_rows: int | None = MAX_ROWS) -> str:
    """Render the changes between two checks as one HTML page.

    Parameters
    ----------
    projects, townships
        The tables of :func:`spatialplan.analysis.compare.project_changes` and
        :func:`~spatialplan.analysis.compare.township_changes`.
    before, after
        What identifies each run: e.g. ``source``, ``plan``, ``as_of``, ``crs``.
    warnings
        Texts shown at the top (different plans, different CRSs...).
    map_file
        The map of the changed sites beside the page, linked when given.
    max_rows
        Rows shown per table (``None``: all); a longer table shows its first rows and names
        the CSV/XLSX files that hold them all.

    Returns
    -------
    str
        The HTML document.

    Examples
    --------
    >>> empty = pd.DataFrame(columns=["project_id", "change"])
    >>> html = render_changes(projects=empty, townships=pd.DataFrame(), before={}, after={})
    >>> "没有变化" in html
    True
    """
    title = "两次检查的变化 Changes between two checks"
    runs = html_table([{"": "之前 before", **before}, {"": "之后 after", **after}])
    counts = projects["change"].value_counts() if len(projects) else pd.Series(dtype=int)
    summary = html_table([{"变化 change": f"{CHANGE_NAMES.get(k, k)} {k}", "项目 projects": int(n)}
                          for k, n in counts.items()], empty="没有变化 no project changed")
    parts = [f"<h1>{escape(title)}</h1>", runs]
    parts += [f'<p class="warn">{escape(w)}</p>' for w in warnings]
    parts += ["<h2>项目变化 Project changes</h2>", summary,
              *_capped(projects, _PROJECT_HEADERS, "changes", max_rows,
                       empty="没有变化 no project changed"),
              "<h2>乡镇指标变化 Township changes</h2>",
              *_capped(townships, _TOWNSHIP_HEADERS, "township_changes", max_rows,
                       empty="没有变化 no township indicator changed")]
    if map_file:
        parts.append(f'<p><a href="{escape(map_file)}">变化地图 map of the changed sites '
                     f"({escape(map_file)})</a></p>")
    parts.append(f"<footer>spatialplan {escape(__version__)} · "
                 f"{escape(datetime.now().strftime('%Y-%m-%d %H:%M'))}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def _capped(table: pd.DataFrame, headers: Mapping[str, str], name: str, max_rows: int | None,
            *, empty: str) -> list[str]:
    """Return the table's HTML, cut to ``max_rows`` rows with a note naming the full files."""
    shown = table if max_rows is None else table.iloc[:max_rows]
    parts = [html_table(shown, columns=[c for c in headers if c in table.columns],
                        headers=headers, empty=empty)]
    if len(shown) < len(table):
        parts.insert(0, f"<p>显示前 {len(shown):,} 行，共 {len(table):,} 行；全部见 {name}.csv / "
                        f"{name}.xlsx · shown {len(shown):,} of {len(table):,} rows; all of them "
                        f"are in {name}.csv and {name}.xlsx</p>")
    return parts


def changes_map(projects: gpd.GeoDataFrame) -> folium.Map:
    """Draw the changed sites: before as a dashed grey outline, after coloured by change.

    Parameters
    ----------
    projects
        :func:`spatialplan.analysis.compare.project_changes` (the site after as geometry,
        ``geometry_before``), in a projected CRS. A project with several changes is drawn
        once, its popup listing them all.

    Returns
    -------
    folium.Map
        With a layer per side and a legend of the kinds of change.
    """
    from spatialplan.render.webmap import _LEAFLET_CSS, _LEAFLET_JS, _add_basemaps, _add_controls

    m = folium.Map(tiles=None, control_scale=False)
    m.default_js = [("leaflet", _LEAFLET_JS)]
    m.default_css = [("leaflet_css", _LEAFLET_CSS)]
    _add_basemaps(m, "osm", None)
    by_project = _one_per_project(projects)
    bounds = []
    for side, column in (("before", "geometry_before"), ("after", "geometry")):
        fc, box = _features(by_project, column, side, crs=projects.crs)
        if box is not None:
            bounds.append(box)
        folium.GeoJson(fc, name=escape("之前 before" if side == "before" else "之后 after"),
                       style_function=None, on_each_feature=JsCode(_BIND_JS),
                       style=_style(side)).add_to(m)
    _add_controls(m)
    if bounds:
        b = np.vstack(bounds)
        m.fit_bounds([[float(b[:, 1].min()), float(b[:, 0].min())],
                      [float(b[:, 3].max()), float(b[:, 2].max())]])
    else:
        m.location, m.options["zoom"] = [26.8, 106.7], 8
    return m


def _style(side: str) -> dict[str, Any]:
    if side == "before":
        return {"color": "#555555", "weight": 2, "dashArray": "5 4", "fill": False}
    return {"color": "#333333", "weight": 2, "fillOpacity": 0.55}


def _one_per_project(projects: gpd.GeoDataFrame) -> pd.DataFrame:
    """One row per changed project: its first kind of change and the popup listing them all."""
    columns = ["project_id", "change", "_t", "_p", "geometry", "geometry_before"]
    if not len(projects):
        return pd.DataFrame(columns=columns)
    ids = projects["project_id"].astype(str).to_numpy()
    lines = [f"<tr><td>{escape(CHANGE_NAMES.get(k, k))}</td><td>{escape(b)}</td>"
             f"<td>{escape(a)}</td></tr>"
             for k, b, a in zip(projects["change"], projects["before"], projects["after"],
                                strict=True)]
    rows: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    for i, (pid, line) in enumerate(zip(ids, lines, strict=True)):
        rows.setdefault(pid, []).append(line)
        first.setdefault(pid, i)
    at = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    names = projects["name"].astype(str).to_numpy()[at]
    keys = list(first)
    return pd.DataFrame({
        "project_id": keys, "change": projects["change"].to_numpy()[at],
        "_t": [f"{pid} {name}" for pid, name in zip(keys, names, strict=True)],
        "_p": [f"<b>{escape(pid)} {escape(name)}</b><table><tr><th>变化</th><th>之前</th>"
               f"<th>之后</th></tr>{''.join(rows[pid])}</table>"
               for pid, name in zip(keys, names, strict=True)],
        "geometry": np.asarray(projects.geometry.array, dtype=object)[at],
        "geometry_before": np.asarray(projects["geometry_before"].array, dtype=object)[at]})


def _features(rows: pd.DataFrame, column: str, side: str, *,
              crs: Any) -> tuple[dict, np.ndarray | None]:
    """GeoJSON of one side's sites in WGS 84, with the popups; and its bounds."""
    geoms = np.asarray(rows[column].to_numpy() if len(rows) else [], dtype=object)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms)) if len(geoms) else \
        np.zeros(0, dtype=bool)
    if not keep.any():
        return {"type": "FeatureCollection", "features": []}, None
    series = gpd.GeoSeries(geoms[keep], crs=crs)
    wgs = series.to_crs(4326) if series.crs is not None else series
    kept = rows[keep]
    features = []
    for change, popup, tip, geom in zip(kept["change"], kept["_p"], kept["_t"], wgs, strict=True):
        style = {"_c": _COLORS.get(change, "#333333")} if side == "after" else {}
        features.append({"type": "Feature", "geometry": shapely.geometry.mapping(geom),
                         "properties": {"_p": popup, "_t": escape(tip), **style}})
    return {"type": "FeatureCollection", "features": features}, np.array([wgs.total_bounds])
