"""Control lines on townships: statistics, coverage gaps and conflicts between the lines.

The three control lines (生态保护红线 ``redline``, 永久基本农田 ``farmland``, 城镇开发边界
``udb``) and the optional survey cultivated land (``cropland``) are overlaid on the township
outlines:

- :func:`township_stats`: one row per township with its planar and ellipsoidal area and, per
  line, the area inside it (planar and ellipsoidal, m², 公顷, 亩) and its share of the
  township (ellipsoidal, as the official figures);
- :func:`outside_townships`: per line, the area outside every township (gaps in the outlines),
  so that no control-line area is lost;
- :func:`line_conflicts`: one polygon row per overlap between two lines, or between two
  features of one line, split by township, with a ``kind`` of ``conflict`` or
  ``boundary_noise`` (below the tolerance);
- :func:`township_conflicts`: overlaps and enclosed gaps between the township outlines, and
  :func:`township_double_counted`: per township, the line area inside its overlaps with other
  townships (counted in both rows of :func:`township_stats`);
- :func:`control_line_report`: all three at once, checking and preparing every layer once
  (validation, grid, coverage certificate, township outline), as a run should.

All functions take GeoDataFrames in one projected metric CRS (the analysis CRS), never touch
paths and never print. Coordinates are put on a 1 mm precision grid, overlays fall back to
GEOS snap-rounding on that grid when a floating-point overlay fails or is implausible, and a
pair of polygons only carries area when the exact DE-9IM predicates say their interiors
intersect (see :mod:`spatialplan.analysis._overlay_geom`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from spatialplan.analysis import _overlay_geom as _geom
from spatialplan.analysis import _townships as _towns
from spatialplan.analysis._overlay_lines import _Line, _prepare_lines, _Zones
from spatialplan.core._parallel import side_by_side
from spatialplan.errors import CRSError, FieldError, GeometryError, RulebookError

__all__ = [
    "CONTROL_LINES",
    "DEFAULT_GRID_SIZE",
    "DEFAULT_TOLERANCE",
    "HA_M2",
    "MU_M2",
    "ControlLineReport",
    "classify_overlap",
    "control_line_report",
    "line_conflicts",
    "outside_townships",
    "resolve_tolerance",
    "township_conflicts",
    "township_double_counted",
    "township_stats",
]

log = logging.getLogger(__name__)

#: the three control lines, in report order
CONTROL_LINES = ("redline", "farmland", "udb")
#: every line :func:`township_stats` can measure (``cropland`` is optional survey data)
STAT_LINES = (*CONTROL_LINES, "cropland")
#: square metres in one 公顷 (hectare)
HA_M2 = 10_000.0
#: square metres in one 亩
MU_M2 = 2000.0 / 3.0
#: precision grid of every overlay (metres): 1 mm
DEFAULT_GRID_SIZE = 0.001
#: overlap tolerance when the rulebook gives none (``rules.toml [tolerance]``)
DEFAULT_TOLERANCE: Mapping[str, float] = {"min_overlap_m2": 1.0, "min_overlap_share": 0.0}


# ---------------------------------------------------------------------------------------------
# input checks


def resolve_tolerance(tolerance: Mapping[str, object] | None = None) -> dict[str, float]:
    """Merge a ``[tolerance]`` table with the defaults and check its values.

    Parameters
    ----------
    tolerance
        Mapping with ``min_overlap_m2`` (m²) and/or ``min_overlap_share`` (0-1); a ``source``
        key (the rulebook's citation) and other keys are ignored. ``None`` means the defaults.

    Returns
    -------
    dict
        ``{"min_overlap_m2": float, "min_overlap_share": float}``.

    Examples
    --------
    >>> resolve_tolerance({"min_overlap_m2": 200, "source": "team practice"})
    {'min_overlap_m2': 200.0, 'min_overlap_share': 0.0}
    """
    merged = dict(DEFAULT_TOLERANCE)
    for key in DEFAULT_TOLERANCE:
        if tolerance is None or key not in tolerance:
            continue
        value = tolerance[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0
        ):
            raise RulebookError(
                f"tolerance {key} must be a non-negative number, got {value!r}",
                layer="tolerance",
                hint=f"set [tolerance] {key} to a number such as {DEFAULT_TOLERANCE[key]}",
            )
        merged[key] = float(value)
    if merged["min_overlap_share"] > 1:
        raise RulebookError(
            f"tolerance min_overlap_share is a share (0-1), got {merged['min_overlap_share']}",
            layer="tolerance",
            hint="write 1 % as 0.01",
        )
    return merged


def _check_grid_size(grid_size: float | None) -> float | None:
    if grid_size is None:
        return None
    if not (isinstance(grid_size, int | float) and math.isfinite(grid_size) and grid_size > 0):
        raise GeometryError(
            f"grid_size must be a positive number of metres or None, got {grid_size!r}",
            hint="use the default 0.001 (1 mm)",
        )
    return float(grid_size)


def _check_crs(gdf: gpd.GeoDataFrame, role: str, expected: CRS | None = None) -> CRS:
    """Return the layer's CRS, which must be projected (metric) and equal ``expected`` if given."""
    crs = gdf.crs
    if crs is None:
        raise CRSError(
            f"the {role} layer has no CRS",
            layer=role,
            hint="read layers with spatialplan.read_plan, which reprojects them to the analysis "
            "CRS (a CGCS2000 Gauss-Krüger zone)",
        )
    if not crs.is_projected:
        raise CRSError(
            f"the {role} layer is in a geographic CRS ({crs.name}); areas are never measured "
            "in degrees",
            layer=role,
            hint="reproject to the analysis CRS, e.g. gdf.to_crs('EPSG:4545') for CGCS2000 "
            "3-degree Gauss-Krüger zone 36",
        )
    if expected is not None and not crs.equals(expected):
        raise CRSError(
            f"the {role} layer is in {crs.name}, not in the analysis CRS {expected.name}",
            layer=role,
            hint="reproject every layer to the analysis CRS before the overlay; "
            "spatialplan never reprojects silently",
        )
    return crs


def _require_columns(gdf: gpd.GeoDataFrame, role: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in gdf.columns]
    if missing:
        raise FieldError(
            f"the {role} layer lacks the field(s) {', '.join(missing)}",
            layer=role,
            hint="map the source fields to the canonical names in the plan's fields table "
            "(e.g. code ← XZQDM, name ← XZQMC)",
        )


def _line_layers(
    layers: Mapping[str, gpd.GeoDataFrame | None], crs: CRS | None
) -> tuple[dict[str, gpd.GeoDataFrame], CRS | None]:
    """Return the given (non-None) line layers, each checked against the analysis CRS."""
    given = {}
    for role, gdf in layers.items():
        if gdf is None:
            continue
        if not isinstance(gdf, gpd.GeoDataFrame):
            raise GeometryError(
                f"the {role} layer must be a GeoDataFrame, got {type(gdf).__name__}",
                layer=role,
            )
        crs = _check_crs(gdf, role, crs)
        given[role] = gdf
    return given, crs


def _checked_inputs(
    townships: gpd.GeoDataFrame,
    lines: Mapping[str, gpd.GeoDataFrame | None],
    *,
    grid_size: float | None,
    columns: tuple[str, ...] = (),
) -> tuple[float | None, CRS, dict[str, gpd.GeoDataFrame]]:
    """Check the grid, the townships and the given line layers.

    The townships need a projected CRS and ``columns``, the line layers the townships' CRS; return
    ``(grid_size, crs, given lines)``.
    """
    grid_size = _check_grid_size(grid_size)
    crs = _check_crs(townships, "townships")
    _require_columns(townships, "townships", columns)
    given, _ = _line_layers(lines, crs)
    return grid_size, crs, given


def _measure_columns(prefix: str, area: np.ndarray, whole: np.ndarray | None) -> dict:
    cols = {
        f"{prefix}_m2": area,
        f"{prefix}_ha": area / HA_M2,
        f"{prefix}_mu": area / MU_M2,
    }
    if whole is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"{prefix}_share"] = np.where(whole > 0, area / whole, np.nan)
    return cols


