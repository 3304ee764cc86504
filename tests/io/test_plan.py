"""Plan file parsing: shape, unknown keys, types, relative and remote paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from spatialplan.errors import DataSourceError, PlanError
from spatialplan.io.plan import LAYER_ROLES, is_remote, read_plan_spec

FULL = """
[plan]
name = "示范镇"
crs = "auto"
as_of = "2026-11-26"

[layers.townships]
path = "townships.gpkg"
layer = "XZQ"
encoding = "GBK"
fields = { code = "XZQDM", name = "XZQMC" }

[layers.redline]
path = "sub/controls.gpkg"
layer = "STBHHX"
assume_crs = "EPSG:4490"

[layers.projects]
path = "projects.shp"
point_radius_m = 30

[rasters.dem]
path = "dem.tif"
nodata = -9999

[rules]
path = "rules.toml"
"""


def write_plan(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_full_example_parses_with_paths_relative_to_plan(tmp_path):
    spec = read_plan_spec(write_plan(tmp_path, FULL))
    assert spec.name == "示范镇"
    assert spec.crs == "auto"
    assert spec.as_of == dt.date(2026, 11, 26)
    assert list(spec.layers) == ["townships", "redline", "projects"]
    town = spec.layers["townships"]
    assert town.path == tmp_path.resolve() / "townships.gpkg"
    assert (town.layer, town.encoding) == ("XZQ", "GBK")
    assert town.fields == {"code": "XZQDM", "name": "XZQMC"}
    assert spec.layers["redline"].path == tmp_path.resolve() / "sub" / "controls.gpkg"
    assert spec.layers["redline"].assume_crs == "EPSG:4490"
    assert spec.layers["projects"].point_radius_m == 30.0
    assert spec.rasters["dem"].path == tmp_path.resolve() / "dem.tif"
    assert spec.rasters["dem"].nodata == -9999.0
    assert spec.rules_path == tmp_path.resolve() / "rules.toml"


def test_defaults_as_of_today_and_name_from_file(tmp_path):
    spec = read_plan_spec(write_plan(tmp_path, '[layers.udb]\npath = "u.gpkg"\n'))
    assert spec.as_of == dt.date.today()
    assert spec.name == "plan"
    assert spec.crs == "auto"
    assert spec.rules_path is None


def test_toml_date_literal_accepted(tmp_path):
    spec = read_plan_spec(write_plan(tmp_path, "[plan]\nas_of = 2025-01-31\n"))
    assert spec.as_of == dt.date(2025, 1, 31)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[layers.redline]\npth = "a.gpkg"\n', "layers.redline.pth"),
        ('[plan]\nnmae = "x"\n', "plan.nmae"),
        ('[rasters.dem]\npath = "d.tif"\nnodta = 0\n', "rasters.dem.nodata".replace("nodata",
                                                                                   "nodta")),
        ('[rules]\nfile = "r.toml"\n', "rules.file"),
        ('extra = 1\n', "'extra'"),
        ('[layers.townships]\npath = "t.gpkg"\nfields = { kode = "XZQDM" }\n',
         "layers.townships.fields.kode"),
    ],
)
def test_unknown_key_is_named_with_its_table(tmp_path, text, named):
    with pytest.raises(PlanError, match=named.replace(".", r"\.")):
        read_plan_spec(write_plan(tmp_path, text))


def test_unknown_role_lists_valid_roles(tmp_path):
    with pytest.raises(PlanError) as exc:
        read_plan_spec(write_plan(tmp_path, '[layers.forest]\npath = "f.gpkg"\n'))
    assert "layers.forest" in str(exc.value)
    for role in LAYER_ROLES:
        assert role in exc.value.hint


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[layers.redline]\npath = 3\n", "layers.redline.path"),
        ('[plan]\nas_of = "26/11/2026"\n', "plan.as_of"),
        ('[plan]\nname = ["a"]\n', "plan.name"),
        ('[layers.projects]\npath = "p.gpkg"\npoint_radius_m = "30"\n',
         "layers.projects.point_radius_m"),
        ('[layers.projects]\npath = "p.gpkg"\npoint_radius_m = true\n',
         "layers.projects.point_radius_m"),
        ('[layers]\nredline = "r.gpkg"\n', "layers.redline"),
        ('plan = "x"\n', "plan"),
        ('[plan]\ncrs = "EPSG:99999999"\n', "plan.crs"),
        ('[layers.udb]\npath = "u.gpkg"\nencoding = "klingon"\n', "layers.udb.encoding"),
        ('[layers.udb]\nlayer = "CZKFBJ"\n', "layers.udb.path"),
    ],
)
def test_wrong_type_or_value_is_a_plan_error(tmp_path, text, named):
    with pytest.raises(PlanError, match=named.replace(".", r"\.")):
        read_plan_spec(write_plan(tmp_path, text))


def test_point_radius_only_for_projects(tmp_path):
    with pytest.raises(PlanError, match="only allowed for projects"):
        read_plan_spec(write_plan(tmp_path, '[layers.udb]\npath = "u"\npoint_radius_m = 5\n'))


def test_invalid_toml_names_the_file(tmp_path):
    path = write_plan(tmp_path, "[plan\nname = 1\n")
    with pytest.raises(PlanError, match="not valid TOML") as exc:
        read_plan_spec(path)
    assert exc.value.path == str(path.resolve())


def test_missing_plan_file(tmp_path):
    with pytest.raises(DataSourceError, match="plan file not found"):
        read_plan_spec(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "url",
    ["https://example.org/a.gpkg", "http://x/y.shp", "/vsicurl/https://x/a.gpkg",
     "/vsizip/data.zip/a.shp", "s3://bucket/a.gpkg"],
)
def test_remote_paths_refused_unless_allowed(tmp_path, url):
    assert is_remote(url)
    path = write_plan(tmp_path, f'[layers.redline]\npath = "{url}"\n')
    with pytest.raises(DataSourceError, match="remote"):
        read_plan_spec(path)
    spec = read_plan_spec(path, allow_remote=True)
    assert spec.layers["redline"].path == url


def test_local_paths_are_not_remote():
    assert not is_remote("data/a.gpkg")
    assert not is_remote("C:/data/a.gpkg")
