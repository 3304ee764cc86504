"""Township indicators and the county roll-up for 整县推进 assessment.

:func:`township_indicators` counts each township's projects by verdict, sums their investment
(all, and by construction status) and gives the share of the "8" facility types present and
the compliance rate. :func:`county_summary` adds them up per county (the first six digits of
the township code, GB/T 2260, or the townships' own ``county_code``), ranks the townships
inside their county and names the towns behind the county on each indicator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "BEHIND_INDICATORS",
    "COUNTY_COLUMNS",
    "INDICATOR_COLUMNS",
    "STATUS_BUCKETS",
    "VERDICTS",
    "county_codes",
    "county_summary",
    "rank_in_county",
    "township_indicators",
]

VERDICTS = ("pass", "review", "fail", "error")
#: construction statuses with an investment total of their own (anything else: ``other``)
STATUS_BUCKETS = ("planned", "under_construction", "completed")
#: the columns :func:`township_indicators` adds to ``township_stats``
INDICATOR_COLUMNS = (
    *(f"n_{v}" for v in VERDICTS), "investment_wan",
    *(f"investment_{s}_wan" for s in STATUS_BUCKETS), "investment_other_wan",
    "eight_share", "compliance_rate",
)
#: indicators on which a township can be behind its county (higher is better for each)
BEHIND_INDICATORS = ("compliance_rate", "eight_share")
#: the columns of :func:`county_summary`
COUNTY_COLUMNS = (
    "county_code", "n_townships", "n_projects", *(f"n_{v}" for v in VERDICTS),
    "investment_wan", *(f"investment_{s}_wan" for s in STATUS_BUCKETS), "investment_other_wan",
    "eight_share", "compliance_rate", *(f"behind_{i}" for i in BEHIND_INDICATORS),
)
_SUMMED = ("n_projects", *(f"n_{v}" for v in VERDICTS), "investment_wan",
           *(f"investment_{s}_wan" for s in STATUS_BUCKETS), "investment_other_wan")


def township_indicators(projects: pd.DataFrame, codes: Sequence[str], *,
                        eight_present: pd.Series | None = None,
                        n_eight: int = 8) -> pd.DataFrame:
    """Count, sum and rate each township's projects.

    Parameters
    ----------
    projects
        The ``projects`` result (``township_code``, or ``township_found`` where none was
        declared; ``verdict``; optional ``investment_wan`` and ``status``).
    codes
        The township codes, in the order of the result.
    eight_present
        Per township code, the ";"-joined "8" facility types present (``township_stats``'s
        ``eight_present``); default: none present.
    n_eight
        How many "8" facility types the catalogue has (the denominator of ``eight_share``).

    Returns
    -------
    pandas.DataFrame
        ``township_code`` and :data:`INDICATOR_COLUMNS`: ``n_pass`` ... ``n_error``;
        ``investment_wan`` (万元, all projects; missing investments count 0) and by status
        (``planned``, ``under_construction``, ``completed``, ``other`` for a missing one);
        ``eight_share`` (types present / ``n_eight``); ``compliance_rate`` (projects that pass
        / projects; empty for a township without projects).

    Examples
    --------
    >>> p = pd.DataFrame({"township_code": ["T1", "T1"], "verdict": ["pass", "fail"],
    ...                   "investment_wan": [10.0, 5.0], "status": ["planned", "completed"]})
    >>> row = township_indicators(p, ["T1"]).iloc[0]
    >>> int(row["n_pass"]), float(row["investment_completed_wan"]), float(row["compliance_rate"])
    (1, 5.0, 0.5)
    """
    code = _project_townships(projects)
    index = pd.Index([str(c) for c in codes], name="township_code")
    verdict = projects["verdict"].astype(object)
    out = pd.DataFrame(index=index)
    for v in VERDICTS:
        out[f"n_{v}"] = (verdict == v).groupby(code).sum().reindex(index, fill_value=0)
    money = (pd.to_numeric(projects["investment_wan"], errors="coerce").fillna(0.0)
             if "investment_wan" in projects.columns else pd.Series(0.0, index=projects.index))
    status = (projects["status"].astype(object) if "status" in projects.columns
              else pd.Series(None, index=projects.index, dtype=object))
    out["investment_wan"] = money.groupby(code).sum().reindex(index, fill_value=0.0)
    for s in STATUS_BUCKETS:
        out[f"investment_{s}_wan"] = money.where(status == s, 0.0).groupby(code).sum().reindex(
            index, fill_value=0.0)
    other = ~status.isin(STATUS_BUCKETS)
    out["investment_other_wan"] = money.where(other, 0.0).groupby(code).sum().reindex(
        index, fill_value=0.0)
    present = (pd.Series(eight_present, dtype=object) if eight_present is not None
               else pd.Series(dtype=object))
    present.index = present.index.astype(str)
    n_present = present.reindex(index).fillna("").map(
        lambda t: len([c for c in str(t).split(";") if c]))
    out["eight_share"] = n_present / n_eight if n_eight else np.nan
    n_total = verdict.groupby(code).size().reindex(index, fill_value=0)
    out["compliance_rate"] = (out["n_pass"] / n_total.where(n_total > 0)).astype(float)
    for column in (f"n_{v}" for v in VERDICTS):
        out[column] = out[column].astype("int64")
    return out.reset_index()


def _project_townships(projects: pd.DataFrame) -> pd.Series:
    """Each project's township: the declared code, else the one its site was found in."""
    code = projects["township_code"].astype(object)
    if "township_found" in projects.columns:
        code = code.where(code.notna() & (code.astype(str) != ""), projects["township_found"])
    return code.astype(str)


