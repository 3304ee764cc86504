"""The report's village reach section ("1+N" 镇村联动): per township, shares and who is left out.

For each township with villages: a table of the facility types with their limit, the villages
within it (count of all) and the share of ``township_stats`` (population-weighted when the
village layer has a population), then the villages left out: those beyond a limit or not
joined by road to a serving project, and those the roads do not join to their town seat, each
with what they miss. Every value is escaped by :func:`spatialplan.render._html.html_table`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from spatialplan.render._html import escape, format_value, html_table
from spatialplan.render._labels import facility_names

__all__ = ["section_reach"]

_SHARE_HEADERS = {"facility": "设施 facility", "limit_m": "服务距离上限 limit (m)",
                  "limit_min": "服务时间上限 limit (min)",
                  "within": "可达村数 villages within", "share_pct": "可达比例 share (%)"}
_LEFT_HEADERS = {"village_code": "村代码 village", "name": "村名称 name",
                 "missed": "未达设施 facilities not reached", "seat": "到镇区驻地 to the seat"}


def section_reach(
    reach: pd.DataFrame | None, seat: pd.DataFrame | None, stats: pd.DataFrame | None,
    info: Mapping[str, Any] | None, *, max_rows: int | None, full_table: str,
    catalog: Any = None,
) -> str:
    """Return the HTML of the village reach section ("" without a reach).

    Parameters
    ----------
    reach
        The ``village_reach`` layer (geometry ignored).
    seat
        The ``village_seat`` table, or None.
    stats
        ``township_stats`` (names, ``reach_share_<facility>``), or None.
    info
        ``CheckResult.reach_info`` (seat source, villages outside every township, network).
    max_rows
        Villages left out listed per township (``None``: all); a cut list names
        ``full_table``, where all rows are.
    full_table
        Where the full ``village_reach`` table is (file names).
    catalog
        Facility catalogue for the Chinese names (default: the bundled one).
    """
    if reach is None:
        return ""
    info = info or {}
    df = pd.DataFrame(reach.drop(columns=[c for c in reach.columns
                                          if str(reach[c].dtype) == "geometry"]))
    out = ["<h2>村庄设施道路可达 Village reach (“1+N” 镇村联动)</h2>", _notes(info)]
    names = _township_names(stats)
    codes = [c for c in names if c in set(df["township_code"].dropna().astype(str))]
    codes += sorted(set(df["township_code"].dropna().astype(str)) - set(codes))
    for code in codes:
        rows = df.loc[df["township_code"].astype(str).eq(code)]
        out.append(f"<h3>{escape(code)} {escape(names.get(code, ''))}</h3>")
        out.append(_shares(rows, _stats_row(stats, code), catalog))
        out.append(_left_out(rows, _seat_rows(seat, code), max_rows=max_rows,
                             full_table=full_table, catalog=catalog))
    if not codes:
        out.append('<p class="empty">no village inside a township 无乡镇内的村</p>')
    return "\n".join(p for p in out if p)


def _notes(info: Mapping[str, Any]) -> str:
    """Return the run's notes: seat source, network counts, villages outside every township."""
    lines = []
    if info.get("seat_source"):
        lines.append(f"镇区驻地 town seats: {info['seat_source']}")
    net = info.get("network") or {}
    if net:
        lines.append(f"道路网 road network: {format_value(net.get('nodes'))} nodes, "
                     f"{format_value(net.get('edges'))} edges; "
                     f"{format_value(net.get('snapped'))} gap(s) under "
                     f"{format_value(net.get('snap_m'))} m joined, "
                     f"{format_value(net.get('dangling'))} dangling end(s)")
    outside = info.get("outside")
    if outside is not None and len(outside):
        named = ", ".join(f"{c} {n}" for c, n in
                          outside[["village_code", "name"]].itertuples(index=False))
        lines.append(f"不在任何乡镇内的村 villages outside every township ({len(outside)}): "
                     f"{named}")
    lines.append("比例按人口加权（村图层有 population 时），否则按村数；"
                 "距离 = 村到道路直线 + 道路最短路 + 道路到项目直线。 "
                 "Shares are weighted by population when the village layer has it, else "
                 "by villages; distance = straight leg to the roads + shortest path along "
                 "them + straight leg to the site.")
    return "".join(f'<p class="note">{escape(line)}</p>' for line in lines)


