"""The construction sequence table (建设项目时序表) of the 8+X register.

:func:`sequence_table` turns the ``projects`` result of
:func:`spatialplan.rules.siting.check_projects` into the table planners hand in: one row per
project, grouped by township and start year, with Chinese headers, a subtotal row after each
township-year and each township, then a closing block of per-year totals, per-township totals
over all years and a grand total. Total rows have an empty ``序号``. ``建设性质`` comes from the
register's ``construction_type`` (新建/改扩建/续建…), ``建设状态`` from its ``status``
(拟建/在建/已建成). Writing it is the write side's job: :mod:`spatialplan.render.schedule`
(``write_schedule_xlsx``, ``write_schedule_csv``; their old names here still resolve, with a
DeprecationWarning, for one release).

Examples
--------
>>> import pandas as pd
>>> res = pd.DataFrame({"project_id": ["P1"], "name": ["镇卫生院"], "township_code": ["T1"],
...                     "facility": ["health_center"], "group": ["8"], "status": ["planned"],
...                     "verdict": ["pass"], "investment_wan": [800.0], "area_mu": [3.0],
...                     "start_year": [2025], "end_year": [2026]})
>>> table = sequence_table(res)
>>> table["项目名称"].tolist()  # doctest: +NORMALIZE_WHITESPACE
['镇卫生院', 'T1 2025年 小计（1项）', 'T1 小计（1项）', '2025年 合计（1项）',
 'T1 各年合计（1项）', '总计（1项）']
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from spatialplan import _compat
from spatialplan.io._fields import CONSTRUCTION_TYPES
from spatialplan.rules._sites import text_value

__all__ = [
    "CONSTRUCTION_TYPES",
    "NUMBER_DECIMALS",
    "SCHEDULE_COLUMNS",
    "STATUS_ZH",
    "VERDICT_ZH",
    "sequence_table",
]

logger = logging.getLogger(__name__)

#: Columns of the 时序表, in order.
SCHEDULE_COLUMNS = (
    "序号", "乡镇", "项目编号", "项目名称", "类别", "建设性质", "建设状态", "用地面积(亩)",
    "总投资(万元)", "建设年限", "前期手续", "合规性结论", "主要问题",
)
#: 建设状态 for each register status (建设性质 comes from ``construction_type``).
STATUS_ZH = {"planned": "拟建", "under_construction": "在建", "completed": "已建成"}
#: 合规性结论 for each verdict.
VERDICT_ZH = {"pass": "符合", "review": "需论证", "fail": "不符合", "error": "无法核查"}
_NO_YEAR = "未定"
#: float columns and their decimals (亩 to 0.0001 as every area in 亩; 万元 to 0.01); the
#: XLSX writer shows them with as many decimals
NUMBER_DECIMALS = {"用地面积(亩)": 4, "总投资(万元)": 2}


def _get(frame: pd.DataFrame, name: str) -> pd.Series:
    """Return a column as an object Series on a fresh index (Arrow-backed ones iterate slowly)."""
    if name in frame.columns:
        return pd.Series(frame[name].to_numpy(dtype=object), dtype=object)
    return pd.Series([None] * len(frame), dtype=object)


def _date(v: object) -> str | None:
    if v is None or pd.isna(v):
        return None
    return pd.Timestamp(v).strftime("%Y-%m-%d")


def _procedures(mapped: object, permit: object) -> str:
    m, p = _date(mapped), _date(permit)
    return "；".join([f"已落图 {m}" if m else "未落图", f"规划许可 {p}" if p else "无规划许可"])


def _year(y: object) -> int | None:
    """``y`` as an int year; None when it is missing."""
    if y is None or pd.isna(y):
        return None
    return int(y)  # type: ignore[call-overload]  # a number read from the register


def _years(y0: object, y1: object) -> str:
    a, b = _year(y0), _year(y1)
    if a is not None and b is not None:
        return f"{a}–{b}"  # noqa: RUF001 - shown in the 建设年限 column of the schedule
    return str(a if a is not None else b) if (a is not None or b is not None) else ""


def _category(code: str | None, group: str | None, name: str | None, catalog) -> str:
    """``"8·学校"``: the group and the facility's Chinese name (or its code)."""
    if name is None and catalog is not None and code in catalog.facilities.index:
        name = str(catalog.facilities.at[code, "name_zh"])
    label = name or code or ""
    return f"{group}·{label}" if group else label


