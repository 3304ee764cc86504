"""The map frame of the layout map (项目布局图): layers, sites, labels, inset, scale, north.

:func:`draw_map` draws one township at a round printed scale (1:N on the chosen paper): the
control lines, the project sites in their verdict colour (small sites, points and roads get a
marker or outline in that colour), the site numbers placed so that no two collide (leader
lines where a number had to move away), the north arrow, a bar scale with the numeric scale
beside it, and, when most sites crowd into a small area (the town seat), an enlarged inset of
that area with its own scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from matplotlib import patheffects as pe
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import Bbox

from spatialplan.render._placement import cluster_window, place_labels

__all__ = ["STYLE", "VERDICT_COLORS", "draw_map", "nice_length", "nice_scale"]

VERDICT_COLORS = {"pass": "#2ca02c", "review": "#ff8c00", "fail": "#d62728", "error": "#808080"}

STYLE = {
    "township": {"facecolor": "none", "edgecolor": "#222222", "linewidth": 2.2,
                 "linestyle": (0, (8, 3, 2, 3))},
    "redline": {"facecolor": "#ff000066", "edgecolor": "#c00000", "linewidth": 1.0},
    "farmland": {"facecolor": "#f2d04a80", "edgecolor": "#b8860b", "linewidth": 0.5,
                 "hatch": "..."},
    "udb": {"facecolor": "none", "edgecolor": "#7b2cbf", "linewidth": 2.0,
            "linestyle": (0, (6, 2))},
    "parcels": {"facecolor": "#eeeeee", "edgecolor": "#bbbbbb", "linewidth": 0.3},
}

#: round scale denominators: these x 10ⁿ
NICE_SCALES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5)
#: a site smaller than this on paper (mm) also gets a marker, so its colour stays visible
SMALL_MM = 3.0
#: the inset is drawn when the clustered sites fit in this share of the map's width
INSET_MAX_SHARE = 0.2
#: inset width as a share of the map frame
INSET_WIDTH = 0.36


def nice_length(span_m: float) -> float:
    """Choose a round scale-bar length (1, 2 or 5 x 10ⁿ m) of about a fifth of ``span_m``.

    Examples
    --------
    >>> nice_length(7300)
    1000.0
    >>> nice_length(23000)
    2000.0
    """
    target = max(span_m / 5.0, 1e-9)
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**exp <= target:
            return float(m * 10**exp)
    return float(10**exp)


def nice_scale(denominator: float) -> int:
    """Return the smallest round scale denominator (1, 1.25, ... 7.5 x 10ⁿ) ≥ ``denominator``.

    Examples
    --------
    >>> nice_scale(23_456), nice_scale(25_000), nice_scale(8_100)
    (25000, 25000, 10000)
    """
    exp = math.floor(math.log10(max(denominator, 1.0)))
    for base in (*NICE_SCALES, 10.0):
        value = base * 10**exp
        if value >= denominator * (1 - 1e-9):
            return round(value)
    return round(10 ** (exp + 1))


def _paper_m(ax: Any) -> tuple[float, float]:
    """Width and height of the axes box on paper, in metres."""
    pos = ax.get_position()
    fw, fh = ax.figure.get_size_inches()
    return pos.width * fw * 0.0254, pos.height * fh * 0.0254


def _scaled_view(bounds: Sequence[float], paper: tuple[float, float], *, pad: float
                 ) -> tuple[tuple[float, float, float, float], int]:
    """Frame the view around ``bounds`` (+ ``pad`` share) at a round scale filling ``paper``."""
    x0, y0, x1, y1 = bounds
    margin = pad * max(x1 - x0, y1 - y0, 1.0)
    w, h = x1 - x0 + 2 * margin, y1 - y0 + 2 * margin
    n = nice_scale(max(w / paper[0], h / paper[1]))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = n * paper[0] / 2, n * paper[1] / 2
    return (cx - hw, cy - hh, cx + hw, cy + hh), n


def _clip(gdf: gpd.GeoDataFrame | None, bbox: Any, crs: Any) -> gpd.GeoSeries:
    if gdf is None or len(gdf) == 0:
        return gpd.GeoSeries([], crs=crs)
    geoms = gdf.to_crs(crs).geometry if gdf.crs != crs else gdf.geometry
    geoms = geoms[geoms.notna() & ~geoms.is_empty]
    geoms = geoms[geoms.intersects(bbox)]
    return geoms.clip(bbox) if len(geoms) else geoms


def _draw_layers(ax: Any, township: Any, view: Sequence[float], *, crs: Any,
                 layers: dict[str, Any]) -> None:
    bbox = shapely.box(*view)
    for key, z in (("parcels", 1), ("farmland", 2), ("redline", 3), ("udb", 4)):
        geoms = _clip(layers.get(key), bbox, crs)
        if len(geoms):
            geoms.plot(ax=ax, zorder=z, **STYLE[key])
    gpd.GeoSeries([township], crs=crs).plot(ax=ax, zorder=5, **STYLE["township"])
    ax.set_xlim(view[0], view[2])
    ax.set_ylim(view[1], view[3])
    ax.set_aspect("equal")
    ax.apply_aspect()


def draw_map(ax: Any, township: Any, *, crs: Any, layers: dict[str, Any],
             sites: gpd.GeoDataFrame, scale: float, paper: str) -> int:
    """Draw the map frame of one township into ``ax``; return the scale denominator N.

    Parameters
    ----------
    ax
        The map axes (its figure has an Agg canvas: labels are measured).
    township
        The township outline (shapely, analysis CRS).
    crs
        The analysis CRS.
    layers
        ``parcels``, ``farmland``, ``redline``, ``udb`` (GeoDataFrames or None).
    sites
        Numbered sites (``no``, ``verdict``, geometry) of the township.
    scale
        Text and line size factor (1 on A3).
    paper
        Paper name, printed beside the numeric scale.
    """
    mapped = sites[sites.geometry.notna() & ~sites.geometry.is_empty]
    # the township and every numbered site (one may lie outside the outline)
    bounds = shapely.union_all([shapely.box(*township.bounds), *mapped.geometry]).bounds
    view, n = _scaled_view(bounds, _paper_m(ax), pad=0.04)
    _draw_layers(ax, township, view, crs=crs, layers=layers)
    _draw_sites(ax, mapped, n=n, scale=scale, prefix="sp-site")
    _frame(ax, scale=scale)
    obstacles = [_north_arrow(ax, scale=scale), _scale_bar(ax, view, n=n, scale=scale,
                                                         paper=paper)]
    inset = _draw_inset(ax, township, view, n=n, crs=crs, layers=layers, sites=mapped,
                        scale=scale)
    in_inset: set[int] = set()
    if inset is not None:
        inset_ax, in_inset = inset
        obstacles.append(inset_ax)
    _label_sites(ax, mapped[~mapped["no"].isin(in_inset)], scale=scale, obstacles=obstacles,
                 prefix="sp")
    return n


# --------------------------------------------------------------------------------------------
# sites
# --------------------------------------------------------------------------------------------


def _anchor(geom: Any) -> tuple[float, float]:
    """Where a site's number points: a point, a line's middle, a polygon's inside."""
    if geom.geom_type in ("LineString", "LinearRing"):
        pt = geom.interpolate(0.5, normalized=True)
    elif geom.geom_type == "MultiLineString":
        pt = max(geom.geoms, key=lambda g: g.length).interpolate(0.5, normalized=True)
    else:
        pt = geom if geom.geom_type == "Point" else geom.representative_point()
    return float(pt.x), float(pt.y)