def _line_columns(role: str, planar: np.ndarray, ellipsoidal: np.ndarray,
                  township_ellipsoidal: np.ndarray) -> dict:
    """Return a line's columns: planar and ellipsoidal m², 公顷, 亩, and its ellipsoidal share."""
    cols = _measure_columns(role, planar, None)
    geod = _measure_columns(f"{role}_ellipsoidal", ellipsoidal, township_ellipsoidal)
    cols.update(geod)
    cols[f"{role}_share"] = cols.pop(f"{role}_ellipsoidal_share")
    return cols


# ---------------------------------------------------------------------------------------------
# township statistics


def township_stats(
    townships: gpd.GeoDataFrame,
    *,
    redline: gpd.GeoDataFrame | None = None,
    farmland: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
    cropland: gpd.GeoDataFrame | None = None,
    tolerance: Mapping[str, object] | None = None,
    grid_size: float | None = DEFAULT_GRID_SIZE,
    ellipsoidal_lines: bool = True,
) -> gpd.GeoDataFrame:
    """Area of each control line inside each township.

    A line's patches are dissolved within each township before measuring, so overlapping
    patches are never counted twice (cheaply: pieces of non-overlapping patches are summed,
    only townships where two overlapping patches meet are recomputed from a union).

    Parameters
    ----------
    townships
        Township outlines with ``code`` and ``name`` (and ``feature_id``), in a projected CRS.
    redline, farmland, udb, cropland
        Line layers in the same CRS, or ``None``. ``cropland`` is the optional survey
        cultivated land.
    tolerance
        The rulebook's ``[tolerance]`` table; recorded in ``result.attrs["tolerance"]``.
    grid_size
        Precision grid in metres (default 1 mm): coordinates are snapped to it, and it is the
        snap-rounding fallback of a failed overlay. ``None`` leaves coordinates as they are
        (the DE-9IM touch guard still applies).
    ellipsoidal_lines
        Compute the ellipsoidal figures of every line (geodesic area on the CGCS2000 ellipsoid
        of the dissolved line inside the township, as 三调 ``TBMJ`` and the 一张图 report
        areas) and the shares from them (default; a certified coverage is measured on its
        certificate's pieces, ~30 % more time on 2·10⁵ parcels; an overlapping layer on every
        piece). ``False`` skips them: the ``L_ellipsoidal_*`` and ``L_share`` columns are
        then NaN.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per township, in input order and with the input index, township geometry:
        ``township_code``, ``township_name``, ``feature_id``, ``area_m2`` (planar, analysis
        CRS), ``area_ellipsoidal_m2`` (CGCS2000 ellipsoid), and for each line ``L`` in
        ``redline``, ``farmland``, ``udb`` (and ``cropland`` when given): ``L_m2``, ``L_ha``,
        ``L_mu`` (planar, 1 亩 = 2000/3 m²), ``L_ellipsoidal_m2``, ``L_ellipsoidal_ha``,
        ``L_ellipsoidal_mu`` (CGCS2000 ellipsoid) and ``L_share`` (``L_ellipsoidal_m2`` /
        ``area_ellipsoidal_m2``). A control line that was not given has NaN columns (unknown,
        not zero). ``attrs`` holds ``tolerance``, ``grid_size_m`` and ``lines``.

    Raises
    ------
    CRSError
        A layer has no CRS, a geographic CRS, or a CRS other than the townships'.
    FieldError
        ``townships`` lacks ``code`` or ``name``.
    GeometryError
        A layer holds non-polygon or invalid geometries.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> towns = gpd.GeoDataFrame({"feature_id": ["townships:0"], "code": ["520100001"],
    ...     "name": ["甲镇"]}, geometry=[box(0, 0, 1000, 1000)], crs="EPSG:4545")
    >>> farm = gpd.GeoDataFrame({"feature_id": ["farmland:0"]},
    ...     geometry=[box(-500, 0, 500, 300)], crs="EPSG:4545")
    >>> stats = township_stats(towns, farmland=farm)
    >>> float(stats.loc[0, "farmland_m2"]), round(float(stats.loc[0, "farmland_share"]), 4)
    (150000.0, 0.15)
    """
    tol = resolve_tolerance(tolerance)
    grid_size, crs, given = _checked_inputs(
        townships, {"redline": redline, "farmland": farmland, "udb": udb, "cropland": cropland},
        grid_size=grid_size, columns=("code", "name"))
    zones = _Zones(townships, grid_size)
    return _stats_frame(zones, _prepare_lines(given, grid_size), crs=crs, tolerance=tol,
                        grid_size=grid_size, ellipsoidal=ellipsoidal_lines)


