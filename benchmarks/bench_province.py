"""Benchmark: the whole check on a province-sized synthetic plan, local and dask engines.

Generates (with ``bench_overlay``'s generator) townships, a farmland coverage, red line and
development boundary, adds an 8+X register of projects (canonical fields) and detailed-plan
parcels under them, writes everything as GeoPackages with a ``plan.toml`` (CGCS2000 GK zone 36,
EPSG:4545), then prints in one run:

- the floor: reading every layer with ``pyogrio.read_dataframe`` (also with ``use_arrow=True``);
- the whole ``spatialplan check PLAN --out DIR --no-map --no-layout`` command (process start,
  read, check, writing the results; the faster of two runs) with its peak RSS, and its ratio
  to the floor (target ≤ 2x);
- the part of that command no check can avoid: starting Python and importing the package, the
  read floor, and writing the command's own ``results.gpkg`` again (nothing validated, nothing
  analysed), as a ratio to the floor;
- the same check in memory (``read_plan`` + ``run_check``) as a breakdown, ``run_check`` by
  stage (control-line tables, township overlaps, siting, finish) and ``write_check`` alone;
- ``overlay.township_stats`` against the ``geopandas.overlay`` baseline (target ≥ 3x);
- peak memory (RSS high-water of this process; target ≤ 8 GB at the default size);
- ``run_check(engine="dask")`` with 1 and 2 local worker processes, the speed-up (target ≥
  1.6x) and each worker's peak RSS;
- with ``--profile``, the top functions of a cProfile of ``run_check``;
- with ``--apart``, the same on farmland parcels that do not touch each other (each shrunk by
  0.5 m): the case where the coverage certificate and the per-township pieces cost most.

``python benchmarks/bench_province.py`` (1,500 townships, 1,000,000 parcels, 10,000 projects),
``--small`` for a smoke run (< 2 min), ``--townships/--parcels/--projects`` for other sizes.

Needs ``psutil`` (the memory of the check command and of each dask worker), which comes with the
``test`` extra, and the ``dask`` extra for the dask runs: ``pip install ".[test,dask]"``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overlay import CRS, PeakRSS, baseline, make_case, psutil

import spatialplan as sp
from spatialplan.analysis import overlay

#: what the script needs beyond spatialplan itself (printed by --help, and when psutil is missing)
NEEDS = ('needs psutil (memory of the check command and of each dask worker; it comes with the '
         'test extra) and the dask extra for the dask runs: pip install ".[test,dask]"')

#: with ``--apart``: each farmland parcel shrunk by this many metres, so none touches another
APART_M = 0.5

FACILITIES = {  # facility code → compatible land-use code of its parcel
    "school": "080403", "health_center": "080602", "elder_care": "080701",
    "market": "090101", "park": "1401", "sewage": "1302", "refuse": "1309",
    "parking": "120803", "road": "1207", "culture": "0704",
}


def make_projects(townships: gpd.GeoDataFrame, n: int, rng: np.random.Generator
                  ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Project sites (30-120 m boxes) with canonical fields, and a parcel under each."""
    xmin, ymin, xmax, ymax = townships.total_bounds
    cx, cy = rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n)
    w, h = rng.uniform(30, 120, n), rng.uniform(30, 120, n)
    sites = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    sites = shapely.set_precision(sites, 0.001)
    tree = shapely.STRtree(np.asarray(townships.geometry.array))
    pi, ti = tree.query(shapely.points(cx, cy), predicate="within")
    code = np.full(n, None, dtype=object)
    code[pi] = townships["code"].to_numpy()[ti]
    fac = rng.choice(list(FACILITIES), n)
    year = rng.integers(2021, 2027, n)
    mapped = np.array([f"{y - 1}-0{rng.integers(1, 10)}-15" for y in year])
    projects = gpd.GeoDataFrame({
        "XMDM": [f"XM{k:06d}" for k in range(n)], "XMMC": [f"项目{k}" for k in range(n)],
        "XZQDM": code, "XMLB": fac,
        "JSZT": rng.choice(["planned", "under_construction", "completed"], n),
        "LTRQ": mapped, "ZTZ": np.round(rng.uniform(50, 5000, n), 1),
        "KSNF": year, "JSNF": year + rng.integers(0, 3, n),
    }, geometry=sites, crs=CRS)
    pad = rng.uniform(5, 40, n)
    landuse = np.array([FACILITIES[f] for f in fac], dtype=object)
    wrong = rng.random(n) < 0.1
    landuse[wrong] = "0701"  # residential: incompatible (and a setback target)
    parcels = gpd.GeoDataFrame(
        {"YDYHDM": landuse},
        geometry=shapely.set_precision(shapely.box(cx - w / 2 - pad, cy - h / 2 - pad,
                                                   cx + w / 2 + pad, cy + h / 2 + pad), 0.001),
        crs=CRS)
    return projects, parcels


