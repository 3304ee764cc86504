"""The write side of a check: every deliverable of a :class:`CheckResult`, all or nothing.

:func:`write_check` writes the chosen outputs into a staging folder and moves them into place
only when all succeeded; :func:`build_manifest` describes the run for audit; :func:`check_map` and
:func:`check_layouts` draw the web map and the print layout. Nothing here computes a verdict:
the runners (:mod:`spatialplan.pipeline.run`, :mod:`spatialplan.pipeline.engine`) do, and this
module never imports them.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import platform
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from spatialplan._version import __version__
from spatialplan.errors import SpatialPlanError
from spatialplan.pipeline.result import (
    CheckResult,
    deferred_note,
    deferred_roles,
    layer_data,
    layer_features,
    plan_townships,
    result_date,
)

__all__ = [
    "OUTPUT_KINDS",
    "build_manifest",
    "check_layouts",
    "check_map",
    "plan_inputs",
    "publish_check",
    "result_tables",
    "write_check",
]

log = logging.getLogger(__name__)

#: the deliverables :func:`write_check` can produce
OUTPUT_KINDS = ("gpkg", "stats_tables", "schedule", "report", "map", "layout", "terrain")


def plan_inputs(plan) -> list[Path]:
    """List every input file of a plan.

    The plan itself, layers, rasters, the rulebook, the plug-in files it names and the user's
    facility catalogue; a layer read from a database is no file (see :func:`_database_inputs`).
    """
    from spatialplan.io.postgis import is_postgres

    paths = [Path(plan.path)]
    paths += [Path(layer.source.path) for layer in plan.layers.values()
              if not is_postgres(layer.source.path)]
    paths += [Path(r.path) for r in plan.rasters.values()]
    rules_path = getattr(plan, "rules_path", None)
    if rules_path:
        paths.append(Path(rules_path))
    paths += [Path(f["path"]) for f in _plugin_files(plan) if f["path"]]
    catalog_path = getattr(plan, "catalog_path", None)
    if catalog_path:
        paths.append(Path(catalog_path))
    return paths


def _database_inputs(plan) -> list[dict]:
    """Describe the layers read from a database: source (masked), table, rows read, extent.

    A table has no file hash: the manifest records what was read of it instead (the rows read
    and their extent in the analysis CRS, ``None`` when no feature was kept).
    """
    from spatialplan.io.postgis import is_postgres, mask_url

    out = []
    for role, layer in plan.layers.items():
        if is_postgres(layer.source.path):
            data = layer.data
            extent = ([float(v) for v in data.total_bounds] if len(data) else None)
            entry = {"source": mask_url(str(layer.source.path)), "role": role,
                     "table": layer.source.layer, "driver": layer.source.driver,
                     "rows": int(layer.n_in), "extent": extent}
            if getattr(layer, "deferred", False):  # the source's extent: nothing read here
                entry.update(extent=None if layer.extent is None else list(layer.extent),
                             deferred=True)
            out.append(entry)
    return out


def _plugin_files(plan) -> list[dict]:
    """List the plug-in modules of the plan's rulebook: module, path, sha256, rule ids."""
    return list(((plan.rules or {}).get("plugins") or {}).get("files", []))


def _versions() -> dict[str, str]:
    """Versions of spatialplan and the libraries whose behaviour shapes the results."""
    import numpy
    import pyogrio
    import pyproj
    import rasterio
    import shapely

    return {
        "spatialplan": __version__,
        "python": platform.python_version(),
        "geopandas": gpd.__version__,
        "shapely": shapely.__version__,
        "geos": shapely.geos_version_string,
        "pyogrio": pyogrio.__version__,
        "gdal": pyogrio.__gdal_version_string__,
        "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
        "rasterio": rasterio.__version__,
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
    }


