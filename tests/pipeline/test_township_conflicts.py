"""The township_conflicts layer through both runners, the writers, the report and the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import assert_same_results

import spatialplan as sp
from spatialplan.core._resources import demo_dir

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_070_000.0
KM = 1000.0


def _sq(x0, y0, x1, y1):
    return shapely.box(X0 + x0 * KM, Y0 + y0 * KM, X0 + x1 * KM, Y0 + y1 * KM)


@pytest.fixture(scope="module")
def overlap_plan(tmp_path_factory) -> Path:
    """Three townships: the first two overlap in a 0.2 km strip, the third leaves a hole."""
    folder = tmp_path_factory.mktemp("township_conflicts")
    towns = [_sq(0, 0, 2, 2), _sq(1.8, 0, 4, 2),
             _sq(0, 2, 4, 4).difference(_sq(3, 1.9, 3.5, 2.1))]  # hole 0.5 x 0.1 km
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"XZQDM": ["520123001", "520123002", "520123003"], "XZQMC": ["甲镇", "乙镇", "丙镇"]},
        geometry=towns, crs=CRS), folder / "xzq.gpkg", layer="XZQ")
    red = [_sq(1.85, 0.5, 1.95, 1.0), _sq(0.2, 0.2, 0.4, 0.4)]  # the first in the overlap
    pyogrio.write_dataframe(gpd.GeoDataFrame({"BSM": [1, 2]}, geometry=red, crs=CRS),
                            folder / "redline.gpkg", layer="STBHHX")
    projects = gpd.GeoDataFrame(
        {"XMDM": ["P1", "P2"], "XMMC": ["小学", "公厕"], "XZQDM": ["520123001", "520123003"],
         "XMLB": ["school", "toilet"], "JSZT": ["planned"] * 2, "LTRQ": ["2024-03-01"] * 2,
         "KSNF": [2025] * 2, "JSNF": [2026] * 2},
        geometry=[_sq(0.5, 1, 0.6, 1.1), _sq(1, 3, 1.05, 3.05)], crs=CRS)
    pyogrio.write_dataframe(projects, folder / "projects.gpkg", layer="XM")
    (folder / "plan.toml").write_text("\n".join([
        '[plan]', 'name = "township conflicts"', 'crs = "EPSG:4545"', 'as_of = "2025-06-30"',
        '', '[layers.townships]', 'path = "xzq.gpkg"', '',
        '[layers.redline]', 'path = "redline.gpkg"', '',
        '[layers.projects]', 'path = "projects.gpkg"',
        'fields = { status = "JSZT", mapped_on = "LTRQ", start_year = "KSNF", '
        'end_year = "JSNF" }', '']), encoding="utf-8")
    return folder / "plan.toml"


def test_run_stats_reports_overlap_gap_and_double_count(overlap_plan, caplog):
    plan = sp.read_plan(overlap_plan)
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        result = sp.run_stats(plan)
    tc = result.township_conflicts
    assert tc["kind"].tolist() == ["overlap", "gap"]
    assert tc[["township_a", "township_b"]].iloc[0].tolist() == ["520123001", "520123002"]
    assert tc["township_a"].iloc[1] == "520123002, 520123003"
    assert tc["area_m2"].tolist() == pytest.approx([0.2 * 2 * KM * KM, 0.5 * 0.1 * KM * KM])
    assert "1 overlaps (400000.00 m² in all) and 1 gaps (50000.00 m² in all)" in caplog.text
    stats = result.township_stats.set_index("township_code")
    assert stats["redline_m2"].tolist() == pytest.approx([90_000.0, 50_000.0, 0.0])
    assert stats["redline_double_counted_m2"].tolist() == pytest.approx([50_000.0, 50_000.0,
                                                                         0.0])
    assert stats["overlap_townships"].tolist() == ["520123002", "520123001", ""]
    assert stats["farmland_double_counted_m2"].isna().all()


def test_dask_engine_gives_the_same_township_conflicts(overlap_plan):
    distributed = pytest.importorskip("distributed")
    from spatialplan.pipeline.engine import run_check_dask

    plan = sp.read_plan(overlap_plan)
    local = sp.run_check(plan)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        dask = run_check_dask(plan, scheduler=client, partition_size=1)
    assert_same_results(local, dask)
    assert dask.township_stats["redline_double_counted_m2"].sum() == pytest.approx(100_000.0)


def test_written_layer_tables_report_and_manifest(overlap_plan, tmp_path):
    plan = sp.read_plan(overlap_plan)
    result = sp.run_check(plan)
    written = sp.write_check(plan, result, tmp_path / "out",
                             outputs=("gpkg", "stats_tables", "report"))
    layer = gpd.read_file(written["results"], layer="township_conflicts")
    assert layer["kind"].tolist() == ["overlap", "gap"]
    assert layer["area_m2"].sum() == pytest.approx(450_000.0)
    csv = pd.read_csv(written["township_conflicts_csv"], encoding="utf-8-sig", dtype=str)
    assert list(csv.columns) == ["类型", "乡镇A代码", "乡镇B代码", "平面面积(m²)"]
    assert csv["类型"].tolist() == ["重叠 overlap", "缝隙 gap"]
    assert "township_conflicts_xlsx" in written
    stats = pd.read_csv(written["township_stats_csv"], encoding="utf-8-sig")
    assert "生态保护红线重复计入面积(m²,乡镇重叠处)" in stats.columns
    html = Path(written["report"]).read_text(encoding="utf-8")
    assert "Township overlaps and gaps" in html and "counted twice" in html
    import json

    manifest = json.loads(Path(written["manifest"]).read_text(encoding="utf-8"))
    assert manifest["counts"]["township_conflicts"] == 2


def test_demo_tiles_cleanly_and_still_writes_the_empty_layer(tmp_path):
    plan = sp.read_plan(demo_dir() / "plan.toml")
    result = sp.run_stats(plan)
    assert len(result.township_conflicts) == 0
    assert (result.township_stats["redline_double_counted_m2"] == 0).all()
    written = sp.write_check(plan, result, tmp_path / "out", outputs=("gpkg",))
    info = pyogrio.read_info(written["results"], layer="township_conflicts")
    assert info["features"] == 0
    assert list(info["fields"]) == ["kind", "township_a", "township_b", "area_m2"]


def test_validate_and_check_summary_name_the_conflicts(overlap_plan, tmp_path, capsys):
    from spatialplan.cli import main

    assert main(["validate", str(overlap_plan)]) == 0
    out = capsys.readouterr().out
    assert "township outlines: 1 overlaps (400,000.00 m²), 1 gaps (50,000.00 m²)" in out
    assert main(["check", str(overlap_plan), "--out", str(tmp_path / "o"), "-q"]) == 0
    assert "township overlaps/gaps: 2 (450,000.00 m²)" in capsys.readouterr().out
