"""Chinese column labels for tables planners open in Excel (统计表、冲突表)."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd

__all__ = ["chinese_headers", "LINE_NAMES"]

#: control-line (and survey layer) names as planners write them
LINE_NAMES = {
    "redline": "生态保护红线",
    "farmland": "永久基本农田",
    "udb": "城镇开发边界",
    "cropland": "耕地（三调）",
}

_FIXED = {
    "township_code": "乡镇代码",
    "township_name": "乡镇名称",
    "feature_id": "要素编号",
    "area_m2": "面积(m²,平面)",
    "area_ellipsoidal_m2": "面积(m²,椭球)",
    "n_projects": "项目数",
    "eight_present": "已有/规划“8”类设施",
    "eight_missing": "缺少“8”类设施",
    "n_group_8": "“8”类项目数",
    "n_group_X": "“X”类项目数",
    "n_unknown": "类别未识别项目数",
    "layer_a": "图层A",
    "layer_b": "图层B",
    "feature_a": "要素A",
    "feature_b": "要素B",
    "kind": "类型",
}

_SUFFIXES = {
    "_m2": "面积(m²)",
    "_ellipsoidal_m2": "面积(m²,椭球)",
    "_ha": "面积(公顷)",
    "_mu": "面积(亩)",
    "_share": "占乡镇比例",
}


def _label(column: str) -> str:
    """The Chinese label of one column, or the column name itself when none is known."""
    if column in _FIXED:
        return _FIXED[column]
    for line, name in LINE_NAMES.items():
        for suffix, what in sorted(_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
            if column == f"{line}{suffix}":
                return f"{name}{what}"
    return column


def chinese_headers(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy without geometry whose columns carry Chinese labels (unknown ones kept).

    Examples
    --------
    >>> import pandas as pd
    >>> list(chinese_headers(pd.DataFrame(columns=["township_code", "redline_mu"])).columns)
    ['乡镇代码', '生态保护红线面积(亩)']
    """
    if isinstance(df, gpd.GeoDataFrame):
        df = pd.DataFrame(df.drop(columns=df.geometry.name))
    return df.rename(columns=_label)