def build_manifest(plan, result: CheckResult, outputs: dict[str, Path]) -> dict:
    """Describe a run for audit: inputs with hashes, versions, CRS, tolerances, counts."""
    from spatialplan.io.output import sha256_file
    from spatialplan.io.read import validation_report

    report = validation_report(plan)
    inputs = []
    for path in dict.fromkeys(plan_inputs(plan)):
        inputs.append({"path": str(path), "sha256": sha256_file(path)})
    inputs += _database_inputs(plan)
    manifest: dict[str, Any] = {
        "plan": {"name": plan.name, "path": str(plan.path),
                 "as_of": str(result_date(plan, result))},
        "analysis_crs": plan.crs.to_string(),
        "crs_reason": plan.crs_reason,
        "crs_distortion": (None if plan.crs_distortion is None
                           else plan.crs_distortion.as_dict()),
        "tolerance": result.tolerance,
        "inputs": inputs,
        "layers": report.to_dict(orient="records"),
        "counts": _counts(plan, result),
        "plugins": [dict(f) for f in _plugin_files(plan)],
        "catalog": _catalog_entry(plan),
        "outputs": {name: {"file": p.name} for name, p in sorted(outputs.items())},
        "versions": _versions(),
    }
    note = deferred_note(plan)
    if note is not None:  # only with the dask engine: say what the driver did not read
        manifest["deferred_layers"] = {"roles": deferred_roles(plan), "note": note}
    return manifest


def _catalog_entry(plan) -> dict[str, Any] | None:
    """Describe the facility catalogue the run used: path, sha256, whether it is bundled."""
    from spatialplan.io.output import sha256_file

    catalog = getattr(plan, "catalog", None)
    if catalog is None:
        return None
    user = getattr(plan, "catalog_path", None)
    return {"path": str(catalog.path), "sha256": sha256_file(catalog.path),
            "bundled": user is None, "facility_types": len(catalog.facilities)}


def _counts(plan, result: CheckResult) -> dict[str, Any]:
    """Count features in and out, for the manifest."""
    counts: dict[str, Any] = {
        "townships": len(result.township_stats),
        "line_conflicts": len(result.line_conflicts),
    }
    if result.township_conflicts is not None:
        counts["township_conflicts"] = len(result.township_conflicts)
    if result.projects is not None:
        counts.update({
            "projects_in": int(plan.layers["projects"].n_in),
            "projects_out": len(result.projects),
            "verdicts": result.verdict_counts(),
            "findings": 0 if result.findings is None else len(result.findings),
        })
    return counts


