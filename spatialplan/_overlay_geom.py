"""Geometry kernels behind :mod:`spatialplan.overlay` (private).

Everything here works on plain numpy object arrays of shapely geometries (``None`` for a
missing geometry) in one projected metric CRS, and returns numpy arrays. The public module
checks the inputs, names the columns and builds the frames.

Exactness safeguards, used by every kernel:

- coordinates are put on a fixed precision grid (1 mm by default) once
  (:func:`snap_to_grid`), which removes the near-coincident vertices (1e-14 m apart) that
  make floating-point overlays go wrong;
- overlays run in floating precision, so areas agree with a plain ``geopandas.overlay`` to
  ~1e-15; a pair whose overlay fails or yields an impossible area is recomputed with GEOS
  snap-rounding on the grid (:func:`safe_overlay`), which cannot fail;
- a pair of polygons can only carry area when their interiors intersect, decided by the exact
  DE-9IM predicates (``intersects`` and not ``touches``) before any overlay is computed: this
  is the guard against shapely issue #1871, where GEOS returned a whole triangle as the
  "intersection" of two polygons that only touch.

Speed comes from an STRtree, prepared geometries and two shortcuts: a patch that lies
``contains_properly`` inside a zone contributes its whole area without an overlay, and so
does a zone lying inside a patch. A layer certified as a disjoint coverage
(:func:`coverage_certificate`, chunk by chunk) is measured on the certificate's own pieces
instead (:func:`union_zone_areas`): one clipped overlay per (zone, piece) pair.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Geod, Transformer

from spatialplan._kdsplit import partition_points
from spatialplan._parallel import map_chunks, map_items
from spatialplan._progress import progress

__all__ = [
    "CERTIFICATE_CHUNK",
    "HASH_CHUNK",
    "MAX_CLIP_COORDS",
    "OVERLAY_CHUNK",
    "Clip",
    "clip_to_zones",
    "coverage_certificate",
    "coverage_zone_areas",
    "dissolve",
    "dissolved_area",
    "dissolved_zone_areas",
    "first_equal",
    "geodesic_areas",
    "is_disjoint_coverage",
    "outside_parts",
    "overlap_pairs",
    "polygonal_part",
    "query_order",
    "safe_overlay",
    "safe_union",
    "snap_to_grid",
    "snap_with_report",
    "union",
    "union_zone_areas",
    "with_copies",
]

log = logging.getLogger("spatialplan.overlay")

#: shapely type ids of polygonal geometries
_POLYGON, _MULTIPOLYGON = 3, 6


@dataclass
class Clip:
    """Pieces of ``patches`` inside ``zones``: one entry per (zone, patch) pair with area > 0.

    Attributes
    ----------
    zone, patch
        Positions in the zone and patch arrays.
    area
        Planar area of the piece (m²).
    piece
        The piece geometries (polygonal) when asked for, else ``None``.
    """

    zone: np.ndarray
    patch: np.ndarray
    area: np.ndarray
    piece: np.ndarray | None = None


def snap_to_grid(geoms: np.ndarray, grid_size: float | None) -> np.ndarray:
    """Put coordinates on the precision grid; geometries already on it are returned as they are.

    Only the geometries with an off-grid coordinate change (a layer already stored at
    millimetre precision costs one numpy pass and comes back as the same array). Their x and y
    are rounded to the nearest grid node with numpy (:func:`_grid_rounder`; z untouched),
    which keeps them in floating precision: ``shapely.set_precision`` would attach its grid to
    the geometry and GEOS would then snap-round every later overlay with it as first operand
    (contrary to the floating overlays of :func:`safe_overlay`), and costs ~35 µs a polygon.

    Rounding can leave two consecutive vertices equal; such a geometry stays valid with the
    same area (and is still a valid coverage with its neighbours), so it is kept. The rounded
    geometries are tested for validity (in threads, :func:`spatialplan._parallel.map_chunks`);
    those that rounding made invalid (a ring collapsed or touching itself, a sliver thinner
    than the grid) are snap-rounded by ``shapely.set_precision`` instead, whose result is then
    put back in floating precision (``set_precision(..., 0)``, same coordinates). A geometry
    that still comes out empty or invalid keeps its original (valid, off-grid) coordinates, so
    no feature is ever lost; they are counted in a warning (:func:`snap_with_report` also says
    which).
    """
    out, kept = snap_with_report(geoms, grid_size)
    if len(kept):
        log.warning("%d geometries would be empty or invalid on the %g m grid; kept with their "
                    "original coordinates", len(kept), grid_size)
    return out


def snap_with_report(geoms: np.ndarray, grid_size: float | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`snap_to_grid`, and the positions of the geometries kept off the grid because
    snapping would have emptied them or left them invalid (for the caller to report)."""
    kept = np.array([], dtype=np.intp)
    if grid_size is None or len(geoms) == 0:
        return geoms, kept
    off = _off_grid(shapely.get_coordinates(geoms), grid_size)
    if off is None:
        return geoms, kept
    counts = shapely.get_num_coordinates(geoms)
    bad = np.unique(np.repeat(np.arange(len(geoms)), counts)[off])
    out = geoms.copy()
    snapped = shapely.transform(geoms[bad], _grid_rounder(grid_size), include_z=None)
    broken = np.flatnonzero(~map_chunks(shapely.is_valid, snapped))
    if len(broken):
        original = geoms[bad[broken]]
        fixed = np.array([_snap_round(g, grid_size) for g in original], dtype=object)
        failed = np.array([g is None for g in fixed], dtype=bool)
        fixed[failed] = original[failed]
        snapped[broken] = fixed
        kept = bad[broken[failed]]
        log.debug("snap-rounded %d geometries that rounding made invalid", len(broken))
    out[bad] = snapped
    log.debug("snapped %d of %d geometries to a %g m grid", len(bad), len(geoms), grid_size)
    return out, kept


def _off_grid(coords: np.ndarray, grid_size: float) -> np.ndarray | None:
    """Per coordinate row, whether x or y lies more than 1e-6 grid cells off the grid; ``None``
    when every coordinate is on it (computed in place on one scaled copy)."""
    scaled = coords / grid_size
    nearest = np.rint(scaled)
    np.subtract(scaled, nearest, out=scaled)
    np.abs(scaled, out=scaled)
    if len(scaled) == 0 or scaled.max() <= 1e-6:
        return None
    return np.maximum(scaled[:, 0], scaled[:, 1]) > 1e-6


