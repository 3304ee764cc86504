"""Geometric siting rules: township, control lines, land use, slope, setback, overlap, as-built.

Each rule takes the shared context built by :func:`spatialplan.siting.check_projects` (``ctx``:
sites, areas, facility codes, per-row rulebooks and tolerances) plus its layer, and returns an
:class:`Out` holding one ``(status, measure, unit, message)`` per project row it evaluated
(``status is None`` for rows it could not evaluate; the caller turns those into ``error``).
Measures for the projects table are written into ``ctx.measures``.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan._rules_dates import bilingual
from spatialplan._rules_geom import (
    classify_overlap,
    classify_scalar,
    covered_area,
    is_zero,
    is_zero_scalar,
    layer_geometries,
    overlap_pairs,
)

__all__ = [
    "MU_M2",
    "Out",
    "text_values",
    "fmt_area",
    "rule_township",
    "rule_redline",
    "rule_farmland",
    "rule_cropland",
    "rule_udb",
    "rule_landuse",
    "rule_slope",
    "rule_setback",
    "rule_project_overlap",
    "rule_as_built",
    "unmapped_build_rows",
]

#: Square metres in one 亩.
MU_M2 = 2000.0 / 3.0


class Out:
    """Per-rule result arrays (``status`` None = not evaluated by the rule)."""

    def __init__(self, n: int):
        self.status = np.full(n, None, dtype=object)
        self.measure = np.full(n, np.nan)
        self.unit = np.full(n, "", dtype=object)
        self.message = np.full(n, "", dtype=object)

    def set(self, i: int, status: str, message: str, measure: float = np.nan, unit: str = ""):
        self.status[i] = status
        self.message[i] = message
        self.measure[i] = measure
        self.unit[i] = unit

    def fill(self, mask: np.ndarray, status: str, message: str) -> Out:
        self.status[mask] = status
        self.message[mask] = message
        return self


def text_values(values: Any) -> np.ndarray:
    """Strings with surrounding blanks removed; missing or blank → ``None``."""

    def one(v: object) -> str | None:
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return None
        t = str(v).strip()
        return t or None

    return np.array([one(v) for v in values], dtype=object)


def fmt_area(m2: float) -> tuple[str, str]:
    """Area as Chinese and English text.

    Examples
    --------
    >>> fmt_area(1234.5)
    ('1234.5 m²（1.85 亩）', '1234.5 m² (1.85 mu)')
    """
    return f"{m2:.1f} m²（{m2 / MU_M2:.2f} 亩）", f"{m2:.1f} m² ({m2 / MU_M2:.2f} mu)"


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _noise(what_zh: str, what_en: str, m2: float, tol: float) -> str:
    zh, en = fmt_area(m2)
    return bilingual(
        f"与{what_zh}重叠 {zh}，小于容差 {tol:g} m²，疑为边界误差，需核实",
        f"overlaps {what_en} by {en}, below the {tol:g} m² tolerance: boundary noise, verify",
    )


def _no_layer(ctx, zh: str, en: str) -> Out:
    return Out(ctx.n).fill(
        ctx.eligible_now, "not_applicable", bilingual(f"未提供{zh}图层", f"no {en} layer given")
    )


# --------------------------------------------------------------------------- township


def rule_township(ctx, townships: gpd.GeoDataFrame | None) -> Out:
    """Site inside its declared township; crossing → review; wholly elsewhere → fail."""
    if townships is None or len(townships) == 0:
        return _no_layer(ctx, "乡镇界", "townships")
    out = Out(ctx.n)
    geoms, pos = layer_geometries(townships)
    code_col = "code" if "code" in townships.columns else "township_code"
    codes = text_values(townships[code_col])[pos]
    names = (
        text_values(townships["name"])[pos] if "name" in townships.columns else codes.copy()
    )
    label = {c: (f"{n}（{c}）" if n and n != c else c) for c, n in zip(codes, names, strict=True)}
    si, ti, area = overlap_pairs(ctx.geoms, geoms)
    pairs = pd.DataFrame({"site": si, "code": codes[ti], "area": area})
    pairs = pairs[pairs["area"] > 0]
    by_site = pairs.groupby(["site", "code"], sort=False)["area"].sum().reset_index()
    by_site = by_site.sort_values(["site", "area"], ascending=[True, False])
    found = by_site.drop_duplicates("site").set_index("site")["code"]
    ctx.township_found[found.index.to_numpy()] = found.to_numpy()
    declared = text_values(ctx.attrs["township_code"])  # missing → None, never "nan"
    match = by_site["code"].to_numpy() == declared[by_site["site"].to_numpy()]
    inside = np.bincount(
        by_site["site"].to_numpy()[match], weights=by_site["area"].to_numpy()[match],
        minlength=ctx.n,
    )
    known = set(codes.tolist())
    for i in np.flatnonzero(ctx.eligible_now):
        where = label.get(ctx.township_found[i]) if ctx.township_found[i] else None
        lies_zh = f"位于{where}" if where else "不在任何乡镇内"
        lies_en = f"lies in {where}" if where else "lies in no township"
        decl = declared[i]
        if decl is None:
            out.set(i, "review", bilingual(f"未填写所属乡镇，选址{lies_zh}",
                                           f"no township declared; the site {lies_en}"))
            continue
        if decl not in known:
            out.set(i, "review", bilingual(
                f"申报乡镇 {decl} 不在乡镇界图层中，选址{lies_zh}",
                f"declared township {decl} is not in the townships layer; the site {lies_en}"))
            continue
        outside = max(ctx.area[i] - inside[i], 0.0)
        name = label[decl]
        if is_zero_scalar(outside, ctx.area[i]):
            out.set(i, "pass", bilingual(f"位于申报乡镇 {name} 内",
                                         f"inside the declared township {name}"), 0.0, "m2")
        elif is_zero_scalar(inside[i], ctx.area[i]):
            out.set(i, "fail", bilingual(f"选址完全位于申报乡镇 {name} 之外，{lies_zh}",
                                         f"wholly outside the declared township {name}; "
                                         f"the site {lies_en}"), outside, "m2")
        else:
            cls = classify_scalar(outside, ctx.area[i], ctx.tol_m2[i], ctx.tol_share[i])
            zh, en = fmt_area(outside)
            if cls == "noise":
                msg = bilingual(
                    f"超出申报乡镇 {name} 边界 {zh}，小于容差，疑为边界误差，需核实",
                    f"{en} outside the declared township {name}, below the tolerance: "
                    "boundary noise, verify")
            else:
                share = outside / ctx.area[i]
                msg = bilingual(
                    f"跨乡镇边界：{zh}（{_pct(share)}）位于申报乡镇 {name} 之外",
                    f"crosses a township boundary: {en} ({_pct(share)}) outside the "
                    f"declared township {name}")
            out.set(i, "review", msg, outside, "m2")
    return out


# --------------------------------------------------------------------------- control lines


def _line_overlap(ctx, layer: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    geoms, _pos = layer_geometries(layer)
    overlap = covered_area(ctx.geoms, geoms)
    cls = classify_overlap(np.nan_to_num(overlap), ctx.area, ctx.tol_m2, ctx.tol_share)
    return overlap, cls


def rule_redline(ctx, redline: gpd.GeoDataFrame | None) -> Out:
    """Ecological red line: overlap → fail, or review for the limited-activity categories."""
    if redline is None:
        return _no_layer(ctx, "生态保护红线", "ecological red line (redline)")
    out = Out(ctx.n)
    overlap, cls = _line_overlap(ctx, redline)
    ctx.measures["redline_m2"] = np.where(ctx.usable, overlap, np.nan)
    review_cats = ctx.setting("redline", "review_categories")
    for i in np.flatnonzero(ctx.eligible_now):
        m2, share = overlap[i], overlap[i] / ctx.area[i]
        zh, en = fmt_area(m2)
        if cls[i] == "none":
            out.set(i, "pass", bilingual("不涉及生态保护红线",
                                         "does not touch the ecological red line"), 0.0, "m2")
        elif cls[i] == "noise":
            out.set(i, "review", _noise("生态保护红线", "the ecological red line", m2,
                                        ctx.tol_m2[i]), m2, "m2")
        elif ctx.redline_cat[i] in review_cats[i]:
            out.set(i, "review", bilingual(
                f"占用生态保护红线 {zh}（{_pct(share)}），属可认定的有限人为活动类别"
                f"（{ctx.redline_cat[i]}），须按自然资发〔2022〕142号办理认定",
                f"occupies the ecological red line {en} ({_pct(share)}); its category "
                f"({ctx.redline_cat[i]}) may be a permitted limited activity and needs a "
                "formal finding (认定)"), m2, "m2")
        else:
            out.set(i, "fail", bilingual(
                f"占用生态保护红线 {zh}（{_pct(share)}），红线内禁止开发性、生产性建设",
                f"occupies the ecological red line {en} ({_pct(share)}): construction is "
                "prohibited there"), m2, "m2")
    return out


def rule_farmland(ctx, farmland: gpd.GeoDataFrame | None) -> Out:
    """Permanent basic farmland: any real overlap fails, with the area in m² and 亩."""
    if farmland is None:
        return _no_layer(ctx, "永久基本农田", "permanent basic farmland (farmland)")
    out = Out(ctx.n)
    overlap, cls = _line_overlap(ctx, farmland)
    ctx.measures["farmland_m2"] = np.where(ctx.usable, overlap, np.nan)
    ctx.measures["farmland_mu"] = ctx.measures["farmland_m2"] / MU_M2
    for i in np.flatnonzero(ctx.eligible_now):
        m2 = overlap[i]
        zh, en = fmt_area(m2)
        if cls[i] == "none":
            out.set(i, "pass", bilingual("不占用永久基本农田",
                                         "does not occupy permanent basic farmland"), 0.0, "m2")
        elif cls[i] == "noise":
            out.set(i, "review", _noise("永久基本农田", "permanent basic farmland", m2,
                                        ctx.tol_m2[i]), m2, "m2")
        else:
            out.set(i, "fail", bilingual(f"占用永久基本农田 {zh}",
                                         f"occupies permanent basic farmland {en}"), m2, "m2")
    return out


def rule_cropland(ctx, cropland: gpd.GeoDataFrame | None) -> Out:
    """Survey cultivated land: overlap → review (占补平衡 compensation duty)."""
    if cropland is None:
        return _no_layer(ctx, "耕地（三调）", "survey cultivated land (cropland)")
    out = Out(ctx.n)
    overlap, cls = _line_overlap(ctx, cropland)
    ctx.measures["cropland_m2"] = np.where(ctx.usable, overlap, np.nan)
    for i in np.flatnonzero(ctx.eligible_now):
        m2 = overlap[i]
        zh, en = fmt_area(m2)
        if cls[i] == "none":
            out.set(i, "pass", bilingual("不占用耕地", "does not occupy cultivated land"),
                    0.0, "m2")
        elif cls[i] == "noise":
            out.set(i, "review", _noise("耕地", "cultivated land", m2, ctx.tol_m2[i]), m2, "m2")
        else:
            out.set(i, "review", bilingual(
                f"占用耕地 {zh}，须落实耕地占补平衡",
                f"occupies cultivated land {en}: compensation duty (占补平衡)"), m2, "m2")
    return out


def rule_udb(ctx, udb: gpd.GeoDataFrame | None) -> Out:
    """Urban development boundary: inside → pass; outside → by the facility's catalogue entry."""
    if udb is None:
        return _no_layer(ctx, "城镇开发边界", "urban development boundary (udb)")
    out = Out(ctx.n)
    geoms, pos = layer_geometries(udb)
    inside = np.nan_to_num(covered_area(ctx.geoms, geoms))
    outside = np.where(ctx.usable, np.clip(ctx.area - inside, 0.0, None), np.nan)
    ctx.measures["outside_udb_m2"] = outside
    cls = classify_overlap(np.nan_to_num(outside), ctx.area, ctx.tol_m2, ctx.tol_share)
    zone = np.full(ctx.n, None, dtype=object)
    if "zone" in udb.columns and len(geoms):
        zones = text_values(udb["zone"])[pos]
        si, oi, area = overlap_pairs(ctx.geoms, geoms)
        best = pd.DataFrame({"s": si, "z": zones[oi], "a": area}).sort_values(
            ["s", "a"], ascending=[True, False]).drop_duplicates("s")
        zone[best["s"].to_numpy()] = best["z"].to_numpy()
    default = ctx.setting("udb", "outside_default")
    for i in np.flatnonzero(ctx.eligible_now):
        m2 = outside[i]
        zh, en = fmt_area(m2)
        zzh, zen = (f"（分区 {zone[i]}）", f" (zone {zone[i]})") if zone[i] else ("", "")
        if cls[i] == "none":
            out.set(i, "pass", bilingual(f"位于城镇开发边界内{zzh}",
                                         f"inside the urban development boundary{zen}"),
                    0.0, "m2")
            continue
        if cls[i] == "noise":
            out.set(i, "review", bilingual(
                f"超出城镇开发边界 {zh}，小于容差，疑为边界误差，需核实",
                f"{en} outside the urban development boundary, below the tolerance: "
                "boundary noise, verify"), m2, "m2")
            continue
        policy = ctx.outside_udb[i] or default[i]
        share = _pct(m2 / ctx.area[i])
        if policy == "allowed":
            msg = bilingual(f"位于城镇开发边界外 {zh}（{share}），该类设施允许在边界外布置",
                            f"{en} ({share}) outside the urban development boundary, allowed "
                            "for this facility type")
            out.set(i, "pass", msg, m2, "m2")
        else:
            msg = bilingual(
                f"位于城镇开发边界外 {zh}（{share}），镇级服务设施边界外选址须论证或调整规划",
                f"{en} ({share}) outside the urban development boundary: a town-serving "
                "facility there needs justification or a plan change")
            out.set(i, "review" if policy == "review" else "fail", msg, m2, "m2")
    return out


