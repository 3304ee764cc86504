"""Smoke runs of the benchmark scripts at a tiny size (the full sizes are run by hand).

They check that each script runs end to end and prints its ratio lines; the numbers themselves
are measurements, recorded in ``benchmarks/README.md``, never asserted here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str, timeout: int = 600) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_province_benchmark_smoke(tmp_path):
    pytest.importorskip("distributed")
    out = _run("bench_province.py", "--townships", "12", "--parcels", "3000", "--projects",
               "120", "--out", str(tmp_path / "plan"))
    for label in ("read floor", "spatialplan check --no-map --no-layout", "ratio check / read",
                  "unavoidable part of the command", "ratio check / unavoidable part",
                  "run_check by stage: control-line tables", "write_check (as --no-map",
                  "control-line statistics", "geopandas.overlay baseline",
                  "dask engine, 1 worker", "dask engine, 2 worker", "speed-up 1 -> 2 workers",
                  "peak RSS of this process"):
        assert label in out, f"missing line {label!r} in:\n{out}"
    assert "counts equal to local: yes" in out
    ratio = re.search(r"ratio check / read floor\s+([\d.]+)x", out)
    assert ratio and float(ratio.group(1)) > 0
    assert (tmp_path / "plan" / "check-output" / "results.gpkg").is_file()


@pytest.mark.slow
def test_overlay_benchmark_smoke():
    out = _run("bench_overlay.py", "--small")
    assert "speed-up:" in out and "areas agree to 1e-6 relative: yes" in out


def test_overlay_benchmark_duplicates_smoke():
    out = _run("bench_overlay.py", "--townships", "12", "--parcels", "1500", "--skip-baseline",
               "--duplicates")
    assert "every parcel twice (3000)" in out
    assert "farmland areas equal to 1e-9 relative: yes" in out


def test_overlay_benchmark_slivers_smoke():
    out = _run("bench_overlay.py", "--townships", "12", "--parcels", "1500", "--skip-baseline",
               "--slivers")
    assert "1 % of the parcels grown by 5 cm (15)" in out
    assert "self-overlaps equal to the whole-layer test: yes" in out


@pytest.mark.slow
def test_zonal_benchmark_smoke():
    pytest.importorskip("rasterstats")
    out = _run("bench_zonal.py", "--small")
    assert "ratio rasterstats / spatialplan" in out


def test_province_plan_rewritten_not_appended(tmp_path, monkeypatch):
    import pyogrio

    monkeypatch.syspath_prepend(str(BENCH))
    bench = pytest.importorskip("bench_province")
    out = tmp_path / "plan"
    counts = []
    for _ in range(2):  # a re-run into the same folder (it used to append: 2x the parcels)
        bench.write_plan(out, townships=6, parcels=400, projects=20, seed=0)
        counts.append({layer: pyogrio.read_info(out / "controls.gpkg", layer=layer)["features"]
                       for layer in ("STBHHX", "YJJBNT", "CZKFBJ")})
    assert counts[0] == counts[1]
    assert counts[0]["YJJBNT"] > 0
    bench.write_plan(out, townships=6, parcels=400, projects=20, seed=0, apart=True)
    farm = pyogrio.read_dataframe(out / "controls.gpkg", layer="YJJBNT")
    assert len(farm) == counts[0]["YJJBNT"]
    left, right = farm.sindex.query(farm.geometry, predicate="intersects")
    assert (left == right).all()  # apart: no parcel touches another


@pytest.mark.slow
def test_map_benchmark_smoke(tmp_path):
    out = _run("bench_map.py", "--small", "--out", str(tmp_path / "run"))
    for label in ("spatialplan check, 3,000 sites", "spatialplan check, demo (reference)",
                  "map.html size", "peak RSS of the command", "wall time of the command"):
        assert label in out, f"missing line {label!r} in:\n{out}"
    # the small plan has more sites than max_sites: all 3,000 in the compact layer
    assert "3,000 in the compact site layer" in out
    sizes = re.findall(r"map.html size\s+([\d,.]+) MB", out)
    peaks = re.findall(r"peak RSS of the command\s+([\d,]+) MiB", out)
    sizes, peaks = ([float(v.replace(",", "")) for v in vs] for vs in (sizes, peaks))
    assert len(sizes) == len(peaks) == 2 and min(sizes) > 0 and min(peaks) > 0
    assert (tmp_path / "run" / "check-output" / "map.html").is_file()


def test_compare_benchmark_smoke():
    out = _run("bench_compare.py", "--small")
    assert "same changes as the baseline: yes" in out
    assert "ratio baseline / sp.compare" in out and "compare + write" in out


@pytest.mark.slow
def test_rollup_benchmark_smoke():
    out = _run("bench_rollup.py", "--small")
    assert "same township table as the check: yes" in out
    assert "roll-up share of the check" in out


@pytest.mark.slow
def test_dask_memory_benchmark_smoke(pg_url):
    pytest.importorskip("distributed")
    out = _run("bench_dask_memory.py", pg_url, "--parcels", "3000", "--townships", "8",
               "--projects", "50")
    for label in ("local engine", "dask engine", "ratio dask / local driver peak RSS"):
        assert label in out, f"missing line {label!r} in:\n{out}"
    assert "verdicts equal: yes" in out
def test_reach_benchmark_smoke():
    out = _run("bench_reach.py", "--small", timeout=300)
    for label in ("village reach:", "wall time (paths built)", "peak RSS of this process",
                  "networkx, one search per village", "speed-up:"):
        assert label in out, f"missing line {label!r} in:\n{out}"
    # the baseline and the reach agree: the ratio is only worth printing if they do
    assert "distances equal to 1e-6 m: yes" in out
    ratio = re.search(r"speed-up: ([\d.]+)x", out)
    assert ratio and float(ratio.group(1)) > 0


@pytest.mark.slow
def test_postgis_read_benchmark_smoke(pg_url):
    out = _run("bench_postgis.py", pg_url, "--rows", "2000")
    for label in ("psycopg 3, binary cursor (spatialplan)", "read_layer from PostGIS",
                  "read_layer from GeoPackage", "ratio PostGIS / GeoPackage"):
        assert label in out, f"missing line {label!r} in:\n{out}"
    ratio = re.search(r"ratio PostGIS / GeoPackage +([\d.]+)x", out)
    assert ratio and float(ratio.group(1)) > 0
