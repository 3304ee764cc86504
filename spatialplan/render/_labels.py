"""Chinese labels for what a reader sees.

The tables planners open in Excel (统计表、冲突表) and the words of the HTML report
(layer roles, rules, verdicts, units, conflict kinds).

The GeoPackage keeps the canonical English keys and exact values; the human-facing tables get
Chinese headers, Chinese words with the English key beside them (``冲突 conflict``), no
internal ids (``townships:0``), and areas rounded to what their unit means (m² to 0.01,
公顷 and 亩 to 0.0001).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

__all__ = [
    "AREA_DECIMALS",
    "EIGHT_COLUMNS",
    "KIND_NAMES",
    "LINE_NAMES",
    "PROJECT_STATUS_NAMES",
    "ROLE_NAMES",
    "RULE_NAMES",
    "SUBJECT_NAMES",
    "UNIT_NAMES",
    "VERDICT_NAMES",
    "bilingual",
    "chinese_headers",
    "county_headers",
    "facility_names",
    "feature_number",
    "round_areas",
    "village_headers",
]

#: control-line (and survey layer) names as planners write them
LINE_NAMES = {
    "redline": "生态保护红线",
    "farmland": "永久基本农田",
    "udb": "城镇开发边界",
    "cropland": "耕地（三调）",
}

#: layer roles of a plan
ROLE_NAMES = {
    "townships": "乡镇界线", **LINE_NAMES, "parcels": "规划地块", "projects": "项目选址",
    "built": "建成范围", "dem": "数字高程模型",
}
#: siting rules (:data:`spatialplan.rules.rulebook.RULE_IDS`)
RULE_NAMES = {
    "township": "所属乡镇", "redline": "生态保护红线", "farmland": "永久基本农田",
    "cropland": "耕地", "udb": "城镇开发边界", "landuse": "用地兼容性", "slope": "坡度",
    "setback": "防护距离", "project_overlap": "项目选址重叠", "map_first": "先落图、后落地",
    "as_built": "建成范围与选址", "schedule": "建设时序",
}
#: verdicts of projects and statuses of findings
VERDICT_NAMES = {"pass": "符合", "review": "需论证", "fail": "不符合", "error": "无法核查",
                 "not_applicable": "不适用"}
#: register statuses (建设状态)
PROJECT_STATUS_NAMES = {"planned": "拟建", "under_construction": "在建", "completed": "已建成"}
#: kinds of line conflicts and of township conflicts
KIND_NAMES = {"conflict": "冲突", "boundary_noise": "边界误差", "overlap": "重叠", "gap": "缝隙"}
#: subjects of findings
SUBJECT_NAMES = {"project": "项目", "unmapped_build": "未落图的建成图斑"}
#: units of finding measures
UNIT_NAMES = {"m2": "m²", "m": "m", "share": "比例", "deg": "°", "d": "天", "issues": "项",
              "mu": "亩", "ha": "公顷"}
#: decimals an area keeps in a human-facing table, by column-name suffix
AREA_DECIMALS = {"_m2": 2, "_ha": 4, "_mu": 4}

_FIXED = {
    "township_code": "乡镇代码",
    "township_name": "乡镇名称",
    "feature_id": "要素编号",
    "area_m2": "平面面积(m²)",
    "area_ellipsoidal_m2": "椭球面积(m²)",
    "n_projects": "项目数",
    "eight_present": "已有/规划且合规的“8”类设施",
    "eight_missing": "缺少合规的“8”类设施",
    "eight_noncompliant": "已登记但不合规的“8”类设施",
    "eight_unchecked": "已登记但无法核查的“8”类设施",
    "n_group_8": "“8”类项目数",
    "n_group_X": "“X”类项目数",
    "n_unknown": "类别未识别项目数",
    "layer_a": "图层A",
    "layer_b": "图层B",
    "feature_a": "要素A序号(源图层第n个)",
    "feature_b": "要素B序号(源图层第n个)",
    "kind": "类型",
    "pair_area_m2": "两要素重叠总面积(m²)",
    "pair_share": "重叠占较小要素比例",
    "line": "控制线",
    "township_a": "乡镇A代码",
    "township_b": "乡镇B代码",
    "overlap_townships": "与之重叠的乡镇",
    "outside_m2": "乡镇外面积(m²)",
    "slope_mean_deg": "平均坡度(°)",
    "slope_max_deg": "最大坡度(°)",
    "share_over_15": "坡度大于15°比例",
    "share_over_25": "坡度大于25°比例",
    "elev_mean_m": "平均高程(m)",
    "coverage": "DEM覆盖比例",
    "n_pixels": "DEM像元数",
    "flag": "坡度数据情况",
    "slope_le2_m2": "坡度≤2°面积(m²)",
    "slope_2_6_m2": "坡度2°–6°面积(m²)",  # noqa: RUF001 - en dash: range sign of the header
    "slope_6_15_m2": "坡度6°–15°面积(m²)",  # noqa: RUF001 - en dash: range sign of the header
    "slope_15_25_m2": "坡度15°–25°面积(m²)",  # noqa: RUF001 - en dash: range sign of the header
    "slope_gt25_m2": "坡度>25°面积(m²)",
    # the township indicators and the county roll-up (spatialplan.analysis.rollup)
    "n_pass": "符合项目数",
    "n_review": "需论证项目数",
    "n_fail": "不符合项目数",
    "n_error": "无法核查项目数",
    "investment_wan": "总投资(万元)",
    "investment_planned_wan": "拟建项目投资(万元)",
    "investment_under_construction_wan": "在建项目投资(万元)",
    "investment_completed_wan": "已建成项目投资(万元)",
    "investment_other_wan": "建设状态未填项目投资(万元)",
    "eight_share": "“8”类设施齐备率",
    "compliance_rate": "合规率(符合项目占比)",
    "county_code": "县级行政区代码",
    "county_rank": "县内排名",
    "n_townships": "乡镇数",
    "behind_compliance_rate": "合规率低于全县的乡镇",
    "behind_eight_share": "“8”类设施齐备率低于全县的乡镇",
}
#: the village reach tables (``village_reach``, ``village_seat``; :func:`village_headers`)
_VILLAGE = {
    "village_code": "村代码",
    "name": "村名称",
    "township_code": "乡镇代码",
    "facility": "设施类型",
    "project_id": "最近的可服务项目编号",
    "network_m": "道路距离(m)",
    "straight_m": "直线距离(m)",
    "within_limit": "在服务距离内",
    "limit_m": "服务距离上限(m)",
    "network_min": "最快道路用时(min)",
    "limit_min": "服务时间上限(min)",
    "reason": "原因",
    "seat_source": "镇区驻地来源",
    "seat_m": "到本乡镇驻地道路距离(m)",
    "connected": "道路连通本乡镇驻地",
}
#: decimals of the distances in the village tables (metres)
_DISTANCE_DECIMALS = 1
#: the 8+X coverage columns that list facility codes
EIGHT_COLUMNS = ("eight_present", "eight_missing", "eight_noncompliant", "eight_unchecked")
#: the ``flag`` of terrain statistics
FLAG_NAMES = {"ok": "正常", "too_few_pixels": "像元过少", "partial_coverage": "DEM部分覆盖",
              "no_data": "无DEM数据"}

#: township_stats line columns: planar (analysis CRS) and ellipsoidal (CGCS2000) figures; the
#: shares are of the ellipsoidal areas
_SUFFIXES = {
    "_m2": "平面面积(m²)",
    "_ha": "平面面积(公顷)",
    "_mu": "平面面积(亩)",
    "_ellipsoidal_m2": "椭球面积(m²)",
    "_ellipsoidal_ha": "椭球面积(公顷)",
    "_ellipsoidal_mu": "椭球面积(亩)",
    "_share": "占乡镇比例(椭球面积)",
    "_double_counted_m2": "重复计入面积(m²,乡镇重叠处)",
}


def _label(column: str) -> str:
    """Return the Chinese label of one column, or the column name itself when none is known."""
    if column in _FIXED:
        return _FIXED[column]
    for line, name in LINE_NAMES.items():
        for suffix, what in sorted(_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
            if column == f"{line}{suffix}":
                return f"{name}{what}"
    return column


def bilingual(value: Any, names: Mapping[str, str]) -> Any:
    """``"冲突 conflict"``: the Chinese word of a key with the key beside it (``_`` → space).

    A value without a Chinese word (or not text) is returned unchanged.

    Examples
    --------
    >>> bilingual("boundary_noise", KIND_NAMES), bilingual("other", KIND_NAMES)
    ('边界误差 boundary noise', 'other')
    """
    if isinstance(value, str) and value in names:
        return f"{names[value]} {value.replace('_', ' ')}"
    return value


_FEATURE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*:(\d+)$")


def feature_number(feature_id: Any) -> Any:
    """Return the 1-based position of a feature in its source layer (``"farmland:334"`` → 335).

    ``feature_id`` is ``"{role}:{n}"`` with n the 0-based row of the source; a reader finds
    "the 335th feature" without knowing the internal id. Other values are returned unchanged.

    Examples
    --------
    >>> feature_number("farmland:334"), feature_number(None)
    (335, None)
    """
    m = _FEATURE_ID.match(feature_id) if isinstance(feature_id, str) else None
    return int(m.group(1)) + 1 if m else feature_id


def facility_names(value: Any, catalog: Any = None) -> Any:
    """``"road;school"`` → ``"道路、学校"``: facility codes as the catalogue names them.

    Codes the catalogue does not know are kept as given; a missing value stays missing.

    Examples
    --------
    >>> facility_names("road;school")
    '道路、学校'
    """
    return _named(value, _facility_name_map(catalog))


def facility_texts(values: Iterable[Any], catalog: Any = None) -> list[Any]:
    """:func:`facility_names` of each value, the catalogue's code → name map built once.

    Examples
    --------
    >>> facility_texts(["road;school", None, "road；unknown"])
    ['道路、学校', None, '道路、unknown']
    """
    names = _facility_name_map(catalog)
    return [_named(v, names) for v in values]


def _named(value: Any, names: dict[str, str]) -> Any:
    """``value``'s facility codes (``;``-separated) as ``names`` gives them, ``、``-joined."""
    if not isinstance(value, str):
        return value
    parts = [p.strip() for p in value.replace("；", ";").split(";") if p.strip()]
    return "、".join(names.get(p, p) for p in parts)


