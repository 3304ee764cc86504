"""Read back what a ``check`` wrote: its ``results.gpkg`` and ``manifest.json``.

Used to compare two runs (:func:`spatialplan.compare`). Only a folder written by ``check`` (or
``demo``), or its ``results.gpkg``, is accepted: anything else is a clear error, never a
guess.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio

from spatialplan.errors import DataSourceError

log = logging.getLogger(__name__)

__all__ = ["CheckOutput", "read_check_output"]

#: the largest manifest read (a check's is a few kB)
_MANIFEST_LIMIT = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class CheckOutput:
    """The tables of one check, as read back from its output.

    Attributes
    ----------
    source
        The folder or GeoPackage named.
    projects
        The ``projects`` layer (one row per input project, the site as geometry).
    township_stats
        The ``township_stats`` layer without its geometry (empty when the run wrote none).
    manifest
        ``manifest.json`` beside the GeoPackage, or ``None`` when a bare GeoPackage was given
        and none lies beside it.
    """

    source: Path
    projects: gpd.GeoDataFrame
    township_stats: pd.DataFrame
    manifest: dict[str, Any] | None

    @property
    def crs(self) -> Any:
        """Return the analysis CRS of the run (that of its ``projects`` layer)."""
        return self.projects.crs

    @property
    def plan(self) -> dict[str, Any]:
        """Return the plan entry of the manifest (``name``, ``path``, ``as_of``; may be empty)."""
        plan = (self.manifest or {}).get("plan")
        return plan if isinstance(plan, dict) else {}


def read_check_output(path: str | os.PathLike) -> CheckOutput:
    """Read the projects and township statistics a ``check`` wrote.

    Parameters
    ----------
    path
        An output folder of ``check`` (holding ``results.gpkg`` and ``manifest.json``), or the
        ``results.gpkg`` itself (its ``manifest.json`` is read when it lies beside it).

    Returns
    -------
    CheckOutput
        The run's tables.

    Raises
    ------
    DataSourceError
        The path does not exist, or is not a ``check`` output: a folder without
        ``results.gpkg`` or ``manifest.json``, a file that is not a GeoPackage with a
        ``projects`` layer, or an unreadable manifest.
    """
    given = Path(path)
    if given.is_dir():
        gpkg, manifest_path = given / "results.gpkg", given / "manifest.json"
        missing = [p.name for p in (gpkg, manifest_path) if not p.is_file()]
        if missing:
            raise DataSourceError(
                f"{given} is not an output folder of `spatialplan check`: it has no "
                f"{' and no '.join(missing)}. Give the folder a check wrote (--out) or its "
                "results.gpkg.")
    elif given.is_file():
        gpkg, manifest_path = given, given.with_name("manifest.json")
    else:
        raise DataSourceError(f"{given} does not exist. Give an output folder of "
                              "`spatialplan check` or its results.gpkg.")
    layers = _layers(gpkg)
    if "projects" not in layers:
        raise DataSourceError(
            f"{gpkg} is not a results.gpkg of `spatialplan check`: it has no `projects` layer "
            f"(layers: {', '.join(sorted(layers)) or 'none'}).")
    projects = pyogrio.read_dataframe(gpkg, layer="projects")
    stats = (pd.DataFrame(pyogrio.read_dataframe(gpkg, layer="township_stats",
                                                 read_geometry=False))
             if "township_stats" in layers else pd.DataFrame({"township_code": []}))
    manifest = _manifest(manifest_path) if manifest_path.is_file() else None
    log.info("read %s: %d projects, %d townships", given, len(projects), len(stats))
    return CheckOutput(source=given, projects=projects, township_stats=stats, manifest=manifest)


def _layers(gpkg: Path) -> set[str]:
    """Return the layer names of a GeoPackage (refusing anything else)."""
    with gpkg.open("rb") as f:
        head = f.read(16)
    if head != b"SQLite format 3\x00":
        raise DataSourceError(f"{gpkg} is not a GeoPackage (a results.gpkg of `spatialplan "
                              "check`).")
    try:
        return {str(name) for name, _ in pyogrio.list_layers(gpkg)}
    except pyogrio.errors.DataSourceError as exc:
        raise DataSourceError(f"{gpkg} cannot be read as a GeoPackage: {exc}") from exc


def _manifest(path: Path) -> dict[str, Any]:
    """Read ``manifest.json`` (a JSON object of a check)."""
    if path.stat().st_size > _MANIFEST_LIMIT:
        raise DataSourceError(f"{path} is larger than a check's manifest "
                              f"({_MANIFEST_LIMIT // 2**20} MiB); it is not one.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataSourceError(f"{path} is not a manifest of `spatialplan check` "
                              f"(not JSON: {exc}).") from exc
    if not isinstance(data, dict) or "outputs" not in data:
        raise DataSourceError(f"{path} is not a manifest of `spatialplan check` (no "
                              "`outputs`).")
    return data
