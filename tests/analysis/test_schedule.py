"""Tests of the 时序表: grouping, totals, Chinese labels, CSV with BOM, XLSX layout."""

from __future__ import annotations

import logging

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely

from spatialplan.analysis.schedule import SCHEDULE_COLUMNS, sequence_table
from spatialplan.render.schedule import write_schedule_csv, write_schedule_xlsx
from spatialplan.rules.catalog import read_catalog
from spatialplan.rules.siting import check_projects


@pytest.fixture(scope="module")
def result():
    catalog = read_catalog()
    x0, y0 = 500_000.0, 2_900_000.0
    n = 5
    projects = gpd.GeoDataFrame(
        {
            "project_id": [f"P{i}" for i in range(n)],
            "name": ["中心小学", "镇卫生院", "农贸市场", "污水处理站", "停车场"],
            "facility": ["学校", "卫生院", "market", "sewage", "parking"],
            "township_code": ["T2", "T1", "T1", "T1", "T2"],
            "status": ["planned", "under_construction", "completed", "planned", "planned"],
            "construction_type": ["迁建", "改扩建", "新建", None, "扩能"],
            "mapped_on": pd.to_datetime(["2023-01-01", "2022-01-01", None, "2023-02-01",
                                         "2023-02-01"]),
            "permit_on": pd.to_datetime([None, "2022-06-01", "2021-01-01", None, None]),
            "start_on": pd.to_datetime([None, "2022-09-01", "2021-03-01", None, None]),
            "finish_on": pd.to_datetime([None, None, "2022-01-01", None, None]),
            "investment_wan": [1200.0, 800.5, 300.25, None, 150.0],
            "start_year": pd.array([2025, 2022, 2021, 2025, 2026], dtype="Int64"),
            "end_year": pd.array([2026, 2024, 2022, 2026, 2026], dtype="Int64"),
        },
        geometry=[shapely.box(x0 + 100 * i, y0, x0 + 100 * i + 40, y0 + 50) for i in range(n)],
        crs="EPSG:4545",
    )
    towns = gpd.GeoDataFrame({"code": ["T1", "T2"], "name": ["甲镇", "乙镇"]},
                             geometry=[shapely.box(x0 - 1e4, y0 - 1e4, x0 + 1e4, y0 + 1e4),
                                       shapely.box(x0 + 1e4, y0 - 1e4, x0 + 2e4, y0 + 1e4)],
                             crs="EPSG:4545")
    res, _fnd = check_projects(projects, as_of="2024-06-30", catalog=catalog)
    return res, towns, catalog


def test_table_rows_and_totals(result):
    res, towns, catalog = result
    table = sequence_table(res, townships=towns, catalog=catalog)
    assert list(table.columns) == list(SCHEDULE_COLUMNS)
    projects = table[table["序号"] != ""]
    assert projects["序号"].tolist() == [1, 2, 3, 4, 5]
    assert len(projects) == len(res)
    # grouped by township (code order), then start year
    assert projects["项目编号"].tolist() == ["P2", "P1", "P3", "P0", "P4"]
    assert projects["乡镇"].tolist() == ["甲镇", "甲镇", "甲镇", "乙镇", "乙镇"]
    grand = table.iloc[-1]
    assert grand["项目名称"] == "总计（5项）"
    assert grand["总投资(万元)"] == pytest.approx(res["investment_wan"].sum())
    totals = table[table["项目名称"].str.endswith("项）")]
    town_totals = totals[totals["项目名称"].str.match(r"^\S+ 小计")]
    assert town_totals["总投资(万元)"].sum() == pytest.approx(grand["总投资(万元)"])
    years = totals[totals["项目名称"].str.match(r"^(\d{4}年|未定) 合计")]
    assert years["项目名称"].tolist()[0].startswith("2021年")
    assert years["总投资(万元)"].sum() == pytest.approx(grand["总投资(万元)"])
    assert grand["用地面积(亩)"] == pytest.approx(res["area_mu"].sum(), abs=0.0005)


