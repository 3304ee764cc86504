"""The one finishing step of every runner: whole tables in, a :class:`CheckResult` out.

The local runner (:func:`spatialplan.pipeline.run.run_check`) and the dask engine
(:func:`spatialplan.pipeline.engine.run_check_dask`) differ only in how they compute the
control-line tables, the terrain statistics and the siting verdicts (in one pass, or per
partition and then put back in the local order). What follows is :func:`finish`, the same code
for both: the project accounting, the township order of the terrain statistics, the 8+X
coverage joined to the township statistics and the 时序表.
"""

from __future__ import annotations

import datetime as dt
import logging

import geopandas as gpd
import numpy as np
import pandas as pd

from spatialplan.errors import SpatialPlanError
from spatialplan.pipeline.result import (
    CheckResult,
    layer_data,
    layer_features,
    plan_projects,
    plan_tolerance,
    plan_townships,
)

__all__ = ["finish"]

log = logging.getLogger(__name__)


def finish(plan, *, township_stats: gpd.GeoDataFrame, outside_townships: pd.DataFrame,
           line_conflicts: gpd.GeoDataFrame, as_of: dt.date,
           projects: gpd.GeoDataFrame | None = None, findings: pd.DataFrame | None = None,
           terrain: pd.DataFrame | None = None,
           township_conflicts: gpd.GeoDataFrame | None = None) -> CheckResult:
    """Assemble the result of a check from its whole tables (either engine).

    Parameters
    ----------
    plan
        The plan that was checked (townships, project register, catalogue, rulebook).
    township_stats, outside_townships, line_conflicts
        The control-line tables (:func:`spatialplan.analysis.overlay.control_line_report`, or
        the dask engine's combination of its partitions' rows).
    as_of
        The date the check was computed with; the result carries it.
    projects, findings
        The siting verdicts and findings of the whole register
        (:func:`spatialplan.rules.siting.check_projects`), or None for the control-line
        statistics alone (then no coverage and no 时序表).
    terrain
        Per-township slope statistics indexed by township code, any order (empty or None
        without a DEM); put in the order of the plan's townships.
    township_conflicts
        Overlaps and gaps between the townships
        (:func:`spatialplan.analysis.overlay.township_conflicts`).

    Returns
    -------
    CheckResult

    Raises
    ------
    SpatialPlanError
        When ``projects`` does not hold one row per feature of the plan's register (an
        accounting bug of a runner, never the user's data).
    """
    townships = plan_townships(plan)
    result = CheckResult(township_stats=township_stats, outside_townships=outside_townships,
                         line_conflicts=line_conflicts, tolerance=plan_tolerance(plan),
                         as_of=as_of, terrain=_in_township_order(terrain, townships),
                         township_conflicts=township_conflicts)
    if projects is None:
        return result
    register = plan_projects(plan)
    n_in = len(register.data) + len(register.rejected)
    if len(projects) != n_in:
        raise SpatialPlanError(f"project accounting broken: {n_in} projects in, "
                               f"{len(projects)} out", hint="please report this as a bug")
    from spatialplan.analysis import schedule
    from spatialplan.rules import siting

    result.projects, result.findings = projects, findings
    coverage = siting.facility_coverage(projects, townships, catalog=plan.catalog)
    result.township_stats = township_stats.merge(coverage, on="township_code", how="left",
                                                 validate="one_to_one")
    result.township_stats, result.county_summary = _roll_up(plan, result.township_stats,
                                                            projects, townships)
    result.schedule = schedule.sequence_table(projects, townships=townships,
                                              catalog=plan.catalog)
    _add_reach(plan, result, townships)
    return result