def _polygon_path(poly: shapely.Polygon) -> MplPath:
    poly = shapely.geometry.polygon.orient(poly, 1.0)
    verts, codes = [], []
    for ring in (poly.exterior, *poly.interiors):
        xy = np.asarray(ring.coords)[:, :2]
        verts.append(xy)
        codes += [MplPath.MOVETO] + [MplPath.LINETO] * (len(xy) - 2) + [MplPath.CLOSEPOLY]
    return MplPath(np.concatenate(verts), codes)


def _parts(geom: Any) -> list[Any]:
    return list(geom.geoms) if hasattr(geom, "geoms") else [geom]


def _draw_sites(ax: Any, sites: gpd.GeoDataFrame, *, n: int, scale: float, prefix: str
                ) -> None:
    """Draw each site in its verdict colour.

    A translucent fill and a full-colour outline (polygons), a cased line (lines), a marker (points
    and sites under :data:`SMALL_MM` on paper).
    """
    casing = [pe.Stroke(linewidth=4.2 * scale, foreground="white"), pe.Normal()]
    for no, verdict, geom in zip(sites["no"], sites["verdict"], sites.geometry, strict=True):
        color = VERDICT_COLORS.get(str(verdict), VERDICT_COLORS["error"])
        gid = f"{prefix}-{no}"
        for part in _parts(geom):
            if part.geom_type == "Polygon":
                ax.add_patch(PathPatch(_polygon_path(part), facecolor=(*to_rgb(color), 0.55),
                                       edgecolor=color, linewidth=1.3 * scale, zorder=6,
                                       gid=gid))
            elif part.geom_type in ("LineString", "LinearRing"):
                xy = np.asarray(part.coords)
                ax.plot(xy[:, 0], xy[:, 1], color=color, linewidth=2.4 * scale, zorder=6,
                        solid_capstyle="round", path_effects=casing, gid=gid)
        x0, y0, x1, y1 = geom.bounds
        small = max(x1 - x0, y1 - y0) / n * 1000 < SMALL_MM
        if geom.geom_type in ("Point", "MultiPoint") or small:
            for pt in _parts(geom) if geom.geom_type == "MultiPoint" else [geom]:
                x, y = _anchor(pt)
                ax.plot(x, y, linestyle="none", marker="o", markersize=7 * scale,
                        markerfacecolor=color, markeredgecolor="white",
                        markeredgewidth=1.0 * scale, zorder=7, gid=f"{gid}-marker")


