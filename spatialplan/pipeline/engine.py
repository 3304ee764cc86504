"""Distributed engine: the same check, partitioned by groups of townships, on dask.distributed.

:func:`run_check_dask` gives the same :class:`~spatialplan.pipeline.result.CheckResult` as
:func:`spatialplan.pipeline.run.run_check` (same rows, verdicts, areas to rounding), computed by
partitions on a ``LocalCluster`` (worker processes of one thread each) or an existing cluster.
A partition's GEOS work uses its worker's share of the host's cores
(:func:`spatialplan.pipeline._dask.worker_threads`).

How a plan is partitioned
-------------------------
- **Tiles.** The townships' representative points are split k-d style (median cuts on the
  wider axis) into tiles of at most ``partition_size`` townships (default: one partition per
  worker thread, at most :data:`MAX_PARTITION_TOWNSHIPS`; :func:`default_partition_size`).
  The tiles are half-open rectangles covering the whole plane (outer ones unbounded), so
  every point belongs to exactly one partition: this decides who reports what lies outside
  every township.
- **Extent.** A partition reads the control lines, parcels and survey cropland that intersect
  its extent (pyogrio ``bbox`` in each source's CRS, the bounds transformed explicitly with
  densified edges and a 1 m margin): its tile (clipped to the data), its townships' bounds
  and its projects' bounds widened by the largest search radius of any rule (the setback
  distances; each plug-in rule's ``search_radius_m``); the layers of plug-in rules are read
  the same way. Features are read whole,
  keep their full-read ``feature_id`` and are validated and reprojected as in a full read.
- **Ownership.** Township statistics and terrain: the partition of the township (each line
  measures only its own townships' share, so a feature read by two partitions is never
  counted twice). Conflicts: split by township, each piece reported by the piece's township;
  a piece outside every township by the tile holding its representative point. Projects: by
  the tile of the site's representative point; sites without usable geometry by their
  declared township, else the first partition; rejected ones go with the most projects. A
  partition checks its projects together with the neighbouring sites within that search
  radius (so setbacks and overlaps across partition borders are seen) and keeps only its
  own rows. As-built
  footprints are joined by project id, not by place: each partition gets its projects'
  footprints, unmapped builds are found once on the combined register.
- **Terrain.** A DEM in the analysis CRS is read per partition through a window of the
  partition's townships and sites, widened by 3 cells (Horn slope needs 1), so slopes match
  the full grid; a DEM needing reprojection is warped whole in each partition.

The driver only reads the townships, the project register and the as-built footprints (the
plan given to :func:`run_check_dask` already holds them; the lines, cropland and parcels are
only opened, :data:`DEFERRED_ROLES`) and finds the overlaps and gaps between
the townships (``township_conflicts``, township-level: each partition then measures the line
area its own townships' overlaps count twice); it also runs SQLite's
``quick_check`` once on each GeoPackage the partitions read, so they do not repeat it. The
deferred layers' rejected and repaired features are accounted from the partitions' reports
(:mod:`spatialplan.pipeline._dask_accounts`). With ``on_worker`` the partitions' rows are
combined, and the outputs written, on a worker.

Example
-------
>>> import spatialplan as sp                                               # doctest: +SKIP
>>> plan = sp.read_plan("plan.toml")                                       # doctest: +SKIP
>>> result = sp.run_check(plan, engine="dask", n_workers=2)                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from spatialplan.core._kdsplit import partition_points as partition_townships
from spatialplan.errors import RasterError, SpatialPlanError
from spatialplan.io._defer import dense_fid_start
from spatialplan.pipeline._dask import (
    _EXTENT_ROLES,
    _MARGIN_M,
    _STAT_ROLES,
    _clip_box,
    _envelope,
    _in_tile,
    _Part,
    _points,
    _Positions,
    _run_partition,
    _Shared,
    _transform_box,
    worker_threads,
)
from spatialplan.pipeline._dask_accounts import account_deferred
from spatialplan.pipeline.finish import finish
from spatialplan.pipeline.result import (
    check_date,
    layer_data,
    plan_projects,
    plan_tolerance,
    plan_townships,
)

__all__ = ["DEFERRED_ROLES", "MAX_PARTITION_TOWNSHIPS", "connect", "default_partition_size",
           "partition_townships", "run_check_dask"]

#: the roles the driver only opens (``read_plan(..., defer=DEFERRED_ROLES)``): the partitions
#: read their features over their own extent, so the driver's memory does not follow them
DEFERRED_ROLES = _EXTENT_ROLES

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- partitions


def _tile_of(xy: np.ndarray, tiles: list) -> np.ndarray:
    out = np.full(len(xy), -1, dtype=np.intp)
    for k, tile in enumerate(tiles):
        out[_in_tile(xy, tile) & (out < 0)] = k
    return out


# --------------------------------------------------------------------------- shared inputs


def _positions(spec) -> _Positions:
    """FID → row position of one layer, from a read of the FIDs only.

    A PostGIS table: from its row count and key range when its primary keys are dense
    integers, else from its keys (:func:`spatialplan.io.postgis.table_summary`).
    """
    if _is_table(spec):
        summary = _table_summary(spec)
        if "key_min" in summary:
            return _Positions(offset=summary["key_min"])
        return _Positions(fids=summary["keys"])
    dense = dense_fid_start(spec.path, layer=spec.layer)
    if dense is not None:
        return _Positions(offset=dense)
    frame = pyogrio.read_dataframe(spec.path, layer=spec.layer, columns=[],
                                   read_geometry=False, fid_as_index=True)
    fids = frame.index.to_numpy().astype(np.int64)
    if len(fids) == 0 or np.array_equal(fids, np.arange(fids[0], fids[0] + len(fids))):
        return _Positions(offset=int(fids[0]) if len(fids) else 0)
    return _Positions(fids=fids)


def _check_geopackages(specs: dict) -> frozenset:
    """Integrity-check every GeoPackage the partitions will read, once, on the driver."""
    from spatialplan.io.read import _sniff

    checked: set = set()
    for role, spec in specs.items():
        path = spec.path  # a str is remote: never sniffed (see read._open_info)
        if isinstance(path, Path) and path.suffix.lower() == ".gpkg" and path.is_file():
            _sniff(path, ".gpkg", role=role, sqlite_checked=checked)
    return frozenset(checked)


def _layer_bounds(spec, crs) -> tuple[float, float, float, float] | None:
    """Total bounds of a source layer in the analysis CRS (None when empty)."""
    if _is_table(spec):
        summary = _table_summary(spec)
        src = spec.assume_crs or summary["crs"]
        if summary["bounds"] is None or src is None:
            return None
        return _transform_box(summary["bounds"], src, crs)
    info = pyogrio.read_info(spec.path, layer=spec.layer, force_total_bounds=True)
    bounds = info.get("total_bounds")
    src = spec.assume_crs or info.get("crs")
    if bounds is None or not np.all(np.isfinite(bounds)) or src is None:
        return None
    return _transform_box(tuple(bounds), src, crs)


def _is_table(spec) -> bool:
    from spatialplan.io.postgis import is_postgres

    return is_postgres(spec.path)


def _table_summary(spec) -> dict:
    """Row count, extent and keys of a PostGIS layer, read on the server (no rows)."""
    from spatialplan.io.postgis import table_summary

    return table_summary(spec.path, layer=spec.layer, role=spec.role, where=spec.where,
                         geometry_column=spec.geometry_column)


def _search_radius(rules: dict) -> float:
    """Largest distance any rule looks beyond a site, plus a margin.

    Every rule of the registry declares its search radius (built-in setbacks: the largest
    setback distance; plug-ins: their ``search_radius_m``), see
    :func:`spatialplan.rules._registry.search_radius`.
    """
    from spatialplan.rules._registry import search_radius

    return search_radius(rules) + _MARGIN_M


def _build_parts(shared: _Shared, *, projects: gpd.GeoDataFrame,
                 rejected: pd.DataFrame | None, built: gpd.GeoDataFrame | None,
                 owner: np.ndarray) -> list[_Part]:
    """Assign projects to tiles and compute every partition's read extents."""
    from spatialplan.rules._sites import text_values
    from spatialplan.rules.siting import _geometry_problems

    towns = shared.townships
    geoms = np.asarray(projects.geometry.array, dtype=object)
    usable = pd.isna(_geometry_problems(geoms))
    masked = geoms.copy()  # the usable geometries, None for the others
    masked[~usable] = None
    assign = np.where(usable, _tile_of(_points(masked), shared.tiles), -1)
    code_part = dict(zip(text_values(towns["code"]), owner, strict=True))
    declared = text_values(projects["township_code"]) if "township_code" in projects else (
        np.full(len(projects), None, dtype=object))
    for i in np.flatnonzero(assign < 0):
        assign[i] = code_part.get(declared[i], 0)
    # rejected projects go with the most accepted ones (their rows are concatenated the same
    # way as in a local run)
    home = int(np.argmax(np.bincount(assign, minlength=len(shared.tiles)))) if len(assign) else 0
    site_bounds = shapely.bounds(masked)
    tree = shapely.STRtree(masked)
    pid = text_values(projects["project_id"]) if "project_id" in projects else None
    built_ids = _built_ids(built)
    parts = []
    for k, tile in enumerate(shared.tiles):
        own_t = np.flatnonzero(owner == k)
        own_p = np.flatnonzero(assign == k)
        boxes = [_clip_box(tile, shared.world),
                 tuple(shapely.total_bounds(towns.geometry.array[own_t]))]
        sites = own_p[usable[own_p]]
        site_box = None  # the bounds of the partition's usable sites, if it has any
        if len(sites):
            b = site_bounds[sites]
            site_box = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
            boxes.append(site_box)
        dem_extent = _envelope(boxes[1:])
        r = shared.radius
        near = sites
        if site_box is not None:
            near = tree.query(geoms[sites], predicate="dwithin", distance=r)[1]
            boxes.append(tuple(np.add(site_box, (-r, -r, r, r))))
        rows = np.union1d(own_p, near)
        sub = projects.iloc[rows]
        own = np.isin(rows, own_p)
        pids = set(pid[own_p]) - {None} if pid is not None else set()
        fids = set(projects["feature_id"].to_numpy()[own_p])
        parts.append(_Part(
            index=k, towns=own_t, projects=sub, own=own,
            rejected=rejected if k == home else None,
            built=_built_for(built, built_ids, pids | fids),
            extent=_envelope(boxes), dem_extent=dem_extent))
    return parts


