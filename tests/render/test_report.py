"""HTML report: sections, escaping, self-containment, atomic writing."""

from __future__ import annotations

import re

import pandas as pd
import pyproj
import pytest
from _map_fixtures import HOSTILE, RAW_MARKERS, layers

from spatialplan.errors import OutputError
from spatialplan.render.report import render_report, write_report


def _report(data, **kwargs):
    opts = {
        "plan_name": "示范镇规划",
        "summary": {"townships": 2, "projects": {"n_in": 5, "checked": 4, "error": 1}},
        "township_stats": data["township_stats"],
        "line_conflicts": data["conflicts"],
        "projects": data["projects"],
        "findings": data["findings"],
        "map_path": "map.html",
        "tolerance": {"min_overlap_m2": 1.0, "min_overlap_share": 0.001},
        "crs": pyproj.CRS.from_epsg(4545),
        "inputs": [{"role": "projects", "path": "projects.gpkg", "n_in": 5, "n_ok": 5,
                    "n_repaired": 0, "n_rejected": 0}],
    }
    opts.update(kwargs)
    return render_report(**opts)


def test_sections_present():
    html = _report(layers())
    for heading in ("Run summary", "Township statistics", "Line conflicts", "Project verdicts",
                    "Rule sources", "Coverage gaps", "Map"):
        assert heading in html, heading
    assert "EPSG:4545" in html and "最小重叠面积 min overlap (m²)" in html
    assert "示范镇" in html and "乌江镇" in html
    assert "边界误差 boundary noise" in html
    assert "自然资发〔2022〕142号" in html
    assert "敬老院、公园" in html  # 8+X gaps from township_stats
    assert 'class="v-fail"' in html and 'class="v-pass"' in html
    # projects sorted worst first: the error project comes before the passing ones
    assert html.index("XM005") < html.index("XM001")
    assert '<iframe class="map" src="map.html"' in html
    assert "@media print" in html


def test_hostile_strings_escaped():
    data = layers(hostile=True)
    data["projects"][HOSTILE[0]] = HOSTILE[3]  # hostile column name and value
    data["township_stats"][HOSTILE[1]] = HOSTILE[2]
    html = _report(data, plan_name=HOSTILE[0], summary={HOSTILE[4]: HOSTILE[1]},
                   inputs=[{HOSTILE[2]: HOSTILE[0]}])
    for marker in RAW_MARKERS:
        assert marker not in html, marker
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "乡镇𠀀😀 &amp; 名称" in html
    assert html.count("<script") == 0


def test_self_contained_no_external_references():
    html = _report(layers())
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "<link" not in html and "<script" not in html
    assert "<style>" in html


def test_map_path_must_be_local():
    with pytest.raises(OutputError):
        _report(layers(), map_path="javascript:alert(1)")
    with pytest.raises(OutputError):
        _report(layers(), map_path="https://example.org/map.html")
    html = _report(layers(), map_path="/abs/out/my map.html")
    assert 'src="my%20map.html"' in html


def test_empty_inputs_render():
    html = render_report(plan_name="x", summary=None, township_stats=None, line_conflicts=None,
                         projects=None, findings=None)
    assert "no conflicts found" in html and "no projects" in html
    assert "not given" in html  # tolerance and CRS are always printed


def test_write_report_atomic(tmp_path):
    path = write_report(_report(layers()), tmp_path / "report.html")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(OutputError):
        write_report("", tmp_path / "empty.html")
    assert not (tmp_path / "empty.html").exists()


def _many_conflicts(n: int = 5000) -> pd.DataFrame:
    """``n`` conflict rows: boundary noise first in the table, areas rising with the row."""
    kind = ["boundary_noise" if i < 100 else "conflict" for i in range(n)]
    return pd.DataFrame({"layer_a": "redline", "layer_b": "farmland",
                         "feature_a": [f"redline:{i}" for i in range(n)],
                         "feature_b": [f"farmland:{i}" for i in range(n)],
                         "township_code": "520123001",
                         "area_m2": [0.5 if k == "boundary_noise" else float(i)
                                     for i, k in enumerate(kind)],
                         "kind": kind})


def _table_after(html: str, marker: str) -> str:
    start = html.index(marker)
    return html[html.index("<table", start):html.index("</table>", start)]


