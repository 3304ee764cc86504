"""Township outlines checked against each other: overlaps, gaps and the area counted twice.

:func:`township_conflict_frame` (behind :func:`spatialplan.analysis.overlay.township_conflicts`)
finds the overlaps between two townships (pairs whose interiors
intersect, STRtree + exact DE-9IM predicates) and the gaps between them (holes in the union of
the townships that no township covers); :func:`double_counted` measures, per township, how much
of each control line lies in its overlaps with other townships, i.e. is counted in two rows of
``township_stats``.

A piece smaller than the rulebook's ``[tolerance] min_overlap_m2`` (default 1 m²) is boundary
noise (two outlines digitised a few millimetres apart): an overlap pair whose whole overlap is
below it, or a gap part below it, is neither reported nor counted; their number and total area
are logged. A gap open to the outside of the plan area (a notch in the outer boundary) cannot be
told from the outline and is not reported: only enclosed holes are.

The conflicts are township-level only (the dask engine finds them in the driver); the double
count needs the lines near the overlaps (each partition measures its own townships).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan.analysis import _overlay_geom as _geom
from spatialplan.analysis import _overlay_pairs as _pairs
from spatialplan.analysis._overlay_lines import _Line, _Zones

__all__ = ["TOWNSHIP_CONFLICT_COLUMNS", "double_counted", "join_columns",
           "township_conflict_frame"]

log = logging.getLogger("spatialplan.analysis.overlay")

#: the columns of the ``township_conflicts`` table (geometry last)
TOWNSHIP_CONFLICT_COLUMNS = ["kind", "township_a", "township_b", "area_m2", "geometry"]


def township_conflict_frame(zones: _Zones, *, crs, min_area_m2: float) -> gpd.GeoDataFrame:
    """Overlaps and enclosed gaps between prepared township outlines.

    Parameters
    ----------
    zones
        The townships, prepared (on the grid, validated).
    crs
        The analysis CRS of the result.
    min_area_m2
        Pieces below this area are boundary noise (not reported, logged).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns :data:`TOWNSHIP_CONFLICT_COLUMNS`: one ``overlap`` row per pair of townships
        whose interiors overlap (``township_a`` before ``township_b`` in layer order, the
        whole overlap as geometry) and one ``gap`` row per enclosed hole of their union that
        no township covers (``township_a``: the codes of the townships bordering it, joined by
        ``", "`` in layer order; ``township_b`` empty). Overlaps first, then gaps.
    """
    codes = zones.gdf["code"].astype(str).to_numpy(dtype=object)
    overlaps = _overlap_rows(zones, codes)
    gaps = _gap_rows(zones, codes, min_area_m2=min_area_m2)
    frame = pd.concat([f for f in (overlaps, gaps) if len(f)] or [_empty()], ignore_index=True)
    small = frame["area_m2"].to_numpy(dtype=float) < min_area_m2
    if small.any():
        log.info("township outlines: %d overlap/gap pieces below %g m² (%.3f m² in all) are "
                 "boundary noise, not reported", int(small.sum()), min_area_m2,
                 float(frame.loc[small, "area_m2"].sum()))
    frame = frame[~small].reset_index(drop=True)
    return gpd.GeoDataFrame(frame[TOWNSHIP_CONFLICT_COLUMNS[:-1]],
                            geometry=frame["geometry"].to_numpy(dtype=object), crs=crs)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({"kind": pd.Series(dtype=object), "township_a": pd.Series(dtype=object),
                         "township_b": pd.Series(dtype=object),
                         "area_m2": pd.Series(dtype=float), "geometry": pd.Series(dtype=object)})


def _overlap_rows(zones: _Zones, codes: np.ndarray) -> pd.DataFrame:
    """One row per pair of townships whose interiors intersect (the whole overlap).

    Every pair of neighbours is tested exactly (STRtree, DE-9IM): a plan has at most a few
    thousand townships, so the coverage certificate of the line layers would save nothing.
    """
    i, j = _pairs.overlap_pairs(zones.geoms, certified=False, tree=zones.tree)
    if len(i) == 0:
        return _empty()
    geoms = zones.geoms
    pieces = _geom.polygonal_part(_geom.safe_overlay(
        shapely.intersection, geoms[i], geoms[j], grid_size=zones.grid_size))
    area = np.nan_to_num(shapely.area(pieces))
    return pd.DataFrame({"kind": "overlap", "township_a": codes[i], "township_b": codes[j],
                         "area_m2": area, "geometry": pieces})


def _gap_rows(zones: _Zones, codes: np.ndarray, *, min_area_m2: float) -> pd.DataFrame:
    """One row per enclosed part of the union's holes that no township covers.

    A hole of at least ``min_area_m2`` loses the townships lying inside it (islands); a
    smaller one is kept whole (it is noise either way).
    """
    outline, _ = zones.dissolved
    if outline is None:
        return _empty()
    polygons = shapely.get_parts(outline)
    n = shapely.get_num_interior_rings(polygons)
    if n.sum() == 0:
        return _empty()
    owner = np.repeat(np.arange(len(polygons)), n)
    ring = np.concatenate([np.arange(c) for c in n])
    holes = shapely.polygons(shapely.get_interior_ring(polygons[owner], ring))
    big = np.flatnonzero(shapely.area(holes) >= min_area_m2)
    if len(big):
        hole, island = shapely.STRtree(polygons).query(holes[big], predicate="contains")
        for k in np.unique(hole):
            holes[big[k]] = _geom.polygonal_part(_geom.safe_overlay(
                shapely.difference, holes[big[k]:big[k] + 1],
                np.array([_geom.union(polygons[island[hole == k]], grid_size=None)]),
                grid_size=zones.grid_size))[0]
    parts = shapely.get_parts(holes[~shapely.is_missing(holes)])
    if len(parts) == 0:
        return _empty()
    near = max(zones.grid_size or 0.0, 1e-6)
    part, town = zones.tree.query(parts, predicate="dwithin", distance=near)
    bordering = [", ".join(codes[np.sort(town[part == k])]) for k in range(len(parts))]
    return pd.DataFrame({"kind": "gap", "township_a": bordering, "township_b": None,
                         "area_m2": shapely.area(parts), "geometry": parts})


def double_counted(townships: gpd.GeoDataFrame, conflicts: gpd.GeoDataFrame,
                   layers: Mapping[str, gpd.GeoDataFrame | None], *, roles: tuple[str, ...],
                   controls: tuple[str, ...], grid_size: float | None,
                   known_valid: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Per township: the other townships it overlaps, and each line's area in those overlaps.

    Parameters
    ----------
    townships
        The townships to report (all of them, or one partition's), with ``code``.
    conflicts
        The :func:`township_conflict_frame` of all the townships.
    layers
        Role → line layer in the analysis CRS (or None); only its features meeting an overlap
        are prepared and measured.
    roles
        Every line the statistics can measure, in column order.
    controls
        The lines that always get a column (NaN when not given).
    grid_size
        Precision grid (m), already checked.
    known_valid
        Role → geometries already validated (``Layer.validated``), as for
        :func:`spatialplan.analysis.overlay.control_line_report`.

    Returns
    -------
    pandas.DataFrame
        One row per township of ``townships``, its index: ``overlap_townships`` (the codes of the
        other townships it overlaps, joined by ``", "``; empty when none) and, per line ``L``
        given (and every control line), ``L_double_counted_m2``: the dissolved area of ``L``
        inside the township's overlaps with other townships, which its row and theirs both
        count (0 when it overlaps none; NaN for a control line not given).
    """
    codes = townships["code"].astype(str).to_numpy(dtype=object)
    overlap = conflicts[conflicts["kind"] == "overlap"]
    others, areas = _overlap_zones(codes, overlap, grid_size=grid_size)
    out = pd.DataFrame({"overlap_townships": others}, index=townships.index)
    has = np.flatnonzero(~shapely.is_missing(areas))
    known = known_valid or {}
    for role in roles:
        gdf = layers.get(role)
        if gdf is None:
            if role in controls:
                out[f"{role}_double_counted_m2"] = np.nan
            continue
        values = np.zeros(len(codes))
        if len(has):
            values[has] = _line_area_in(areas[has], gdf, role, grid_size=grid_size,
                                        known=known.get(role))
        out[f"{role}_double_counted_m2"] = values
    return out