def _built_ids(built: gpd.GeoDataFrame | None) -> np.ndarray:
    """Return the ``project_id`` of each as-built footprint.

    ``None`` where it is missing, or everywhere when there is no such column.
    """
    from spatialplan.rules._sites import text_values

    if built is None or "project_id" not in built:
        return np.full(0 if built is None else len(built), None, dtype=object)
    return text_values(built["project_id"])


def _built_for(built: gpd.GeoDataFrame | None, keys: np.ndarray,
               ids: set) -> gpd.GeoDataFrame | None:
    """Select the as-built footprints joined to a partition's projects.

    ``keys``: the ids of :func:`_built_ids`.

    A set lookup per footprint: ``np.isin`` on object arrays compares every footprint with
    every id.
    """
    if built is None:
        return None
    return built[np.fromiter((k in ids for k in keys), dtype=bool, count=len(keys))]


# --------------------------------------------------------------------------- driver


def connect(scheduler: Any = None, *, n_workers: int | None = None):
    """Yield a dask ``Client`` (context manager).

    The given one, a scheduler address, or a new ``LocalCluster`` (processes, one thread
    each, no dashboard), closed on exit.

    Example
    -------
    >>> with connect(n_workers=2) as client:                     # doctest: +SKIP
    ...     client.ncores()
    """
    return _connect(scheduler, n_workers)