def test_long_table_capped_with_note_and_largest_conflicts_first():
    conflicts = _many_conflicts()
    conflicts.loc[4999, "feature_b"] = "<script>alert(1)</script>"  # largest area: shown
    html = _report(layers(), line_conflicts=conflicts)
    assert "shown 1,000 of 5,000 rows" in html and "显示 1,000 / 5,000 行" in html
    note = html[html.index('<p class="note cap">'):]
    note = note[:note.index("</p>")]
    assert "results.gpkg (layer line_conflicts" in note
    assert "line_conflicts.xlsx" in note and "line_conflicts.csv" in note
    table = _table_after(html, "shown 1,000 of 5,000 rows")
    assert table.count("<tr>") == 1001  # header + 1,000 rows
    # the largest ones (features as their 1-based position in the layer: redline:4999 → 5000)
    assert ">5000<" in table and ">4001<" in table
    assert ">4000<" not in table and "边界误差" not in table
    assert table.index(">5000<") < table.index(">4999<")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in table


def test_cap_names_the_files_actually_written():
    conflicts = _many_conflicts(1500)
    html = _report(layers(), line_conflicts=conflicts,
                   outputs={"results": "/out/results.gpkg", "report": "/out/report.html"})
    assert "full table: results.gpkg (layer line_conflicts 图层)<" in html
    assert "line_conflicts.xlsx" not in html
    html = _report(layers(), line_conflicts=conflicts, outputs={})
    assert "not written in this run" in html
    html = _report(layers(), line_conflicts=conflicts, max_rows=None)
    assert "shown " not in html and ">1500<" in html
    html = _report(layers(), line_conflicts=conflicts, max_rows=10)
    assert "shown 10 of 1,500 rows" in html


def test_findings_capped_worst_first():
    data = layers()
    n = 3000
    findings = pd.DataFrame({"project_id": [f"XM{i:05d}" for i in range(n)],
                             "rule": "farmland",
                             "status": ["review" if i % 3 else "fail" for i in range(n)],
                             "measure": 1.0, "unit": "m2", "message": "m", "source": "s"})
    findings.loc[2500, "status"] = "error"
    html = _report(data, findings=findings, max_rows=50)
    assert "shown 50 of 3,000 rows" in html
    table = _table_after(html, "shown 50 of 3,000 rows")
    assert table.index(">XM02500<") < table.index(">XM00000<")  # error, then fails
    assert ">XM00001<" not in table  # a review row: after the 1,000 fails
    assert "results.gpkg (layer findings" in html


def test_coverage_capped_most_gaps_first():
    data = layers()
    stats = pd.concat([data["township_stats"]] * 3, ignore_index=True)
    stats["township_code"] = [f"T{i}" for i in range(len(stats))]
    stats.loc[4, "eight_missing"] = "a;b;c;d;e"
    html = _report(data, township_stats=stats, max_rows=2)
    cover = html[html.index("Coverage gaps"):]
    assert "shown 2 of 6 rows" in cover and "township_stats.xlsx" in cover
    table = _table_after(cover, "shown 2 of 6 rows")
    assert ">T4<" in table and ">T1<" in table and ">T0<" not in table


# --------------------------------------------------------------------------------------------
# what a reader sees: no internal ids, no raw English keys, each figure once, rounded areas
# --------------------------------------------------------------------------------------------


def _reader_report(**kwargs):
    data = layers()
    stats = data["township_stats"].copy()
    stats["feature_id"] = ["townships:0", "townships:1"]
    stats["eight_present"] = ["road;school", "health_center"]
    stats["eight_missing"] = ["health_center", "road;school"]
    stats["n_group_8"], stats["n_group_X"], stats["n_unknown"] = [3, 2], [0, 0], [0, 0]
    findings = data["findings"].copy()
    findings["feature_id"] = [f"projects:{i // 4}" for i in range(len(findings))]
    findings["subject"] = "project"
    conflicts = data["conflicts"].copy()
    conflicts["pair_area_m2"] = conflicts["area_m2"]
    conflicts["pair_share"] = [0.25, 0.001]
    summary = {"as_of": "2026-11-26", "analysis_crs": "EPSG:4545",
               "crs_reason": "auto: zone 36", "verdicts": {"pass": 2, "review": 1, "fail": 1,
                                                           "error": 1}}
    return _report(data, summary=summary, township_stats=stats, findings=findings,
                   line_conflicts=conflicts, crs="EPSG:4545", **kwargs)


def _visible_text(html: str) -> str:
    body = html[html.index("<body>"):]
    return re.sub(r"<[^>]+>", " ", body)


