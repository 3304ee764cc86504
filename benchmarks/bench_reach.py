"""Benchmark: the village reach (issue 18) against a networkx baseline.

Generates a road network in code (no files, no network): a jittered square grid of two-point
road segments at 100 m spacing (as road layers arrive: many short lines), with 3 % of the
segments missing, in CGCS2000 3-degree Gauss-Krüger zone 36 (EPSG:4545). Villages and
project sites are random points over it; the projects are spread evenly over the facility
types, all serving (verdict ``pass``).

- The full size (default: 15,000 villages, 400,000 segments, 10 types, 3,000 projects) is
  timed with :func:`spatialplan.analysis.reach.village_reach` (paths built), with the process's
  peak memory.
- The baseline is the straightforward way: the same noded network in a ``networkx.Graph``, one
  ``single_source_dijkstra_path_length`` per village, then per type the nearest project (leg +
  path + leg). It runs on a smaller size where it finishes (``--baseline-villages`` villages
  on a ``--baseline-segments`` network); ``village_reach`` runs on the same case and the
  distances are compared (equal to 1e-6 m).

Run ``python benchmarks/bench_reach.py`` (full size) or ``--small`` for a smoke run.
Peak memory is the process's high-water mark (``resource.getrusage``; it includes generating
the data, so it is an upper bound for the analysis).
"""

from __future__ import annotations

import argparse
import resource
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan.analysis import _reach_graph as graph
from spatialplan.analysis.reach import village_reach

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 2_988_000.0
SPACING = 100.0
TYPES = ("school", "health_center", "market", "elder_care", "culture", "bus_station",
         "sports", "toilet", "park", "village_service")


def grid_roads(segments: int, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Return about ``segments`` two-point road lines on a jittered grid (3 % left out)."""
    n = max(int(np.sqrt(segments / 2 / 0.97)) + 1, 3)
    gx, gy = np.meshgrid(np.arange(n) * SPACING, np.arange(n) * SPACING)
    gx = X0 + gx + rng.uniform(-20, 20, gx.shape)
    gy = Y0 + gy + rng.uniform(-20, 20, gy.shape)
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    ids = np.arange(n * n).reshape(n, n)
    a = np.r_[ids[:, :-1].ravel(), ids[:-1, :].ravel()]
    b = np.r_[ids[:, 1:].ravel(), ids[1:, :].ravel()]
    keep = rng.random(len(a)) > 0.03
    a, b = a[keep], b[keep]
    lines = shapely.linestrings(np.stack([xy[a], xy[b]], axis=1).reshape(-1, 2),
                                indices=np.repeat(np.arange(len(a)), 2))
    return gpd.GeoDataFrame(geometry=lines, crs=CRS)


def case(villages: int, segments: int, projects: int, types: int, seed: int = 18):
    """Return (roads, villages, projects, limits) of one synthetic case."""
    rng = np.random.default_rng(seed)
    roads = grid_roads(segments, rng)
    x1, y1, x2, y2 = roads.total_bounds
    v = gpd.GeoDataFrame(
        {"village_code": [f"V{i}" for i in range(villages)],
         "name": [f"村{i}" for i in range(villages)]},
        geometry=shapely.points(rng.uniform(x1, x2, villages), rng.uniform(y1, y2, villages)),
        crs=CRS)
    p = gpd.GeoDataFrame(
        {"project_id": [f"P{i}" for i in range(projects)],
         "facility": [TYPES[i % types] for i in range(projects)],
         "verdict": "pass"},
        geometry=shapely.points(rng.uniform(x1, x2, projects), rng.uniform(y1, y2, projects)),
        crs=CRS)
    return roads, v, p, {t: 5000.0 for t in TYPES[:types]}


def baseline(roads, villages, projects, limits) -> tuple[np.ndarray, float]:
    """One networkx search per village; return the distances (type-major) and the time."""
    import networkx as nx

    start = time.perf_counter()
    pts = np.r_[villages.geometry.to_numpy(), projects.geometry.to_numpy()]
    net, node, leg = graph.build_network(roads.geometry.to_numpy(), snap_m=1.0, points=pts)
    g = nx.Graph()
    g.add_weighted_edges_from(zip(net.u.tolist(), net.v.tolist(), net.w.tolist(), strict=True))
    nv = len(villages)
    fac = projects["facility"].to_numpy()
    out = np.full((len(limits), nv), np.inf)
    for i in range(nv):
        d = nx.single_source_dijkstra_path_length(g, int(node[i]))
        for k, code in enumerate(limits):
            for j in np.flatnonzero(fac == code):
                s = int(node[nv + j])
                if s in d:
                    out[k, i] = min(out[k, i], leg[i] + d[s] + leg[nv + j])
    return out.ravel(), time.perf_counter() - start


def timed(roads, villages, projects, limits, *, paths: bool = True):
    """Run village_reach; return the result and its wall time."""
    start = time.perf_counter()
    res = village_reach(villages, roads, projects, limits_m=limits, paths=paths)
    return res, time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print its numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--villages", type=int, default=15_000)
    ap.add_argument("--segments", type=int, default=400_000)
    ap.add_argument("--projects", type=int, default=3_000)
    ap.add_argument("--types", type=int, default=10)
    ap.add_argument("--baseline-villages", type=int, default=300)
    ap.add_argument("--baseline-segments", type=int, default=40_000)
    ap.add_argument("--small", action="store_true", help="smoke run: tiny sizes")
    args = ap.parse_args()
    if args.small:
        args.villages, args.segments, args.projects = 500, 5_000, 100
        args.baseline_villages, args.baseline_segments = 40, 2_000
    roads, v, p, limits = case(args.villages, args.segments, args.projects, args.types)
    res, wall = timed(roads, v, p, limits)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"village reach: {len(v):,} villages, {len(roads):,} road segments, "
          f"{len(limits)} types, {len(p):,} serving projects")
    print(f"  network: {res.network['nodes']:,} nodes, {res.network['edges']:,} edges")
    print(f"  wall time (paths built)        {wall:8.2f} s (target < 30 s: "
          f"{'met' if wall < 30 else 'NOT met'})")
    print(f"  peak RSS of this process       {peak:8,.0f} MiB (target < 4,096 MiB: "
          f"{'met' if peak < 4096 else 'NOT met'})")
    within = res.reach["within_limit"].mean()
    print(f"  rows {len(res.reach):,}; within the limit {within:.1%}")
    roads, v, p, limits = case(args.baseline_villages, args.baseline_segments,
                               max(args.projects * args.baseline_villages // args.villages,
                                   2 * args.types), args.types, seed=19)
    ours, t_ours = timed(roads, v, p, limits)
    want, t_base = baseline(roads, v, p, limits)
    got = ours.reach["network_m"].fillna(np.inf).to_numpy()
    same = bool(np.allclose(np.where(np.isinf(want), -1, want), np.where(np.isinf(got), -1, got),
                            rtol=0, atol=1e-6))
    print(f"baseline: {len(v):,} villages, {len(roads):,} segments, {len(p):,} projects")
    print(f"  networkx, one search per village {t_base:8.2f} s")
    print(f"  village_reach                    {t_ours:8.2f} s")
    print(f"  speed-up: {t_base / t_ours:.1f}x (target >= 20x)")
    print(f"  distances equal to 1e-6 m: {'yes' if same else 'NO'}")
    pd.set_option("display.width", 120)


if __name__ == "__main__":
    main()