@contextlib.contextmanager
def _connect(scheduler: Any, n_workers: int | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    _quiet_distributed()

    if scheduler is not None and hasattr(scheduler, "submit"):
        yield scheduler
        return
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=n_workers or 2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def _quiet_distributed() -> None:
    """Keep dask.distributed's INFO lines (scheduler, nannies, connections) off the console.

    They reach the root handler of the command; its warnings and errors still do, and
    everything does with ``-v`` (spatialplan's loggers at DEBUG).
    """
    if logging.getLogger("spatialplan").getEffectiveLevel() <= logging.DEBUG:
        return
    for name in ("distributed", "distributed.scheduler", "distributed.nanny",
                 "distributed.core", "distributed.worker", "distributed.http.proxy"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


#: the default partitions hold at most this many townships (a partition's memory follows its
#: features: one worker running the benchmark's four partitions of 375 townships, ~250,000
#: parcels each, peaked at 912 MiB)
MAX_PARTITION_TOWNSHIPS = 400


def default_partition_size(n_townships: int, slots: int) -> int:
    """Townships per partition when none is given: one partition per worker thread, capped.

    Every partition repeats some work (reading its extent, the features near its edge, the
    certificate of what it read), so few large partitions are faster than many small ones:
    on the 1,500-township benchmark with two workers, 2 partitions took 15.7 s where 24 of
    64 townships took 21.7 s. The cap bounds a worker's memory on a large plan.

    >>> [default_partition_size(n, slots) for n, slots in ((1500, 2), (1500, 8), (10, 4))]
    [400, 188, 3]
    """
    return max(1, min(MAX_PARTITION_TOWNSHIPS, math.ceil(n_townships / max(slots, 1))))


def run_check_dask(plan, *, as_of=None, scheduler: Any = None, n_workers: int | None = None,
                   partition_size: int | None = None,
                   on_worker: Callable[[Any, Any], Any] | None = None):
    """Run :func:`spatialplan.pipeline.run.run_check` partitioned on dask.distributed.

    Parameters
    ----------
    plan
        A read :class:`spatialplan.io.read.Plan` with a plan file (``plan.path``): its townships,
        projects, as-built footprints, CRS, rulebook and catalogue are used as read; the other
        layers are read again by each partition, only over its extent.
    as_of
        Date for the schedule checks; default the plan's.
    scheduler
        Address of an existing scheduler (``"tcp://host:8786"``) or a ``distributed.Client``;
        default a new ``LocalCluster``.
    n_workers
        Workers of the new ``LocalCluster`` (default 2).
    partition_size
        Townships per partition; default :func:`default_partition_size`: one partition per
        worker thread, at most :data:`MAX_PARTITION_TOWNSHIPS` townships each.
    on_worker
        ``on_worker(plan, result)``, picklable (a module-level function, or a
        ``functools.partial`` of one): the partitions' rows are then combined on a worker,
        not in this process, and ``on_worker`` runs there on the plan and the
        :class:`CheckResult` (e.g. writes the outputs, see the ``check`` command); its return
        value, which should be small, is returned instead of the result. The log records
        (``spatialplan.*``, at this process's level) it and the combination emit are
        logged again here. So this process never holds the result tables.

    Returns
    -------
    CheckResult
        Equal to the local engine's: same rows in the same order (line conflicts sorted by
        layer pair, features and township), same verdicts, areas to rounding. With
        ``on_worker``: its return value.
    """
    from spatialplan.io.plan import read_plan_spec

    if plan.path is None:
        raise SpatialPlanError("the dask engine needs a plan read from a plan file",
                               hint="read the plan with spatialplan.read_plan('plan.toml')")
    spec = read_plan_spec(plan.path, plugin_roles=True)
    townships = plan_townships(plan)
    projects_layer = plan_projects(plan)
    with _connect(scheduler, n_workers) as client:
        info = client.scheduler_info().get("workers", {})
        workers = max(len(info), 1)
        slots = max(sum(int(w.get("nthreads", 1)) for w in info.values()), 1)
        size = partition_size or default_partition_size(len(townships), slots)
        tiles, owner = partition_townships(_points(np.asarray(townships.geometry.array)),
                                           partition_size=size)
        shared = dataclasses.replace(_shared(plan, spec, townships, tiles, as_of),
                                     threads=worker_threads(client, info))
        parts = _build_parts(shared, projects=projects_layer.data,
                             rejected=projects_layer.rejected if len(projects_layer.rejected)
                             else None,
                             built=layer_data(plan, "built"), owner=owner)
        log.info("dask engine: %d partitions of ≤ %d townships on %d workers", len(parts), size,
                 workers)
        [shared_f] = client.scatter([shared], broadcast=True)
        futures = [client.submit(_run_partition, p, shared_f, pure=False) for p in parts]
        if on_worker is not None:
            level = logging.getLogger("spatialplan").getEffectiveLevel()
            done = client.submit(_reduce_on_worker, plan, shared_f, projects_layer, on_worker,
                                 level, *futures, pure=False)
            del futures  # the partitions' rows go to that worker, never through this process
            value, records, error = done.result()
            _log_again(records)
            if error is not None:
                raise error
            return value
        outs = client.gather(futures)
    return _reduce(plan, shared, outs, projects_layer)


def _reduce(plan, shared: _Shared, outs: list[dict], projects_layer):
    """Account the deferred layers and combine the partitions' rows into the result."""
    account_deferred(plan, shared, outs)
    return _combine(plan, shared, outs, projects_layer)


def _reduce_on_worker(plan, shared: _Shared, projects_layer, on_worker: Callable, level: int,
                      *outs: dict) -> tuple[Any, list[tuple[str, int, str]], Exception | None]:
    """Run on a worker: :func:`_reduce`, then ``on_worker(plan, result)``.

    Returns its value, the log records emitted meanwhile (name, level, message) and the
    error that stopped it (None), so the driver logs what happened before raising it.
    """
    with _captured_logs(level) as records:
        try:
            return on_worker(plan, _reduce(plan, shared, list(outs), projects_layer)), \
                records, None
        except Exception as exc:  # returned with the records, raised by the driver
            return None, records, exc


class _Capture(logging.Handler):
    """Keep the records of the ``spatialplan`` loggers as (name, level, message)."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


@contextlib.contextmanager
def _captured_logs(level: int) -> Iterator[list[tuple[str, int, str]]]:
    """Capture the ``spatialplan`` log records at ``level`` and above, not shown here."""
    logger = logging.getLogger("spatialplan")
    handler = _Capture(level)
    old = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old[0])
        logger.propagate = old[1]


def _log_again(records: list[tuple[str, int, str]]) -> None:
    """Log records captured on a worker in this process."""
    for name, level, message in records:
        logging.getLogger(name).log(level, "%s", message)


def _shared(plan, spec, townships, tiles, as_of) -> _Shared:
    from spatialplan.analysis import overlay
    from spatialplan.io.roles import LAYER_ROLES

    # the lines and parcels, and the layers of plug-in rules (read per partition extent)
    roles = [r for r in _EXTENT_ROLES if r in spec.layers] + [
        r for r in plan.layers if r not in LAYER_ROLES and r in spec.layers]
    specs = {r: spec.layers[r] for r in roles}
    source_crs = {r: plan.layers[r].source.crs for r in roles}
    # a deferred layer's extent was read with the plan (read_plan defer=): not asked again
    boxes = [plan.layers[r].extent if getattr(plan.layers.get(r), "deferred", False)
             else _layer_bounds(specs[r], plan.crs) for r in roles]
    boxes.append(tuple(townships.total_bounds))
    world = _envelope(boxes)
    world = (world[0] - 10, world[1] - 10, world[2] + 10, world[3] + 10)
    deferred = frozenset(r for r in roles if getattr(plan.layers.get(r), "deferred", False))
    return _Shared(specs=specs, positions={r: _positions(specs[r]) for r in roles},
                   deferred=deferred,
                   sqlite_checked=_check_geopackages(specs),
                   source_crs=source_crs, crs=plan.crs, rules=plan.rules, catalog=plan.catalog,
                   as_of=check_date(as_of, plan), tolerance=plan_tolerance(plan),
                   townships=townships, tiles=tiles, world=world,
                   radius=_search_radius(plan.rules), dem=plan.rasters.get("dem"),
                   township_conflicts=overlay.township_conflicts(
                       townships, tolerance=plan_tolerance(plan),
                       known_valid={"townships": plan.layers["townships"].validated}))


def _combine(plan, shared: _Shared, outs: list[dict], projects_layer):
    """Put the partitions' rows together in the local engine's order, then :func:`finish`."""
    from spatialplan.analysis import overlay

    # each partition table is popped as it is combined: the driver never holds a table twice
    stats = pd.concat([o.pop("stats") for o in outs]).sort_values("_pos").drop(columns="_pos")
    stats = gpd.GeoDataFrame(stats, geometry="geometry", crs=plan.crs)
    given = [r for r in _STAT_ROLES if r in shared.specs]
    stats.attrs.update(tolerance=overlay.resolve_tolerance(shared.tolerance),
                       grid_size_m=overlay.DEFAULT_GRID_SIZE, lines=sorted(given))
    terrain = None
    if shared.dem is not None:
        _require_dem_overlap(outs, shared.dem)
        terrain = pd.concat([o["terrain"] for o in outs])
    projects, findings = _project_tables(plan, shared, outs, projects_layer)
    return finish(plan, township_stats=stats,
                  outside_townships=_outside_table(outs, given, plan.crs),
                  line_conflicts=_conflict_table(outs, plan.crs, shared.tolerance),
                  as_of=shared.as_of, projects=projects, findings=findings, terrain=terrain,
                  township_conflicts=shared.township_conflicts)


def _require_dem_overlap(outs: list[dict], dem) -> None:
    """Raise as the local engine does when no site (then no township) meets the DEM."""
    for role in ("sites", "townships"):
        n = sum(o["dem_hits"][role][0] for o in outs)
        if n and not sum(o["dem_hits"][role][1] for o in outs):
            raise RasterError(f"none of the {n} {role} overlaps the DEM", path=dem.path,
                              layer=role,
                              hint="check the DEM covers the plan area and both CRSs")


def _project_tables(plan, shared, outs, projects_layer):
    """Combine the partitions' project rows and findings in the local engine's order and dtypes.

    The unmapped builds are found once on the whole register.
    """
    from spatialplan.rules import _sites, siting
    from spatialplan.rules._registry import rule_ids

    order = list(projects_layer.data["feature_id"])
    if len(projects_layer.rejected):
        order += list(projects_layer.rejected["feature_id"].astype(str))
    pos = pd.Series(np.arange(len(order)), index=order)
    res = pd.concat([o.pop("projects") for o in outs if "projects" in o], ignore_index=True)
    res = res.iloc[np.argsort(pos[res["feature_id"]].to_numpy())].reset_index(drop=True)
    n_acc = len(projects_layer.data)
    res = _infer_like_local(res, n_acc)
    if len(res) > n_acc:  # rejected rows after accepted ones, joined as check_projects does
        acc, rej = res.iloc[:n_acc], res.iloc[n_acc:]
        res = pd.concat([acc, rej[acc.columns]], ignore_index=True) if n_acc else rej
    res = gpd.GeoDataFrame(res, geometry="geometry", crs=plan.crs)
    fnd = pd.concat([o.pop("findings") for o in outs if "findings" in o], ignore_index=True)
    ids = rule_ids(shared.rules)
    rank = {r: k for k, r in enumerate(ids)}
    key = pos[fnd["feature_id"]].to_numpy() * len(ids) + fnd["rule"].map(rank).to_numpy()
    fnd = fnd.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
    built = layer_data(plan, "built")
    known = set(res["project_id"].dropna().astype(str))
    lost = _sites.unmapped_build_rows(
        built if shared.rules["as_built"]["enabled"] else None, known)
    if len(lost):
        fnd = pd.concat([fnd, siting._unmapped_findings(lost, shared.rules)], ignore_index=True)
    return res, fnd


#: columns check_projects casts back to object after pandas inferred a string dtype
_OBJECT_COLUMNS = ("facility_name", "group", "township_found", "facility", "verdict")


def _infer_like_local(res: pd.DataFrame, n_acc: int) -> pd.DataFrame:
    """Redo pandas' string inference on the accepted rows as one frame (as a local run does).

    A partition whose values of a column are all missing keeps an object column of None where
    the whole register gives a string column (missing = NaN).
    """
    acc = res.iloc[:n_acc].copy()
    for col in acc.columns:
        if col == "geometry" or acc[col].dtype != object:
            continue
        again = pd.Series(acc[col].to_numpy(dtype=object), index=acc.index)
        if again.dtype != object:
            acc[col] = again.astype(object) if col in _OBJECT_COLUMNS else again
    return pd.concat([acc, res.iloc[n_acc:]]) if len(res) > n_acc else acc


_PAIR_ORDER = {("redline", "redline"): 0, ("redline", "farmland"): 1, ("redline", "udb"): 2,
               ("farmland", "farmland"): 3, ("farmland", "udb"): 4, ("udb", "udb"): 5}


def conflict_sort_key(frame: pd.DataFrame) -> np.ndarray:
    """Stable order of line-conflict rows: layer pair, feature a, feature b, township."""
    layer_a = frame["layer_a"].to_numpy(dtype=object)
    layer_b = frame["layer_b"].to_numpy(dtype=object)
    pair = np.full(len(frame), 9)
    for (a, b), rank in _PAIR_ORDER.items():
        pair[(layer_a == a) & (layer_b == b)] = rank
    num = [_id_numbers(frame[c]) for c in ("feature_a", "feature_b")]
    town = frame["township_code"].fillna("\uffff").astype(str)
    keys = pd.DataFrame({"p": pair, "a": num[0].to_numpy(), "b": num[1].to_numpy(),
                         "t": town.to_numpy()})
    return np.lexsort([keys["t"], keys["b"], keys["a"], keys["p"]])


def _id_numbers(ids: pd.Series) -> pd.Series:
    """Return the number after the last ``:`` of each feature id (NaN when it is none).

    Ids of the form ``role:123`` (every id a plan's layers get without a ``feature_id``
    column) are parsed by pyarrow at once; any other id by pandas, value by value.
    """
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    text = pa.array(ids.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    if (len(text) and text.null_count == 0
            and pc.all(pc.match_substring_regex(text, r"^[^:]*:[0-9]{1,18}$")).as_py()):
        digits = pc.replace_substring_regex(text, r"^[^:]*:", "")
        return pd.Series(pc.cast(digits, pa.int64()).to_numpy(), index=ids.index)
    return pd.to_numeric(ids.str.rsplit(":", n=1).str[-1], errors="coerce")


def _conflict_table(outs, crs, tolerance) -> gpd.GeoDataFrame:
    from spatialplan.analysis import overlay

    # an empty partition table has object columns: concatenated, it would turn the others'
    # string columns to object, unlike a local run
    tables = [o.pop("conflicts") for o in outs]
    frame = pd.concat([t for t in tables if len(t)] or tables[:1], ignore_index=True)
    del tables
    frame = frame.iloc[conflict_sort_key(frame)].reset_index(drop=True)
    out = gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)
    out.attrs.update(tolerance=overlay.resolve_tolerance(tolerance),
                     grid_size_m=overlay.DEFAULT_GRID_SIZE)
    return out


def _outside_table(outs, given, crs) -> gpd.GeoDataFrame:
    from spatialplan.analysis import _overlay_geom as _geom
    from spatialplan.analysis import overlay

    rows = []
    for role in given:
        items = [o["outside"][role] for o in outs if role in o["outside"]]
        overlaps = any(i["overlaps"] for i in items)
        pieces = np.concatenate([i["pieces"] for i in items] or [np.array([], dtype=object)])
        line_m2 = sum(i["tile_m2" if overlaps else "owned_m2"] for i in items)
        if len(pieces) == 0:
            geometry, area = None, 0.0
        elif overlaps:
            geometry = _geom.union(pieces, grid_size=overlay.DEFAULT_GRID_SIZE)
            area = float(shapely.area(geometry))
        else:
            geometry = shapely.multipolygons(pieces)
            area = float(shapely.area(pieces).sum())
        rows.append({"line": role, "n_features": sum(i["n"] for i in items),
                     "outside_m2": area, "outside_ha": area / overlay.HA_M2,
                     "outside_mu": area / overlay.MU_M2, "line_m2": line_m2,
                     "outside_share": area / line_m2 if line_m2 > 0 else np.nan,
                     "geometry": geometry})
    columns = ["line", "n_features", "outside_m2", "outside_ha", "outside_mu", "line_m2",
               "outside_share", "geometry"]
    return gpd.GeoDataFrame(pd.DataFrame(rows, columns=columns), geometry="geometry", crs=crs)
