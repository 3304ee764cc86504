"""Overlapping pairs within one layer, and the coverage certificate that avoids them (private).

Helpers of :mod:`spatialplan.analysis.overlay` for a layer's self-overlaps, on plain numpy object
arrays of shapely (Multi)Polygons (``None`` for a missing geometry) in one projected metric CRS:

- :func:`coverage_certificate` proves that a layer's polygons do not overlap (a GEOS coverage
  union per k-d chunk, then of the chunk unions) and, when it cannot, names the suspects: the
  polygons the exact pairwise test must look at;
- :func:`overlap_pairs` is that exact test (STRtree, then DE-9IM ``touches``), in the row order
  of ``line_conflicts`` (:func:`query_order`);
- :func:`first_equal` finds the exact copies of a layer's features in linear time and
  :func:`with_copies` puts them back into the pairs found among the distinct features.

The geometry kernels that measure areas from these pairs live in
:mod:`spatialplan.analysis._overlay_geom`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import shapely

from spatialplan.analysis._overlay_geom import _POLYGON
from spatialplan.core._kdsplit import partition_points
from spatialplan.core._parallel import is_valid, map_chunks, map_items

__all__ = [
    "CERTIFICATE_CHUNK",
    "HASH_CHUNK",
    "REFINE_CHUNK",
    "coverage_certificate",
    "first_equal",
    "is_disjoint_coverage",
    "overlap_pairs",
    "query_order",
    "with_copies",
]

log = logging.getLogger("spatialplan.analysis.overlay")


def overlap_pairs(
    geoms: np.ndarray,
    *,
    certified: bool | None = None,
    suspects: np.ndarray | None = None,
    tree: shapely.STRtree | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of polygons in one layer whose interiors intersect (exact predicates).

    Fast path: a layer that passes :func:`is_disjoint_coverage` has none. Otherwise each
    suspect is matched with the polygons whose bounding boxes meet its own (STRtree) and every
    such pair is tested exactly with ``intersects`` and ``touches`` (DE-9IM), on unprepared
    geometries in threads (:func:`spatialplan.core._parallel.map_chunks`; in the calling thread
    when ``geoms`` holds a prepared geometry). The pairs come in the order of
    ``tree.query(geoms, predicate="intersects")``: by ``i``, then in the tree's order (a
    predicate query keeps its envelope candidates in their order).

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
    found, j = tree.query(geoms[suspects])
    i = suspects[found]
    suspect = np.zeros(len(geoms), dtype=bool)
    suspect[suspects] = True
    # a pair of two suspects is found twice: kept once, from its smaller position
    keep = (i != j) & ~shapely.is_missing(geoms[j]) & ((i < j) | ~suspect[j])
    i, j = i[keep], j[keep]
    meet = map_chunks(shapely.intersects, geoms[i], geoms[j])
    i, j = i[meet], j[meet]
    swapped = i > j
    i, j = np.where(swapped, j, i), np.where(swapped, i, j)
    touching = map_chunks(shapely.touches, geoms[i], geoms[j])
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
    """Hash each (non-empty) geometry's coordinates.

    Their places count when ``ordered``, else their multiset with the first coordinate (a ring's
    closing repeat) counted once.
    """
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
    above (linear work; in threads, see :func:`spatialplan.core._parallel.n_threads`: GEOS
    releases the GIL), then the chunk unions are certified the same way: adjacent chunk
    unions share their edges vertex for vertex, being made of the same polygon edges. The
    whole union's area is finally checked against the sum of all input areas with the
    one-level tolerance. Two polygons of one chunk do not overlap by the chunk's
    certificate; two of different chunks lie in two chunk unions whose interiors are
    disjoint by the second-level certificate (an overlapping pair makes its chunk unions
    overlap), so they do not overlap either. The deficits ``2∫d`` of both levels are all
    ``>= 0`` and add up to the one checked difference, so the total overlap stays within
    ``tol / 2`` as with one level. When no polygon of one chunk union meets (exact
    ``intersects``) a polygon of another, the second level needs no union
    (:func:`_certified_apart`): their interiors are disjoint, and the union would be their
    polygons collected, valid, of the summed area; the areas are checked all the same.

    A rejection at any level (GEOS failure, invalid result, missing area) rejects the whole
    layer, including a clean layer whose shared edges do not match vertex for vertex: the
    caller then runs the exact pairwise test, so a rejection costs time, never a wrong
    number.

    **Suspects.** With ``return_suspects``, a rejected layer also says which polygons the
    exact test must look at: every overlapping pair must have one of them. The layer is cut
    into *pieces*, each a set of polygons with a certified union ``U``, and *suspects*:

    1. If the certified chunks certify together at the second level (their unions, against
       the sum of their polygons' areas), each is a piece and the rejected chunks are
       refined; otherwise every chunk is refined.
    2. A refined chunk is split (k-d, as above) into sub-chunks of at most
       :data:`REFINE_CHUNK` polygons, each certified at one level: a certified one is a
       piece, the polygons of a rejected one are suspects.
    3. The pieces are certified together at one level (against the sum of their polygons'
       areas); if that passes, the pieces stand. Otherwise the pieces are tested pairwise
       with the exact test (:func:`overlap_pairs` on the unions: interiors intersect), the
       new pieces against all; for each conflicting pair not already covered, the piece with
       fewer polygons is taken out: its polygons become suspects when it is a sub-chunk, and
       a larger piece (a chunk) is refined as in 2, its sub-chunks then tested as in 3 (new
       against all). This ends: sub-chunks are never refined again.

    Proof that every overlapping pair ``(p, q)`` of polygons that are not suspects is found
    or within the tolerance: both lie in final pieces ``P, Q``. For a piece, let ``D_P`` be
    the set where ``d >= 1`` in its certificate (above): ``w >= 2`` implies ``d >= 1``, so
    the overlaps among ``P``'s polygons lie in ``D_P``, and the union of ``P``'s polygons
    differs from ``U_P`` only in ``D_P``. If ``P = Q``: ``p ∩ q`` lies in ``D_P``. Otherwise
    either the pieces certified together (step 1 for two chunks, step 3 for the rest), and
    by the two-level argument the overlap lies in the sets ``d >= 1`` of those certificates;
    or the later of ``P, Q`` was tested exactly against the other (a piece is only ever
    removed, so the earlier was there) and found not to conflict: the interiors of ``U_P``
    and ``U_Q`` are disjoint, so ``p ∩ q`` lies in ``union(D_P, D_Q)``, up to a set of no area.
    Every other pair has a suspect, and :func:`overlap_pairs` tests each suspect against
    all its neighbours. So overlaps are not looked for only within the sets ``d >= 1`` of
    the certificates that cleared pieces: ``tol / 2`` when the pieces certified together
    (``tol`` of the sum of their areas, the deficits of all levels adding up to the one
    checked difference), else at most ``Σ max(1e-3 m², 1e-12 S_P) / 2`` over the pieces,
    ``S_P`` the sum of a piece's areas. Since a crossing or nested overlap makes a
    certificate's result invalid, what this can leave out is, as with one level, a
    near-duplicate of total area below the tolerance.

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
    """Run :func:`coverage_certificate` on the present polygons.

    Suspects are positions in ``polys`` (computed only when ``localise``, else every polygon of a
    rejected layer).
    """
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
    total = float(areas[np.concatenate(cleared)].sum()) if cleared else 0.0
    parts = shapely.get_parts(unions[passed], return_index=True)
    together = (len(cleared) <= 1 or _certified_apart(unions[passed], total, parts=parts)
                or _certified_together(unions[passed], total))
    if passed.all() and together:
        return True, parts[0], everyone[:0]
    if not localise:
        log.debug("coverage certificate: %d chunk unions rejected", len(cleared))
        return False, None, everyone
    return False, None, _localise(polys, areas, chunks, unions, together=together)


#: polygons per sub-chunk when :func:`coverage_certificate` localises a rejected layer's
#: overlaps (``return_suspects``): its suspects are the sub-chunks that hold one
REFINE_CHUNK = 16


def _localise(polys: np.ndarray, areas: np.ndarray, chunks: list[np.ndarray],
              unions: np.ndarray, *, together: bool) -> np.ndarray:
    """Find the suspects of a rejected layer (sorted positions in ``polys``).

    See :func:`coverage_certificate`: ``chunks`` and their certified ``unions`` (``None`` when
    rejected); ``together``: the certified chunks passed the second level.
    """
    passed = ~shapely.is_missing(unions) & together
    members = [chunk for chunk, ok in zip(chunks, passed, strict=True) if ok]
    pieces = list(unions[passed])
    split = [chunk for chunk, ok in zip(chunks, passed, strict=True) if not ok]
    suspects: list[np.ndarray] = [np.array([], dtype=np.intp)]
    tested = 0
    while True:
        new = len(pieces)
        for chunk in split:
            leaves = [chunk[leaf] for leaf in _spatial_chunks(polys[chunk], REFINE_CHUNK)]
            leaf_unions = _leaf_unions(polys, areas, leaves)
            for leaf, union in zip(leaves, leaf_unions, strict=True):
                if union is None:
                    suspects.append(leaf)
                else:
                    pieces.append(union)
                    members.append(leaf)
        geoms = np.empty(len(pieces), dtype=object)
        geoms[:] = pieces
        if not tested and len(members) > 1 and _certified_together(
                geoms, float(areas[np.concatenate(members)].sum())):
            break
        i, j = overlap_pairs(geoms, certified=False, suspects=np.arange(new, len(geoms)))
        tested += 1
        sizes = np.array([len(m) for m in members])
        split = []
        for k in _cover(i, j, sizes):
            (split if sizes[k] > REFINE_CHUNK else suspects).append(members[k])
            pieces[k] = None
        log.debug("coverage certificate, refinement %d: %d pieces, %d conflicting pairs",
                  tested, len(pieces), len(i))
        if not split:
            break
    return np.sort(np.concatenate(suspects))


def _cover(i: np.ndarray, j: np.ndarray, sizes: np.ndarray) -> list[int]:
    """Choose pieces that cover every pair ``(i, j)``, in the order they are taken.

    One of each pair: the one with fewer polygons, unless the other is already taken.
    """
    taken = np.zeros(len(sizes), dtype=bool)
    out = []
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        if not (taken[a] or taken[b]):
            k = a if sizes[a] <= sizes[b] else b
            taken[k] = True
            out.append(k)
    return out


def _leaf_unions(polys: np.ndarray, areas: np.ndarray, leaves: list[np.ndarray]) -> np.ndarray:
    """Compute :func:`_chunk_unions` of many small chunks, a batch at a time.

    One vectorised coverage union per batch of them (rows of a table padded with ``None``), in
    threads; a batch GEOS fails on is certified chunk by chunk.
    """
    lengths = np.array([len(leaf) for leaf in leaves])
    table = np.full((len(leaves), lengths.max()), None, dtype=object)
    rows = np.repeat(np.arange(len(leaves)), lengths)
    table[rows, np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)] = (
        polys[np.concatenate(leaves)])
    totals = np.bincount(rows, weights=areas[np.concatenate(leaves)], minlength=len(leaves))

    def batch(lo: int) -> np.ndarray:
        hi = min(lo + LEAF_BATCH, len(leaves))
        try:
            merged = shapely.coverage_union_all(table[lo:hi], axis=1)
        except shapely.errors.GEOSException:
            return _chunk_unions(polys, areas, leaves[lo:hi])
        ok = _same_area(shapely.area(merged), totals[lo:hi]) & is_valid(merged)
        return np.where(ok, merged, None)

    return np.concatenate(map_items(batch, range(0, len(leaves), LEAF_BATCH), geoms=[polys]))


#: small chunks united in one vectorised call by :func:`_leaf_unions`
LEAF_BATCH = 2_000


#: most candidate pairs of chunk-union polygons tested at once by :func:`_certified_apart` (it
#: stops at the first batch with a pair that meets)
APART_BATCH = 4_096


def _certified_apart(unions: np.ndarray, total: float, *,
                     parts: tuple[np.ndarray, np.ndarray] | None = None) -> bool:
    """Run the second level without a union when no two chunk unions meet at all.

    ``True`` when no polygon of one chunk union ``intersects`` (exact DE-9IM, boundaries
    included) a polygon of another, their bounding boxes paired by an STRtree, and the chunk
    unions' areas add up to ``total`` (:func:`_same_area`). Then the coverage union of the
    chunk unions would only collect their polygons, valid and pairwise disjoint, into one
    valid multipolygon of that area: the second level passes, with the same pieces. ``False``
    when some pair meets (a shared edge of a coverage, or an overlap) or the areas differ: the
    caller runs the coverage union (:func:`_certified_together`). The pairs are tested in
    batches growing from 64 to :data:`APART_BATCH`, stopping at the first batch where one
    meets, so a coverage whose chunks share edges pays little for the attempt. Only the
    polygons whose bounding box meets another chunk union's go into the STRtree: a polygon
    meeting one of another chunk lies in that chunk union's box. ``parts``:
    ``shapely.get_parts(unions, return_index=True)`` when the caller has it.
    """
    if not bool(_same_area(float(shapely.area(unions).sum()), total)):
        return False
    parts, owner = shapely.get_parts(unions, return_index=True) if parts is None else parts
    near = np.flatnonzero(_near_other_box(shapely.bounds(parts), owner, shapely.bounds(unions)))
    i, j = shapely.STRtree(parts[near]).query(parts[near])
    i, j = near[i], near[j]
    cross = owner[i] < owner[j]
    i, j = i[cross], j[cross]
    lo, size = 0, 64
    while lo < len(i):
        if shapely.intersects(parts[i[lo:lo + size]], parts[j[lo:lo + size]]).any():
            return False
        lo, size = lo + size, min(4 * size, APART_BATCH)
    return True


def _near_other_box(bounds: np.ndarray, owner: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether box ``bounds[k]`` meets (boundary included) a box ``boxes[c]``, ``c != owner[k]``.

    One vectorised pass per box of ``boxes`` (the chunk unions: tens).
    """
    near = np.zeros(len(bounds), dtype=bool)
    for c, (x0, y0, x1, y1) in enumerate(boxes):
        near |= ((owner != c) & (bounds[:, 0] <= x1) & (bounds[:, 2] >= x0)
                 & (bounds[:, 1] <= y1) & (bounds[:, 3] >= y0))
    return near