def _stats_frame(
    zones: _Zones,
    lines: Mapping[str, _Line],
    *,
    crs: CRS,
    tolerance: dict[str, float],
    grid_size: float | None,
    ellipsoidal: bool,
) -> gpd.GeoDataFrame:
    """Compute the :func:`township_stats` table of prepared layers."""
    townships = zones.gdf
    area = zones.area
    whole = _geom.geodesic_areas(zones.geoms, crs)
    columns: dict[str, object] = {
        "township_code": townships["code"].to_numpy(),
        "township_name": townships["name"].to_numpy(),
        "feature_id": zones.ids,
        "area_m2": area,
        "area_ellipsoidal_m2": whole,
    }
    unknown = np.full(len(area), np.nan)
    for role in STAT_LINES:
        if role not in lines:
            if role in CONTROL_LINES:
                columns.update(_line_columns(role, unknown, unknown, whole))
            continue
        log.debug("township_stats: %s (%d features)", role, len(lines[role].geoms))
        line_area, line_geod = _line_in_zones(
            zones, lines[role], crs=crs, grid_size=grid_size, ellipsoidal=ellipsoidal
        )
        columns.update(_line_columns(role, line_area, unknown if line_geod is None else line_geod,
                                     whole))
    stats = gpd.GeoDataFrame(
        columns, geometry=townships.geometry.to_numpy(), crs=crs, index=townships.index
    )
    stats.attrs.update(tolerance=tolerance, grid_size_m=grid_size, lines=sorted(lines))
    log.info("township statistics: %d townships, lines %s", len(stats), ", ".join(lines) or "-")
    return stats