def _problems(row: dict[str, Any]) -> str:
    text = text_value(row.get("reasons_zh"))
    if text is None:
        reasons = text_value(row.get("reasons")) or ""
        text = "；".join(part.split(" / ")[0] for part in reasons.split("; ") if part)
    parts = [] if row.get("verdict") == "pass" or not text else [text]
    kind = row.get("construction_type")
    if kind and kind not in CONSTRUCTION_TYPES:
        parts.append(f"建设性质“{kind}”不是规范用语（{'/'.join(CONSTRUCTION_TYPES)}）")
    return "；".join(parts)


def _project_rows(projects: pd.DataFrame, names: dict[str, str], catalog) -> pd.DataFrame:
    n = len(projects)
    town = [text_value(v) for v in _get(projects, "township_code")]
    found = [text_value(v) for v in _get(projects, "township_found")]
    town = [t if t is not None else f for t, f in zip(town, found, strict=True)]
    facility = _get(projects, "facility")
    name_col = _get(projects, "facility_name")
    group = _get(projects, "group")
    kinds = [text_value(v) for v in _get(projects, "construction_type")]
    records = [{"reasons_zh": z, "reasons": r, "verdict": v, "construction_type": k}
               for z, r, v, k in zip(_get(projects, "reasons_zh"), _get(projects, "reasons"),
                                     _get(projects, "verdict"), kinds, strict=True)]
    start_year = pd.to_numeric(_get(projects, "start_year"), errors="coerce")
    rows = pd.DataFrame({
        "_town": [t if t is not None else "" for t in town],
        "_year": start_year.to_numpy(dtype=float),
        "乡镇": [names.get(t, t) if t else "未定乡镇" for t in town],
        "项目编号": [text_value(v) or "" for v in _get(projects, "project_id")],
        "项目名称": [text_value(v) or "" for v in _get(projects, "name")],
        "类别": [
            _category(text_value(c), text_value(g), text_value(nz), catalog)
            for c, g, nz in zip(facility, group, name_col, strict=True)
        ],
        "建设性质": [k or "" for k in kinds],
        "建设状态": [STATUS_ZH.get(text_value(s) or "", text_value(s) or "")
                 for s in _get(projects, "status")],
        "用地面积(亩)": pd.to_numeric(_get(projects, "area_mu"), errors="coerce").round(4)
        .to_numpy(dtype=float),
        "总投资(万元)": pd.to_numeric(_get(projects, "investment_wan"), errors="coerce")
        .round(2).to_numpy(dtype=float),
        "建设年限": [_years(a, b) for a, b in zip(start_year, pd.to_numeric(
            _get(projects, "end_year"), errors="coerce"), strict=True)],
        "前期手续": [_procedures(m, p) for m, p in zip(
            _get(projects, "mapped_on"), _get(projects, "permit_on"), strict=True)],
        "合规性结论": [VERDICT_ZH.get(text_value(v) or "", "") for v in
                      _get(projects, "verdict")],
        "主要问题": [_problems(r) for r in records] if n else [],
    })
    return rows


def _total(label: str, town_name: str, area: np.ndarray, invest: np.ndarray) -> dict[str, Any]:
    """Return a total row over the project rows whose areas and investments are given."""
    return {
        "序号": "", "乡镇": town_name, "项目编号": "", "项目名称": f"{label}（{len(area)}项）",
        "类别": "", "建设性质": "", "建设状态": "",
        "用地面积(亩)": _nan_sum(area, empty=np.nan, digits=NUMBER_DECIMALS["用地面积(亩)"]),
        "总投资(万元)": _nan_sum(invest, empty=0.0, digits=NUMBER_DECIMALS["总投资(万元)"]),
        "建设年限": "", "前期手续": "", "合规性结论": "", "主要问题": "",
    }


def _nan_sum(values: np.ndarray, *, empty: float, digits: int) -> float:
    """Sum of the non-NaN values rounded to ``digits`` decimals; ``empty`` when all are NaN."""
    missing = np.isnan(values)
    if missing.all():
        return empty
    return round(float(np.where(missing, 0.0, values).sum()), digits)  # as np.nansum adds


