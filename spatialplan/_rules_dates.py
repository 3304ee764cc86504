"""Date-based siting rules: ``map_first`` (先落图) and ``schedule`` (dates agree with status).

Both work on the canonical attribute frame of the project register (no geometry) and return,
per project row, ``(status, measure, unit, message)`` arrays. Messages are Chinese + English.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["STATUSES", "map_first", "schedule_dates", "bilingual"]

#: Valid values of the register's ``status`` field.
STATUSES = ("planned", "under_construction", "completed")


def bilingual(zh: str, en: str) -> str:
    """Join a Chinese and an English message: ``"中文 / English"``."""
    return f"{zh} / {en}"


def _d(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")


def _map_first_one(
    status: object,
    mapped: pd.Timestamp,
    permit: pd.Timestamp,
    start: pd.Timestamp,
    as_of: pd.Timestamp,
) -> tuple[str, float, str]:
    built = isinstance(status, str) and status in ("under_construction", "completed")
    if pd.isna(mapped):
        if built:
            return (
                "fail",
                np.nan,
                bilingual(
                    "未落图即开工建设（先落图、后落地）",
                    "built without being on the layout map (map first, then build)",
                ),
            )
        if not pd.isna(start) or not pd.isna(permit):
            first = min(d for d in (start, permit) if not pd.isna(d))
            return (
                "fail",
                np.nan,
                bilingual(
                    f"未落图即办理许可或开工（{_d(first)}）",
                    f"permitted or started on {_d(first)} without being on the layout map",
                ),
            )
        return (
            "review",
            np.nan,
            bilingual("尚未落图（缺少落图日期）", "not yet on the layout map (no mapped_on date)"),
        )
    late = []
    if not pd.isna(permit) and mapped > permit:
        late.append(("规划许可", "the planning permit", permit))
    if not pd.isna(start) and mapped > start:
        late.append(("开工", "the start of construction", start))
    if late:
        zh = "、".join(f"{z}（{_d(d)}）" for z, _e, d in late)
        en = " and ".join(f"{e} ({_d(d)})" for _z, e, d in late)
        return (
            "fail",
            float((mapped - min(d for _z, _e, d in late)).days),
            bilingual(f"落图日期 {_d(mapped)} 晚于{zh}", f"mapped on {_d(mapped)}, after {en}"),
        )
    if mapped > as_of:
        return (
            "review",
            np.nan,
            bilingual(
                f"落图日期 {_d(mapped)} 晚于核查日 {_d(as_of)}",
                f"mapped_on {_d(mapped)} is after the as-of date {_d(as_of)}",
            ),
        )
    firsts = [d for d in (permit, start) if not pd.isna(d)]
    lead = float((min(firsts) - mapped).days) if firsts else np.nan
    return (
        "pass",
        lead,
        bilingual(f"已于 {_d(mapped)} 落图", f"on the layout map since {_d(mapped)}"),
    )


def map_first(attrs: pd.DataFrame, *, as_of: pd.Timestamp) -> tuple[np.ndarray, ...]:
    """Evaluate 先落图: ``mapped_on`` present and not after ``permit_on`` or ``start_on``.

    Returns ``(status, measure, unit, message)`` arrays; the measure is the lead time in days
    from mapping to the first of permit/start (negative: how late the mapping was).

    Examples
    --------
    >>> import pandas as pd
    >>> attrs = pd.DataFrame({"status": ["completed"], "mapped_on": [pd.NaT],
    ...                       "permit_on": [pd.NaT], "start_on": [pd.Timestamp("2022-01-01")]})
    >>> map_first(attrs, as_of=pd.Timestamp("2024-01-01"))[0].tolist()
    ['fail']
    """
    rows = [
        _map_first_one(s, m, p, st, as_of)
        for s, m, p, st in zip(
            attrs["status"], attrs["mapped_on"], attrs["permit_on"], attrs["start_on"],
            strict=True,
        )
    ]
    status = np.array([r[0] for r in rows], dtype=object)
    measure = np.array([r[1] for r in rows], dtype=float)
    measure = np.where(status == "fail", -np.abs(measure), measure)
    unit = np.full(len(rows), "d", dtype=object)
    message = np.array([r[2] for r in rows], dtype=object)
    return status, measure, unit, message


def _schedule_one(row: tuple, as_of: pd.Timestamp, start_p: int, end_p: int) -> list[str]:
    status, permit, start, finish, y0, y1 = row
    issues = []
    if not isinstance(status, str) or not status:
        issues.append(bilingual("缺少建设状态", "status missing"))
    elif status not in STATUSES:
        issues.append(
            bilingual(f"建设状态“{status}”无法识别", f"unknown status {status!r}")
        )
    elif status == "under_construction":
        if pd.isna(permit):
            issues.append(
                bilingual("在建项目缺少规划许可日期", "under construction without permit_on")
            )
        if pd.isna(start):
            issues.append(bilingual("在建项目缺少开工日期", "under construction without start_on"))
        elif start > as_of:
            issues.append(
                bilingual(
                    f"在建项目开工日期 {_d(start)} 晚于核查日",
                    f"under construction but start_on {_d(start)} is after the as-of date",
                )
            )
    elif status == "completed":
        if pd.isna(finish):
            issues.append(bilingual("已建成项目缺少竣工日期", "completed without finish_on"))
        elif finish > as_of:
            issues.append(
                bilingual(
                    f"已建成项目竣工日期 {_d(finish)} 晚于核查日",
                    f"completed but finish_on {_d(finish)} is after the as-of date",
                )
            )
    elif status == "planned" and not pd.isna(start) and start <= as_of:
        issues.append(
            bilingual(
                f"状态为规划但开工日期 {_d(start)} 已过",
                f"status planned but start_on {_d(start)} has passed",
            )
        )
    if not pd.isna(start) and not pd.isna(finish) and finish < start:
        issues.append(bilingual("竣工日期早于开工日期", "finish_on is before start_on"))
    if pd.isna(y0) or pd.isna(y1):
        issues.append(bilingual("缺少建设年限（起止年份）", "start_year or end_year missing"))
    elif y0 > y1:
        issues.append(bilingual(f"起始年 {y0} 晚于结束年 {y1}", f"start_year {y0} > end_year {y1}"))
    for name, year in (("start_year", y0), ("end_year", y1)):
        if not pd.isna(year) and not start_p <= year <= end_p:
            issues.append(
                bilingual(
                    f"{name} {year} 超出规划期 {start_p}–{end_p}",
                    f"{name} {year} outside the plan period {start_p}–{end_p}",
                )
            )
    return issues


def schedule_dates(
    attrs: pd.DataFrame, *, as_of: pd.Timestamp, plan_period: tuple[int, int]
) -> tuple[np.ndarray, ...]:
    """Check that dates, years and status agree; any disagreement → ``review``.

    Examples
    --------
    >>> import pandas as pd
    >>> attrs = pd.DataFrame({"status": ["planned"], "permit_on": [pd.NaT], "start_on": [pd.NaT],
    ...                       "finish_on": [pd.NaT], "start_year": pd.array([2030], "Int64"),
    ...                       "end_year": pd.array([2026], "Int64")})
    >>> schedule_dates(attrs, as_of=pd.Timestamp("2024-01-01"), plan_period=(2021, 2035))[0]
    array(['review'], dtype=object)
    """
    start_p, end_p = plan_period
    cols = ["status", "permit_on", "start_on", "finish_on", "start_year", "end_year"]
    rows = attrs[cols].astype(object).itertuples(index=False, name=None)
    found = [_schedule_one(r, as_of, start_p, end_p) for r in rows]
    status = np.array(["review" if f else "pass" for f in found], dtype=object)
    measure = np.array([float(len(f)) for f in found])
    unit = np.full(len(found), "issues", dtype=object)
    ok = bilingual("日期、年限与建设状态一致", "dates, years and status agree")
    message = np.array(["；".join(f) if f else ok for f in found], dtype=object)
    return status, measure, unit, message
