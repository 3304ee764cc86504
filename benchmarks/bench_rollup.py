"""Benchmark: what the township indicators and the county roll-up add to a check (issue 19).

Writes a county-size plan with ``bench_province.write_plan`` (townships, farmland parcels,
red line, development boundary, an 8+X register), runs ``sp.run_check`` once in this process
and then times the roll-up step alone on its result (``finish._roll_up``: indicators per
township, county codes, ranks, the county summary and the union of each county's townships),
and prints both, their ratio (target: the roll-up adds under 10 % to the check), and peak
memory.

Usage::

    python benchmarks/bench_rollup.py             # 1,500 townships, 50,000 projects
    python benchmarks/bench_rollup.py --small     # smoke run: 40 townships, 600 projects
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_province

import spatialplan as sp
from spatialplan.pipeline.finish import _roll_up


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--townships", type=int, default=1500)
    ap.add_argument("--projects", type=int, default=50_000)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args(argv)
    if args.small:
        args.townships, args.projects, args.parcels = 40, 600, 4_000
    plan_path = bench_province.write_plan(Path(tempfile.mkdtemp(prefix="bench-rollup-")),
                                          townships=args.townships, parcels=args.parcels,
                                          projects=args.projects, seed=0)
    plan = sp.read_plan(plan_path)
    t0 = time.perf_counter()
    result = sp.run_check(plan)
    t_check = time.perf_counter() - t0
    base = result.township_stats.drop(columns=[c for c in result.township_stats.columns
                                               if c in _ADDED])
    townships = plan.layers["townships"].data
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        stats, counties = _roll_up(plan, base, result.projects, townships)
        times.append(time.perf_counter() - t0)
    t_roll = min(times)
    same = stats.drop(columns="geometry").equals(
        result.township_stats.drop(columns="geometry")[list(stats.drop(columns="geometry"))])
    print(f"plan: {args.townships:,} townships, {len(result.projects):,} projects, "
          f"{args.parcels:,} parcels; {len(counties):,} counties")
    print(f"  run_check (roll-up included)    {t_check:8.2f} s")
    print(f"  roll-up alone (best of 3)       {t_roll:8.3f} s")
    print(f"  roll-up share of the check      {t_roll / t_check:8.1%} (target < 10 %: "
          f"{'met' if t_roll / t_check < 0.10 else 'missed'})")
    print(f"  same township table as the check: {'yes' if same else 'NO'}")
    print(f"  peak RSS of this process        {peak_rss_mb():8.0f} MB")
    return 0 if same else 1


#: the columns ``_roll_up`` adds (removed before timing it again)
_ADDED = {"n_pass", "n_review", "n_fail", "n_error", "investment_wan", "investment_planned_wan",
          "investment_under_construction_wan", "investment_completed_wan",
          "investment_other_wan", "eight_share", "compliance_rate", "county_code",
          "county_rank"}

if __name__ == "__main__":
    pd.set_option("display.width", 200)
    sys.exit(main())
