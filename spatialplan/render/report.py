"""Self-contained HTML report of a check run (``report.html``).

:func:`render_report` turns the result tables into one HTML page (inline CSS, no scripts, no
external assets, printable); :func:`write_report` writes it atomically. Every value, column
name and key is escaped with :func:`spatialplan.render._html.escape`.

Long tables are capped at :data:`MAX_TABLE_ROWS` rows (a province has 10⁵ line conflicts and
findings: tens of megabytes of HTML no browser shows usefully). The rows that matter most are
shown first (the largest conflicts, the worst projects and findings, the townships with the
most gaps) and a note beside the table says how many rows are shown of how many and which
files hold them all (the GeoPackage layer, the XLSX/CSV tables). Nothing is dropped from those.
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from spatialplan._version import __version__
from spatialplan.errors import OutputError
from spatialplan.io.output import atomic_path
from spatialplan.render._html import escape, format_value, html_table, is_missing
from spatialplan.render._labels import (
    EIGHT_COLUMNS,
    KIND_NAMES,
    PROJECT_STATUS_NAMES,
    ROLE_NAMES,
    RULE_NAMES,
    SUBJECT_NAMES,
    UNIT_NAMES,
    VERDICT_NAMES,
    bilingual,
    facility_texts,
    feature_number,
)
from spatialplan.render._report_reach import section_reach

__all__ = ["MAX_TABLE_ROWS", "render_report", "write_report"]

logger = logging.getLogger(__name__)

_VERDICT_ZH = VERDICT_NAMES
#: Rows of one table shown in the report (the full tables are in the GeoPackage and XLSX/CSV).
MAX_TABLE_ROWS = 1000

#: table → (GeoPackage layer, the ``write_check`` output keys of its XLSX and CSV files)
_FULL_TABLE = {
    "township_stats": ("township_stats", ("township_stats_xlsx", "township_stats_csv")),
    "line_conflicts": ("line_conflicts", ("line_conflicts_xlsx", "line_conflicts_csv")),
    "township_conflicts": ("township_conflicts", ("township_conflicts_xlsx",
                                                  "township_conflicts_csv")),
    "projects": ("projects", ()),
    "findings": ("findings", ()),
    "village_reach": ("village_reach", ("village_reach_xlsx", "village_reach_csv")),
}
_DEFAULT_FILES = {"results": "results.gpkg", "township_stats_xlsx": "township_stats.xlsx",
                  "township_stats_csv": "township_stats.csv",
                  "line_conflicts_xlsx": "line_conflicts.xlsx",
                  "line_conflicts_csv": "line_conflicts.csv",
                  "township_conflicts_xlsx": "township_conflicts.xlsx",
                  "township_conflicts_csv": "township_conflicts.csv",
                  "village_reach_xlsx": "village_reach.xlsx",
                  "village_reach_csv": "village_reach.csv"}
_LINES = {"redline": ("生态保护红线", "red line"), "farmland": ("永久基本农田", "farmland"),
          "udb": ("城镇开发边界", "development boundary"), "cropland": ("耕地", "cultivated land")}
#: labels of the run facts (``summary`` and ``tolerance`` keys) a reader sees
_FACT_LABELS = {
    "as_of": "核查日期 as of",
    "analysis_crs": "分析坐标系 analysis CRS",
    "crs_reason": "坐标系选择依据 CRS choice",
    "verdicts": "结论统计 verdicts",
    "townships": "乡镇数 townships",
    "projects": "项目 projects",
    "n_in": "读入 in",
    "checked": "已检查 checked",
    "min_overlap_m2": "最小重叠面积 min overlap (m²)",
    "min_overlap_share": "最小重叠比例 min overlap share",
    "source": "依据 source",
    **{k: f"{v} {k}" for k, v in VERDICT_NAMES.items()},
}
#: headers of the inputs table, and the words of its value columns
_INPUT_HEADERS = {
    "role": "图层 role", "path": "文件 path", "layer": "源图层 layer", "driver": "格式 driver",
    "encoding": "编码 encoding", "encoding_source": "编码依据 encoding from",
    "source_crs": "源坐标系 source CRS", "crs_source": "坐标系依据 CRS from",
    "sha256": "校验值 sha256", "n_in": "读入 in", "n_ok": "有效 ok",
    "n_repaired": "已修复 repaired", "n_rejected": "已拒绝 rejected",
    "n_zm_dropped": "去除Z/M zm dropped",
}
_INPUT_WORDS = {
    "role": ROLE_NAMES,
    "encoding_source": {"declared": "计划文件指定", "cpg": ".cpg 文件", "detected": "自动识别",
                        "format": "格式规定"},
    "crs_source": {"source": "源数据", "assumed": "计划文件指定",
                   "assumed (overrides source)": "计划文件指定（覆盖源数据）"},
}
#: decimals of a unit's values in the report (areas to what the unit means)
_HA, _MU = 4, 4

_CSS = """
:root { --pass:#2ca02c; --review:#e07b00; --fail:#d62728; --error:#6c6c6c; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC",
       sans-serif; margin: 24px auto; max-width: 1200px; color: #222; line-height: 1.45; }
h1 { font-size: 22px; border-bottom: 3px solid #c00000; padding-bottom: 6px; }
h2 { font-size: 17px; margin-top: 28px; border-left: 5px solid #7b2cbf; padding-left: 8px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; width: 100%; }
th, td { border: 1px solid #bbb; padding: 3px 6px; vertical-align: top; text-align: left; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.v-pass { color: var(--pass); font-weight: bold; }
td.v-review { color: var(--review); font-weight: bold; }
td.v-fail { color: var(--fail); font-weight: bold; }
td.v-error { color: var(--error); font-weight: bold; }
table.kv { width: auto; } table.kv th { width: 16em; }
p.cap { color: #7a4b00; background: #fff6e0; border-left: 4px solid #e07b00;
        padding: 4px 8px; font-size: 12px; }
.cards { display: flex; gap: 10px; flex-wrap: wrap; }
.card { border: 1px solid #ccc; border-radius: 4px; padding: 6px 12px; min-width: 110px; }
.card b { font-size: 20px; display: block; }
.note { color: #555; font-size: 12px; }
.empty { color: #777; font-style: italic; }
iframe.map { width: 100%; height: 560px; border: 1px solid #999; }
footer { margin-top: 30px; font-size: 11px; color: #777; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  iframe.map { display: none; }
  h2 { break-after: avoid; }
  table { page-break-inside: auto; font-size: 10px; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
  @page { size: A4 landscape; margin: 12mm; }
}
"""


def render_report(
    *,
    plan_name: str,
    summary: Mapping[str, Any] | None,
    township_stats: pd.DataFrame | None,
    line_conflicts: pd.DataFrame | None,
    projects: pd.DataFrame | None,
    findings: pd.DataFrame | None,
    coverage: pd.DataFrame | None = None,
    map_path: str | os.PathLike | None = None,
    tolerance: Mapping[str, Any] | None = None,
    crs: Any = None,
    inputs: Sequence[Mapping[str, Any]] | pd.DataFrame | None = None,
    max_rows: int | None = MAX_TABLE_ROWS,
    outputs: Mapping[str, str | os.PathLike] | None = None,
    catalog: Any = None,
    county_summary: pd.DataFrame | None = None,
    township_conflicts: pd.DataFrame | None = None,
    village_reach: pd.DataFrame | None = None,
    village_seat: pd.DataFrame | None = None,
    reach_info: Mapping[str, Any] | None = None,
) -> str:
    """Render the check results as one self-contained, printable HTML page.

    Parameters
    ----------
    plan_name
        Shown in the title.
    summary
        Run facts as key → value (values may be nested mappings, e.g. per-layer counts).
    township_stats, line_conflicts, projects, findings
        The result tables (see DESIGN.md, Results). Geometry columns are ignored.
    coverage
        8+X coverage per township (default: the ``eight_*`` columns of ``township_stats``:
        present through a compliant project, missing, of these registered but not compliant
        or not checked).
    map_path
        The web map, linked and embedded in an ``<iframe>``; a relative path (an absolute
        one is reduced to its file name: the map is expected beside the report).
    tolerance
        The overlap tolerances used (printed in every report).
    crs
        The analysis CRS (``pyproj.CRS`` or text).
    inputs
        Input files: rows with e.g. ``role``, ``path``, ``sha256``, ``n_in``, ``n_ok``,
        ``n_repaired``, ``n_rejected``.
    max_rows
        Rows shown per long table (``None``: all). A capped table shows the rows that matter
        most first and says "shown N of M rows" and where all rows are.
    outputs
        The files written beside the report (what :func:`spatialplan.pipeline.run.write_check`
        returns: ``results`` → the GeoPackage, ``line_conflicts_xlsx``, ... → the tables), named
        in the notes of capped tables. Default: the standard files of ``spatialplan check``
        (``results.gpkg``, ``township_stats.xlsx``/``.csv``, ``line_conflicts.xlsx``/``.csv``).
    catalog
        Facility catalogue, for the Chinese names of the 8+X facilities in the coverage table
        (default: the bundled one).
    county_summary
        The county roll-up (:func:`spatialplan.analysis.rollup.county_summary`); with it, a
        county section lists the counties and ranks the townships inside each.
    township_conflicts
        Overlaps and gaps between the township outlines, with the area ``township_stats``
        counts twice (its ``*_double_counted_m2`` columns); ``None``: no such section.
    village_reach, village_seat, reach_info
        The "1+N" village reach (``CheckResult.village_reach``, ``.village_seat``,
        ``.reach_info``); with ``village_reach``, a section per township gives the shares of
        villages within each facility type's limit and lists the villages left out.

    Returns
    -------
    str
        The HTML document.

    Examples
    --------
    >>> html = render_report(plan_name="demo", summary={"townships": 1}, township_stats=None,
    ...                      line_conflicts=None, projects=None, findings=None)
    >>> html.startswith("<!DOCTYPE html>")
    True
    """
    title = f"{format_value(plan_name)} · 国土空间规划检查报告 Plan check report"
    cap = _Cap(max_rows, _DEFAULT_FILES if outputs is None else outputs)
    parts = [
        f"<h1>{escape(title)}</h1>",
        _section_summary(summary, projects, crs=crs, tolerance=tolerance, inputs=inputs),
        _section_townships(township_stats, cap),
        _section_conflicts(line_conflicts, cap),
        _section_township_conflicts(township_conflicts, township_stats, cap),
        _section_projects(projects, findings, cap),
        _section_coverage(coverage, township_stats, cap, catalog),
        _section_counties(county_summary, township_stats, cap),
        section_reach(village_reach, village_seat, township_stats, reach_info,
                      max_rows=cap.max_rows, full_table=_where("village_reach", cap.files),
                      catalog=catalog),
        _section_map(map_path),
        f"<footer>spatialplan {escape(__version__)} · "
        f"{escape(datetime.now().strftime('%Y-%m-%d %H:%M'))}</footer>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body>\n</html>\n"
    )


def write_report(html: str, path: str | os.PathLike) -> Path:
    """Write the report atomically (temporary file beside ``path``, then ``os.replace``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_report("<!DOCTYPE html><p>x</p>", pathlib.Path(tempfile.mkdtemp()) / "r.html")
    >>> p.read_text(encoding="utf-8")[:15]
    '<!DOCTYPE html>'
    """
    if not isinstance(html, str) or not html.strip():
        raise OutputError("nothing to write: the report is empty", path=path)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8", newline="\n")
    logger.debug("wrote %s (%.0f kB)", path, path.stat().st_size / 1e3)
    return path


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


def _kv(pairs: Mapping[str, Any] | Sequence[tuple[Any, Any]]) -> str:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    rows = []
    for key, value in items:
        if isinstance(value, Mapping):
            cell = _kv(value)
        elif isinstance(value, pd.DataFrame) or _is_records(value):
            cell = html_table(value)
        else:
            cell = escape(value, digits=4 if isinstance(value, float) and abs(value) < 1 else 2)
        label = _FACT_LABELS.get(key, key) if isinstance(key, str) else key
        rows.append(f"<tr><th>{escape(label)}</th><td>{cell}</td></tr>")
    return f'<table class="kv">{"".join(rows)}</table>' if rows else ""


def _is_records(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and isinstance(value[0], Mapping)


def _crs_text(crs: Any) -> str:
    if crs is None or (isinstance(crs, str) and not crs):
        return "not given"
    name = getattr(crs, "name", None)
    epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
    if name:
        return f"EPSG:{epsg} {name}" if epsg else str(name)
    return format_value(crs)


def _section_summary(summary: Mapping[str, Any] | None, projects: pd.DataFrame | None, *,
                     crs: Any, tolerance: Mapping[str, Any] | None,
                     inputs: Sequence[Mapping[str, Any]] | pd.DataFrame | None) -> str:
    out = ["<h2>运行概要 Run summary</h2>"]
    counts = _verdict_counts(projects)
    shown = {"verdicts"} if counts else set()  # each figure once: the cards hold the counts
    if crs is not None:
        shown.add("analysis_crs")  # ... and the first line the CRS
    if counts:
        cards = "".join(
            f'<div class="card" style="border-color:var(--{v})">{escape(_VERDICT_ZH[v])} '
            f"{escape(v)}<b>{counts.get(v, 0)}</b></div>"
            for v in ("pass", "review", "fail", "error"))
        out.append(f'<div class="cards">{cards}</div>')
    facts: list[tuple[Any, Any]] = [("分析坐标系 Analysis CRS", _crs_text(crs))]
    if tolerance:
        facts.append(("容差 Tolerances", dict(tolerance)))
    else:
        facts.append(("容差 Tolerances", "not given (defaults of the rulebook)"))
    facts += [(k, v) for k, v in (summary or {}).items() if k not in shown]
    out.append(_kv(facts))
    if inputs is not None and len(inputs):
        out.append("<h3>输入 Inputs (counts in/out)</h3>")
        table = pd.DataFrame(list(inputs)) if not isinstance(inputs, pd.DataFrame) else inputs
        table = table.copy()
        for col, words in _INPUT_WORDS.items():
            if col in table.columns:
                table[col] = [bilingual(v, words) for v in table[col]]
        out.append(html_table(table, headers=_INPUT_HEADERS))
    return "\n".join(out)


def _verdict_counts(projects: pd.DataFrame | None) -> dict[str, int]:
    if projects is None or "verdict" not in getattr(projects, "columns", []):
        return {}
    return {str(k): int(v) for k, v in projects["verdict"].value_counts().items()}


class _Cap(NamedTuple):
    """How long tables are capped: rows shown, and the files that hold every row."""

    max_rows: int | None
    files: Mapping[str, str | os.PathLike]


def _where(table: str, files: Mapping[str, str | os.PathLike]) -> str:
    """Where the full ``table`` is, e.g. "results.gpkg (layer line_conflicts), ...xlsx"."""
    layer, keys = _FULL_TABLE[table]
    places = []
    if "results" in files:
        places.append(f"{Path(files['results']).name} (layer {layer} 图层)")
    places += [Path(files[k]).name for k in keys if k in files]
    if not places:
        return "not written in this run 本次未输出完整表 (write the GeoPackage: spatialplan check)"
    return ", ".join(places)


def _capped(df: pd.DataFrame, cap: _Cap, table: str, order: str) -> tuple[pd.DataFrame, str]:
    """Return the first ``cap.max_rows`` rows of ``df`` (already in display order) and the note.

    The note (empty when nothing is cut) says how many rows are shown of how many, in which
    order, and which files hold them all.
    """
    n = len(df)
    if cap.max_rows is None or n <= cap.max_rows:
        return df, ""
    k = max(int(cap.max_rows), 0)
    note = (f"显示 {k:,} / {n:,} 行 · shown {k:,} of {n:,} rows ({order}). "
            f"完整表 full table: {_where(table, cap.files)}")
    return df.iloc[:k], f'<p class="note cap">{escape(note)}</p>'


def _add_area_columns(df: pd.DataFrame, cols: list[str], headers: dict[str, str]) -> None:
    """Add the township and control-line area columns (公顷, 亩, %) in place.

    The areas in m² become hectares, the shares percentages: new columns of ``df``, appended to
    ``cols`` (in the report's order) with their ``headers``. The lines are shown by their
    ellipsoidal figures (as the official ones, and the shares), planar ones when a table has
    none; every header says which.
    """
    if "area_m2" in df.columns:
        df["area_ha"] = df["area_m2"] / 1e4
        cols.append("area_ha")
        headers["area_ha"] = "平面面积 planar area (公顷 ha)"
    if "area_ellipsoidal_m2" in df.columns:
        df["area_ell_ha"] = df["area_ellipsoidal_m2"] / 1e4
        cols.append("area_ell_ha")
        headers["area_ell_ha"] = "椭球面积 ellipsoidal area (公顷 ha)"
    for line, (zh, en) in _LINES.items():
        kind, word = "_ellipsoidal", "椭球 ellipsoidal"
        if df.get(f"{line}_ellipsoidal_ha", pd.Series(dtype=float)).isna().all():
            kind, word = "", "平面 planar"
        if f"{line}{kind}_ha" in df.columns:
            cols.append(f"{line}{kind}_ha")
            headers[f"{line}{kind}_ha"] = f"{zh} {en} (公顷 ha, {word})"
        if f"{line}{kind}_mu" in df.columns and line in ("farmland", "cropland"):
            cols.append(f"{line}{kind}_mu")
            headers[f"{line}{kind}_mu"] = f"{zh} {en} (亩 mu, {word})"
        if f"{line}_share" in df.columns:
            df[f"{line}_pct"] = df[f"{line}_share"].astype(float) * 100
            cols.append(f"{line}_pct")
            headers[f"{line}_pct"] = f"{zh} {en} % (椭球 ellipsoidal)"


def _section_townships(stats: pd.DataFrame | None, cap: _Cap) -> str:
    out = ["<h2>乡镇统计 Township statistics</h2>"]
    if stats is None or len(stats) == 0:
        out.append('<p class="empty">no township statistics</p>')
        return "\n".join(out)
    df, note = _capped(pd.DataFrame(stats.drop(columns=_geom_cols(stats))), cap,
                       "township_stats", "in table order 按原表顺序")
    df = df.copy()
    cols: list[str] = []
    headers: dict[str, str] = {}
    for c, h in (("township_code", "代码 code"), ("township_name", "乡镇 township")):
        if c in df.columns:
            cols.append(c)
            headers[c] = h
    digits = {}
    _add_area_columns(df, cols, headers)
    digits.update({c: _HA for c in cols if c.endswith("_ha")})
    digits.update({c: _MU for c in cols if c.endswith("_mu")})
    counts = (("n_projects", "项目数 projects"), ("n_group_8", "“8”类项目数 group 8 projects"),
              ("n_group_X", "“X”类项目数 group X projects"),
              ("n_unknown", "类别未识别项目数 unknown facility"))
    for c, h in counts:
        if c in df.columns:
            cols.append(c)
            headers[c] = h
            digits[c] = 0
    known = set(cols) | {"area_m2", "area_ellipsoidal_m2", "feature_id", *EIGHT_COLUMNS}
    known |= {f"{line}{kind}_{unit}" for line in _LINES for kind in ("", "_ellipsoidal")
              for unit in ("m2", "ha", "mu")}
    known |= {f"{line}_{s}" for line in _LINES for s in ("share", "double_counted_m2")}
    known.add("overlap_townships")  # shown in the township conflicts section
    known |= {c for c in df.columns if str(c).startswith("reach_share_")}  # the reach section
    cols += [c for c in df.columns if c not in known and not str(c).endswith("_pct")
             and c not in ("area_ha", "area_ell_ha")]
    out.append(note)
    out.append(html_table(df, columns=cols, headers=headers, numeric_digits=digits))
    return "\n".join(p for p in out if p)


def _geom_cols(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if str(df[c].dtype) == "geometry"]


def _section_conflicts(conflicts: pd.DataFrame | None, cap: _Cap) -> str:
    out = ["<h2>控制线冲突 Line conflicts</h2>",
           '<p class="note">三条控制线应“不交叉、不重叠、不冲突”; overlaps below the tolerance '
           "are listed as boundary noise (review), never dropped.</p>"]
    if conflicts is None or len(conflicts) == 0:
        out.append('<p class="empty">无冲突 no conflicts found</p>')
        return "\n".join(out)
    df = pd.DataFrame(conflicts.drop(columns=_geom_cols(conflicts)))
    if {"kind", "area_m2"} <= set(df.columns):
        by = df.groupby("kind", dropna=False)["area_m2"].agg(["count", "sum"]).reset_index()
        by["kind"] = [bilingual(v, KIND_NAMES) for v in by["kind"]]
        out.append(html_table(by, headers={"kind": "类型 kind", "count": "数量 count",
                                           "sum": "面积 area (m²)"},
                              numeric_digits={"count": 0}))
    order = "in table order 按原表顺序"
    if cap.max_rows is not None and len(df) > cap.max_rows and "area_m2" in df.columns:
        keys = pd.DataFrame({"noise": df["kind"].ne("conflict") if "kind" in df.columns
                             else False,
                             "area": -pd.to_numeric(df["area_m2"], errors="coerce")})
        df = df.iloc[np.lexsort((keys["area"].to_numpy(), keys["noise"].to_numpy()))]
        order = "conflicts first, largest area first 冲突优先、按面积从大到小"
    df, note = _capped(df, cap, "line_conflicts", order)
    df = df.copy()
    for c in ("layer_a", "layer_b"):
        if c in df.columns:
            df[c] = [bilingual(v, ROLE_NAMES) for v in df[c]]
    for c in ("feature_a", "feature_b"):
        if c in df.columns:
            df[c] = [feature_number(v) for v in df[c]]
    if "kind" in df.columns:
        df["kind"] = [bilingual(v, KIND_NAMES) for v in df["kind"]]
    if "pair_share" in df.columns:
        df["pair_share"] = pd.to_numeric(df["pair_share"], errors="coerce") * 100
    out.append(note)
    out.append(html_table(df, headers={"layer_a": "图层 A layer", "layer_b": "图层 B layer",
                                       "feature_a": "要素 A 序号 feature no.",
                                       "feature_b": "要素 B 序号 feature no.",
                                       "township_code": "乡镇 township",
                                       "area_m2": "面积 area (m²)", "kind": "类型 kind",
                                       "pair_area_m2": "两要素重叠总面积 pair overlap (m²)",
                                       "pair_share": "占较小要素 % of smaller feature"},
                          numeric_digits={"feature_a": 0, "feature_b": 0}))
    return "\n".join(p for p in out if p)


def _section_township_conflicts(conflicts: pd.DataFrame | None, stats: pd.DataFrame | None,
                                cap: _Cap) -> str:
    """Overlaps and gaps between township outlines, and the line area counted twice."""
    if conflicts is None:
        return ""
    out = ["<h2>乡镇界线重叠与缝隙 Township overlaps and gaps</h2>",
           '<p class="note">乡镇界线应无缝拼接; a control line inside an overlap is counted in '
           "both townships' statistics (重复计入), a gap belongs to no township. Pieces below "
           "the minimum overlap area are boundary noise and not listed.</p>"]
    if len(conflicts) == 0:
        out.append('<p class="empty">无重叠或缝隙 no overlaps or gaps found</p>')
        return "\n".join(out)
    df = pd.DataFrame(conflicts.drop(columns=_geom_cols(conflicts)))
    by = df.groupby("kind", dropna=False)["area_m2"].agg(["count", "sum"]).reset_index()
    by["kind"] = [bilingual(v, KIND_NAMES) for v in by["kind"]]
    out.append(html_table(by, headers={"kind": "类型 kind", "count": "数量 count",
                                       "sum": "面积 area (m²)"}, numeric_digits={"count": 0}))
    df, note = _capped(df, cap, "township_conflicts", "in table order 按原表顺序")
    df = df.assign(kind=[bilingual(v, KIND_NAMES) for v in df["kind"]])
    out += [note, html_table(df, headers={"kind": "类型 kind", "township_a": "乡镇 A township",
                                          "township_b": "乡镇 B township",
                                          "area_m2": "面积 area (m²)"})]
    out.append(_double_counted_table(stats))
    return "\n".join(p for p in out if p)


def _double_counted_table(stats: pd.DataFrame | None) -> str:
    """Per overlapping township: the other townships and each line's area counted twice."""
    if stats is None or "overlap_townships" not in stats.columns:
        return ""
    rows = pd.DataFrame(stats[stats["overlap_townships"].fillna("").astype(str) != ""])
    if len(rows) == 0:
        return ""
    cols = ["township_code", "overlap_townships"]
    headers = {"township_code": "乡镇 township", "overlap_townships": "与之重叠 overlaps"}
    for line, (zh, en) in _LINES.items():
        col = f"{line}_double_counted_m2"
        if col in rows.columns:
            cols.append(col)
            headers[col] = f"{zh} {en} 重复计入 counted twice (m²)"
    return ('<p class="note">重复计入面积 area counted in this township and in another:</p>\n'
            + html_table(rows, columns=cols, headers=headers))


def _verdict_class(column: str, value: Any) -> str | None:
    if column in ("verdict", "status") and not is_missing(value):
        key = str(value).split()[-1] if str(value).strip() else ""  # "不符合 fail" → fail
        if key in _VERDICT_ZH:
            return f"v-{key}"
    return None


_SEVERITY = {"error": 0, "fail": 1, "review": 2, "pass": 3, "not_applicable": 4}


def _by_severity(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows ordered error, fail, review, pass, other (stable within each)."""
    rank = df[column].map(lambda v: _SEVERITY.get(v, 5) if isinstance(v, str) else 5)
    return df.iloc[np.argsort(rank.to_numpy(dtype=int), kind="stable")]


def _section_projects(projects: pd.DataFrame | None, findings: pd.DataFrame | None,
                      cap: _Cap) -> str:
    out = ["<h2>项目合规性 Project verdicts</h2>"]
    if projects is None or len(projects) == 0:
        out.append('<p class="empty">no projects</p>')
        return "\n".join(out)
    df = pd.DataFrame(projects.drop(columns=_geom_cols(projects)))
    order = "in table order 按原表顺序"
    if "verdict" in df.columns:
        df = _by_severity(df, "verdict")
        order = "worst verdict first 按结论从差到好"
    df, note = _capped(df, cap, "projects", order)
    if "verdict" in df.columns:
        df = df.assign(verdict_zh=[f"{_VERDICT_ZH.get(v, format_value(v))} {format_value(v)}"
                                   for v in df["verdict"]])
    if "status" in df.columns:
        df = df.assign(status=[bilingual(v, PROJECT_STATUS_NAMES) for v in df["status"]])
    wanted = [("project_id", "编号 id"), ("name", "项目名称 name"),
              ("township_code", "乡镇 township"), ("facility_name", "类别 facility"),
              ("group", "8/X"), ("construction_type", "建设性质 construction type"),
              ("status", "建设状态 status"), ("verdict_zh", "合规性 verdict"),
              ("area_m2", "面积 area (m²)"), ("redline_m2", "红线 red line (m²)"),
              ("farmland_m2", "基本农田 farmland (m²)"), ("farmland_mu", "基本农田 farmland (亩)"),
              ("outside_udb_m2", "开发边界外 outside UDB (m²)"),
              ("slope_mean_deg", "平均坡度 slope (°)"), ("reasons", "原因 reasons")]
    cols = [c for c, _ in wanted if c in df.columns]
    headers = dict(wanted)

    def klass(column: str, value: Any) -> str | None:
        if column == "verdict_zh" and isinstance(value, str):
            return f"v-{value.split()[-1]}"
        return _verdict_class(column, value)

    out.append(note)
    out.append(html_table(df, columns=cols, headers=headers, cell_class=klass,
                          numeric_digits={"farmland_mu": _MU}))
    out.append(_section_findings(findings, cap))
    return "\n".join(p for p in out if p)


def _section_findings(findings: pd.DataFrame | None, cap: _Cap) -> str:
    if findings is None or len(findings) == 0:
        return '<p class="empty">no findings</p>'
    df = pd.DataFrame(findings.drop(columns=_geom_cols(findings)))
    out = ["<h3>检查明细 Findings (not passing) and rule sources</h3>"]
    shown = df
    order = "in table order 按原表顺序"
    if "status" in df.columns:
        shown = _by_severity(df[~df["status"].isin(["pass", "not_applicable"])], "status")
        order = (f"not passing only, worst first, of {len(df):,} findings in all "
                 "仅列未通过项、从差到好")
    shown, note = _capped(shown, cap, "findings", order)
    shown = shown.copy()
    words = {"rule": RULE_NAMES, "subject": SUBJECT_NAMES}
    for c, names in words.items():
        if c in shown.columns:
            shown[c] = [bilingual(v, names) for v in shown[c]]
    if "unit" in shown.columns:
        shown["unit"] = [UNIT_NAMES.get(v, v) if isinstance(v, str) else v
                         for v in shown["unit"]]
    if "status" in shown.columns:
        shown["status"] = [bilingual(v, _VERDICT_ZH) for v in shown["status"]]
    cols = [c for c in shown.columns if c != "feature_id"]
    out.append(note)
    out.append(html_table(shown, columns=cols,
                          headers={"project_id": "编号 id", "rule": "规则 rule",
                                   "status": "结果 status", "measure": "量 measure",
                                   "unit": "单位 unit", "message": "说明 message",
                                   "source": "依据 source", "subject": "对象 subject"},
                          cell_class=_verdict_class, empty="all findings pass"))
    if {"rule", "source"} <= set(df.columns):
        rules = _rule_sources(df)
        out.append("<h3>规则依据 Rule sources</h3>")
        out.append(html_table(rules, headers={"rule": "规则 rule", "source": "依据 source"}))
    return "\n".join(p for p in out if p)


def _rule_sources(findings: pd.DataFrame) -> pd.DataFrame:
    """List each rule's sources, in the registry's order.

    Built-in rules, then plug-ins as they appear; a plug-in rule is marked as one.
    """
    from spatialplan.rules._registry import builtin_ids

    builtin = {r: k for k, r in enumerate(builtin_ids())}
    rules = findings[["rule", "source"]].drop_duplicates()
    rank = [builtin.get(r, len(builtin)) for r in rules["rule"]]
    rules = rules.iloc[sorted(range(len(rules)), key=rank.__getitem__)].copy()
    rules["rule"] = [f"{v}（插件 plug-in）" if isinstance(v, str) and v not in builtin
                     else bilingual(v, RULE_NAMES) for v in rules["rule"]]
    return rules


def _n_missing(value: Any) -> int:
    """How many facilities an ``eight_missing`` cell lists (";"-joined text or a list)."""
    if isinstance(value, str):
        return sum(1 for part in value.replace("；", ";").split(";") if part.strip())
    if isinstance(value, list | tuple | set):
        return len(value)
    return 0


def _section_coverage(coverage: pd.DataFrame | None, stats: pd.DataFrame | None,
                      cap: _Cap, catalog: Any = None) -> str:
    out = ["<h2>“8+X” 配套缺口 Coverage gaps</h2>"]
    if coverage is None and stats is not None and "eight_missing" in getattr(stats, "columns", []):
        cols = [c for c in ("township_code", "township_name", "n_projects", *EIGHT_COLUMNS)
                if c in stats.columns]
        coverage = pd.DataFrame(stats[cols])
    if coverage is None or len(coverage) == 0:
        out.append('<p class="empty">no coverage information (run the siting check)</p>')
        return "\n".join(out)
    df = pd.DataFrame(coverage.drop(columns=_geom_cols(coverage)))
    order = "in table order 按原表顺序"
    if cap.max_rows is not None and len(df) > cap.max_rows and "eight_missing" in df.columns:
        gaps = np.array([_n_missing(v) for v in df["eight_missing"]], dtype=int)
        df = df.iloc[np.argsort(-gaps, kind="stable")]
        order = "most missing “8” facilities first 缺项多者优先"
    df, note = _capped(df, cap, "township_stats", order)
    df = df.copy()
    for c in EIGHT_COLUMNS:
        if c in df.columns:
            df[c] = facility_texts(df[c], catalog)
    out.append(note)
    if "eight_noncompliant" in df.columns:
        out.append('<p class="note">“8”类设施只有在其项目合规(符合或需论证)时才算已有; '
                   "a facility counts as present only through a project that passes or needs "
                   "review; one registered only by failing (or unchecked) projects is missing."
                   "</p>")
    out.append(html_table(df, headers={"township_code": "代码 code",
                                       "township_name": "乡镇 township",
                                       "n_projects": "项目数 projects",
                                       "eight_present": "已有合规 “8” present (compliant)",
                                       "eight_missing": "缺少 “8” missing",
                                       "eight_noncompliant":
                                           "已登记但不合规 registered but not compliant",
                                       "eight_unchecked":
                                           "已登记但无法核查 registered, not checked"},
                          numeric_digits={"n_projects": 0}))
    return "\n".join(p for p in out if p)


_COUNTY_HEADERS = {
    "county_code": "县级代码 county", "n_townships": "乡镇数 townships",
    "n_projects": "项目数 projects", "n_pass": "符合 pass", "n_review": "需论证 review",
    "n_fail": "不符合 fail", "n_error": "无法核查 error",
    "investment_wan": "总投资(万元) investment",
    "eight_share": "“8”类齐备率 8+X share", "compliance_rate": "合规率 compliance",
    "behind_compliance_rate": "合规率低于全县 behind on compliance",
    "behind_eight_share": "“8”类齐备率低于全县 behind on 8+X",
}
_RANK_HEADERS = {
    "county_code": "县级代码 county", "county_rank": "县内排名 rank",
    "township_code": "代码 code", "township_name": "乡镇 township",
    "compliance_rate": "合规率 compliance", "eight_share": "“8”类齐备率 8+X share",
    "n_projects": "项目数 projects", "n_fail": "不符合 fail",
}


def _section_counties(counties: pd.DataFrame | None, stats: pd.DataFrame | None,
                      cap: _Cap) -> str:
    """Render the county roll-up (整县推进) and the townships ranked in each county."""
    if counties is None or len(counties) == 0:
        return ""
    table = pd.DataFrame(counties.drop(columns=_geom_cols(counties)))
    digits = {c: 0 for c in ("n_townships", "n_projects", "n_pass", "n_review", "n_fail",
                             "n_error")}
    digits.update({"eight_share": 3, "compliance_rate": 3})
    out = ["<h2>县域汇总 County roll-up (整县推进)</h2>",
           '<p class="note">县级代码为乡镇代码前六位（GB/T 2260），或乡镇图层的 county_code。'
           "排名：按合规率（符合项目占比），其次“8”类设施齐备率；低于全县者列出。 Counties are "
           "the first six digits of the township code unless the townships layer maps a "
           "county_code; townships rank by compliance rate, then 8+X share.</p>",
           html_table(table, columns=[c for c in _COUNTY_HEADERS if c in table.columns],
                      headers=_COUNTY_HEADERS, numeric_digits=digits)]
    if stats is not None and "county_rank" in stats.columns:
        ranks = pd.DataFrame(stats.drop(columns=_geom_cols(stats))).sort_values(
            ["county_code", "county_rank", "township_code"], kind="stable")
        ranks, note = _capped(ranks, cap, "township_stats", "by county and rank 按县内排名")
        out += ["<h3>县内乡镇排名 Townships ranked in their county</h3>", note,
                html_table(ranks, columns=[c for c in _RANK_HEADERS if c in ranks.columns],
                           headers=_RANK_HEADERS,
                           numeric_digits={**digits, "county_rank": 0})]
    return "\n".join(p for p in out if p)


def _map_href(map_path: str | os.PathLike) -> str:
    text = os.fspath(map_path)
    parsed = urllib.parse.urlsplit(text)
    if parsed.scheme and len(parsed.scheme) > 1:  # "http:", "javascript:", ... (not "C:")
        raise OutputError("the map must be a local file next to the report", path=text,
                          hint="pass a relative path such as 'map.html'")
    path = Path(text)
    if path.is_absolute():
        path = Path(path.name)
    return urllib.parse.quote(str(PurePosixPath(*path.parts)))


def _section_map(map_path: str | os.PathLike | None) -> str:
    if map_path is None:
        return ""
    href = escape(_map_href(map_path))
    return (
        "<h2>地图 Map</h2>"
        f'<p><a href="{href}">打开交互地图 Open the interactive map ({href})</a> '
        '<span class="note">(basemap tiles need the network; overlays do not)</span></p>'
        f'<iframe class="map" src="{href}" title="map" loading="lazy"></iframe>'
    )