def write_plan(out: Path, *, townships: int, parcels: int, projects: int, seed: int,
               apart: bool = False) -> Path:
    """Generate the case and write it as GeoPackages plus plan.toml; return the plan path.

    With ``apart`` the farmland parcels are shrunk by :data:`APART_M` each, so that no two
    touch (many small parcels, as a 三调 extract of scattered plots arrives).
    """
    rng = np.random.default_rng(seed)
    case = make_case(townships, parcels, seed)
    if apart:
        farm = case["farmland"]
        case["farmland"] = farm.set_geometry(shapely.buffer(
            farm.geometry.to_numpy(), -APART_M, join_style="mitre"))
    towns = case["townships"].rename(columns={"code": "XZQDM", "name": "XZQMC"})
    reg, lots = make_projects(case["townships"], projects, rng)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("townships.gpkg", "controls.gpkg", "parcels.gpkg", "projects.gpkg"):
        (out / name).unlink(missing_ok=True)  # a re-run must not append to an earlier run's layers
    pyogrio.write_dataframe(towns.drop(columns="feature_id"), out / "townships.gpkg",
                            layer="XZQ")
    for layer, role in (("STBHHX", "redline"), ("YJJBNT", "farmland"), ("CZKFBJ", "udb")):
        pyogrio.write_dataframe(case[role].drop(columns="feature_id"), out / "controls.gpkg",
                                layer=layer, append=layer != "STBHHX")
    pyogrio.write_dataframe(lots, out / "parcels.gpkg", layer="KZXXGH_DK")
    pyogrio.write_dataframe(reg, out / "projects.gpkg", layer="XS_XMKJFW")
    plan = out / "plan.toml"
    plan.write_text("\n".join([
        "[plan]", 'name = "benchmark province (synthetic)"', f'crs = "{CRS}"',
        'as_of = "2026-06-30"', "",
        "[layers.townships]", 'path = "townships.gpkg"', "",
        "[layers.redline]", 'path = "controls.gpkg"', 'layer = "STBHHX"', "",
        "[layers.farmland]", 'path = "controls.gpkg"', 'layer = "YJJBNT"', "",
        "[layers.udb]", 'path = "controls.gpkg"', 'layer = "CZKFBJ"', "",
        "[layers.parcels]", 'path = "parcels.gpkg"', "",
        "[layers.projects]", 'path = "projects.gpkg"',
        'fields = { status = "JSZT", mapped_on = "LTRQ", start_year = "KSNF", '
        'end_year = "JSNF" }', ""]), encoding="utf-8")
    return plan


def read_floor(plan_path: Path, *, use_arrow: bool = False, repeat: int = 2) -> float:
    """Time reading every layer of the plan with pyogrio (no checks, no reprojection).

    The best of ``repeat`` reads, in seconds, so that a cold first read does not flatter the ratio.
    """
    from spatialplan.io.plan import read_plan_spec

    spec = read_plan_spec(plan_path)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for ls in spec.layers.values():
            pyogrio.read_dataframe(ls.path, layer=ls.layer, use_arrow=use_arrow)
        best = min(best, time.perf_counter() - t)
    return best


