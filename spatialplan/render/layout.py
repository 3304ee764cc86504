"""Print layout of the "8+X" project layout map (“8+X”项目布局图), one page per township.

:func:`layout_figure` draws one township with matplotlib (title, township outline, the three
control lines, parcels, numbered project sites with a matching table, legend, north arrow,
scale bar, Gauss-Krüger coordinate frame, CRS / source note and date);
:func:`write_layout` writes a multi-page PDF and a PNG atomically.

Chinese text needs a CJK font. :func:`find_cjk_font` prefers one installed on the system (Noto
Sans CJK SC, Source Han Sans, WenQuanYi, …, through matplotlib's font manager) and falls back
to the Noto Sans SC that spatialplan installs with it (:func:`bundled_cjk_font`), so a fresh
machine draws Chinese too; a font that cannot be used raises
:class:`~spatialplan.errors.OutputError` rather than drawing boxes (tofu). The PDF embeds the
glyphs it uses as Type 3 fonts (``pdf.fonttype`` 3), which works for the CFF-flavoured OpenType
files CJK fonts come as.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import logging
import math
import os
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import shapely
from matplotlib import font_manager
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from spatialplan._version import __version__
from spatialplan.core._textcut import shorten, wrap_lines
from spatialplan.errors import DataLayerError, OutputError
from spatialplan.io.output import atomic_path
from spatialplan.render._layout_map import VERDICT_COLORS, draw_map, nice_length, nice_scale

__all__ = [
    "PAPER_SIZES_MM",
    "VERDICT_COLORS",
    "bundled_cjk_font",
    "contact_sheet",
    "find_cjk_font",
    "layout_figure",
    "nice_length",
    "nice_scale",
    "write_layout",
]

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

VERDICT_ZH = {"pass": "符合", "review": "需论证", "fail": "不符合", "error": "无法检查"}

_SAMPLE = "“8+X”项目布局图编号名称类别合规性符合需论证不符合无法检查坐标系数据来源日期比例尺北"


# --------------------------------------------------------------------------------------------
# fonts
# --------------------------------------------------------------------------------------------


def find_cjk_font(font: str | os.PathLike | None = None) -> str:
    """Return the family name of a CJK-capable font, registering ``font`` if it is a file.

    Parameters
    ----------
    font
        A font file (``.otf``/``.ttf``/``.ttc``) or a family name. Default: the first of
        :data:`CJK_FAMILIES` installed on the system, else the bundled Noto Sans SC (the
        ``pylopdf-fonts-zh-cn`` package, a dependency of spatialplan; see
        :func:`bundled_cjk_font`).

    Raises
    ------
    OutputError
        ``font`` is missing or has no Chinese glyphs, or no font at all is usable (the
        bundled font package was removed): pass ``font=`` or reinstall spatialplan.

    Examples
    --------
    >>> find_cjk_font()  # doctest: +SKIP
    'Noto Sans CJK SC'
    """
    hint = ("pass a font with Chinese glyphs (--font path/to/NotoSansCJK.otf on the command "
            "line, font= in Python), or install one (Debian/Ubuntu: apt-get install "
            "fonts-noto-cjk) or reinstall spatialplan, which brings Noto Sans SC")
    if font is not None:
        if Path(font).suffix.lower() in (".otf", ".ttf", ".ttc") or Path(font).is_file():
            family = _register(Path(font), hint=hint)
        else:
            family = str(font)
        if not _covers(family, _SAMPLE):
            raise OutputError(f"font {family!r} is not installed or lacks Chinese glyphs",
                              hint=hint)
        return family
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed and _covers(family, _SAMPLE):
            logger.debug("layout font: %s (system)", family)
            return family
    bundled = bundled_cjk_font()
    if bundled is not None:
        family = _register(bundled, hint=hint)
        if _covers(family, _SAMPLE):
            logger.debug("layout font: %s (bundled, %s)", family, bundled)
            return family
    raise OutputError("no Chinese (CJK) font found for the layout map", hint=hint)


def bundled_cjk_font() -> Path | None:
    """Return the font file spatialplan brings along: Noto Sans SC Regular (SIL OFL 1.1).

    It comes from the ``pylopdf-fonts-zh-cn`` package (an install requirement); None when
    that package is missing.

    Examples
    --------
    >>> bundled_cjk_font().name  # doctest: +SKIP
    'NotoSansSC-Regular.otf'
    """
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        return None
    path = Path(pylopdf_fonts_zh_cn.sans_path())
    return path if path.is_file() else None


def _register(path: Path, *, hint: str) -> str:
    """Add the font file ``path`` to matplotlib's font manager; return its family name.

    A family without a bold face (the bundled Noto Sans SC is regular only) gets its regular
    face registered as bold too, so that bold text is drawn in it without matplotlib logging
    "Failed to find font weight bold" for every size.
    """
    if not path.is_file():
        raise OutputError("font file not found", path=path, hint=hint)
    manager = font_manager.fontManager
    try:
        manager.addfont(str(path))
        family = font_manager.FontProperties(fname=str(path)).get_name()
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"not a usable font file: {exc}", path=path, hint=hint) from exc
    faces = [f for f in manager.ttflist if f.name == family]
    weights = [f.weight if isinstance(f.weight, int)
               else font_manager.weight_dict.get(f.weight, 400) for f in faces]
    if not any(w >= 600 for w in weights):
        manager.ttflist += [dataclasses.replace(f, weight=700) for f in faces
                            if Path(f.fname) == path]
        # a private lru_cache of matplotlib, not in its type stubs
        manager._findfont_cached.cache_clear()  # type: ignore[attr-defined]
    return family


def _font_path(family: str) -> str | None:
    try:
        return font_manager.findfont(font_manager.FontProperties(family=family),
                                     fallback_to_default=False)
    except ValueError:
        return None


def _covers(family: str, text: str) -> bool:
    """Tell whether the installed font ``family`` has a glyph for every character of ``text``."""
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
        Layers in the analysis (Gauss-Krüger, metric) CRS; ``townships`` may be the
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
    title = title or f"{shorten(name, 40)}“8+X”项目布局图"
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
        draw_map(ax, township, crs=crs, sites=sites, scale=scale, paper=paper.upper(),
                 layers={"redline": redline, "farmland": farmland, "udb": udb,
                         "parcels": parcels})
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
    png_index: int | None = None,
    dpi: int | None = None,
    n_pages: int | None = None,
) -> dict[str, Path]:
    """Write the layout: every figure as one PDF page, and a PNG; atomically.

    With several pages each is stamped "第 i / n 页 page i of n" (bottom right), and the PNG
    shows every page, side by side on a grid (each at ``dpi`` / columns, so the sheet is about
    one page's size), unless ``png_index`` picks one page, whose stamp then names it.

    Parameters
    ----------
    figs_or_fig
        One figure or one per township (from :func:`layout_figure`), e.g. a generator: the
        pages are written one at a time and only the PNG's figure is kept.
    pdf_path, png_path
        Targets; ``png_path=None`` writes no PNG.
    png_index
        The page (0-based) that goes to the PNG alone; default every page.
    dpi
        PNG resolution of one page (default: the figure's).
    n_pages
        How many pages an iterator ``figs_or_fig`` yields (for the stamps and the PNG grid,
        which are drawn as each page comes); default: the iterator is read into a list first.

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
    figs_or_fig, n_pages = _pages(figs_or_fig, n_pages=n_pages, png_index=png_index,
                                  pdf_path=pdf_path, png_path=png_path)
    sheet = png_path is not None and png_index is None and n_pages > 1
    cols = math.ceil(math.sqrt(n_pages))
    out: dict[str, Path] = {}
    pdf_path = Path(pdf_path)
    n, png_fig, tiles = 0, None, []
    # Type 3: matplotlib's Type 42 output mislabels the CFF outlines of OpenType CJK fonts
    # (Noto Sans SC/CJK) as TrueType; Type 3 embeds every glyph used, for any font file
    with matplotlib.rc_context({"pdf.fonttype": 3}), atomic_path(pdf_path) as tmp, PdfPages(
            tmp, metadata={"Title": "“8+X”项目布局图",
                           "Creator": f"spatialplan {__version__}"}) as pdf:
        # one page at a time: from an iterator, only the PNG's figure (or, for the sheet of
        # every page, a small tile of each) is kept (200 pages held together took 1.5 GB)
        for fig in figs_or_fig:  # no enumerate(): its cached result tuple would hold the figure
            _stamp_page(fig, n + 1, n_pages)
            pdf.savefig(fig)
            if sheet:
                tiles.append(_render_rgba(fig, (dpi or fig.dpi) / cols))
            elif n == (png_index or 0):
                png_fig = fig
            n += 1
            del fig  # not held while the next page is drawn
        if n != n_pages:
            raise OutputError(f"{n} layout pages drawn, {n_pages} expected", path=pdf_path,
                              hint="check the township codes")
    out["pdf"] = pdf_path
    if png_path is not None:
        png_path = Path(png_path)
        with atomic_path(png_path) as tmp:
            if sheet:
                matplotlib.image.imsave(tmp, _tile_sheet(tiles, cols=cols), format="png")
            else:
                assert png_fig is not None  # png_index was checked against n_pages
                png_fig.savefig(tmp, dpi=dpi or png_fig.dpi, format="png")
        out["png"] = png_path
    logger.debug("wrote %s (%d page(s))%s", pdf_path, n, f" and {png_path}" if png_path else "")
    return out


def _pages(figs_or_fig: Figure | Iterable[Figure], *, n_pages: int | None,
           png_index: int | None, pdf_path: str | os.PathLike,
           png_path: str | os.PathLike | None) -> tuple[Iterable[Figure], int]:
    """Return the pages of :func:`write_layout` as an iterable and their number, checked.

    An iterator without ``n_pages`` is read into a list; no page, or a ``png_index`` out of
    range, is an :class:`OutputError`.
    """
    if isinstance(figs_or_fig, Figure):
        figs_or_fig, n_pages = [figs_or_fig], 1
    elif n_pages is None:
        figs_or_fig = list(figs_or_fig)
        n_pages = len(figs_or_fig)
    if n_pages == 0:
        raise OutputError("no layout pages to write", path=pdf_path,
                          hint="check the township codes")
    if png_index is not None and not 0 <= png_index < n_pages:
        raise OutputError(f"png_index {png_index} out of range (0..{n_pages - 1})",
                          path=png_path)
    return figs_or_fig, n_pages


def contact_sheet(figs: Sequence[Figure], *, dpi: float | None = None,
                  gutter: int = 12) -> np.ndarray:
    """Every figure rendered side by side on a grid: an RGBA array (rows x columns pages).

    Each page is drawn at ``dpi`` / columns (default: the first figure's dpi), so the sheet
    is about as large as one page; pages are separated by a light grey ``gutter`` (pixels).

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> contact_sheet([Figure(figsize=(2, 1)), Figure(figsize=(2, 1))], dpi=20).shape
    (10, 52, 4)
    """
    cols = math.ceil(math.sqrt(len(figs)))
    tile_dpi = (dpi or figs[0].dpi) / cols
    return _tile_sheet([_render_rgba(fig, tile_dpi) for fig in figs], cols=cols, gutter=gutter)


def _tile_sheet(tiles: Sequence[np.ndarray], *, cols: int, gutter: int = 12) -> np.ndarray:
    """RGBA ``tiles`` on a grid of ``cols`` columns, separated by a light grey ``gutter``."""
    rows = math.ceil(len(tiles) / cols)
    th = max(t.shape[0] for t in tiles)
    tw = max(t.shape[1] for t in tiles)
    sheet = np.full((rows * th + (rows - 1) * gutter, cols * tw + (cols - 1) * gutter, 4),
                    np.array([220, 220, 220, 255], dtype=np.uint8), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = r * (th + gutter), c * (tw + gutter)
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return sheet


def _render_rgba(fig: Figure, dpi: float) -> np.ndarray:
    """Render the figure as an (h, w, 4) uint8 array at ``dpi``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="rgba", dpi=dpi)
    w, h = (int(v * dpi) for v in fig.get_size_inches())  # as the Agg renderer sizes it
    return np.frombuffer(buf.getvalue(), dtype=np.uint8).reshape(h, w, 4)


def _stamp_page(fig: Figure, page: int, pages: int) -> None:
    """Write "第 page / pages 页" at the bottom right (once: an older stamp is replaced)."""
    for text in [t for t in fig.texts if t.get_gid() == "sp-page"]:
        text.remove()
    if pages < 2:
        return
    title = next((t for t in fig.texts if t.get_gid() == "sp-title"), None)
    label = f"page {page} of {pages}"
    props: dict[str, Any] = {}
    if title is not None:  # a layout page: its CJK font
        label = f"第 {page} / {pages} 页  {label}"
        font = title.get_fontproperties().copy()
        font.set_size(float(title.get_fontsize()) * 0.45)
        font.set_weight("normal")
        props = {"fontproperties": font}
    fig.text(0.985, 0.012, label, ha="right", va="bottom", gid="sp-page", **props)


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
    ] + [Patch(facecolor=(*to_rgb(c), 0.55), edgecolor=c, linewidth=1.3,
               label=f"项目 {VERDICT_ZH[v]} {v}") for v, c in VERDICT_COLORS.items()]
    panel.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1.0), ncol=2,
                 fontsize=8.5 * scale, title="图例 Legend", title_fontsize=11 * scale,
                 frameon=True, borderaxespad=0.0)


def _draw_table(panel: Any, sites: gpd.GeoDataFrame, *, scale: float) -> None:
    max_rows = 32
    rows = []
    for _, s in sites.head(max_rows).iterrows():
        mapped = s.geometry is not None and not s.geometry.is_empty
        rows.append([str(s["no"]) if mapped else f"{s['no']}*",
                     wrap_lines(str(s["name"]), 16, 2) or "—",
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
