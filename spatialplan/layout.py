"""Print layout of the "8+X" project layout map (“8+X”项目布局图), one page per township.

:func:`layout_figure` draws one township with matplotlib (title, township outline, the three
control lines, parcels, numbered project sites with a matching table, legend, north arrow,
scale bar, Gauss–Krüger coordinate frame, CRS / source note and date);
:func:`write_layout` writes a multi-page PDF and a PNG atomically.

Chinese text needs a CJK font. :func:`find_cjk_font` looks for one (Noto Sans CJK SC, Source
Han Sans, WenQuanYi, …) through matplotlib's font manager; if none is installed it raises
:class:`~spatialplan.errors.OutputError` naming the fix (``apt-get install fonts-noto-cjk``
or ``font="path/to/font.otf"``) rather than drawing boxes (tofu).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import shapely
from matplotlib import font_manager
from matplotlib import patheffects as pe
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter

from spatialplan._version import __version__
from spatialplan.errors import DataLayerError, OutputError
from spatialplan.output import atomic_path

__all__ = ["layout_figure", "write_layout", "find_cjk_font", "nice_length", "PAPER_SIZES_MM"]

logger = logging.getLogger(__name__)

#: Paper sizes (landscape width, height) in millimetres.
PAPER_SIZES_MM: dict[str, tuple[float, float]] = {
    "A4": (297.0, 210.0), "A3": (420.0, 297.0), "A2": (594.0, 420.0),
    "A1": (841.0, 594.0), "A0": (1189.0, 841.0),
}

#: CJK font families tried in order.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans SC",
    "Noto Sans CJK JP", "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
    "Sarasa Gothic SC", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC",
    "Droid Sans Fallback", "AR PL UMing CN",
)

VERDICT_COLORS = {"pass": "#2ca02c", "review": "#ff8c00", "fail": "#d62728", "error": "#808080"}
VERDICT_ZH = {"pass": "符合", "review": "需论证", "fail": "不符合", "error": "无法检查"}

_STYLE = {
    "township": {"facecolor": "none", "edgecolor": "#222222", "linewidth": 2.2,
                 "linestyle": (0, (8, 3, 2, 3))},
    "redline": {"facecolor": "#ff000066", "edgecolor": "#c00000", "linewidth": 1.0},
    "farmland": {"facecolor": "#f2d04a80", "edgecolor": "#b8860b", "linewidth": 0.5,
                 "hatch": "..."},
    "udb": {"facecolor": "none", "edgecolor": "#7b2cbf", "linewidth": 2.0,
            "linestyle": (0, (6, 2))},
    "parcels": {"facecolor": "#eeeeee", "edgecolor": "#bbbbbb", "linewidth": 0.3},
}
_SAMPLE = "“8+X”项目布局图编号名称类别合规性符合需论证不符合无法检查坐标系数据来源日期比例尺北"


# --------------------------------------------------------------------------------------------
# fonts
# --------------------------------------------------------------------------------------------


def find_cjk_font(font: str | os.PathLike | None = None) -> str:
    """Return the family name of a CJK-capable font, registering ``font`` if it is a file.

    Parameters
    ----------
    font
        A font file (``.otf``/``.ttf``/``.ttc``) or a family name; default: the first of
        :data:`CJK_FAMILIES` that is installed.

    Raises
    ------
    OutputError
        No usable font: install ``fonts-noto-cjk`` (Debian/Ubuntu) or pass ``font=``.

    Examples
    --------
    >>> find_cjk_font()  # doctest: +SKIP
    'Noto Sans CJK SC'
    """
    hint = ("install a CJK font (Debian/Ubuntu: apt-get install fonts-noto-cjk; then delete "
            "matplotlib's font cache if needed) or pass font='path/to/NotoSansCJK.otf'")
    if font is not None:
        if Path(font).suffix.lower() in (".otf", ".ttf", ".ttc") or Path(font).is_file():
            path = Path(font)
            if not path.is_file():
                raise OutputError("font file not found", path=path, hint=hint)
            font_manager.fontManager.addfont(str(path))
            family = font_manager.FontProperties(fname=str(path)).get_name()
        else:
            family = str(font)
        if not _covers(family, _SAMPLE):
            raise OutputError(f"font {family!r} is not installed or lacks Chinese glyphs",
                              hint=hint)
        return family
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed and _covers(family, _SAMPLE):
            return family
    raise OutputError("no Chinese (CJK) font found for the layout map", hint=hint)


def _font_path(family: str) -> str | None:
    try:
        return font_manager.findfont(font_manager.FontProperties(family=family),
                                     fallback_to_default=False)
    except ValueError:
        return None


def _covers(family: str, text: str) -> bool:
    """True if the installed font ``family`` has a glyph for every character of ``text``."""
    from matplotlib.ft2font import FT2Font

    path = _font_path(family)
    if path is None:
        return False
    face = FT2Font(path)
    return all(face.get_char_index(ord(ch)) for ch in set(text) if not ch.isspace())


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def layout_figure(
    township_code: str,
    *,
    townships: gpd.GeoDataFrame,
    redline: gpd.GeoDataFrame | None,
    farmland: gpd.GeoDataFrame | None,
    udb: gpd.GeoDataFrame | None,
    parcels: gpd.GeoDataFrame | None = None,
    projects: gpd.GeoDataFrame | None,
    title: str | None = None,
    paper: str = "A3",
    dpi: int = 300,
    crs_note: str | None = None,
    sources_note: str | None = None,
    date: _dt.date | str | None = None,
    font: str | os.PathLike | None = None,
) -> Figure:
    """Draw the “8+X” project layout map (项目布局图) of one township.

    Parameters
    ----------
    township_code
        The township to draw (``code`` / ``township_code`` column of ``townships``).
    townships, redline, farmland, udb, parcels
        Layers in the analysis (Gauss–Krüger, metric) CRS; ``townships`` may be the
        ``township_stats`` table.
    projects
        Project sites with ``project_id``, ``name``, ``facility_name``/``facility`` and
        ``verdict``; those of the township are numbered 1…n on the map and in the table
        (sites without geometry are listed as 未落图, not mapped).
    title
        Default: 镇名 + "“8+X”项目布局图".
    paper
        ``"A4"``…``"A0"``, landscape. ``dpi`` is the figure resolution (PNG output).
    crs_note, sources_note
        Text of the CRS and data-source notes (default: the layers' CRS name; "—").
    date
        Date printed on the map (default: today).
    font
        A CJK font file or family (default: found automatically, see :func:`find_cjk_font`).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> t = gpd.GeoDataFrame({"code": ["520123001"], "name": ["示范镇"]},
    ...                      geometry=[box(450000, 3076000, 455000, 3080000)], crs=4545)
    >>> fig = layout_figure("520123001", townships=t, redline=None, farmland=None, udb=None,
    ...                     projects=None, dpi=50)  # doctest: +SKIP
    """
    family = find_cjk_font(font)
    if paper.upper() not in PAPER_SIZES_MM:
        raise OutputError(f"unknown paper size {paper!r}",
                          hint=f"use one of {sorted(PAPER_SIZES_MM)}")
    township, name, crs = _select_township(townships, township_code)
    title = title or f"{name}“8+X”项目布局图"
    date_text = _date_text(date)
    crs_note = crs_note or _crs_note(crs)
    width_mm, height_mm = PAPER_SIZES_MM[paper.upper()]
    scale = width_mm / 420.0  # text sizes are designed for A3
    with matplotlib.rc_context({"font.family": [family, "DejaVu Sans"],
                                "axes.unicode_minus": False, "hatch.linewidth": 0.4}):
        fig = Figure(figsize=(width_mm / 25.4, height_mm / 25.4), dpi=dpi)
        fig.suptitle(title, fontsize=22 * scale, fontweight="bold", y=0.975, gid="sp-title")
        ax = fig.add_axes((0.05, 0.08, 0.60, 0.82))
        sites = _township_projects(projects, township_code, township, crs)
        _draw_map(ax, township, crs=crs, redline=redline, farmland=farmland, udb=udb,
                  parcels=parcels, sites=sites, scale=scale)
        panel = fig.add_axes((0.68, 0.08, 0.30, 0.82))
        panel.set_axis_off()
        _draw_legend(panel, scale=scale)
        _draw_table(panel, sites, scale=scale)
        note = (f"坐标系 CRS: {crs_note}\n数据来源 Sources: {sources_note or '—'}\n"
                f"制图日期 Date: {date_text}    spatialplan {__version__}")
        fig.text(0.68, 0.03, note, fontsize=8 * scale, va="bottom", ha="left", gid="sp-note")
    return fig


def write_layout(
    figs_or_fig: Figure | Iterable[Figure],
    pdf_path: str | os.PathLike,
    png_path: str | os.PathLike | None = None,
    *,
    png_index: int = 0,
    dpi: int | None = None,
) -> dict[str, Path]:
    """Write the layout: every figure as one PDF page, and one figure as PNG; atomically.

    Parameters
    ----------
    figs_or_fig
        One figure or one per township (from :func:`layout_figure`), e.g. a generator: the
        pages are written one at a time and only the PNG's figure is kept.
    pdf_path, png_path
        Targets; ``png_path=None`` writes no PNG.
    png_index
        Which figure goes to the PNG (default the first).
    dpi
        PNG resolution (default: the figure's).

    Returns
    -------
    dict
        ``{"pdf": Path, "png": Path}``.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> sorted(write_layout(Figure(), d / "layout.pdf", d / "layout.png"))
    ['pdf', 'png']
    """
    figs = [figs_or_fig] if isinstance(figs_or_fig, Figure) else figs_or_fig
    if png_index < 0:
        raise OutputError(f"png_index {png_index} out of range", path=png_path)
    out: dict[str, Path] = {}
    pdf_path = Path(pdf_path)
    n, png_fig = 0, None
    with atomic_path(pdf_path) as tmp, PdfPages(tmp, metadata={
            "Title": "“8+X”项目布局图", "Creator": f"spatialplan {__version__}"}) as pdf:
        # one page at a time: from an iterator, only the PNG's figure is kept (a province's
        # pages held together took 1.5 GB at 200 townships)
        for fig in figs:  # no enumerate(): its cached result tuple would hold the figure
            pdf.savefig(fig)
            if n == png_index:
                png_fig = fig
            n += 1
            del fig  # not held while the next page is drawn
        if n == 0:
            raise OutputError("no layout pages to write", path=pdf_path,
                              hint="check the township codes")
        if png_fig is None:
            raise OutputError(f"png_index {png_index} out of range (0..{n - 1})",
                              path=png_path)
    out["pdf"] = pdf_path
    if png_path is not None:
        png_path = Path(png_path)
        with atomic_path(png_path) as tmp:
            png_fig.savefig(tmp, dpi=dpi or png_fig.dpi, format="png")
        out["png"] = png_path
    logger.debug("wrote %s (%d page(s))%s", pdf_path, n, f" and {png_path}" if png_path else "")
    return out


# --------------------------------------------------------------------------------------------
# data selection
# --------------------------------------------------------------------------------------------


def _col(df: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((n for n in names if n in df.columns), None)


def _select_township(townships: gpd.GeoDataFrame, code: str) -> tuple[Any, str, Any]:
    if townships is None or len(townships) == 0:
        raise DataLayerError("no townships to draw", layer="townships")
    if townships.crs is None or not townships.crs.is_projected:
        raise DataLayerError("townships must be in the projected analysis CRS",
                             layer="townships", hint="pass plan.layers['townships'].data")
    ccol = _col(townships, ("code", "township_code"))
    ncol = _col(townships, ("name", "township_name"))
    if ccol is None:
        raise DataLayerError("townships have no code column", layer="townships",
                             hint="expected 'code' or 'township_code'")
    hit = townships[townships[ccol].astype(str) == str(code)]
    if hit.empty:
        known = ", ".join(map(str, townships[ccol].head(10)))
        raise DataLayerError(f"township {code!r} not found", layer="townships",
                             hint=f"use one of: {known}")
    row = hit.iloc[0]
    name = str(row[ncol]) if ncol and pd.notna(row[ncol]) else str(code)
    geom = shapely.union_all(hit.geometry.values)
    return geom, name, townships.crs


def _township_projects(projects: gpd.GeoDataFrame | None, code: str, township: Any,
                       crs: Any) -> gpd.GeoDataFrame:
    cols = ["no", "project_id", "name", "category", "verdict", "geometry"]
    if projects is None or len(projects) == 0:
        return gpd.GeoDataFrame(columns=cols, geometry="geometry", crs=crs)
    p = projects.to_crs(crs) if projects.crs is not None and projects.crs != crs else projects
    if "township_code" in p.columns and p["township_code"].notna().any():
        sel = p[p["township_code"].astype(str) == str(code)]
    else:
        sel = p[p.geometry.notna() & p.geometry.intersects(township)]
    sel = sel.sort_values(_col(sel, ("project_id", "feature_id")) or sel.columns[0])
    cat = _col(sel, ("facility_name", "facility"))
    return gpd.GeoDataFrame({
        "no": np.arange(1, len(sel) + 1),
        "project_id": sel["project_id"].astype(str).to_numpy() if "project_id" in sel else "",
        "name": sel["name"].fillna("").astype(str).to_numpy() if "name" in sel else "",
        "category": sel[cat].fillna("").astype(str).to_numpy() if cat else "",
        "verdict": sel["verdict"].fillna("error").astype(str).to_numpy()
        if "verdict" in sel else "",
    }, geometry=sel.geometry.to_numpy(), crs=crs)


def _date_text(date: _dt.date | str | None) -> str:
    if date is None:
        return _dt.date.today().isoformat()
    return date.isoformat() if hasattr(date, "isoformat") else str(date)


def _crs_note(crs: Any) -> str:
    epsg = crs.to_epsg()
    return f"{crs.name} (EPSG:{epsg})" if epsg else str(crs.name)


# --------------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------------


def _clip(gdf: gpd.GeoDataFrame | None, bbox: Any, crs: Any) -> gpd.GeoSeries:
    if gdf is None or len(gdf) == 0:
        return gpd.GeoSeries([], crs=crs)
    geoms = gdf.to_crs(crs).geometry if gdf.crs != crs else gdf.geometry
    geoms = geoms[geoms.notna() & ~geoms.is_empty]
    geoms = geoms[geoms.intersects(bbox)]
    return geoms.clip(bbox) if len(geoms) else geoms


def _draw_map(ax: Any, township: Any, *, crs: Any, redline: Any, farmland: Any, udb: Any,
              parcels: Any, sites: gpd.GeoDataFrame, scale: float) -> None:
    xmin, ymin, xmax, ymax = township.bounds
    pad = 0.06 * max(xmax - xmin, ymax - ymin)
    view = _fit_aspect((xmin - pad, ymin - pad, xmax + pad, ymax + pad), ax)
    bbox = shapely.box(*view)
    for layer, key, z in ((parcels, "parcels", 1), (farmland, "farmland", 2),
                          (redline, "redline", 3), (udb, "udb", 4)):
        geoms = _clip(layer, bbox, crs)
        if len(geoms):
            geoms.plot(ax=ax, zorder=z, **_STYLE[key])
    gpd.GeoSeries([township], crs=crs).plot(ax=ax, zorder=5, **_STYLE["township"])
    _draw_sites(ax, sites, scale=scale)
    ax.set_xlim(view[0], view[2])
    ax.set_ylim(view[1], view[3])
    ax.set_aspect("equal")
    _frame(ax, scale=scale)
    _north_arrow(ax, scale=scale)
    _scale_bar(ax, view, scale=scale)


def _fit_aspect(view: tuple[float, float, float, float], ax: Any) -> tuple[float, ...]:
    """Grow the view so that its aspect ratio matches the axes box (equal scale)."""
    x0, y0, x1, y1 = view
    bbox = ax.get_position()
    fw, fh = ax.figure.get_size_inches()
    box_ratio = (bbox.height * fh) / (bbox.width * fw)
    w, h = x1 - x0, y1 - y0
    if h / w < box_ratio:
        extra = (w * box_ratio - h) / 2
        return x0, y0 - extra, x1, y1 + extra
    extra = (h / box_ratio - w) / 2
    return x0 - extra, y0, x1 + extra, y1


def _draw_sites(ax: Any, sites: gpd.GeoDataFrame, *, scale: float) -> None:
    mapped = sites[sites.geometry.notna() & ~sites.geometry.is_empty]
    for verdict, group in mapped.groupby("verdict"):
        color = VERDICT_COLORS.get(str(verdict), "#808080")
        group.plot(ax=ax, zorder=6, facecolor=color, edgecolor="#000000", linewidth=0.8,
                   markersize=60 * scale)
    halo = [pe.withStroke(linewidth=3 * scale, foreground="white")]
    for no, geom in zip(mapped["no"], mapped.geometry, strict=True):
        pt = geom.representative_point() if geom.geom_type != "Point" else geom
        ax.annotate(str(no), (pt.x, pt.y), xytext=(4 * scale, 4 * scale),
                    textcoords="offset points", fontsize=11 * scale, fontweight="bold",
                    zorder=8, path_effects=halo)
        ax.plot(pt.x, pt.y, marker="o", markersize=4 * scale, color="black", zorder=7)


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


def _north_arrow(ax: Any, *, scale: float) -> None:
    x, y = 0.95, 0.86
    ax.annotate("", xy=(x, y + 0.09), xytext=(x, y), xycoords="axes fraction",
                arrowprops={"facecolor": "black", "edgecolor": "black", "width": 4 * scale,
                            "headwidth": 14 * scale, "headlength": 16 * scale}, zorder=10)
    ax.text(x, y + 0.10, "N", transform=ax.transAxes, ha="center", va="bottom",
            fontsize=16 * scale, fontweight="bold", zorder=10)


def nice_length(span_m: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10ⁿ m) of about a fifth of ``span_m``.

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


def _scale_bar(ax: Any, view: Sequence[float], *, scale: float) -> None:
    x0, y0, x1, y1 = view
    length = nice_length(x1 - x0)
    bx, by = x0 + 0.04 * (x1 - x0), y0 + 0.04 * (y1 - y0)
    h = 0.012 * (y1 - y0)
    for i in range(4):
        ax.add_patch(Rectangle((bx + i * length / 4, by), length / 4, h, zorder=10,
                               facecolor="black" if i % 2 == 0 else "white",
                               edgecolor="black", linewidth=0.8))
    unit, div = ("km", 1000.0) if length >= 1000 else ("m", 1.0)
    for frac in (0, 0.5, 1):
        ax.text(bx + frac * length, by + 1.6 * h, f"{frac * length / div:g}", ha="center",
                va="bottom", fontsize=8 * scale, zorder=10)
    ax.text(bx + length + 0.01 * (x1 - x0), by, unit, va="bottom", fontsize=8 * scale,
            zorder=10)
    ax.text(bx, by - 1.2 * h, "比例尺 Scale", va="top", fontsize=8 * scale, zorder=10)


def _draw_legend(panel: Any, *, scale: float) -> None:
    handles = [
        Line2D([], [], color="#222222", linewidth=2.2, linestyle=(0, (8, 3, 2, 3)),
               label="乡镇界 township boundary"),
        Patch(facecolor="#ff000066", edgecolor="#c00000", label="生态保护红线 red line"),
        Patch(facecolor="#f2d04a80", edgecolor="#b8860b", hatch="...",
              label="永久基本农田 basic farmland"),
        Line2D([], [], color="#7b2cbf", linewidth=2.0, linestyle=(0, (6, 2)),
               label="城镇开发边界 development boundary"),
        Patch(facecolor="#eeeeee", edgecolor="#bbbbbb", label="规划地块 plan parcels"),
    ] + [Patch(facecolor=c, edgecolor="black", label=f"项目 {VERDICT_ZH[v]} {v}")
         for v, c in VERDICT_COLORS.items()]
    panel.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1.0), ncol=2,
                 fontsize=8.5 * scale, title="图例 Legend", title_fontsize=11 * scale,
                 frameon=True, borderaxespad=0.0)


def _draw_table(panel: Any, sites: gpd.GeoDataFrame, *, scale: float) -> None:
    max_rows = 32
    rows = []
    for _, s in sites.head(max_rows).iterrows():
        mapped = s.geometry is not None and not s.geometry.is_empty
        rows.append([str(s["no"]) if mapped else f"{s['no']}*",
                     "\n".join(textwrap.wrap(str(s["name"]), 16)[:2]) or "—",
                     textwrap.shorten(str(s["category"]), 10, placeholder="…") or "—",
                     VERDICT_ZH.get(str(s["verdict"]), str(s["verdict"]))])
    panel.text(0.0, 0.73, "项目一览 Projects", fontsize=11 * scale, fontweight="bold",
               transform=panel.transAxes, va="bottom")
    if not rows:
        panel.text(0.0, 0.70, "（本乡镇无项目 no projects）", fontsize=9 * scale,
                   transform=panel.transAxes, va="top")
        return
    height = min(0.70, 0.028 * (len(rows) + 1) * (1.6 if any("\n" in r[1] for r in rows)
                                                  else 1.0))
    table = panel.table(cellText=rows, colLabels=["编号", "项目名称", "类别", "合规性"],
                        colWidths=[0.10, 0.52, 0.22, 0.16], cellLoc="left",
                        bbox=(0.0, 0.72 - height, 1.0, height))
    table.auto_set_font_size(False)
    table.set_fontsize(8 * scale)
    for (r, c), cell in table.get_celld().items():
        cell.set_linewidth(0.5)
        if r == 0:
            cell.set_facecolor("#e8e8e8")
            cell.get_text().set_fontweight("bold")
        elif c == 3:
            verdict = str(sites.iloc[r - 1]["verdict"])
            cell.get_text().set_color(VERDICT_COLORS.get(verdict, "#000000"))
    notes = []
    if len(sites) > max_rows:
        notes.append(f"… 另有 {len(sites) - max_rows} 个项目 more projects (see report)")
    if any(r[0].endswith("*") for r in rows):
        notes.append("* 未落图 not mapped (no site geometry)")
    if notes:
        panel.text(0.0, 0.71 - height, "\n".join(notes), fontsize=8 * scale,
                   transform=panel.transAxes, va="top")
