"""Synthetic plan layers and results for the map, layout and report tests (built in code).

Everything is in EPSG:4545 (CGCS2000 3-degree GK zone 36, CM 108°E) around 107.5°E 27.8°N.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_076_000.0

#: strings that must never reach a page unescaped
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "\"'><svg onload=alert(3)>",
    "`${alert(4)}`",
    "{{ 7*7 }}{% raw %}",
    "乡镇𠀀😀 & 名称",
]
#: substrings whose presence in the HTML would mean a hostile string got through raw
RAW_MARKERS = ["<img src=x", "<script>alert(2)", "<svg onload", "${alert(4)}", "{{ 7*7 }}",
               "{% raw %}"]


def box(dx: float, dy: float, w: float, h: float) -> shapely.Polygon:
    return shapely.box(X0 + dx, Y0 + dy, X0 + dx + w, Y0 + dy + h)


def layers(*, hostile: bool = False) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Two townships with the three control lines, parcels, conflicts, projects, findings."""
    names = ["示范镇", "乌江镇"]
    pnames = ["示范镇卫生院", "中心小学", "农贸市场", "污水处理站"]
    if hostile:
        names = [HOSTILE[0] + "镇", HOSTILE[5]]
        pnames = [HOSTILE[0], HOSTILE[1], HOSTILE[2], HOSTILE[3] + HOSTILE[4]]
    townships = gpd.GeoDataFrame(
        {"code": ["520123001", "520123002"], "name": names},
        geometry=[box(0, 0, 6000, 5000), box(6000, 0, 5000, 5000)], crs=CRS)
    redline = gpd.GeoDataFrame({"feature_id": ["redline:0", "redline:1"]},
                               geometry=[box(300, 3000, 1500, 1500), box(8000, 300, 2000, 1200)],
                               crs=CRS)
    farm = [box(2000 + 300 * i, 400 + 250 * j, 250, 200) for i in range(6) for j in range(4)]
    farmland = gpd.GeoDataFrame({"feature_id": [f"farmland:{i}" for i in range(len(farm))]},
                                geometry=farm, crs=CRS)
    udb = gpd.GeoDataFrame({"feature_id": ["udb:0"], "zone": ["010"]},
                           geometry=[box(3500, 2500, 2000, 2000)], crs=CRS)
    codes = ["070101", "080403", "0806", "090101", "1207", "1401"]
    parcels = gpd.GeoDataFrame(
        {"feature_id": [f"parcels:{i}" for i in range(6)], "landuse": codes},
        geometry=[box(3500 + 400 * (i % 3), 2500 + 600 * (i // 3), 400, 600) for i in range(6)],
        crs=CRS)
    conflicts = gpd.GeoDataFrame(
        {"layer_a": ["redline", "farmland"], "layer_b": ["farmland", "udb"],
         "feature_a": ["redline:0", "farmland:3"], "feature_b": ["farmland:0", "udb:0"],
         "township_code": ["520123001", "520123001"], "area_m2": [1200.0, 0.4],
         "kind": ["conflict", "boundary_noise"]},
        geometry=[box(1400, 3000, 100, 12), box(3500, 2500, 0.5, 0.8)], crs=CRS)
    projects = gpd.GeoDataFrame(
        {"project_id": ["XM001", "XM002", "XM003", "XM004", "XM005"],
         "feature_id": [f"projects:{i}" for i in range(5)],
         "name": [*pnames, "未落图项目"],
         "township_code": ["520123001", "520123001", "520123002", "520123002", "520123001"],
         "facility": ["080602", "080403", "090101", "1302", "XYZ"],
         "facility_name": ["卫生院", "学校", "农贸市场", "污水处理", None],
         "group": ["8", "8", "8", "8", None],
         "status": ["planned"] * 5,
         "verdict": ["pass", "review", "fail", "pass", "error"],
         "reasons": ["全部符合 all rules pass", "开发边界外 outside UDB",
                     "占用永久基本农田 occupies farmland", "", "未知设施类型 unknown facility"],
         "area_m2": [5000.0, 8000.0, 6000.0, 3000.0, np.nan],
         "redline_m2": [0.0, 0.0, 0.0, 0.0, np.nan],
         "farmland_m2": [0.0, 0.0, 1500.0, 0.0, np.nan],
         "farmland_mu": [0.0, 0.0, 2.25, 0.0, np.nan],
         "outside_udb_m2": [0.0, 8000.0, 6000.0, 3000.0, np.nan]},
        geometry=[box(3700, 2700, 100, 50), box(1000, 1000, 100, 80), box(2300, 500, 100, 60),
                  box(9000, 3500, 60, 50), None],
        crs=CRS)
    rules = ["redline", "farmland", "udb", "landuse"]
    rows = []
    for pid, verdict in zip(projects["project_id"], projects["verdict"], strict=True):
        for rule in rules:
            status = verdict if rule == "farmland" else "pass"
            rows.append({"project_id": pid, "rule": rule, "status": status,
                         "measure": 1500.0 if status == "fail" else 0.0, "unit": "m2",
                         "message": f"{rule} 检查 check",
                         "source": "自然资发〔2022〕142号"})
    findings = pd.DataFrame(rows)
    if hostile:
        findings.loc[0, "message"] = HOSTILE[1]
        findings.loc[1, "rule"] = HOSTILE[0]
        findings.loc[2, "source"] = HOSTILE[4]
    stats = townships.rename(columns={"code": "township_code", "name": "township_name"})
    stats["area_m2"] = stats.area
    stats["area_ellipsoidal_m2"] = stats.area * 1.0003
    for line, gdf in (("redline", redline), ("farmland", farmland), ("udb", udb)):
        a = np.array([gdf.intersection(g).area.sum() for g in stats.geometry])
        stats[f"{line}_m2"] = a
        stats[f"{line}_ha"] = a / 1e4
        stats[f"{line}_mu"] = a / (2000 / 3)
        stats[f"{line}_share"] = a / stats["area_m2"]
    stats["n_projects"] = [3, 2]
    stats["eight_present"] = ["卫生院; 学校", "农贸市场; 污水处理"]
    stats["eight_missing"] = ["敬老院; 公园", "卫生院; 学校; 敬老院"]
    return {"townships": townships, "redline": redline, "farmland": farmland, "udb": udb,
            "parcels": parcels, "conflicts": conflicts, "projects": projects,
            "findings": findings, "township_stats": stats}


def many_small_polygons(n: int = 50_000, *, size: float = 8.0, gap: float = 6.0
                        ) -> gpd.GeoDataFrame:
    """``n`` small disjoint squares (farmland-like parcels) on a grid."""
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    x = X0 + 500 + (i % side) * (size + gap)
    y = Y0 + 500 + (i // side) * (size + gap)
    geoms = shapely.box(x, y, x + size, y + size)
    return gpd.GeoDataFrame({"feature_id": [f"farmland:{k}" for k in range(n)]},
                            geometry=geoms, crs=CRS)
