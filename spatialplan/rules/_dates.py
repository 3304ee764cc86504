"""Date-based siting rules: ``map_first`` (先落图) and ``schedule`` (dates agree with status).

Both work on the canonical attribute frame of the project register (no geometry) and return,
per project row, ``(status, measure, unit, message)`` arrays. Messages are Chinese + English.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["STATUSES", "bilingual", "map_first", "schedule_dates"]

#: Valid values of the register's ``status`` field.
STATUSES = ("planned", "under_construction", "completed")


def bilingual(zh: str, en: str) -> str:
    """Join a Chinese and an English message: ``"中文 / English"``."""
    return f"{zh} / {en}"


def _d(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")


def _ns(values: pd.Series | np.ndarray) -> np.ndarray:
    """Dates as int64 nanoseconds, :data:`_NAT` where missing."""
    dates = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[ns]")
    return dates.view(np.int64)


#: int64 view of NaT
_NAT = np.iinfo(np.int64).min
_DAY_NS = 86_400 * 10**9


def _days(ns: np.ndarray) -> np.ndarray:
    """``YYYY-MM-DD`` of each date (formatted once per distinct date; ``None`` where missing)."""
    out = np.full(len(ns), None, dtype=object)
    have = ns != _NAT
    distinct, where = np.unique(ns[have], return_inverse=True)
    text = pd.DatetimeIndex(distinct.view("datetime64[ns]")).strftime("%Y-%m-%d")
    out[have] = np.asarray(text, dtype=object)[where]
    return out


def _is_in(status: np.ndarray, values: tuple[str, ...]) -> np.ndarray:
    """Whether each status is a string among ``values`` (NaN, None or NA are not)."""
    return np.array([isinstance(s, str) and s in values for s in status], dtype=bool)


def _earliest(*dates: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Per row, the earliest of the ``(ns, use)`` dates it uses (:data:`_NAT` when none)."""
    big = np.iinfo(np.int64).max
    first = np.full(len(dates[0][0]), big, dtype=np.int64)
    for ns, use in dates:
        first = np.minimum(first, np.where(use, ns, big))
    return np.where(first == big, _NAT, first)


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
    n = len(attrs)
    mapped, permit, start = (_ns(attrs[c]) for c in ("mapped_on", "permit_on", "start_on"))
    has_m, has_p, has_s = mapped != _NAT, permit != _NAT, start != _NAT
    built = _is_in(attrs["status"].to_numpy(dtype=object), ("under_construction", "completed"))
    day_m, day_p, day_s = _days(mapped), _days(permit), _days(start)
    status = np.full(n, "pass", dtype=object)
    measure = np.full(n, np.nan)
    message = np.full(n, "", dtype=object)

    rows = np.flatnonzero(~has_m & built)
    status[rows] = "fail"
    message[rows] = bilingual("未落图即开工建设（先落图、后落地）",
                              "built without being on the layout map (map first, then build)")
    rows = np.flatnonzero(~has_m & ~built & (has_p | has_s))
    first = _days(_earliest((start, has_s), (permit, has_p)))
    status[rows] = "fail"
    message[rows] = [bilingual(f"未落图即办理许可或开工（{first[i]}）",
                               f"permitted or started on {first[i]} without being on the "
                               "layout map") for i in rows]
    rows = np.flatnonzero(~has_m & ~built & ~has_p & ~has_s)
    status[rows] = "review"
    message[rows] = bilingual("尚未落图（缺少落图日期）",
                              "not yet on the layout map (no mapped_on date)")

    late_p, late_s = has_m & has_p & (mapped > permit), has_m & has_s & (mapped > start)
    late = late_p | late_s
    rows = np.flatnonzero(late)
    status[rows] = "fail"
    measure[rows] = (mapped[rows] - _earliest((permit, late_p), (start, late_s))[rows]) // _DAY_NS
    message[rows] = [_late_message(day_m[i], day_p[i] if late_p[i] else None,
                                   day_s[i] if late_s[i] else None) for i in rows]
    rows = np.flatnonzero(has_m & ~late & (mapped > pd.Timestamp(as_of).value))
    status[rows] = "review"
    message[rows] = [bilingual(f"落图日期 {day_m[i]} 晚于核查日 {_d(as_of)}",
                               f"mapped_on {day_m[i]} is after the as-of date {_d(as_of)}")
                     for i in rows]
    rows = np.flatnonzero(has_m & (status == "pass"))
    lead = _earliest((permit, has_p), (start, has_s))
    with_lead = rows[lead[rows] != _NAT]
    measure[with_lead] = (lead[with_lead] - mapped[with_lead]) // _DAY_NS
    message[rows] = [bilingual(f"已于 {day_m[i]} 落图", f"on the layout map since {day_m[i]}")
                     for i in rows]
    measure = np.where(status == "fail", -np.abs(measure), measure)
    return status, measure, np.full(n, "d", dtype=object), message