def _certified_together(unions: np.ndarray, total: float) -> bool:
    """Run the second level: chunk unions of polygons of total area ``total`` certified together."""
    merged = _certified_union(unions, float(shapely.area(unions).sum()))
    return merged is not None and _same_area(float(shapely.area(merged)), total)


def _same_area(area: float | np.ndarray, total: float | np.ndarray) -> bool | np.ndarray:
    """Apply the certificate's area test: equal within ``max(1e-3 m², 1e-12 x total)``.

    Element-wise on arrays.
    """
    return np.abs(area - total) <= np.maximum(1e-3, 1e-12 * total)


def _certified_union(geoms: np.ndarray, total: float) -> shapely.Geometry | None:
    """Coverage union of ``geoms`` (area ``total``) if it passes the one-level certificate."""
    try:
        merged = shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:
        return None
    if _same_area(float(shapely.area(merged)), total) and bool(is_valid(merged)):
        return merged
    return None


def _spatial_chunks(geoms: np.ndarray, size: int) -> list[np.ndarray]:
    """Positions of ``geoms`` in spatially compact chunks of at most ``size`` (``size >= 1``).

    The k-d split of the dask engine's partitions
    (:func:`spatialplan.core._kdsplit.partition_points`) of the bounding-box centres. Positions
    within a chunk keep the input order.
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
    ones stay in the calling thread, :func:`spatialplan.core._parallel.map_items`).
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
