"""Township indicators and the county roll-up (spatialplan.analysis.rollup)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from spatialplan.analysis.rollup import (
    COUNTY_COLUMNS,
    county_codes,
    county_summary,
    rank_in_county,
    township_indicators,
)


def _projects() -> pd.DataFrame:
    return pd.DataFrame({
        "township_code": ["520111001", "520111001", "520111001", None, "520112001"],
        "township_found": ["520111001", "520111001", "520111001", "520111002", "520112001"],
        "verdict": ["pass", "fail", "error", "review", "pass"],
        "investment_wan": [100.0, 50.0, np.nan, 20.0, 7.5],
        "status": ["planned", "completed", "under_construction", None, "planned"],
    })


def test_township_indicators_count_sum_and_rate():
    codes = ["520111001", "520111002", "520112001", "520112002"]
    present = pd.Series(["road;school", "", "road", None], index=codes)
    out = township_indicators(_projects(), codes, eight_present=present, n_eight=8)
    t1, t2, t3, t4 = (out.iloc[i] for i in range(4))
    assert list(out["township_code"]) == codes
    assert (t1["n_pass"], t1["n_review"], t1["n_fail"], t1["n_error"]) == (1, 0, 1, 1)
    assert t1["investment_wan"] == 150.0  # a missing investment counts 0
    assert t1["investment_planned_wan"] == 100.0 and t1["investment_completed_wan"] == 50.0
    assert t1["compliance_rate"] == pytest.approx(1 / 3)
    assert t1["eight_share"] == 0.25
    # no township declared: the one its site lies in; a missing status is "other"
    assert (t2["n_review"], t2["investment_other_wan"]) == (1, 20.0)
    assert t2["compliance_rate"] == 0.0 and t2["eight_share"] == 0.0
    assert t3["compliance_rate"] == 1.0
    assert np.isnan(t4["compliance_rate"]) and t4["n_pass"] == 0  # no projects: no rate


def test_county_codes_from_the_code_or_the_layer(caplog):
    codes = pd.Series(["520111001", "520111002", "ABC", "520112001"])
    assert county_codes(codes).tolist() == ["520111", "520111", "", "520112"]
    assert "1 townships have no county" in caplog.text
    explicit = pd.Series(["520199", None, "520100", ""])
    with caplog.at_level(logging.WARNING):
        assert county_codes(codes, explicit=explicit).tolist() == [
            "520199", "520111", "520100", "520112"]


def _stats() -> pd.DataFrame:
    return pd.DataFrame({
        "township_code": ["520111001", "520111002", "520111003", "520112001"],
        "township_name": ["甲镇", "乙镇", "丙乡", "丁镇"],
        "county_code": ["520111", "520111", "520111", "520112"],
        "n_projects": [10, 4, 0, 5], "n_pass": [8, 1, 0, 5], "n_review": [1, 1, 0, 0],
        "n_fail": [1, 2, 0, 0], "n_error": [0, 0, 0, 0],
        "investment_wan": [100.0, 40.0, 0.0, 5.0],
        "investment_planned_wan": [60.0, 40.0, 0.0, 5.0],
        "investment_under_construction_wan": [40.0, 0.0, 0.0, 0.0],
        "investment_completed_wan": [0.0, 0.0, 0.0, 0.0],
        "investment_other_wan": [0.0, 0.0, 0.0, 0.0],
        "eight_share": [1.0, 0.5, 0.75, 0.875],
        "compliance_rate": [0.8, 0.25, np.nan, 1.0],
        "area_m2": [100.0, 300.0, 100.0, 50.0], "area_ellipsoidal_m2": [99.0, 299.0, 99.0, 49.0],
        "redline_m2": [10.0, 20.0, 0.0, 5.0], "redline_ellipsoidal_m2": [9.0, 19.0, 0.0, 4.0],
    })


def test_townships_rank_in_their_county():
    stats = _stats()
    assert rank_in_county(stats).tolist() == [1, 2, 3, 1]  # no projects ranks last


def test_county_summary_sums_weights_and_names_the_towns_behind():
    out = county_summary(_stats(), lines=["redline"]).set_index("county_code")
    assert list(out.reset_index().columns[:len(COUNTY_COLUMNS)]) == list(COUNTY_COLUMNS)
    c = out.loc["520111"]
    assert (c["n_townships"], c["n_projects"], c["n_pass"], c["n_fail"]) == (3, 14, 9, 3)
    assert c["investment_wan"] == 140.0
    assert c["compliance_rate"] == pytest.approx(9 / 14)  # weighted by projects
    assert c["eight_share"] == pytest.approx(0.75)  # the townships' mean
    assert c["behind_compliance_rate"] == "520111002 乙镇"  # 0.25 < 9/14; no rate: not named
    assert c["behind_eight_share"] == "520111002 乙镇"  # 0.5 < 0.75; 0.75 is not below
    # shares from the summed ellipsoidal areas
    assert c["redline_share"] == pytest.approx(28 / 497)
    assert out.loc["520112", "behind_compliance_rate"] == ""