def write_check(
    plan,
    result: CheckResult,
    out_dir: str | os.PathLike,
    *,
    outputs: Collection[str] = OUTPUT_KINDS,
    township: str | None = None,
    font: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Write the deliverables of a check into ``out_dir``, all or nothing.

    The files are independent, so they are written by up to
    :func:`spatialplan.core._parallel.n_threads` threads (``SPATIALPLAN_THREADS=1``: one after the
    other); the GeoPackage, the web map and the layout map (pyogrio holds the GIL; folium,
    matplotlib) first, in the calling thread. Each file's name is known before it is written,
    so the report lists the files written before it in a serial run and the manifest every
    output. A failure raises the error of the first failing file in that order (the one a
    serial run raises) and publishes nothing. On success the folder holds this run as a whole:
    the files of the previous run's manifest that this run did not write are removed when
    unchanged (:func:`spatialplan.io.output.staged_output`); ``manifest.json`` lists every output
    with its sha256.

    Parameters
    ----------
    plan
        The plan that was checked.
    result
        What :func:`~spatialplan.pipeline.run.run_check` returned.
    out_dir
        Output folder (created; refused if it holds an input).
    outputs
        Which deliverables to write, from :data:`OUTPUT_KINDS`; ``manifest.json`` always is.
    township
        Township code for the layout map; default every township (one page each).
    font
        CJK font file or family of the layout map (default: see
        :func:`spatialplan.render.layout.find_cjk_font`).

    Returns
    -------
    dict
        Output name → final path, in the order the files are listed (GeoPackage, statistics
        tables, 时序表, terrain, map, layout, report, manifest).
    """
    from spatialplan.io import output

    unknown = set(outputs) - set(OUTPUT_KINDS)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; choose from {OUTPUT_KINDS}")
    out = output.check_output_dir(out_dir, plan_inputs(plan))
    with output.staged_output(out) as stage:
        jobs = _write_jobs(plan, result, stage, out, outputs=outputs, township=township,
                          font=font)
        written = {name: path for job in jobs for name, path in job.files.items()}
        manifest: dict = {}
        jobs.append(_Job({}, lambda: manifest.update(build_manifest(plan, result, written)),
                         first=True))
        names = [path.name for path in written.values()] + ["manifest.json"]
        log.info("writing %d files into %s: %s", len(names), out, ", ".join(names))
        if deferred_roles(plan):
            log.info("%s", deferred_note(plan))
        with _Checksums(stage) as checksums:
            _run_jobs(jobs, done=checksums.start)
            checksums.add_to(manifest["outputs"])
        output.write_json(manifest, stage / "manifest.json")
        written["manifest"] = out / "manifest.json"
    return written


class _Checksums:
    """The sha256 of each output, hashed in a background thread as soon as it is written.

    ``hashlib`` releases the GIL while it hashes, so the outputs already written are hashed
    while the others are still being built (Python, holding the GIL) instead of all at the end.
    The manifest lists each output with its sha256 (:meth:`add_to`); the next run into the
    folder removes the files of this manifest that it does not write itself, but only while
    their checksum matches (:func:`spatialplan.io.output.staged_output`). Leaving the block
    cancels the hashes not started and waits for the running one.
    """

    def __init__(self, stage: Path) -> None:
        self._stage = stage
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spatialplan-hash")
        self._digests: dict[str, Future] = {}

    def start(self, job: _Job) -> None:
        """Start hashing the files ``job`` has written (called once it succeeded)."""
        from spatialplan.io.output import sha256_file

        for path in job.files.values():
            self._digests[path.name] = self._pool.submit(sha256_file, self._stage / path.name)

    def add_to(self, outputs: dict[str, dict]) -> None:
        """Add each output's sha256 to its manifest entry; raise the first entry's failure.

        Every output was hashed: each belongs to a job, and every job succeeded.
        """
        for entry in outputs.values():
            entry["sha256"] = self._digests[entry["file"]].result()

    def __enter__(self) -> _Checksums:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclasses.dataclass(frozen=True)
class _Job:
    """One file (or pair) of :func:`write_check`: its ``written`` entries and its writer.

    ``alone``: written in the calling thread before the others start. The GeoPackage is: pyogrio
    holds the GIL while GDAL writes a layer (seconds), which stalls every other writer; so
    are the web map and the layout map (folium, matplotlib). ``weight``: cells written, to start
    the largest tables first. ``first``: started before the tables when threaded: the
    manifest, which hashes the inputs mostly without the GIL, beside the tables' Python work
    rather than after it, and the report, whose 0.3 s (10⁶ parcels) otherwise ended the run
    alone after the tables.
    """

    files: dict[str, Path]
    write: Callable[[], object]
    alone: bool = False
    weight: int = 0
    first: bool = False


def _write_jobs(plan, result: CheckResult, stage: Path, out: Path, *,
                outputs: Collection[str], township: str | None,
                font: str | os.PathLike | None = None) -> list[_Job]:
    """List the writers of the chosen deliverables, in the order of ``written``."""
    from spatialplan.io import output

    jobs = []
    if "gpkg" in outputs:
        jobs.append(_Job({"results": out / "results.gpkg"}, functools.partial(
            output.write_results, stage, result_tables(result)), alone=True))
    if "stats_tables" in outputs:
        jobs += _write_stats_tables(result, stage, out, catalog=plan.catalog)
    if result.projects is None:
        outputs = [k for k in outputs if k in ("gpkg", "stats_tables")]
    if "schedule" in outputs:
        jobs += _write_schedule(result, stage, out)
    if "terrain" in outputs and not result.terrain.empty:
        from spatialplan.render._labels import chinese_headers

        terrain = chinese_headers(result.terrain.rename_axis("township_code").reset_index())
        jobs.append(_Job({"terrain_stats": out / "terrain_stats.csv"}, functools.partial(
            output.write_table, terrain, stage / "terrain_stats.csv"),
            weight=result.terrain.size))
    if "map" in outputs:
        jobs.append(_write_map(plan, result, stage, out))
    if "layout" in outputs:
        jobs.append(_write_layout(plan, result, stage, out, township=township, font=font))
    if "report" in outputs:
        before = {name: path for job in jobs for name, path in job.files.items()}
        jobs.append(_write_report(plan, result, stage, out, before))
    return jobs


def _run_jobs(jobs: Sequence[_Job], *, done: Callable[[_Job], object] | None = None) -> None:
    """Run every job: first the ``alone`` ones in order, then the others in threads.

    The others run in up to :func:`~spatialplan.core._parallel.n_threads` threads, the
    ``first`` ones first, then the largest; with one thread, in list order. ``done`` is called
    with each job that succeeded, in the thread that ran it.

    Raises the error of the first failing job in list order, the one a serial run raises:
    after a failure only the jobs before it still run (one of them may fail too). Nothing is
    still writing into the staging folder when this returns or raises.
    """
    from spatialplan.core._parallel import n_threads

    errors: dict[int, BaseException] = {}
    for i, job in enumerate(jobs):
        if job.alone and not errors:
            _run_job(job, i, errors, done)
    rest = [i for i, job in enumerate(jobs) if not job.alone and i < _first(errors)]
    if min(n_threads(), len(rest)) <= 1:
        for i in rest:
            if i < _first(errors):
                _run_job(jobs[i], i, errors, done)
    else:
        order = sorted(rest, key=lambda i: (not jobs[i].first, -jobs[i].weight))
        _run_in_threads(jobs, order, errors, threads=min(n_threads(), len(rest)), done=done)
    if errors:
        raise errors[min(errors)]


def _run_in_threads(jobs: Sequence[_Job], order: Sequence[int],
                    errors: dict[int, BaseException], *, threads: int,
                    done: Callable[[_Job], object] | None = None) -> None:
    """Run ``jobs[i]`` for ``i`` in ``order`` in a thread pool, keeping errors by index."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spatialplan-write") as pool:
        futures = {pool.submit(_run_job, jobs[i], i, errors, done): i for i in order}
        try:
            for finished in as_completed(futures):
                if not finished.cancelled():
                    finished.result()  # re-raises only what _run_job does not keep
                for future, i in futures.items():
                    if i > _first(errors):
                        future.cancel()  # no use once an earlier job failed
        except BaseException:  # an interrupt: drop what has not started, wait for the rest
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _run_job(job: _Job, index: int, errors: dict[int, BaseException],
             done: Callable[[_Job], object] | None = None) -> None:
    """Run one job; its error is kept under its index (raised by :func:`_run_jobs`).

    ``done(job)`` follows a success.
    """
    try:
        job.write()
    except OSError as exc:  # a writer that does not name its file: the job's first one
        from spatialplan.io.output import output_error

        errors[index] = output_error(exc, next(iter(job.files.values()), "manifest.json"))
        errors[index].__cause__ = exc
        return
    except Exception as exc:
        errors[index] = exc
        return
    if done is not None:
        done(job)