def county_codes(township_codes: pd.Series, *, explicit: pd.Series | None = None) -> pd.Series:
    """Return each township's county: its own ``county_code``, else the first six digits.

    A township code that does not start with six digits (GB/T 2260) and has no explicit county
    gets an empty county, logged with the codes concerned.

    Examples
    --------
    >>> county_codes(pd.Series(["520111001", "52x"])).tolist()
    ['520111', '']
    """
    codes = township_codes.astype(str)
    county = codes.str.slice(0, 6).where(codes.str.match(r"^\d{6}"), "")
    if explicit is not None:
        given = explicit.astype(object).where(explicit.notna(), "").astype(str).str.strip()
        county = given.where(given != "", county)
    if (county == "").any():
        log.warning("%d townships have no county (their code does not start with the six "
                    "digits of a GB/T 2260 county, and the townships layer maps no county_code):"
                    " %s", int((county == "").sum()), ", ".join(codes[county == ""][:10]))
    return county


def rank_in_county(stats: pd.DataFrame) -> pd.Series:
    """Rank each township inside its county: by compliance rate, then 8+X share (1 = best).

    Townships without projects (no compliance rate) rank after those with; ties share a rank
    (``min`` method).
    """
    key = (stats["compliance_rate"].fillna(-1.0) * 1e3 + stats["eight_share"].fillna(0.0))
    return key.groupby(stats["county_code"]).rank(ascending=False, method="min").astype("int64")


def county_summary(stats: pd.DataFrame, *, lines: Sequence[str] = ()) -> pd.DataFrame:
    """Add up the township indicators per county.

    Parameters
    ----------
    stats
        ``township_stats`` with ``county_code``, ``township_code``, ``township_name``,
        ``n_projects`` and :data:`INDICATOR_COLUMNS`.
    lines
        Control lines whose areas are summed as well (``<line>_m2`` and, when present,
        ``<line>_ellipsoidal_m2``, with the township areas ``area_m2`` and
        ``area_ellipsoidal_m2``); ``<line>_share`` is the county's summed line area over its
        summed township area, ellipsoidal when both are present.

    Returns
    -------
    pandas.DataFrame
        One row per county: :data:`COUNTY_COLUMNS` (counts and investments summed;
        ``eight_share`` the mean over the county's townships; ``compliance_rate`` the county's
        passing projects over its projects; ``behind_<indicator>``: the townships below the
        county's figure, as ``code name`` joined by ";", worst first), then the summed areas
        and their shares.
    """
    group = stats.groupby("county_code", sort=True)
    out = pd.DataFrame({"n_townships": group.size()})
    for column in _SUMMED:
        out[column] = group[column].sum() if column in stats.columns else 0
    out["eight_share"] = group["eight_share"].mean()
    out["compliance_rate"] = (out["n_pass"] / out["n_projects"].where(out["n_projects"] > 0))
    for indicator in BEHIND_INDICATORS:
        out[f"behind_{indicator}"] = _behind(stats, out[indicator], indicator)
    _add_areas(out, group, stats, lines)
    return out.reset_index()[[*COUNTY_COLUMNS, *[c for c in out.columns
                                                  if c not in COUNTY_COLUMNS]]]


def _behind(stats: pd.DataFrame, county_value: pd.Series, indicator: str) -> pd.Series:
    """Name the townships whose ``indicator`` is below their county's, worst first."""
    figure = stats["county_code"].map(county_value)
    below = stats[stats[indicator] < figure].sort_values(indicator, kind="stable")
    names = below["township_code"].astype(str) + " " + below["township_name"].astype(str)
    return names.groupby(below["county_code"]).agg(";".join).reindex(county_value.index,
                                                                     fill_value="")


def _add_areas(out: pd.DataFrame, group, stats: pd.DataFrame, lines: Sequence[str]) -> None:
    """Sum the township and line areas per county; a line's share from the sums."""
    for column in ("area_m2", "area_ellipsoidal_m2"):
        if column in stats.columns:
            out[column] = group[column].sum()
    for line in lines:
        for column in (f"{line}_m2", f"{line}_ellipsoidal_m2"):
            if column in stats.columns:
                out[column] = group[column].sum()
        ellipsoidal = f"{line}_ellipsoidal_m2" in out.columns and "area_ellipsoidal_m2" in out
        num, den = ((f"{line}_ellipsoidal_m2", "area_ellipsoidal_m2") if ellipsoidal
                    else (f"{line}_m2", "area_m2"))
        if num in out.columns and den in out.columns:
            out[f"{line}_share"] = out[num] / out[den].where(out[den] > 0)
