"""Benchmark: ``spatialplan compare`` of two county-size runs (issue 19).

Writes two check outputs (``results.gpkg`` with a ``projects`` layer of N projects and a
``township_stats`` layer of T townships, and a ``manifest.json``) in which a known share of the
projects changed (verdict, status, dates, investment, reasons, moved, added, removed), then
times in one run:

1. ``sp.compare`` (reading both GeoPackages and listing the changes),
2. ``write_compare`` (changes.csv/.xlsx, township_changes.csv/.xlsx, changes.html, the map),
3. the obvious baseline: a row-by-row comparison of the same two tables read the same way (one
   Python loop over the matched projects, comparing field by field),

and prints the times, the ratio baseline / spatialplan, whether both list the same changes, and
peak memory (RSS). Target: compare of two runs of 50,000 projects and 1,500 townships under
10 s on two cores.

Usage::

    python benchmarks/bench_compare.py              # 50,000 projects, 1,500 townships
    python benchmarks/bench_compare.py --small      # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

import spatialplan as sp
from spatialplan.analysis.compare import DATE_FIELDS, MOVE_TOLERANCE_M
from spatialplan.pipeline.compare import write_compare

CRS = "EPSG:4545"
VERDICTS = np.array(["pass", "review", "fail", "error"], dtype=object)
STATUSES = np.array(["planned", "under_construction", "completed"], dtype=object)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_run(n: int, towns: int, seed: int) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Build the projects layer and township statistics of a synthetic county-size run."""
    rng = np.random.default_rng(seed)
    x = 400_000 + rng.uniform(0, 300_000, n)
    y = 2_800_000 + rng.uniform(0, 300_000, n)
    side = rng.uniform(20, 120, n)
    codes = np.array([f"52{i:07d}" for i in range(towns)], dtype=object)
    projects = gpd.GeoDataFrame({
        "project_id": [f"XM{i:06d}" for i in range(n)],
        "name": [f"项目{i}" for i in range(n)],
        "township_code": codes[rng.integers(0, towns, n)],
        "facility": rng.choice(["school", "sewage", "market", "park"], n),
        "verdict": VERDICTS[rng.integers(0, 3, n)], "status": STATUSES[rng.integers(0, 3, n)],
        "reasons": rng.choice(["各项检查均符合 / all checks passed", "坡度 / slope",
                               "占用耕地 / cropland"], n),
        "mapped_on": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), "D"),
        "permit_on": pd.NaT, "start_on": pd.NaT, "finish_on": pd.NaT,
        "start_year": rng.integers(2021, 2030, n), "end_year": rng.integers(2030, 2035, n),
        "investment_wan": rng.uniform(10, 5000, n).round(2),
    }, geometry=shapely.box(x, y, x + side, y + side), crs=CRS)
    stats = pd.DataFrame({"township_code": codes, "township_name": [f"镇{i}" for i in range(towns)],
                          "n_projects": np.bincount(rng.integers(0, towns, n), minlength=towns),
                          "redline_m2": rng.uniform(0, 1e7, towns).round(2)})
    return projects, stats


