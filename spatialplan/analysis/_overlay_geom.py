"""Geometry kernels behind :mod:`spatialplan.analysis.overlay` (private).

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
(:func:`spatialplan.analysis._overlay_pairs.coverage_certificate`, chunk by chunk) is measured on
the certificate's own pieces instead (:func:`union_zone_areas`): one clipped overlay per (zone,
piece) pair. Which features of a layer overlap each other is decided in
:mod:`spatialplan.analysis._overlay_pairs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from spatialplan.core._geodesic import geodesic_areas as geodesic_areas  # re-exported
from spatialplan.core._parallel import is_valid, map_chunks, map_prepared, query_chunks
from spatialplan.core._progress import progress

__all__ = [
    "MAX_CLIP_COORDS",
    "OVERLAY_CHUNK",
    "Clip",
    "clip_to_zones",
    "coverage_zone_areas",
    "dissolve",
    "dissolved_area",
    "dissolved_zone_areas",
    "geodesic_areas",
    "outside_parts",
    "polygonal_part",
    "safe_overlay",
    "safe_union",
    "snap_to_grid",
    "snap_with_report",
    "union",
    "union_zone_areas",
    "union_zone_pieces",
]

log = logging.getLogger("spatialplan.analysis.overlay")

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
    geometries are tested for validity (in threads, :func:`spatialplan.core._parallel.map_chunks`);
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
    """Snap like :func:`snap_to_grid` and also return the positions kept off the grid.

    Those geometries stay off the grid because snapping would have emptied them or left them invalid
    (for the caller to report).
    """
    kept = np.array([], dtype=np.intp)
    if grid_size is None or len(geoms) == 0:
        return geoms, kept
    bad = _off_grid_positions(geoms, grid_size)
    if len(bad) == 0:
        return geoms, kept
    out = geoms.copy()
    snapped = shapely.transform(geoms[bad], _grid_rounder(grid_size), include_z=None)
    broken = np.flatnonzero(~map_chunks(is_valid, snapped))
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


def _off_grid_positions(geoms: np.ndarray, grid_size: float) -> np.ndarray:
    """Positions (sorted) of the geometries with a coordinate off the grid (:func:`_off_grid`).

    The coordinates are read :data:`_GEOM_BLOCK` geometries at a time: one array of a whole
    layer's (144 MB at 10⁶ parcels) cost more in fresh memory pages than the test itself
    (0.35 s against 0.11 s).
    """
    found = [np.array([], dtype=np.intp)]
    for lo in range(0, len(geoms), _GEOM_BLOCK):
        part = geoms[lo:lo + _GEOM_BLOCK]
        off = _off_grid(shapely.get_coordinates(part), grid_size)
        if off is not None:
            owner = np.repeat(np.arange(len(part)), shapely.get_num_coordinates(part))
            found.append(lo + np.unique(owner[off]))
    return np.concatenate(found)


#: geometries per block of :func:`_off_grid_positions`
_GEOM_BLOCK = 8192


def _off_grid(coords: np.ndarray, grid_size: float) -> np.ndarray | None:
    """Flag, per coordinate row, whether x or y lies more than 1e-6 grid cells off the grid.

    ``None`` when every coordinate is on it. Computed on blocks of :data:`_BLOCK` rows, whose
    scratch copy stays in the CPU cache (0.04 s instead of 0.9 s for 9·10⁶ rows).
    """
    flags = np.empty(len(coords), dtype=bool)
    for lo in range(0, len(coords), _BLOCK):
        scaled = coords[lo:lo + _BLOCK] / grid_size
        np.subtract(scaled, np.rint(scaled), out=scaled)
        np.abs(scaled, out=scaled)
        np.greater(np.maximum(scaled[:, 0], scaled[:, 1]), 1e-6, out=flags[lo:lo + _BLOCK])
    return flags if flags.any() else None


#: rows of :func:`_off_grid`'s blocks
_BLOCK = 1 << 16


def _grid_rounder(grid_size: float):
    """Round x and y to the nearest grid node, as GEOS' precision model rounds them.

    With an integral scale (1000 for 1 mm) ``rint(c * scale) / scale``, the double nearest to the
    decimal node, so a coordinate already on the grid keeps its exact value (vertices shared with
    on-grid neighbours stay shared); ``rint(c / grid) * grid`` can be one ulp off.
    """
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
    """Snap-round ``geom`` on the grid and return it in floating precision.

    ``None`` when that fails or the result is empty or invalid.
    """
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
#: fewest zones per thread of a predicate query of zones (a zone meets hundreds of patches)
ZONE_CHUNK = 16


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
        of ``patches`` and tested prepared (:func:`spatialplan.core._parallel.map_prepared`).
    grid_size
        Precision grid of the overlays (m); ``None`` for floating precision.
    keep_geometry
        Also return the piece geometries.
    tree, zone_area, patch_area
        The STRtree of ``patches`` and ``shapely.area`` of both arrays, when the caller
        already has them. The tree may also hold geometries where ``patches`` has ``None``
        (a layer's copies left out, see :func:`spatialplan.analysis._overlay_pairs.first_equal`):
        those are skipped.

    Returns
    -------
    Clip
        One entry per (zone, patch) pair whose interiors intersect and whose piece has area.
    """
    if tree is None:
        tree = shapely.STRtree(patches)
    zi, pi = query_chunks(tree, zones, predicate="intersects", min_chunk=ZONE_CHUNK)
    live = ~shapely.is_missing(patches[pi])  # the tree may hold geometries patches leaves out
    zi, pi = zi[live], pi[live]
    zone_area = shapely.area(zones) if zone_area is None else zone_area
    patch_area = shapely.area(patches) if patch_area is None else patch_area
    n_pairs = len(zi)

    inside = map_prepared(shapely.contains_properly, zones, zi, patches[pi])

    big = ~inside & (patch_area[pi] > zone_area[zi])
    covers_zone = np.zeros(n_pairs, dtype=bool)
    if big.any():
        # the patches are prepared as private copies: the layer's own objects stay unprepared
        covers_zone[big] = map_prepared(shapely.contains_properly, patches, pi[big],
                                        zones[zi[big]], in_place=False)
    edge = np.flatnonzero(~inside & ~covers_zone)
    # exact DE-9IM guard (shapely #1871): touching-only pairs never carry area
    touching = map_prepared(shapely.touches, zones, zi[edge], patches[pi[edge]])
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
    """Part of each present patch outside ``outline`` (the union of ``zones``).

    A patch covered by the outline has no outside part; one only touching it (exact DE-9IM,
    the #1871 guard) lies wholly outside; the others are cut with a safeguarded difference.

    Parameters
    ----------
    patches
        Object array of (Multi)Polygons or ``None``.
    outline
        The union of the zones, or ``None`` (no zone: every patch lies outside); tested
        prepared (:func:`_outline_test`).
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
    test = test[~_outline_test(shapely.covers, outline, patches[test])]
    # the exact guard again: a patch only touching the outline lies wholly outside
    whole[test[_outline_test(shapely.touches, outline, patches[test])]] = True
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


def _outline_test(func, outline: shapely.Geometry, *arrays: np.ndarray) -> np.ndarray:
    """``func(outline, *arrays)`` with the outline prepared, in threads (``map_prepared``)."""
    return map_prepared(func, np.array([outline], dtype=object),
                        np.zeros(len(arrays[0]), np.intp), *arrays)


def _screen(
    patches: np.ndarray, positions: np.ndarray, outline: shapely.Geometry,
    tree: shapely.STRtree,
) -> tuple[np.ndarray, np.ndarray]:
    """Single polygons that do not meet the outline's boundary: inside it or outside it.

    Exact: the boundary is cut into its segments, which are matched with the patches by the
    STRtree and an exact ``intersects``; a polygon (connected) meeting none of them lies
    wholly in the outline's interior or wholly in its exterior, which one of its points
    decides: a corner of its bounding box when that box meets no segment's box (the box then
    lies on one side too; no vertex extracted), else its first vertex.

    Returns
    -------
    covered, disjoint
        Boolean masks over ``patches``.
    """
    rings = shapely.get_rings(shapely.get_parts(np.array([outline], dtype=object)))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    segments = shapely.linestrings(np.stack([coords[:-1][same], coords[1:][same]], axis=1))
    si, pi = query_chunks(tree, segments, min_chunk=256)
    near = np.zeros(len(patches), dtype=bool)  # the box meets a segment's box
    near[pi] = True
    meets = np.zeros(len(patches), dtype=bool)
    meets[pi[map_chunks(shapely.intersects, segments[si], patches[pi])]] = True
    free = positions[~meets[positions]]
    free = free[shapely.get_type_id(patches[free]) == _POLYGON]
    # the point tested: a box meeting no segment's box lies on one side of the boundary, so
    # its corner decides; a polygon near a segment but not meeting it, its first vertex
    first = shapely.bounds(patches[free])[:, :2]
    close = np.flatnonzero(near[free])
    counts = shapely.get_num_coordinates(patches[free[close]])
    first[close] = shapely.get_coordinates(patches[free[close]])[np.cumsum(counts) - counts]
    inside = _outline_test(shapely.contains_xy, outline, first[:, 0], first[:, 1])
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

    Only for patches that passed :func:`spatialplan.analysis._overlay_pairs.is_disjoint_coverage`.
    Patches lying ``contains_properly`` inside a zone add their area; the patches crossing the
    zone's boundary (after the DE-9IM touch guard) are merged with a coverage union, which is
    exact and linear for a valid coverage, and intersected with the zone once.
    """
    tree = shapely.STRtree(patches)
    zi, pi = query_chunks(tree, zones, predicate="intersects", min_chunk=ZONE_CHUNK)
    patch_area = shapely.area(patches)
    inside = map_prepared(shapely.contains_properly, zones, zi, patches[pi])
    areas = np.bincount(
        zi[inside], weights=patch_area[pi[inside]], minlength=len(zones)
    ).astype(float)
    edge = np.flatnonzero(~inside)
    edge = edge[~map_prepared(shapely.touches, zones, zi[edge], patches[pi[edge]])]
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


