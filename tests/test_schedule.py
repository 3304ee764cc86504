"""Tests of the 时序表: grouping, totals, Chinese labels, CSV with BOM, XLSX layout."""

from __future__ import annotations

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely

from spatialplan.catalog import read_catalog
from spatialplan.schedule import (
    SCHEDULE_COLUMNS,
    sequence_table,
    write_schedule_csv,
    write_schedule_xlsx,
)
from spatialplan.siting import check_projects


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
    years = totals[totals["项目名称"].str.contains("合计")]
    assert years["项目名称"].tolist()[0].startswith("2021年")
    assert years["总投资(万元)"].sum() == pytest.approx(grand["总投资(万元)"])
    assert grand["用地面积(亩)"] == pytest.approx(res["area_mu"].sum(), abs=0.02)


def test_chinese_labels(result):
    res, towns, catalog = result
    table = sequence_table(res, townships=towns, catalog=catalog).set_index("项目编号")
    assert table.loc["P0", "类别"] == "8·学校"
    assert table.loc["P4", "类别"] == "X·停车场"
    assert table.loc["P1", "建设性质"] == "续建"
    assert table.loc["P2", "建设性质"] == "已建成"
    assert table.loc["P0", "建设性质"] == "新建"
    assert table.loc["P1", "建设年限"] == "2022–2024"
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
    assert ws["G2"].number_format == "#,##0.00" and ws["H2"].number_format == "#,##0.00"
    assert last[7].number_format == "#,##0.00" and ws["D2"].number_format == "General"
    assert isinstance(last[7].value, float)
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