def _line_in_zones(
    zones: _Zones,
    line: _Line,
    *,
    crs: CRS,
    grid_size: float | None,
    ellipsoidal: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Dissolved planar (and optionally ellipsoidal) area of one line inside each zone.

    Copies of an earlier feature are left out (they add nothing to the union). A certified
    layer is measured on its certificate's pieces cut by the zones, both areas
    (:func:`_coverage_in_zones`). Any other layer is measured on its clipped pieces, with only
    the overlapping patches dissolved (:func:`_overlay_geom.dissolved_zone_areas`); the
    ellipsoidal areas are those of the same pieces and unions (:func:`_geodesic_in_zones`).
    The planar figures are the same with or without the ellipsoidal ones.
    """
    patches = line.distinct
    certified, parts, _ = line.certificate
    areas = None
    if certified:
        areas, geod = _coverage_in_zones(zones.geoms, patches, parts, crs=crs,
                                         grid_size=grid_size, ellipsoidal=ellipsoidal)
        if geod is not None or not ellipsoidal:
            return areas, geod
    clip = _geom.clip_to_zones(zones.geoms, patches, grid_size=grid_size,
                               keep_geometry=ellipsoidal, tree=line.tree,
                               zone_area=zones.area, patch_area=line.area)
    planar, dissolved, merged = _geom.dissolved_zone_areas(
        zones.geoms, patches, clip, grid_size=grid_size, overlaps=line.distinct_overlaps,
        only_overlapping=True)
    areas = planar if areas is None else areas
    if not ellipsoidal:
        return areas, None
    return areas, _geodesic_in_zones(len(zones.geoms), clip, dissolved, merged, crs=crs)


def _geodesic_in_zones(n_zones: int, clip: _geom.Clip, dissolved: dict[int, shapely.Geometry],
                       merged: np.ndarray, *, crs: CRS) -> np.ndarray:
    """Ellipsoidal area of the dissolved line in each zone, from its pieces and unions.

    The pieces in no union (``~merged``) add up; each zone's union of overlapping pieces
    (``dissolved``) is added once. :func:`_overlay_geom.geodesic_areas` splits long edges, so
    these sums do not depend on where the line was cut (to < 1e-9).
    """
    assert clip.piece is not None  # clipped with keep_geometry
    piece_geod = _geom.geodesic_areas(clip.piece[~merged], crs)
    geod = np.bincount(clip.zone[~merged], weights=np.nan_to_num(piece_geod),
                       minlength=n_zones).astype(float)
    if dissolved:
        keys = np.fromiter(dissolved, dtype=np.intp)
        union = np.array([dissolved[k] for k in keys], dtype=object)
        geod[keys] += np.nan_to_num(_geom.geodesic_areas(union, crs))
    return geod


def _coverage_in_zones(
    zones: np.ndarray,
    patches: np.ndarray,
    parts: np.ndarray | None,
    *,
    crs: CRS,
    grid_size: float | None,
    ellipsoidal: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sum the planar (and ellipsoidal) area of a certified disjoint coverage in each zone.

    The certificate's pieces are reused (its chunk unions' polygons, small enough to clip once
    per zone): their interiors are disjoint, so the pieces' areas add up, and their shared
    edges, walked once each way, cancel in the geodesic sums. The ellipsoidal areas are
    ``None`` when not asked, or when the pieces are too large to clip and the planar areas
    come from the per-zone boundary path (the caller then clips the patches).
    """
    if parts is None:
        return np.zeros(len(zones)), np.zeros(len(zones)) if ellipsoidal else None
    pieces = _geom.union_zone_pieces(zones, parts, grid_size=grid_size)
    if pieces is None:
        return _geom.coverage_zone_areas(zones, patches, grid_size=grid_size), None
    zone, cut = pieces
    areas = np.bincount(zone, weights=shapely.area(cut), minlength=len(zones)).astype(float)
    if not ellipsoidal:
        return areas, None
    geod = _geom.geodesic_areas(_geom.polygonal_part(cut), crs)
    return areas, np.bincount(zone, weights=np.nan_to_num(geod),
                              minlength=len(zones)).astype(float)


# ---------------------------------------------------------------------------------------------
# coverage gaps


def outside_townships(
    townships: gpd.GeoDataFrame,
    *,
    redline: gpd.GeoDataFrame | None = None,
    farmland: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
    cropland: gpd.GeoDataFrame | None = None,
    grid_size: float | None = DEFAULT_GRID_SIZE,
) -> gpd.GeoDataFrame:
    """Control-line area lying outside every township outline (gaps in the outlines).

    Parameters
    ----------
    townships
        Township outlines in a projected CRS.
    redline, farmland, udb, cropland
        Line layers in the same CRS, or ``None``.
    grid_size
        Precision grid in metres (default 1 mm), see :func:`township_stats`.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per given line: ``line``, ``n_features`` (features with some area outside),
        ``outside_m2``, ``outside_ha``, ``outside_mu``, ``line_m2`` (dissolved area of the
        whole line), ``outside_share`` (of ``line_m2``) and the outside part as geometry
        (``None`` when nothing lies outside).

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> towns = gpd.GeoDataFrame({"code": ["1"], "name": ["甲镇"]},
    ...     geometry=[box(0, 0, 1000, 1000)], crs="EPSG:4545")
    >>> red = gpd.GeoDataFrame({"feature_id": ["redline:0"]},
    ...     geometry=[box(900, 0, 1100, 100)], crs="EPSG:4545")
    >>> float(outside_townships(towns, redline=red).loc[0, "outside_m2"])
    10000.0
    """
    grid_size, crs, given = _checked_inputs(
        townships, {"redline": redline, "farmland": farmland, "udb": udb, "cropland": cropland},
        grid_size=grid_size)
    zones = _Zones(townships, grid_size)
    return _outside_frame(zones, _prepare_lines(given, grid_size), crs=crs, grid_size=grid_size)


_OUTSIDE_COLUMNS = ["line", "n_features", "outside_m2", "outside_ha", "outside_mu", "line_m2",
                    "outside_share", "geometry"]


def _outside_frame(
    zones: _Zones, lines: Mapping[str, _Line], *, crs: CRS, grid_size: float | None
) -> gpd.GeoDataFrame:
    """Compute the :func:`outside_townships` table of prepared layers.

    Only the features meeting the outline's boundary are tested one by one, and when the
    townships form a valid coverage they are cut against the union of just the townships they
    meet (see :func:`_overlay_geom.outside_parts`).
    """
    outline, coverage = zones.dissolved
    rows = []
    for role in STAT_LINES:
        if role not in lines:
            continue
        line = lines[role]
        positions, parts = _geom.outside_parts(line.geoms, outline, grid_size=grid_size,
                                               tree=line.tree, zones=zones.geoms,
                                               coverage=coverage)
        rows.append({"line": role, **_outside_row(
            line.geoms, parts, overlapping=len(line.overlaps[0]) > 0, grid_size=grid_size,
            line_m2=line.dissolved_area, copies=line.first[positions] != positions)})
    frame = pd.DataFrame(rows, columns=_OUTSIDE_COLUMNS)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=crs)


def _outside_row(
    patches: np.ndarray,
    parts: np.ndarray,
    *,
    overlapping: bool,
    grid_size: float | None,
    areas: np.ndarray | None = None,
    line_m2: float | None = None,
    copies: np.ndarray | None = None,
) -> dict:
    """One row of :func:`outside_townships` from a line's patches and their outside parts.

    ``overlapping`` (some patches overlap): the line and its outside part are dissolved;
    otherwise areas are summed (``areas``: the patches' areas when already known).
    ``line_m2``: the line's dissolved area when the caller has it. ``copies``: mask over
    ``parts``, the parts of copies of an earlier patch (counted, not dissolved again).
    """
    if line_m2 is None:
        line_m2 = _plain_line_area(patches, overlapping=overlapping, grid_size=grid_size,
                                   areas=areas)
    found = ~shapely.is_missing(parts)
    pieces = parts[found]
    if len(pieces) == 0:
        geometry, area = None, 0.0
    elif overlapping:
        distinct = pieces if copies is None else parts[found & ~copies]
        geometry = _geom.union(distinct, grid_size=grid_size)
        area = float(shapely.area(geometry))
    else:
        geometry = shapely.multipolygons(shapely.get_parts(pieces))
        area = float(shapely.area(pieces).sum())
    return {
        "n_features": len(pieces),
        "outside_m2": area,
        "outside_ha": area / HA_M2,
        "outside_mu": area / MU_M2,
        "line_m2": line_m2,
        "outside_share": area / line_m2 if line_m2 > 0 else np.nan,
        "geometry": geometry,
    }


