"""``spatialplan terrain PLAN --out DIR``: slope GeoTIFF and per-township terrain statistics."""

from __future__ import annotations

import argparse
import logging

import numpy as np

from spatialplan.cli._common import (
    add_out_argument,
    add_plan_argument,
    add_quiet_argument,
)
from spatialplan.errors import PlanError

__all__ = ["register", "run"]

log = logging.getLogger(__name__)


def register(sub) -> None:
    """Add the ``terrain`` command."""
    p = sub.add_parser(
        "terrain",
        help="write the slope GeoTIFF and per-township slope statistics (坡度分析)",
        description="Compute slope (degrees, in metres, Horn 3x3) from the plan's DEM in the "
        "analysis CRS and write DIR/slope.tif (Cloud-Optimised GeoTIFF) and "
        "DIR/terrain_stats.csv: per township the mean/max slope, share over 15° and 25°, mean "
        "elevation, DEM coverage and the area (m²) of each slope class ≤2°, 2–6°, 6–15°, "  # noqa: RUF001 - slope classes shown in --help as in the terrain_stats.csv headers
        "15–25°, >25°.",  # noqa: RUF001 - slope classes shown in --help as in the terrain_stats.csv headers
    )
    add_plan_argument(p)
    add_out_argument(p)
    p.add_argument("--crs", metavar="CRS",
                   help='analysis CRS, e.g. "EPSG:4545" (default: the plan\'s, or auto)')
    add_quiet_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from spatialplan.analysis.terrain import (
        NODATA,
        read_terrain,
        township_terrain_stats,
        write_slope,
    )
    from spatialplan.cli._run import read_plan_from_args
    from spatialplan.io import output
    from spatialplan.pipeline.write import plan_inputs

    plan = read_plan_from_args(args)
    plan_path = plan.path
    dem = plan.rasters.get("dem")
    if dem is None:
        raise PlanError("the plan names no DEM", path=plan_path,
                        hint='add [rasters.dem] with path = "dem.tif" to the plan')
    if "townships" not in plan.layers:
        raise PlanError("the plan names no townships layer", path=plan_path,
                        hint="add [layers.townships] to the plan")
    out = output.check_output_dir(args.out, plan_inputs(plan))

    terrain = read_terrain(dem.path, crs=plan.crs, nodata=dem.nodata_override,
                           assume_crs=dem.assume_crs)
    townships = plan.layers["townships"].data
    stats = township_terrain_stats(townships, terrain, id_column="code")
    names = townships.set_index("code")["name"] if "name" in townships else None
    if names is not None:
        stats.insert(0, "name", names.reindex(stats.index).to_numpy())
    with output.staged_output(out) as stage:
        write_slope(terrain, stage / "slope.tif")
        output.write_table(stats.reset_index(), stage / "terrain_stats.csv")

    valid = terrain.slope[terrain.slope != NODATA]
    print(f"analysis CRS: {plan.crs.name} ({plan.crs_reason})")
    summary = (f"median {float(np.median(valid)):.1f}°, max {float(valid.max()):.1f}°"
               if valid.size else "no cell with a full 3x3 window")
    print(f"slope: {terrain.shape[1]}x{terrain.shape[0]} cells of {terrain.transform.a:.1f} m"
          f"{' (DEM warped)' if terrain.reprojected else ''}; {summary}")
    flags = stats["flag"].value_counts().to_dict()
    print(f"townships: {len(stats)} ({', '.join(f'{k} {v}' for k, v in flags.items())})")
    print(f"wrote {out / 'slope.tif'}")
    print(f"wrote {out / 'terrain_stats.csv'}")
    return 0
