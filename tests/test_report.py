"""HTML report: sections, escaping, self-containment, atomic writing."""

from __future__ import annotations

import re

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