#: most vertices :func:`union_zone_areas` may clip in total before the per-zone path is used
MAX_CLIP_COORDS = 20_000_000


def union_zone_areas(
    zones: np.ndarray, parts: np.ndarray | shapely.Geometry, *, grid_size: float | None
) -> np.ndarray | None:
    """Area of a dissolved layer in each zone, from polygons with disjoint interiors.

    ``parts`` are e.g. the parts of a certified coverage
    (:func:`spatialplan.analysis._overlay_pairs.coverage_certificate`), or a dissolved geometry
    whose parts are used; they are cut by :func:`union_zone_pieces`.

    Returns
    -------
    numpy.ndarray or None
        One area per zone, or ``None`` when the parts are so large that clipping them once
        per zone would cost more than :data:`MAX_CLIP_COORDS` vertices (the caller then
        uses the per-zone boundary path).
    """
    pieces = union_zone_pieces(zones, parts, grid_size=grid_size)
    if pieces is None:
        return None
    zone, cut = pieces
    return np.bincount(zone, weights=shapely.area(cut), minlength=len(zones)).astype(float)


def union_zone_pieces(
    zones: np.ndarray, parts: np.ndarray | shapely.Geometry, *, grid_size: float | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pieces of a dissolved layer in each zone, from polygons with disjoint interiors.

    The parts (see :func:`union_zone_areas`) are indexed in an STRtree; each (zone, part) pair
    is clipped to the zone's bounding box (``clip_by_rect``, linear; the zone lies inside its
    box, so the intersection is unchanged) and intersected with the zone once, vectorised.
    Pairs whose interiors do not meet (exact DE-9IM ``touches``, the #1871 guard) carry no
    area.

    Returns
    -------
    tuple or None
        ``(zone, piece)``: the zone position of each piece and the pieces (their interiors
        are disjoint), or ``None`` when clipping would cost more than :data:`MAX_CLIP_COORDS`
        vertices.
    """
    nothing = (np.array([], dtype=np.intp), np.array([], dtype=object))
    parts = np.atleast_1d(np.asarray(parts, dtype=object))
    if not (shapely.get_type_id(parts) == _POLYGON).all():  # polygons are their own parts
        parts = shapely.get_parts(parts)
    parts = parts[~shapely.is_empty(parts)]
    if len(parts) == 0:
        return nothing
    zi, pi = query_chunks(shapely.STRtree(parts), zones, predicate="intersects",
                          min_chunk=ZONE_CHUNK)
    if int(shapely.get_num_coordinates(parts)[pi].sum()) > MAX_CLIP_COORDS:
        log.debug("union zones: %d pairs too large to clip; per-zone path", len(zi))
        return None
    clipped = _clip_to_boxes(parts[pi], zones[zi], groups=zi)
    live = np.flatnonzero(~shapely.is_empty(clipped))
    live = live[~map_prepared(shapely.touches, zones, zi[live], clipped[live],
                              min_chunk=OVERLAY_CHUNK)]
    cut = safe_overlay(shapely.intersection, zones[zi[live]], clipped[live],
                       grid_size=grid_size)
    log.debug("union zones: %d parts, %d zone-part pairs, %d overlays",
              len(parts), len(zi), len(live))
    return zi[live], cut


def _clip_to_boxes(geoms: np.ndarray, zones: np.ndarray, margin: float = 1.0, *,
                   groups: np.ndarray | None = None) -> np.ndarray:
    """``geoms`` clipped to the bounding boxes of ``zones`` (enlarged by ``margin``).

    ``clip_by_rect`` is linear and cheap but may return an invalid polygon; those pairs keep
    the unclipped geometry, so the later intersection is always exact. It takes one rectangle
    per call, so the geometries are clipped in one vectorised call per distinct box (a zone
    has many parts), not one Python call per pair. ``groups``: a label per row, equal for
    rows of one zone (the zone's position), when the caller has it: the rows are then
    grouped by it, not by sorting the boxes (the same clips: one zone, one box). The
    validity of the clips is tested in threads.
    """
    out = np.empty(len(geoms), dtype=object)
    if len(geoms) == 0:
        return out
    bounds = shapely.bounds(zones)
    if groups is None:
        _, first, which = np.unique(bounds, axis=0, return_index=True, return_inverse=True)
    else:
        _, first, which = np.unique(groups, return_index=True, return_inverse=True)
    which = which.reshape(-1)
    order = np.argsort(which, kind="stable")
    starts = np.searchsorted(which[order], np.arange(len(first) + 1))
    for k, (x0, y0, x1, y1) in enumerate(bounds[first]):
        rows = order[starts[k]:starts[k + 1]]
        out[rows] = shapely.clip_by_rect(geoms[rows], x0 - margin, y0 - margin, x1 + margin,
                                         y1 + margin)
    bad = ~map_chunks(is_valid, out) | ~np.isin(shapely.get_type_id(out),
                                                [_POLYGON, _MULTIPOLYGON])
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
    ``area(zone ∩ union(P)) = Σ area(zone ∩ p) (p in no pair) + area(zone ∩ union{p in a pair})``.
    (Ellipsoidal areas too: :func:`geodesic_areas` splits long edges, so a geodesic area
    depends on where the line is cut by < 1e-9 only.)

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
    """Return the area of the union of ``geoms``, given their overlapping pairs.

    The pairs are those of :func:`spatialplan.analysis._overlay_pairs.overlap_pairs`.

    The polygons in no pair overlap nothing and are summed; only those in a pair are
    dissolved, with :func:`safe_union` directly: polygons that overlap are never a valid
    coverage, so :func:`union`'s coverage test would only cost time.

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
        total += float(shapely.area(safe_union(geoms[overlapping], grid_size=grid_size)))
    return total
