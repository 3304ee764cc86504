"""Running a plug-in siting rule (helper of :mod:`spatialplan.rules.siting`).

:func:`run_plugin` calls a rule declared with :func:`spatialplan.siting_rule` on the accepted
sites and its declared layers, checks what it returns and turns it into the per-row arrays of
the built-in rules (:class:`spatialplan.rules._sites.Out`). Nothing a plug-in does can crash the
check: an exception, a missing layer or a malformed result becomes ``error`` findings naming the
plug-in and the reason, for the sites it concerns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from spatialplan.rules._dates import bilingual
from spatialplan.rules._registry import SitingRule, escape_text
from spatialplan.rules._sites import Out, text_values

__all__ = ["PLUGIN_STATUSES", "RESULT_COLUMNS", "run_plugin"]

log = logging.getLogger(__name__)

#: statuses a plug-in may return
PLUGIN_STATUSES = frozenset({"pass", "review", "fail", "error", "not_applicable"})
#: columns a plug-in's result must have
RESULT_COLUMNS = ("project_id", "status", "measure", "unit", "message")
#: columns of the sites handed to a plug-in, before ``geometry``
_SITE_COLUMNS = ("project_id", "feature_id", "name", "township_code", "facility", "group",
                 "status", "construction_type", "mapped_on", "permit_on", "start_on",
                 "finish_on", "investment_wan", "start_year", "end_year")


def _label(rule: SitingRule) -> str:
    where = f" ({rule.module})" if rule.module else ""
    return f"{rule.id}{where}"


def _error(rule: SitingRule, zh: str, en: str) -> str:
    return bilingual(f"插件规则 {_label(rule)} {zh}", f"plug-in rule {_label(rule)} {en}")


def _sites(ctx, rows: np.ndarray) -> gpd.GeoDataFrame:
    """Return the sites of ``rows`` as the plug-in sees them (resolved facility codes)."""
    attrs = ctx.attrs.iloc[rows].reset_index(drop=True).copy()
    codes = ctx.codes[rows]
    attrs["facility"] = np.where(pd.isna(codes), attrs["facility_given"].to_numpy(), codes)
    attrs["group"] = ctx.group[rows]
    crs = getattr(ctx, "crs", None)
    return gpd.GeoDataFrame(attrs[list(_SITE_COLUMNS)],
                            geometry=gpd.GeoSeries(ctx.geoms[rows], crs=crs))


def _params(ctx, rule: SitingRule) -> dict[str, Any]:
    table = ctx.rules.get(rule.id) or {}
    return {name: table.get(name, default) for name, default in rule.params.items()}


def run_plugin(ctx, rule: SitingRule, layers: Mapping[str, Any]) -> Out:
    """One plug-in rule's findings for the eligible rows of ``ctx`` (``ctx.eligible_now``).

    Rows the rule does not evaluate keep ``status`` None (the caller names why: no usable
    site, or the rule is disabled).
    """
    out = Out(ctx.n)
    rows = np.flatnonzero(ctx.eligible_now)
    if len(rows) == 0:
        return out
    missing = [role for role in rule.layers if layers.get(role) is None]
    if missing:
        names = ", ".join(missing)
        out.put(rows, "error", _error(rule, f"需要图层 {names}，规划未提供",
                                      f"needs the layer {names}, which the plan does not give "
                                      f"(add [layers.{missing[0]}] to the plan file)"))
        return out
    sites = _sites(ctx, rows)
    # shallow copies: a plug-in adding a column does not change the plan's layers
    given = {role: layers[role].copy(deep=False) for role in rule.layers}
    try:
        result = rule.function(sites, given, **_params(ctx, rule))
    except Exception as exc:
        log.warning("plug-in rule %s raised %s: %s", _label(rule), type(exc).__name__, exc)
        why = f"{type(exc).__name__}: {escape_text(str(exc))}"
        out.put(rows, "error", _error(rule, f"运行出错：{why}", f"failed: {why}"))
        return out
    problem = _frame_problem(result)
    if problem is not None:
        log.warning("plug-in rule %s: %s", _label(rule), problem)
        out.put(rows, "error", _error(rule, f"返回结果无效：{problem}",
                                      f"returned an invalid result: {problem}"))
        return out
    _fill(out, rule, rows, sites["project_id"].to_numpy(dtype=object), result)
    return out


def _frame_problem(result: object) -> str | None:
    """Why a plug-in's return value cannot be read as findings (None when it can)."""
    if not isinstance(result, pd.DataFrame):
        return f"a {type(result).__name__}, not a DataFrame"
    lacking = [c for c in RESULT_COLUMNS if c not in result.columns]
    if lacking:
        return "no column " + ", ".join(lacking)
    return None


def _fill(out: Out, rule: SitingRule, rows: np.ndarray, site_ids: np.ndarray,
          result: pd.DataFrame) -> None:
    """Put the plug-in's rows into ``out``; wrong rows become ``error`` for their sites."""
    ids = text_values(result["project_id"])
    known = set(text_values(site_ids).tolist())
    unknown = sorted({str(i) for i in ids if i not in known})
    if unknown:  # findings for sites it was not given: the result cannot be trusted
        shown = ", ".join(escape_text(u, limit=40) for u in unknown[:3])
        out.put(rows, "error", _error(rule, f"返回了未知项目的结果：{shown}",
                                      f"returned findings for unknown project ids: {shown}"))
        return
    counts = pd.Series(ids, dtype=object).value_counts()
    by_id: dict[str, int] = {}
    for k, pid in enumerate(ids):
        by_id.setdefault(pid, k)
    status = result["status"].to_numpy(dtype=object)
    measure = pd.to_numeric(result["measure"], errors="coerce").to_numpy(dtype=float)
    bad_measure = ~pd.isna(result["measure"]).to_numpy() & np.isnan(measure)
    unit = result["unit"].to_numpy(dtype=object)
    message = result["message"].to_numpy(dtype=object)
    for row, pid in zip(rows, text_values(site_ids), strict=True):
        k = by_id.get(pid)
        if k is None:
            out.set(row, "error", _error(rule, "未返回该项目的结果",
                                         "returned no finding for this project"))
        elif counts[pid] > 1:
            out.set(row, "error", _error(rule, f"对该项目返回了 {counts[pid]} 条结果",
                                         f"returned {counts[pid]} findings for this project"))
        elif not isinstance(status[k], str) or status[k] not in PLUGIN_STATUSES:
            shown = escape_text(repr(status[k]), limit=40)
            out.set(row, "error", _error(
                rule, f"返回了无效状态 {shown}",
                f"returned the status {shown}, not one of {', '.join(sorted(PLUGIN_STATUSES))}"))
        elif bad_measure[k]:
            shown = escape_text(repr(result["measure"].iloc[k]), limit=40)
            out.set(row, "error", _error(rule, f"返回的度量值 {shown} 不是数字",
                                         f"returned the measure {shown}, not a number"))
        else:
            text = "" if _missing(message[k]) else escape_text(str(message[k]), limit=2000)
            out.set(row, status[k], text, float(measure[k]),
                    "" if _missing(unit[k]) else escape_text(str(unit[k]), limit=40))


def _missing(value: object) -> bool:
    if value is None:
        return True
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))