def test_no_internal_ids_or_raw_keys_in_the_report():
    text = _visible_text(_reader_report())
    for raw in ("townships:0", "projects:0", "redline:0", "farmland:0", "feature_id",
                "as_of", "crs_reason", "analysis_crs", "n_group_8", "n_group_X", "n_unknown",
                "road;school", "health_center", "min_overlap_m2", "boundary_noise",
                "pair_area_m2", "pair_share", "unmapped_build", "n_rejected", " m2 "):
        assert raw not in text, raw
    for label in ("核查日期 as of", "坐标系选择依据 CRS choice", "“8”类项目数 group 8 projects",
                  "道路、学校", "卫生院", "冲突 conflict", "边界误差 boundary noise",
                  "永久基本农田 farmland", "不符合 fail", "拟建 planned",
                  "最小重叠面积 min overlap (m²)", "读入 in", "项目选址 projects"):
        assert label in text, label
    # a conflict's features are named by their position in their layer (redline:0 → 1)
    html = _reader_report()
    row = re.search(r"<tr><td>生态保护红线 redline</td>.*?</tr>", html).group(0)
    assert "<td>永久基本农田 farmland</td><td class=\"num\">1</td><td class=\"num\">1</td>" in row


def test_summary_states_each_figure_once():
    text = _visible_text(_reader_report())
    summary = text[:text.index("输入 Inputs")]
    assert summary.count("EPSG:4545") == 1  # the CRS line, not again as analysis_crs
    assert "verdicts" not in summary and "结论统计" not in summary  # the cards hold the counts
    for card in ("符合 pass", "需论证 review", "不符合 fail", "无法核查 error"):
        assert summary.count(card) == 1, card


def test_report_areas_rounded_per_unit():
    html = _reader_report()
    stats = _table_after(html, "乡镇统计 Township statistics")
    ha = re.findall(r">([\d,]+\.\d+)</td>", stats)
    assert ha and all(len(v.split(".")[1]) in (2, 4) for v in ha)
    # ha and 亩 to 0.0001 (the planar area 3,000 ha exactly), percentages to 0.01
    assert ">3,000.0000<" in stats
    projects = _table_after(html, "项目合规性 Project verdicts")
    assert ">2.2500<" in projects and ">1,500.00<" in projects  # 亩 0.0001, m² 0.01


def test_tables_for_readers_have_no_ids_and_rounded_areas():
    from spatialplan.render._labels import chinese_headers

    stats = pd.DataFrame({"township_code": ["520123001"], "feature_id": ["townships:0"],
                          "area_m2": [39667782.04156799], "redline_ha": [781.5848864414007],
                          "redline_mu": [11723.773296621011], "redline_share": [0.197],
                          "eight_present": ["road;school"], "eight_missing": ["XYZ"],
                          "n_group_8": [8]})
    out = chinese_headers(stats)
    assert "feature_id" not in out.columns and "要素编号" not in out.columns
    assert "townships:0" not in out.to_csv()
    row = out.iloc[0]
    assert row["平面面积(m²)"] == 39667782.04
    assert row["生态保护红线平面面积(公顷)"] == 781.5849
    assert row["生态保护红线平面面积(亩)"] == 11723.7733
    assert row["生态保护红线占乡镇比例(椭球面积)"] == 0.197  # a share is not an area: unchanged
    assert row["已有/规划且合规的“8”类设施"] == "道路、学校" and row["缺少合规的“8”类设施"] == "XYZ"
    assert row["“8”类项目数"] == 8
    conflicts = pd.DataFrame({"layer_a": ["farmland"], "layer_b": ["udb"],
                              "feature_a": ["farmland:334"], "feature_b": ["udb:0"],
                              "area_m2": [0.6000000005587935], "kind": ["boundary_noise"],
                              "pair_area_m2": [0.6000000005587935], "pair_share": [0.0002]})
    row = chinese_headers(conflicts).iloc[0]
    assert row["图层A"] == "永久基本农田 farmland" and row["图层B"] == "城镇开发边界 udb"
    assert row["要素A序号(源图层第n个)"] == 335 and row["要素B序号(源图层第n个)"] == 1
    assert row["类型"] == "边界误差 boundary noise"
    assert row["平面面积(m²)"] == 0.6 and row["两要素重叠总面积(m²)"] == 0.6
    assert conflicts.loc[0, "feature_a"] == "farmland:334"  # the input is not changed