def _grid_rounder(grid_size: float):
    """x and y to the nearest grid node, as GEOS' precision model rounds them: with an integral
    scale (1000 for 1 mm) ``rint(c * scale) / scale``, the double nearest to the decimal node,
    so a coordinate already on the grid keeps its exact value (vertices shared with on-grid
    neighbours stay shared); ``rint(c / grid) * grid`` can be one ulp off."""
    scale = 1.0 / grid_size
    if scale == round(scale):
        def rounded(coords: np.ndarray) -> np.ndarray:
            out = coords.copy()
            out[:, :2] = np.rint(coords[:, :2] * scale) / scale
            return out
    else:
        def rounded(coords: np.ndarray) -> np.ndarray:
            out = coords.copy()
            out[:, :2] = np.rint(coords[:, :2] / grid_size) * grid_size
            return out
    return rounded


def _snap_round(geom, grid_size: float):
    """``geom`` snap-rounded on the grid and back in floating precision; ``None`` when that
    fails or the result is empty or invalid."""
    try:
        out = shapely.set_precision(shapely.set_precision(geom, grid_size), 0)
    except shapely.errors.GEOSException:
        return None
    if out.is_empty or not out.is_valid or shapely.get_precision(out) != 0:
        return None
    if shapely.get_type_id(out) not in (_POLYGON, _MULTIPOLYGON):
        polys = [p for p in shapely.get_parts(out) if shapely.get_type_id(p) == _POLYGON]
        return shapely.multipolygons(polys) if polys else None
    return out