def _facility_name_map(catalog: Any) -> dict[str, str]:
    if catalog is None:
        return _bundled_facility_names()
    fac = catalog.facilities
    return {str(code): str(name) for code, name in zip(fac.index, fac["name_zh"], strict=True)}


@functools.lru_cache(maxsize=1)
def _bundled_facility_names() -> dict[str, str]:
    from spatialplan.rules.catalog import read_catalog

    return _facility_name_map(read_catalog())


def round_areas(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy whose float area columns are rounded per unit (see :data:`AREA_DECIMALS`).

    Examples
    --------
    >>> round_areas(pd.DataFrame({"a_m2": [1.23456], "a_mu": [1.234567]})).iloc[0].tolist()
    [1.23, 1.2346]
    """
    out = df.copy()
    for c in out.columns:
        for suffix, digits in AREA_DECIMALS.items():
            if str(c).endswith(suffix) and pd.api.types.is_float_dtype(out[c].dtype):
                out[c] = out[c].round(digits)
    return out


def chinese_headers(df: pd.DataFrame, *, catalog: Any = None) -> pd.DataFrame:
    """Return a copy for readers.

    Chinese headers (unknown ones kept), no geometry, no ``feature_id``, areas rounded per unit (m²
    0.01, 公顷 and 亩 0.0001), layer roles and conflict kinds in Chinese with the key beside them,
    feature ids as their 1-based position in the source layer, 8+X facility codes as their Chinese
    names.

    Parameters
    ----------
    df
        ``township_stats``, ``line_conflicts``, ``township_conflicts``, ``outside_townships``
        or the township terrain statistics (with their ``township_code`` as a column).
    catalog
        Facility catalogue for the names of the ``eight_*`` coverage columns (default: the
        bundled one).

    Examples
    --------
    >>> import pandas as pd
    >>> list(chinese_headers(pd.DataFrame(columns=["township_code", "redline_mu"])).columns)
    ['乡镇代码', '生态保护红线平面面积(亩)']
    """
    if isinstance(df, gpd.GeoDataFrame):
        df = pd.DataFrame(df.drop(columns=df.geometry.name))
    df = round_areas(df.drop(columns=[c for c in df.columns if c == "feature_id"]))
    for col, names in (("layer_a", ROLE_NAMES), ("layer_b", ROLE_NAMES), ("line", ROLE_NAMES),
                       ("kind", KIND_NAMES), ("flag", FLAG_NAMES)):
        if col in df.columns:
            df[col] = _map_values(df[col], lambda v, n=names: bilingual(v, n))
    for col in ("feature_a", "feature_b"):
        if col in df.columns:
            df[col] = _map_values(df[col], feature_number)
    names = _facility_name_map(catalog)  # once, not once per value
    for col in EIGHT_COLUMNS:
        if col in df.columns:
            df[col] = _map_values(df[col], lambda v: _named(v, names))
    return df.rename(columns=_label).rename(columns=_reach_share_labels(df.columns, catalog))


def _reach_share_labels(columns: pd.Index, catalog: Any) -> dict[str, str]:
    """``reach_share_school`` → ``学校道路可达村比例`` (the catalogue's name of the type)."""
    names = _facility_name_map(catalog)
    return {c: f"{names.get(c[12:], c[12:])}道路可达村比例" for c in map(str, columns)
            if c.startswith("reach_share_")}


def village_headers(df: pd.DataFrame, *, catalog: Any = None) -> pd.DataFrame:
    """Return the ``village_reach`` or ``village_seat`` table for readers.

    Chinese headers, no geometry (the path), facility types by their Chinese names with the code
    beside them, distances to 0.1 m, ``within_limit`` and ``connected`` as 是/否.

    Examples
    --------
    >>> t = village_headers(pd.DataFrame({"village_code": ["V1"], "facility": ["school"],
    ...                                   "network_m": [1234.567], "within_limit": [True]}))
    >>> list(t.columns), t.iloc[0].astype(str).tolist()
    (['村代码', '设施类型', '道路距离(m)', '在服务距离内'], ['V1', '学校 school', '1234.6', '是'])
    """
    if isinstance(df, gpd.GeoDataFrame):
        df = pd.DataFrame(df.drop(columns=df.geometry.name))
    df = df.copy()
    names = _facility_name_map(catalog)
    if "facility" in df.columns:
        df["facility"] = _map_values(df["facility"], lambda v: bilingual(v, names))
    for col in ("network_m", "straight_m", "limit_m", "seat_m", "network_min", "limit_min"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").round(_DISTANCE_DECIMALS)
    for col in ("within_limit", "connected"):
        if col in df.columns:
            df[col] = np.where(df[col].fillna(False).astype(bool), "是", "否")
    return df.rename(columns=lambda c: _VILLAGE.get(c, c))


def _map_values(values: pd.Series, func) -> pd.Series:
    """``func`` on each distinct value of a column (a province has 10⁵ conflicts)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([func(v) for v in uniques.tolist()] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def county_headers(df: pd.DataFrame, *, catalog: Any = None) -> pd.DataFrame:
    """Return :func:`chinese_headers` of a county table: a share is of the county (占全县比例).

    Examples
    --------
    >>> list(county_headers(pd.DataFrame(columns=["county_code", "redline_share"])).columns)
    ['县级行政区代码', '生态保护红线占全县比例(椭球面积)']
    """
    out = chinese_headers(df, catalog=catalog)
    out.columns = [str(c).replace("占乡镇比例", "占全县比例") for c in out.columns]
    return out