# --------------------------------------------------------------------------- land use


def rule_landuse(ctx, parcels: gpd.GeoDataFrame | None) -> Out:
    """Detailed-plan parcels under the site carry a code compatible with the facility."""
    from spatialplan.catalog import landuse_compatible

    if parcels is None:
        return _no_layer(ctx, "详细规划地块", "detailed-plan parcels (parcels)")
    out = Out(ctx.n)
    geoms, pos = layer_geometries(parcels)
    pcodes = (text_values(parcels["landuse"])[pos] if "landuse" in parcels.columns
              else np.full(len(pos), None, dtype=object))
    si, oi, area = overlap_pairs(ctx.geoms, geoms)
    parent = ctx.setting("landuse", "parent_counts")
    cache: dict[tuple, bool] = {}
    compat = np.zeros(len(si), dtype=bool)
    for k, (s, o) in enumerate(zip(si, oi, strict=True)):
        key = (pcodes[o], ctx.landuse_codes[s], bool(parent[s]))
        if key not in cache:
            cache[key] = bool(key[1]) and landuse_compatible(key[0], key[1],
                                                             parent_counts=key[2])
        compat[k] = cache[key]
    covered = np.minimum(np.bincount(si, weights=area, minlength=ctx.n), np.nan_to_num(ctx.area))
    good = np.minimum(np.bincount(si[compat], weights=area[compat], minlength=ctx.n), covered)
    share = np.where(ctx.usable, good / np.where(ctx.area > 0, ctx.area, 1.0), np.nan)
    ctx.measures["landuse_compatible_share"] = share
    pass_share = ctx.setting("landuse", "pass_share")
    found = pd.DataFrame({"s": si, "c": pcodes[oi], "a": area})
    found = found[~compat].groupby(["s", "c"])["a"].sum().reset_index()
    found = found.sort_values(["s", "a"], ascending=[True, False])
    listed: dict[int, list[str]] = {}
    for site, code in zip(found["s"].to_numpy(), found["c"].to_numpy(), strict=True):
        listed.setdefault(site, []).append(str(code))
    bad_codes = {k: "、".join(v[:4]) for k, v in listed.items()}
    for i in np.flatnonzero(ctx.eligible_now):
        allowed = ctx.landuse_codes[i]
        need = "/".join(allowed) if allowed else ""
        if not allowed:
            out.set(i, "not_applicable", bilingual("目录未规定该设施的兼容用地代码",
                                                   "the catalogue lists no land-use code"))
        elif is_zero_scalar(covered[i], ctx.area[i]):
            out.set(i, "review", bilingual("选址未被详细规划地块覆盖，需核对村庄规划或详细规划",
                                           "site not covered by detailed-plan parcels: check "
                                           "the village or detailed plan"), 0.0, "share")
        elif share[i] >= pass_share[i]:
            out.set(i, "pass", bilingual(f"用地性质兼容（{_pct(share[i])}，{need}）",
                                         f"land use compatible ({_pct(share[i])}, {need})"),
                    share[i], "share")
        else:
            bad = bad_codes.get(i) or "—"
            status = "fail" if is_zero_scalar(good[i], ctx.area[i]) else "review"
            out.set(i, status, bilingual(
                f"兼容用地仅占 {_pct(share[i])}（地块代码 {bad}，{ctx.name_zh[i]}需 {need}）",
                f"only {_pct(share[i])} on compatible land use (parcel codes {bad}; "
                f"{ctx.codes[i]} needs {need})"), share[i], "share")
    return out