def test_township_headers_say_planar_or_ellipsoidal():
    """Every area header of township_stats says which figure it is; shares are ellipsoidal."""
    from spatialplan.render._labels import chinese_headers

    cols = ["area_m2", "area_ellipsoidal_m2"] + [
        f"farmland{kind}_{unit}" for kind in ("", "_ellipsoidal") for unit in ("m2", "ha", "mu")]
    out = chinese_headers(pd.DataFrame([[1.0] * len(cols) + [0.5]], columns=[*cols,
                                                                              "farmland_share"]))
    assert list(out.columns) == [
        "平面面积(m²)", "椭球面积(m²)", "永久基本农田平面面积(m²)", "永久基本农田平面面积(公顷)",
        "永久基本农田平面面积(亩)", "永久基本农田椭球面积(m²)", "永久基本农田椭球面积(公顷)",
        "永久基本农田椭球面积(亩)", "永久基本农田占乡镇比例(椭球面积)"]


def test_report_shows_the_ellipsoidal_line_areas():
    stats = pd.DataFrame({"township_code": ["1"], "township_name": ["甲镇"],
                          "area_m2": [2e6], "area_ellipsoidal_m2": [1.99e6],
                          "farmland_m2": [1e6], "farmland_ha": [100.0], "farmland_mu": [1500.0],
                          "farmland_ellipsoidal_m2": [9.9e5], "farmland_ellipsoidal_ha": [99.0],
                          "farmland_ellipsoidal_mu": [1485.0], "farmland_share": [0.4975]})
    html = render_report(plan_name="x", summary=None, township_stats=stats, line_conflicts=None,
                         projects=None, findings=None)
    assert "椭球面积 ellipsoidal area" in html and "平面面积 planar area" in html
    assert "(公顷 ha, 椭球 ellipsoidal)" in html and "99.0000" in html
    assert "(公顷 ha, 平面 planar)" not in html and "100.0000" not in html


def test_redline_kind_named_in_chinese():
    from spatialplan.rules._sites import _redline_limited
    from spatialplan.rules.catalog import read_redline_activities

    kind = read_redline_activities().loc["linear_infrastructure"]
    zh = _redline_limited(1200.0, 2400.0, kind).split(" / ")[0]
    assert "linear_infrastructure" not in zh and "第6类" in zh and "供水设施" in zh


def test_demo_outputs_show_no_internal_ids_or_raw_keys(tmp_path):
    """What a newcomer opens after ``spatialplan check`` on the demo (report and tables)."""
    from spatialplan.cli import main
    from spatialplan.core._resources import demo_dir

    out = tmp_path / "out"
    assert main(["check", str(demo_dir() / "plan.toml"), "--out", str(out), "--no-map",
                 "--no-layout", "-q"]) == 0
    internal_id = re.compile(r"\b(?!EPSG)[A-Za-z_]+:\d+")
    snake_key = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
    for name in ("township_stats.csv", "line_conflicts.csv", "terrain_stats.csv",
                 "schedule.csv"):
        text = (out / name).read_text(encoding="utf-8-sig")
        assert not internal_id.search(text), (name, internal_id.search(text))
        assert not snake_key.search(text), (name, snake_key.search(text))
        assert ";" not in text, name  # no "road;school"
    import openpyxl

    for name, sheet in (("township_stats", "乡镇统计"), ("line_conflicts", "控制线冲突")):
        assert openpyxl.load_workbook(out / f"{name}.xlsx").active.title == sheet
    terrain = pd.read_csv(out / "terrain_stats.csv", encoding="utf-8-sig", dtype=str)
    assert terrain["乡镇代码"].tolist() == ["520399101", "520399102", "520399103", "520399201"]
    stats = pd.read_csv(out / "township_stats.csv", encoding="utf-8-sig", dtype=str)
    decimals = {c: {len(v.split(".")[1]) for v in stats[c] if "." in v} for c in stats.columns
                if c.endswith(("(亩)", "(公顷)", "(m²)"))}
    assert decimals and all(max(d, default=0) <= (4 if c.endswith(("(亩)", "(公顷)")) else 2)
                            for c, d in decimals.items()), decimals
    text = _visible_text((out / "report.html").read_text(encoding="utf-8"))
    assert not internal_id.search(text), internal_id.search(text)
    for raw in ("feature_id", "as_of", "crs_reason", "n_group_8", "boundary_noise", "road;"):
        assert raw not in text, raw


