"""The ten kinds of limited activity in the red line (自然资发〔2022〕142号) as data."""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from spatialplan.errors import RulebookError
from spatialplan.rules.catalog import read_catalog, read_redline_activities
from spatialplan.rules.rulebook import merge_rules, read_rules
from spatialplan.rules.siting import check_projects

CRS = "EPSG:4545"


def _catalogue(tmp_path, edit) -> object:
    df = pd.read_csv(read_catalog().path, dtype=str, keep_default_na=False)
    path = tmp_path / "facilities.csv"
    edit(df).to_csv(path, index=False)
    return path


def _set(df, code, column, value):
    df.loc[df["code"] == code, column] = value
    return df


def test_bundled_table_has_the_ten_kinds_with_sources():
    acts = read_redline_activities()
    assert acts["number"].tolist() == list(range(1, 11))
    assert acts.loc["linear_infrastructure", "number"] == 6
    assert acts.loc["tourism_education", "number"] == 5
    assert "供水" in acts.loc["linear_infrastructure", "wording_zh"]
    for source in acts["source"]:
        assert "自然资发〔2022〕142号" in source
        assert "not verified" in source or "not reproduced" in source


def test_catalogue_maps_each_type_to_one_kind_or_none():
    fac = read_catalog().facilities
    kinds = set(read_redline_activities().index) | {"none"}
    assert set(fac["redline_kind"]) <= kinds
    assert fac.loc["road", "redline_kind"] == "linear_infrastructure"
    assert fac.loc["toilet", "redline_kind"] == "tourism_education"
    assert fac.loc["sewage", "redline_kind"] == "none"


def test_unknown_kind_in_a_catalogue_is_refused(tmp_path):
    path = _catalogue(tmp_path, lambda df: _set(df, "school", "redline_kind", "linear"))
    with pytest.raises(RulebookError, match="line 4: unknown redline_kind 'linear'") as err:
        read_catalog(path)
    assert "linear_infrastructure (6)" in str(err.value)


def test_old_redline_category_column_is_mapped_with_a_warning(tmp_path, caplog):
    def old(df):
        df = df.rename(columns={"redline_kind": "redline_category"})
        mapping = {"linear_infrastructure": "linear", "tourism_education": "tourism"}
        df["redline_category"] = df["redline_category"].replace(mapping)
        return _set(df, "water_supply", "redline_category", "water")

    with caplog.at_level(logging.WARNING, logger="spatialplan.rules.catalog"):
        fac = read_catalog(_catalogue(tmp_path, old)).facilities
    assert fac.loc["water_supply", "redline_kind"] == "linear_infrastructure"
    assert fac.loc["toilet", "redline_kind"] == "tourism_education"
    assert "redline_category" not in fac.columns
    assert "redline_category" in caplog.text


def test_old_category_with_an_unknown_value_is_refused(tmp_path):
    def old(df):
        df = df.rename(columns={"redline_kind": "redline_category"})
        return _set(df, "road", "redline_category", "bridge")

    with pytest.raises(RulebookError, match="unknown redline_category 'bridge'"):
        read_catalog(_catalogue(tmp_path, old))


def test_activity_table_validation(tmp_path):
    acts = read_redline_activities().reset_index(drop=True)
    acts.loc[1, "number"] = 1
    path = tmp_path / "acts.csv"
    acts.to_csv(path, index=False)
    with pytest.raises(RulebookError, match="number '1' is used by two rows"):
        read_redline_activities(path)


def test_rulebook_review_kinds_checked_and_old_key_mapped(caplog):
    assert len(read_rules()["redline"]["review_kinds"]) == 10
    with pytest.raises(RulebookError, match=r"redline\.review_kinds.*'tourism'"):
        merge_rules({"redline": {"review_kinds": ["tourism"]}})
    with caplog.at_level(logging.WARNING, logger="spatialplan.rules.rulebook"):
        rules = merge_rules({"redline": {"review_categories": ["linear", "water"]}})
    assert rules["redline"]["review_kinds"] == ["linear_infrastructure"]
    assert "review_categories" not in rules["redline"]
    assert "review_kinds" in caplog.text
    with pytest.raises(RulebookError, match="both"):
        merge_rules({"redline": {"review_categories": ["linear"], "review_kinds": []}})


def _sites(*facilities):
    n = len(facilities)
    return gpd.GeoDataFrame(
        {"project_id": [f"P{i}" for i in range(n)], "name": ["项目"] * n,
         "facility": list(facilities), "township_code": ["T1"] * n},
        geometry=[shapely.box(100 * i, 0, 100 * i + 50, 50) for i in range(n)], crs=CRS)


def test_redline_finding_names_the_kind():
    red = gpd.GeoDataFrame(geometry=[shapely.box(-10, -10, 1000, 20)], crs=CRS)
    rules = merge_rules({"redline": {"review_kinds": ["linear_infrastructure"]}})
    _, fnd = check_projects(_sites("road", "toilet", "school"), redline=red, rules=rules,
                            as_of="2024-06-30")
    f = fnd[fnd["rule"] == "redline"].set_index("project_id")
    assert f["status"].to_dict() == {"P0": "review", "P1": "fail", "P2": "fail"}
    zh = f.loc["P0", "message"].split(" / ")[0]
    assert "第6类有限人为活动" in zh and "线性基础设施" in zh and "须按自然资发〔2022〕142号" in zh
    assert "第5类" in f.loc["P1", "message"] and "review_kinds" in f.loc["P1", "message"]
    assert "禁止" in f.loc["P2", "message"]