# --------------------------------------------------------------------------- slope


def _slope_row(stats: pd.Series, r: dict[str, Any]) -> tuple[str, str, float]:
    limit, review_from = r["limit_deg"], r["review_from_deg"]
    mean, mx = float(stats.get("slope_mean_deg", np.nan)), float(stats.get("slope_max_deg", np.nan))
    flag = stats.get("flag", "ok")
    n_pix = float(stats.get("n_pixels", np.nan))
    col = f"share_over_{limit:g}"
    over = float(stats[col]) if col in stats.index and not pd.isna(stats[col]) else np.nan
    if flag == "no_data" or np.isnan(mean):
        return "review", bilingual("选址范围内无 DEM 数据，坡度需人工核查",
                                   "no DEM data under the site: check the slope by hand"), mean
    if flag == "too_few_pixels" or (not np.isnan(n_pix) and n_pix < r["min_pixels"]):
        return "review", bilingual(
            f"DEM 像元过少（{n_pix:.1f}），坡度 {mean:.1f}° 仅供参考",
            f"too few DEM cells ({n_pix:.1f}); mean slope {mean:.1f}° is indicative only"), mean
    figures_zh = f"平均坡度 {mean:.1f}°，最大 {mx:.1f}°"
    figures_en = f"mean slope {mean:.1f}°, max {mx:.1f}°"
    if not np.isnan(over):
        figures_zh += f"，{_pct(over)} 超过 {limit:g}°"
        figures_en += f", {_pct(over)} above {limit:g}°"
    if mean > limit or (not np.isnan(over) and over > r["max_share_over_limit"]):
        return "fail", bilingual(f"{figures_zh}，超过限值 {limit:g}°",
                                 f"{figures_en}: over the {limit:g}° limit"), mean
    if mean >= review_from or mx > limit:
        return "review", bilingual(f"{figures_zh}，介于 {review_from:g}°–{limit:g}°，需论证",
                                   f"{figures_en}: between {review_from:g}° and {limit:g}°, "
                                   "needs justification"), mean
    if flag == "partial_coverage":
        cov = float(stats.get("coverage", np.nan))
        return "review", bilingual(f"{figures_zh}，但 DEM 仅覆盖 {_pct(cov)}",
                                   f"{figures_en}, but the DEM covers only {_pct(cov)}"), mean
    return "pass", bilingual(f"{figures_zh}，符合坡度要求", f"{figures_en}: within the limit"), mean