def test_chinese_labels(result):
    res, towns, catalog = result
    table = sequence_table(res, townships=towns, catalog=catalog).set_index("项目编号")
    assert table.loc["P0", "类别"] == "8·学校"
    assert table.loc["P4", "类别"] == "X·停车场"
    assert table.loc["P1", "建设状态"] == "在建"
    assert table.loc["P2", "建设状态"] == "已建成"
    assert table.loc["P0", "建设状态"] == "拟建"
    assert table.loc["P1", "建设年限"] == "2022–2024"  # noqa: RUF001 - the en dash is the output
    assert table.loc["P1", "前期手续"] == "已落图 2022-01-01；规划许可 2022-06-01"
    assert table.loc["P2", "前期手续"] == "未落图；规划许可 2021-01-01"
    assert table.loc["P2", "合规性结论"] == "不符合"  # completed without being mapped
    assert "未落图" in table.loc["P2", "主要问题"]
    assert " / " not in table.loc["P2", "主要问题"]  # Chinese only
    assert set(table["合规性结论"]) <= {"符合", "需论证", "不符合", "无法核查", ""}


def test_empty_register():
    table = sequence_table(pd.DataFrame({"project_id": []}))
    assert table["项目名称"].tolist() == ["总计（0项）"]
    assert table.iloc[0]["总投资(万元)"] == 0.0