def _first(errors: dict[int, BaseException]) -> float:
    """Index of the first failed job (infinity while none failed)."""
    return min(errors, default=math.inf)


def result_tables(result: CheckResult) -> dict[str, pd.DataFrame]:
    """Return the tables of ``results.gpkg`` (and of ``--publish``), name → frame.

    Tables the run did not produce (no projects layer: no ``projects``, ``findings``) are left
    out.
    """
    tables = {
        "projects": result.projects,
        "findings": result.findings,
        "township_stats": result.township_stats,
        "line_conflicts": result.line_conflicts,
        "outside_townships": result.outside_townships,
        "county_summary": result.county_summary,
        "township_conflicts": result.township_conflicts,
        "village_reach": result.village_reach,
        "village_seat": result.village_seat,
    }
    return {k: v for k, v in tables.items() if v is not None}


#: every table :func:`publish_check` may write: an earlier run's are replaced, never left over
PUBLISHED_TABLES = ("projects", "findings", "township_stats", "line_conflicts",
                    "outside_townships", "county_summary", "township_conflicts",
                    "village_reach", "village_seat", "manifest")


def publish_check(result: CheckResult, url: str, *, schema: str = "spatialplan",
                  manifest: dict | None = None) -> list[str]:
    """Publish the result tables and the manifest into a PostGIS schema, all or none.

    The tables of ``results.gpkg`` (:func:`result_tables`) and ``manifest`` (one row per key)
    replace those of the previous run in one transaction
    (:func:`spatialplan.io._pg_write.publish_tables`); on failure nothing changes.

    Example
    -------
    >>> publish_check(result, "postgresql://planner@/yzt", schema="xz520123")  # doctest: +SKIP
    """
    from spatialplan.io._pg_write import publish_tables

    return publish_tables(url, result_tables(result), schema=schema, manifest=manifest,
                          replace=PUBLISHED_TABLES)