def polygonal_part(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal part of overlay results: lines and points (touching contact) go.

    Empty results become ``None``; a collection keeps its polygons only.
    """
    out = np.array(geoms, dtype=object, copy=True)
    types = shapely.get_type_id(out)
    mixed = ~np.isin(types, [-1, _POLYGON, _MULTIPOLYGON])
    for k in np.flatnonzero(mixed):
        parts = shapely.get_parts(out[k])
        polys = [p for p in parts if shapely.get_type_id(p) == _POLYGON]
        out[k] = shapely.multipolygons(polys) if polys else None
    empty = shapely.is_empty(out) | shapely.is_missing(out)
    out[empty] = None
    return out


def union(geoms: np.ndarray, *, grid_size: float | None) -> shapely.Geometry | None:
    """Dissolve polygons exactly: a coverage union when they form a valid coverage, else a union.

    ``coverage_union_all`` is only used after ``coverage_is_valid`` confirms the polygons do
    not overlap and share edges vertex for vertex; otherwise it would silently be wrong.
    """
    return dissolve(geoms, grid_size=grid_size)[0]


def dissolve(
    geoms: np.ndarray, *, grid_size: float | None
) -> tuple[shapely.Geometry | None, bool]:
    """:func:`union`, and whether the polygons form a valid coverage.

    Returns
    -------
    merged
        The union (``None`` when no polygon is present; the polygon itself when only one is).
    coverage
        ``True`` when ``merged`` is the coverage union of a valid coverage (or of at most one
        polygon): its vertices are then exactly the input vertices, with no new nodes.
    """
    geoms = geoms[~shapely.is_missing(geoms)]
    if len(geoms) == 0:
        return None, True
    if len(geoms) == 1:
        return geoms[0], True
    if bool(shapely.coverage_is_valid(geoms)):
        return shapely.coverage_union_all(geoms), True
    return safe_union(geoms, grid_size=grid_size), False


def safe_union(geoms: np.ndarray, *, grid_size: float | None) -> shapely.Geometry:
    """``union_all`` in floating precision; snap-rounded on ``grid_size`` if GEOS fails."""
    try:
        return shapely.union_all(geoms)
    except shapely.errors.GEOSException:
        log.debug("floating union failed; snap-rounding on a 0.1 µm grid")
        return shapely.union_all(geoms, grid_size=1e-7)


def _fallback_grids(grid_size: float | None) -> list[float]:
    """Snap-rounding grids to try after a failed floating overlay, finest first."""
    finest = [1e-7, 1e-5]
    return finest + ([grid_size] if grid_size else [])


#: fewest pairs per thread in :func:`safe_overlay` (an overlay costs ~10-100 µs a pair)
OVERLAY_CHUNK = 2_000


def safe_overlay(func, a: np.ndarray, b: np.ndarray, *, grid_size: float | None) -> np.ndarray:
    """Run a vectorised overlay in floating precision, safeguarded by snap-rounding.

    Floating precision keeps results identical to a plain GEOS overlay (areas agree with
    ``geopandas.overlay`` to ~1e-15), whereas rounding every computed node to a 1 mm grid
    shifts areas by ~1e-6 relative. A pair whose floating overlay fails (TopologyException)
    or yields an impossible result (an intersection larger than either input, a difference
    larger than its first input) is recomputed with GEOS snap-rounding, which cannot fail,
    on a 0.1 µm grid, then 10 µm, then ``grid_size``; the first plausible result is kept.
    """
    if len(a) == 0:
        return np.array([], dtype=object)
    try:  # set operations never read a preparation: prepared inputs may go to threads
        out = map_chunks(func, a, b, prepared_ok=True, min_chunk=OVERLAY_CHUNK)
    except shapely.errors.GEOSException:
        out = np.array([_one_overlay(func, x, y, grid_size) for x, y in zip(a, b, strict=True)],
                       dtype=object)
    limit = shapely.area(a)
    if func is shapely.intersection:
        limit = np.minimum(limit, shapely.area(b))
    wrong = np.flatnonzero(shapely.area(out) > limit * (1 + 1e-9) + 1e-9)
    for grid in _fallback_grids(grid_size):
        if len(wrong) == 0:
            break
        log.debug("recomputing %d implausible overlay results on a %g m grid", len(wrong), grid)
        out[wrong] = func(a[wrong], b[wrong], grid_size=grid)
        wrong = wrong[shapely.area(out[wrong]) > limit[wrong] * (1 + 1e-9) + 1e-9]
    if len(wrong):
        log.warning("%d overlay results stay implausible after snap-rounding", len(wrong))
    return out


def _one_overlay(func, x, y, grid_size: float | None):
    try:
        return func(x, y)
    except shapely.errors.GEOSException:
        pass
    for grid in _fallback_grids(grid_size):
        try:
            return func(x, y, grid_size=grid)
        except shapely.errors.GEOSException:
            continue
    return func(x, y, grid_size=grid_size or 1e-3)


def _prepared(geoms: np.ndarray) -> np.ndarray:
    """Return ``geoms`` prepared (in place: shapely objects are shared, preparing is harmless)."""
    shapely.prepare(geoms)
    return geoms


def clip_to_zones(
    zones: np.ndarray,
    patches: np.ndarray,
    *,
    grid_size: float | None,
    keep_geometry: bool = False,
    tree: shapely.STRtree | None = None,
    zone_area: np.ndarray | None = None,
    patch_area: np.ndarray | None = None,
) -> Clip:
    """Intersect every patch with every zone it overlaps, with shortcuts and the touch guard.

    Parameters
    ----------
    zones, patches
        Object arrays of (Multi)Polygons or ``None``; ``zones`` are queried against an STRtree
        of ``patches`` and prepared.
    grid_size
        Precision grid of the overlays (m); ``None`` for floating precision.
    keep_geometry
        Also return the piece geometries.
    tree, zone_area, patch_area
        The STRtree of ``patches`` and ``shapely.area`` of both arrays, when the caller
        already has them. The tree may also hold geometries where ``patches`` has ``None``
        (a layer's copies left out, see :func:`first_equal`): those are skipped.

    Returns
    -------
    Clip
        One entry per (zone, patch) pair whose interiors intersect and whose piece has area.
    """
    if tree is None:
        tree = shapely.STRtree(patches)
    _prepared(zones[~shapely.is_missing(zones)])
    zi, pi = tree.query(zones, predicate="intersects")
    live = ~shapely.is_missing(patches[pi])  # the tree may hold geometries patches leaves out
    zi, pi = zi[live], pi[live]
    zone_area = shapely.area(zones) if zone_area is None else zone_area
    patch_area = shapely.area(patches) if patch_area is None else patch_area
    n_pairs = len(zi)

    inside = shapely.contains_properly(zones[zi], patches[pi])

    big = ~inside & (patch_area[pi] > zone_area[zi])
    covers_zone = np.zeros(n_pairs, dtype=bool)
    if big.any():
        big_patches = np.unique(pi[big])
        _prepared(patches[big_patches])
        covers_zone[big] = shapely.contains_properly(patches[pi[big]], zones[zi[big]])
        shapely.destroy_prepared(patches[big_patches])
    edge = np.flatnonzero(~inside & ~covers_zone)
    # exact DE-9IM guard (shapely #1871): touching-only pairs never carry area
    touching = shapely.touches(zones[zi[edge]], patches[pi[edge]])
    boundary = edge[~touching]

    area = np.where(inside, patch_area[pi], zone_area[zi])
    area[edge[touching]] = 0.0
    cut = safe_overlay(shapely.intersection, zones[zi[boundary]], patches[pi[boundary]],
                       grid_size=grid_size)
    area[boundary] = shapely.area(cut)
    pieces = None
    if keep_geometry:
        pieces = np.where(inside, patches[pi], zones[zi])
        pieces[boundary] = polygonal_part(cut)
    keep = area > 0
    log.debug(
        "clip: %d candidate pairs, %d inside, %d covering, %d boundary, %d touching only",
        n_pairs, int(inside.sum()), int(covers_zone.sum()), len(boundary), int(touching.sum()),
    )
    return Clip(
        zone=zi[keep],
        patch=pi[keep],
        area=area[keep],
        piece=None if pieces is None else pieces[keep],
    )


def outside_parts(
    patches: np.ndarray,
    outline: shapely.Geometry | None,
    *,
    grid_size: float | None,
    tree: shapely.STRtree | None = None,
    zones: np.ndarray | None = None,
    coverage: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Part of each present patch outside ``outline`` (the prepared union of ``zones``).

    A patch covered by the outline has no outside part; one only touching it (exact DE-9IM,
    the #1871 guard) lies wholly outside; the others are cut with a safeguarded difference.

    Parameters
    ----------
    patches
        Object array of (Multi)Polygons or ``None``.
    outline
        The union of the zones, prepared, or ``None`` (no zone: every patch lies outside).
    grid_size
        Precision grid of the overlays (m).
    tree
        The STRtree of ``patches``: the patches are first screened against the outline's
        boundary (:func:`_screen`), so that only those meeting it are tested one by one.
        Without it every present patch is tested against the whole outline.
    zones, coverage
        The zones, and whether they form a valid coverage whose coverage union is
        ``outline``: a patch is then cut against the union of just the zones it meets, whose
        edges near the patch are the outline's own (a coverage union adds no vertex), at a
        fraction of the cost.

    Returns
    -------
    positions
        Positions of the present patches the outline does not cover, in order.
    parts
        Their polygonal part outside the outline (``None`` where nothing with area is left).
    """
    positions = np.flatnonzero(~shapely.is_missing(patches))
    if outline is None:
        return positions, patches[positions]
    whole = np.zeros(len(patches), dtype=bool)  # lies wholly outside, disjoint or touching
    if tree is not None:
        covered, disjoint = _screen(patches, positions, outline, tree)
        whole[disjoint] = True
        positions = positions[~covered[positions]]
    test = positions[~whole[positions]]
    test = test[~shapely.covers(outline, patches[test])]
    # the exact guard again: a patch only touching the outline lies wholly outside
    whole[test[shapely.touches(outline, patches[test])]] = True
    positions = np.union1d(positions[whole[positions]], test)
    cut = positions[~whole[positions]]
    if coverage and zones is not None:
        other = _local_outlines(zones, patches[cut])
        cut = cut[~shapely.is_missing(other)]  # meets no zone: wholly outside
        other = other[~shapely.is_missing(other)]
    else:
        other = np.full(len(cut), outline, dtype=object)
    parts = np.array(patches, dtype=object, copy=True)
    parts[cut] = safe_overlay(shapely.difference, patches[cut], other, grid_size=grid_size)
    log.debug("outside: %d patches cut by the outline, %d wholly outside", len(cut),
              len(positions) - len(cut))
    return positions, polygonal_part(parts[positions])


def _screen(
    patches: np.ndarray, positions: np.ndarray, outline: shapely.Geometry,
    tree: shapely.STRtree,
) -> tuple[np.ndarray, np.ndarray]:
    """Single polygons that do not meet the outline's boundary: inside it or outside it.

    Exact: the boundary is cut into its segments, which are matched with the patches by the
    STRtree and an exact ``intersects``; a polygon (connected) meeting none of them lies
    wholly in the outline's interior or wholly in its exterior, which one vertex decides.

    Returns
    -------
    covered, disjoint
        Boolean masks over ``patches``.
    """
    rings = shapely.get_rings(shapely.get_parts(np.array([outline], dtype=object)))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    segments = shapely.linestrings(np.stack([coords[:-1][same], coords[1:][same]], axis=1))
    si, pi = tree.query(segments)
    meets = np.zeros(len(patches), dtype=bool)
    meets[pi[shapely.intersects(segments[si], patches[pi])]] = True
    free = positions[~meets[positions]]
    free = free[shapely.get_type_id(patches[free]) == _POLYGON]
    counts = shapely.get_num_coordinates(patches[free])
    first = shapely.get_coordinates(patches[free])[np.cumsum(counts) - counts]
    inside = shapely.contains_xy(outline, first[:, 0], first[:, 1])
    covered = np.zeros(len(patches), dtype=bool)
    covered[free[inside]] = True
    disjoint = np.zeros(len(patches), dtype=bool)
    disjoint[free[~inside]] = True
    log.debug("outside screen: %d boundary segments, %d patches meet them, %d inside, "
              "%d outside", len(segments), int(meets.sum()), int(inside.sum()),
              int((~inside).sum()))
    return covered, disjoint


def _local_outlines(zones: np.ndarray, patches: np.ndarray) -> np.ndarray:
    """Per patch, the union of the zones (a valid coverage) it meets; ``None`` for none."""
    out = np.full(len(patches), None, dtype=object)
    if len(patches) == 0:
        return out
    pi, zi = shapely.STRtree(zones).query(patches, predicate="intersects")
    if len(pi) == 0:
        return out
    order = np.lexsort((zi, pi))
    pi, zi = pi[order], zi[order]
    starts = np.flatnonzero(np.r_[True, pi[1:] != pi[:-1]])
    merged: dict[tuple[int, ...], shapely.Geometry] = {}
    for k, group in zip(pi[starts], np.split(zi, starts[1:]), strict=True):
        key = tuple(group.tolist())
        if key not in merged:
            # a subset of a valid coverage is a valid coverage: no coverage_is_valid needed
            merged[key] = zones[group[0]] if len(group) == 1 else shapely.coverage_union_all(
                zones[group])
        out[k] = merged[key]
    return out


def coverage_zone_areas(
    zones: np.ndarray, patches: np.ndarray, *, grid_size: float | None
) -> np.ndarray:
    """Area of a certified disjoint coverage inside each zone, one overlay per zone.

    Only for patches that passed :func:`is_disjoint_coverage`. Patches lying
    ``contains_properly`` inside a zone add their area; the patches crossing the zone's
    boundary (after the DE-9IM touch guard) are merged with a coverage union, which is exact
    and linear for a valid coverage, and intersected with the zone once.
    """
    tree = shapely.STRtree(patches)
    _prepared(zones[~shapely.is_missing(zones)])
    zi, pi = tree.query(zones, predicate="intersects")
    patch_area = shapely.area(patches)
    inside = shapely.contains_properly(zones[zi], patches[pi])
    areas = np.bincount(
        zi[inside], weights=patch_area[pi[inside]], minlength=len(zones)
    ).astype(float)
    edge = np.flatnonzero(~inside)
    edge = edge[~shapely.touches(zones[zi[edge]], patches[pi[edge]])]
    if len(edge) == 0:
        return areas
    ez, ep = zi[edge], pi[edge]
    order = np.argsort(ez, kind="stable")
    ez, ep = ez[order], ep[order]
    starts = np.flatnonzero(np.r_[True, ez[1:] != ez[:-1]])
    groups = np.split(ep, starts[1:])
    bands = np.array(
        [shapely.coverage_union_all(patches[g]) if len(g) > 1 else patches[g[0]]
         for g in progress(groups, total=len(groups), desc="zone boundaries")],
        dtype=object,
    )
    cut = safe_overlay(shapely.intersection, zones[ez[starts]], bands, grid_size=grid_size)
    areas[ez[starts]] += shapely.area(cut)
    log.debug("coverage zones: %d inside pairs, %d boundary patches in %d zones",
              int(inside.sum()), len(edge), len(starts))
    return areas


def overlap_pairs(
    geoms: np.ndarray,
    *,
    certified: bool | None = None,
    suspects: np.ndarray | None = None,
    tree: shapely.STRtree | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of polygons in one layer whose interiors intersect (exact predicates).

    Fast path: a layer that passes :func:`is_disjoint_coverage` has none. Otherwise each
    suspect is matched with the polygons it intersects (STRtree) and every such pair is tested
    exactly with ``touches`` (DE-9IM). The pairs come in the order of
    ``tree.query(geoms, predicate="intersects")``: by ``i``, then in the tree's order.

    Parameters
    ----------
    geoms
        Object array of (Multi)Polygons or ``None``.
    certified
        The :func:`coverage_certificate` verdict when the caller already has it.
    suspects
        Positions the certificate could not clear (``return_suspects``): every overlapping
        pair has one of them (see :func:`coverage_certificate`). ``None``: every polygon.
    tree
        An STRtree whose positions are those of ``geoms`` (it may hold geometries where
        ``geoms`` has ``None``: those are skipped), when the caller has one.

    Examples
    --------
    >>> from shapely import box
    >>> cells = np.array([box(0, 0, 1, 1), box(1, 0, 2, 1), box(0.5, 0, 1.5, 1)])
    >>> [p.tolist() for p in overlap_pairs(cells, suspects=np.array([2]))]
    [[0, 1], [2, 2]]
    """
    if certified is None:
        certified = is_disjoint_coverage(geoms)
    if certified:
        empty = np.array([], dtype=np.intp)
        return empty, empty
    tree = shapely.STRtree(geoms) if tree is None else tree
    if suspects is None:
        suspects = np.flatnonzero(~shapely.is_missing(geoms))
    found, j = tree.query(geoms[suspects], predicate="intersects")
    i = suspects[found]
    suspect = np.zeros(len(geoms), dtype=bool)
    suspect[suspects] = True
    # a pair of two suspects is found twice: kept once, from its smaller position
    keep = (i != j) & ~shapely.is_missing(geoms[j]) & ((i < j) | ~suspect[j])
    i, j = i[keep], j[keep]
    swapped = i > j
    i, j = np.where(swapped, j, i), np.where(swapped, i, j)
    touching = shapely.touches(geoms[i], geoms[j])
    i, j = i[~touching], j[~touching]
    if swapped.any():
        i, j = query_order(tree, geoms, i, j)
    log.debug("overlap pairs: %d suspects, %d pairs", len(suspects), len(i))
    return i, j


def query_order(
    tree: shapely.STRtree, geoms: np.ndarray, i: np.ndarray, j: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)`` in the order ``tree.query(geoms, predicate=...)`` gives them.

    That order (by ``i``, then the order in which the tree visits ``j``) is the order of the
    self-overlap rows of ``line_conflicts``. Only the ``i`` with several partners are queried
    again, by envelope: a predicate query keeps its envelope candidates in their order.
    ``tree`` holds ``geoms`` (or more, at the positions where ``geoms`` has ``None``).
    """
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    starts = np.flatnonzero(np.r_[True, i[1:] != i[:-1]]) if len(i) else np.array([], int)
    counts = np.diff(np.r_[starts, len(i)])
    several = i[starts[counts > 1]]
    if len(several) == 0:
        return i, j
    qi, qj = tree.query(geoms[several])
    size = np.int64(max(len(tree.geometries), len(geoms)))
    seen = several[qi].astype(np.int64) * size + qj
    by_key = np.argsort(seen)
    rows = np.flatnonzero(np.isin(i, several))
    rank = np.zeros(len(i), dtype=np.int64)
    rank[rows] = by_key[np.searchsorted(seen, i[rows] * size + j[rows], sorter=by_key)]
    order = np.lexsort((rank, i))
    return i[order], j[order]


#: geometries hashed at once by :func:`first_equal` (a batch per thread)
HASH_CHUNK = 50_000


def first_equal(geoms: np.ndarray) -> np.ndarray:
    """Per geometry, the position of the first geometry identical to it (linear time).

    Two geometries are identical when their normalised forms (``shapely.normalize``: rings
    oriented and started at their smallest vertex, holes and parts sorted) have the same
    structure and the same coordinates: a copy whose rings start elsewhere or run the other
    way matches; one with an extra vertex (even a collinear one) does not, and is left to the
    exact pairwise test. Candidates are the geometries sharing their bounding box (a hash of
    the four bounds), grouped by a hash of their vertices that ignores where rings start and
    which way they run (:func:`_normal_hash`, in batches of :data:`HASH_CHUNK`, in threads);
    each is then confirmed against its group's first member
    with ``shapely.equals_exact(..., tolerance=0)`` (as given, then normalised), so a hash
    collision can never merge two different geometries (it only leaves a copy unmerged).

    Returns
    -------
    numpy.ndarray
        One ``intp`` per geometry: the first position holding an identical geometry (its own
        position when it is the first), ``-1`` for a missing or empty one.

    Examples
    --------
    >>> from shapely import Polygon, box
    >>> turned = Polygon([(1, 1), (1, 0), (0, 0), (0, 1)])  # box(0, 0, 1, 1) turned
    >>> first_equal(np.array([box(0, 0, 1, 1), box(1, 0, 2, 1), turned, None])).tolist()
    [0, 1, 0, -1]
    """
    first = np.full(len(geoms), -1, dtype=np.intp)
    present = np.flatnonzero(~shapely.is_missing(geoms) & ~shapely.is_empty(geoms))
    first[present] = present
    if len(present) < 2:
        return first
    same_box = pd.Series(_row_hash(*shapely.bounds(geoms[present]).T)).duplicated(keep=False)
    candidates = present[same_box.to_numpy()]
    if len(candidates) == 0:
        return first
    batches = [candidates[k:k + HASH_CHUNK] for k in range(0, len(candidates), HASH_CHUNK)]
    keys = np.concatenate(map_items(lambda idx: _normal_hash(geoms[idx]), batches))
    codes, _ = pd.factorize(keys)
    _, lead_of_code = np.unique(codes, return_index=True)
    lead = candidates[lead_of_code[codes]]
    copy = np.flatnonzero(lead != candidates)
    a, b = geoms[candidates[copy]], geoms[lead[copy]]
    equal = shapely.equals_exact(a, b, tolerance=0)
    other = ~equal  # turned or restarted rings, or a hash collision
    equal[other] = shapely.equals_exact(shapely.normalize(a[other]), shapely.normalize(b[other]),
                                        tolerance=0)
    first[candidates[copy[equal]]] = lead[copy[equal]]
    log.debug("identical geometries: %d share a bounding box, %d are copies (%d hash "
              "collisions)", len(candidates), int(equal.sum()), int((~equal).sum()))
    return first


def _normal_hash(geoms: np.ndarray) -> np.ndarray:
    """64-bit hash that identical geometries share whatever their rings' start and direction.

    A polygon without holes is hashed by the multiset of its ring's vertices (the closing
    repeat left out; no normalisation, which costs ~2 µs a polygon), any other geometry by
    its normalised coordinates and their places.
    """
    simple = (shapely.get_type_id(geoms) == _POLYGON) & (shapely.get_num_interior_rings(geoms)
                                                          == 0)
    out = np.empty(len(geoms), dtype=np.uint64)
    out[simple] = _coordinate_hash(geoms[simple], ordered=False)
    out[~simple] = _coordinate_hash(shapely.normalize(geoms[~simple]), ordered=True)
    return out


def _coordinate_hash(geoms: np.ndarray, *, ordered: bool) -> np.ndarray:
    """Hash of each (non-empty) geometry's coordinates: their places count when ``ordered``,
    else their multiset with the first coordinate (a ring's closing repeat) counted once."""
    if len(geoms) == 0:
        return np.zeros(0, dtype=np.uint64)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    counts = np.bincount(owner, minlength=len(geoms))
    starts = np.cumsum(counts) - counts
    place = np.arange(len(coords)) - starts[owner]
    per_vertex = _row_hash(coords[:, 0], coords[:, 1], *([place] if ordered else []))
    total = np.add.reduceat(per_vertex, starts)
    if not ordered:
        total -= per_vertex[starts]
    return _row_hash(total, counts, np.full(len(geoms), ordered))


def _row_hash(*columns: np.ndarray) -> np.ndarray:
    """64-bit hash of each row of equally long numeric columns (floats by their bits)."""
    out = np.zeros(len(columns[0]), dtype=np.uint64)
    for column in columns:
        column = np.ascontiguousarray(column)
        bits = column.view(np.uint64) if column.dtype == np.float64 else column.astype(np.uint64)
        out = pd.util.hash_array(out ^ bits)
    return out


def with_copies(i: np.ndarray, j: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping pairs of a layer, from those among its distinct features and its copies.

    ``i, j`` are the overlapping pairs among the features that are their own
    :func:`first_equal`; ``first`` is :func:`first_equal` of the layer. Identical polygons
    overlap entirely, so each group of identical features gives all its pairs; a copy
    overlaps another feature exactly when its original does, so each pair of distinct
    features gives every pair of their groups' members. Returns pairs ``a < b``, grouped by
    kind (see :func:`query_order`).

    Examples
    --------
    >>> first = np.array([0, 1, 0, 3, 0])  # 2 and 4 copy 0
    >>> [p.tolist() for p in with_copies(np.array([0]), np.array([1]), first)]
    [[0, 0, 2, 0, 1, 1], [2, 4, 4, 1, 2, 4]]
    """
    k = np.flatnonzero(first >= 0)
    lead = first[k]
    if (lead == k).all():
        return i, j
    a, b = _pairs_within(lead, k)
    if len(i):
        groups = pd.DataFrame({"lead": lead, "k": k})
        both = (pd.DataFrame({"g": i, "h": j})
                .merge(groups, left_on="g", right_on="lead")
                .merge(groups, left_on="h", right_on="lead"))
        x, y = both["k_x"].to_numpy(), both["k_y"].to_numpy()
        a, b = np.r_[a, np.minimum(x, y)], np.r_[b, np.maximum(x, y)]
    return a, b


def _pairs_within(lead: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``a < b`` of positions ``k`` that share their ``lead``."""
    order = np.lexsort((k, lead))
    lead, k = lead[order], k[order]
    starts = np.flatnonzero(np.r_[True, lead[1:] != lead[:-1]])
    rank = np.arange(len(k)) - np.repeat(starts, np.diff(np.r_[starts, len(k)]))
    # the member of rank r pairs with the r members before it in its group
    step = np.arange(rank.sum()) - np.repeat(np.cumsum(rank) - rank, rank)
    a = k[np.repeat(np.arange(len(k)) - rank, rank) + step]
    return a, np.repeat(k, rank)


def is_disjoint_coverage(geoms: np.ndarray) -> bool:
    """Cheap certificate that polygons do not overlap (see :func:`coverage_certificate`)."""
    return coverage_certificate(geoms)[0]


#: polygons per chunk of :func:`coverage_certificate` (GEOS' coverage union is superlinear on a
#: whole province, linear on chunks of this size)
CERTIFICATE_CHUNK = 25_000


def coverage_certificate(
    geoms: np.ndarray,
    *,
    areas: np.ndarray | None = None,
    chunk_size: int | None = None,
    return_suspects: bool = False,
) -> tuple[bool, np.ndarray | None] | tuple[bool, np.ndarray | None, np.ndarray]:
    """Certify that polygons do not overlap, and return their union in disjoint pieces.

    **One level.** GEOS' coverage union keeps the segments that no other polygon repeats (its
    boundary-chain noder) and builds its rings from them without noding. The certificate of a
    set of polygons is: no failure, a valid result, and a result area equal to the sum ``S``
    of the input areas within ``tol = max(1e-3 m², 1e-12 S)``. What it proves, given that
    the boundary of a valid result is exactly the kept segments, each oriented by its
    polygon: let ``w(x)`` count the polygons containing ``x``. Dropping a segment repeated
    in opposite orientations (a shared edge) leaves the winding number unchanged; dropping
    one repeated in the same orientation lowers it by 2. So the result's indicator is
    ``r = w - 2d`` with an integer ``d``. A valid result has ``r`` in {0, 1}; as ``w >= 0``,
    ``2d >= -1``, so ``d >= 0``; where ``d = 0``, ``w = r <= 1``: no overlap. Area equality
    gives ``2∫d = S - area(result) <= tol``, so whatever overlaps covers at most ``tol / 2``
    in total: a crossing or nested overlap makes the result invalid, a duplicate makes area
    vanish.

    **Two levels.** Layers of more than ``chunk_size`` polygons are split into spatially
    compact chunks (a k-d split of their bounding-box centres). Each chunk is certified as
    above (linear work; in threads, see :func:`spatialplan._parallel.n_threads`: GEOS
    releases the GIL), then the chunk unions are certified the same way: adjacent chunk
    unions share their edges vertex for vertex, being made of the same polygon edges. The
    whole union's area is finally checked against the sum of all input areas with the
    one-level tolerance. Two polygons of one chunk do not overlap by the chunk's
    certificate; two of different chunks lie in two chunk unions whose interiors are
    disjoint by the second-level certificate (an overlapping pair makes its chunk unions
    overlap), so they do not overlap either. The deficits ``2∫d`` of both levels are all
    ``>= 0`` and add up to the one checked difference, so the total overlap stays within
    ``tol / 2`` as with one level.

    A rejection at any level (GEOS failure, invalid result, missing area) rejects the whole
    layer, including a clean layer whose shared edges do not match vertex for vertex: the
    caller then runs the exact pairwise test, so a rejection costs time, never a wrong
    number.

    **Suspects.** With ``return_suspects``, a rejected layer also says which polygons the
    exact test must look at. The chunks that certified are certified together at the second
    level (their unions, against the sum of their polygons' areas). If that passes, two
    polygons of certified chunks do not overlap, by the argument above restricted to those
    chunks (same chunk: its certificate; different chunks: the second level, which needs
    nothing from the rejected chunks). So every overlapping pair has a polygon in a rejected
    chunk, and testing each polygon of the rejected chunks exactly against all its
    neighbours (:func:`overlap_pairs`) finds every pair. If it fails, every polygon is a
    suspect. The tolerance is the one a certified layer is trusted with: overlaps totalling
    at most ``tol / 2`` among the certified chunks are not looked for.

    Parameters
    ----------
    geoms
        Object array of (Multi)Polygons; ``None`` and empty geometries are ignored.
    areas
        ``shapely.area(geoms)`` when the caller already has it.
    chunk_size
        Polygons per chunk (default :data:`CERTIFICATE_CHUNK`).
    return_suspects
        Also return the suspects.

    Returns
    -------
    certified
        ``True`` when the polygons are certified not to overlap.
    parts
        When certified: the polygons of the (chunk) unions, whose interiors are pairwise
        disjoint and whose union is the union of ``geoms``. ``None`` when not certified or
        when no polygon is present.
    suspects
        With ``return_suspects``: sorted positions in ``geoms`` of the polygons that may
        overlap another (empty when certified).

    Examples
    --------
    >>> from shapely import box
    >>> cells = np.array([box(x, 0, x + 1, 1) for x in range(6)] + [box(0.5, 0, 1.5, 1)])
    >>> certified, parts, suspects = coverage_certificate(cells, chunk_size=3,
    ...                                                   return_suspects=True)
    >>> certified, parts, suspects.tolist()
    (False, None, [0, 1, 6])
    """
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    positions = np.flatnonzero(present)
    polys = geoms[present]
    verdict = _certify(polys, areas=None if areas is None else np.asarray(areas, float)[present],
                       chunk_size=CERTIFICATE_CHUNK if chunk_size is None else chunk_size,
                       localise=return_suspects)
    certified, parts, suspects = verdict
    if not return_suspects:
        return certified, parts
    return certified, parts, positions[suspects]


def _certify(
    polys: np.ndarray, *, areas: np.ndarray | None, chunk_size: int, localise: bool
) -> tuple[bool, np.ndarray | None, np.ndarray]:
    """:func:`coverage_certificate` of present polygons; suspects as positions in ``polys``
    (computed only when ``localise``, else every polygon of a rejected layer)."""
    everyone = np.arange(len(polys))
    if len(polys) <= 1:
        return True, (shapely.get_parts(polys) if len(polys) else None), everyone[:0]
    areas = shapely.area(polys) if areas is None else areas
    chunks = _spatial_chunks(polys, chunk_size)
    unions = _chunk_unions(polys, areas, chunks)
    passed = ~shapely.is_missing(unions)
    if not passed.all() and not localise:
        return False, None, everyone
    cleared = [chunk for chunk, ok in zip(chunks, passed, strict=True) if ok]
    together = len(cleared) <= 1 or _certified_together(
        unions[passed], float(areas[np.concatenate(cleared)].sum()))
    if passed.all() and together:
        return True, shapely.get_parts(unions), everyone[:0]
    if not together:
        log.debug("coverage certificate: %d chunk unions rejected", len(cleared))
        return False, None, everyone
    rejected = [chunk for chunk, ok in zip(chunks, passed, strict=True) if not ok]
    return False, None, np.sort(np.concatenate(rejected))


def _certified_together(unions: np.ndarray, total: float) -> bool:
    """The second level: chunk unions of polygons of total area ``total`` certified together."""
    merged = _certified_union(unions, float(shapely.area(unions).sum()))
    return merged is not None and _same_area(float(shapely.area(merged)), total)


def _same_area(area: float, total: float) -> bool:
    """The certificate's area test: equal within ``max(1e-3 m², 1e-12 × total)``."""
    return abs(area - total) <= max(1e-3, 1e-12 * total)


def _certified_union(geoms: np.ndarray, total: float) -> shapely.Geometry | None:
    """Coverage union of ``geoms`` (area ``total``) if it passes the one-level certificate."""
    try:
        merged = shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:
        return None
    if _same_area(float(shapely.area(merged)), total) and bool(shapely.is_valid(merged)):
        return merged
    return None


def _spatial_chunks(geoms: np.ndarray, size: int) -> list[np.ndarray]:
    """Positions of ``geoms`` in spatially compact chunks of at most ``size`` (``size >= 1``).

    The k-d split of the dask engine's partitions (:func:`spatialplan._kdsplit.partition_points`)
    of the bounding-box centres. Positions within a chunk keep the input order.
    """
    if len(geoms) <= size:
        return [np.arange(len(geoms))]
    bounds = shapely.bounds(geoms)
    centres = np.column_stack([(bounds[:, 0] + bounds[:, 2]) / 2,
                               (bounds[:, 1] + bounds[:, 3]) / 2])
    _, owner = partition_points(centres, partition_size=size)
    order = np.argsort(owner, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(owner[order])) + 1)


def _chunk_unions(polys: np.ndarray, areas: np.ndarray, chunks: list[np.ndarray]) -> np.ndarray:
    """Certified coverage union of each chunk (in threads); ``None`` for a rejected chunk.

    Chunks hold distinct geometries, so no geometry is shared between threads (and prepared
    ones stay in the calling thread, :func:`spatialplan._parallel.map_items`).
    """
    def one(idx: np.ndarray) -> shapely.Geometry | None:
        return _certified_union(polys[idx], float(areas[idx].sum()))

    unions = map_items(one, chunks, geoms=[polys])
    rejected = sum(u is None for u in unions)
    log.debug("coverage certificate: %d polygons in %d chunks, %d rejected", len(polys),
              len(chunks), rejected)
    out = np.empty(len(unions), dtype=object)
    out[:] = unions
    return out


#: most vertices :func:`union_zone_areas` may clip in total before the per-zone path is used
MAX_CLIP_COORDS = 20_000_000


def union_zone_areas(
    zones: np.ndarray, parts: np.ndarray | shapely.Geometry, *, grid_size: float | None
) -> np.ndarray | None:
    """Area of a dissolved layer in each zone, from polygons with disjoint interiors.

    ``parts`` are e.g. the parts of a certified coverage (:func:`coverage_certificate`), or a
    dissolved geometry whose parts are used. They are indexed in an STRtree; each (zone,
    part) pair is clipped to the zone's bounding box (``clip_by_rect``, linear; the zone lies
    inside its box, so the intersection is unchanged) and intersected with the zone once,
    vectorised. Pairs whose interiors do not meet (exact DE-9IM ``touches``, the #1871 guard)
    carry no area.

    Returns
    -------
    numpy.ndarray or None
        One area per zone, or ``None`` when the parts are so large that clipping them once
        per zone would cost more than :data:`MAX_CLIP_COORDS` vertices (the caller then
        uses the per-zone boundary path).
    """
    areas = np.zeros(len(zones))
    parts = shapely.get_parts(np.atleast_1d(np.asarray(parts, dtype=object)))
    parts = parts[~shapely.is_empty(parts)]
    if len(parts) == 0:
        return areas
    _prepared(zones[~shapely.is_missing(zones)])
    zi, pi = shapely.STRtree(parts).query(zones, predicate="intersects")
    if int(shapely.get_num_coordinates(parts)[pi].sum()) > MAX_CLIP_COORDS:
        log.debug("union zones: %d pairs too large to clip; per-zone path", len(zi))
        return None
    clipped = _clip_to_boxes(parts[pi], zones[zi])
    live = np.flatnonzero(~shapely.is_empty(clipped))
    live = live[~shapely.touches(zones[zi[live]], clipped[live])]
    cut = safe_overlay(shapely.intersection, zones[zi[live]], clipped[live],
                       grid_size=grid_size)
    areas += np.bincount(zi[live], weights=shapely.area(cut), minlength=len(zones))
    log.debug("union zones: %d parts, %d zone-part pairs, %d overlays",
              len(parts), len(zi), len(live))
    return areas


def _clip_to_boxes(geoms: np.ndarray, zones: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """``geoms`` clipped to the bounding boxes of ``zones`` (enlarged by ``margin``).

    ``clip_by_rect`` is linear and cheap but may return an invalid polygon; those pairs keep
    the unclipped geometry, so the later intersection is always exact.
    """
    bounds = shapely.bounds(zones)
    out = np.empty(len(geoms), dtype=object)
    for k, (geom, (x0, y0, x1, y1)) in enumerate(zip(geoms, bounds, strict=True)):
        out[k] = shapely.clip_by_rect(geom, x0 - margin, y0 - margin, x1 + margin, y1 + margin)
    bad = ~shapely.is_valid(out) | ~np.isin(shapely.get_type_id(out), [_POLYGON, _MULTIPOLYGON])
    bad &= ~shapely.is_empty(out)
    out[bad] = geoms[bad]
    return out


def _zones_with_overlap(clip: Clip, oi: np.ndarray, oj: np.ndarray) -> np.ndarray:
    """Zones holding pieces of both patches of an overlapping pair."""
    if len(oi) == 0 or len(clip.zone) == 0:
        return np.array([], dtype=np.intp)
    pairs = pd.DataFrame({"zone": clip.zone, "patch": clip.patch})
    over = pd.DataFrame({"a": oi, "b": oj})
    both = over.merge(pairs, left_on="a", right_on="patch").merge(
        pairs, left_on=["b", "zone"], right_on=["patch", "zone"]
    )
    return np.unique(both["zone"].to_numpy())


def dissolved_zone_areas(
    zones: np.ndarray,
    patches: np.ndarray,
    clip: Clip,
    *,
    grid_size: float | None,
    overlaps: tuple[np.ndarray, np.ndarray],
    only_overlapping: bool = False,
) -> tuple[np.ndarray, dict[int, shapely.Geometry], np.ndarray]:
    """Area of the dissolved patches inside each zone (overlapping patches counted once).

    Pieces of non-overlapping patches are summed; a zone holding pieces of two overlapping
    patches is recomputed as ``area(zone ∩ union(its patches))``, in a loop with a progress
    bar. With ``only_overlapping``, only its patches that are in some pair are dissolved and
    the others' pieces are summed: a patch in no pair meets no other patch's interior, so
    ``area(zone ∩ ∪P) = Σ area(zone ∩ p) (p in no pair) + area(zone ∩ ∪{p in a pair})``.
    (Planar areas only: a geodesic area depends on where the line is cut, by ~1e-7.)

    Returns
    -------
    areas
        One value per zone (0 where no patch reaches it).
    dissolved
        Zone position → the zone's part of the union of the patches dissolved there
        (``None`` when that has no area), for the zones that needed a union.
    merged
        Mask over ``clip``'s entries: the pieces ``dissolved`` stands for (the others add up).
    """
    overlapping = np.ones(len(patches), dtype=bool)
    if only_overlapping:
        overlapping[:] = False
        overlapping[overlaps[0]] = True
        overlapping[overlaps[1]] = True
    flagged = _zones_with_overlap(clip, *overlaps)
    merged = np.isin(clip.zone, flagged) & overlapping[clip.patch]
    areas = np.bincount(clip.zone[~merged], weights=clip.area[~merged],
                        minlength=len(zones)).astype(float)
    dissolved: dict[int, shapely.Geometry] = {}
    for z in progress(flagged, total=len(flagged), desc="dissolve overlapping patches"):
        members = np.unique(clip.patch[merged & (clip.zone == z)])
        joined = safe_union(patches[members], grid_size=grid_size)
        inside = safe_overlay(shapely.intersection, zones[[z]], np.array([joined]),
                              grid_size=grid_size)[0]
        inside = polygonal_part(np.array([inside], dtype=object))[0]
        dissolved[int(z)] = inside
        areas[z] += 0.0 if inside is None else float(shapely.area(inside))
    if len(flagged):
        log.debug("dissolved %d pieces in %d zones", int(merged.sum()), len(flagged))
    return areas, dissolved, merged


def dissolved_area(
    geoms: np.ndarray,
    overlaps: tuple[np.ndarray, np.ndarray],
    *,
    grid_size: float | None,
    areas: np.ndarray | None = None,
) -> float:
    """Area of the union of ``geoms``, given their overlapping pairs (:func:`overlap_pairs`).

    The polygons in no pair overlap nothing and are summed; only those in a pair are
    dissolved (:func:`union`).

    Examples
    --------
    >>> from shapely import box
    >>> cells = np.array([box(0, 0, 1, 1), box(1, 0, 2, 1), box(0.5, 0, 1.5, 1), None])
    >>> dissolved_area(cells, (np.array([0, 1]), np.array([2, 2])), grid_size=None)
    2.0
    """
    present = ~shapely.is_missing(geoms)
    areas = shapely.area(geoms) if areas is None else areas
    overlapping = np.zeros(len(geoms), dtype=bool)
    overlapping[overlaps[0]] = True
    overlapping[overlaps[1]] = True
    total = float(areas[present & ~overlapping].sum())
    if overlapping.any():
        total += float(shapely.area(union(geoms[overlapping], grid_size=grid_size)))
    return total


def geodesic_areas(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    """Ellipsoidal area (m²) of each geometry on the CGCS2000 ellipsoid.

    Vertices are transformed to EPSG:4490 longitude/latitude (``always_xy``) in one vectorised
    call; the geodesic polygon area is then computed by ``pyproj.Geod(ellps="GRS80")``
    (Karney's algorithm). GRS80 and the CGCS2000 ellipsoid share ``a`` and differ in ``1/f``
    by about 1e-9: the semi-minor axes differ by about 0.1 mm, far below any area we report.
    Rings are oriented (exterior counter-clockwise, holes clockwise) first, as ``Geod``
    expects. Missing geometries give NaN.
    """
    out = np.full(len(geoms), np.nan)
    present = np.flatnonzero(~shapely.is_missing(geoms))
    if len(present) == 0:
        return out
    transformer = Transformer.from_crs(crs, "EPSG:4490", always_xy=True)

    def to_lonlat(xy: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    lonlat = shapely.transform(shapely.orient_polygons(geoms[present]), to_lonlat)
    parts, part_owner = shapely.get_parts(lonlat, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    bounds = np.searchsorted(ring_of, np.arange(len(rings) + 1))
    geod = Geod(ellps="GRS80")
    # signed ring areas (exteriors counter-clockwise > 0, holes clockwise < 0), as
    # Geod.geometry_area_perimeter sums them, without building shapely coordinate sequences
    ring_area = np.array([
        geod.polygon_area_perimeter(coords[a:b, 0], coords[a:b, 1])[0]
        for a, b in progress(zip(bounds[:-1], bounds[1:], strict=True), total=len(rings),
                             desc="ellipsoidal areas")
    ], dtype=float)
    per_part = np.bincount(ring_part, weights=ring_area, minlength=len(parts))
    out[present] = np.abs(np.bincount(part_owner, weights=per_part, minlength=len(present)))
    return out