def run_cli(plan_path: Path, out: Path) -> tuple[float, int, str]:
    """Wall time, peak RSS (bytes) and summary of ``spatialplan check --no-map --no-layout``."""
    wall, peak, _, summary = run_check_command(plan_path, out)
    return wall, peak, summary


def run_check_command(plan_path: Path, out: Path, *extra: str, ok: tuple[int, ...] = (0,)
                      ) -> tuple[float, int, int, str]:
    """Run ``spatialplan check PLAN --out OUT --no-map --no-layout -q [extra]`` as a process.

    Returns its wall time, the peak RSS of its own process and the largest peak RSS of one of
    its child processes (the dask workers; 0 without), in bytes, sampled every 20 ms, and its
    ``projects:`` summary line. Another exit code than ``ok`` stops the benchmark.
    """
    cli = Path(sys.executable).with_name("spatialplan")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "spatialplan"]
    command += ["check", str(plan_path), "--out", str(out), "--no-map", "--no-layout", "-q",
                *extra]
    t = time.perf_counter()
    with psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      text=True) as proc:
        peak = child_peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, proc.memory_info().rss)
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child_peak = max(child_peak, child.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.02)
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t
    if proc.returncode not in ok:
        raise SystemExit(f"spatialplan check failed ({proc.returncode}):\n{stderr[-2000:]}")
    summary = next((line for line in stdout.splitlines() if line.startswith("projects:")), "")
    return wall, peak, child_peak, summary


def startup_seconds(*, repeat: int = 2) -> float:
    """Time a Python process importing what ``spatialplan check`` imports before it reads.

    The best of ``repeat`` wall times; the package, its reader and its pipeline are imported.
    """
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import spatialplan.cli, spatialplan.pipeline.run"],
                       check=True)
        best = min(best, time.perf_counter() - t)
    return best


def rewrite_seconds(gpkg: Path, *, repeat: int = 2) -> float:
    """Time writing the layers of ``gpkg`` again into a new GeoPackage with pyogrio.

    The best of ``repeat`` times; the layers are read first, untimed: the cost of the results file
    alone.
    """
    frames = {name: pyogrio.read_dataframe(gpkg, layer=name, use_arrow=True)
              for name, _ in pyogrio.list_layers(gpkg)}
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench_rewrite_") as tmp:
        for k in range(repeat):
            target = Path(tmp) / f"again{k}.gpkg"
            t = time.perf_counter()
            for name, frame in frames.items():
                pyogrio.write_dataframe(frame, target, layer=name, driver="GPKG",
                                        use_arrow=True)
            best = min(best, time.perf_counter() - t)
    return best


class ChildrenPeak:
    """Peak RSS of each child process (the dask workers), sampled every 50 ms."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for child in psutil.Process().children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)

    def __enter__(self) -> ChildrenPeak:
        """Start sampling the child processes."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


@contextlib.contextmanager
def _stage_clock():
    """Time the stages of ``run_check`` (seconds by stage name) while the block runs.

    Wraps the module attributes ``run_check`` calls through: the control-line tables
    (``overlay.control_line_report``), the township overlaps and gaps, the siting checks and
    ``finish`` (sequence table, coverage, roll-up).
    """
    from spatialplan.pipeline import run as run_mod
    from spatialplan.rules import siting

    spent: dict[str, float] = {}
    targets = [(overlay, "control_line_report", "control-line tables"),
               (overlay, "township_conflicts", "township overlaps and gaps"),
               (overlay, "township_double_counted", "township overlaps and gaps"),
               (siting, "check_projects", "siting checks"),
               (run_mod, "finish", "finish (时序表, coverage, roll-up)")]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in targets]

    def clocked(func, label):
        def call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
        return call

    for (mod, name, label), (_, _, func) in zip(targets, saved, strict=True):
        setattr(mod, name, clocked(func, label))
    try:
        yield spent
    finally:
        for mod, name, func in saved:
            setattr(mod, name, func)