def _write_stats_tables(result: CheckResult, stage: Path, out: Path, *,
                        catalog=None) -> list[_Job]:
    """Township statistics, line and township conflicts as CSV and XLSX with Chinese headers.

    With a village reach, also ``village_reach`` and ``village_seat``.
    """
    from spatialplan.io import output
    from spatialplan.render._labels import chinese_headers, county_headers, village_headers

    jobs = []
    names = ["township_stats", "line_conflicts", "township_conflicts", "county_summary",
             "village_reach", "village_seat"]
    labelling = {"county_summary": county_headers, "village_reach": village_headers,
                 "village_seat": village_headers}
    for name in names:
        if getattr(result, name) is None:  # no county roll-up, no villages, built by hand
            continue
        table = labelling.get(name, chinese_headers)(getattr(result, name), catalog=catalog)
        for suffix in (".csv", ".xlsx"):
            write = output.write_table if suffix == ".csv" else functools.partial(
                _write_fitted, output.write_table, full_text_in=f"{name}.csv")
            jobs.append(_Job({f"{name}{suffix.replace('.', '_')}": out / f"{name}{suffix}"},
                             functools.partial(write, table, stage / f"{name}{suffix}",
                                               sheet_name=_SHEET_NAMES[name]),
                             weight=table.size * _XLSX_WEIGHT[suffix]))
    return jobs


#: sheet names of the statistics tables (a reader sees the tab)
_SHEET_NAMES = {"township_stats": "乡镇统计", "line_conflicts": "控制线冲突",
                "township_conflicts": "乡镇界线重叠与缝隙", "county_summary": "县域汇总",
                "village_reach": "村庄设施道路可达", "village_seat": "村至镇区驻地"}


def _write_schedule(result: CheckResult, stage: Path, out: Path) -> list[_Job]:
    """Return the jobs that write the 时序表 as XLSX and CSV."""
    from spatialplan.render import schedule

    if result.schedule is None:
        raise ValueError("a result with projects needs its 时序表 (CheckResult.schedule)")
    cells = result.schedule.size
    return [
        _Job({"schedule_xlsx": out / "schedule.xlsx"}, functools.partial(
            _write_fitted, schedule.write_schedule_xlsx, result.schedule,
            stage / "schedule.xlsx", full_text_in="schedule.csv"),
            weight=cells * _XLSX_WEIGHT[".xlsx"]),
        _Job({"schedule_csv": out / "schedule.csv"}, functools.partial(
            schedule.write_schedule_csv, result.schedule, stage / "schedule.csv"),
            weight=cells),
    ]


def _write_fitted(write: Callable[..., Path], table: pd.DataFrame, path: Path, *,
                  full_text_in: str, **options) -> Path:
    """Write an XLSX table (with ``write``), cutting texts over Excel's cell limit.

    A cut text ends with a marker naming ``full_text_in``, the CSV written beside it that
    keeps them whole.
    """
    from spatialplan.io.output import fit_excel_cells

    return write(fit_excel_cells(table, full_text_in=full_text_in), path, **options)


#: an XLSX cell costs about four CSV cells (161,828 x 9 line conflicts: 1.2 s vs 0.26 s)
_XLSX_WEIGHT = {".csv": 1, ".xlsx": 4}


def check_map(plan, result: CheckResult | None = None, **options):
    """Build the folium web map of a plan and (optionally) its check result.

    Parameters
    ----------
    plan
        The plan (its layers are drawn).
    result
        What :func:`~spatialplan.pipeline.run.run_check` returned; projects are coloured by
        verdict with their findings.
    **options
        Passed to :func:`spatialplan.render.webmap.explore` (``basemap``, ``tianditu_key``, ...).

    Returns
    -------
    folium.Map
    """
    from spatialplan.render import webmap

    return webmap.explore(
        townships=layer_data(plan, "townships"),
        redline=layer_features(plan, "redline"),
        farmland=layer_features(plan, "farmland"),
        udb=layer_features(plan, "udb"),
        parcels=layer_features(plan, "parcels"),
        conflicts=None if result is None else result.line_conflicts,
        projects=layer_data(plan, "projects") if result is None else result.projects,
        findings=None if result is None else result.findings,
        villages=layer_data(plan, "villages"),
        village_reach=None if result is None else result.village_reach,
        catalog=plan.catalog,
        **options,
    )