def _late_message(mapped: str, permit: str | None, start: str | None) -> str:
    late = []
    if permit is not None:
        late.append(("规划许可", "the planning permit", permit))
    if start is not None:
        late.append(("开工", "the start of construction", start))
    zh = "、".join(f"{z}（{d}）" for z, _e, d in late)
    en = " and ".join(f"{e} ({d})" for _z, e, d in late)
    return bilingual(f"落图日期 {mapped} 晚于{zh}", f"mapped on {mapped}, after {en}")


def _status_issues(status: np.ndarray, dates: dict[str, np.ndarray], as_of: int,
                   add) -> None:
    """Issues of the status against the dates (``add(mask, messages)`` records them)."""
    permit, start, finish = dates["permit_on"], dates["start_on"], dates["finish_on"]
    day_s, day_f = _days(start), _days(finish)
    text = np.array([isinstance(s, str) and bool(s) for s in status], dtype=bool)
    known = _is_in(status, STATUSES)
    add(~text, bilingual("缺少建设状态", "status missing"))
    add(text & ~known, [bilingual(f"建设状态“{s}”无法识别", f"unknown status {s!r}")
                        for s in status[text & ~known]])
    doing = _is_in(status, ("under_construction",))
    add(doing & (permit == _NAT),
        bilingual("在建项目缺少规划许可日期", "under construction without permit_on"))
    add(doing & (start == _NAT),
        bilingual("在建项目缺少开工日期", "under construction without start_on"))
    late = doing & (start != _NAT) & (start > as_of)
    add(late, [bilingual(f"在建项目开工日期 {d} 晚于核查日",
                         f"under construction but start_on {d} is after the as-of date")
               for d in day_s[late]])
    done = _is_in(status, ("completed",))
    add(done & (finish == _NAT), bilingual("已建成项目缺少竣工日期", "completed without finish_on"))
    late = done & (finish != _NAT) & (finish > as_of)
    add(late, [bilingual(f"已建成项目竣工日期 {d} 晚于核查日",
                         f"completed but finish_on {d} is after the as-of date")
               for d in day_f[late]])
    started = _is_in(status, ("planned",)) & (start != _NAT) & (start <= as_of)
    add(started, [bilingual(f"状态为规划但开工日期 {d} 已过",
                            f"status planned but start_on {d} has passed")
                  for d in day_s[started]])


def _year_issues(attrs: pd.DataFrame, plan_period: tuple[int, int], add) -> None:
    """Issues of the start and end years (missing, reversed, outside the plan period)."""
    start_p, end_p = plan_period
    y0, y1 = (attrs[c].astype(object).to_numpy() for c in ("start_year", "end_year"))
    f0, f1 = (np.array([np.nan if pd.isna(v) else float(v) for v in y], dtype=float)
              for y in (y0, y1))
    missing = np.isnan(f0) | np.isnan(f1)
    add(missing, bilingual("缺少建设年限（起止年份）", "start_year or end_year missing"))
    reversed_ = ~missing & (f0 > f1)
    add(reversed_, [bilingual(f"起始年 {a} 晚于结束年 {b}", f"start_year {a} > end_year {b}")
                    for a, b in zip(y0[reversed_], y1[reversed_], strict=True)])
    for name, y, f in (("start_year", y0, f0), ("end_year", y1, f1)):
        out = ~np.isnan(f) & ~((start_p <= f) & (f <= end_p))
        add(out, [bilingual(f"{name} {v} 超出规划期 {start_p}–{end_p}",  # noqa: RUF001 - en dash: range sign in the finding
                            f"{name} {v} outside the plan period {start_p}–{end_p}")  # noqa: RUF001 - en dash: range sign in the finding
                  for v in y[out]])


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
    n = len(attrs)
    found: list[list[str]] = [[] for _ in range(n)]

    def add(mask: np.ndarray, messages: str | list[str]) -> None:
        rows = np.flatnonzero(mask)
        for k, i in enumerate(rows):
            found[i].append(messages if isinstance(messages, str) else messages[k])

    dates = {c: _ns(attrs[c]) for c in ("permit_on", "start_on", "finish_on")}
    _status_issues(attrs["status"].to_numpy(dtype=object), dates, pd.Timestamp(as_of).value, add)
    start, finish = dates["start_on"], dates["finish_on"]
    add((start != _NAT) & (finish != _NAT) & (finish < start),
        bilingual("竣工日期早于开工日期", "finish_on is before start_on"))
    _year_issues(attrs, plan_period, add)
    status = np.array(["review" if f else "pass" for f in found], dtype=object)
    measure = np.array([float(len(f)) for f in found])
    unit = np.full(n, "issues", dtype=object)
    ok = bilingual("日期、年限与建设状态一致", "dates, years and status agree")
    message = np.array(["；".join(f) if f else ok for f in found], dtype=object)
    return status, measure, unit, message
