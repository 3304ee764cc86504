"""Geometric siting rules: township, control lines, land use, slope, setback, overlap, as-built.

Each rule takes the shared context built by :func:`spatialplan.rules.siting.check_projects`
(``ctx``: sites, areas, facility codes, per-row rulebooks and tolerances) plus its layer, and
returns an :class:`Out` holding one ``(status, measure, unit, message)`` per project row it
evaluated (``status is None`` for rows it could not evaluate; the caller turns those into
``error``). Measures for the projects table are written into ``ctx.measures``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from math import isnan
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan.core._parallel import map_items
from spatialplan.rules._dates import bilingual
from spatialplan.rules._geom import (
    Overlaps,
    classify_overlap,
    is_zero,
    layer_geometries,
    self_overlap_pairs,
    site_overlaps,
)

__all__ = [
    "MU_M2",
    "Out",
    "fmt_area",
    "object_array",
    "prefetch_overlaps",
    "rule_as_built",
    "rule_cropland",
    "rule_farmland",
    "rule_landuse",
    "rule_project_overlap",
    "rule_redline",
    "rule_setback",
    "rule_slope",
    "rule_township",
    "rule_udb",
    "slope_min_pixels",
    "text_value",
    "text_values",
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

    def put(self, rows: np.ndarray, status: str, message: str | list[str],
            measure: float | np.ndarray = np.nan, unit: str = "") -> None:
        """:meth:`set` for many rows at once (``message`` and ``measure`` one or one per row)."""
        if len(rows) == 0:
            return
        self.status[rows] = status
        self.message[rows] = message if isinstance(message, str) else object_array(message)
        self.measure[rows] = measure
        self.unit[rows] = unit

    def fill(self, mask: np.ndarray, status: str, message: str) -> Out:
        self.status[mask] = status
        self.message[mask] = message
        return self


def object_array(values: list[str | None]) -> np.ndarray:
    """Make a 1-D object array of strings (``np.array`` would make fixed-width numpy strings).

    Examples
    --------
    >>> object_array(["a", "bc", None])
    array(['a', 'bc', None], dtype=object)
    """
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def text_value(v: object) -> str | None:
    """One value as :func:`text_values` gives it: stripped text, missing or blank → ``None``.

    Examples
    --------
    >>> text_value(" 镇 "), text_value(float("nan")), text_value(""), text_value(7)
    ('镇', None, None, '7')
    """
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    t = str(v).strip()
    return t or None


def text_values(values: Any) -> np.ndarray:
    """Strings with surrounding blanks removed; missing or blank → ``None``.

    Examples
    --------
    >>> import pandas as pd
    >>> text_values(pd.Series([" a ", "", None, float("nan"), 7])).tolist()
    ['a', None, None, None, '7']
    """
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.to_numpy(dtype=object)  # one conversion, not one boxed value at a time
    return object_array([(v.strip() or None) if type(v) is str else text_value(v) for v in values])


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


# --------------------------------------------------------------------------- shared overlaps

#: rule → (layer role it overlays the sites with, whether it needs the covered area)
OVERLAP_ROLES: dict[str, tuple[str, bool]] = {
    "township": ("townships", False),
    "redline": ("redline", True),
    "farmland": ("farmland", True),
    "cropland": ("cropland", True),
    "udb": ("udb", True),
    "landuse": ("parcels", False),
}
#: cache key of the sites' overlaps with each other
_SELF = "projects"


def layer_overlaps(ctx, role: str, layer: gpd.GeoDataFrame | None, *,
                   covered: bool = False) -> Overlaps:
    """Return the sites' overlaps with a layer, computed once per check (``ctx.overlaps``)."""
    found = ctx.overlaps.get(role)
    if found is None or (covered and found.covered is None):
        found = own_zone(ctx, site_overlaps(ctx.geoms, layer, covered=covered))
        ctx.overlaps[role] = found
    return found