def _renderer(fig: Any) -> Any:
    """Attach an Agg renderer for measuring text.

    Attached only now: geopandas' ``plot`` redraws an Agg figure after every layer.
    """
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def _label_sites(ax: Any, sites: gpd.GeoDataFrame, *, scale: float, obstacles: Sequence[Any],
                 prefix: str) -> None:
    """Label the sites with numbers in boxes that do not overlap (leader lines when moved)."""
    if sites.empty:
        return
    fig = ax.figure
    renderer = _renderer(fig)
    px_per_pt = fig.dpi / 72.0
    style = {"ha": "center", "va": "center", "fontsize": 9 * scale, "fontweight": "bold",
             "color": "#111111", "zorder": 9, "annotation_clip": False,
             "textcoords": "offset points", "xycoords": "data"}
    anchors, rel, specs = [], [], []
    for no, verdict, geom in zip(sites["no"], sites["verdict"], sites.geometry, strict=True):
        color = VERDICT_COLORS.get(str(verdict), VERDICT_COLORS["error"])
        xy = _anchor(geom)
        bbox = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": color,
                "linewidth": 1.0 * scale}
        probe = ax.annotate(str(no), xy, xytext=(0, 0), bbox=bbox, **style)
        probe.update_positions(renderer)
        probe.update_bbox_position_size(renderer)
        box = probe.get_bbox_patch().get_window_extent(renderer)
        probe.remove()
        axy = ax.transData.transform(xy)
        margin = 1.0 * px_per_pt
        rel.append((box.x0 - axy[0] - margin, box.y0 - axy[1] - margin,
                    box.x1 - axy[0] + margin, box.y1 - axy[1] + margin))
        anchors.append(axy)
        specs.append((str(no), xy, bbox, color))
    frame = ax.get_window_extent(renderer)
    inner = (frame.x0 + 2, frame.y0 + 2, frame.x1 - 2, frame.y1 - 2)
    blocked = [tuple(a.get_window_extent(renderer).extents) for a in obstacles]
    offsets, boxes = place_labels(np.array(anchors), np.array(rel), frame=inner,
                                  obstacles=blocked, gap=4.5 * scale * px_per_pt,
                                  keep_clear=4.0 * scale * px_per_pt)
    for (text, xy, bbox, _color), off, box, axy in zip(specs, offsets, boxes, anchors,
                                                       strict=True):
        # distance from the anchor to the placed box: beyond a few points, a leader line
        dx = max(box[0] - axy[0], 0, axy[0] - box[2])
        dy = max(box[1] - axy[1], 0, axy[1] - box[3])
        leader = math.hypot(dx, dy) > 6 * scale * px_per_pt
        arrow = ({"arrowstyle": "-", "color": "#444444", "linewidth": 0.7 * scale,
                  "shrinkA": 0, "shrinkB": 0} if leader else None)
        ax.annotate(text, xy, xytext=(off[0] / px_per_pt, off[1] / px_per_pt), bbox=bbox,
                    arrowprops=arrow, gid=f"{prefix}-label-{text}", **style)


# --------------------------------------------------------------------------------------------
# inset of the town seat
# --------------------------------------------------------------------------------------------