def _roll_up(plan, stats: gpd.GeoDataFrame, projects: pd.DataFrame,
             townships: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Add the township indicators and county ranks; sum them up per county.

    The county of a township is its ``county_code`` when the townships layer maps one, else
    the first six digits of its code; a county's geometry is the union of its townships.
    """
    import shapely

    from spatialplan.analysis import rollup
    from spatialplan.analysis.overlay import STAT_LINES
    from spatialplan.core._parallel import map_items
    from spatialplan.rules.catalog import eight_codes

    indicators = rollup.township_indicators(
        projects, stats["township_code"].astype(str).tolist(),
        eight_present=pd.Series(stats["eight_present"].to_numpy(),
                                index=stats["township_code"].astype(str)),
        n_eight=len(eight_codes(plan.catalog)))
    stats = stats.merge(indicators, on="township_code", how="left", validate="one_to_one")
    explicit = None
    if "county_code" in townships.columns:
        by_code = dict(zip(townships["code"].astype(str), townships["county_code"], strict=True))
        explicit = stats["township_code"].astype(str).map(by_code)
    stats["county_code"] = rollup.county_codes(stats["township_code"], explicit=explicit)
    stats["county_rank"] = rollup.rank_in_county(stats)
    counties = rollup.county_summary(stats, lines=[c for c in STAT_LINES
                                                   if f"{c}_m2" in stats.columns])
    geoms = np.asarray(stats.geometry.array, dtype=object)
    members = [(stats["county_code"] == code).to_numpy(dtype=bool)
               for code in counties["county_code"]]
    # one union per county, counties in threads (GEOS unions release the GIL)
    union = map_items(lambda mask: shapely.union_all(geoms[mask]), members)
    return stats, gpd.GeoDataFrame(counties, geometry=union, crs=stats.crs)


def _add_reach(plan, result: CheckResult, townships: gpd.GeoDataFrame) -> None:
    """Run the "1+N" village reach when the plan has villages (rulebook ``[reach]``).

    It runs once on the whole road network, after the verdicts are known (either engine).
    Without a ``villages`` layer, or with ``[reach] enabled = false``, the result has no
    reach: no ``village_reach`` layer and no ``reach_share_*`` columns.
    """
    villages = layer_data(plan, "villages")
    settings = plan.rules.get("reach", {})
    if villages is None or not settings.get("enabled", True) or result.projects is None:
        return
    from spatialplan.analysis import reach

    roads = layer_data(plan, "roads")
    if roads is None:
        log.warning("reach: the plan has villages but no roads layer; no village is reached")
        roads = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=villages.crs))
    limits = {k: v for k, v in settings.get("limits_m", {}).items() if v > 0}
    log.info("reach: %d villages, %d road features, %d facility types", len(villages),
             len(roads), len(limits))
    speed = float(settings.get("default_speed_kmh", 0.0))
    minutes = reach.Minutes(limits_min=settings.get("limits_min", {}),
                            walk_kmh=float(settings.get("walk_kmh", 5.0)),
                            default_speed_kmh=speed if speed > 0 else None)
    seats = layer_data(plan, "seats")  # else seats from the development boundary, read whole
    out = reach.town_reach(villages, roads, result.projects, townships, limits_m=limits,
                           snap_m=float(settings.get("snap_m", 1.0)),
                           seats=seats, udb=None if seats is not None else layer_features(
                               plan, "udb"),
                           minutes=minutes)
    result.village_reach, result.village_seat = out.reach, out.village_seat
    result.township_stats = result.township_stats.merge(
        out.shares, on="township_code", how="left", validate="one_to_one")
    result.reach_info = {
        "seat_source": (out.seats["seat_source"].iloc[0] if len(out.seats)
                        else "none (no seats layer, no development boundary)"),
        "outside": out.outside, "network": dict(out.network), "limits_m": limits,
        "limits_min": minutes.active,
        "snap_m": float(settings.get("snap_m", 1.0)),
    }


def _in_township_order(terrain: pd.DataFrame | None,
                       townships: gpd.GeoDataFrame) -> pd.DataFrame:
    """Per-township terrain statistics in the order of the townships layer."""
    if terrain is None or terrain.empty:
        return pd.DataFrame() if terrain is None else terrain
    # reindex, not positions: a township the statistics miss gets NaN, never another's row
    return terrain.reindex(pd.Index(townships["code"], name=terrain.index.name))