def _plain_line_area(patches: np.ndarray, *, overlapping: bool, grid_size: float | None,
                     areas: np.ndarray | None) -> float:
    """Return a line's area with every patch dissolved when some overlap, else summed.

    This is the plain path; :attr:`_Line.dissolved_area` dissolves only the patches that overlap.
    """
    if overlapping:
        whole = _geom.union(patches, grid_size=grid_size)
        return 0.0 if whole is None else float(shapely.area(whole))
    areas = shapely.area(patches) if areas is None else areas
    return float(areas[~shapely.is_missing(patches)].sum())


# ---------------------------------------------------------------------------------------------
# conflicts between lines


def classify_overlap(
    area_m2: np.ndarray | float,
    share: np.ndarray | float,
    tolerance: Mapping[str, float],
) -> np.ndarray:
    """``"conflict"`` when an overlap reaches both tolerances, else ``"boundary_noise"``.

    Examples
    --------
    >>> classify_overlap([0.5, 20.0], [0.1, 0.1], {"min_overlap_m2": 1.0,
    ...     "min_overlap_share": 0.0}).tolist()
    ['boundary_noise', 'conflict']
    """
    area_m2 = np.asarray(area_m2, dtype=float)
    share = np.asarray(share, dtype=float)
    real = (area_m2 >= tolerance["min_overlap_m2"]) & (share >= tolerance["min_overlap_share"])
    return np.where(real, "conflict", "boundary_noise").astype(object)


_CONFLICT_COLUMNS = [
    "layer_a", "layer_b", "feature_a", "feature_b", "township_code", "area_m2", "kind",
    "pair_area_m2", "pair_share",
]


def line_conflicts(
    *,
    redline: gpd.GeoDataFrame | None = None,
    farmland: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
    townships: gpd.GeoDataFrame | None = None,
    tolerance: Mapping[str, object] | None = None,
    grid_size: float | None = DEFAULT_GRID_SIZE,
) -> gpd.GeoDataFrame:
    """Overlaps between the control lines and within each line (不交叉、不重叠、不冲突).

    Checked pairs: red line ∩ farmland, red line ∩ development boundary, farmland ∩
    development boundary, and two features of the same line. Touching-only contact is not a
    conflict; only polygonal overlap is kept.

    Parameters
    ----------
    redline, farmland, udb
        Control-line layers with ``feature_id``, in one projected CRS, or ``None``.
    townships
        Township outlines with ``code``: conflicts are split by township (a part outside
        every township gets ``township_code`` None). ``None`` leaves them whole.
    tolerance
        The rulebook's ``[tolerance]`` table (default 1 m², share 0). The kind is decided on
        the whole overlap of the pair (``pair_area_m2``, and ``pair_share`` = overlap / the
        smaller feature's area), so splitting by township never turns a conflict into noise.
        Recorded in ``result.attrs["tolerance"]``.
    grid_size
        Precision grid in metres (default 1 mm), see :func:`township_stats`.

    Returns
    -------
    geopandas.GeoDataFrame
        One (Multi)Polygon row per conflicting pair and township: ``layer_a``, ``layer_b``
        (equal for a self-overlap), ``feature_a``, ``feature_b``, ``township_code``,
        ``area_m2``, ``kind`` (``conflict`` | ``boundary_noise``), ``pair_area_m2``,
        ``pair_share``.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> red = gpd.GeoDataFrame({"feature_id": ["redline:0"]},
    ...     geometry=[box(0, 0, 100, 100)], crs="EPSG:4545")
    >>> farm = gpd.GeoDataFrame({"feature_id": ["farmland:0"]},
    ...     geometry=[box(90, 0, 200, 100)], crs="EPSG:4545")
    >>> line_conflicts(redline=red, farmland=farm)[["layer_a", "layer_b", "area_m2", "kind"]]
       layer_a   layer_b  area_m2      kind
    0  redline  farmland   1000.0  conflict
    """
    tol = resolve_tolerance(tolerance)
    grid_size = _check_grid_size(grid_size)
    lines = {"redline": redline, "farmland": farmland, "udb": udb}
    given, crs = _line_layers(lines, None)
    if townships is not None:
        crs = _check_crs(townships, "townships", crs)
        _require_columns(townships, "townships", ("code",))
    for role, gdf in given.items():
        _require_columns(gdf, role, ("feature_id",))
    prepared = _prepare_lines(given, grid_size)
    zones = None if townships is None else _Zones(townships, grid_size)
    return _conflict_frame(prepared, zones, crs=crs, tolerance=tol, grid_size=grid_size)