def change(projects: gpd.GeoDataFrame, stats: pd.DataFrame, share: float,
           seed: int) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Change ``share`` of the projects per kind of change (and some township indicators)."""
    rng = np.random.default_rng(seed)
    after = projects.copy()
    n = len(after)
    pick = {k: rng.random(n) < share for k in ("verdict", "status", "dates", "investment",
                                                "reasons", "moved")}
    after.loc[pick["verdict"], "verdict"] = VERDICTS[rng.integers(0, 4, int(pick["verdict"]
                                                                         .sum()))]
    after.loc[pick["status"], "status"] = "completed"
    after.loc[pick["dates"], "end_year"] = after.loc[pick["dates"], "end_year"] + 1
    after.loc[pick["investment"], "investment_wan"] *= 1.1
    after.loc[pick["reasons"], "reasons"] = "原因已变 / reasons changed"
    after.loc[pick["moved"], "geometry"] = after.geometry[pick["moved"]].translate(3.0, 0.0)
    keep = rng.random(n) >= share  # removed
    added = after.iloc[: int(n * share)].copy()
    added["project_id"] = [f"XN{i:06d}" for i in range(len(added))]
    after = gpd.GeoDataFrame(pd.concat([after[keep], added], ignore_index=True), crs=CRS)
    new_stats = stats.copy()
    new_stats.loc[rng.random(len(stats)) < 0.2, "n_projects"] += 1
    return after, new_stats


def write_run(folder: Path, projects: gpd.GeoDataFrame, stats: pd.DataFrame) -> Path:
    """Write what ``compare`` reads of a check output."""
    folder.mkdir(parents=True)
    pyogrio.write_dataframe(projects, folder / "results.gpkg", layer="projects")
    towns = gpd.GeoDataFrame(stats, geometry=[shapely.box(0, 0, 1, 1)] * len(stats), crs=CRS)
    pyogrio.write_dataframe(towns, folder / "results.gpkg", layer="township_stats")
    (folder / "manifest.json").write_text(json.dumps({
        "plan": {"name": "benchmark county"}, "outputs": {}}), encoding="utf-8")
    return folder


def baseline(before: Path, after: Path) -> set[tuple[str, str]]:
    """List the changes the obvious way: a loop over the matched projects, field by field."""
    old = pyogrio.read_dataframe(before / "results.gpkg", layer="projects").set_index("project_id")
    new = pyogrio.read_dataframe(after / "results.gpkg", layer="projects").set_index("project_id")
    found = {(pid, "removed") for pid in old.index.difference(new.index)}
    found |= {(pid, "added") for pid in new.index.difference(old.index)}
    fields = {"verdict": ["verdict"], "status": ["status"], "dates": list(DATE_FIELDS),
              "investment": ["investment_wan"], "reasons": ["reasons"]}
    for pid in new.index.intersection(old.index):
        o, n = old.loc[pid], new.loc[pid]
        for kind, names in fields.items():
            if any(not (pd.isna(o[f]) and pd.isna(n[f])) and o[f] != n[f] for f in names):
                found.add((pid, kind))
        if o.geometry.hausdorff_distance(n.geometry) >= MOVE_TOLERANCE_M:
            found.add((pid, "moved"))
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", type=int, default=50_000)
    ap.add_argument("--townships", type=int, default=1_500)
    ap.add_argument("--share", type=float, default=0.02, help="share changed per kind")
    ap.add_argument("--small", action="store_true", help="2,000 projects, 60 townships")
    args = ap.parse_args(argv)
    if args.small:
        args.projects, args.townships = 2_000, 60
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    projects, stats = make_run(args.projects, args.townships, seed=1)
    after, new_stats = change(projects, stats, args.share, seed=2)
    a = write_run(tmp / "q1", projects, stats)
    b = write_run(tmp / "q2", after, new_stats)
    print(f"two runs: {len(projects):,} and {len(after):,} projects, {args.townships:,} "
          f"townships, {args.share:.0%} changed per kind")

    t0 = time.perf_counter()
    comparison = sp.compare(a, b)
    t_compare = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_compare(comparison, tmp / "changes")
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    expected = baseline(a, b)
    t_base = time.perf_counter() - t0

    got = set(zip(comparison.projects["project_id"], comparison.projects["change"], strict=True))
    total = t_compare + t_write
    print(f"  sp.compare (read + changes)     {t_compare:8.2f} s: "
          f"{len(comparison.projects):,} project changes, {len(comparison.townships):,} "
          "township changes")
    print(f"  write_compare (tables, page, map){t_write:7.2f} s")
    print(f"  compare + write                 {total:8.2f} s (target < 10 s: "
          f"{'met' if total < 10 else 'missed'})")
    print(f"  row-by-row baseline             {t_base:8.2f} s")
    print(f"  ratio baseline / sp.compare     {t_base / t_compare:8.1f}x")
    print(f"  same changes as the baseline: {'yes' if got == expected else 'NO'}")
    print(f"  peak RSS of this process        {peak_rss_mb():8.0f} MB")
    return 0 if got == expected else 1


if __name__ == "__main__":
    sys.exit(main())