def _line_area_in(areas: np.ndarray, gdf: gpd.GeoDataFrame, role: str, *,
                  grid_size: float | None, known: np.ndarray | None) -> np.ndarray:
    """Dissolved area of a line layer inside each of ``areas`` (its nearby features only)."""
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    near = np.unique(shapely.STRtree(geoms).query(areas, predicate="intersects")[1])
    line = _Line(role, gdf.iloc[near], grid_size, None if known is None else known[near])
    clip = _geom.clip_to_zones(areas, line.distinct, grid_size=grid_size, tree=line.tree,
                               patch_area=line.area)
    values, _, _ = _geom.dissolved_zone_areas(areas, line.distinct, clip, grid_size=grid_size,
                                              overlaps=line.distinct_overlaps,
                                              only_overlapping=True)
    return values


def _overlap_zones(codes: np.ndarray, overlap: pd.DataFrame, *,
                   grid_size: float | None) -> tuple[list[str], np.ndarray]:
    """Per township code: the other codes it overlaps and the union of those overlaps."""
    a = overlap["township_a"].to_numpy(dtype=object)
    b = overlap["township_b"].to_numpy(dtype=object)
    geoms = np.asarray(overlap.geometry.array, dtype=object)
    others: list[str] = []
    areas = np.full(len(codes), None, dtype=object)
    for k, code in enumerate(codes):
        mine = (a == code) | (b == code)
        if not mine.any():
            others.append("")
            continue
        partners = np.where(a[mine] == code, b[mine], a[mine])
        others.append(", ".join(dict.fromkeys(partners)))
        areas[k] = _geom.union(geoms[mine], grid_size=grid_size)
    return others, areas


def join_columns(stats: gpd.GeoDataFrame, extra: pd.DataFrame) -> gpd.GeoDataFrame:
    """Append the columns of :func:`double_counted` to ``township_stats`` (same index).

    The statistics keep their ``attrs`` (a join drops them).
    """
    joined = stats.join(extra)
    joined.attrs.update(stats.attrs)
    return joined