def _conflict_frame(
    lines: Mapping[str, _Line],
    zones: _Zones | None,
    *,
    crs: CRS | None,
    tolerance: dict[str, float],
    grid_size: float | None,
) -> gpd.GeoDataFrame:
    """Compute the :func:`line_conflicts` table of prepared control lines (and townships)."""
    tol = tolerance
    parts = []
    names = list(lines)
    for k, a in enumerate(names):
        parts.append(_self_overlaps(lines[a], grid_size=grid_size))
        for b in names[k + 1:]:
            parts.append(_cross_overlaps(lines[a], lines[b], grid_size=grid_size))
    pairs = pd.concat(parts, ignore_index=True) if parts else _empty_pairs()
    area_a = _area_lookup(lines, pairs["layer_a"], pairs["index_a"])
    area_b = _area_lookup(lines, pairs["layer_b"], pairs["index_b"])
    smaller = np.minimum(area_a, area_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs["pair_share"] = np.where(smaller > 0, pairs["pair_area_m2"] / smaller, np.nan)
    pairs["kind"] = classify_overlap(pairs["pair_area_m2"], pairs["pair_share"], tol)
    pairs["feature_a"] = _id_lookup(lines, pairs["layer_a"], pairs["index_a"])
    pairs["feature_b"] = _id_lookup(lines, pairs["layer_b"], pairs["index_b"])

    if zones is None:
        pairs["township_code"] = None
        pairs["area_m2"] = pairs["pair_area_m2"]
    else:
        pairs = _split_by_township(pairs, zones, grid_size=grid_size)
    result = gpd.GeoDataFrame(
        pairs[_CONFLICT_COLUMNS].reset_index(drop=True),
        geometry=pairs["geometry"].to_numpy(),
        crs=crs,
    )
    result.attrs.update(tolerance=tol, grid_size_m=grid_size, lines=names)
    n_conflict = int((result["kind"] == "conflict").sum())
    log.info(
        "line conflicts: %d conflict rows, %d boundary-noise rows (tolerance %g m², share %g)",
        n_conflict, len(result) - n_conflict, tol["min_overlap_m2"], tol["min_overlap_share"],
    )
    return result


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({
        "layer_a": pd.Series(dtype=object), "layer_b": pd.Series(dtype=object),
        "index_a": pd.Series(dtype=np.intp), "index_b": pd.Series(dtype=np.intp),
        "pair_area_m2": pd.Series(dtype=float), "geometry": pd.Series(dtype=object),
    })


def _pairs_frame(a: str, ia: np.ndarray, b: str, ib: np.ndarray, pieces: np.ndarray,
                 area: np.ndarray) -> pd.DataFrame:
    if len(ia) == 0:
        return _empty_pairs()
    return pd.DataFrame({
        "layer_a": a, "layer_b": b, "index_a": ia, "index_b": ib,
        "pair_area_m2": area, "geometry": pieces,
    })


def _cross_overlaps(la: _Line, lb: _Line, *, grid_size: float | None) -> pd.DataFrame:
    """Overlaps between two layers; the layer with fewer features is prepared and queried."""
    if len(la.geoms) <= len(lb.geoms):
        clip = _clip_lines(la, lb, grid_size=grid_size)
        ia, ib = clip.zone, clip.patch
    else:
        clip = _clip_lines(lb, la, grid_size=grid_size)
        ia, ib = clip.patch, clip.zone
    assert clip.piece is not None  # _clip_lines keeps the pieces' geometries
    return _pairs_frame(la.role, ia, lb.role, ib, clip.piece, clip.area)


def _clip_lines(zones: _Line, patches: _Line, *, grid_size: float | None) -> _geom.Clip:
    return _geom.clip_to_zones(zones.geoms, patches.geoms, grid_size=grid_size,
                               keep_geometry=True, tree=patches.tree, zone_area=zones.area,
                               patch_area=patches.area)


def _self_overlaps(line: _Line, *, grid_size: float | None) -> pd.DataFrame:
    """Find the overlaps between features of one line.

    A copy's overlap with its twin is the feature itself (identical polygons), without an overlay.
    """
    ga = line.geoms
    i, j = line.overlaps
    same = line.first[i] == line.first[j]
    pieces = ga[i]
    pieces[~same] = _geom.polygonal_part(_geom.safe_overlay(
        shapely.intersection, ga[i[~same]], ga[j[~same]], grid_size=grid_size))
    area = shapely.area(pieces)
    area = np.where(np.isnan(area), 0.0, area)
    keep = area > 0
    return _pairs_frame(line.role, i[keep], line.role, j[keep], pieces[keep], area[keep])


def _area_lookup(lines: Mapping[str, _Line], layer: pd.Series, index: pd.Series) -> np.ndarray:
    out = np.zeros(len(layer))
    for role, line in lines.items():
        mask = (layer == role).to_numpy()
        out[mask] = line.area[index.to_numpy()[mask]]
    return out


def _id_lookup(lines: Mapping[str, _Line], layer: pd.Series, index: pd.Series) -> np.ndarray:
    out = np.empty(len(layer), dtype=object)
    for role, line in lines.items():
        mask = (layer == role).to_numpy()
        out[mask] = line.ids[index.to_numpy()[mask]]
    return out


def _split_by_township(pairs: pd.DataFrame, zones: _Zones, *,
                       grid_size: float | None) -> pd.DataFrame:
    """One row per (conflict, township) piece, plus the part outside every township."""
    codes = zones.gdf["code"].to_numpy(dtype=object)
    pieces = pairs["geometry"].to_numpy(dtype=object)
    tree = shapely.STRtree(pieces)
    clip = _geom.clip_to_zones(zones.geoms, pieces, grid_size=grid_size, keep_geometry=True,
                               tree=tree, zone_area=zones.area)
    inside = pairs.iloc[clip.patch].copy()
    inside["township_code"] = codes[clip.zone]
    inside["area_m2"] = clip.area
    inside["geometry"] = clip.piece
    inside["_order"] = clip.patch

    outline, coverage = zones.dissolved
    rest, left = _geom.outside_parts(pieces, outline, grid_size=grid_size, tree=tree,
                                     zones=zones.geoms, coverage=coverage)
    area = shapely.area(left)
    area = np.where(np.isnan(area), 0.0, area)
    keep = area > 0
    outside = pairs.iloc[rest[keep]].copy()
    outside["township_code"] = None
    outside["area_m2"] = area[keep]
    outside["geometry"] = left[keep]
    outside["_order"] = rest[keep]
    both = pd.concat([inside, outside], ignore_index=True)
    return both.sort_values("_order", kind="stable").drop(columns="_order")


# ---------------------------------------------------------------------------------------------
# township outlines against each other


def township_conflicts(
    townships: gpd.GeoDataFrame,
    *,
    tolerance: Mapping[str, object] | None = None,
    grid_size: float | None = DEFAULT_GRID_SIZE,
    known_valid: Mapping[str, np.ndarray] | None = None,
) -> gpd.GeoDataFrame:
    """Overlaps and enclosed gaps between township outlines (the ``township_conflicts`` layer).

    A warning gives their number and total area when there are any: a control line inside an
    overlap is counted in both townships' rows of :func:`township_stats`
    (:func:`township_double_counted` says how much).

    Parameters
    ----------
    townships
        Township outlines with ``code``, in a projected CRS.
    tolerance
        The rulebook's ``[tolerance]`` table: an overlap (of a pair, whole) or a gap part
        smaller than ``min_overlap_m2`` (default 1 m²) is boundary noise, not reported (logged).
    grid_size
        Precision grid in metres (default 1 mm), see :func:`township_stats`.
    known_valid
        As for :func:`control_line_report` (only ``townships`` is read).

    Returns
    -------
    geopandas.GeoDataFrame
        ``kind`` (``overlap`` | ``gap``), ``township_a``, ``township_b``, ``area_m2`` and the
        piece as geometry: one ``overlap`` row per pair of townships whose interiors overlap
        (codes in layer order), one ``gap`` row per part of a hole in the townships' union
        that no township covers (``township_a``: the codes of the townships bordering it,
        joined by ``", "``; ``township_b`` None). A gap open to the outside of the plan area
        is not a hole and is not reported. Empty, with these columns, for a clean tiling.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> towns = gpd.GeoDataFrame({"code": ["1", "2"], "name": ["甲镇", "乙镇"]},
    ...     geometry=[box(0, 0, 100, 100), box(90, 0, 200, 100)], crs="EPSG:4545")
    >>> township_conflicts(towns)[["kind", "township_a", "township_b", "area_m2"]]
          kind township_a township_b  area_m2
    0  overlap          1          2   1000.0
    """
    tol = resolve_tolerance(tolerance)
    grid_size, crs, _ = _checked_inputs(townships, {}, grid_size=grid_size, columns=("code",))
    zones = _Zones(townships, grid_size, (known_valid or {}).get("townships"))
    found = _towns.township_conflict_frame(zones, crs=crs, min_area_m2=tol["min_overlap_m2"])
    found.attrs.update(tolerance=tol, grid_size_m=grid_size)
    overlap = found["kind"] == "overlap"
    if len(found):
        log.warning(
            "township outlines: %d overlaps (%.2f m² in all) and %d gaps (%.2f m² in all) "
            "between townships; a control line inside an overlap is counted in both "
            "townships (see the township_conflicts layer and the *_double_counted_m2 columns)",
            int(overlap.sum()), float(found.loc[overlap, "area_m2"].sum()),
            int((~overlap).sum()), float(found.loc[~overlap, "area_m2"].sum()))
    return found


def township_double_counted(
    townships: gpd.GeoDataFrame,
    conflicts: gpd.GeoDataFrame,
    *,
    redline: gpd.GeoDataFrame | None = None,
    farmland: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
    cropland: gpd.GeoDataFrame | None = None,
    grid_size: float | None = DEFAULT_GRID_SIZE,
    known_valid: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Per township, the line area inside its overlaps with other townships.

    Parameters
    ----------
    townships
        The townships to report (with ``code``), in a projected CRS; a subset of those
        ``conflicts`` was computed from is fine (a partition's).
    conflicts
        :func:`township_conflicts` of all the townships.
    redline, farmland, udb, cropland
        Line layers in the same CRS, or ``None``; only features meeting an overlap are used.
    grid_size
        Precision grid in metres (default 1 mm), see :func:`township_stats`.
    known_valid
        As for :func:`control_line_report`.

    Returns
    -------
    pandas.DataFrame
        With the townships' index: ``overlap_townships`` (codes of the other townships it
        overlaps, joined by ``", "``; empty when none) and ``L_double_counted_m2`` per line
        ``L`` of :func:`township_stats` (NaN for a control line not given): the dissolved area
        of ``L`` that this township's row counts and another township's row counts too.
    """
    grid_size, _, given = _checked_inputs(
        townships, {"redline": redline, "farmland": farmland, "udb": udb, "cropland": cropland},
        grid_size=grid_size, columns=("code",))
    return _towns.double_counted(townships, conflicts, given, roles=STAT_LINES,
                                 controls=CONTROL_LINES, grid_size=grid_size,
                                 known_valid=known_valid)


# ---------------------------------------------------------------------------------------------
# the three tables of a run, every layer prepared once


class ControlLineReport(NamedTuple):
    """The control-line tables of one run (a tuple: ``stats, outside, conflicts = report``)."""

    #: :func:`township_stats`
    township_stats: gpd.GeoDataFrame
    #: :func:`outside_townships`
    outside_townships: gpd.GeoDataFrame
    #: :func:`line_conflicts` (split by township)
    line_conflicts: gpd.GeoDataFrame


def control_line_report(
    townships: gpd.GeoDataFrame,
    *,
    redline: gpd.GeoDataFrame | None = None,
    farmland: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
    cropland: gpd.GeoDataFrame | None = None,
    tolerance: Mapping[str, object] | None = None,
    grid_size: float | None = DEFAULT_GRID_SIZE,
    ellipsoidal_lines: bool = True,
    known_valid: Mapping[str, np.ndarray] | None = None,
) -> ControlLineReport:
    """:func:`township_stats`, :func:`outside_townships` and :func:`line_conflicts` at once.

    The three tables are identical to the three separate calls (``line_conflicts`` with
    ``townships`` and the three control lines; ``cropland`` only enters the statistics and the
    outside table), but every layer is checked, validated and put on the grid once, and what
    the tables share is computed at most once: each line's coverage certificate (the costly
    coverage union of a large parcel layer), overlapping pairs, areas, ids and STRtree, and
    the townships' outline.

    Parameters
    ----------
    townships
        Township outlines with ``code`` and ``name`` (and ``feature_id``), in a projected CRS.
    redline, farmland, udb
        Control-line layers with ``feature_id`` in the same CRS, or ``None``.
    cropland
        Optional survey cultivated land (statistics and outside table only), or ``None``.
    tolerance
        The rulebook's ``[tolerance]`` table, see :func:`line_conflicts`.
    grid_size
        Precision grid in metres (default 1 mm), see :func:`township_stats`.
    ellipsoidal_lines
        Passed to :func:`township_stats`.
    known_valid
        Role (``townships``, ``redline``...) → the geometries already found valid, as
        :func:`spatialplan.io.read.read_plan` keeps them (``Layer.validated``). A layer holding
        exactly these objects, in this order, is not tested for validity again (shapely
        geometries are immutable); any other layer is. :func:`spatialplan.run_stats` passes
        the plan's.

    Returns
    -------
    ControlLineReport
        ``(township_stats, outside_townships, line_conflicts)``, a named tuple.

    Raises
    ------
    CRSError
        A layer has no CRS, a geographic CRS, or a CRS other than the townships'.
    FieldError
        ``townships`` lacks ``code`` or ``name``, or a control line lacks ``feature_id``
        (checked before any geometry).
    GeometryError
        A layer holds non-polygon or invalid geometries (townships first, then the lines).

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely import box
    >>> towns = gpd.GeoDataFrame({"feature_id": ["townships:0"], "code": ["520100001"],
    ...     "name": ["甲镇"]}, geometry=[box(0, 0, 1000, 1000)], crs="EPSG:4545")
    >>> farm = gpd.GeoDataFrame({"feature_id": ["farmland:0"]},
    ...     geometry=[box(-500, 0, 500, 300)], crs="EPSG:4545")
    >>> stats, outside, conflicts = control_line_report(towns, farmland=farm)
    >>> float(stats.loc[0, "farmland_m2"]), float(outside.loc[0, "outside_m2"]), len(conflicts)
    (150000.0, 150000.0, 0)
    """
    tol = resolve_tolerance(tolerance)
    grid_size, crs, given = _checked_inputs(
        townships, {"redline": redline, "farmland": farmland, "udb": udb, "cropland": cropland},
        grid_size=grid_size, columns=("code", "name"))
    for role in CONTROL_LINES:
        if role in given:
            _require_columns(given[role], role, ("feature_id",))
    known = dict(known_valid or {})
    zones = _Zones(townships, grid_size, known.get("townships"))
    prepared = _prepare_lines(given, grid_size, known)
    control = {role: line for role, line in prepared.items() if role in CONTROL_LINES}
    log.info("control lines: one preparation for %d townships and %s", len(townships),
             ", ".join(f"{role} ({len(line.geoms)})" for role, line in prepared.items()) or "-")
    _shared_once(zones, prepared)
    # the statistics here, the outside and conflict tables beside them in a second thread
    stats, (outside, conflicts) = side_by_side(
        lambda: _stats_frame(zones, prepared, crs=crs, tolerance=tol, grid_size=grid_size,
                             ellipsoidal=ellipsoidal_lines),
        lambda: (_outside_frame(zones, prepared, crs=crs, grid_size=grid_size),
                 _conflict_frame(control, zones, crs=crs, tolerance=tol,
                                 grid_size=grid_size)))
    return ControlLineReport(township_stats=stats, outside_townships=outside,
                             line_conflicts=conflicts)


def _shared_once(zones: _Zones, lines: Mapping[str, _Line]) -> None:
    """Compute what the three tables share before they run side by side.

    Each is computed once, so neither table waits for the other's (a ``cached_property``
    computes under a lock shared by all instances): the copies warnings and the coverage
    certificates here (their unions use the threads), the STRtrees (built holding the GIL)
    and the townships' outline beside them, then the overlapping pairs (tree and
    certificate). The lines' feature ids (0.4 s for 10⁶ parcels) are left to the conflict
    table, the one that reads them.
    """
    def certificates() -> None:
        for line in lines.values():
            for name in ("area", "first", "distinct", "certificate"):
                getattr(line, name)

    def trees() -> None:
        for line in lines.values():
            _ = line.tree
        for name in ("ids", "area", "dissolved"):
            getattr(zones, name)

    side_by_side(certificates, trees)
    for line in lines.values():
        _ = line.overlaps