def test_the_reach_section_escapes_names_and_caps_the_villages_left_out():
    n = 4
    reach = pd.DataFrame({
        "village_code": [f"V{i}" for i in range(n)], "name": HOSTILE[:n],
        "township_code": ["T1"] * n, "facility": ["school"] * n,
        "project_id": ["P1", "P1", None, "P1"], "network_m": [100.0, 6000.0, None, 7000.0],
        "straight_m": [90.0, 10.0, None, 20.0], "within_limit": [True, False, False, False],
        "limit_m": [5000.0] * n,
        "reason": [None, None, "no road connection to any serving project", None]})
    seat = pd.DataFrame({"village_code": ["V0"], "name": [HOSTILE[0]], "township_code": ["T1"],
                         "connected": [False], "reason": ["no road connection to the town seat"]})
    stats = pd.DataFrame({"township_code": ["T1"], "township_name": [HOSTILE[4]],
                          "reach_share_school": [0.125]})
    html = render_report(plan_name="p", summary=None, township_stats=stats, line_conflicts=None,
                         projects=None, findings=None, village_reach=reach, village_seat=seat,
                         reach_info={"seat_source": "seats layer"}, max_rows=2)
    section = html[html.index("Village reach"):]
    for marker in RAW_MARKERS:
        assert marker not in html
    assert "学校 school" in section and "1 / 4" in section and "12.5" in section
    # four villages left out (V0 only by its seat), two shown, the note names the full table
    assert "villages left out: 4" in section and "shown 2 of 4 villages" in section
    assert "village_reach.xlsx" in section
    # in the villages' order: V0 (not joined to its seat), V1 (beyond the limit)
    assert "6,000 m &gt; 5,000 m" in section and "no road connection to the town seat" in section
    assert "7,000 m" not in section
    assert "reach_share_school" not in html  # shown as the share, not as a raw column


def test_no_reach_section_without_villages():
    html = render_report(plan_name="p", summary=None, township_stats=None, line_conflicts=None,
                         projects=None, findings=None)
    assert "Village reach" not in html


def test_a_village_beyond_the_minute_limit_shows_the_minutes_not_a_false_distance():
    reach = pd.DataFrame({
        "village_code": ["V0", "V1"], "name": ["一村", "二村"], "township_code": ["T1"] * 2,
        "facility": ["school"] * 2, "project_id": ["P1", "P1"], "network_m": [900.0, 6000.0],
        "straight_m": [90.0, 10.0], "within_limit": [False, False], "limit_m": [5000.0] * 2,
        "network_min": [25.5, 12.0], "limit_min": [20.0] * 2, "reason": [None, None]})
    stats = pd.DataFrame({"township_code": ["T1"], "township_name": ["甲镇"],
                          "reach_share_school": [0.0]})
    html = render_report(plan_name="p", summary=None, township_stats=stats, line_conflicts=None,
                         projects=None, findings=None, village_reach=reach, village_seat=None,
                         reach_info={"seat_source": "seats layer"}, max_rows=None)
    section = html[html.index("Village reach"):]
    assert "服务时间上限 limit (min)" in section
    assert "25.5 min &gt; 20.0 min" in section and "900 m &gt;" not in section
    assert "6,000 m &gt; 5,000 m" in section and "12.0 min &gt;" not in section


def test_village_headers_name_the_minute_columns():
    from spatialplan.render._labels import village_headers

    t = village_headers(pd.DataFrame({"network_min": [12.345], "limit_min": [20.0]}))
    assert list(t.columns) == ["最快道路用时(min)", "服务时间上限(min)"]
    assert t.iloc[0].tolist() == [12.3, 20.0]


@pytest.mark.parametrize("own_catalog", [False, True])
def test_coverage_facility_texts_are_facility_names(tmp_path, own_catalog):
    """The coverage table's names, the catalogue's map built once: what facility_names gives."""
    import numpy as np

    from spatialplan.render._labels import facility_names
    from spatialplan.render._labels import facility_texts as _facility_texts
    from spatialplan.rules.catalog import read_catalog

    catalog = None
    if own_catalog:
        df = pd.read_csv(read_catalog().path, dtype=str, keep_default_na=False)
        df.loc[df["code"] == "school", "name_zh"] = "本县学校"
        df.to_csv(tmp_path / "facilities.csv", index=False)
        catalog = read_catalog(tmp_path / "facilities.csv")
    values = ["road;school", "school；road", " road ; ;school ", "", ";", "unknown;road",
              None, np.nan, pd.NA, 3, "示范", "road;;", "；；"]
    # list equality compares the same NaN / NA object by identity first
    assert _facility_texts(values, catalog) == [facility_names(v, catalog) for v in values]
    assert ("本县学校" in _facility_texts(["school"], catalog)[0]) == own_catalog