def _inset_window(sites: gpd.GeoDataFrame, view: Sequence[float]
                  ) -> tuple[float, float, float, float] | None:
    """Find the padded window where at least half of the sites (≥ 3) crowd.

    Only if it is under :data:`INSET_MAX_SHARE` of the map width; None otherwise (or with fewer than
    4 sites).
    """
    if len(sites) < 4:
        return None
    bounds = np.array([g.bounds for g in sites.geometry])
    centres = np.array([_anchor(g) for g in sites.geometry])
    (wx0, wy0, wx1, wy1), _ = cluster_window(bounds, k=max(3, math.ceil(len(sites) / 2)))
    window = (wx0, wy0, wx1, wy1)
    for grow in range(3):  # take in the sites the padded window reaches, then pad the result
        x0, y0, x1, y1 = window
        pad = 0.15 * max(x1 - x0, y1 - y0) + 0.01 * (view[2] - view[0])
        if grow == 2:
            window = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
            break
        near = ((centres[:, 0] > x0 - pad) & (centres[:, 0] < x1 + pad)
                & (centres[:, 1] > y0 - pad) & (centres[:, 1] < y1 + pad))
        b = bounds[near]
        window = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
    side = max(window[2] - window[0], window[3] - window[1])
    return window if side <= INSET_MAX_SHARE * (view[2] - view[0]) else None


def _draw_inset(ax: Any, township: Any, view: Sequence[float], *, n: int, crs: Any,
                layers: dict[str, Any], sites: gpd.GeoDataFrame, scale: float
                ) -> tuple[Any, set[int]] | None:
    """Draw an enlarged inset of the town seat (:func:`_inset_window`) in a free corner.

    Only when its round scale is at least 1.5x larger; returns the inset and the numbers it shows.
    """
    window = _inset_window(sites, view)
    if window is None:
        return None
    paper_w, paper_h = _paper_m(ax)
    ww, wh = window[2] - window[0], window[3] - window[1]
    aspect = min(max(wh / ww, 0.55), 1.1)  # inset height / width on paper
    w_frac = INSET_WIDTH
    h_frac = w_frac * aspect * paper_w / paper_h
    rect = _inset_corner(view, window, sites, w_frac=w_frac, h_frac=h_frac,
                         township=township)
    inset_paper = (w_frac * paper_w, h_frac * paper_h)
    inset_view, n_in = _scaled_view(window, inset_paper, pad=0.0)
    if rect is None or n_in * 1.5 > n:  # no free corner, or hardly enlarged
        return None
    inset = ax.inset_axes(rect, zorder=20)
    inset.set_gid("sp-inset")
    _draw_layers(inset, township, inset_view, crs=crs, layers=layers)
    cx, cy = np.array([_anchor(g) for g in sites.geometry]).T
    inside = ((cx > inset_view[0]) & (cx < inset_view[2]) & (cy > inset_view[1])
              & (cy < inset_view[3]))
    members = sites[inside]
    _draw_sites(inset, sites[sites.geometry.intersects(shapely.box(*inset_view))], n=n_in,
                scale=scale, prefix="sp-inset-site")
    inset.set_xticks([])
    inset.set_yticks([])
    inset.set_xlabel("")
    inset.set_ylabel("")
    for spine in inset.spines.values():
        spine.set_linewidth(1.6)
    title = inset.text(0.02, 0.975, f"镇区放大图 Town seat (enlarged)  1:{n_in:,}",
                       transform=inset.transAxes, ha="left", va="top", fontsize=8.5 * scale,
                       fontweight="bold", zorder=30, gid="sp-inset-scale",
                       bbox={"boxstyle": "square,pad=0.25", "facecolor": "white",
                             "edgecolor": "#555555", "linewidth": 0.6})
    ax.indicate_inset_zoom(inset, edgecolor="#333333", alpha=0.9, linewidth=1.0)
    _label_sites(inset, members, scale=scale, obstacles=[title], prefix="sp-inset")
    return inset, set(members["no"])


def _inset_corner(view: Sequence[float], window: Sequence[float], sites: gpd.GeoDataFrame, *,
                  w_frac: float, h_frac: float, township: Any
                  ) -> tuple[float, float, float, float] | None:
    """Choose the axes-fraction rectangle of the inset: upper left or lower right.

    The other corners hold the north arrow and the scale bar. Whichever covers less of the township,
    among those hiding no site and not the window itself; None when neither is free.
    """
    m = 0.012
    vx0, vy0, vx1, vy1 = view
    vw, vh = vx1 - vx0, vy1 - vy0
    anchors = np.array([_anchor(g) for g in sites.geometry])
    best = None
    for fx, fy in ((m, 1 - m - h_frac), (1 - m - w_frac, m)):
        box = shapely.box(vx0 + fx * vw, vy0 + fy * vh, vx0 + (fx + w_frac) * vw,
                          vy0 + (fy + h_frac) * vh)
        if (shapely.contains_xy(box, anchors[:, 0], anchors[:, 1]).any()
                or box.intersects(shapely.box(*window))):
            continue
        cost = box.intersection(township).area / box.area
        if best is None or cost < best[0]:
            best = (cost, (fx, fy, w_frac, h_frac))
    return None if best is None else best[1]