def rule_slope(ctx, slope: pd.DataFrame | None) -> Out:
    """Slope from ``terrain.site_slope_stats``: over the limit → fail, review band → review."""
    if slope is None:
        msg = bilingual("未提供 DEM，未核查坡度", "no DEM given: slope not checked")
        return Out(ctx.n).fill(ctx.eligible_now, "not_applicable", msg)
    out = Out(ctx.n)
    index = slope.index.astype(str)
    fids = ctx.attrs["feature_id"].astype(str).to_numpy()
    ids = fids if np.isin(fids, index).any() or len(slope) == 0 else (
        ctx.attrs["project_id"].astype(str).to_numpy())
    frame = slope.set_axis(index)
    frame = frame[~frame.index.duplicated()]
    for col, measure in (("slope_mean_deg", "slope_mean_deg"), ("slope_max_deg", "slope_max_deg")):
        if col in frame.columns:
            ctx.measures[measure] = frame[col].reindex(ids).to_numpy(dtype=float)
    for i in np.flatnonzero(ctx.eligible_now):
        r = ctx.row_rules[i]["slope"]
        if ids[i] not in frame.index:
            msg = bilingual("缺少该选址的坡度统计", "no slope figures for this site")
            out.set(i, "review", msg)
            continue
        stats = frame.loc[ids[i]]
        status, msg, mean = _slope_row(stats, r)
        col = f"share_over_{r['limit_deg']:g}"
        if col in stats.index:
            ctx.measures["slope_over_limit_share"][i] = float(stats[col])
        out.set(i, status, msg, mean, "deg")
    return out


