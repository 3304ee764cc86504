"""HTML report: sections, escaping, self-containment, atomic writing."""

from __future__ import annotations

import re

import pandas as pd
import pyproj
import pytest
from _map_fixtures import HOSTILE, RAW_MARKERS, layers

from spatialplan.errors import OutputError
from spatialplan.report import render_report, write_report


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
    assert "EPSG:4545" in html and "min_overlap_m2" in html
    assert "示范镇" in html and "乌江镇" in html
    assert "boundary_noise" in html
    assert "自然资发〔2022〕142号" in html
    assert "敬老院; 公园" in html  # 8+X gaps from township_stats
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
    assert ">redline:4999<" in table and ">redline:4000<" in table  # the largest ones
    assert ">redline:3999<" not in table and "boundary_noise" not in table
    assert table.index(">redline:4999<") < table.index(">redline:4998<")
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
    assert "shown " not in html and ">redline:0<" in html
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
