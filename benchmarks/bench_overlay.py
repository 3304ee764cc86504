"""Benchmark: spatialplan.analysis.overlay.township_stats against geopandas.overlay + groupby.

Generates a province-sized case in code (no files, no network), in CGCS2000 3-degree
Gauss-Krüger zone 36 (EPSG:4545) around 107.5°E 27°N:

- townships: a coverage of jagged outlines (nearest-seed regions on a jittered 1 km grid),
  about 80 km² each, with a few missing cells (holes and gaps in the outlines);
- farmland: a coverage of jittered 8-vertex parcels laid out in east-west bands;
- red line: overlapping blobs (so the dissolve path is exercised);
- development boundary: smaller blobs.

Run ``python benchmarks/bench_overlay.py`` (full size: 1,500 townships, 200,000 parcels) or
``--small`` for a quick smoke run. Prints both times, the ratio, peak memory and the largest
relative area difference between the two methods. ``--duplicates`` also times
``township_stats`` with every farmland parcel present twice (the layer imported twice, a
common data-entry accident) and checks that the areas do not change. ``--slivers`` times
``control_line_report`` with 1 % of the parcels grown by 5 cm over their neighbours (a layer
merged from several sources) and checks its self-overlaps against the exact test on the whole
layer.

Peak memory is sampled with ``psutil`` when it is installed (it comes with the ``test`` extra:
``pip install ".[test]"``), otherwise from ``/proc/self/statm`` (Linux), otherwise it is the
process's lifetime high-water mark from ``resource.getrusage``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

try:
    import psutil
except ImportError:  # psutil comes with the test extra; without it see rss_bytes()
    psutil = None

from spatialplan.analysis import overlay

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 2_988_000.0  # ≈ 107.5°E 27°N in zone 36 (CM 108°E)
TOWNSHIP_KM2 = 80.0
GRID = 0.001


def jittered_cells(nx: int, ny: int, x0: float, y0: float, dx: float, dy: float,
                   rng: np.random.Generator, *, midpoints: bool) -> np.ndarray:
    """Build a coverage of ``nx x ny`` jittered quads (8 vertices with shared edge midpoints)."""
    cx = x0 + np.arange(nx + 1) * dx
    cy = y0 + np.arange(ny + 1) * dy
    gx, gy = np.meshgrid(cx, cy)  # (ny+1, nx+1)
    gx = gx + rng.uniform(-0.2, 0.2, gx.shape) * dx
    gy = gy + rng.uniform(-0.2, 0.2, gy.shape) * dy
    corners = [np.stack([gx[:-1, :-1], gy[:-1, :-1]], -1), np.stack([gx[:-1, 1:], gy[:-1, 1:]], -1),
               np.stack([gx[1:, 1:], gy[1:, 1:]], -1), np.stack([gx[1:, :-1], gy[1:, :-1]], -1)]
    if midpoints:
        # shared midpoints of horizontal edges (ny+1, nx) and vertical edges (ny, nx+1)
        hx = (gx[:, :-1] + gx[:, 1:]) / 2
        hy = (gy[:, :-1] + gy[:, 1:]) / 2 + rng.uniform(-0.08, 0.08, (ny + 1, nx)) * dy
        vx = (gx[:-1, :] + gx[1:, :]) / 2 + rng.uniform(-0.08, 0.08, (ny, nx + 1)) * dx
        vy = (gy[:-1, :] + gy[1:, :]) / 2
        ring = [corners[0], np.stack([hx[:-1], hy[:-1]], -1), corners[1],
                np.stack([vx[:, 1:], vy[:, 1:]], -1), corners[2],
                np.stack([hx[1:], hy[1:]], -1), corners[3],
                np.stack([vx[:, :-1], vy[:, :-1]], -1), corners[0]]
    else:
        ring = [*corners, corners[0]]
    coords = np.stack(ring, axis=2).reshape(ny * nx, len(ring), 2)
    return shapely.polygons(np.round(coords, 3))


def blobs(n: int, rmin: float, rmax: float, bounds: tuple[float, float, float, float],
          rng: np.random.Generator) -> np.ndarray:
    """Random disks (32-gons) rounded to the millimetre grid."""
    xmin, ymin, xmax, ymax = bounds
    pts = shapely.points(rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n))
    disks = shapely.buffer(pts, rng.uniform(rmin, rmax, n), quad_segs=8)
    return shapely.set_precision(disks, GRID)


def make_case(n_townships: int, n_parcels: int, seed: int) -> dict[str, gpd.GeoDataFrame]:
    """Generate townships, farmland, red line and development boundary layers."""
    rng = np.random.default_rng(seed)
    total = n_townships * TOWNSHIP_KM2 * 1e6
    width = math.sqrt(total * 4 / 3)
    height = total / width
    bounds = (X0 - width / 2, Y0 - height / 2, X0 + width / 2, Y0 + height / 2)

    # townships: jittered 1 km cells, each given to its nearest seed, dissolved per seed
    cell = 1000.0
    nx, ny = int(width // cell), int(height // cell)
    cells = jittered_cells(nx, ny, bounds[0], bounds[1], cell, cell, rng, midpoints=False)
    cells = cells[rng.random(len(cells)) > 0.005]  # gaps and holes in the outlines
    seeds = shapely.points(rng.uniform(bounds[0], bounds[2], n_townships),
                           rng.uniform(bounds[1], bounds[3], n_townships))
    owner = shapely.STRtree(seeds).query_nearest(shapely.centroid(cells), all_matches=False)[1]
    order = np.argsort(owner, kind="stable")
    splits = np.flatnonzero(np.diff(owner[order])) + 1
    groups = np.split(order, splits)
    towns = np.array([shapely.coverage_union_all(cells[g]) for g in groups], dtype=object)
    codes = [f"5201{k:05d}" for k in range(len(towns))]
    townships = gpd.GeoDataFrame(
        {"feature_id": [f"townships:{k}" for k in range(len(towns))], "code": codes,
         "name": [f"镇{k}" for k in range(len(towns))]},
        geometry=towns, crs=CRS,
    )

    # farmland: jittered parcels in bands (1 row in 3 bands of rows), reaching beyond the outlines
    side = math.sqrt(width * height / (3 * n_parcels)) * 0.97
    px, py = int(width * 1.01 // side), int(height * 1.01 // side) + 3
    parcels = jittered_cells(px, py, bounds[0] - 0.005 * width, bounds[1] - 0.005 * height,
                             side, side, rng, midpoints=True).reshape(py, px)
    band = (np.arange(py) // 12) % 3 == 0
    parcels = parcels[band].ravel()[: max(n_parcels, 0) or None]
    farmland = gpd.GeoDataFrame(
        {"feature_id": [f"farmland:{k}" for k in range(len(parcels))]}, geometry=parcels, crs=CRS
    )
    n_red = max(n_townships // 5, 3)
    redline = gpd.GeoDataFrame(
        {"feature_id": [f"redline:{k}" for k in range(n_red)]},
        geometry=blobs(n_red, 1500, 6000, bounds, rng), crs=CRS,
    )
    n_udb = max(n_townships // 4, 3)
    udb = gpd.GeoDataFrame(
        {"feature_id": [f"udb:{k}" for k in range(n_udb)]},
        geometry=blobs(n_udb, 400, 1800, bounds, rng), crs=CRS,
    )
    return {"townships": townships, "farmland": farmland, "redline": redline, "udb": udb}


def baseline(townships: gpd.GeoDataFrame, line: gpd.GeoDataFrame, *,
             dissolve: bool) -> np.ndarray:
    """Straightforward geopandas: overlay, then groupby-sum (or dissolve when patches overlap)."""
    pieces = gpd.overlay(townships[["code", "geometry"]], line[["feature_id", "geometry"]],
                         how="intersection", keep_geom_type=True)
    if dissolve:
        per_town = pieces.dissolve(by="code").area
    else:
        per_town = pieces.assign(a=pieces.area).groupby("code")["a"].sum()
    return per_town.reindex(townships["code"]).fillna(0.0).to_numpy()


def rss_bytes() -> int | None:
    """Resident set size of this process now: psutil, else ``/proc/self/statm``, else None."""
    if psutil is not None:
        return psutil.Process().memory_info().rss
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def max_rss_bytes() -> int:
    """Lifetime high-water mark of this process's resident set (``getrusage``)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