# --------------------------------------------------------------------------- setback


def _split_targets(entries: list[str], catalog) -> tuple[set[str], list[str]]:
    from spatialplan.catalog import resolve_facility

    codes, prefixes = set(), []
    for e in entries:
        if e.strip().isdigit():
            prefixes.append(e.strip())
        else:
            codes.add(resolve_facility(e, catalog))  # unknown → RulebookError (bad rulebook)
    return codes, prefixes


def rule_setback(ctx, parcels: gpd.GeoDataFrame | None) -> Out:
    """Minimum distances between facility types (and land-use prefixes of parcels)."""
    from spatialplan.rules import setback_pairs

    out = Out(ctx.n)
    ok = ctx.eligible_now
    pids = ctx.attrs["project_id"].to_numpy()
    involved = np.zeros(ctx.n, dtype=bool)
    hits: dict[int, list[tuple[float, str]]] = {}
    pgeoms, ppos = layer_geometries(parcels)
    pcodes = (text_values(parcels["landuse"])[ppos]
              if parcels is not None and "landuse" in parcels.columns
              else np.full(len(ppos), None, dtype=object))
    pfids = (text_values(parcels["feature_id"])[ppos]
             if parcels is not None and "feature_id" in parcels.columns
             else np.array([f"parcels:{p}" for p in ppos], dtype=object))
    for pair in setback_pairs(ctx.rules):
        src_codes, _ = _split_targets(pair["from"], ctx.catalog)
        dst_codes, prefixes = _split_targets(pair["to"], ctx.catalog)
        min_m = pair["min_m"]
        src = np.flatnonzero(ok & np.isin(ctx.codes, list(src_codes)))
        dst = np.flatnonzero(ok & np.isin(ctx.codes, list(dst_codes)))
        involved[src] = True
        involved[dst] = True
        if len(src) and len(dst):
            tree = shapely.STRtree(ctx.geoms[dst])
            a, b = tree.query(ctx.geoms[src], predicate="dwithin", distance=min_m)
            s, d = src[a], dst[b]
            keep = s != d
            s, d = s[keep], d[keep]
            dist = shapely.distance(ctx.geoms[s], ctx.geoms[d])
            for x, y, m in zip(s, d, dist, strict=True):
                hits.setdefault(x, []).append((m, f"{ctx.name_zh[y]} {pids[y]}|{ctx.codes[y]} "
                                                  f"{pids[y]}|{min_m:g}"))
                hits.setdefault(y, []).append((m, f"{ctx.name_zh[x]} {pids[x]}|{ctx.codes[x]} "
                                                  f"{pids[x]}|{min_m:g}"))
        if len(src) and prefixes and len(pgeoms):
            sel = np.array([c is not None and any(c.startswith(p) for p in prefixes)
                            for c in pcodes], dtype=bool)
            if sel.any():
                tree = shapely.STRtree(pgeoms[sel])
                a, b = tree.query(ctx.geoms[src], predicate="dwithin", distance=min_m)
                dist = shapely.distance(ctx.geoms[src[a]], pgeoms[sel][b])
                for x, k, m in zip(src[a], b, dist, strict=True):
                    code, fid = pcodes[sel][k], pfids[sel][k]
                    hits.setdefault(x, []).append(
                        (m, f"{code} 地块 {fid}|parcel {fid} ({code})|{min_m:g}"))
    for i in np.flatnonzero(ok):
        if i in hits:
            found = sorted(hits[i])
            ctx.measures["setback_min_m"][i] = found[0][0]
            parts = [(d, *t.split("|")) for d, t in found[:3]]
            zh = "；".join(f"距{z} {d:.1f} m（应 ≥ {m} m）" for d, z, _e, m in parts)
            en = "; ".join(f"{d:.1f} m from {e} (setback {m} m)" for d, _z, e, m in parts)
            out.set(i, "fail", bilingual(f"防护距离不足：{zh}", f"setback violated: {en}"),
                    found[0][0], "m")
        elif involved[i]:
            out.set(i, "pass", bilingual("满足防护距离要求", "setbacks respected"))
        else:
            out.set(i, "not_applicable", bilingual("该类设施无防护距离要求",
                                                   "no setback applies to this facility type"))
    return out