def check_layouts(plan, result: CheckResult, *, township: str | None = None,
                  font: str | os.PathLike | None = None) -> list:
    """Draw the 8+X 项目布局图 of every township (or one), as matplotlib figures.

    Parameters
    ----------
    plan
        The plan that was checked.
    result
        What :func:`~spatialplan.pipeline.run.run_check` returned.
    township
        A township code; default every township.
    font
        CJK font file or family (default: see :func:`spatialplan.render.layout.find_cjk_font`).

    Returns
    -------
    list of matplotlib.figure.Figure
    """
    return list(_layout_pages(plan, result, township=township, font=font)[1])


def _layout_pages(plan, result: CheckResult, *, township: str | None = None,
                  font: str | os.PathLike | None = None) -> tuple[int, Iterator]:
    """Return how many pages, and the figures of :func:`check_layouts` one at a time.

    One at a time, so that a written page can be freed.
    """
    from spatialplan.render import layout

    townships = plan_townships(plan)
    if township and township not in set(townships["code"]):
        raise SpatialPlanError(f"no township with code {township!r}", path=plan.path,
                               layer="townships",
                               hint=f"choose one of {', '.join(map(str, townships['code']))}")
    codes = [township] if township else list(townships["code"])
    # once for every page (a deferred layer is read whole here)
    redline, farmland, udb, parcels = (layer_features(plan, role) for role in (
        "redline", "farmland", "udb", "parcels"))
    return len(codes), (
        layout.layout_figure(
            code,
            townships=townships,
            redline=redline,
            farmland=farmland,
            udb=udb,
            parcels=parcels,
            projects=result.projects,
            crs_note=f"{plan.crs.name} ({plan.crs.to_string()})",
            sources_note=f"规划数据 / plan: {Path(plan.path).name}",
            date=result_date(plan, result),
            font=font,
        )
        for code in codes
    )


def _write_map(plan, result: CheckResult, stage: Path, out: Path) -> _Job:
    """Return the job writing the folium web map (in the calling thread)."""
    from spatialplan.render import webmap

    def write() -> None:
        webmap.write_map(check_map(plan, result), stage / "map.html")

    return _Job({"map": out / "map.html"}, write, alone=True)


def _write_layout(plan, result: CheckResult, stage: Path, out: Path, *,
                  township: str | None, font: str | os.PathLike | None = None) -> _Job:
    """Return the job writing the 8+X 项目布局图: PDF (one page per township) and PNG.

    matplotlib draws in the calling thread.
    """

    def write() -> None:
        from spatialplan.render import layout

        # page by page: the figures (plain matplotlib Figures, not pyplot's) are freed once
        # written, instead of one per township held until the end
        n_pages, pages = _layout_pages(plan, result, township=township, font=font)
        layout.write_layout(pages, stage / "layout.pdf", stage / "layout.png", n_pages=n_pages)

    return _Job({"layout_pdf": out / "layout.pdf", "layout_png": out / "layout.png"}, write,
                alone=True)


def _deferred_fact(plan) -> dict[str, str]:
    """Return the report's run-summary line on the deferred layers (none without them)."""
    note = deferred_note(plan)
    return {} if note is None else {"未读入主进程的图层 layers not read by the driver": note}


def _write_report(plan, result: CheckResult, stage: Path, out: Path,
                  written: dict[str, Path]) -> _Job:
    """Return the job writing the self-contained HTML report.

    ``written``: the files listed before it.
    """
    from spatialplan.io.read import validation_report
    from spatialplan.render import report

    def write() -> None:
        html = report.render_report(
            plan_name=plan.name,
            summary={
                "as_of": str(result_date(plan, result)),
                "analysis_crs": plan.crs.to_string(),
                "crs_reason": plan.crs_reason,
                "verdicts": result.verdict_counts(),
                **_deferred_fact(plan),
            },
            township_stats=result.township_stats,
            line_conflicts=result.line_conflicts,
            projects=result.projects,
            findings=result.findings,
            map_path="map.html" if "map" in written else None,
            tolerance=result.tolerance,
            crs=plan.crs.to_string(),
            inputs=validation_report(plan),
            outputs=written,
            catalog=plan.catalog,
            county_summary=result.county_summary,
            township_conflicts=result.township_conflicts,
            village_reach=result.village_reach,
            village_seat=result.village_seat,
            reach_info=result.reach_info,
        )
        report.write_report(html, stage / "report.html")

    return _Job({"report": out / "report.html"}, write, first=True)
