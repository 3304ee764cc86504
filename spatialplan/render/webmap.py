"""Interactive web map (folium / Leaflet) of a plan and its check results.

:func:`explore` builds a :class:`folium.Map` from in-memory (Geo)DataFrames (it shows
inline in Jupyter); :func:`write_map` writes it as one self-contained ``map.html``.

Display only: every layer is copied, simplified (topology-preserving), reprojected to
EPSG:4326 and, for Gaode tiles, shifted to GCJ-02. Nothing here changes the analysis data.

Safety: no attribute value or field name reaches the page unescaped. Popups and tooltips are
built here with :func:`spatialplan.render._html.escape` and bound by a small JavaScript function;
folium's ``GeoJsonPopup``/``GeoJsonTooltip`` (which insert raw property values as HTML) are
not used. The GeoJSON itself is embedded with HTML-safe JSON escaping.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.template import Template
from folium.utilities import JsCode

from spatialplan.core import _gcj02
from spatialplan.core._resources import layers_dir
from spatialplan.core._textcut import shorten
from spatialplan.errors import CRSError, OutputError, SpatialPlanError
from spatialplan.io.output import atomic_path
from spatialplan.render._html import escape, format_value, is_missing, json_for_script
from spatialplan.render._webmap_sites import (
    MARKERCLUSTER_ASSETS,
    SiteLayer,
    site_collection,
    site_table,
)
from spatialplan.render._webmap_villages import (
    VILLAGE_NAMES,
    path_features,
    reach_color,
    village_features,
)

__all__ = [
    "LANDUSE_COLORS",
    "LAYER_NAMES",
    "VERDICT_COLORS",
    "explore",
    "write_map",
]

logger = logging.getLogger(__name__)

#: Layer-control names of the overlays (Chinese + English).
LAYER_NAMES: dict[str, str] = {
    "townships": "乡镇界 Townships",
    "redline": "生态保护红线 Ecological red line",
    "farmland": "永久基本农田 Permanent basic farmland",
    "udb": "城镇开发边界 Urban development boundary",
    "parcels": "详细规划地块 Detailed-plan parcels",
    "conflicts": "控制线冲突 Line conflicts",
    "projects": "8+X 项目 Projects",
}

#: Project verdict → fill colour.
VERDICT_COLORS: dict[str, str] = {
    "pass": "#2ca02c",
    "review": "#ff8c00",
    "fail": "#d62728",
    "error": "#808080",
}

VERDICT_LABELS: dict[str, str] = {
    "pass": "符合 pass",
    "review": "需论证 review",
    "fail": "不符合 fail",
    "error": "无法检查 error",
}

#: First-level 用地用海 code → approximate standard planning colour.
LANDUSE_COLORS: dict[str, str] = {
    "01": "#f5f0b4", "02": "#c8e68c", "03": "#5aaa5a", "04": "#a0d282", "05": "#78c8e6",
    "06": "#d2be78", "07": "#ffff2d", "08": "#ff7fbf", "09": "#ff0000", "10": "#bb9674",
    "11": "#8761d3", "12": "#b6b6b6", "13": "#00a0b4", "14": "#00ff00", "15": "#a0a03c",
    "16": "#ffffff", "17": "#3ca0ff", "23": "#dcdcdc",
}

_STYLES: dict[str, dict[str, Any]] = {
    "townships": {"color": "#333333", "weight": 2, "dashArray": "10 4 2 4", "fill": False},
    "redline": {"color": "#c00000", "weight": 1.5, "fillColor": "#ff0000", "fillOpacity": 0.35},
    "farmland": {"color": "#b8860b", "weight": 1, "fillColor": "#f2d04a", "fillOpacity": 0.45},
    "udb": {"color": "#7b2cbf", "weight": 2.5, "dashArray": "6 3", "fill": False},
    "parcels": {"color": "#666666", "weight": 0.5, "fillOpacity": 0.5},
    "conflicts": {"color": "#000000", "weight": 1.5, "dashArray": "3 3",
                  "fillColor": "#ff00ff", "fillOpacity": 0.6},
    "projects": {"color": "#222222", "weight": 1.5, "fill": True, "fillOpacity": 0.75,
                 "radius": 6},
}

_ROLE_ORDER = ("townships", "parcels", "farmland", "redline", "udb", "conflicts", "projects")

_TIANDITU_URL = (
    "https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
)
_TIANDITU_ATTR = '&copy; 国家地理信息公共服务平台 <a href="https://www.tianditu.gov.cn/">天地图</a>'

# CDN URL (as folium 0.20 writes it) → bundled file in layers/webassets/
_ASSETS: dict[str, str] = {
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "leaflet-1.9.3.js",
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "leaflet-1.9.3.css",
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.min.js":
        "leaflet.fullscreen-3.0.0.js",
    "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.css":
        "leaflet.fullscreen-3.0.0.css",
    "https://cdn.jsdelivr.net/gh/ljagis/leaflet-measure@2.1.7/dist/leaflet-measure.min.js":
        "leaflet-measure-2.1.7.js",
    "https://cdn.jsdelivr.net/gh/ljagis/leaflet-measure@2.1.7/dist/leaflet-measure.min.css":
        "leaflet-measure-2.1.7.css",
    **MARKERCLUSTER_ASSETS,
}
_LEAFLET_JS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"
_LEAFLET_CSS = "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css"

_BIND_JS = """function(feature, layer) {
    var p = feature.properties || {};
    var styles = %(styles)s;
    if (p._s !== undefined && styles[p._s] !== undefined && layer.setStyle) {
        layer.setStyle(styles[p._s]);
    }
    if (p._p) { layer.bindPopup(p._p, {maxWidth: 460}); }
    if (p._t) { layer.bindTooltip(p._t, %(tooltip)s); }
}"""


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def explore(
    *,
    townships: gpd.GeoDataFrame | None = None,
    redline: gpd.GeoDataFrame | None = None,
    farmland: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
    parcels: gpd.GeoDataFrame | None = None,
    conflicts: gpd.GeoDataFrame | None = None,
    projects: gpd.GeoDataFrame | None = None,
    findings: pd.DataFrame | None = None,
    basemap: str = "osm",
    tianditu_key: str | None = None,
    gaode: bool = False,
    max_features: int = 5000,
    max_sites: int = 2000,
    max_vertices: int = 60_000,
    simplify_m: float = 1.0,
    precision: int = 6,
    popup_fields: Mapping[str, Sequence[str]] | None = None,
    title: str | None = None,
    villages: gpd.GeoDataFrame | None = None,
    village_reach: gpd.GeoDataFrame | None = None,
    catalog: Any = None,
) -> folium.Map:
    """Build an interactive map of the control lines, parcels, conflicts and 8+X projects.

    Parameters
    ----------
    townships, redline, farmland, udb, parcels
        Layers in a projected (metric) CRS, e.g. ``plan.layers[role].data``. ``townships``
        may also be the ``township_stats`` table (its shares are shown in the popup).
    conflicts
        The ``line_conflicts`` table.
    projects, findings
        The siting results: sites coloured by ``verdict``; each popup lists the project's
        findings (rule, status, measure, message).
    basemap
        ``"osm"`` (default), ``"tianditu"`` (needs a key), ``"gaode"`` (GCJ-02) or ``"none"``.
    tianditu_key
        天地图 key; default: the ``TIANDITU_KEY`` environment variable, read at call time.
        With a key the Tianditu vector and imagery basemaps (with labels) are offered; without
        one there is no Tianditu layer and a message is logged.
    gaode
        Shorthand for ``basemap="gaode"``: 高德 tiles, every overlay shifted to GCJ-02
        **for display only** (the map says so).
    max_features
        A control-line, parcel or line-conflict layer with more features is aggregated for
        display (occupied grid cells merged per township; conflicts also per kind) with a
        logged warning. Projects are never aggregated.
    max_sites
        With more project sites than this, every site is still drawn, but as one compact
        layer: polygons simplified at ``simplify_m / 2`` on one canvas, styled by verdict,
        markers clustered (Leaflet.markercluster, bundled), and one popup template shared by
        all sites, filled from a table of escaped texts when a site is clicked; its findings
        table gives measure and message only for findings that are not a pass or not
        applicable (all of them are in ``results.gpkg``). At or below it (e.g. the demo),
        each site carries its own popup with every finding.
    max_vertices
        Vertex budget per layer; the simplification tolerance grows until it fits.
    simplify_m
        Initial display simplification tolerance in metres (topology-preserving).
    precision
        Decimals of the embedded longitudes/latitudes (6 ≈ 0.1 m).
    popup_fields
        Extra attribute columns to show in the popup, per role, e.g. ``{"parcels": ["DKBM"]}``.
    title
        Optional title shown in the legend.
    villages, village_reach
        The ``villages`` layer and the ``village_reach`` result ("1+N" reach): each village is
        a point coloured by how many facility types it reaches within their limit (legend),
        with a popup listing each type's road distance, limit and nearest project, or why it
        is not joined; the paths are a layer off by default (not drawn, with a legend note,
        when there are more than ``max_features``).
    catalog
        Facility catalogue for the Chinese type names in the village popups (default: bundled).

    Returns
    -------
    folium.Map

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> t = gpd.GeoDataFrame({"code": ["520111001"], "name": ["青岩镇"]},
    ...                      geometry=[box(500000, 3070000, 505000, 3075000)], crs=4545)
    >>> m = explore(townships=t)
    >>> type(m).__name__
    'Map'
    """
    mode = _basemap_mode(basemap, gaode)
    m = folium.Map(tiles=None, control_scale=False, prefer_canvas=False)
    # only Leaflet itself: no jQuery / Bootstrap / Font Awesome (we use none of them)
    m.default_js = [("leaflet", _LEAFLET_JS)]
    m.default_css = [("leaflet_css", _LEAFLET_CSS)]
    _add_basemaps(m, mode, tianditu_key)
    fields = {k: list(v) for k, v in (popup_fields or {}).items()}
    layers = {"townships": townships, "redline": redline, "farmland": farmland, "udb": udb,
              "parcels": parcels, "conflicts": conflicts, "projects": projects}
    unknown = set(fields) - set(layers)
    if unknown:
        raise SpatialPlanError(f"popup_fields names unknown layer(s) {sorted(unknown)}",
                               hint=f"use one of {sorted(layers)}")
    notes: list[str] = []
    bounds: list[np.ndarray] = []
    counts: dict[str, int] = {}
    opts: dict[str, Any] = {"max_features": max_features, "max_vertices": max_vertices,
            "simplify_m": simplify_m, "precision": precision, "gcj02": mode == "gaode"}
    for role in _ROLE_ORDER:
        gdf = layers[role]
        if gdf is None:
            continue
        if role == "projects" and _n_drawn(role, gdf) > max_sites:
            layer, counts[role], b, site_note = _site_layer(
                gdf, findings=findings, extra_fields=fields.get(role, []), max_sites=max_sites,
                simplify_m=simplify_m, precision=precision, gcj02=mode == "gaode")
            layer.add_to(m)
            notes.append(site_note)
            if b is not None:
                bounds.append(b)
            continue
        fc, b, note = _layer_geojson(role, gdf, townships=townships, findings=findings,
                                     extra_fields=fields.get(role, []), **opts)
        counts[role] = len(fc["features"])
        if note:
            notes.append(note)
        if b is not None:
            bounds.append(b)
        _add_geojson(m, role, fc)
    legend_extra = [] if villages is None else _add_villages(
        m, villages, village_reach, catalog=catalog, bounds=bounds, notes=notes,
        **{k: opts[k] for k in ("max_features", "precision", "gcj02")})
    _add_controls(m)
    verdicts = _verdict_counts(projects)
    _Legend(_legend_html(counts, verdicts, notes, mode, title, extra=legend_extra)).add_to(m)
    if mode == "gaode":
        _Badge("GCJ-02 display · 高德坐标 (仅显示, 分析用 CGCS2000)").add_to(m)
    if bounds:
        arr = np.vstack(bounds)
        m.fit_bounds([[float(arr[:, 1].min()), float(arr[:, 0].min())],
                      [float(arr[:, 3].max()), float(arr[:, 2].max())]])
    else:
        m.location = [26.8, 106.7]  # Guizhou
        m.options["zoom"] = 8
    return m


def write_map(m: folium.Map, path: str | os.PathLike, *, assets: str = "inline") -> Path:
    """Write a map as one HTML file, atomically.

    Parameters
    ----------
    m
        The map from :func:`explore`.
    path
        Target file, e.g. ``out/map.html``; a temporary file beside it is written first and
        moved into place with :func:`os.replace`.
    assets
        ``"inline"`` (default): Leaflet and the plugins are embedded from the bundled copies,
        so the map opens without internet (only basemap tiles need the network).
        ``"cdn"``: load them from the CDNs folium uses (smaller file).

    Returns
    -------
    pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_map(explore(), pathlib.Path(tempfile.mkdtemp()) / "map.html")
    >>> p.name
    'map.html'
    """
    if assets not in ("inline", "cdn"):
        raise SpatialPlanError(f"unknown assets mode {assets!r}", hint='use "inline" or "cdn"')
    path = Path(path)
    html = m.get_root().render()
    if assets == "inline":
        html = _inline_assets(html)
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8", newline="\n")
    logger.debug("wrote %s (%.2f MB)", path, path.stat().st_size / 1e6)
    return path


# --------------------------------------------------------------------------------------------
# basemaps and controls
# --------------------------------------------------------------------------------------------


def _basemap_mode(basemap: str, gaode: bool) -> str:
    mode = (basemap or "none").lower()
    if mode not in ("osm", "tianditu", "gaode", "none"):
        raise SpatialPlanError(f"unknown basemap {basemap!r}",
                               hint='use "osm", "tianditu", "gaode" or "none"')
    if gaode:
        if mode not in ("osm", "gaode"):
            raise SpatialPlanError(
                f"gaode=True cannot be combined with basemap={basemap!r}",
                hint="Gaode tiles are GCJ-02: choose either Gaode or another basemap")
        mode = "gaode"
    return mode


def _add_basemaps(m: folium.Map, mode: str, tianditu_key: str | None) -> None:
    if mode == "gaode":
        import xyzservices.providers as xyz

        choices = ((xyz.Gaode.Normal, "高德地图 Gaode (GCJ-02)"),
                   (xyz.Gaode.Satellite, "高德影像 Gaode imagery (GCJ-02)"))
        for i, (prov, label) in enumerate(choices):
            folium.TileLayer(prov, name=label, show=i == 0, control=True).add_to(m)
        return
    if mode == "none":
        return
    key = tianditu_key if tianditu_key is not None else os.environ.get("TIANDITU_KEY")
    key = (key or "").strip()
    show_osm = mode != "tianditu" or not key
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap", show=show_osm).add_to(m)
    if not key:
        level = logging.WARNING if mode == "tianditu" else logging.INFO
        logger.log(level, "no Tianditu key (option tianditu_key or environment variable "
                          "TIANDITU_KEY): the map has no 天地图 basemap%s",
                   ", showing OpenStreetMap instead" if mode == "tianditu" else "")
        return
    for i, (base, labels, name) in enumerate((("vec", "cva", "天地图 矢量 Tianditu vector"),
                                              ("img", "cia", "天地图 影像 Tianditu imagery"))):
        group = folium.FeatureGroup(name=name, overlay=False, control=True,
                                    show=mode == "tianditu" and i == 0)
        for layer in (base, labels):
            folium.TileLayer(
                _TIANDITU_URL.format(layer=layer, key=urllib.parse.quote(key, safe="")),
                attr=_TIANDITU_ATTR, subdomains="01234567", max_zoom=18,
                overlay=False, control=False, name=f"tianditu_{layer}",
            ).add_to(group)
        group.add_to(m)


def _add_controls(m: folium.Map) -> None:
    _MetricScale().add_to(m)
    folium.plugins.Fullscreen(position="topleft").add_to(m)
    folium.plugins.MeasureControl(position="topleft", primary_length_unit="meters",
                                  secondary_length_unit="kilometers",
                                  primary_area_unit="sqmeters",
                                  secondary_area_unit="hectares").add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)


class _MetricScale(MacroElement):
    """Leaflet's scale bar, metric only (folium's ``control_scale`` also shows feet)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        L.control.scale({metric: true, imperial: false, maxWidth: 150})
            .addTo({{ this._parent.get_name() }});
        {% endmacro %}
    """)

    def __init__(self) -> None:
        super().__init__()
        self._name = "SpMetricScale"


class _Legend(MacroElement):
    """A fixed legend box; ``html`` must already be escaped."""

    _template = Template("""
        {% macro html(this, kwargs) %}
        <style>
        .leaflet-tooltip.sp-label { background: transparent; border: none; box-shadow: none;
            font: bold 13px sans-serif; color: #222; opacity: 1;
            text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 3px #fff; }
        .leaflet-tooltip.sp-label::before { display: none; }
        </style>
        <div class="sp-legend" style="position: fixed; bottom: 28px; right: 10px; z-index: 9999;
             background: rgba(255,255,255,0.92); padding: 6px 9px; border: 1px solid #999;
             border-radius: 4px; font: 12px/1.35 sans-serif; max-width: 300px;">
        {{ this.content }}
        </div>
        {% endmacro %}
    """)

    def __init__(self, content: str) -> None:
        super().__init__()
        self._name = "SpLegend"
        self.content = content


class _Badge(MacroElement):
    """A fixed notice at the top of the map; ``text`` is escaped here."""

    _template = Template("""
        {% macro html(this, kwargs) %}
        <div class="sp-badge" style="position: fixed; top: 10px; left: 50%;
             transform: translateX(-50%); z-index: 9999; background: #fff3cd;
             border: 1px solid #d39e00; padding: 3px 8px; border-radius: 3px;
             font: bold 12px sans-serif;">{{ this.content }}</div>
        {% endmacro %}
    """)

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "SpBadge"
        self.content = escape(text)


def _swatch(style: Mapping[str, Any], *, point: bool = False) -> str:
    fill = style.get("fillColor", style.get("color", "#999")) if style.get("fill", True) else None
    border = style.get("color", "#333")
    dash = "dashed" if style.get("dashArray") else "solid"
    bg = f"background:{fill};opacity:0.85;" if fill else "background:transparent;"
    radius = "border-radius:50%;" if point else ""
    return (f'<span style="display:inline-block;width:14px;height:10px;margin-right:5px;'
            f'vertical-align:middle;border:2px {dash} {border};{bg}{radius}"></span>')


def _legend_html(counts: Mapping[str, int], verdicts: Mapping[str, int],
                 notes: Sequence[str], mode: str, title: str | None, *,
                 extra: Sequence[str] = ()) -> str:
    """Return the legend's HTML; ``extra``: rows already escaped (the villages)."""
    rows = []
    if title:
        rows.append(f"<div style='font-weight:bold;margin-bottom:3px'>{escape(title)}</div>")
    rows.append("<div style='font-weight:bold'>图例 Legend</div>")
    for role in ("townships", "redline", "farmland", "udb", "conflicts"):
        if role in counts:
            rows.append(f"<div>{_swatch(_STYLES[role])}{escape(LAYER_NAMES[role])}</div>")
    if "parcels" in counts:
        rows.append(f"<div>{_swatch({'color': '#666', 'fillColor': '#ff7fbf'})}"
                    f"{escape(LAYER_NAMES['parcels'])} (按用地分类 by land-use class)</div>")
    if "projects" in counts:
        rows.append(f"<div style='margin-top:3px'>{escape(LAYER_NAMES['projects'])}</div>")
        for verdict, color in VERDICT_COLORS.items():
            n = verdicts.get(verdict, 0)
            rows.append(f"<div style='padding-left:8px'>"
                        f"{_swatch({'color': '#222', 'fillColor': color})}"
                        f"{escape(VERDICT_LABELS[verdict])} ({n})</div>")
    rows += extra
    if mode == "gaode":
        rows.append("<div style='margin-top:3px;color:#8a6d00'>GCJ-02 display: overlays shifted "
                    "for 高德 tiles only</div>")
    for note in notes:
        rows.append(f"<div style='margin-top:3px;color:#8a4b00'>⚠ {escape(note)}</div>")
    return "\n".join(rows)


def _verdict_counts(projects: gpd.GeoDataFrame | None) -> dict[str, int]:
    if projects is None or "verdict" not in projects.columns:
        return {}
    return {str(k): int(v) for k, v in projects["verdict"].value_counts(dropna=True).items()}


# --------------------------------------------------------------------------------------------
# layers: display geometry
# --------------------------------------------------------------------------------------------


def _add_geojson(m: folium.Map, role: str, fc: dict) -> None:
    styles: Any = _feature_styles(role)
    tooltip = ({"permanent": True, "direction": "center", "className": "sp-label",
                "opacity": 0.9} if role == "townships" else {"sticky": True})
    js = _BIND_JS % {"styles": json_for_script(styles), "tooltip": json_for_script(tooltip)}
    base = dict(_STYLES[role])
    radius = base.pop("radius", 6)
    extra: dict[str, Any] = {"style": base}  # a Leaflet option folium passes through
    layer = folium.GeoJson(
        fc,
        name=escape(LAYER_NAMES[role]),
        show=role != "parcels",
        style_function=None,
        on_each_feature=JsCode(js),
        marker=folium.CircleMarker(radius=radius),
        **extra,
    )
    layer.add_to(m)


#: styles of the villages (fill by reach colour) and of their paths (within / beyond the limit)
_VILLAGE_STYLE = {"color": "#222222", "weight": 1, "fill": True, "fillOpacity": 0.9}
_PATH_STYLES = {"in": {"color": "#2ca02c", "weight": 2, "opacity": 0.8},
                "out": {"color": "#d62728", "weight": 2, "opacity": 0.8, "dashArray": "4 4"}}


def _add_villages(m: folium.Map, villages: gpd.GeoDataFrame, reach: gpd.GeoDataFrame | None,
                  *, catalog: Any, bounds: list[np.ndarray], notes: list[str],
                  max_features: int, precision: int, gcj02: bool) -> list[str]:
    """Draw the villages (coloured by reach, popups) and their paths; return legend rows."""
    villages = _valid_rows("villages", villages)
    pts, props, by_color, total = village_features(villages, reach, catalog=catalog)
    display, keep, b = _display(pts, villages.crs, precision=precision, gcj02=gcj02)
    if b is not None:
        bounds.append(b)
    styles = {c: {**_VILLAGE_STYLE, "fillColor": c} for c in by_color}
    _add_features(m, _collection(display[keep], [p for p, k in zip(props, keep, strict=True)
                                                 if k]),
                  name=VILLAGE_NAMES["villages"], styles=styles, base=_VILLAGE_STYLE, show=True)
    if reach is not None and len(reach) > max_features:
        notes.append(f"{VILLAGE_NAMES['paths']}: {len(reach):,} > {max_features:,}, not drawn "
                     f"(all paths: results.gpkg, layer village_reach)")
    elif reach is not None and len(reach):
        paths = _valid_rows("village_reach", reach)
        geoms, pprops = path_features(paths, catalog=catalog)
        pdisp, pkeep, _ = _display(geoms, paths.crs, precision=precision, gcj02=gcj02)
        _add_features(m, _collection(pdisp[pkeep], [p for p, k in zip(pprops, pkeep,
                                                                       strict=True) if k]),
                      name=VILLAGE_NAMES["paths"], styles=_PATH_STYLES,
                      base=_PATH_STYLES["in"], show=False)
    return _village_legend(by_color, total)


def _village_legend(by_color: Mapping[str, int], total: int) -> list[str]:
    """Legend rows of the villages: one per colour drawn, with its count."""
    rows = [f"<div style='margin-top:3px'>{escape(VILLAGE_NAMES['villages'])}</div>"]
    labels = [(reach_color(0, total), f"0 / {total}"),
              (reach_color(1, max(total, 3)) if total > 1 else None, "< 1/2"),
              (reach_color(total - 1, total) if total > 1 else None, "≥ 1/2"),
              (reach_color(total, total), f"{total} / {total}")]
    seen = set()
    for color, label in labels:
        if color is None or color in seen or color not in by_color:
            continue
        seen.add(color)
        rows.append(f"<div style='padding-left:8px'>"
                    f"{_swatch({'color': '#222', 'fillColor': color}, point=True)}"
                    f"{escape(label)} ({by_color[color]})</div>")
    return rows


def _collection(geoms: np.ndarray, props: Sequence[dict[str, Any]]) -> dict:
    texts = shapely.to_geojson(geoms)
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": p, "geometry": _loads(t)}
                         for p, t in zip(props, texts, strict=True)]}