# --------------------------------------------------------------------------------------------
# frame, north arrow, scale
# --------------------------------------------------------------------------------------------


def _frame(ax: Any, *, scale: float) -> None:
    fmt = FuncFormatter(lambda v, _pos: f"{v:,.0f}")
    ax.xaxis.set_major_formatter(fmt)
    ax.yaxis.set_major_formatter(fmt)
    ax.tick_params(axis="both", which="both", direction="in", top=True, right=True,
                   labeltop=True, labelright=True, labelsize=7 * scale, length=5 * scale)
    for label in ax.get_yticklabels():
        label.set_rotation(90)
        label.set_va("center")
    for spine in ax.spines.values():
        spine.set_linewidth(1.5)
    ax.set_xlabel("X / 东坐标 Easting (m)", fontsize=8 * scale)
    ax.set_ylabel("Y / 北坐标 Northing (m)", fontsize=8 * scale)


class _Group:
    """Several artists measured as one obstacle (their joint extent)."""

    def __init__(self, artists: Sequence[Any]) -> None:
        self.artists = list(artists)

    def get_window_extent(self, renderer: Any) -> Bbox:
        return Bbox.union([a.get_window_extent(renderer) for a in self.artists])


def _north_arrow(ax: Any, *, scale: float) -> _Group:
    x, y = 0.95, 0.86
    arrow = ax.annotate("", xy=(x, y + 0.09), xytext=(x, y), xycoords="axes fraction",
                        arrowprops={"facecolor": "black", "edgecolor": "black",
                                    "width": 4 * scale, "headwidth": 14 * scale,
                                    "headlength": 16 * scale}, zorder=10, gid="sp-north")
    text = ax.text(x, y + 0.10, "N", transform=ax.transAxes, ha="center", va="bottom",
                   fontsize=16 * scale, fontweight="bold", zorder=10, gid="sp-north")
    return _Group([arrow, text])


def _scale_bar(ax: Any, view: Sequence[float], *, n: int, scale: float, paper: str) -> _Group:
    """Alternating bar scale in round metres, and the numeric scale 1:N beside it."""
    x0, y0, x1, y1 = view
    length = nice_length(x1 - x0)
    bx, by = x0 + 0.04 * (x1 - x0), y0 + 0.05 * (y1 - y0)
    h = 0.012 * (y1 - y0)
    white = {"boxstyle": "square,pad=0.15", "facecolor": "white", "edgecolor": "none",
             "alpha": 0.85}
    artists: list[Any] = [ax.add_patch(Rectangle(
        (bx - 0.012 * (x1 - x0), by - 4.2 * h), length + 0.07 * (x1 - x0), 7.4 * h,
        facecolor="white", edgecolor="#999999", linewidth=0.5, alpha=0.85, zorder=9.5,
        gid="sp-scalebar"))]
    for i in range(4):
        artists.append(ax.add_patch(Rectangle(
            (bx + i * length / 4, by), length / 4, h, zorder=10,
            facecolor="black" if i % 2 == 0 else "white", edgecolor="black", linewidth=0.8,
            gid="sp-scalebar")))
    unit, div = ("km", 1000.0) if length >= 1000 else ("m", 1.0)
    for frac in (0, 0.5, 1):
        artists.append(ax.text(bx + frac * length, by + 1.6 * h, f"{frac * length / div:g}",
                               ha="center", va="bottom", fontsize=8 * scale, zorder=10,
                               gid="sp-scalebar"))
    artists.append(ax.text(bx + length + 0.012 * (x1 - x0), by, unit, va="bottom",
                           fontsize=8 * scale, zorder=10, gid="sp-scalebar"))
    artists.append(ax.text(bx, by - 1.0 * h, f"比例尺 Scale 1:{n:,}", va="top",
                           fontsize=9 * scale, fontweight="bold", zorder=10,
                           gid="sp-scale-ratio", bbox=white))
    artists.append(ax.text(bx, by - 2.9 * h, f"（{paper} 原大打印 at 100 % on {paper}）",
                           va="top", fontsize=6.5 * scale, zorder=10, gid="sp-scalebar"))
    return _Group(artists)
