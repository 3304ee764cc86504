"""The analysis side of a check: run it on a read plan, in memory (`run_stats`, `run_check`).

Nothing here touches an output path: :mod:`spatialplan.pipeline.write` writes what these return.
``run_check(engine="dask")`` hands the plan to :mod:`spatialplan.pipeline.engine`; both runners
end in the same :func:`spatialplan.pipeline.finish.finish`.
"""

from __future__ import annotations

import datetime as dt
import logging

import geopandas as gpd
import numpy as np

from spatialplan.errors import SpatialPlanError
from spatialplan.pipeline.finish import finish
from spatialplan.pipeline.result import (
    CheckResult,
    check_date,
    deferred_roles,
    dem_options,
    layer_data,
    plan_projects,
    plan_tolerance,
    plan_townships,
)

__all__ = ["CheckResult", "check_date", "run_check", "run_stats"]

log = logging.getLogger(__name__)


def run_stats(plan) -> CheckResult:
    """Overlay the three control lines (and survey cropland) on the township outlines.

    Parameters
    ----------
    plan
        A :class:`spatialplan.io.read.Plan` from :func:`spatialplan.io.read.read_plan`.

    Returns
    -------
    CheckResult
        With ``township_stats``, ``outside_townships``, ``line_conflicts`` and
        ``township_conflicts``; the project fields are None.

    Examples
    --------
    >>> import spatialplan as sp
    >>> from spatialplan.core._resources import demo_dir
    >>> stats = sp.run_stats(sp.read_plan(demo_dir() / "plan.toml"))
    >>> len(stats.township_stats)
    4
    """
    return finish(plan, **_control_lines(plan), as_of=plan.as_of)


def _control_lines(plan) -> dict[str, gpd.GeoDataFrame]:
    """Compute the control-line tables and the township conflicts of a plan.

    Every line layer is prepared once for the three control-line tables; the township
    statistics get the area counted twice where townships overlap.
    """
    from spatialplan.analysis import overlay
    from spatialplan.analysis._townships import join_columns

    _refuse_deferred(plan)
    townships = plan_townships(plan)
    log.info("control lines: statistics for %d townships", len(townships))
    # one preparation of every layer for the three tables (validation, coverage certificate)
    known = {role: layer.validated for role, layer in plan.layers.items()}
    lines: dict[str, gpd.GeoDataFrame | None] = {
        role: layer_data(plan, role) for role in ("redline", "farmland", "udb", "cropland")}
    report = overlay.control_line_report(
        townships, redline=lines["redline"], farmland=lines["farmland"], udb=lines["udb"],
        cropland=lines["cropland"], tolerance=plan_tolerance(plan), known_valid=known)._asdict()
    # the report has just validated these very township objects (or raised)
    known["townships"] = np.asarray(townships.geometry.array, dtype=object)
    conflicts = overlay.township_conflicts(townships, tolerance=plan_tolerance(plan),
                                           known_valid=known)
    twice = overlay.township_double_counted(townships, conflicts, **lines, known_valid=known)
    report["township_stats"] = join_columns(report["township_stats"], twice)
    return {**report, "township_conflicts": conflicts}


def run_check(plan, *, as_of: dt.date | None = None, engine: str = "local",
              scheduler: str | None = None, n_workers: int | None = None) -> CheckResult:
    """Run every analysis on a read plan: control lines, terrain, siting, coverage, schedule.

    Parameters
    ----------
    plan
        A :class:`spatialplan.io.read.Plan` from :func:`spatialplan.io.read.read_plan`.
    as_of
        Date for the date checks; default the plan's ``as_of``. The result carries it
        (``result.as_of``) and every writer prints it.
    engine
        ``"local"`` (default: in this process) or ``"dask"``: partitioned by groups of
        townships on dask.distributed, same results
        (:func:`spatialplan.pipeline.engine.run_check_dask`).
    scheduler
        With ``engine="dask"``: address of an existing scheduler (``"tcp://host:8786"``);
        default a new ``LocalCluster``.
    n_workers
        With ``engine="dask"`` and no ``scheduler``: workers of the ``LocalCluster``.

    Returns
    -------
    CheckResult

    Examples
    --------
    >>> import spatialplan as sp
    >>> from spatialplan.core._resources import demo_dir
    >>> result = sp.run_check(sp.read_plan(demo_dir() / "plan.toml"))
    >>> sorted(result.verdict_counts())
    ['error', 'fail', 'pass', 'review']
    """
    if engine == "dask":
        from spatialplan.pipeline.engine import run_check_dask

        return run_check_dask(plan, as_of=as_of, scheduler=scheduler, n_workers=n_workers)
    if engine != "local":
        raise ValueError(f"unknown engine {engine!r}; choose 'local' or 'dask'")
    from spatialplan.rules import siting

    as_of = check_date(as_of, plan)
    tables = _control_lines(plan)
    townships = plan_townships(plan)
    register = plan_projects(plan)
    slope, terrain = _terrain(plan, register.data, townships)
    log.info("siting: checking %d projects", register.n_in)
    projects, findings = siting.check_projects(
        register.data,
        townships=townships,
        redline=layer_data(plan, "redline"),
        farmland=layer_data(plan, "farmland"),
        udb=layer_data(plan, "udb"),
        cropland=layer_data(plan, "cropland"),
        parcels=layer_data(plan, "parcels"),
        built=layer_data(plan, "built"),
        slope=slope,
        rules=plan.rules,
        catalog=plan.catalog,
        as_of=as_of,
        rejected=register.rejected,
        layers={role: layer.data for role, layer in plan.layers.items()},
    )
    return finish(plan, **tables, as_of=as_of, projects=projects, findings=findings,
                  terrain=terrain)


def _terrain(plan, sites: gpd.GeoDataFrame, townships: gpd.GeoDataFrame):
    """Slope statistics for the sites and townships, or (None, None) without a DEM."""
    dem = plan.rasters.get("dem")
    if dem is None:
        return None, None
    from spatialplan.analysis import terrain
    from spatialplan.rules._sites import slope_min_pixels

    log.info("terrain: slope statistics from %s", dem.path)
    grid = terrain.read_terrain(dem.path, crs=plan.crs, **dem_options(dem))
    valid = sites[~sites.geometry.isna() & ~sites.geometry.is_empty]
    slope = terrain.site_slope_stats(valid, grid, id_column="feature_id",
                                     around_below=slope_min_pixels(plan.rules))
    per_township = terrain.township_terrain_stats(townships, grid, id_column="code")
    return slope, per_township


def _refuse_deferred(plan) -> None:
    """Refuse a plan whose layers were only opened (``read_plan(..., defer=...)``)."""
    deferred = deferred_roles(plan)
    if deferred:
        raise SpatialPlanError(
            f"the layers {', '.join(deferred)} were only opened (read_plan defer=...): the "
            "local engine needs their features", path=plan.path,
            hint="read the plan without defer, or run it with engine='dask'")
