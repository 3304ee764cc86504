"""The facility catalogue named by the plan (``[catalog] path``) or by ``read_plan(catalog=)``."""

from __future__ import annotations

import os
import sys

import geopandas as gpd
import pandas as pd
import pytest
from conftest import LAT, LON, square, write_layer

import spatialplan as sp
from spatialplan.errors import DataSourceError, PlanError, RulebookError
from spatialplan.io.plan import read_plan_spec
from spatialplan.pipeline.write import plan_inputs
from spatialplan.rules.catalog import CHOICE_COLUMNS, MAX_CATALOG_BYTES, read_catalog

BUNDLED = read_catalog().path


def _catalog(path, edit=None, *, encoding="utf-8"):
    """A copy of the bundled catalogue, changed by ``edit`` (a function of the DataFrame)."""
    df = pd.read_csv(BUNDLED, dtype=str, keep_default_na=False)
    if edit is not None:
        df = edit(df)
    df.to_csv(path, index=False, encoding=encoding)
    return path


def _school_allowed(df):
    df.loc[df["code"] == "school", "outside_udb"] = "allowed"
    return df


def _plan(folder, catalog_table=""):
    write_layer(gpd.GeoDataFrame({"XZQDM": ["520123001"], "XZQMC": ["示范镇"]},
                                 geometry=[square(LON, LAT, .02)], crs="EPSG:4490"),
                folder / "towns.gpkg")
    plan = folder / "plan.toml"
    plan.write_text(catalog_table + '[plan]\nname = "示范镇"\n[layers.townships]\n'
                    'path = "towns.gpkg"\n', encoding="utf-8")
    return plan


def test_plan_names_catalogue_relative_to_the_plan(tmp_path):
    (tmp_path / "cat").mkdir()
    _catalog(tmp_path / "cat" / "my_types.csv", _school_allowed)
    plan_file = _plan(tmp_path, '[catalog]\npath = "cat/my_types.csv"\n')
    spec = read_plan_spec(plan_file)
    assert spec.catalog_path == (tmp_path / "cat" / "my_types.csv").resolve()
    plan = sp.read_plan(plan_file)
    assert plan.catalog_path == spec.catalog_path
    assert plan.catalog.path == spec.catalog_path
    assert plan.catalog.facilities.loc["school", "outside_udb"] == "allowed"
    assert spec.catalog_path in plan_inputs(plan)


def test_default_catalogue_without_the_table(tmp_path):
    plan = sp.read_plan(_plan(tmp_path))
    assert plan.catalog_path is None
    assert plan.catalog.path == BUNDLED
    assert plan.catalog.facilities.loc["school", "outside_udb"] == "review"
    assert BUNDLED not in plan_inputs(plan)


def test_read_plan_catalog_overrides_the_plan(tmp_path):
    _catalog(tmp_path / "plan_types.csv")
    other = _catalog(tmp_path / "other.csv", _school_allowed)
    plan = sp.read_plan(_plan(tmp_path, '[catalog]\npath = "plan_types.csv"\n'), catalog=other)
    assert plan.catalog_path == other
    assert plan.catalog.facilities.loc["school", "outside_udb"] == "allowed"


@pytest.mark.parametrize(("table", "error", "match"), [
    ('[catalog]\npth = "x.csv"\n', PlanError, "catalog.pth"),
    ('[catalog]\npath = 5\n', PlanError, "'catalog.path' must be str"),
    ('[catalog]\npath = ""\n', PlanError, "'catalog.path' is empty"),
    ('catalog = "x.csv"\n', PlanError, "'catalog' must be a table"),
    ('[catalog]\npath = "https://example.org/types.csv"\n', DataSourceError, "remote"),
    ('[catalog]\npath = "/vsicurl/http://example.org/t.csv"\n', DataSourceError, "remote"),
])
def test_catalog_table_is_strict(tmp_path, table, error, match):
    with pytest.raises(error, match=match):
        read_plan_spec(_plan(tmp_path, table))


def test_remote_catalog_argument_refused(tmp_path):
    with pytest.raises(DataSourceError, match="remote"):
        sp.read_plan(_plan(tmp_path), catalog="https://example.org/types.csv")


def _bad_value(column):
    def edit(df):
        df.loc[df["code"] == "school", column] = "sometimes"
        return df
    return edit


@pytest.mark.parametrize("column", list(CHOICE_COLUMNS))
def test_unknown_choice_names_file_row_and_fix(tmp_path, column):
    bad = _catalog(tmp_path / "bad.csv", _bad_value(column))
    plan = _plan(tmp_path, '[catalog]\npath = "bad.csv"\n')
    with pytest.raises(RulebookError) as err:
        sp.read_plan(plan)
    text = str(err.value)
    line = 2 + int(pd.read_csv(BUNDLED, dtype=str)["code"].tolist().index("school"))
    assert f"line {line}: unknown {column} 'sometimes'" in text
    assert str(bad) in text and "Fix:" in text and "must be one of" in text


@pytest.mark.parametrize(("edit", "match"), [
    (lambda df: df.drop(columns="outside_udb"), "lacks column"),
    (lambda df: pd.concat([df, df.iloc[[0]]]), "duplicate facility code"),
    (lambda df: df.iloc[0:0], "no rows"),
])
def test_user_catalogue_validated(tmp_path, edit, match):
    _catalog(tmp_path / "bad.csv", edit)
    with pytest.raises(RulebookError, match=match):
        sp.read_plan(_plan(tmp_path, '[catalog]\npath = "bad.csv"\n'))


def test_gbk_catalogue_refused_with_the_fix(tmp_path):
    bad = _catalog(tmp_path / "gbk.csv", encoding="gbk")
    with pytest.raises(RulebookError, match="not UTF-8 text") as err:
        read_catalog(bad)
    assert "save it as CSV in UTF-8" in str(err.value) and str(bad) in str(err.value)


def test_utf8_bom_catalogue_read(tmp_path):
    cat = read_catalog(_catalog(tmp_path / "bom.csv", _school_allowed, encoding="utf-8-sig"))
    assert cat.facilities.loc["school", "outside_udb"] == "allowed"


def test_oversized_catalogue_refused(tmp_path):
    big = _catalog(tmp_path / "big.csv")
    with open(big, "a", encoding="utf-8") as fh:
        fh.write("#" * (MAX_CATALOG_BYTES + 1))
    with pytest.raises(RulebookError, match="larger than"):
        read_catalog(big)


def test_missing_catalogue_named(tmp_path):
    with pytest.raises(RulebookError, match="facility catalogue not found") as err:
        sp.read_plan(_plan(tmp_path, '[catalog]\npath = "nope.csv"\n'))
    assert "nope.csv" in str(err.value)


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes are POSIX")
def test_fifo_catalogue_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(RulebookError, match="not a regular file"):
        sp.read_plan(_plan(tmp_path, '[catalog]\npath = "pipe.csv"\n'))
