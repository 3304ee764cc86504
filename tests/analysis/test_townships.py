"""Township outlines checked against each other: overlaps, gaps, area counted twice."""

from __future__ import annotations

import logging

import geopandas as gpd
import pytest
from shapely import box

from spatialplan.analysis import overlay

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_070_000.0


def _towns(*geoms, codes=None) -> gpd.GeoDataFrame:
    codes = codes or [f"52012300{k + 1}" for k in range(len(geoms))]
    return gpd.GeoDataFrame({"feature_id": [f"townships:{k}" for k in range(len(geoms))],
                             "code": codes, "name": [f"镇{k}" for k in range(len(geoms))]},
                            geometry=list(geoms), crs=CRS)


def _sq(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def _line(role, *geoms) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"feature_id": [f"{role}:{k}" for k in range(len(geoms))]},
                            geometry=list(geoms), crs=CRS)


def test_overlap_is_reported_and_its_red_line_is_counted_in_both(caplog):
    # two 1 km squares overlapping in a 100 m x 1 km strip; a red line wholly in the strip
    towns = _towns(_sq(0, 0, 1000, 1000), _sq(900, 0, 1900, 1000))
    red = _line("redline", _sq(920, 100, 980, 900))  # 60 m x 800 m = 48,000 m²
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        found = overlay.township_conflicts(towns)
    assert found[["kind", "township_a", "township_b"]].values.tolist() == [
        ["overlap", "520123001", "520123002"]]
    assert found.loc[0, "area_m2"] == pytest.approx(100_000.0)
    assert found.geometry[0].equals(_sq(900, 0, 1000, 1000).normalize()) or \
        found.geometry[0].symmetric_difference(_sq(900, 0, 1000, 1000)).area < 1e-6
    assert "1 overlaps (100000.00 m² in all)" in caplog.text
    # the statistics count the red line in both townships ...
    stats = overlay.township_stats(towns, redline=red)
    assert stats["redline_m2"].tolist() == pytest.approx([48_000.0, 48_000.0])
    # ... and the double-counted figure says so
    twice = overlay.township_double_counted(towns, found, redline=red)
    assert twice["overlap_townships"].tolist() == ["520123002", "520123001"]
    assert twice["redline_double_counted_m2"].tolist() == pytest.approx([48_000.0, 48_000.0])
    assert twice["farmland_double_counted_m2"].isna().all()  # not given: unknown, not zero
    assert "cropland_double_counted_m2" not in twice


def test_double_counted_dissolves_overlapping_patches_and_ignores_the_rest():
    towns = _towns(_sq(0, 0, 1000, 1000), _sq(900, 0, 1900, 1000), _sq(1900, 0, 2900, 1000))
    farm = _line("farmland", _sq(850, 0, 950, 100),   # half (50 x 100) in the overlap
                 _sq(900, 0, 950, 100),                # inside the first: counted once
                 _sq(2000, 0, 2100, 100))              # in the third township only
    twice = overlay.township_double_counted(towns, overlay.township_conflicts(towns),
                                            farmland=farm)
    assert twice["farmland_double_counted_m2"].tolist() == pytest.approx([5000.0, 5000.0, 0.0])
    assert twice["overlap_townships"].tolist() == ["520123002", "520123001", ""]


def test_gap_between_three_townships():
    # two squares side by side under a long one with a 20 m x 10 m notch: an enclosed hole
    towns = _towns(_sq(0, 0, 100, 100), _sq(100, 0, 200, 100),
                   _sq(0, 100, 200, 200).difference(_sq(90, 90, 110, 110)))
    found = overlay.township_conflicts(towns)
    assert len(found) == 1
    row = found.iloc[0]
    assert (row["kind"], row["township_a"], row["township_b"]) == (
        "gap", "520123001, 520123002, 520123003", None)
    assert row["area_m2"] == pytest.approx(200.0)
    assert found.geometry.iloc[0].area == pytest.approx(200.0)


def test_a_township_inside_a_hole_is_not_part_of_the_gap():
    ring = _sq(0, 0, 300, 300).difference(_sq(100, 100, 200, 200))
    found = overlay.township_conflicts(_towns(ring, _sq(120, 120, 180, 180)))
    assert found["kind"].tolist() == ["gap"]
    assert found["area_m2"].tolist() == pytest.approx([10_000.0 - 3_600.0])


def test_clean_tiling_has_no_rows_but_the_columns(caplog):
    towns = _towns(_sq(0, 0, 100, 100), _sq(100, 0, 200, 100), _sq(0, 100, 200, 200))
    with caplog.at_level(logging.WARNING, logger="spatialplan"):
        found = overlay.township_conflicts(towns)
    assert len(found) == 0
    assert list(found.columns) == ["kind", "township_a", "township_b", "area_m2", "geometry"]
    assert found.crs == towns.crs
    assert "township outlines" not in caplog.text
    twice = overlay.township_double_counted(towns, found, redline=_line("redline",
                                                                        _sq(0, 0, 50, 50)))
    assert twice["redline_double_counted_m2"].tolist() == [0.0, 0.0, 0.0]
    assert twice["overlap_townships"].tolist() == ["", "", ""]


def test_slivers_below_the_tolerance_are_boundary_noise(caplog):
    # outlines digitised 1 cm apart: a 0.01 m x 100 m overlap (1 m²... below 5 m²)
    towns = _towns(_sq(0, 0, 100.01, 100), _sq(100, 0, 200, 100))
    with caplog.at_level(logging.INFO, logger="spatialplan"):
        quiet = overlay.township_conflicts(towns, tolerance={"min_overlap_m2": 5.0})
    assert len(quiet) == 0
    assert "below 5 m²" in caplog.text
    loud = overlay.township_conflicts(towns, tolerance={"min_overlap_m2": 0.5})
    assert loud["area_m2"].tolist() == pytest.approx([1.0])
