"""``read_plan(..., defer=...)``: layers only opened for their count, extent and CRS."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

import spatialplan as sp
from spatialplan.core._resources import demo_dir
from spatialplan.errors import SpatialPlanError
from spatialplan.io.read import validation_report

LINES = ("redline", "farmland", "udb", "cropland", "parcels")


@pytest.fixture(scope="module")
def plans():
    """The demo read whole and with its lines and parcels deferred."""
    path = demo_dir() / "plan.toml"
    return sp.read_plan(path), sp.read_plan(path, defer=LINES)


def test_deferred_layers_hold_counts_and_extents_not_features(plans):
    full, deferred = plans
    assert deferred.crs == full.crs
    for role in LINES:
        layer, whole = deferred.layers[role], full.layers[role]
        assert layer.deferred and not whole.deferred
        assert len(layer.data) == 0 and layer.data.crs == deferred.crs
        assert layer.n_in == whole.n_in
        assert layer.source.crs == whole.source.crs and layer.source.path == whole.source.path
        box = shapely.box(*layer.extent)
        assert box.buffer(1e-6).covers(shapely.box(*whole.data.total_bounds))
    for role in ("townships", "projects", "built"):
        assert len(deferred.layers[role].data) == len(full.layers[role].data)


def test_validation_report_gives_no_validated_counts_for_deferred_layers(plans):
    full, deferred = plans
    report = validation_report(deferred).set_index("role")
    whole = validation_report(full).set_index("role")
    for role in LINES:
        assert report.loc[role, "n_in"] == whole.loc[role, "n_in"]
        assert all(pd.isna(report.loc[role, c]) for c in ("n_ok", "n_repaired", "n_rejected"))
    assert report.loc["projects", "n_ok"] == whole.loc["projects", "n_ok"]


def test_the_distortion_is_measured_on_the_deferred_extents(plans):
    full, deferred = plans
    # the extents hold the features: the measure on them is never below the one on the data
    assert deferred.crs_distortion.areal >= full.crs_distortion.areal
    assert deferred.crs_distortion.linear >= full.crs_distortion.linear


def test_deferring_a_layer_the_check_needs_whole_is_refused():
    with pytest.raises(ValueError, match="townships"):
        sp.read_plan(demo_dir() / "plan.toml", defer=("townships",))
    with pytest.raises(TypeError):
        sp.read_plan(demo_dir() / "plan.toml", defer="parcels")


def test_the_local_engine_refuses_a_deferred_plan(plans):
    with pytest.raises(SpatialPlanError, match="only opened"):
        sp.run_check(plans[1])
    with pytest.raises(SpatialPlanError, match="only opened"):
        sp.run_stats(plans[1])


def test_a_deferred_file_counts_its_null_geometries(tmp_path):
    gdf = gpd.GeoDataFrame({"DLBM": ["0101", "0701", "0101"]}, crs="EPSG:4545", geometry=[
        shapely.box(450_000, 3_070_000, 451_000, 3_071_000), None,
        shapely.box(452_000, 3_072_000, 453_000, 3_073_000)])
    pyogrio.write_dataframe(gdf, tmp_path / "parcels.gpkg")
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"XZQDM": ["520100001"], "XZQMC": ["甲镇"]}, crs="EPSG:4545",
        geometry=[shapely.box(449_000, 3_069_000, 454_000, 3_074_000)]),
        tmp_path / "xzq.gpkg")
    (tmp_path / "plan.toml").write_text(
        '[plan]\nname = "t"\n[layers.townships]\npath = "xzq.gpkg"\n'
        '[layers.parcels]\npath = "parcels.gpkg"\n', encoding="utf-8")
    full = sp.read_plan(tmp_path / "plan.toml")
    deferred = sp.read_plan(tmp_path / "plan.toml", defer=("parcels",))
    assert deferred.layers["parcels"].n_in == full.layers["parcels"].n_in == 3
    assert deferred.layers["parcels"].extent == pytest.approx(
        (450_000, 3_070_000, 453_000, 3_073_000))
    assert deferred.layers["parcels"].source.fields == full.layers["parcels"].source.fields


def test_a_deferred_layer_missing_a_required_field_fails_in_the_driver(tmp_path):
    from spatialplan.errors import FieldError

    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"XZQDM": ["520100001"], "XZQMC": ["甲镇"]}, crs="EPSG:4545",
        geometry=[shapely.box(449_000, 3_069_000, 454_000, 3_074_000)]), tmp_path / "xzq.gpkg")
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"id": [1]}, crs="EPSG:4545", geometry=[shapely.box(450_000, 3_070_000, 451_000,
                                                             3_071_000)]),
        tmp_path / "parcels.gpkg")
    (tmp_path / "plan.toml").write_text(
        '[plan]\nname = "t"\n[layers.townships]\npath = "xzq.gpkg"\n'
        '[layers.parcels]\npath = "parcels.gpkg"\n', encoding="utf-8")
    with pytest.raises(FieldError, match="landuse"):
        sp.read_plan(tmp_path / "plan.toml", defer=("parcels",))


def _lines_as_farmland(folder):
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"XZQDM": ["520100001"], "XZQMC": ["甲镇"]}, crs="EPSG:4545",
        geometry=[shapely.box(449_000, 3_069_000, 454_000, 3_074_000)]), folder / "xzq.gpkg")
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"id": [1]}, crs="EPSG:4545",
        geometry=[shapely.LineString([(450_000, 3_070_000), (451_000, 3_071_000)])]),
        folder / "farmland.gpkg")
    (folder / "plan.toml").write_text(
        '[plan]\nname = "t"\n[layers.townships]\npath = "xzq.gpkg"\n'
        '[layers.farmland]\npath = "farmland.gpkg"\n', encoding="utf-8")
    return folder / "plan.toml"


def test_a_deferred_layer_of_the_wrong_geometry_type_is_refused_like_a_full_read(tmp_path):
    from spatialplan.errors import DataLayerError

    plan = _lines_as_farmland(tmp_path)
    with pytest.raises(DataLayerError, match="farmland layer holds lines"):
        sp.read_plan(plan)
    with pytest.raises(DataLayerError, match="farmland layer holds lines"):
        sp.read_plan(plan, defer=("farmland",))


def test_a_deferred_layer_with_swapped_lat_lon_is_refused_like_a_full_read(tmp_path):
    from spatialplan.errors import CRSError

    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"XZQDM": ["520100001"], "XZQMC": ["甲镇"]}, crs="EPSG:4490",
        geometry=[shapely.box(107.4, 27.7, 107.6, 27.9)]), tmp_path / "xzq.gpkg")
    pyogrio.write_dataframe(gpd.GeoDataFrame(  # lat/lon swapped, as some exports write them
        {"DLBM": ["0101"]}, crs="EPSG:4490", geometry=[shapely.box(27.75, 107.45, 27.8, 107.5)]),
        tmp_path / "parcels.gpkg")
    (tmp_path / "plan.toml").write_text(
        '[plan]\nname = "t"\n[layers.townships]\npath = "xzq.gpkg"\n'
        '[layers.parcels]\npath = "parcels.gpkg"\n', encoding="utf-8")
    with pytest.raises(CRSError) as full:
        sp.read_plan(tmp_path / "plan.toml")
    with pytest.raises(CRSError) as deferred:
        sp.read_plan(tmp_path / "plan.toml", defer=("parcels",))
    assert str(deferred.value).split(" (")[0] == str(full.value).split(" (")[0]