# --------------------------------------------------------------------------- overlap, as-built


def rule_project_overlap(ctx) -> Out:
    """Two project sites overlapping → review (below tolerance: boundary-noise review)."""
    out = Out(ctx.n)
    pids = ctx.attrs["project_id"].to_numpy()
    si, oi, area = overlap_pairs(ctx.geoms, ctx.geoms)
    keep = (si != oi) & ctx.eligible_now[si] & ctx.eligible_now[oi]
    keep &= ~is_zero(area, ctx.area[si])
    si, oi, area = si[keep], oi[keep], area[keep]
    order = np.lexsort((-area, si))
    si, oi, area = si[order], oi[order], area[order]
    total = np.bincount(si, weights=area, minlength=ctx.n)
    ctx.measures["project_overlap_m2"] = np.where(ctx.usable, total, np.nan)
    starts = np.searchsorted(si, np.arange(ctx.n), side="left")
    stops = np.searchsorted(si, np.arange(ctx.n), side="right")
    no_overlap = bilingual("与其他项目选址无重叠", "no overlap with other sites")
    for i in np.flatnonzero(ctx.eligible_now):
        a, b = starts[i], stops[i]
        if a == b:
            out.set(i, "pass", no_overlap, 0.0, "m2")
            continue
        biggest = float(area[a])
        cls = classify_scalar(biggest, ctx.area[i], ctx.tol_m2[i], ctx.tol_share[i])
        near = [str(pids[o]) for o in oi[a:min(b, a + 3)]]
        zh, en = fmt_area(float(total[i]))
        if cls == "noise":
            msg = _noise(f"项目 {'、'.join(near)} 选址", f"the site of {', '.join(near)}",
                         biggest, ctx.tol_m2[i])
        else:
            msg = bilingual(f"与项目 {'、'.join(near)} 选址重叠 {zh}",
                            f"site overlaps project {', '.join(near)} by {en}")
        out.set(i, "review", msg, float(total[i]), "m2")
    return out


