"""Tests of spatialplan.io._tbmj: a layer's TBMJ against its computed ellipsoidal area."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from conftest import equal_area_m2
from shapely import box

from spatialplan.io._tbmj import compare_tbmj, tbmj_table

CRS = "EPSG:4545"


def _parcels(tbmj, field="TBMJ"):
    geoms = [box(350_000 + 300 * k, 2_988_000, 350_000 + 300 * k + 200, 2_988_150)
             for k in range(len(tbmj))]
    return gpd.GeoDataFrame({"feature_id": [f"cropland:{k}" for k in range(len(tbmj))],
                             field: tbmj}, geometry=geoms, crs=CRS)


def test_numeric_tbmj_compared_with_the_ellipsoidal_area():
    truth = [round(equal_area_m2(g), 2) for g in _parcels([0.0] * 5).geometry]
    gdf = _parcels([truth[0], truth[1], np.nan, -1.0, np.inf], field="tbmj")
    row = compare_tbmj(gdf, role="cropland")
    assert (row["field"], row["n_features"], row["n_compared"], row["n_missing"]) == (
        "tbmj", 5, 2, 1)
    assert row["n_not_numeric"] == 2
    assert row["not_numeric"] == "cropland:3=-1.0; cropland:4=inf"
    assert row["tbmj_sum_m2"] == truth[0] + truth[1]
    assert row["ellipsoidal_m2"] == pytest.approx(truth[0] + truth[1], abs=0.02)
    assert row["ellipsoidal_m2"] < 2 * 200 * 150 * (1 - 4e-4)  # not the planar area
    assert abs(row["relative_difference"]) < 1e-6


def test_many_bad_values_are_counted_and_a_few_named():
    row = compare_tbmj(_parcels(["abc"] * 7 + [""]), role="farmland")
    assert (row["n_compared"], row["n_missing"], row["n_not_numeric"]) == (0, 1, 7)
    assert row["not_numeric"].count("='abc'") == 5 and row["not_numeric"].endswith("; ...")
    assert row["tbmj_sum_m2"] == 0.0 and np.isnan(row["relative_difference"])


def test_only_layers_with_the_field_and_of_the_compared_roles():
    class Layer:
        def __init__(self, data):
            self.data = data

    table = tbmj_table({"townships": Layer(_parcels([1.0])),
                        "parcels": Layer(_parcels([1.0]).drop(columns="TBMJ")),
                        "cropland": Layer(_parcels(["1"]))})
    assert table["role"].tolist() == ["cropland"]
    empty = tbmj_table({})
    assert len(empty) == 0 and list(empty.columns)[:3] == ["role", "field", "n_features"]
    assert isinstance(empty, pd.DataFrame)