class PeakRSS:
    """Resident-set-size high-water mark of this process, sampled every 20 ms.

    Without a way to read the current size (no psutil, no ``/proc``) the peak is the process's
    lifetime high-water mark when the block ends (an upper bound of the block's peak).
    """

    def __init__(self) -> None:
        self.peak = rss_bytes() or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        now = rss_bytes()
        self.peak = max(self.peak, max_rss_bytes() if now is None else now)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._sample()

    def __enter__(self) -> PeakRSS:
        """Start sampling the resident set size."""
        self.peak = rss_bytes() or 0
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop sampling, after one last sample."""
        self._stop.set()
        self._thread.join()
        self._sample()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with the command-line arguments ``argv``; return the exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Runs with spatialplan alone; peak memory is sampled with psutil when installed "
               '(the test extra: pip install ".[test]"), otherwise from /proc or getrusage.')
    parser.add_argument("--townships", type=int, default=1500)
    parser.add_argument("--parcels", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true",
                        help="smoke run: 60 townships, 8,000 parcels")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="time spatialplan only")
    parser.add_argument("--duplicates", action="store_true",
                        help="also time township_stats with every farmland parcel twice")
    parser.add_argument("--slivers", action="store_true",
                        help="also time control_line_report with 1 %% of the parcels grown "
                             "by 5 cm over their neighbours")
    args = parser.parse_args(argv)
    if args.small:
        args.townships, args.parcels = 60, 8_000

    t = time.perf_counter()
    case = make_case(args.townships, args.parcels, args.seed)
    towns = case["townships"]
    print(f"generated {len(towns)} townships, {len(case['farmland'])} farmland parcels, "
          f"{len(case['redline'])} red-line and {len(case['udb'])} development-boundary "
          f"polygons in {time.perf_counter() - t:.1f} s ({CRS})")
    lines = {k: case[k] for k in ("redline", "farmland", "udb")}

    base_rss = rss_bytes() or 0
    with PeakRSS() as mem:
        t = time.perf_counter()
        stats = overlay.township_stats(towns, **lines)
        t_ours = time.perf_counter() - t
    print(f"spatialplan township_stats: {t_ours:8.2f} s   peak RSS {mem.peak / 2**20:7.0f} MiB "
          f"(+{(mem.peak - base_rss) / 2**20:.0f} MiB)")
    same = duplicated(towns, lines, stats) if args.duplicates else True
    same = (slivered(towns, lines) if args.slivers else True) and same
    if args.skip_baseline:
        return 0 if same else 1

    base = {}
    times = {}
    with PeakRSS() as mem:
        for role, gdf in lines.items():
            t = time.perf_counter()
            # the baseline is told which layers overlap themselves (red line and development
            # boundary blobs, by design); farmland is a coverage, so a plain sum is right
            base[role] = baseline(towns, gdf, dissolve=(role != "farmland"))
            times[role] = time.perf_counter() - t
    t_base = sum(times.values())
    detail = ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
    print(f"geopandas overlay + groupby:  {t_base:8.2f} s   peak RSS {mem.peak / 2**20:7.0f} MiB "
          f"({detail})")
    print(f"speed-up: {t_base / t_ours:.1f}x (target >= 3x)")

    worst = 0.0
    for role in lines:
        ours = stats[f"{role}_m2"].to_numpy()
        diff = np.abs(ours - base[role]) / np.maximum(np.abs(base[role]), 1.0)
        worst = max(worst, float(diff.max()))
        print(f"  {role:9s} total {ours.sum() / 1e6:12.3f} km² vs {base[role].sum() / 1e6:12.3f} "
              f"km², max relative difference {diff.max():.2e}")
    ok = worst <= 1e-6
    print(f"areas agree to 1e-6 relative: {'yes' if ok else 'NO'} (max {worst:.2e})")
    return 0 if ok and same else 1


def duplicated(towns: gpd.GeoDataFrame, lines: dict[str, gpd.GeoDataFrame],
               stats: gpd.GeoDataFrame) -> bool:
    """Time ``township_stats`` with every farmland parcel twice (wall and CPU).

    Also check that the farmland areas equal those of the clean layer (``stats``) to 1e-9 relative.
    """
    farm = lines["farmland"]
    copies = farm.assign(feature_id=[f"farmland:{k}" for k in range(len(farm), 2 * len(farm))])
    twice = gpd.GeoDataFrame(pd.concat([farm, copies], ignore_index=True), crs=farm.crs)
    t, cpu = time.perf_counter(), time.process_time()
    doubled = overlay.township_stats(towns, **{**lines, "farmland": twice})
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    got, want = doubled["farmland_m2"].to_numpy(), stats["farmland_m2"].to_numpy()
    diff = float((np.abs(got - want) / np.maximum(np.abs(want), 1.0)).max())
    ok = diff <= 1e-9
    print(f"every parcel twice ({len(twice)}): {wall:8.2f} s wall, {cpu:.2f} s CPU; farmland "
          f"areas equal to 1e-9 relative: {'yes' if ok else 'NO'} (max {diff:.2e})")
    return ok


def slivered(towns: gpd.GeoDataFrame, lines: dict[str, gpd.GeoDataFrame]) -> bool:
    """Time ``control_line_report`` with 1 % of the farmland parcels grown by 5 cm.

    Wall and CPU time; and on the clean layer, for comparison. Its farmland self-overlaps are
    checked against the exact test on the whole layer.
    """
    from spatialplan.analysis import _overlay_pairs

    farm = lines["farmland"]
    geoms = np.asarray(farm.geometry.array, dtype=object).copy()
    pick = np.random.default_rng(1).choice(len(geoms), size=max(1, len(geoms) // 100),
                                           replace=False)
    geoms[pick] = shapely.set_precision(shapely.buffer(geoms[pick], 0.05, join_style="mitre"),
                                        overlay.DEFAULT_GRID_SIZE)
    grown = farm.set_geometry(geoms)
    t = time.perf_counter()
    overlay.control_line_report(towns, **lines)
    clean = time.perf_counter() - t
    t, cpu = time.perf_counter(), time.process_time()
    report = overlay.control_line_report(towns, **{**lines, "farmland": grown})
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    rows = report.line_conflicts
    rows = rows[(rows["layer_a"] == "farmland") & (rows["layer_b"] == "farmland")]
    got = set(zip(rows["feature_a"], rows["feature_b"], strict=True))
    snapped = overlay._geom.snap_to_grid(geoms, overlay.DEFAULT_GRID_SIZE)
    i, j = _overlay_pairs.overlap_pairs(snapped, certified=False)
    ids = grown["feature_id"].to_numpy()
    ok = got == set(zip(ids[i], ids[j], strict=True))
    print(f"1 % of the parcels grown by 5 cm ({len(pick)}): {wall:8.2f} s wall, {cpu:.2f} s "
          f"CPU (clean layer {clean:.2f} s); {len(i)} self-overlaps equal to the whole-layer "
          f"test: {'yes' if ok else 'NO'}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
