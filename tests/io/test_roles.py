"""Layer roles defined once (issue 16, item 3): the registry, a plan's own roles by geometry."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from conftest import write_layer

import spatialplan as sp
from spatialplan.cli import main
from spatialplan.errors import DataLayerError, FieldError, PlanError
from spatialplan.io import _fields, roles
from spatialplan.io import plan as plan_mod
from spatialplan.io._validate import validate_geometries
from spatialplan.io.plan import parse_plan_spec, read_plan_spec
from spatialplan.io.read import read_layer, read_plan

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_070_000.0  # ≈ 107.5°E 27.7°N in CGCS2000 GK zone 36


# --------------------------------------------------------------------------- the registry


def test_registry_lists_the_builtin_roles_with_their_fields():
    assert tuple(roles.BUILTIN_ROLES) == roles.LAYER_ROLES == (
        "townships", "redline", "farmland", "udb", "parcels", "projects", "built", "cropland",
        "villages", "roads", "seats")
    assert plan_mod.LAYER_ROLES is roles.LAYER_ROLES  # the old name is the registry's
    assert {r: s.geometry for r, s in roles.BUILTIN_ROLES.items()
            if s.geometry != "polygon"} == {"villages": "point_or_polygon", "roads": "line",
                                            "seats": "point"}
    assert all(r.builtin and r.description for r in roles.BUILTIN_ROLES.values())
    projects = roles.BUILTIN_ROLES["projects"]
    assert projects.required == ("project_id", "name", "facility")
    assert projects.fields[:4] == ("project_id", "name", "township_code", "facility")
    assert projects.aliases["facility"] == ("XMLB", "SSLX")
    assert projects.kinds["investment_wan"] == "number"
    assert projects.ranges["investment_wan"] == (0.0, 1e8)
    assert projects.point_sites and projects.must_have_features
    assert [r for r, spec in roles.BUILTIN_ROLES.items() if spec.point_sites] == ["projects"]
    assert roles.BUILTIN_ROLES["townships"].aliases == {"code": ("XZQDM",), "name": ("XZQMC",)}
    table = pd.DataFrame(roles.roles_table()).set_index("name")
    assert table.loc["parcels", "required"] == "landuse"
    assert table.loc["udb", "optional"] == "zone"


def test_field_tables_are_views_of_the_registry():
    for name, spec in roles.BUILTIN_ROLES.items():
        assert _fields.CANONICAL_FIELDS[name] == spec.fields
        assert _fields.REQUIRED_FIELDS.get(name, ()) == spec.required
        assert _fields.FIELD_ALIASES.get(name, {}) == dict(spec.aliases)
    assert _fields.FIELD_KINDS["mapped_on"] == "date" and _fields.FIELD_KINDS["code"] == "str"
    assert _fields.NUMBER_RANGES == {"investment_wan": (0.0, _fields.MAX_INVESTMENT_WAN),
                                     "population": (0.0, roles.MAX_VILLAGE_POPULATION),
                                     "speed_kmh": (1.0, 200.0)}


def test_field_aliases_still_map():
    assert _fields.map_fields(["xzqdm", "XZQMC", "geometry"], role="townships") == {
        "code": "xzqdm", "name": "XZQMC"}
    assert _fields.map_fields(["XMDM", "XMMC", "SSLX", "建设性质"], role="projects") == {
        "project_id": "XMDM", "name": "XMMC", "facility": "SSLX",
        "construction_type": "建设性质"}


def test_unknown_role_hint_lists_the_registry_and_the_geometry_key(tmp_path):
    with pytest.raises(PlanError, match=r"unknown layer role 'layers\.forest'") as exc:
        parse_plan_spec({"layers": {"forest": {"path": "f.gpkg"}}}, base=tmp_path)
    for role in roles.LAYER_ROLES:
        assert role in exc.value.hint
    assert 'geometry = "line"' in exc.value.hint


# --------------------------------------------------------------------------- the plan file


def test_a_plan_declares_its_own_role(tmp_path):
    spec = parse_plan_spec({"layers": {
        "rivers": {"path": "r.gpkg", "geometry": "line", "fields": {"name": "HLMC"}},
        "townships": {"path": "t.gpkg", "geometry": "polygon"}}}, base=tmp_path)
    assert list(spec.layers) == ["townships", "rivers"]  # built-in roles first
    assert spec.layers["rivers"].geometry == "line"
    assert spec.layers["rivers"].fields == {"name": "HLMC"}
    assert spec.layers["townships"].geometry == "polygon"


@pytest.mark.parametrize(("table", "message"), [
    ({"path": "r.gpkg", "geometry": "river"}, r"'layers\.rivers\.geometry' must be one of "
     r"polygon, line, point, got 'river'"),
    ({"path": "r.gpkg", "geometry": 2}, r"'layers\.rivers\.geometry' must be one of"),
    ({"path": "r.gpkg", "geometry": "line", "point_radius_m": 5},
     r"'layers\.rivers\.point_radius_m' is only allowed for projects"),
    ({"path": "r.gpkg", "geometry": "line", "fields": {"feature_id": "ID"}},
     r"'layers\.rivers\.fields\.feature_id' is a name the reader sets"),
])
def test_bad_declarations_are_plan_errors(tmp_path, table, message):
    with pytest.raises(PlanError, match=message) as exc:
        parse_plan_spec({"layers": {"rivers": table}}, base=tmp_path, plugin_roles=True)
    assert exc.value.hint


def test_a_builtin_role_is_not_redeclared_with_another_geometry(tmp_path):
    with pytest.raises(PlanError, match=r"'layers\.redline\.geometry' is 'line', but redline is "
                       r"a built-in role holding polygons") as exc:
        parse_plan_spec({"layers": {"redline": {"path": "r.gpkg", "geometry": "line"}}},
                        base=tmp_path)
    assert "[layers.redline_lines]" in exc.value.hint


def test_a_role_name_must_be_a_name(tmp_path):
    with pytest.raises(PlanError, match="is not a role name"):
        parse_plan_spec({"layers": {"Rivers": {"path": "r.gpkg", "geometry": "line"}}},
                        base=tmp_path)


# --------------------------------------------------------------------------- reading by geometry


def _towns(folder: Path) -> None:
    towns = gpd.GeoDataFrame({"XZQDM": ["520123001"], "XZQMC": ["河镇"]}, crs=CRS,
                             geometry=[shapely.box(X0, Y0, X0 + 2000, Y0 + 2000)])
    write_layer(towns, folder / "xzq.gpkg")


def _plan(folder: Path, extra: str) -> Path:
    _towns(folder)
    path = folder / "plan.toml"
    path.write_text('[plan]\ncrs = "EPSG:4545"\nas_of = "2026-06-30"\n\n'
                    '[layers.townships]\npath = "xzq.gpkg"\n\n' + textwrap.dedent(extra),
                    encoding="utf-8")
    return path


def test_a_line_role_is_read_and_validated_as_lines(tmp_path):
    rivers = gpd.GeoDataFrame({"HLMC": ["清水河", "乌江", "断点", "混合", "湖"]}, crs=CRS,
                              geometry=[
        shapely.LineString([(X0 + 100, Y0), (X0 + 100, Y0 + 2000)]),
        shapely.MultiLineString([[(X0, Y0 + 50), (X0 + 900, Y0 + 60)],
                                 [(X0 + 900, Y0 + 60), (X0 + 1800, Y0 + 40)]]),
        shapely.LineString([(X0 + 5, Y0 + 5), (X0 + 5, Y0 + 5)]),  # one place: no line
        shapely.GeometryCollection([shapely.LineString([(X0, Y0 + 900), (X0 + 50, Y0 + 900)]),
                                    shapely.Point(X0 + 60, Y0 + 900)]),
        shapely.box(X0 + 500, Y0 + 500, X0 + 600, Y0 + 600),  # a lake in the river layer
    ])
    write_layer(rivers, tmp_path / "rivers.gpkg")
    plan = read_plan(_plan(tmp_path, '''
        [layers.rivers]
        path = "rivers.gpkg"
        geometry = "line"
        fields = { name = "HLMC" }
        '''))
    layer = plan.layers["rivers"]
    assert list(plan.layers) == ["townships", "rivers"]
    assert layer.data.geom_type.tolist() == ["LineString", "MultiLineString", "LineString"]
    assert layer.data["name"].tolist() == ["清水河", "乌江", "混合"]  # the plan's own field
    assert layer.data["feature_id"].tolist() == ["rivers:0", "rivers:1", "rivers:3"]
    assert layer.repaired[["feature_id", "reason"]].values.tolist() == [
        ["rivers:3", "parts that are not lines dropped"]]
    reasons = dict(zip(layer.rejected["feature_id"], layer.rejected["reason"], strict=True))
    assert reasons["rivers:2"].startswith("invalid line (Too few points")
    assert reasons["rivers:4"] == "Polygon in a line layer"
    assert layer.n_in == 5 == layer.n_ok + layer.n_repaired + layer.n_rejected
    report = sp.validation_report(plan).set_index("role")
    assert report.loc["rivers", ["n_ok", "n_repaired", "n_rejected"]].tolist() == [2, 1, 2]


def test_a_line_role_rejects_non_finite_and_missing_lines_feature_by_feature():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shapely warns on NaN coordinates
        nan_line = shapely.LineString([(0, 0), (math.nan, 1)])
    g = gpd.GeoDataFrame({"v": range(4)}, crs=CRS, geometry=[
        shapely.LineString([(0, 0), (1, 1)]),
        nan_line,
        None,
        shapely.LineString([(0, 0, 1), (1, 1, 2)]),
    ])
    ok, rejected, repaired = validate_geometries(g, role="rivers", geometry="line")
    assert ok["feature_id"].tolist() == ["rivers:0", "rivers:3"]
    assert not ok.geometry.has_z.any() and ok.attrs["n_zm_dropped"] == 1
    assert rejected["reason"].tolist()[0].startswith("non-finite coordinates")
    assert rejected["reason"].tolist()[1] == "geometry is missing (None)"
    assert len(repaired) == 0


def test_polygons_in_a_line_role_are_refused_naming_layer_and_fix(tmp_path, capsys):
    lakes = gpd.GeoDataFrame({"HLMC": ["湖", "塘"]}, crs=CRS, geometry=[
        shapely.box(X0 + 500, Y0 + 500, X0 + 600, Y0 + 600),
        shapely.box(X0 + 700, Y0 + 500, X0 + 800, Y0 + 600)])
    write_layer(lakes, tmp_path / "rivers.gpkg")
    plan = _plan(tmp_path, '[layers.rivers]\npath = "rivers.gpkg"\ngeometry = "line"\n')
    with pytest.raises(DataLayerError, match=r"the rivers layer holds polygons, not lines "
                       r"\(2 Polygon geometries\)") as exc:
        read_plan(plan)
    assert exc.value.layer == "rivers (rivers)"
    assert 'geometry = "polygon" under [layers.rivers]' in exc.value.hint
    assert main(["check", str(plan), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "holds polygons, not lines" in err and "Traceback" not in err


def test_a_point_role_keeps_points_and_refuses_a_line_layer(tmp_path):
    wells = gpd.GeoDataFrame({"v": [1, 2, 3]}, crs=CRS, geometry=[
        shapely.Point(X0 + 10, Y0 + 10),
        shapely.MultiPoint([(X0 + 20, Y0 + 20), (X0 + 30, Y0 + 30)]),
        shapely.box(X0, Y0, X0 + 5, Y0 + 5)])
    write_layer(wells, tmp_path / "wells.gpkg")
    layer = read_layer(tmp_path / "wells.gpkg", role="wells", geometry="point")
    assert layer.data.geom_type.tolist() == ["Point", "MultiPoint"]
    assert layer.rejected["reason"].tolist() == ["Polygon in a point layer"]
    roads = gpd.GeoDataFrame({"v": [1]}, crs=CRS, geometry=[
        shapely.LineString([(X0, Y0), (X0 + 10, Y0)])])
    write_layer(roads, tmp_path / "roads.gpkg")
    with pytest.raises(DataLayerError, match="the wells layer holds lines, not points"):
        read_layer(tmp_path / "roads.gpkg", role="wells", geometry="point")


def test_a_declared_polygon_role_is_read_like_a_control_line(tmp_path):
    forest = gpd.GeoDataFrame({"LZ": ["公益林"]}, crs=CRS, geometry=[
        shapely.box(X0, Y0, X0 + 100, Y0 + 100)])
    write_layer(forest, tmp_path / "forest.gpkg")
    layer = read_layer(tmp_path / "forest.gpkg", role="forest", geometry="polygon",
                       fields={"kind": "LZ"})
    assert layer.data["kind"].tolist() == ["公益林"]
    roads = gpd.GeoDataFrame({"v": [1]}, crs=CRS, geometry=[
        shapely.LineString([(X0, Y0), (X0 + 10, Y0)])])
    write_layer(roads, tmp_path / "roads.gpkg")
    with pytest.raises(DataLayerError, match="the forest layer holds lines, not polygons"):
        read_layer(tmp_path / "roads.gpkg", role="forest", geometry="polygon")


def test_a_missing_field_of_a_declared_role_is_a_field_error(tmp_path):
    rivers = gpd.GeoDataFrame({"NAME": ["清水河"]}, crs=CRS, geometry=[
        shapely.LineString([(X0, Y0), (X0, Y0 + 10)])])
    write_layer(rivers, tmp_path / "rivers.gpkg")
    with pytest.raises(FieldError, match="field 'HLMC' mapped to 'name' does not exist"):
        read_layer(tmp_path / "rivers.gpkg", role="rivers", geometry="line",
                   fields={"name": "HLMC"})


def test_read_layer_refuses_an_unknown_geometry_value(tmp_path):
    with pytest.raises(PlanError, match="must be one of polygon, line, point"):
        read_layer(tmp_path / "rivers.gpkg", role="rivers", geometry="lines")


def test_the_plan_file_and_read_plan_spec_accept_a_declared_role(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text('[layers.rivers]\npath = "rivers.gpkg"\ngeometry = "line"\n',
                    encoding="utf-8")
    assert read_plan_spec(path).layers["rivers"].geometry == "line"


# --------------------------------------------------------------------------- plug-in rules

#: a plug-in reporting the distance to the nearest river, and the geometry types it was given
RIVER_RULE = '''
import numpy as np
import pandas as pd
import spatialplan as sp


@sp.siting_rule("river_setback", layers=["rivers"], source="test", search_radius_m="min_m")
def river_setback(sites, layers, *, min_m=50.0):
    rivers = layers["rivers"]
    dist = sites.geometry.distance(rivers.geometry.union_all()).to_numpy()
    kinds = "/".join(sorted(set(rivers.geom_type)))
    near = dist < min_m
    return pd.DataFrame({
        "project_id": sites["project_id"].to_numpy(),
        "status": np.where(near, "fail", "pass"),
        "measure": dist,
        "unit": "m",
        "message": [f"{d:.0f} m from a river; given {kinds}" for d in dist],
    })
'''


def _plugin_plan(folder: Path, *, geometry: str | None) -> Path:
    """A river (a line) 30 m east of one site and a lake (a polygon) in the rivers layer."""
    projects = gpd.GeoDataFrame(
        {"XMDM": ["P30", "P300"], "XMMC": ["公园", "文化站"], "XZQDM": ["520123001"] * 2,
         "XMLB": ["park", "culture"]}, crs=CRS,
        geometry=[shapely.box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200),
                  shapely.box(X0 + 100, Y0 + 1500, X0 + 200, Y0 + 1600)])
    write_layer(projects, folder / "projects.gpkg")
    rivers = gpd.GeoDataFrame({"HLMC": ["清水河", "湖"]}, crs=CRS, geometry=[
        shapely.LineString([(X0 + 230, Y0), (X0 + 230, Y0 + 1000)]),
        shapely.box(X0 + 210, Y0 + 1500, X0 + 400, Y0 + 1700)])  # 10 m from P300
    write_layer(rivers, folder / "rivers.gpkg")
    (folder / "county_rules.py").write_text(RIVER_RULE, encoding="utf-8")
    (folder / "rules.toml").write_text('[plugins]\nmodules = ["county_rules.py"]\n',
                                       encoding="utf-8")
    declared = "" if geometry is None else f'geometry = "{geometry}"\n'
    return _plan(folder, '[layers.projects]\npath = "projects.gpkg"\n\n'
                 '[layers.rivers]\npath = "rivers.gpkg"\n' + declared
                 + '\n[rules]\npath = "rules.toml"\n')


def test_a_plugin_rule_gets_the_lines_of_a_declared_line_role(tmp_path):
    plan = read_plan(_plugin_plan(tmp_path, geometry="line"))
    assert plan.layers["rivers"].rejected["reason"].tolist() == ["Polygon in a line layer"]
    findings = sp.run_check(plan).findings
    river = findings[findings["rule"] == "river_setback"].set_index("project_id")
    assert river["status"].to_dict() == {"P30": "fail", "P300": "pass"}
    assert river.loc["P30", "measure"] == pytest.approx(30.0)
    assert river.loc["P300", "measure"] > 50  # the lake is not a river
    assert all(m.endswith("given LineString") for m in river["message"])


def test_a_plugin_role_without_geometry_keeps_every_type(tmp_path):
    plan = read_plan(_plugin_plan(tmp_path, geometry=None))
    assert plan.layers["rivers"].data.geom_type.tolist() == ["LineString", "Polygon"]
    findings = sp.run_check(plan).findings
    river = findings[findings["rule"] == "river_setback"].set_index("project_id")
    assert river.loc["P300", "measure"] == pytest.approx(10.0)
    assert river.loc["P300", "message"].endswith("given LineString/Polygon")


def test_the_dask_engine_reads_a_declared_role_by_its_geometry(tmp_path):
    distributed = pytest.importorskip("distributed")
    from spatialplan.pipeline.engine import run_check_dask

    plan = read_plan(_plugin_plan(tmp_path, geometry="line"))
    local = sp.run_check(plan).findings
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        dask = run_check_dask(plan, scheduler=client).findings
    cols = ["project_id", "status", "measure", "message"]
    assert (dask[dask["rule"] == "river_setback"][cols].reset_index(drop=True).equals(
        local[local["rule"] == "river_setback"][cols].reset_index(drop=True)))
    assert dask.set_index(["project_id", "rule"]).loc[("P300", "river_setback"),
                                                      "measure"] > 50  # no lake
