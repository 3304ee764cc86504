"""Tests for spatialplan.rules.catalog: bundled tables, validation, resolution, compatibility."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from spatialplan.errors import RulebookError
from spatialplan.rules.catalog import (
    FACILITY_COLUMNS,
    eight_codes,
    landuse_compatible,
    read_catalog,
    read_landuse_codes,
    resolve_facility,
)

EIGHT = ["road", "health_center", "school", "market", "elder_care", "park", "sewage", "refuse"]
X = ["parking", "bus_station", "water_supply", "power", "toilet", "sports", "culture",
     "visitor_center", "logistics", "village_service"]


@pytest.fixture(scope="module")
def cat():
    return read_catalog()


def _write_user_catalog(tmp_path, edit):
    df = pd.read_csv(read_catalog().path, dtype=str, keep_default_na=False)
    df = edit(df)
    path = tmp_path / "facilities.csv"
    df.to_csv(path, index=False)
    return path


# ----- bundled tables -----

def test_bundled_catalogue_columns_and_groups(cat):
    assert list(cat.facilities.columns) == list(FACILITY_COLUMNS)
    assert eight_codes(cat) == EIGHT
    for code in X:
        assert cat.facilities.loc[code, "group"] == "X"
    assert all(isinstance(d, dt.date) for d in cat.facilities["valid_from"])
    assert cat.facilities["source"].str.len().min() > 10


@pytest.mark.parametrize(("code", "landuse"), [
    ("road", ("1207",)), ("school", ("080403", "080404")), ("health_center", ("080602",)),
    ("elder_care", ("080701",)), ("market", ("090101", "090102")), ("parking", ("120803",)),
    ("water_supply", ("1301",)), ("sewage", ("1302",)), ("refuse", ("1309",)),
    ("toilet", ("1309",)), ("park", ("1401", "1403")), ("village_service", ("0704",)),
])
def test_bundled_landuse_mapping_follows_domain(cat, code, landuse):
    assert cat.facilities.loc[code, "landuse_codes"] == landuse


def test_bundled_policy_columns(cat):
    fac = cat.facilities
    assert fac.loc["road", "redline_kind"] == "linear_infrastructure"
    assert fac.loc["water_supply", "redline_kind"] == "linear_infrastructure"
    assert fac.loc["visitor_center", "redline_kind"] == "tourism_education"
    assert fac.loc["school", "redline_kind"] == "none"
    for code in ("road", "sewage", "refuse", "water_supply", "power", "parking"):
        assert fac.loc[code, "outside_udb"] == "allowed"
    for code in ("school", "health_center", "market", "elder_care"):
        assert fac.loc[code, "outside_udb"] == "review"


def test_landuse_table_is_complete_and_text(cat):
    lu = cat.landuse
    level1 = lu[lu["level"] == 1].index.tolist()
    assert level1 == [f"{i:02d}" for i in range(1, 25)]
    assert lu.loc["080403", "name_zh"] == "中小学用地"
    assert lu.loc["0101", "parent"] == "01"
    assert lu.loc["1207", "level"] == 2
    for parent in ("07", "08", "09", "10", "11", "12", "13", "14"):
        assert (lu["parent"] == parent).sum() >= 2
    assert set(lu["edition"]) == {"2023"}
    # every facility land-use code is in the table
    for codes in cat.facilities["landuse_codes"]:
        assert set(codes) <= set(lu.index)


# ----- resolve_facility -----

@pytest.mark.parametrize(("value", "code"), [
    ("school", "school"), ("学校", "school"), ("幼儿园", "school"),
    (" 乡镇卫生院 ", "health_center"),
    ("ＳＣＨＯＯＬ", "school"), ("农 贸 市 场", "market"), ("垃圾收运/转运", "refuse"),  # noqa: RUF001 - full-width input is what is tested
    ("公园／广场", "park"), ("污水处理", "sewage"), ("游客中心", "visitor_center"),  # noqa: RUF001 - full-width input is what is tested
])
def test_resolve_facility(cat, value, code):
    assert resolve_facility(value, cat) == code


def test_resolve_unknown_lists_close_matches(cat):
    with pytest.raises(RulebookError, match="unknown facility") as err:
        resolve_facility("卫生所院", cat)
    assert "health_center" in str(err.value)
    with pytest.raises(RulebookError):
        resolve_facility(None, cat)
    with pytest.raises(RulebookError):
        resolve_facility("", cat)


# ----- landuse_compatible -----

@pytest.mark.parametrize(("code", "allowed", "parent_counts", "expected"), [
    ("080403", ["080403", "080404"], False, True),
    ("080403", ["0804"], False, True),
    ("08040301", ["080403"], False, True),
    ("0804", ["080403"], False, False),
    ("0804", ["080403"], True, True),
    ("080405", "080403;080404", True, False),
    ("1207", "1207", False, True),
    ("120803", "1207", False, False),
    (80403, ["080403"], False, True),
    (None, ["080403"], False, False),
    ("", ["080403"], True, False),
    (float("nan"), ["0804"], False, False),
])
def test_landuse_compatible(code, allowed, parent_counts, expected):
    assert landuse_compatible(code, allowed, parent_counts=parent_counts) is expected


# ----- user catalogues -----

def test_user_catalogue_overrides(tmp_path):
    path = _write_user_catalog(tmp_path, lambda df: df[df["code"] != "logistics"])
    cat = read_catalog(path)
    assert "logistics" not in cat.facilities.index
    assert cat.path == path


def test_missing_column(tmp_path):
    path = _write_user_catalog(tmp_path, lambda df: df.drop(columns="redline_kind"))
    with pytest.raises(RulebookError, match="redline_kind"):
        read_catalog(path)


def test_unknown_group(tmp_path):
    def edit(df):
        df.loc[0, "group"] = "9"
        return df
    with pytest.raises(RulebookError, match="line 2: unknown group"):
        read_catalog(_write_user_catalog(tmp_path, edit))


def test_unknown_landuse_code(tmp_path):
    def edit(df):
        df.loc[1, "landuse_codes"] = "080699"
        return df
    with pytest.raises(RulebookError, match="080699"):
        read_catalog(_write_user_catalog(tmp_path, edit))


def test_landuse_code_without_leading_zero(tmp_path):
    def edit(df):
        df.loc[1, "landuse_codes"] = "80602"
        return df
    with pytest.raises(RulebookError, match="not in the land-use code table"):
        read_catalog(_write_user_catalog(tmp_path, edit))


@pytest.mark.parametrize("field", ["code", "aliases"])
def test_duplicates(tmp_path, field):
    def edit(df):
        if field == "code":
            df.loc[1, "code"] = df.loc[0, "code"]
        else:
            df.loc[1, "aliases"] = df.loc[1, "aliases"] + ";学校"
        return df
    with pytest.raises(RulebookError, match=r"duplicate|used by both"):
        read_catalog(_write_user_catalog(tmp_path, edit))


def test_bad_values(tmp_path):
    def edit(df):
        df.loc[0, "valid_from"] = "soon"
        return df
    with pytest.raises(RulebookError, match="valid_from"):
        read_catalog(_write_user_catalog(tmp_path, edit))


def test_missing_file(tmp_path):
    with pytest.raises(RulebookError, match="not found"):
        read_catalog(tmp_path / "nope.csv")


def test_user_landuse_table(tmp_path):
    lu = tmp_path / "lu.csv"
    lu.write_text("code,name_zh,level,parent,edition\n08,x,1,,t\n0804,y,2,08,t\n"
                  "080403,z,3,0804,t\n", encoding="utf-8")
    fac = _write_user_catalog(tmp_path, lambda df: df[df["code"] == "school"].assign(
        landuse_codes="080403"))
    cat = read_catalog(fac, landuse_path=lu)
    assert list(cat.landuse.index) == ["08", "0804", "080403"]
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name_zh,level,parent,edition\n0804,y,2,08,t\n", encoding="utf-8")
    with pytest.raises(RulebookError, match="no parent"):
        read_landuse_codes(bad)