def _add_features(m: folium.Map, fc: dict, *, name: str, styles: Mapping[str, Any],
                  base: Mapping[str, Any], show: bool) -> None:
    """Add a FeatureCollection whose properties carry ``_s`` (style key), ``_p``, ``_t``."""
    js = _BIND_JS % {"styles": json_for_script(dict(styles)),
                     "tooltip": json_for_script({"sticky": True})}
    folium.GeoJson(fc, name=escape(name), show=show, style_function=None,
                   on_each_feature=JsCode(js), marker=folium.CircleMarker(radius=5),
                   style=dict(base)).add_to(m)


def _feature_styles(role: str) -> dict[str, dict[str, Any]]:
    """Per-feature style variants, keyed by the feature's ``_s`` property."""
    base = {k: v for k, v in _STYLES[role].items() if k != "radius"}
    if role == "projects":
        return {v: {**base, "fillColor": c} for v, c in VERDICT_COLORS.items()}
    if role == "parcels":
        return {k: {**base, "fillColor": c} for k, c in LANDUSE_COLORS.items()}
    if role == "conflicts":
        return {"boundary_noise": {**base, "fillColor": "#ffb3ff", "fillOpacity": 0.4}}
    return {}


def _layer_geojson(
    role: str,
    gdf: gpd.GeoDataFrame,
    *,
    townships: gpd.GeoDataFrame | None,
    findings: pd.DataFrame | None,
    extra_fields: Sequence[str],
    max_features: int,
    max_vertices: int,
    simplify_m: float,
    precision: int,
    gcj02: bool,
) -> tuple[dict, np.ndarray | None, str | None]:
    """Return (GeoJSON FeatureCollection, lon/lat bounds, degradation note) for one layer."""
    gdf = _valid_rows(role, gdf)
    missing = [f for f in extra_fields if f not in gdf.columns]
    if missing:
        raise SpatialPlanError(f"popup field(s) {missing} not in layer", layer=role,
                               hint="check popup_fields against the layer's columns")
    note = None
    if len(gdf) == 0:
        return {"type": "FeatureCollection", "features": []}, None, None
    if role in ("farmland", "redline", "parcels", "udb", "conflicts") and len(gdf) > max_features:
        kind = gdf["kind"].astype(str).to_numpy() if "kind" in gdf.columns else None
        gdf, note = _aggregate(role, gdf, townships=townships, max_features=max_features,
                               kind=kind)
        extra_fields = []
    geoms = _display_geometry(role, gdf.geometry.values, max_vertices=max_vertices,
                              simplify_m=simplify_m)
    props = _properties(role, gdf, findings=findings, extra_fields=extra_fields)
    if role == "projects":  # a marker at each site so small sites stay visible when zoomed out
        polys = np.array([g.geom_type.endswith("Polygon") for g in geoms])
        marks = shapely.point_on_surface(np.asarray(geoms)[polys])
        geoms = np.concatenate([np.asarray(geoms), marks])
        props = props + [p for p, keep in zip(props, polys, strict=True) if keep]
    display, keep, b = _display(geoms, gdf.crs, precision=precision, gcj02=gcj02)
    texts = shapely.to_geojson(display[keep])
    features = [{"type": "Feature", "properties": p, "geometry": _loads(t)}
                for p, t in zip([p for p, k in zip(props, keep, strict=True) if k], texts,
                                strict=True)]
    return {"type": "FeatureCollection", "features": features}, b, note