def test_csv_has_bom(result, tmp_path):
    res, towns, catalog = result
    table = sequence_table(res, townships=towns, catalog=catalog)
    path = write_schedule_csv(table, tmp_path / "schedule.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(back.columns) == list(SCHEDULE_COLUMNS)
    assert len(back) == len(table)
    assert [p.name for p in tmp_path.iterdir()] == ["schedule.csv"]  # no temp file left


def test_xlsx_layout(result, tmp_path):
    res, towns, catalog = result
    table = sequence_table(res, townships=towns, catalog=catalog)
    path = write_schedule_xlsx(table, tmp_path / "schedule.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    assert ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]] == list(SCHEDULE_COLUMNS)
    assert ws.max_row == len(table) + 1
    last = ws[ws.max_row]
    assert last[3].value == "总计（5项）" and last[3].font.bold
    assert not ws[2][3].font.bold  # a project row
    assert ws[1][0].font.bold and all(c.font.bold for c in last)  # header; whole total row
    assert ws["H2"].number_format == "#,##0.0000" and ws["I2"].number_format == "#,##0.00"
    assert last[7].number_format == "#,##0.0000" and last[8].number_format == "#,##0.00"
    assert ws["D2"].number_format == "General"
    assert isinstance(last[8].value, float)
    assert ws.column_dimensions["D"].width >= 10
    assert [p.name for p in tmp_path.iterdir()] == ["schedule.xlsx"]


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(AttributeError):
        write_schedule_xlsx(None, tmp_path / "schedule.xlsx")
    assert list(tmp_path.iterdir()) == []


def test_schedule_xlsx_is_byte_identical_on_a_second_write(tmp_path):
    table = sequence_table(pd.DataFrame({"project_id": ["A", "B"], "name": ["学校", "公园"],
                                         "township_code": ["T1", "T1"],
                                         "investment_wan": [100.0, float("nan")],
                                         "start_year": [2025, 2026], "end_year": [2026, 2027]}))
    first = write_schedule_xlsx(table, tmp_path / "a.xlsx").read_bytes()
    import time

    time.sleep(1.1)  # a writer stamping the current second (as openpyxl did) would differ
    second = write_schedule_xlsx(table, tmp_path / "b.xlsx").read_bytes()
    assert first == second


def test_construction_type_comes_from_the_register_not_from_status(result):
    res, towns, catalog = result
    table = sequence_table(res, townships=towns, catalog=catalog).set_index("项目编号")
    # P0 is planned and 迁建: status used to print 新建 here
    assert table.loc["P0", "建设性质"] == "迁建" and table.loc["P0", "建设状态"] == "拟建"
    assert table.loc["P1", "建设性质"] == "改扩建" and table.loc["P1", "建设状态"] == "在建"
    assert table.loc["P2", "建设性质"] == "新建" and table.loc["P2", "建设状态"] == "已建成"
    assert table.loc["P3", "建设性质"] == ""  # missing: empty, never the status
    # an unrecognised value is kept as given and named in 主要问题
    assert table.loc["P4", "建设性质"] == "扩能"
    assert "建设性质“扩能”不是规范用语" in table.loc["P4", "主要问题"]
    assert "建设性质" not in table.loc["P0", "主要问题"]


def test_construction_type_field_aliases_and_values(caplog):
    from spatialplan.io._fields import apply_fields, map_fields

    for name in ("JSXZ", "jsxz", "建设性质"):
        mapping = map_fields(["XMDM", "XMMC", "XMLB", name], role="projects")
        assert mapping["construction_type"] == name
    df = pd.DataFrame({"feature_id": [f"projects:{i}" for i in range(7)],
                       "XMDM": list("ABCDEFG"), "XMMC": ["x"] * 7, "XMLB": ["school"] * 7,
                       "JSXZ": ["改、扩建", "新建项目", " 续建 ", "relocation", None, "扩能",
                                "恢复"]})
    with caplog.at_level(logging.WARNING, logger="spatialplan.io._fields"):
        out = apply_fields(df, map_fields(df.columns, role="projects"), role="projects")
    assert out["construction_type"].tolist() == ["改扩建", "新建", "续建", "迁建", None, "扩能",
                                                 "恢复"]
    flagged = [r.getMessage() for r in caplog.records]
    assert len(flagged) == 1 and "'扩能'" in flagged[0] and "projects:5" in flagged[0]


def test_per_township_all_years_totals(result):
    res, towns, catalog = result
    table = sequence_table(res, townships=towns, catalog=catalog)
    names = table["项目名称"].tolist()
    closing = names[names.index("2021年 合计（1项）"):]
    assert closing == ["2021年 合计（1项）", "2022年 合计（1项）", "2025年 合计（2项）",
                       "2026年 合计（1项）", "甲镇 各年合计（3项）", "乙镇 各年合计（2项）",
                       "总计（5项）"]
    rows = table.set_index("项目名称")
    projects = table[table["序号"] != ""]
    for town in ("甲镇", "乙镇"):
        mine = projects[projects["乡镇"] == town]
        label = f"{town} 各年合计（{len(mine)}项）"
        assert rows.loc[label, "总投资(万元)"] == pytest.approx(mine["总投资(万元)"].sum())
        assert rows.loc[label, "用地面积(亩)"] == pytest.approx(mine["用地面积(亩)"].sum())
        assert rows.loc[label, "乡镇"] == town and rows.loc[label, "序号"] == ""


def test_a_reason_appears_once(result):
    """A project rejected at read gets the same error from every rule: one reason, not 12."""
    _res, towns, catalog = result
    projects = gpd.GeoDataFrame(
        {"project_id": ["OK"], "name": ["学校"], "facility": ["school"],
         "township_code": ["T1"]},
        geometry=[shapely.box(500_000, 2_900_000, 500_040, 2_900_050)], crs="EPSG:4545")
    rejected = pd.DataFrame({"feature_id": ["projects:1"], "project_id": ["BAD"],
                             "name": ["坏项目"], "facility": ["school"],
                             "township_code": ["T1"], "reason": ["empty geometry"]})
    res, findings = check_projects(projects, catalog=catalog, rejected=rejected,
                                   as_of="2024-06-30")
    bad = res.set_index("project_id").loc["BAD"]
    assert (findings["project_id"] == "BAD").sum() > 1  # every rule reports the error ...
    assert bad["verdict"] == "error"
    # ... the reason says it once
    assert bad["reasons"] == "读取时被拒绝：empty geometry / rejected when read: empty geometry"
    assert bad["reasons_zh"] == "读取时被拒绝：empty geometry"
    table = sequence_table(res, townships=towns, catalog=catalog).set_index("项目编号")
    assert table.loc["BAD", "主要问题"] == "读取时被拒绝：empty geometry"


def test_areas_in_mu_to_four_decimals_and_print_setup(result, tmp_path):
    res, towns, catalog = result
    res = res.copy()
    res["area_mu"] = [1.23456789, 2.0, 0.00004, 3.33335, 1 / 3]
    table = sequence_table(res, townships=towns, catalog=catalog).set_index("项目编号")
    assert table.loc["P0", "用地面积(亩)"] == 1.2346  # 亩 to 0.0001, like every area in 亩
    assert table.loc["P4", "用地面积(亩)"] == 0.3333
    grand = table[table["项目名称"].str.startswith("总计")].iloc[0]
    assert grand["用地面积(亩)"] == round(1.2346 + 2.0 + 0.0 + 3.3334 + 0.3333, 4)
    path = write_schedule_xlsx(table.reset_index()[list(SCHEDULE_COLUMNS)],
                               tmp_path / "schedule.xlsx")
    ws = openpyxl.load_workbook(path).active
    assert ws.title == "建设项目时序表"
    assert ws.page_setup.orientation == "landscape" and ws.print_title_rows == "$1:$1"
    assert ws.sheet_properties.pageSetUpPr.fitToPage is True
    assert (int(ws.page_setup.fitToWidth), int(ws.page_setup.fitToHeight)) == (1, 0)
