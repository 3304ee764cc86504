"""The village reach in a whole check: results.gpkg layers and township_stats shares."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import LineString, Point, Polygon, box

import spatialplan as sp

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_070_000.0


def _plan(tmp_path, *, villages=True, population=True, rules="", speeds=None):
    gpkg = tmp_path / "plan.gpkg"
    gpd.GeoDataFrame({"XZQDM": ["T1", "T2"], "XZQMC": ["甲镇", "乙镇"]},
                     geometry=[box(X0, Y0, X0 + 1000, Y0 + 2000),
                               box(X0 + 1000, Y0, X0 + 3000, Y0 + 2000)],
                     crs=CRS).to_file(gpkg, layer="XZQ")
    gpd.GeoDataFrame({"XMDM": ["P1", "P2"], "XMMC": ["甲镇学校", "乙镇卫生院"],
                      "XMLB": ["school", "health_center"]},
                     geometry=[Polygon([(X0 + 100, Y0 + 60), (X0 + 160, Y0 + 60),
                                        (X0 + 130, Y0 + 10)]),
                               box(X0 + 2500, Y0 + 10, X0 + 2560, Y0 + 60)],
                     crs=CRS).to_file(gpkg, layer="XM")
    text = ('[plan]\nname = "reach"\ncrs = "EPSG:4545"\n'
            '[layers.townships]\npath = "plan.gpkg"\nlayer = "XZQ"\n'
            '[layers.projects]\npath = "plan.gpkg"\nlayer = "XM"\n')
    if villages:
        cols = {"CJDM": ["V1", "V2", "V3"], "CJMC": ["一村", "二村", "三村"]}
        if population:
            cols["RK"] = [100.0, 300.0, 50.0]
        gpd.GeoDataFrame(cols, geometry=[Point(X0 + 500, Y0 + 30), Point(X0 + 900, Y0 + 30),
                                         Point(X0 + 2900, Y0 + 1500)],
                         crs=CRS).to_file(gpkg, layer="CJ")
        # one road along y = Y0 from x 0 to 3000; V3 has a road of its own (a 500 m gap)
        gpd.GeoDataFrame({} if speeds is None else {"SJSD": speeds},
                         geometry=[LineString([(X0, Y0), (X0 + 3000, Y0)]),
                                   LineString([(X0 + 2900, Y0 + 500), (X0 + 2900, Y0 + 1500)])],
                         crs=CRS).to_file(gpkg, layer="DL")
        text += ('[layers.villages]\npath = "plan.gpkg"\nlayer = "CJ"\n'
                 '[layers.roads]\npath = "plan.gpkg"\nlayer = "DL"\n')
    if rules:
        (tmp_path / "rules.toml").write_text(rules, encoding="utf-8")
        text += '[rules]\npath = "rules.toml"\n'
    (tmp_path / "plan.toml").write_text(text, encoding="utf-8")
    return sp.read_plan(tmp_path / "plan.toml")


def test_a_check_with_villages_writes_the_reach_layers_and_shares(tmp_path):
    plan = _plan(tmp_path, rules='[reach.limits_m]\nschool = 700.0\n')
    result = sp.run_check(plan)
    reach = result.village_reach
    school = reach.loc[reach["facility"] == "school"].set_index("village_code")
    # V1: 30 to the road, 370 along it to x = 130 (below the site's tip), 10 up to the site
    assert school.loc["V1", "network_m"] == pytest.approx(30 + 370 + 10)
    assert school.loc["V2", "network_m"] == pytest.approx(30 + 770 + 10)
    assert not school.loc["V2", "within_limit"]
    assert school.loc["V3", "reason"].endswith("no road connection to any serving project")
    stats = result.township_stats.set_index("township_code")
    # T1: V1 (100 people) within, V2 (300) not: 100 / 400
    assert stats.loc["T1", "reach_share_school"] == pytest.approx(0.25)
    assert stats.loc["T2", "reach_share_school"] == 0.0
    out = sp.write_check(plan, result, tmp_path / "out", outputs=["gpkg"])
    assert out
    layers = {name for name, _ in pyogrio.list_layers(tmp_path / "out" / "results.gpkg")}
    assert {"village_reach", "village_seat"} <= layers
    written = gpd.read_file(tmp_path / "out" / "results.gpkg", layer="village_reach")
    assert len(written) == len(reach) == 3 * reach["facility"].nunique()
    assert written.geometry.iloc[0].geom_type == "LineString"


def test_without_villages_there_is_no_reach(tmp_path):
    result = sp.run_check(_plan(tmp_path, villages=False))
    assert result.village_reach is None and result.village_seat is None
    assert not any(c.startswith("reach_share_") for c in result.township_stats.columns)


def test_reach_off_in_the_rulebook(tmp_path):
    result = sp.run_check(_plan(tmp_path, rules="[reach]\nenabled = false\n"))
    assert result.village_reach is None


def test_a_village_layer_without_village_code_names_the_aliases(tmp_path):
    gpkg = tmp_path / "v.gpkg"
    gpd.GeoDataFrame({"CJMC": ["一村"]}, geometry=[Point(X0, Y0)], crs=CRS).to_file(gpkg)
    with pytest.raises(sp.errors.FieldError) as err:
        sp.read_layer(gpkg, role="villages")
    assert "village_code" in str(err.value) and "CJDM" in str(err.value)


def test_roads_in_another_crs_are_reprojected(tmp_path):
    plan = _plan(tmp_path)
    roads = plan.layers["roads"].data
    lonlat = roads.drop(columns="feature_id").to_crs(4490)
    pyogrio.write_dataframe(lonlat, tmp_path / "plan.gpkg", layer="DL")
    again = sp.read_plan(tmp_path / "plan.toml")
    assert again.layers["roads"].data.crs == roads.crs
    assert again.layers["roads"].data.geometry.iloc[0].length == pytest.approx(3000, abs=0.01)


def test_village_outlines_are_read_and_a_line_is_rejected(tmp_path):
    gpkg = tmp_path / "v.gpkg"
    gpd.GeoDataFrame({"CJDM": ["V1", "V2", "V3"], "CJMC": ["一村", "二村", "三村"]},
                     geometry=[box(X0, Y0, X0 + 100, Y0 + 100), Point(X0, Y0),
                               LineString([(X0, Y0), (X0 + 5, Y0)])], crs=CRS).to_file(gpkg)
    layer = sp.read_layer(gpkg, role="villages")
    assert layer.data["village_code"].tolist() == ["V1", "V2"]
    assert layer.rejected["reason"].iloc[0].startswith("LineString")


def test_the_reach_tables_and_the_report_section_are_written(tmp_path):
    plan = _plan(tmp_path, rules='[reach.limits_m]\nschool = 700.0\n')
    result = sp.run_check(plan)
    written = sp.write_check(plan, result, tmp_path / "out",
                             outputs=("gpkg", "stats_tables", "report", "map"))
    assert "Villages by facility types reached" in Path(written["map"]).read_text("utf-8")
    csv = pd.read_csv(written["village_reach_csv"], encoding="utf-8-sig", dtype=str)
    assert list(csv.columns[:8]) == ["村代码", "村名称", "乡镇代码", "设施类型",
                                     "最近的可服务项目编号", "道路距离(m)", "直线距离(m)",
                                     "在服务距离内"]
    school = csv.loc[csv["设施类型"] == "学校 school"].set_index("村代码")
    assert school.loc["V1", "道路距离(m)"] == "410.0" and school.loc["V1", "在服务距离内"] == "是"
    assert school.loc["V1", "最近的可服务项目编号"] == "P1"
    assert school.loc["V2", "在服务距离内"] == "否"
    assert school.loc["V3", "原因"].endswith("no road connection to any serving project")
    xlsx = pd.read_excel(written["village_reach_xlsx"], sheet_name="村庄设施道路可达", dtype=str)
    assert xlsx.shape == csv.shape and xlsx["村代码"].tolist() == csv["村代码"].tolist()
    seat = pd.read_csv(written["village_seat_csv"], encoding="utf-8-sig", dtype=str)
    assert {"村代码", "到本乡镇驻地道路距离(m)", "道路连通本乡镇驻地"} <= set(seat.columns)
    assert "village_seat_xlsx" in written
    stats = pd.read_csv(written["township_stats_csv"], encoding="utf-8-sig")
    assert stats["学校道路可达村比例"].tolist() == pytest.approx([0.25, 0.0])
    html = Path(written["report"]).read_text(encoding="utf-8")
    section = html[html.index("Village reach"):]
    # T1: one village of two within the school limit, 25 % of its people; V2 is left out
    assert "1 / 2" in section and "25.0" in section
    assert "二村" in section and "810 m &gt; 700 m" in section
    assert "三村" in section and "no road connection to any serving project" in section


_MINUTES = '[reach.limits_m]\nschool = 700.0\n[reach.limits_min]\nschool = 0.3\n'


def test_minute_limits_use_the_road_speeds(tmp_path):
    result = sp.run_check(_plan(tmp_path, rules=_MINUTES, speeds=[60.0, 30.0]))
    school = result.village_reach.loc[result.village_reach["facility"] == "school"]
    v1 = school.set_index("village_code").loc["V1"]
    # 370 m along the road at 60 km/h and the legs 30 m + 10 m at 5 km/h
    assert v1["network_min"] == pytest.approx(370 * 0.06 / 60 + 40 * 0.06 / 5)
    assert v1["limit_min"] == 0.3 and not v1["within_limit"]  # 0.85 min > 0.3 min
    assert "health_center" not in set(school["facility"])


def test_minute_limits_without_road_speeds_stop_the_check(tmp_path):
    with pytest.raises(sp.errors.FieldError, match="2 of 2 road features have no positive"):
        sp.run_check(_plan(tmp_path, rules=_MINUTES))
