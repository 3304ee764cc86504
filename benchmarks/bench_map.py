"""Benchmark: ``map.html`` size and peak memory of the whole check on a plan with 50,000 sites.

Builds (with ``bench_province``'s generator) a synthetic plan of townships, a farmland
coverage, red line, development boundary, an 8+X register of project sites and a parcel under
each, writes it as GeoPackages with a ``plan.toml``, then runs the whole
``spatialplan check PLAN --out DIR`` command (every deliverable: GeoPackage, tables, map,
layout, report) as a child process and prints:

- the size of ``map.html`` and the number of sites and line conflicts it draws;
- the peak resident memory of the command (its own high-water mark: ``ru_maxrss`` of the
  command from ``os.wait4`` in a small launcher process; no psutil needed) and its wall time;
- the same for the bundled demo plan (``layers/demo/plan.toml``), as a reference.

Targets (issue 14): a map of a 50,000-site plan of at most 25 MB, the whole command under
3 GB. ``python benchmarks/bench_map.py`` (200 townships, 200,000 farmland parcels, 50,000
sites), ``--small`` for a smoke run (< 1 min), ``--townships/--parcels/--projects`` for other
sizes, ``--out DIR`` to keep the plan and the outputs.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_province import write_plan

from spatialplan.core._resources import layers_dir

MAP_TARGET_BYTES = 25 * 10**6
PEAK_TARGET_BYTES = 3 * 2**30


#: Runs a command (argv[2:]) and writes its peak RSS (``ru_maxrss``) and exit code to argv[1].
#: A child started straight from this process would report this process's own high-water mark
#: when that is larger: Linux keeps the larger ``maxrss`` of the memory image a child replaces
#: at ``exec`` (vfork/fork copy of this process). The small launcher's image is fresh, so the
#: command it starts reports its own peak only.
_LAUNCHER = """\
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_check(plan_path: Path, out: Path) -> tuple[float, int, str]:
    """Run ``spatialplan check PLAN --out OUT -q`` as a child process.

    Returns
    -------
    tuple
        Wall seconds, the command's peak resident set size in bytes (``ru_maxrss`` of the
        command from ``os.wait4``, through :data:`_LAUNCHER`: its own high-water mark, not this
        process's), and the command's summary line.
    """
    cli = Path(sys.executable).with_name("spatialplan")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "spatialplan"]
    command += ["check", str(plan_path), "--out", str(out), "-q"]
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    result = out.parent / f"{out.name}.rusage"
    t = time.perf_counter()
    with open(log, "w", encoding="utf-8") as sink:
        subprocess.run([sys.executable, "-c", _LAUNCHER, str(result), *command], stdout=sink,
                       stderr=subprocess.STDOUT, check=True)
    wall = time.perf_counter() - t
    maxrss, code = (int(v) for v in result.read_text(encoding="utf-8").split())
    text = log.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        raise SystemExit(f"spatialplan check failed ({code}):\n{text[-3000:]}")
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    peak = maxrss if sys.platform == "darwin" else maxrss * 1024
    summary = next((line for line in text.splitlines() if line.startswith("projects:")), "")
    return wall, peak, summary


def map_counts(path: Path) -> dict[str, int]:
    """Embedded GeoJSON FeatureCollections of ``map.html`` and their features.

    Counts folium's layers (``..._add({...})``) and the compact site layer's collection
    (``"sp_role": "projects"``); ``sites`` is the number of features in the latter.
    """
    html = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    out = {"collections": 0, "features": 0, "sites": 0}
    for match in re.finditer(r'_add\(\{|\{"type":"FeatureCollection","sp_role"', html):
        start = match.end() - 1 if match.group(0).startswith("_add") else match.start()
        obj, _ = decoder.raw_decode(html, start)
        if obj.get("type") != "FeatureCollection":
            continue
        out["collections"] += 1
        out["features"] += len(obj["features"])
        if obj.get("sp_role") == "projects":
            out["sites"] += len(obj["features"])
    return out


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def report(label: str, plan_path: Path, out: Path, *, targets: bool) -> None:
    """Run the check on ``plan_path`` and print map size, peak memory and wall time."""
    wall, peak, summary = run_check(plan_path, out)
    size = (out / "map.html").stat().st_size
    counts = map_counts(out / "map.html")
    size_note = (f" (target <= {_mb(MAP_TARGET_BYTES)}: "
                 f"{'met' if size <= MAP_TARGET_BYTES else 'NOT met'})") if targets else ""
    peak_note = (f" (target < {_mib(PEAK_TARGET_BYTES)}: "
                 f"{'met' if peak < PEAK_TARGET_BYTES else 'NOT met'})") if targets else ""
    print(f"{label}: {summary}")
    print(f"  map.html size               {_mb(size):>12}{size_note}; {counts['features']:,} "
          f"features in {counts['collections']} GeoJSON collections, "
          f"{counts['sites']:,} in the compact site layer")
    print(f"  peak RSS of the command     {_mib(peak):>12}{peak_note}")
    print(f"  wall time of the command    {wall:10.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with the command-line arguments ``argv``; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--townships", type=int, default=200)
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--projects", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", metavar="DIR", help="where to write plans and outputs "
                        "(default: a temporary folder)")
    parser.add_argument("--small", action="store_true",
                        help="smoke run: 8 townships, 2,000 parcels, 3,000 sites")
    parser.add_argument("--skip-demo", action="store_true", help="no demo reference run")
    args = parser.parse_args(argv)
    if args.small:
        args.townships, args.parcels, args.projects = 8, 2_000, 3_000
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="bench_map_")
    root = Path(args.out or tmp.name)

    t = time.perf_counter()
    plan_path = write_plan(root / "plan", townships=args.townships, parcels=args.parcels,
                           projects=args.projects, seed=args.seed)
    print(f"size: {args.townships} townships (requested), {args.parcels:,} farmland parcels, "
          f"{args.projects:,} project sites with parcels; generated and written in "
          f"{time.perf_counter() - t:.1f} s")
    report(f"spatialplan check, {args.projects:,} sites", plan_path, root / "check-output",
           targets=not args.small)
    if not args.skip_demo:
        report("spatialplan check, demo (reference)", layers_dir() / "demo" / "plan.toml",
               root / "demo-output", targets=False)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