def _dissolve_built(built: gpd.GeoDataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """Union the footprints per ``project_id``; also return per-footprint ids and areas."""
    geoms, pos = layer_geometries(built)
    pid = (text_values(built["project_id"])[pos] if "project_id" in built.columns
           else np.full(len(pos), None, dtype=object))
    fid = (text_values(built["feature_id"])[pos] if "feature_id" in built.columns
           else np.array([f"built:{p}" for p in pos], dtype=object))
    rows = pd.DataFrame({"project_id": pid, "feature_id": fid, "area_m2": shapely.area(geoms)})
    rows["geometry"] = geoms
    per_project: dict[str, Any] = {}
    for key, g in rows.dropna(subset=["project_id"]).groupby("project_id", sort=False):
        parts = g["geometry"].to_numpy()
        per_project[key] = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    return per_project, rows


def rule_as_built(ctx, built: gpd.GeoDataFrame | None) -> Out:
    """As-built footprint must lie (≥ ``min_inside_share``) inside the planned site."""
    if built is None:
        return _no_layer(ctx, "建成范围", "as-built footprint (built)")
    out = Out(ctx.n)
    per_project, _rows = _dissolve_built(built)
    pids = ctx.attrs["project_id"].to_numpy()
    status = ctx.attrs["status"].to_numpy()
    min_share = ctx.setting("as_built", "min_inside_share")
    rows = [i for i in np.flatnonzero(ctx.eligible_now) if pids[i] in per_project]
    if rows:
        fps = np.array([per_project[pids[i]] for i in rows], dtype=object)
        inside = shapely.area(shapely.intersection(fps, ctx.geoms[rows]))
        fp_area = shapely.area(fps)
        for i, a_in, a_fp in zip(rows, inside, fp_area, strict=True):
            share = a_in / a_fp if a_fp > 0 else 0.0
            ctx.measures["built_inside_share"][i] = share
            outside = max(a_fp - a_in, 0.0)
            zh, en = fmt_area(outside)
            if share >= min_share[i]:
                out.set(i, "pass", bilingual(
                    f"建成范围 {_pct(share)} 位于规划选址内（超出 {zh}）",
                    f"{_pct(share)} of the as-built footprint inside the planned site "
                    f"({en} outside)"), share, "share")
            else:
                out.set(i, "fail", bilingual(
                    f"建成范围仅 {_pct(share)} 位于规划选址内，超出 {zh}（应 ≥ "
                    f"{_pct(min_share[i])}）",
                    f"only {_pct(share)} of the as-built footprint inside the planned site, "
                    f"{en} outside (needs ≥ {_pct(min_share[i])})"), share, "share")
    for i in np.flatnonzero(ctx.eligible_now & (out.status == None)):  # noqa: E711
        if status[i] == "completed":
            out.set(i, "review", bilingual("已建成但无建成范围图斑，需补充竣工测量",
                                           "completed but no as-built footprint recorded"))
        else:
            out.set(i, "not_applicable", bilingual("尚无建成范围", "no as-built footprint yet"))
    return out


def unmapped_build_rows(
    built: gpd.GeoDataFrame | None, known_ids: set[str]
) -> gpd.GeoDataFrame:
    """Footprints of the ``built`` layer whose ``project_id`` is not in the register."""
    if built is None or len(built) == 0:
        return gpd.GeoDataFrame(
            {"project_id": [], "feature_id": [], "area_m2": []},
            geometry=gpd.GeoSeries([], crs=None if built is None else built.crs),
        )
    _per, rows = _dissolve_built(built)
    ids = rows["project_id"].to_numpy()
    lost = np.array([p is None or p not in known_ids for p in ids], dtype=bool)
    sub = rows[lost].reset_index(drop=True)
    sub["project_id"] = np.where(pd.isna(sub["project_id"].to_numpy()), sub["feature_id"],
                                 sub["project_id"]).astype(object)
    return gpd.GeoDataFrame(sub, geometry="geometry", crs=built.crs)
