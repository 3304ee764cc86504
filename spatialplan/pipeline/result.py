"""What a check produced (:class:`CheckResult`) and the shared plan accessors.

Every runner and writer shares these accessors.

This module imports no other module of :mod:`spatialplan.pipeline`: the local runner
(:mod:`~spatialplan.pipeline.run`), the dask engine (:mod:`~spatialplan.pipeline.engine`,
:mod:`~spatialplan.pipeline._dask`), the finishing step (:mod:`~spatialplan.pipeline.finish`)
and the writers (:mod:`~spatialplan.pipeline.write`) import it, so the pipeline's imports run
one way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import geopandas as gpd
import pandas as pd

from spatialplan.errors import SpatialPlanError

log = logging.getLogger(__name__)

__all__ = [
    "CheckResult",
    "check_date",
    "deferred_note",
    "deferred_roles",
    "dem_options",
    "layer_data",
    "layer_features",
    "plan_projects",
    "plan_tolerance",
    "plan_townships",
    "result_date",
]


@dataclasses.dataclass
class CheckResult:
    """Everything one run of the check produced, in memory.

    Attributes
    ----------
    township_stats
        One row per township: areas, control-line areas and shares, 8+X coverage.
    outside_townships
        Per control line, the area lying outside every township outline.
    line_conflicts
        One polygon row per overlap between control lines (or within one).
    tolerance
        The overlap tolerances used.
    projects
        One row per input project with its verdict, reasons and measures (None when only the
        control-line statistics were run).
    findings
        One row per project and rule (None likewise).
    schedule
        The construction sequence table (时序表) with Chinese headers (None likewise).
    terrain
        Per-township slope statistics (empty without a DEM).
    county_summary
        One row per county (:func:`spatialplan.analysis.rollup.county_summary`), with the
        union of its townships as geometry (None without projects).
    as_of
        The date the check was computed with (the date rules, 先落图、后落地); every writer
        (manifest, report, layout map) prints it. ``None`` only for a result built by hand:
        the writers then print the plan's date.
    township_conflicts
        Overlaps and enclosed gaps between the township outlines, one polygon row each
        (:func:`spatialplan.analysis.overlay.township_conflicts`); empty for a clean tiling.
        ``None`` only for a result built by hand: no ``township_conflicts`` layer is written.
    village_reach
        One row per village and facility type with a reach limit: the nearest serving project
        by road and the path (None without a ``villages`` layer or with ``[reach]`` off).
    village_seat
        Each village's road distance to its town seat (None likewise).
    reach_info
        The reach run's notes: ``seat_source``, ``outside`` (villages in no township),
        ``network`` (road counts), ``limits_m``, ``snap_m`` (empty without a reach).
    """

    township_stats: gpd.GeoDataFrame
    outside_townships: pd.DataFrame
    line_conflicts: gpd.GeoDataFrame
    tolerance: dict
    projects: gpd.GeoDataFrame | None = None
    findings: pd.DataFrame | None = None
    schedule: pd.DataFrame | None = None
    terrain: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    as_of: dt.date | None = None
    county_summary: gpd.GeoDataFrame | None = None
    township_conflicts: gpd.GeoDataFrame | None = None
    village_reach: gpd.GeoDataFrame | None = None
    village_seat: pd.DataFrame | None = None
    reach_info: dict = dataclasses.field(default_factory=dict)

    def verdict_counts(self) -> dict[str, int]:
        """Return the number of projects per verdict, in the order pass, review, fail, error."""
        if self.projects is None:
            return {}
        counts = self.projects["verdict"].value_counts()
        return {v: int(counts.get(v, 0)) for v in ("pass", "review", "fail", "error")}


def layer_data(plan, role: str) -> gpd.GeoDataFrame | None:
    """Return the accepted features of a plan layer, or None when the plan has no such layer."""
    layer = plan.layers.get(role)
    return None if layer is None else layer.data


def deferred_roles(plan) -> list[str]:
    """Return the plan's layers only opened by the driver (``read_plan(..., defer=...)``)."""
    return [role for role, layer in plan.layers.items() if getattr(layer, "deferred", False)]


def deferred_note(plan) -> str | None:
    """Say how the deferred layers were read (None when the plan has none).

    With the dask engine the partitions read and validate these layers' features over their
    own extents; the driver holds only their counts and extents, and takes their repaired and
    rejected features from the partitions' reports (the manifest and the report say so).
    """
    roles = deferred_roles(plan)
    if not roles:
        return None
    names = ", ".join(roles)
    return (f"{names}：由 dask 分区按范围读取并校验，主进程只读取要素数与范围；修复/拒绝的要素"
            f"由各分区报告 / {names}: read and validated by the dask partitions over their "
            "extents; the driver read only their feature counts and extents, and counts their "
            "repaired and rejected features from the partitions' reports")


def layer_features(plan, role: str) -> gpd.GeoDataFrame | None:
    """Return a layer's features, for a step after the check that needs them whole.

    As :func:`layer_data`; a deferred layer (only opened by the dask engine's driver) is read
    whole here, as :func:`spatialplan.io.read.read_plan` would have read it: the map and layout
    draw the lines, the town seats of the village reach come from the development boundary.
    """
    layer = plan.layers.get(role)
    if layer is None or not getattr(layer, "deferred", False):
        return None if layer is None else layer.data
    from spatialplan.io.plan import read_plan_spec
    from spatialplan.io.read import read_spec_layer

    ls = read_plan_spec(plan.path, plugin_roles=True).layers[role]
    log.info("reading the %s layer whole (a step after the check needs its features)", role)
    return read_spec_layer(ls, role=role, crs=plan.crs).data


def plan_townships(plan) -> gpd.GeoDataFrame:
    """Return the plan's township outlines, or raise a clear error when the plan has none."""
    townships = layer_data(plan, "townships")
    if townships is None:
        raise SpatialPlanError("the plan has no townships layer", path=plan.path,
                               hint="add [layers.townships] to the plan file")
    return townships


def plan_projects(plan):
    """Return the plan's project register, or raise a clear error when the plan has none.

    The register is a :class:`spatialplan.io.read.Layer`.
    """
    projects = plan.layers.get("projects")
    if projects is None:
        raise SpatialPlanError("the plan has no projects layer", path=plan.path,
                               hint="add [layers.projects] (the 8+X register) to the plan file")
    return projects


def plan_tolerance(plan) -> dict:
    """Return the overlap tolerances of the plan's rulebook, without their source note."""
    tolerance = dict(plan.rules.get("tolerance", {}))
    tolerance.pop("source", None)
    return tolerance


def dem_options(dem) -> dict:
    """Keyword options the plan gave for a DEM (assumed CRS, explicit nodata)."""
    options = {}
    if getattr(dem, "assume_crs", None):
        options["assume_crs"] = dem.assume_crs
    if getattr(dem, "nodata_override", None) is not None:
        options["nodata"] = dem.nodata_override
    return options


def check_date(as_of: object, plan) -> dt.date:
    """Return the date a check runs with: ``as_of`` (date, ISO text or timestamp) or the plan's."""
    if as_of is None:
        return plan.as_of
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    return pd.Timestamp(as_of).date()


def result_date(plan, result: CheckResult) -> dt.date:
    """Return the date a result was computed with (the plan's for a result built by hand)."""
    return result.as_of if result.as_of is not None else plan.as_of