def _self_overlaps(ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if _SELF not in ctx.overlaps:
        ctx.overlaps[_SELF] = own_zone(ctx, self_overlap_pairs(ctx.geoms))
    return ctx.overlaps[_SELF]


def own_zone(ctx, found: Any) -> Any:
    """Overlap areas (:class:`Overlaps` or ``(site, other, area)``) as in each site's own zone.

    ``ctx.area_scale`` holds, per site, the factor from an area in the analysis CRS to the
    area in the site's own Gauss-Kruger zone (:func:`spatialplan.core.distortion.site_scale`),
    exactly 1 for every site in the analysis zone, when nothing is changed.
    """
    if not ctx.rescaled:
        return found
    scale = ctx.area_scale
    if isinstance(found, tuple):
        si, oi, area = found
        return si, oi, area * scale[si]
    return replace(found, area=found.area * scale[found.site],
                   covered=None if found.covered is None else found.covered * scale)


def prefetch_overlaps(ctx, layers: dict[str, Any], *, rules: Iterable[str]) -> None:
    """Compute the overlays ``rules`` will need, several layers at once in threads.

    The overlays (STRtree queries, intersections, unions) are GEOS calls that release the GIL,
    so the layers run concurrently (:func:`spatialplan.core._parallel.map_items`; one thread when
    ``SPATIALPLAN_THREADS=1`` or under :func:`~spatialplan.core._parallel.limited`). Only the sites
    are read by a predicate (the intersects test of a candidate pair); the layers' geometries
    are tree items and overlay operands, whose preparation GEOS never reads, so only prepared
    sites keep the work in the calling thread. The results land in ``ctx.overlaps``, where the
    rules find them; a rule not prefetched computes its overlay itself.
    """
    wanted: dict[str, bool] = {}
    for rule in rules:
        if rule == "project_overlap":
            wanted[_SELF] = False
        elif rule in OVERLAP_ROLES:
            role, covered = OVERLAP_ROLES[rule]
            if layers.get(role) is not None and len(layers[role]):
                wanted[role] = wanted.get(role, False) or covered
    if not wanted or not np.any(ctx.usable):
        return
    # largest layers first: the longest job starts at once, the small ones fill the gaps
    jobs = sorted(wanted.items(),
                  key=lambda job: -len(layers[job[0]]) if job[0] != _SELF else 0)

    def run(job: tuple[str, bool]) -> Any:
        role, covered = job
        if role == _SELF:
            return self_overlap_pairs(ctx.geoms)
        return site_overlaps(ctx.geoms, layers[role], covered=covered)

    done = map_items(run, jobs, geoms=[ctx.geoms])
    for (role, _covered), result in zip(jobs, done, strict=True):
        ctx.overlaps[role] = own_zone(ctx, result)


# --------------------------------------------------------------------------- township


def _where(labels: list[str | None]) -> tuple[list[str], list[str]]:
    """Where each site lies, as Chinese and English text."""
    zh = [f"位于{w}" if w else "不在任何乡镇内" for w in labels]
    en = [f"lies in {w}" if w else "lies in no township" for w in labels]
    return zh, en


def rule_township(ctx, townships: gpd.GeoDataFrame | None) -> Out:
    """Site inside its declared township; crossing → review; wholly elsewhere → fail."""
    if townships is None or len(townships) == 0:
        return _no_layer(ctx, "乡镇界", "townships")
    out = Out(ctx.n)
    ov = layer_overlaps(ctx, "townships", townships)
    code_col = "code" if "code" in townships.columns else "township_code"
    codes = text_values(townships[code_col])[ov.pos]
    names = (
        text_values(townships["name"])[ov.pos] if "name" in townships.columns else codes.copy()
    )
    label = {c: (f"{n}（{c}）" if n and n != c else c) for c, n in zip(codes, names, strict=True)}
    pairs = pd.DataFrame({"site": ov.site, "code": codes[ov.other], "area": ov.area})
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
    rows = np.flatnonzero(ctx.eligible_now)
    decl = declared[rows]
    undeclared = np.array([d is None for d in decl], dtype=bool)
    unknown = np.array([d is not None and d not in known for d in decl], dtype=bool)
    lies_zh, lies_en = _where([label.get(f) if f else None for f in ctx.township_found[rows]])
    k = np.flatnonzero(undeclared)
    out.put(rows[k], "review", [bilingual(f"未填写所属乡镇，选址{lies_zh[j]}",
                                          f"no township declared; the site {lies_en[j]}")
                                for j in k])
    k = np.flatnonzero(unknown)
    out.put(rows[k], "review", [bilingual(
        f"申报乡镇 {decl[j]} 不在乡镇界图层中，选址{lies_zh[j]}",
        f"declared township {decl[j]} is not in the townships layer; the site {lies_en[j]}")
        for j in k])
    k = np.flatnonzero(~undeclared & ~unknown)
    r = rows[k]
    area, within = ctx.area[r], inside[r]
    outside = np.maximum(area - within, 0.0)
    name = [label[d] for d in decl[k]]
    is_in = is_zero(outside, area)
    is_out = ~is_in & is_zero(within, area)
    cls = classify_overlap(outside, area, ctx.tol_m2[r], ctx.tol_share[r])
    j = np.flatnonzero(is_in)
    out.put(r[j], "pass", [bilingual(f"位于申报乡镇 {name[x]} 内",
                                     f"inside the declared township {name[x]}") for x in j],
            0.0, "m2")
    j = np.flatnonzero(is_out)
    out.put(r[j], "fail", [bilingual(f"选址完全位于申报乡镇 {name[x]} 之外，{lies_zh[k[x]]}",
                                     f"wholly outside the declared township {name[x]}; "
                                     f"the site {lies_en[k[x]]}") for x in j],
            outside[j], "m2")
    j = np.flatnonzero(~is_in & ~is_out)
    out.put(r[j], "review", [_crossing(name[x], outside[x], area[x], cls[x]) for x in j],
            outside[j], "m2")
    return out


def _crossing(name: str, outside: float, area: float, cls: str) -> str:
    zh, en = fmt_area(outside)
    if cls == "noise":
        return bilingual(
            f"超出申报乡镇 {name} 边界 {zh}，小于容差，疑为边界误差，需核实",
            f"{en} outside the declared township {name}, below the tolerance: "
            "boundary noise, verify")
    share = outside / area
    return bilingual(
        f"跨乡镇边界：{zh}（{_pct(share)}）位于申报乡镇 {name} 之外",
        f"crosses a township boundary: {en} ({_pct(share)}) outside the "
        f"declared township {name}")


# --------------------------------------------------------------------------- control lines


def _line_overlap(ctx, role: str, layer: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    overlap = layer_overlaps(ctx, role, layer, covered=True).covered
    cls = classify_overlap(np.nan_to_num(overlap), ctx.area, ctx.tol_m2, ctx.tol_share)
    return overlap, cls


def _by_class(ctx, cls: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eligible rows whose overlap is none, boundary noise, real."""
    rows = np.flatnonzero(ctx.eligible_now)
    c = cls[rows]
    return rows[c == "none"], rows[c == "noise"], rows[c == "real"]


def _noises(ctx, rows: np.ndarray, m2: np.ndarray, what_zh: str, what_en: str) -> list[str]:
    return [_noise(what_zh, what_en, a, t)
            for a, t in zip(m2[rows].tolist(), ctx.tol_m2[rows].tolist(), strict=True)]


def rule_redline(ctx, redline: gpd.GeoDataFrame | None) -> Out:
    """Ecological red line: overlap → fail, or review for the facility's kind of activity.

    A facility whose catalogue ``redline_kind`` (one of the ten kinds of limited activity of
    自然资发〔2022〕142号, ``redline_activities.csv``) is listed in ``[redline] review_kinds``
    needs a formal finding (认定): review, the finding naming the kind by number and name.
    Any other overlap fails (naming the kind when the facility has one not listed).
    """
    if redline is None:
        return _no_layer(ctx, "生态保护红线", "ecological red line (redline)")
    from spatialplan.rules.catalog import read_redline_activities

    out = Out(ctx.n)
    overlap, cls = _line_overlap(ctx, "redline", redline)
    ctx.measures["redline_m2"] = np.where(ctx.usable, overlap, np.nan)
    review_kinds = ctx.setting("redline", "review_kinds")
    none, noise, real = _by_class(ctx, cls)
    out.put(none, "pass", bilingual("不涉及生态保护红线", "does not touch the ecological red line"),
            0.0, "m2")
    out.put(noise, "review", _noises(ctx, noise, overlap, "生态保护红线",
                                     "the ecological red line"), overlap[noise], "m2")
    kinds = read_redline_activities()
    limited = np.array([ctx.redline_kind[i] in review_kinds[i] for i in real], dtype=bool)
    rows = real[limited]
    out.put(rows, "review", [_redline_limited(m2, area, kinds.loc[kind]) for m2, area, kind in zip(
        overlap[rows].tolist(), ctx.area[rows].tolist(), ctx.redline_kind[rows], strict=True)],
        overlap[rows], "m2")
    rows = real[~limited]
    out.put(rows, "fail", [_redline_banned(m2, area, kinds.loc[kind] if kind in kinds.index
                                           else None) for m2, area, kind in zip(
        overlap[rows].tolist(), ctx.area[rows].tolist(), ctx.redline_kind[rows], strict=True)],
        overlap[rows], "m2")
    return out


def _redline_limited(m2: float, area: float, kind: pd.Series) -> str:
    """Review message: the overlap and the kind of limited activity (a row of the ten kinds)."""
    zh, en = fmt_area(m2)
    share = m2 / area
    n = int(kind["number"])
    return bilingual(
        f"占用生态保护红线 {zh}（{_pct(share)}），属第{n}类有限人为活动"
        f"（{kind['name_zh']}），须按自然资发〔2022〕142号办理认定",
        f"occupies the ecological red line {en} ({_pct(share)}); it may be limited human "
        f"activity of kind {n} of 自然资发〔2022〕142号 ({kind['kind']}) and needs a "
        "formal finding (认定)")


def _redline_banned(m2: float, area: float, kind: pd.Series | None = None) -> str:
    zh, en = fmt_area(m2)
    share = m2 / area
    if kind is not None:  # a kind the rulebook does not accept for review
        n = int(kind["number"])
        return bilingual(
            f"占用生态保护红线 {zh}（{_pct(share)}）；第{n}类有限人为活动（{kind['name_zh']}）"
            "未列入规则集 review_kinds，按禁止建设处理",
            f"occupies the ecological red line {en} ({_pct(share)}); kind {n} "
            f"({kind['kind']}) is not in the rulebook's review_kinds: prohibited")
    return bilingual(
        f"占用生态保护红线 {zh}（{_pct(share)}），红线内禁止开发性、生产性建设",
        f"occupies the ecological red line {en} ({_pct(share)}): construction is "
        "prohibited there")


def rule_farmland(ctx, farmland: gpd.GeoDataFrame | None) -> Out:
    """Permanent basic farmland: any real overlap fails, with the area in m² and 亩."""
    if farmland is None:
        return _no_layer(ctx, "永久基本农田", "permanent basic farmland (farmland)")
    out = Out(ctx.n)
    overlap, cls = _line_overlap(ctx, "farmland", farmland)
    ctx.measures["farmland_m2"] = np.where(ctx.usable, overlap, np.nan)
    ctx.measures["farmland_mu"] = ctx.measures["farmland_m2"] / MU_M2
    none, noise, real = _by_class(ctx, cls)
    out.put(none, "pass", bilingual("不占用永久基本农田",
                                    "does not occupy permanent basic farmland"), 0.0, "m2")
    out.put(noise, "review", _noises(ctx, noise, overlap, "永久基本农田",
                                     "permanent basic farmland"), overlap[noise], "m2")
    texts = [fmt_area(m2) for m2 in overlap[real].tolist()]
    out.put(real, "fail", [bilingual(f"占用永久基本农田 {zh}",
                                     f"occupies permanent basic farmland {en}")
                           for zh, en in texts], overlap[real], "m2")
    return out


def rule_cropland(ctx, cropland: gpd.GeoDataFrame | None) -> Out:
    """Survey cultivated land: overlap → review (占补平衡 compensation duty)."""
    if cropland is None:
        return _no_layer(ctx, "耕地（三调）", "survey cultivated land (cropland)")
    out = Out(ctx.n)
    overlap, cls = _line_overlap(ctx, "cropland", cropland)
    ctx.measures["cropland_m2"] = np.where(ctx.usable, overlap, np.nan)
    none, noise, real = _by_class(ctx, cls)
    out.put(none, "pass", bilingual("不占用耕地", "does not occupy cultivated land"), 0.0, "m2")
    out.put(noise, "review", _noises(ctx, noise, overlap, "耕地", "cultivated land"),
            overlap[noise], "m2")
    texts = [fmt_area(m2) for m2 in overlap[real].tolist()]
    out.put(real, "review", [bilingual(f"占用耕地 {zh}，须落实耕地占补平衡",
                                       f"occupies cultivated land {en}: compensation duty "
                                       "(占补平衡)") for zh, en in texts], overlap[real], "m2")
    return out


def _udb_zones(ctx, udb: gpd.GeoDataFrame, ov: Overlaps) -> np.ndarray:
    """Find the ``zone`` of the boundary piece covering most of each site (None: no zone)."""
    zone = np.full(ctx.n, None, dtype=object)
    if "zone" in udb.columns and len(ov.geoms):
        zones = text_values(udb["zone"])[ov.pos]
        best = pd.DataFrame({"s": ov.site, "z": zones[ov.other], "a": ov.area}).sort_values(
            ["s", "a"], ascending=[True, False]).drop_duplicates("s")
        zone[best["s"].to_numpy()] = best["z"].to_numpy()
    return zone


def rule_udb(ctx, udb: gpd.GeoDataFrame | None) -> Out:
    """Urban development boundary: inside → pass; outside → by the facility's catalogue entry."""
    if udb is None:
        return _no_layer(ctx, "城镇开发边界", "urban development boundary (udb)")
    out = Out(ctx.n)
    ov = layer_overlaps(ctx, "udb", udb, covered=True)
    inside = np.nan_to_num(ov.covered)
    outside = np.where(ctx.usable, np.clip(ctx.area - inside, 0.0, None), np.nan)
    ctx.measures["outside_udb_m2"] = outside
    cls = classify_overlap(np.nan_to_num(outside), ctx.area, ctx.tol_m2, ctx.tol_share)
    zone = _udb_zones(ctx, udb, ov)
    none, noise, real = _by_class(ctx, cls)
    out.put(none, "pass", [bilingual(f"位于城镇开发边界内（分区 {zone[i]}）" if zone[i] else
                                     "位于城镇开发边界内",
                                     f"inside the urban development boundary (zone {zone[i]})"
                                     if zone[i] else "inside the urban development boundary")
                           for i in none], 0.0, "m2")
    texts = [fmt_area(m2) for m2 in outside[noise].tolist()]
    out.put(noise, "review", [bilingual(
        f"超出城镇开发边界 {zh}，小于容差，疑为边界误差，需核实",
        f"{en} outside the urban development boundary, below the tolerance: "
        "boundary noise, verify") for zh, en in texts], outside[noise], "m2")
    default = ctx.setting("udb", "outside_default")
    policy = np.array([ctx.outside_udb[i] or default[i] for i in real], dtype=object)
    allowed = policy == "allowed"
    rows = real[allowed]
    out.put(rows, "pass", _udb_outsides(ctx, rows, outside, allowed=True), outside[rows], "m2")
    for status in ("review", "fail"):
        pick = ~allowed & ((policy == "review") if status == "review" else (policy != "review"))
        rows = real[pick]
        out.put(rows, status, _udb_outsides(ctx, rows, outside, allowed=False), outside[rows],
                "m2")
    return out


def _udb_outsides(ctx, rows: np.ndarray, outside: np.ndarray, *, allowed: bool) -> list[str]:
    return [_udb_outside(m2, area, allowed=allowed)
            for m2, area in zip(outside[rows].tolist(), ctx.area[rows].tolist(), strict=True)]


def _udb_outside(m2: float, area: float, *, allowed: bool) -> str:
    zh, en = fmt_area(m2)
    share = _pct(m2 / area)
    if allowed:
        return bilingual(f"位于城镇开发边界外 {zh}（{share}），该类设施允许在边界外布置",
                         f"{en} ({share}) outside the urban development boundary, allowed "
                         "for this facility type")
    return bilingual(
        f"位于城镇开发边界外 {zh}（{share}），镇级服务设施边界外选址须论证或调整规划",
        f"{en} ({share}) outside the urban development boundary: a town-serving "
        "facility there needs justification or a plan change")


# --------------------------------------------------------------------------- land use


def _compatible_pairs(ctx, site: np.ndarray, pcodes: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Whether each (site, parcel code) pair is compatible, and each pair's unknown code.

    A parcel code outside the land-use code table (``ctx.catalog.landuse``) is never
    compatible, not even by prefix; its cleaned code is returned for that pair (else None).
    """
    from spatialplan.rules.catalog import landuse_compatible, landuse_unknown

    parent = ctx.setting("landuse", "parent_counts")
    known = ctx.catalog.landuse.index
    unknown_of: dict[object, str | None] = {}
    cache: dict[tuple, bool] = {}
    compat = np.zeros(len(site), dtype=bool)
    unknown = np.full(len(site), None, dtype=object)
    for k, (s, code) in enumerate(zip(site, pcodes, strict=True)):
        if code not in unknown_of:
            unknown_of[code] = landuse_unknown(code, known)
        unknown[k] = unknown_of[code]
        if unknown[k] is not None:
            continue
        key = (code, ctx.landuse_codes[s], bool(parent[s]))
        if key not in cache:
            cache[key] = bool(key[1]) and landuse_compatible(key[0], key[1],
                                                             parent_counts=key[2])
        compat[k] = cache[key]
    return compat, unknown


def _codes_by_area(si: np.ndarray, codes: np.ndarray, area: np.ndarray) -> dict[int, str]:
    """Per site, its parcel codes by area (largest first, at most four)."""
    found = pd.DataFrame({"s": si, "c": codes, "a": area})
    found = found.groupby(["s", "c"])["a"].sum().reset_index()
    found = found.sort_values(["s", "a"], ascending=[True, False])
    listed: dict[int, list[str]] = {}
    for site, code in zip(found["s"].to_numpy(), found["c"].to_numpy(), strict=True):
        listed.setdefault(site, []).append(str(code))
    return {k: "、".join(v[:4]) for k, v in listed.items()}


def _landuse_pass(ctx, rows: np.ndarray, share: np.ndarray, need: dict[int, str],
                  good_codes: dict[int, str]) -> list[str]:
    """Pass messages; under ``parent_counts`` they name the parcels' own codes."""
    parent = ctx.setting("landuse", "parent_counts")
    out = []
    for i in rows.tolist():
        pct = _pct(share[i])
        if parent[i] and good_codes.get(i):
            out.append(bilingual(
                f"用地性质兼容（{pct}，地块代码 {good_codes[i]}，上级代码计入；需 {need[i]}）",
                f"land use compatible ({pct}, parcel codes {good_codes[i]}, parent codes "
                f"counted; needs {need[i]})"))
        else:
            out.append(bilingual(f"用地性质兼容（{pct}，{need[i]}）",
                                 f"land use compatible ({pct}, {need[i]})"))
    return out


def _landuse_unknown(ctx, rows: np.ndarray, share: np.ndarray, need: dict[int, str],
                     unknown_codes: dict[int, str]) -> list[str]:
    """Review messages naming the parcel codes outside the 2023 classification."""
    return [bilingual(
        f"地块代码 {unknown_codes[i]} 不在 2023 年用地用海分类中，无法判定兼容性"
        f"（兼容用地 {_pct(share[i])}，{ctx.name_zh[i]}需 {need[i]}），需核对地块代码",
        f"parcel code(s) {unknown_codes[i]} not in the 2023 land-use classification: "
        f"compatibility cannot be judged ({_pct(share[i])} on compatible land use; "
        f"{ctx.codes[i]} needs {need[i]}), check the parcel codes")
        for i in rows.tolist()]


def rule_landuse(ctx, parcels: gpd.GeoDataFrame | None) -> Out:
    """Detailed-plan parcels under the site carry a code compatible with the facility.

    A site that does not pass and lies on a parcel whose code is outside the land-use code
    table gets ``review`` naming that code (the code is never counted compatible).
    """
    if parcels is None:
        return _no_layer(ctx, "详细规划地块", "detailed-plan parcels (parcels)")
    out = Out(ctx.n)
    ov = layer_overlaps(ctx, "parcels", parcels)
    pcodes = (text_values(parcels["landuse"])[ov.pos] if "landuse" in parcels.columns
              else np.full(len(ov.pos), None, dtype=object))
    si, oi, area = ov.site, ov.other, ov.area
    compat, unknown = _compatible_pairs(ctx, si, pcodes[oi])
    covered = np.minimum(np.bincount(si, weights=area, minlength=ctx.n), np.nan_to_num(ctx.area))
    good = np.minimum(np.bincount(si[compat], weights=area[compat], minlength=ctx.n), covered)
    share = np.where(ctx.usable, good / np.where(ctx.area > 0, ctx.area, 1.0), np.nan)
    ctx.measures["landuse_compatible_share"] = share
    bad_codes = _codes_by_area(si[~compat], pcodes[oi][~compat], area[~compat])
    odd = unknown != None  # noqa: E711 (elementwise on an object array)
    odd_area = np.bincount(si[odd], weights=area[odd], minlength=ctx.n)
    unknown_codes = _codes_by_area(si[odd], unknown[odd], area[odd])
    rows = np.flatnonzero(ctx.eligible_now)
    listed = np.array([bool(ctx.landuse_codes[i]) for i in rows], dtype=bool)
    out.put(rows[~listed], "not_applicable", bilingual("目录未规定该设施的兼容用地代码",
                                                       "the catalogue lists no land-use code"))
    rows = rows[listed]
    bare = is_zero(covered[rows], ctx.area[rows])
    out.put(rows[bare], "review", bilingual("选址未被详细规划地块覆盖，需核对村庄规划或详细规划",
                                            "site not covered by detailed-plan parcels: check "
                                            "the village or detailed plan"), 0.0, "share")
    rows = rows[~bare]
    need = {i: "/".join(ctx.landuse_codes[i]) for i in rows.tolist()}
    ok = share[rows] >= ctx.setting("landuse", "pass_share")[rows].astype(float)
    r = rows[ok]
    good_codes = _codes_by_area(si[compat], pcodes[oi][compat], area[compat])
    out.put(r, "pass", _landuse_pass(ctx, r, share, need, good_codes), share[r], "share")
    r = rows[~ok]
    odd_rows = ~is_zero(odd_area[r], ctx.area[r])
    out.put(r[odd_rows], "review", _landuse_unknown(ctx, r[odd_rows], share, need,
                                                     unknown_codes), share[r[odd_rows]], "share")
    r = r[~odd_rows]
    pct = dict(zip(r.tolist(), map(_pct, share[r].tolist()), strict=True))
    none_good = is_zero(good[r], ctx.area[r])
    for status, pick in (("fail", none_good), ("review", ~none_good)):
        out.put(r[pick], status, [bilingual(
            f"兼容用地仅占 {pct[i]}（地块代码 {bad_codes.get(i) or '—'}，"
            f"{ctx.name_zh[i]}需 {need[i]}）",
            f"only {pct[i]} on compatible land use (parcel codes "
            f"{bad_codes.get(i) or '—'}; {ctx.codes[i]} needs {need[i]})")
            for i in r[pick].tolist()], share[r[pick]], "share")
    return out


# --------------------------------------------------------------------------- slope


def _slope_row(mean: float, mx: float, flag: object, n_pix: float, over: float, cov: float,
               around: tuple[float, float], r: dict[str, Any]) -> tuple[str, str, float]:
    """Status, message and measure of one site's slope figures under its rule settings ``r``.

    The figures are Python floats (NaN where missing): this runs once per site. ``around``
    holds the max slope of the cells within one cell of the site and that distance (NaN when
    not measured). The measure is the mean slope, or that max when the site is judged by it.
    """
    limit, review_from = r["limit_deg"], r["review_from_deg"]
    if flag == "no_data" or isnan(mean):
        return "review", bilingual("选址范围内无 DEM 数据，坡度需人工核查",
                                   "no DEM data under the site: check the slope by hand"), mean
    if flag == "too_few_pixels" or (not isnan(n_pix) and n_pix < r["min_pixels"]):
        return _few_cells_row(mean, n_pix, around, review_from)
    figures_zh = f"平均坡度 {mean:.1f}°，最大 {mx:.1f}°"
    figures_en = f"mean slope {mean:.1f}°, max {mx:.1f}°"
    if not isnan(over):
        figures_zh += f"，{_pct(over)} 超过 {limit:g}°"
        figures_en += f", {_pct(over)} above {limit:g}°"
    if mean > limit or (not isnan(over) and over > r["max_share_over_limit"]):
        return "fail", bilingual(f"{figures_zh}，超过限值 {limit:g}°",
                                 f"{figures_en}: over the {limit:g}° limit"), mean
    if mean >= review_from or mx > limit:
        return "review", bilingual(f"{figures_zh}，介于 {review_from:g}°–{limit:g}°，需论证",  # noqa: RUF001 - en dash: range sign in the finding
                                   f"{figures_en}: between {review_from:g}° and {limit:g}°, "
                                   "needs justification"), mean
    if flag == "partial_coverage":
        return "review", bilingual(f"{figures_zh}，但 DEM 仅覆盖 {_pct(cov)}",
                                   f"{figures_en}, but the DEM covers only {_pct(cov)}"), mean
    return "pass", bilingual(f"{figures_zh}，符合坡度要求", f"{figures_en}: within the limit"), mean


def _few_cells_row(mean: float, n_pix: float, around: tuple[float, float],
                   review_from: float) -> tuple[str, str, float]:
    """Judge a site on too few DEM cells by the cells around it when they are all gentle.

    Every cell within one cell of the site below ``review_from`` (well below the limit) →
    pass; a neighbourhood near or over the limit, or not measured → review.
    """
    around_max, around_m = around
    few_zh, few_en = f"DEM 像元过少（{n_pix:.1f}）", f"too few DEM cells ({n_pix:.1f})"
    if isnan(around_max):
        return "review", bilingual(f"{few_zh}，坡度 {mean:.1f}° 仅供参考",
                                   f"{few_en}; mean slope {mean:.1f}° is indicative only"), mean
    where_zh = f"坡度按周边一个像元（{around_m:g} m）范围判断：最大坡度 {around_max:.1f}°（计量值）"
    where_en = (f"slope judged on the cells within one cell ({around_m:g} m) around the site: "
                f"max {around_max:.1f}° (the measure)")
    if around_max < review_from:
        return "pass", bilingual(f"{few_zh}，{where_zh}，低于 {review_from:g}°，符合坡度要求",
                                 f"{few_en}; {where_en}, below {review_from:g}°: within the "
                                 "limit"), around_max
    return "review", bilingual(f"{few_zh}，{where_zh}，接近或超过限值，坡度需人工核查",
                               f"{few_en}; {where_en}, near or over the limit: check the slope "
                               "by hand"), around_max


def _column(frame: pd.DataFrame, name: str, ids: np.ndarray, default: Any = np.nan,
            *, numeric: bool = True) -> np.ndarray:
    """``frame[name]`` at ``ids`` (all present) as floats, or objects; ``default`` if absent."""
    if name not in frame.columns:
        return np.full(len(ids), default, dtype=float if numeric else object)
    values = frame[name].reindex(ids)
    return values.to_numpy(dtype=float) if numeric else values.to_numpy(dtype=object)


def _over_limit(frame: pd.DataFrame, ids: np.ndarray, limits: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """Share of each site over its own limit (``share_over_<limit>``) and whether it is given."""
    over = np.full(len(ids), np.nan)
    given = np.zeros(len(ids), dtype=bool)
    for limit in pd.unique(limits):
        col = f"share_over_{limit:g}"
        if col in frame.columns:
            pick = limits == limit
            over[pick] = frame[col].reindex(ids[pick]).to_numpy(dtype=float)
            given[pick] = True
    return over, given


def slope_min_pixels(rules: dict[str, Any]) -> float:
    """Return the largest ``[slope] min_pixels`` of a rulebook, facility overrides included.

    The terrain statistics measure the cells around every site on fewer cells than this.

    Examples
    --------
    >>> slope_min_pixels({"slope": {"min_pixels": 4.0},
    ...                   "facility": {"road": {"slope": {"min_pixels": 9.0}}}})
    9.0
    """
    values = [float((rules.get("slope") or {}).get("min_pixels", 0.0))]
    for override in (rules.get("facility") or {}).values():
        if "min_pixels" in ((override or {}).get("slope") or {}):
            values.append(float(override["slope"]["min_pixels"]))
    return max(values)


def rule_slope(ctx, slope: pd.DataFrame | None) -> Out:
    """Slope from ``terrain.site_slope_stats``: over the limit → fail, review band → review.

    A site on too few cells passes when every cell within one cell of it is below
    ``review_from_deg`` (``around_slope_max_deg``), and is reviewed otherwise.
    """
    if slope is None:
        msg = bilingual("未提供 DEM，未核查坡度", "no DEM given: slope not checked")
        return Out(ctx.n).fill(ctx.eligible_now, "not_applicable", msg)
    out = Out(ctx.n)
    index = slope.index.astype(str)
    fids = ctx.attrs["feature_id"].astype(str).to_numpy()
    ids = fids if index.isin(fids).any() or len(slope) == 0 else (
        ctx.attrs["project_id"].astype(str).to_numpy())
    frame = slope.set_axis(index)
    frame = frame[~frame.index.duplicated()]
    for col, measure in (("slope_mean_deg", "slope_mean_deg"), ("slope_max_deg", "slope_max_deg")):
        if col in frame.columns:
            ctx.measures[measure] = frame[col].reindex(ids).to_numpy(dtype=float)
    rows = np.flatnonzero(ctx.eligible_now)
    present = frame.index.get_indexer(ids[rows]) >= 0  # hashed: np.isin sorts objects
    out.put(rows[~present], "review", bilingual("缺少该选址的坡度统计",
                                                "no slope figures for this site"))
    rows = rows[present]
    at = ids[rows]
    mean, mx = _column(frame, "slope_mean_deg", at), _column(frame, "slope_max_deg", at)
    n_pix, cov = _column(frame, "n_pixels", at), _column(frame, "coverage", at)
    flag = _column(frame, "flag", at, "ok", numeric=False)
    settings = [ctx.row_rules[i]["slope"] for i in rows]
    limits = np.array([r["limit_deg"] for r in settings], dtype=float)
    over, given = _over_limit(frame, at, limits)
    ctx.measures["slope_over_limit_share"][rows[given]] = over[given]
    around = zip(_column(frame, "around_slope_max_deg", at).tolist(),
                 _column(frame, "around_m", at).tolist(), strict=True)
    found = [_slope_row(*v) for v in zip(mean.tolist(), mx.tolist(), flag.tolist(),
                                         n_pix.tolist(), over.tolist(), cov.tolist(), around,
                                         settings, strict=True)]
    measure = np.array([f[2] for f in found], dtype=float)
    for status in ("pass", "review", "fail"):
        pick = np.array([f[0] == status for f in found], dtype=bool)
        out.put(rows[pick], status, [f[1] for f, p in zip(found, pick, strict=True) if p],
                measure[pick], "deg")
    return out


# --------------------------------------------------------------------------- setback


def _split_targets(entries: list[str], catalog) -> tuple[set[str], list[str]]:
    from spatialplan.rules.catalog import resolve_facility

    codes, prefixes = set(), []
    for e in entries:
        if e.strip().isdigit():
            prefixes.append(e.strip())
        else:
            codes.add(resolve_facility(e, catalog))  # unknown → RulebookError (bad rulebook)
    return codes, prefixes


def _parcel_labels(parcels: gpd.GeoDataFrame | None, pos: np.ndarray) -> tuple[
        np.ndarray, np.ndarray]:
    """Land-use code and feature id of the usable parcels (at layer rows ``pos``)."""
    has = parcels is not None
    pcodes = (text_values(parcels["landuse"])[pos] if has and "landuse" in parcels.columns
              else np.full(len(pos), None, dtype=object))
    pfids = (text_values(parcels["feature_id"])[pos] if has and "feature_id" in parcels.columns
             else np.array([f"parcels:{p}" for p in pos], dtype=object))
    return pcodes, pfids


def _planar(ctx, src: np.ndarray, min_m: float) -> float:
    """Return the planar distance covering ``min_m`` in every ``src`` site's own zone."""
    if not ctx.rescaled or len(src) == 0:
        return min_m
    return float(min_m / np.min(ctx.len_scale[src]))


def _own_zone_distance(ctx, site: np.ndarray, other: np.ndarray, dist: np.ndarray,
                       min_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances as in each site's own zone (``ctx.len_scale``), the pairs within ``min_m``."""
    if not ctx.rescaled:
        return site, other, dist
    dist = dist * ctx.len_scale[site]
    keep = dist <= min_m
    return site[keep], other[keep], dist[keep]


def _site_hits(ctx, src: np.ndarray, dst: np.ndarray, min_m: float,
               hits: dict[int, list[tuple[float, str]]]) -> None:
    """Record the pairs of sites (from ``src`` to ``dst``) closer than ``min_m``, both ways."""
    pids = ctx.attrs["project_id"].to_numpy()
    tree = shapely.STRtree(ctx.geoms[dst])
    a, b = tree.query(ctx.geoms[src], predicate="dwithin", distance=_planar(ctx, src, min_m))
    s, d = src[a], dst[b]
    keep = s != d
    s, d = s[keep], d[keep]
    s, d, dist = _own_zone_distance(ctx, s, d, shapely.distance(ctx.geoms[s], ctx.geoms[d]),
                                    min_m)
    for x, y, m in zip(s, d, dist, strict=True):
        hits.setdefault(x, []).append((m, f"{ctx.name_zh[y]} {pids[y]}|{ctx.codes[y]} "
                                          f"{pids[y]}|{min_m:g}"))
        hits.setdefault(y, []).append((m, f"{ctx.name_zh[x]} {pids[x]}|{ctx.codes[x]} "
                                          f"{pids[x]}|{min_m:g}"))


def _parcel_hits(ctx, src: np.ndarray, parcels: tuple[np.ndarray, np.ndarray, np.ndarray],
                 min_m: float, hits: dict[int, list[tuple[float, str]]]) -> None:
    """Record the sites of ``src`` closer than ``min_m`` to the (selected) ``parcels``."""
    pgeoms, pcodes, pfids = parcels
    tree = shapely.STRtree(pgeoms)
    a, b = tree.query(ctx.geoms[src], predicate="dwithin", distance=_planar(ctx, src, min_m))
    sites, b, dist = _own_zone_distance(ctx, src[a], b, shapely.distance(ctx.geoms[src[a]],
                                                                         pgeoms[b]), min_m)
    for x, k, m in zip(sites, b, dist, strict=True):
        code, fid = pcodes[k], pfids[k]
        hits.setdefault(x, []).append((m, f"{code} 地块 {fid}|parcel {fid} ({code})|{min_m:g}"))


#: Chinese and English names of the control lines a setback may be measured from
#: (``to_layers``; a plan's own role is named by its role)
SETBACK_LAYER_NAMES = {
    "redline": ("生态保护红线", "the ecological red line"),
    "farmland": ("永久基本农田", "permanent basic farmland"),
    "udb": ("城镇开发边界", "the urban development boundary"),
    "cropland": ("耕地（三调）", "surveyed cropland"),
}


def _layer_name(role: str) -> tuple[str, str]:
    return SETBACK_LAYER_NAMES.get(role, (f"{role} 图层", f"the {role} layer"))


def _layer_hits(ctx, src: np.ndarray, role: str, layer: gpd.GeoDataFrame, min_m: float,
                hits: dict[int, list[tuple[float, str]]]) -> None:
    """Record the sites of ``src`` nearer than ``min_m`` to a feature of ``layer``.

    The distance is to the nearest feature (0 when the site touches or overlaps one).
    """
    geoms, _pos = layer_geometries(layer)
    if not len(geoms):
        return
    a, b = shapely.STRtree(geoms).query(ctx.geoms[src], predicate="dwithin", distance=min_m)
    if not len(a):
        return
    dist = shapely.distance(ctx.geoms[src[a]], geoms[b])
    nearest = pd.Series(dist).groupby(src[a]).min()
    zh, en = _layer_name(role)
    for x, m in nearest.items():
        if m < min_m:
            hits.setdefault(int(x), []).append((float(m), f"{zh}|{en}|{min_m:g}"))


def _setback_message(found: list[tuple[float, str]]) -> str:
    parts = [(d, *t.split("|")) for d, t in found[:3]]
    zh = "；".join(f"距{z} {d:.1f} m（应 ≥ {m} m）" for d, z, _e, m in parts)
    en = "; ".join(f"{d:.1f} m from {e} (setback {m} m)" for d, _z, e, m in parts)
    return bilingual(f"防护距离不足：{zh}", f"setback violated: {en}")


def _unchecked_note(roles: set[str]) -> tuple[str, str]:
    names = [_layer_name(r) for r in sorted(roles)]
    return ("、".join(z for z, _ in names), ", ".join(e for _, e in names))


def _put_setback_rest(ctx, out: Out, rest: np.ndarray, involved: np.ndarray,
                      unchecked: dict[int, set[str]]) -> None:
    """Verdicts of the sites without a violation: pass, or not checked for want of a layer."""
    missing = np.array([i in unchecked for i in rest], dtype=bool)
    checked = involved[rest]
    out.put(rest[checked & ~missing], "pass", bilingual("满足防护距离要求", "setbacks respected"))
    for i in rest[missing]:
        zh, en = _unchecked_note(unchecked[i])
        if involved[i]:
            out.set(i, "pass", bilingual(f"满足防护距离要求；未提供{zh}图层，未核查与其距离",
                                         f"setbacks respected; no layer of {en} given: "
                                         "that distance not checked"))
        else:
            out.set(i, "not_applicable", bilingual(f"未提供{zh}图层，未核查防护距离",
                                                   f"no layer of {en} given: setback not "
                                                   "checked"))
    out.put(rest[~checked & ~missing], "not_applicable", bilingual(
        "该类设施无防护距离要求", "no setback applies to this facility type"))


def _layers_pair(ctx, src: np.ndarray, pair: dict, layers: dict, min_m: float,
                 hits: dict[int, list[tuple[float, str]]],
                 unchecked: dict[int, set[str]]) -> bool:
    """Measure a pair's ``to_layers``; return whether any layer was there to measure."""
    measured = False
    for role in pair.get("to_layers", []):
        layer = layers.get(role)
        if layer is None:
            for i in src.tolist():
                unchecked.setdefault(i, set()).add(role)
            continue
        measured = True
        if len(src):
            _layer_hits(ctx, src, role, layer, min_m, hits)
    return measured


def rule_setback(ctx, parcels: gpd.GeoDataFrame | None, *,
                 layers: dict[str, Any] | None = None) -> Out:
    """Minimum distances between facility types, to land-use prefixes of parcels and to layers.

    ``layers``: the check's layers by role, for the pairs' ``to_layers`` (the control lines
    ``redline``, ``farmland``, ``udb``, ``cropland``, or a plan's own roles). A site touching or
    inside a feature of such a layer is 0 m from it. A control line not given is reported as
    not checked; a role the layers lack raises :class:`~spatialplan.errors.RulebookError`.
    """
    from spatialplan.rules._setback import check_setback_layers, setback_pairs

    layers = dict(layers or {})
    check_setback_layers(ctx.rules, layers, path="the rulebook's [[setback.pairs]]")
    out = Out(ctx.n)
    ok = ctx.eligible_now
    involved = np.zeros(ctx.n, dtype=bool)
    hits: dict[int, list[tuple[float, str]]] = {}
    unchecked: dict[int, set[str]] = {}
    pgeoms, ppos = layer_geometries(parcels)
    pcodes, pfids = _parcel_labels(parcels, ppos)
    selected: dict[tuple[str, ...], np.ndarray] = {}
    for pair in setback_pairs(ctx.rules):
        src_codes, _ = _split_targets(pair["from"], ctx.catalog)
        dst_codes, prefixes = _split_targets(pair.get("to", []), ctx.catalog)
        min_m = pair["min_m"]
        src = np.flatnonzero(ok & np.isin(ctx.codes, list(src_codes)))
        dst = np.flatnonzero(ok & np.isin(ctx.codes, list(dst_codes)))
        measured = _layers_pair(ctx, src, pair, layers, min_m, hits, unchecked)
        if pair.get("to") or measured:
            involved[src] = True
        involved[dst] = True
        if len(src) and len(dst):
            _site_hits(ctx, src, dst, min_m, hits)
        if len(src) and prefixes and len(pgeoms):
            key = tuple(prefixes)
            if key not in selected:
                selected[key] = np.flatnonzero(np.array(
                    [c is not None and c.startswith(key) for c in pcodes], dtype=bool))
            sel = selected[key]
            if len(sel):
                _parcel_hits(ctx, src, (pgeoms[sel], pcodes[sel], pfids[sel]), min_m, hits)
    rows = np.flatnonzero(ok)
    hit = np.array([i in hits for i in rows], dtype=bool)
    found = [sorted(hits[i]) for i in rows[hit]]
    nearest = np.array([f[0][0] for f in found], dtype=float)
    ctx.measures["setback_min_m"][rows[hit]] = nearest
    out.put(rows[hit], "fail", [_setback_message(f) for f in found], nearest, "m")
    _put_setback_rest(ctx, out, rows[~hit], involved, unchecked)
    return out


# --------------------------------------------------------------------------- overlap, as-built


def _overlap_message(near: list[str], biggest: float, total: float, cls: str,
                     tol_m2: float) -> str:
    if cls == "noise":
        return _noise(f"项目 {'、'.join(near)} 选址", f"the site of {', '.join(near)}",
                      biggest, tol_m2)
    zh, en = fmt_area(total)
    return bilingual(f"与项目 {'、'.join(near)} 选址重叠 {zh}",
                     f"site overlaps project {', '.join(near)} by {en}")


def rule_project_overlap(ctx) -> Out:
    """Two project sites overlapping → review (below tolerance: boundary-noise review)."""
    out = Out(ctx.n)
    pids = ctx.attrs["project_id"].to_numpy()
    si, oi, area = _self_overlaps(ctx)
    keep = ctx.eligible_now[si] & ctx.eligible_now[oi]
    keep &= ~is_zero(area, ctx.area[si])
    si, oi, area = si[keep], oi[keep], area[keep]
    order = np.lexsort((-area, si))
    si, oi, area = si[order], oi[order], area[order]
    total = np.bincount(si, weights=area, minlength=ctx.n)
    ctx.measures["project_overlap_m2"] = np.where(ctx.usable, total, np.nan)
    rows = np.flatnonzero(ctx.eligible_now)
    starts = np.searchsorted(si, rows, side="left")
    stops = np.searchsorted(si, rows, side="right")
    alone = starts == stops
    out.put(rows[alone], "pass", bilingual("与其他项目选址无重叠", "no overlap with other sites"),
            0.0, "m2")
    rows, starts, stops = rows[~alone], starts[~alone], stops[~alone]
    biggest = area[starts]
    cls = classify_overlap(biggest, ctx.area[rows], ctx.tol_m2[rows], ctx.tol_share[rows])
    out.put(rows, "review", [
        _overlap_message([str(pids[o]) for o in oi[a:min(b, a + 3)]], float(area[a]),
                         float(total[i]), cls[k], ctx.tol_m2[i])
        for k, (i, a, b) in enumerate(zip(rows, starts, stops, strict=True))],
        total[rows], "m2")
    return out


def _built_parts(built: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(project_id, feature_id, geometry)`` of the usable footprints."""
    geoms, pos = layer_geometries(built)
    pid = (text_values(built["project_id"])[pos] if "project_id" in built.columns
           else np.full(len(pos), None, dtype=object))
    fid = (text_values(built["feature_id"])[pos] if "feature_id" in built.columns
           else np.array([f"built:{p}" for p in pos], dtype=object))
    return pid, fid, geoms


def _dissolve_built(pid: np.ndarray, geoms: np.ndarray) -> dict[str, Any]:
    """Union the footprints per ``project_id`` (one footprint: itself; no id: left out)."""
    named = np.flatnonzero(pd.notna(pid))
    codes, keys = pd.factorize(pid[named])
    order = np.argsort(codes, kind="stable")  # footprints of one project in input order
    bounds = np.searchsorted(codes[order], np.arange(len(keys) + 1))
    per_project: dict[str, Any] = {}
    for key, a, b in zip(keys, bounds[:-1], bounds[1:], strict=True):
        parts = geoms[named[order[a:b]]]
        per_project[key] = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    return per_project


def _as_built_message(share: float, outside: float, needed: float, *, ok: bool) -> str:
    zh, en = fmt_area(outside)
    if ok:
        return bilingual(f"建成范围 {_pct(share)} 位于规划选址内（超出 {zh}）",
                         f"{_pct(share)} of the as-built footprint inside the planned site "
                         f"({en} outside)")
    return bilingual(
        f"建成范围仅 {_pct(share)} 位于规划选址内，超出 {zh}（应 ≥ {_pct(needed)}）",
        f"only {_pct(share)} of the as-built footprint inside the planned site, "
        f"{en} outside (needs ≥ {_pct(needed)})")


def rule_as_built(ctx, built: gpd.GeoDataFrame | None) -> Out:
    """As-built footprint must lie (≥ ``min_inside_share``) inside the planned site."""
    if built is None:
        return _no_layer(ctx, "建成范围", "as-built footprint (built)")
    out = Out(ctx.n)
    pid, _fid, geoms = _built_parts(built)
    per_project = _dissolve_built(pid, geoms)
    pids = ctx.attrs["project_id"].to_numpy()
    min_share = ctx.setting("as_built", "min_inside_share")
    eligible = np.flatnonzero(ctx.eligible_now)
    rows = eligible[np.array([pids[i] in per_project for i in eligible], dtype=bool)]
    if len(rows):
        fps = np.array([per_project[pids[i]] for i in rows], dtype=object)
        inside = shapely.area(shapely.intersection(fps, ctx.geoms[rows]))
        fp_area = shapely.area(fps)
        share = np.array([a_in / a_fp if a_fp > 0 else 0.0 for a_in, a_fp in zip(
            inside.tolist(), fp_area.tolist(), strict=True)], dtype=float)
        ctx.measures["built_inside_share"][rows] = share
        outside = np.maximum(fp_area - inside, 0.0)
        if ctx.rescaled:
            outside = outside * ctx.area_scale[rows]
        needed = min_share[rows]
        ok = np.array([s >= m for s, m in zip(share.tolist(), needed, strict=True)], dtype=bool)
        for status, pick in (("pass", ok), ("fail", ~ok)):
            out.put(rows[pick], status, [
                _as_built_message(*v, ok=status == "pass") for v in zip(
                    share[pick].tolist(), outside[pick].tolist(), needed[pick], strict=True)],
                share[pick], "share")
    rest = np.flatnonzero(ctx.eligible_now & (out.status == None))  # noqa: E711
    done = np.array([s == "completed" for s in ctx.attrs["status"].to_numpy()[rest]], dtype=bool)
    out.put(rest[done], "review", bilingual("已建成但无建成范围图斑，需补充竣工测量",
                                            "completed but no as-built footprint recorded"))
    out.put(rest[~done], "not_applicable", bilingual("尚无建成范围", "no as-built footprint yet"))
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
    pid, fid, geoms = _built_parts(built)
    rows = pd.DataFrame({"project_id": pid, "feature_id": fid, "area_m2": shapely.area(geoms)})
    rows["geometry"] = geoms
    ids = rows["project_id"].to_numpy()
    lost = np.array([p is None or p not in known_ids for p in ids], dtype=bool)
    sub = rows[lost].reset_index(drop=True)
    sub["project_id"] = np.where(pd.isna(sub["project_id"].to_numpy()), sub["feature_id"],
                                 sub["project_id"]).astype(object)
    return gpd.GeoDataFrame(sub, geometry="geometry", crs=built.crs)