def _runs(keys: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal consecutive keys (NaN equals NaN)."""
    n = len(keys)
    if n == 0:
        return []
    missing = pd.isna(keys)
    same = (keys[1:] == keys[:-1]) | (missing[1:] & missing[:-1])
    starts = np.concatenate([[0], np.flatnonzero(~same) + 1])
    stops = np.concatenate([starts[1:], [n]])
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _year_label(year: float) -> str:
    return _NO_YEAR if np.isnan(year) else f"{int(year)}年"


def _township_names(townships: pd.DataFrame | None) -> dict[str, str]:
    """Return the township names by code (the first one of a code), from the township layer."""
    names: dict[str, str] = {}
    if townships is None or not len(townships) or "name" not in townships.columns:
        return names
    code_col = "code" if "code" in townships.columns else "township_code"
    for c, nm in zip(townships[code_col], townships["name"], strict=True):
        c, nm = text_value(c), text_value(nm)
        if c and nm:
            names.setdefault(c, nm)
    return names


def sequence_table(
    projects_result: pd.DataFrame,
    *,
    townships: pd.DataFrame | None = None,
    catalog: Any = None,
) -> pd.DataFrame:
    """Build the 时序表: projects grouped by township and start year, with totals.

    Parameters
    ----------
    projects_result
        The ``projects`` result of :func:`spatialplan.rules.siting.check_projects` (uses
        ``project_id``, ``name``, ``township_code`` / ``township_found``, ``facility``,
        ``facility_name``, ``group``, ``status``, ``construction_type``, ``verdict``,
        ``reasons_zh``, ``area_mu``, ``investment_wan``, ``start_year``, ``end_year``,
        ``mapped_on``, ``permit_on``).
    townships
        Township layer (``code``, ``name``) to print names instead of codes.
    catalog
        Facility catalogue, for the Chinese facility names in ``类别``.

    Returns
    -------
    DataFrame
        Columns :data:`SCHEDULE_COLUMNS`. Project rows have a running ``序号`` (int); total
        rows ("… 小计（n项）" per township-year and per township; then "… 合计" per year,
        "… 各年合计" per township over all years, "总计") have an empty ``序号``. Areas and
        investments of total rows are sums of the project rows. ``建设性质`` is the
        ``construction_type`` (empty when the register has none; a value that is not one of
        :data:`CONSTRUCTION_TYPES` is kept and named in ``主要问题``), ``建设状态`` the
        ``status`` in Chinese (:data:`STATUS_ZH`).

    Examples
    --------
    >>> import pandas as pd
    >>> res = pd.DataFrame({"project_id": ["A", "B"], "name": ["学校", "公园"],
    ...                     "township_code": ["T1", "T1"], "investment_wan": [100.0, 50.0],
    ...                     "start_year": [2025, 2026], "end_year": [2026, 2027]})
    >>> float(sequence_table(res).iloc[-1]["总投资(万元)"])
    150.0
    """
    rows = _project_rows(projects_result, _township_names(townships), catalog)
    rows = rows.sort_values(["_town", "_year", "项目编号"], na_position="last", kind="stable")
    towns = rows["_town"].to_numpy()
    years = rows["_year"].to_numpy(dtype=float)
    town_names = rows["乡镇"].to_numpy()
    area = rows["用地面积(亩)"].to_numpy(dtype=float)
    invest = rows["总投资(万元)"].to_numpy(dtype=float)
    columns = [c for c in rows.columns if c not in ("_town", "_year")]
    records = [dict(zip(columns, values, strict=True)) for values in zip(
        *(rows[c].to_numpy(dtype=object) for c in columns), strict=True)]
    out: list[dict[str, Any]] = []
    serial = 0
    for t0, t1 in _runs(towns):
        town_name = town_names[t0]
        for y0, y1 in _runs(years[t0:t1]):
            y0, y1 = y0 + t0, y1 + t0
            for i in range(y0, y1):
                serial += 1
                out.append({"序号": serial, **records[i]})
            out.append(_total(f"{town_name} {_year_label(years[y0])} 小计", town_name,
                              area[y0:y1], invest[y0:y1]))
        out.append(_total(f"{town_name} 小计", town_name, area[t0:t1], invest[t0:t1]))
    if len(rows):
        order = np.argsort(np.where(np.isnan(years), np.inf, years), kind="stable")
        for y0, y1 in _runs(years[order]):
            sel = order[y0:y1]
            out.append(_total(f"{_year_label(years[sel[0]])} 合计", "", area[sel], invest[sel]))
    for t0, t1 in _runs(towns):
        out.append(_total(f"{town_names[t0]} 各年合计", town_names[t0], area[t0:t1],
                          invest[t0:t1]))
    out.append(_total("总计", "", area, invest))
    table = pd.DataFrame(out, columns=list(SCHEDULE_COLUMNS))
    table["序号"] = table["序号"].astype(object)
    for col in NUMBER_DECIMALS:
        table[col] = table[col].astype(float)
    logger.debug("schedule: %d projects, %d rows", len(rows), len(table))
    return table


def __getattr__(name: str):
    # write_schedule_xlsx / write_schedule_csv moved to the write side (spatialplan.render.schedule)
    return _compat.moved_attribute(__name__, name)