def _township_names(stats: pd.DataFrame | None) -> dict[str, str]:
    if stats is None or "township_code" not in stats.columns:
        return {}
    name = stats["township_name"] if "township_name" in stats.columns else stats["township_code"]
    return dict(zip(stats["township_code"].astype(str), name.fillna("").astype(str),
                    strict=True))


def _stats_row(stats: pd.DataFrame | None, code: str) -> Mapping[str, Any]:
    if stats is None or "township_code" not in stats.columns:
        return {}
    hit = stats.loc[stats["township_code"].astype(str).eq(code)]
    return hit.iloc[0].to_dict() if len(hit) else {}


def _seat_rows(seat: pd.DataFrame | None, code: str) -> pd.DataFrame | None:
    if seat is None:
        return None
    return seat.loc[seat["township_code"].astype(str).eq(code)]


def _shares(rows: pd.DataFrame, stats_row: Mapping[str, Any], catalog: Any) -> str:
    """One row per facility type: limit, villages within (of all), the share in %."""
    table = []
    for facility, part in rows.groupby("facility", sort=False):
        share = stats_row.get(f"reach_share_{facility}")
        within = part["within_limit"].astype(bool)
        entry = {
            "facility": f"{facility_names(str(facility), catalog)} {facility}",
            "limit_m": float(part["limit_m"].iloc[0]),
            "within": f"{int(within.sum())} / {len(part)}",
            "share_pct": None if share is None or pd.isna(share) else float(share) * 100,
        }
        if "limit_min" in part.columns:
            entry["limit_min"] = float(part["limit_min"].iloc[0])
        table.append(entry)
    headers = {k: v for k, v in _SHARE_HEADERS.items()
               if k != "limit_min" or "limit_min" in rows.columns}
    return html_table(table, headers=headers,
                      numeric_digits={"limit_m": 0, "limit_min": 1, "share_pct": 1})


def _beyond(rec: Any) -> str:
    """Why a connected village is not within: the limit(s) it exceeds."""
    parts = []
    if pd.notna(rec.limit_m) and rec.network_m > rec.limit_m:
        parts.append(f"{format_value(rec.network_m, digits=0)} m > "
                     f"{format_value(rec.limit_m, digits=0)} m")
    minutes, limit = getattr(rec, "network_min", None), getattr(rec, "limit_min", None)
    if limit is not None and pd.notna(limit) and not minutes <= limit:
        parts.append(f"{format_value(minutes, digits=1)} min > {format_value(limit, digits=1)} min")
    return "; ".join(parts)


def _left_out(rows: pd.DataFrame, seat: pd.DataFrame | None, *, max_rows: int | None,
              full_table: str, catalog: Any) -> str:
    """List the villages beyond a limit, not connected, or not joined to their seat."""
    missed: dict[str, list[str]] = {}
    names: dict[str, Any] = {}
    for rec in rows.loc[~rows["within_limit"].astype(bool)].itertuples(index=False):
        key = str(rec.village_code)
        names[key] = rec.name
        what = _beyond(rec) if pd.notna(rec.network_m) else str(rec.reason)
        missed.setdefault(key, []).append(f"{facility_names(str(rec.facility), catalog)}: {what}")
    to_seat: dict[str, str] = {}
    if seat is not None:
        for rec in seat.loc[~seat["connected"].astype(bool)].itertuples(index=False):
            key = str(rec.village_code)
            names.setdefault(key, rec.name)
            to_seat[key] = str(rec.reason)
    # in the villages' order (a village only in the seat table last)
    order = dict.fromkeys([*rows["village_code"].astype(str), *to_seat])
    keys = [k for k in order if k in missed or k in to_seat]
    if not keys:
        return '<p class="note">无遗漏的村 no village left out</p>'
    table = [{"village_code": k, "name": names.get(k), "missed": "; ".join(missed.get(k, [])),
              "seat": to_seat.get(k, "")} for k in keys]
    note = ""
    if max_rows is not None and len(table) > max_rows:
        k = max(int(max_rows), 0)
        text = (f"显示 {k:,} / {len(table):,} 个村 · shown {k:,} of {len(table):,} villages. "
                f"完整表 full table: {full_table}")
        note = f'<p class="note cap">{escape(text)}</p>'
        table = table[:k]
    head = f'<p class="note">未达或未连通的村 villages left out: {len(keys)}</p>'
    return head + note + html_table(table, headers=_LEFT_HEADERS)
