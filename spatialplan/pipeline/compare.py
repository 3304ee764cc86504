"""Compare two checks (``spatialplan compare BEFORE AFTER``): what changed, and write it.

:func:`compare` reads two ``check`` outputs and returns a :class:`Comparison` (the change
tables of :mod:`spatialplan.analysis.compare` and the warnings); :func:`write_compare` writes
``changes.csv/.xlsx``, ``township_changes.csv/.xlsx``, ``changes.html``, ``changes_map.html``
and ``manifest.json`` into a folder, all or nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from spatialplan._version import __version__

log = logging.getLogger(__name__)

__all__ = ["COMPARE_OUTPUTS", "Comparison", "compare", "write_compare"]

#: the files :func:`write_compare` writes, besides ``manifest.json``
COMPARE_OUTPUTS = ("changes.csv", "changes.xlsx", "township_changes.csv",
                   "township_changes.xlsx", "changes.html", "changes_map.html")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What changed between two checks.

    Attributes
    ----------
    before, after
        The two runs (:class:`spatialplan.io.results.CheckOutput`).
    projects
        One row per project and kind of change
        (:func:`spatialplan.analysis.compare.project_changes`).
    townships
        One row per changed township indicator
        (:func:`spatialplan.analysis.compare.township_changes`).
    warnings
        Why the comparison may mislead (different plans, different analysis CRSs).
    """

    before: Any
    after: Any
    projects: gpd.GeoDataFrame
    townships: pd.DataFrame
    warnings: tuple[str, ...]


def compare(before: str | os.PathLike, after: str | os.PathLike) -> Comparison:
    """Compare two ``check`` outputs: which projects and township indicators changed.

    Parameters
    ----------
    before, after
        Output folders of ``spatialplan check`` (or ``demo``), or their ``results.gpkg``.

    Returns
    -------
    Comparison
        ``projects`` and ``townships`` hold only what changed (see
        :func:`spatialplan.analysis.compare.project_changes`); runs of different plans or
        analysis CRSs are compared with a warning (the sites before are reprojected).

    Raises
    ------
    spatialplan.errors.DataSourceError
        A side is not a ``check`` output.

    Examples
    --------
    >>> import spatialplan as sp  # doctest: +SKIP
    >>> changes = sp.compare("out/2026Q1", "out/2026Q2").projects  # doctest: +SKIP
    """
    from spatialplan.analysis.compare import project_changes, township_changes
    from spatialplan.io.results import read_check_output

    old, new = read_check_output(before), read_check_output(after)
    warnings = _warnings(old, new)
    for text in warnings:
        log.warning("%s", text)
    projects = project_changes(old.projects, new.projects)
    townships = township_changes(old.township_stats, new.township_stats)
    log.info("compared %s with %s: %d project changes (%d projects), %d township changes",
             old.source, new.source, len(projects), projects["project_id"].nunique(),
             len(townships))
    return Comparison(before=old, after=new, projects=projects, townships=townships,
                      warnings=tuple(warnings))


def _warnings(old, new) -> list[str]:
    """Say why two runs may not be comparable: other plans, other analysis CRSs."""
    out = []
    a, b = old.plan, new.plan
    name_a, name_b = a.get("name"), b.get("name")
    if name_a and name_b and name_a != name_b:
        out.append(f"the two runs checked different plans ({name_a!r} and {name_b!r}): "
                   "projects are still matched by project_id")
    if old.crs is not None and new.crs is not None and old.crs != new.crs:
        out.append(f"the two runs used different analysis CRSs ({old.crs.to_string()} and "
                   f"{new.crs.to_string()}): the sites before were reprojected to the CRS "
                   "after before comparing them, and their areas and distances differ slightly")
    return out


def write_compare(comparison: Comparison, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the changes into ``out_dir``, all or nothing.

    Parameters
    ----------
    comparison
        What :func:`compare` returned.
    out_dir
        Output folder (created; refused when it holds either run's ``results.gpkg``).

    Returns
    -------
    dict
        File name → final path, ``manifest.json`` last.
    """
    from spatialplan.io import output

    sources = [comparison.before.source, comparison.after.source]
    out = output.check_output_dir(out_dir, [_gpkg(s) for s in sources])
    with output.staged_output(out) as stage:
        written = _write_files(comparison, stage)
        manifest = {"command": "compare", "spatialplan": __version__,
                    "before": _side(comparison.before), "after": _side(comparison.after),
                    "counts": {"project_changes": len(comparison.projects),
                               "projects_changed": int(comparison.projects["project_id"]
                                                       .nunique()),
                               "township_changes": len(comparison.townships)},
                    "warnings": list(comparison.warnings),
                    "outputs": {name: {"file": name, "sha256": output.sha256_file(stage / name)}
                                for name in written}}
        output.write_json(manifest, stage / "manifest.json")
    return {name: out / name for name in [*written, "manifest.json"]}


def _gpkg(source: Path) -> Path:
    return source / "results.gpkg" if source.is_dir() else source


def _side(run) -> dict[str, Any]:
    return {"source": str(run.source), "plan": run.plan,
            "analysis_crs": run.crs.to_string() if run.crs is not None else None,
            "projects": len(run.projects), "townships": len(run.township_stats)}


def _write_files(comparison: Comparison, stage: Path) -> list[str]:
    """Write the tables, the page and the map into the staging folder."""
    from spatialplan.io import output
    from spatialplan.render.changes import changes_map, render_changes
    from spatialplan.render.report import write_report
    from spatialplan.render.webmap import write_map

    tables = {"changes": (_table(comparison.projects), "项目变化"),
              "township_changes": (comparison.townships, "乡镇指标变化")}
    for name, (table, sheet) in tables.items():
        output.write_table(table, stage / f"{name}.csv")
        output.write_table(output.fit_excel_cells(table, full_text_in=f"{name}.csv"),
                           stage / f"{name}.xlsx", sheet_name=sheet)
    html = render_changes(projects=_table(comparison.projects), townships=comparison.townships,
                          before=_label(comparison.before), after=_label(comparison.after),
                          warnings=comparison.warnings, map_file="changes_map.html")
    write_report(html, stage / "changes.html")
    write_map(changes_map(comparison.projects), stage / "changes_map.html")
    return list(COMPARE_OUTPUTS)


def _table(projects: gpd.GeoDataFrame) -> pd.DataFrame:
    """Return the project changes without their geometries (for CSV, XLSX and HTML)."""
    return pd.DataFrame(projects.drop(columns=["geometry", "geometry_before"]))


def _label(run) -> dict[str, Any]:
    plan = run.plan
    return {"来源 source": str(run.source), "规划 plan": plan.get("name", ""),
            "核查日期 as of": plan.get("as_of", ""),
            "坐标系 CRS": run.crs.to_string() if run.crs is not None else "",
            "项目数 projects": len(run.projects)}