def _profile(plan) -> str:
    prof = cProfile.Profile()
    prof.enable()
    sp.run_check(plan)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(25)
    buf.write("\n--- by own time ---\n")
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with the command-line arguments ``argv``; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=NEEDS)
    parser.add_argument("--townships", type=int, default=1500)
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", metavar="DIR", help="where to write the plan (default: temp)")
    parser.add_argument("--small", action="store_true",
                        help="smoke run: 60 townships, 20,000 parcels, 500 projects")
    parser.add_argument("--skip-baseline", action="store_true", help="no geopandas.overlay")
    parser.add_argument("--skip-dask", action="store_true", help="no dask engine runs")
    parser.add_argument("--profile", action="store_true", help="cProfile run_check")
    parser.add_argument("--apart", action="store_true",
                        help=f"farmland parcels shrunk by {APART_M} m: none touches another")
    args = parser.parse_args(argv)
    if psutil is None:
        parser.error(f"psutil is not installed. {NEEDS}")
    if args.small:
        args.townships, args.parcels, args.projects = 60, 20_000, 500
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="bench_province_")
    out = Path(args.out or tmp.name)

    t = time.perf_counter()
    plan_path = write_plan(out, townships=args.townships, parcels=args.parcels,
                           projects=args.projects, seed=args.seed, apart=args.apart)
    os.sync()  # the plan on disk before anything is timed
    print(f"size: {args.townships} townships (requested), {args.parcels:,} farmland parcels"
          f"{' (apart: none touches another)' if args.apart else ''}, "
          f"{args.projects:,} projects with parcels; generated and written in "
          f"{time.perf_counter() - t:.1f} s to {out}")

    floor = read_floor(plan_path)
    floor_arrow = read_floor(plan_path, use_arrow=True)
    print(f"read floor (pyogrio, every layer)       {floor:8.2f} s   "
          f"(with use_arrow=True {floor_arrow:.2f} s; ratios use the faster)")
    plain_floor, floor = floor, min(floor, floor_arrow)

    # best of two, as the floor: the plan was just written, and the first run can share the
    # disk with its write-back (it read 1-3 s slower than farm-bench medians of the command)
    runs = [run_cli(plan_path, out / "check-output") for _ in range(2)]
    cli_s, cli_peak, cli_summary = min(runs)
    print(f"spatialplan check --no-map --no-layout  {cli_s:8.2f} s   (whole command: start-up, "
          f"read, check, write results; best of 2)   peak RSS {_mib(cli_peak)}")
    print(f"  ratio check / read floor               {cli_s / floor:8.2f}x  (target <= 2x; "
          f"{cli_s / plain_floor:.2f}x the plain floor)   {cli_summary}")
    t_start = startup_seconds()
    t_write = rewrite_seconds(out / "check-output" / "results.gpkg")
    unavoidable = t_start + floor + t_write
    print(f"  unavoidable part of the command        {unavoidable:8.2f} s   (start-up "
          f"{t_start:.2f} s + read floor {floor:.2f} s + writing results.gpkg alone "
          f"{t_write:.2f} s; no validation, no analysis) = {unavoidable / floor:.2f}x the floor")
    print(f"  ratio check / unavoidable part         {cli_s / unavoidable:8.2f}x  (target <= 2x)")

    with PeakRSS() as mem, _stage_clock() as stages:
        t = time.perf_counter()
        plan = sp.read_plan(plan_path)
        t_read = time.perf_counter() - t
        result = sp.run_check(plan)
        t_check = time.perf_counter() - t
    print(f"in memory: read_plan + run_check        {t_check:8.2f} s   (read_plan {t_read:.2f} s, "
          f"run_check {t_check - t_read:.2f} s)   peak RSS {_mib(mem.peak)}")
    rest = t_check - t_read - sum(stages.values())
    print("  run_check by stage: " + ", ".join(
        f"{label} {sec:.2f} s" for label, sec in stages.items()) + f", the rest {rest:.2f} s")
    print(f"  ratio to the read floor                {t_check / floor:8.2f}x  "
          f"({t_check / plain_floor:.2f}x the plain floor)")
    print(f"  {len(result.township_stats)} townships, {len(result.projects):,} projects "
          f"{result.verdict_counts()}, {len(result.line_conflicts):,} line-conflict rows")
    with tempfile.TemporaryDirectory(prefix="bench_province_write_") as tmp_out:
        from spatialplan.pipeline.write import OUTPUT_KINDS, write_check

        t = time.perf_counter()
        write_check(plan, result, Path(tmp_out) / "out",
                    outputs=[k for k in OUTPUT_KINDS if k not in ("map", "layout")])
        print(f"  write_check (as --no-map --no-layout) {time.perf_counter() - t:6.2f} s   "
              "(results.gpkg, tables, 时序表, report, manifest)")

    lines = {r: plan.layers[r].data for r in ("redline", "farmland", "udb")}
    towns = plan.layers["townships"].data
    t = time.perf_counter()
    overlay.township_stats(towns, **lines)
    t_stats = time.perf_counter() - t
    print(f"control-line statistics (township_stats) {t_stats:7.2f} s")
    if not args.skip_baseline:
        t = time.perf_counter()
        for role, gdf in lines.items():
            baseline(towns, gdf, dissolve=(role == "redline"))
        t_base = time.perf_counter() - t
        print(f"geopandas.overlay baseline               {t_base:7.2f} s   speed-up "
              f"{t_base / t_stats:.1f}x (target >= 3x)")

    if not args.skip_dask:
        _dask_runs(plan_path, result, local_s=t_check)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"peak RSS of this process (high-water)   {_mib(peak)} (target <= 8 GB)")
    if args.profile:
        print(_profile(plan))
    if tmp is not None:
        tmp.cleanup()
    return 0