def _display(geoms: np.ndarray, crs: Any, *, precision: int, gcj02: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Project geometries to EPSG:4326 (shifted to GCJ-02 if asked), rounded to ``precision``.

    Also return the mask of those not empty and their lon/lat bounds (``None`` if none).
    """
    display = gpd.GeoSeries(geoms, crs=crs).to_crs(4326).values
    if gcj02:
        display = _gcj02.geometry_to_gcj02(display)
    display = shapely.transform(display, lambda c: np.round(c, precision))
    keep = ~(shapely.is_empty(display) | shapely.is_missing(display))
    bounds = np.asarray(shapely.bounds(display[keep]))
    bounds = bounds[np.isfinite(bounds).all(axis=1)]
    b = np.array([bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(),
                  bounds[:, 3].max()]) if len(bounds) else None
    return np.asarray(display), keep, b


def _n_drawn(role: str, gdf: gpd.GeoDataFrame) -> int:
    """Count the features with a geometry (those the map draws)."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        return 0  # _valid_rows raises the clear error
    geom = gdf.geometry
    return int((geom.notna() & ~geom.is_empty).sum())


def _site_layer(gdf: gpd.GeoDataFrame, *, findings: pd.DataFrame | None,
                extra_fields: Sequence[str], max_sites: int, simplify_m: float, precision: int,
                gcj02: bool) -> tuple[SiteLayer, int, np.ndarray | None, str]:
    """Build the compact layer of many project sites (:mod:`spatialplan.render._webmap_sites`).

    Returns the layer, the number of sites drawn, their lon/lat bounds and the legend note.
    """
    gdf = _valid_rows("projects", gdf)
    missing = [f for f in extra_fields if f not in gdf.columns]
    if missing:
        raise SpatialPlanError(f"popup field(s) {missing} not in layer", layer="projects",
                               hint="check popup_fields against the layer's columns")
    geoms = np.asarray(gdf.geometry.values)
    if simplify_m > 0:
        geoms = shapely.simplify(geoms, simplify_m / 2, preserve_topology=True)
    display, keep, b = _display(geoms, gdf.crs, precision=precision, gcj02=gcj02)
    drawn = gdf.loc[keep]
    verdicts = drawn["verdict"] if "verdict" in drawn.columns else [None] * len(drawn)
    collection = site_collection(shapely.to_geojson(display[keep]), verdicts)
    table = site_table(drawn, findings, extra_fields=extra_fields)
    base = {k: v for k, v in _STYLES["projects"].items() if k != "radius"}
    styles = {**_feature_styles("projects"), "": {**base, "fillColor": "#808080"}}
    layer = SiteLayer(collection, table, styles=styles, colors=VERDICT_COLORS,
                      labels=VERDICT_LABELS, name=escape(LAYER_NAMES["projects"]))
    note = (f"{LAYER_NAMES['projects']}: {len(drawn):,} sites > {max_sites:,}, drawn as one "
            f"layer with clustered markers (cluster colour: worst verdict inside); popups give "
            f"measure and message only for findings that are not a pass (all findings: "
            f"results.gpkg)")
    logger.info("%s", note)
    return layer, len(drawn), b, note


def _loads(text: str) -> dict:
    import json

    return json.loads(text)


def _valid_rows(role: str, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise SpatialPlanError(f"{role} must be a GeoDataFrame, got {type(gdf).__name__}",
                               layer=role)
    if gdf.crs is None:
        raise CRSError("layer has no CRS; refusing to guess for display", layer=role,
                       hint="set the CRS (e.g. gdf.set_crs(4545)) before mapping")
    geom = gdf.geometry
    ok = geom.notna().to_numpy() & ~geom.is_empty.to_numpy()
    if not ok.all():
        logger.debug("%s: %d feature(s) without geometry not drawn", role, int((~ok).sum()))
    gdf = gdf.loc[ok]
    if gdf.crs.is_geographic:
        # display only: simplification tolerances are metric, so work in a metric CRS
        gdf = gdf.to_crs(gdf.estimate_utm_crs())
    return gdf


def _is_coverage(geoms: np.ndarray) -> bool:
    check = getattr(shapely, "coverage_is_valid", None)
    if check is None or not hasattr(shapely, "coverage_simplify"):
        return False
    polys = np.array([g.geom_type in ("Polygon", "MultiPolygon") for g in geoms])
    if not polys.all():
        return False
    try:
        return bool(check(geoms))
    except shapely.errors.GEOSException:
        return False


def _n_vertices(geoms: np.ndarray) -> int:
    return int(shapely.get_num_coordinates(geoms).sum())


def _display_geometry(role: str, geoms: np.ndarray, *, max_vertices: int,
                      simplify_m: float) -> np.ndarray:
    """Simplify (topology-preserving) until the layer fits the vertex budget."""
    geoms = np.asarray(geoms, dtype=object)
    if role == "projects" or simplify_m <= 0:
        return geoms
    coverage = _is_coverage(geoms)
    tol = simplify_m
    out = geoms
    for _ in range(12):
        if coverage:
            out = shapely.coverage_simplify(geoms, tol, simplify_boundary=True)
        else:
            out = shapely.simplify(geoms, tol, preserve_topology=True)
        n = _n_vertices(out)
        if n <= max_vertices:
            break
        tol *= 2.0
    else:
        logger.warning("%s: still %d vertices after simplifying at %.0f m", role, n, tol)
    if tol > simplify_m:
        logger.info("%s: simplified for display at %.1f m (%d vertices)", role, tol, n)
    return out


def _aggregate(role: str, gdf: gpd.GeoDataFrame, *, townships: gpd.GeoDataFrame | None,
               max_features: int, kind: np.ndarray | None = None
               ) -> tuple[gpd.GeoDataFrame, str]:
    """Aggregate a too-large layer for display: occupied cells of a grid, merged per township.

    Fast for any number of features (no union of the input geometries): each feature is
    assigned by its representative point to a grid cell whose size doubles until at most
    ``max_features`` cells are occupied; the cells of each township (and of each ``kind``,
    e.g. a conflict's ``conflict``/``boundary_noise``, when given) are then merged.
    """
    n = len(gdf)
    geoms = gdf.geometry.values
    pts = shapely.get_coordinates(shapely.point_on_surface(np.asarray(geoms)))
    area = shapely.area(np.asarray(geoms))
    key = _township_key(pts, gdf.crs, townships)
    if kind is not None:
        key = np.array([f"{k}\x00{c}" for k, c in zip(key, kind, strict=True)], dtype=object)
    xmin, ymin = pts.min(axis=0)
    xmax, ymax = pts.max(axis=0)
    cell = max(25.0, float(np.sqrt(max((xmax - xmin) * (ymax - ymin), 1.0) / max_features)))
    while True:
        ix = np.floor((pts[:, 0] - xmin) / cell).astype(np.int64)
        iy = np.floor((pts[:, 1] - ymin) / cell).astype(np.int64)
        cells = pd.DataFrame({"key": key, "ix": ix, "iy": iy, "area": area})
        grouped = cells.groupby(["key", "ix", "iy"], sort=False)["area"].agg(["size", "sum"])
        if len(grouped) <= max_features:
            break
        cell *= 2.0
    grouped = grouped.reset_index()
    x = xmin + grouped["ix"].to_numpy() * cell
    y = ymin + grouped["iy"].to_numpy() * cell
    grouped["geometry"] = shapely.box(x, y, x + cell, y + cell)
    parts, rows = [], []
    for k, sub in grouped.groupby("key", sort=False):
        parts.append(shapely.coverage_union_all(sub["geometry"].to_numpy()))
        town, _, group = str(k).partition("\x00")
        rows.append({"_township": town, "_n": int(sub["size"].sum()),
                     "_area_ha": float(sub["sum"].sum()) / 1e4, "_kind": group})
    agg = gpd.GeoDataFrame(rows, geometry=parts, crs=gdf.crs)
    note = (f"{LAYER_NAMES[role]}: {n:,} features > {max_features:,}, shown aggregated "
            f"to a {cell:,.0f} m grid per township (display only)")
    logger.warning("%s; set max_features to change this", note)
    return agg, note


def _township_key(pts: np.ndarray, crs: Any, townships: gpd.GeoDataFrame | None) -> np.ndarray:
    """Township code (or "") of each point, for per-township aggregation."""
    key = np.full(len(pts), "", dtype=object)
    if townships is None or len(townships) == 0:
        return key
    t = _valid_rows("townships", townships).to_crs(crs)
    tcode = _first_col(t, ("township_code", "code"))
    labels = t[tcode].astype(str).to_numpy() if tcode else np.arange(len(t)).astype(str)
    tree = shapely.STRtree(t.geometry.values)
    ipt, itw = tree.query(shapely.points(pts), predicate="within")
    key[ipt] = labels[itw]
    return key


def _first_col(df: pd.DataFrame, names: Sequence[str]) -> str | None:
    for name in names:
        if name in df.columns:
            return name
    return None


# --------------------------------------------------------------------------------------------
# layers: properties, popups and tooltips (everything escaped here)
# --------------------------------------------------------------------------------------------


def _properties(role: str, gdf: gpd.GeoDataFrame, *, findings: pd.DataFrame | None,
                extra_fields: Sequence[str]) -> list[dict[str, Any]]:
    builders: dict[str, Callable[..., dict[str, Any]]] = {
        "townships": _township_props,
        "projects": _project_props,
        "conflicts": _conflict_props,
        "parcels": _parcel_props,
    }
    builder = builders.get(role, _area_props)
    if role == "projects":
        by_project = _findings_by_project(findings)
        return [builder(role, row, extra_fields, by_project) for row in _rows(gdf)]
    return [builder(role, row, extra_fields) for row in _rows(gdf)]


def _rows(gdf: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    return [dict(zip(cols, vals, strict=True))
            for vals in gdf[cols].itertuples(index=False, name=None)]


def _kv_table(pairs: Sequence[tuple[Any, Any]]) -> str:
    rows = "".join(f"<tr><th style='text-align:left;padding-right:6px'>{escape(k)}</th>"
                   f"<td>{escape(v)}</td></tr>" for k, v in pairs if not is_missing(v)
                   and format_value(v) != "")
    return f"<table class='sp-kv'>{rows}</table>"


def _extra(row: Mapping[str, Any], fields: Sequence[str]) -> list[tuple[Any, Any]]:
    return [(f, row.get(f)) for f in fields]


#: characters of a name shown in a popup or tooltip (4x for the reasons); the rest is cut
_TEXT_LIMIT = 500


def _township_props(role: str, row: Mapping[str, Any], fields: Sequence[str]) -> dict:
    name = shorten(row.get("township_name", row.get("name")), _TEXT_LIMIT)
    code = row.get("township_code", row.get("code"))
    pairs: list[tuple[Any, Any]] = [("乡镇 township", name), ("代码 code", code)]
    if not is_missing(row.get("area_m2")):
        pairs.append(("平面面积 planar area (ha)", float(row["area_m2"]) / 1e4))
    if not is_missing(row.get("area_ellipsoidal_m2")):
        pairs.append(("椭球面积 ellipsoidal area (ha)", float(row["area_ellipsoidal_m2"]) / 1e4))
    for line in ("redline", "farmland", "udb", "cropland"):
        share: Any = row.get(f"{line}_share")
        if not is_missing(share):
            pairs.append((f"{LAYER_NAMES[line].split()[0]} share (椭球 ellipsoidal)",
                          f"{100 * float(share):.1f}%"))
    for col in ("n_projects", "eight_missing", "eight_noncompliant", "eight_unchecked"):
        if col in row:
            pairs.append((col, row.get(col)))
    pairs += _extra(row, fields)
    return {"_t": escape(name if not is_missing(name) else code), "_p": _kv_table(pairs)}


def _area_props(role: str, row: Mapping[str, Any], fields: Sequence[str]) -> dict:
    if "_n" in row:  # aggregated for display
        kind = f" {row['_kind']}" if row.get("_kind") else ""
        text = (f"{LAYER_NAMES[role]}{kind} · {format_value(row['_township'])} · "
                f"{row['_n']:,} features, {row['_area_ha']:,.1f} ha (aggregated for display)")
        return {"_t": escape(text)}
    pairs: list[tuple[Any, Any]] = [("id", row.get("feature_id"))]
    if role == "udb":
        pairs.append(("分区 zone", row.get("zone")))
    pairs += _extra(row, fields)
    return {"_t": escape(LAYER_NAMES[role]), "_p": _kv_table(pairs)}


def _parcel_props(role: str, row: Mapping[str, Any], fields: Sequence[str]) -> dict:
    if "_n" in row:
        return _area_props(role, row, fields)
    code = row.get("landuse")
    code_s = "" if is_missing(code) else str(code)
    props: dict[str, Any] = {
        "_t": escape(f"用地 {code_s}"),
        "_p": _kv_table([("用地代码 land use", code_s), ("id", row.get("feature_id")),
                         *_extra(row, fields)]),
    }
    if code_s[:2] in LANDUSE_COLORS:
        props["_s"] = code_s[:2]
    return props


def _conflict_props(role: str, row: Mapping[str, Any], fields: Sequence[str]) -> dict:
    if "_n" in row:  # aggregated for display
        props = _area_props(role, row, fields)
        if row.get("_kind") == "boundary_noise":
            props["_s"] = "boundary_noise"
        return props
    kind = row.get("kind")
    pairs = [("冲突 conflict", f"{format_value(row.get('layer_a'))} × "  # noqa: RUF001 - the multiplication sign is shown
                                 f"{format_value(row.get('layer_b'))}"),
             ("要素 features", f"{format_value(row.get('feature_a'))} / "
                                f"{format_value(row.get('feature_b'))}"),
             ("乡镇 township", row.get("township_code")),
             ("面积 area (m²)", row.get("area_m2")),
             ("类型 kind", kind), *_extra(row, fields)]
    props = {"_t": escape(f"{format_value(row.get('layer_a'))} × "  # noqa: RUF001 - the multiplication sign is shown
                          f"{format_value(row.get('layer_b'))} ({format_value(kind)})"),
             "_p": _kv_table(pairs)}
    if kind == "boundary_noise":
        props["_s"] = "boundary_noise"
    return props


def _findings_by_project(findings: pd.DataFrame | None) -> dict[str, list[dict[str, Any]]]:
    if findings is None or len(findings) == 0 or "project_id" not in findings.columns:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    cols = [c for c in ("rule", "status", "measure", "unit", "message") if c in findings.columns]
    for pid, vals in zip(findings["project_id"].astype(str),
                         findings[cols].itertuples(index=False, name=None), strict=True):
        out.setdefault(pid, []).append(dict(zip(cols, vals, strict=True)))
    return out


def _findings_table(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "<p><i>no findings</i></p>"
    head = "".join(f"<th>{h}</th>" for h in ("规则 rule", "结果 status", "量 measure",
                                             "说明 message"))
    body = []
    for f in items:
        status = format_value(f.get("status"))
        color = VERDICT_COLORS.get(status, "#444")
        measure = format_value(f.get("measure"))
        unit = format_value(f.get("unit"))
        body.append(
            f"<tr><td>{escape(f.get('rule'))}</td>"
            f"<td style='color:{color};font-weight:bold'>{escape(status)}</td>"
            f"<td style='text-align:right'>{escape(measure)} {escape(unit)}</td>"
            f"<td>{escape(shorten(f.get('message'), 4 * _TEXT_LIMIT))}</td></tr>")
    return (f"<table class='sp-findings' style='border-collapse:collapse;font-size:11px'>"
            f"<tr>{head}</tr>{''.join(body)}</table>")


def _project_props(role: str, row: Mapping[str, Any], fields: Sequence[str],
                   by_project: Mapping[str, list[dict[str, Any]]]) -> dict:
    verdict = format_value(row.get("verdict"))
    name = shorten(row.get("name"), _TEXT_LIMIT)
    pid = format_value(row.get("project_id"))
    color = VERDICT_COLORS.get(verdict, "#444")
    pairs = [("编号 id", pid),
             ("类别 facility", row.get("facility_name", row.get("facility"))),
             ("乡镇 township", row.get("township_code")), ("状态 status", row.get("status")),
             ("面积 area (m²)", row.get("area_m2")), *_extra(row, fields)]
    popup = (f"<div class='sp-project'><b>{escape(name)}</b><br>"
             f"<span style='color:{color};font-weight:bold'>"
             f"{escape(VERDICT_LABELS.get(verdict, verdict))}</span>"
             f"{_kv_table(pairs)}"
             + (f"<div style='font-size:11px'>"
                f"{escape(shorten(row.get('reasons'), 4 * _TEXT_LIMIT))}</div>"
                if not is_missing(row.get("reasons")) else "")
             + _findings_table(by_project.get(pid, [])) + "</div>")
    label = VERDICT_LABELS.get(verdict, verdict)
    props: dict[str, Any] = {"_t": escape(f"{format_value(name)} ({label})"), "_p": popup}
    if verdict in VERDICT_COLORS:
        props["_s"] = verdict
    return props


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _asset_text(name: str) -> str:
    path = layers_dir() / "webassets" / name
    if not path.is_file():
        raise OutputError("bundled web-map asset is missing", path=path,
                          hint='reinstall spatialplan, or write_map(..., assets="cdn")')
    return path.read_text(encoding="utf-8")


_SCRIPT_RE = re.compile(r'<script src="(?P<url>https?://[^"]+)"></script>')
_LINK_RE = re.compile(r'<link rel="stylesheet" href="(?P<url>https?://[^"]+)"\s*/?>')


def _inline_assets(html: str) -> str:
    """Replace the CDN script/stylesheet links folium writes by the bundled copies."""

    def script(match: re.Match) -> str:
        url = match.group("url")
        if url not in _ASSETS:
            logger.warning("no bundled copy of %s: the map loads it from the network", url)
            return match.group(0)
        text = _asset_text(_ASSETS[url]).replace("</script", "<\\/script")
        return f"<script>/* {_ASSETS[url]} (see LICENSES) */\n{text}\n</script>"

    def link(match: re.Match) -> str:
        url = match.group("url")
        if url not in _ASSETS:
            logger.warning("no bundled copy of %s: the map loads it from the network", url)
            return match.group(0)
        return f"<style>/* {_ASSETS[url]} */\n{_asset_text(_ASSETS[url])}\n</style>"

    html = _SCRIPT_RE.sub(script, html)
    return _LINK_RE.sub(link, html)
