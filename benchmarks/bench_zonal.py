"""Benchmark: spatialplan's exact zonal slope statistics against rasterstats.

Generates a procedural mountain DEM (float32, with nodata holes, in CGCS2000 GK zone 36,
EPSG:4545) and random site polygons, then times in one run:

1. the slope computation (``read_terrain``: read the GeoTIFF + Horn 3x3),
2. ``site_slope_stats`` on the precomputed terrain (exactextract, exact coverage fractions;
   it computes mean, max, shares over 15°/25°, mean elevation, coverage and pixel count; the
   timing includes building the slope-class grid on first use),
3. ``rasterstats.zonal_stats`` (mean, max, count; cell-centre rule) on the same in-memory
   slope array,

and prints the times, the speed ratio (target ≥ 2x), the mean absolute difference of the
site mean slopes, how many sites rasterstats could not measure, and peak memory (RSS).

Usage::

    python benchmarks/bench_zonal.py              # 5,000 x 5,000 DEM, 2,000 sites
    python benchmarks/bench_zonal.py --small      # quick smoke run
    python benchmarks/bench_zonal.py --size 8000 --sites 5000
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from shapely import Polygon

from spatialplan.analysis.terrain import NODATA, read_terrain, site_slope_stats

CRS = "EPSG:4545"
RES = 10.0  # metres
X0, Y0 = 400_000.0, 2_950_000.0  # upper-left corner, ~26.6°N 107°E (Guizhou)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_dem(size: int, seed: int) -> np.ndarray:
    """Procedural karst-like relief: random plane waves over several octaves, plus voids."""
    rng = np.random.default_rng(seed)
    dem = np.empty((size, size), dtype=np.float32)
    x = np.arange(size, dtype=np.float32) * RES
    waves = []
    for wavelength, amplitude, count in ((6000, 260, 3), (2200, 120, 4), (700, 35, 6),
                                         (250, 8, 6)):
        for _ in range(count):
            theta = rng.uniform(0, 2 * math.pi)
            k = 2 * math.pi / wavelength
            waves.append((k * math.cos(theta), k * math.sin(theta),
                          rng.uniform(0, 2 * math.pi), amplitude * rng.uniform(0.6, 1.0)))
    chunk = 500
    for r0 in range(0, size, chunk):
        y = -(np.arange(r0, min(r0 + chunk, size), dtype=np.float32) * RES)[:, None]
        block = np.full((y.shape[0], size), 1200.0, dtype=np.float32)
        for kx, ky, phase, amp in waves:
            block += amp * np.sin(kx * x[None, :] + ky * y + phase)
        dem[r0 : r0 + block.shape[0]] = block
    # voids: round sinkholes without data and a missing strip along one edge
    rows, cols = np.ogrid[:size, :size]
    for _ in range(max(3, size // 500)):
        cy, cx, rad = rng.integers(0, size), rng.integers(0, size), rng.integers(10, 60)
        dem[(rows - cy) ** 2 + (cols - cx) ** 2 < rad * rad] = NODATA
    dem[:, : max(3, size // 200)] = NODATA
    return dem


def write_dem(dem: np.ndarray, path: Path) -> None:
    """Write ``dem`` to ``path`` as a single-band float32 GeoTIFF."""
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "width": dem.shape[1],
               "height": dem.shape[0], "crs": CRS, "nodata": NODATA,
               "transform": Affine(RES, 0, X0, 0, -RES, Y0), "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate", "predictor": 3}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dem, 1)


def make_sites(n: int, size: int, seed: int) -> gpd.GeoDataFrame:
    """Irregular, rotated site polygons of ~0.05-6 ha (some below one 10 m cell wide)."""
    rng = np.random.default_rng(seed + 1)
    extent = size * RES
    geoms = []
    for _ in range(n):
        cx = X0 + rng.uniform(0.02, 0.98) * extent
        cy = Y0 - rng.uniform(0.02, 0.98) * extent
        radius = math.exp(rng.uniform(math.log(12), math.log(140)))
        k = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * math.pi, k))
        radii = radius * rng.uniform(0.6, 1.0, k)
        geoms.append(Polygon(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles),
                                 strict=True)))
    return gpd.GeoDataFrame({"feature_id": [f"projects:{i}" for i in range(n)]},
                            geometry=geoms, crs=CRS)


def timed(func, *args, **kwargs):
    """Call ``func(*args, **kwargs)``; return its result and the wall time in seconds."""
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with the command-line arguments ``argv``; return the exit code."""
    needs = 'needs rasterstats (the baseline; it comes with the test extra): pip install ".[test]"'
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=needs)
    parser.add_argument("--size", type=int, default=5000, help="DEM rows = columns (5000)")
    parser.add_argument("--sites", type=int, default=2000, help="number of sites (2000)")
    parser.add_argument("--small", action="store_true", help="smoke run: 1000², 300 sites")
    parser.add_argument("--seed", type=int, default=20191010)
    args = parser.parse_args(argv)
    size, n_sites = (1000, 300) if args.small else (args.size, args.sites)

    try:
        from rasterstats import zonal_stats
    except ImportError:
        parser.error(f"rasterstats is not installed. {needs}")

    print(f"DEM {size}x{size} float32 at {RES:g} m ({CRS}), {n_sites} sites")
    with tempfile.TemporaryDirectory() as tmp:
        dem_path = Path(tmp) / "dem.tif"
        dem, t_gen = timed(make_dem, size, args.seed)
        write_dem(dem, dem_path)
        del dem
        sites = make_sites(n_sites, size, args.seed)
        print(f"  generated in {t_gen:.1f} s; peak RSS {peak_rss_mb():.0f} MB")

        terrain, t_slope = timed(read_terrain, dem_path)
        print(f"slope (read + Horn 3x3)          {t_slope:8.2f} s   "
              f"peak RSS {peak_rss_mb():.0f} MB")

    ours, t_ours = timed(site_slope_stats, sites, terrain)
    print(f"spatialplan site_slope_stats      {t_ours:8.2f} s   "
          f"peak RSS {peak_rss_mb():.0f} MB   (exactextract; 8 columns)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs, t_rs = timed(zonal_stats, list(sites.geometry), terrain.slope,
                             affine=terrain.transform, nodata=NODATA,
                             stats=["mean", "max", "count"])
    print(f"rasterstats zonal_stats           {t_rs:8.2f} s   "
          f"peak RSS {peak_rss_mb():.0f} MB   (mean, max, count)")

    rs_mean = np.array([np.nan if s["mean"] is None else s["mean"] for s in theirs])
    ee_mean = ours["slope_mean_deg"].to_numpy()
    both = ~np.isnan(rs_mean) & ~np.isnan(ee_mean)
    mad = float(np.mean(np.abs(rs_mean[both] - ee_mean[both])))
    worst = float(np.max(np.abs(rs_mean[both] - ee_mean[both])))
    small = ours["n_pixels"].to_numpy() < 4
    mad_big = float(np.mean(np.abs(rs_mean[both & ~small] - ee_mean[both & ~small])))
    ratio = t_rs / t_ours
    print(f"ratio rasterstats / spatialplan   {ratio:8.1f}x   "
          f"({'meets' if ratio >= 2 else 'MISSES'} the ≥ 2x target)")
    print(f"mean |Δ site mean slope|          {mad:8.3f}°  (max {worst:.2f}°; "
          f"{mad_big:.3f}° on sites ≥ 4 pixels)")
    print(f"sites rasterstats left empty      {int(np.isnan(rs_mean).sum()):8d}     "
          f"(spatialplan no_data: {int((ours['flag'] == 'no_data').sum())}, "
          f"flags: {ours['flag'].value_counts().to_dict()})")
    print(f"peak RSS (whole run)              {peak_rss_mb():8.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