def _dask_runs(plan_path: Path, result, *, local_s: float) -> None:
    """Time the dask engine as the command runs it, on 1 and 2 local worker processes.

    The driver's read (the lines and parcels only opened, ``defer=``) and the partitioned
    check, each against the local ``read_plan + run_check`` (issue 21: ≤ 1.3x with one worker,
    under 1x with two), and whether the results' counts equal the local ones.
    """
    from distributed import Client, LocalCluster

    from spatialplan.pipeline.engine import DEFERRED_ROLES

    times = {}
    for n in (1, 2):
        with ChildrenPeak() as kids:
            t = time.perf_counter()
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                              dashboard_address=":0") as cluster, Client(cluster) as client:
                t_start = time.perf_counter() - t
                t = time.perf_counter()
                dplan = sp.read_plan(plan_path, defer=DEFERRED_ROLES)
                dres = sp.run_check(dplan, engine="dask", scheduler=client)
                times[n] = time.perf_counter() - t
        workers = sorted(kids.peaks.values(), reverse=True)[:n]
        target = "<= 1.3x" if n == 1 else "< 1x"
        print(f"dask engine, {n} worker(s)                {times[n]:7.2f} s   "
              f"= {times[n] / local_s:.2f}x local read_plan + run_check (target {target}); "
              f"+ {t_start:.1f} s cluster start-up; peak RSS per worker "
              f"{', '.join(_mib(w) for w in workers)}")
    same = (dres.verdict_counts() == result.verdict_counts()
            and len(dres.findings) == len(result.findings)
            and len(dres.line_conflicts) == len(result.line_conflicts))
    print(f"  speed-up 1 -> 2 workers                {times[1] / times[2]:7.2f}x "
          f"(target >= 1.6x); counts equal to local: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    sys.exit(main())
