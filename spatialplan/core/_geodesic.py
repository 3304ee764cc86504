"""Ellipsoidal (geodesic) areas on the CGCS2000 ellipsoid, shared by ``io`` and ``analysis``.

The official area figures of China's land surveys (三调 ``TBMJ``) and of the 国土空间规划
一张图 are ellipsoidal areas; :func:`geodesic_areas` computes them from projected geometries.

A polygon of the analysis CRS has edges that are straight in the plane; ``Geod`` joins the
vertices by geodesics, which bow away from a long plane edge (in Gauss-Krüger by about
``L²·x/(8R²)``: 0.5 mm on a 1 km edge 150 km off the central meridian, ~0.3 m² of area). The
edges are therefore split to at most :data:`MAX_EDGE_M` first: the geodesic path then follows
the plane polygon to < 1e-8 of its area, and the sum of the pieces of a cut polygon equals the
area of the whole (the ellipsoidal area no longer depends on where a line is cut).
"""

from __future__ import annotations

import itertools

import numpy as np
import shapely
from pyproj import CRS, Geod, Transformer

from spatialplan.core._parallel import map_items, n_threads
from spatialplan.core._progress import progress

__all__ = ["MAX_EDGE_M", "geodesic_areas"]

#: longest edge (m) measured as one geodesic; longer edges are split (``shapely.segmentize``)
MAX_EDGE_M = 100.0


#: one thread chunk of :func:`geodesic_areas` per this many geometries
GEOM_CHUNK = 20_000


def _ring_lonlat(
    geoms: np.ndarray, transformer: Transformer
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Oriented rings of ``geoms`` (none missing) as EPSG:4490 longitude/latitude.

    Returns ``lon``, ``lat`` (every ring's vertices, ring after ring, closed), ``bounds`` (ring
    ``k`` is ``lon[bounds[k]:bounds[k + 1]]``), ``ring_part`` and ``part_owner`` (ring → part →
    position in ``geoms``). Exteriors run counter-clockwise and holes clockwise, as
    ``pyproj.Geod`` expects; the vertices are transformed in one vectorised call.
    """
    parts, part_owner = shapely.get_parts(shapely.orient_polygons(geoms), return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    lon, lat = transformer.transform(coords[:, 0], coords[:, 1])
    bounds = np.searchsorted(ring_of, np.arange(len(rings) + 1))
    return (np.ascontiguousarray(lon, dtype=float), np.ascontiguousarray(lat, dtype=float),
            bounds, ring_part, part_owner)


def _chunk_areas(geoms: np.ndarray, transformer: Transformer) -> np.ndarray:
    """:func:`geodesic_areas` of ``geoms`` (none missing), in the calling thread.

    ``Geod.polygon_area_perimeter`` copies its arrays and calls ``_polygon_area_perimeter``,
    which runs Karney's algorithm without the GIL: that method is called directly on the
    (float64, contiguous) slices when pyproj has it, the same computation without the copies.
    """
    split = shapely.segmentize(geoms, MAX_EDGE_M)
    lon, lat, bounds, ring_part, part_owner = _ring_lonlat(split, transformer)
    geod = Geod(ellps="GRS80")
    area = getattr(geod, "_polygon_area_perimeter", geod.polygon_area_perimeter)
    # signed ring areas (exteriors counter-clockwise > 0, holes clockwise < 0), as
    # Geod.geometry_area_perimeter sums them, without building shapely coordinate sequences
    ring_area = np.array([area(lon[a:b], lat[a:b])[0]
                          for a, b in itertools.pairwise(bounds.tolist())], dtype=float)
    per_part = np.bincount(ring_part, weights=ring_area, minlength=len(part_owner))
    return np.abs(np.bincount(part_owner, weights=per_part, minlength=len(geoms)))


#: fewest geometries per thread chunk of :func:`geodesic_areas`
MIN_CHUNK = 64


def _chunks(geoms: np.ndarray) -> list[int]:
    """Chunk bounds over ``geoms`` (none missing): equal vertex counts, enough chunks.

    ``ceil(n / GEOM_CHUNK)`` chunks, and at least one per thread (:func:`n_threads`) when
    each then holds :data:`MIN_CHUNK` geometries; cut where the running vertex count passes
    an equal share, so that a few large townships do not make one chunk of all the work.
    """
    n = len(geoms)
    wanted = max(-(-n // GEOM_CHUNK), min(n_threads(), n // MIN_CHUNK), 1)
    if wanted == 1:
        return [0, n]
    vertices = np.cumsum(shapely.get_num_coordinates(geoms))
    cuts = np.searchsorted(vertices, np.linspace(0, vertices[-1], wanted + 1)[1:-1],
                           side="right")
    return sorted({0, n, *cuts.tolist()})


def geodesic_areas(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    """Ellipsoidal area (m²) of each geometry on the CGCS2000 ellipsoid.

    Vertices are transformed to EPSG:4490 longitude/latitude (``always_xy``) vectorised;
    the geodesic polygon area is then computed by ``pyproj.Geod(ellps="GRS80")``
    (Karney's algorithm). GRS80 and the CGCS2000 ellipsoid share ``a`` and differ in ``1/f``
    by about 1e-9: the semi-minor axes differ by about 0.1 mm, far below any area we report.
    Rings are oriented (exterior counter-clockwise, holes clockwise) first, as ``Geod``
    expects, and edges longer than :data:`MAX_EDGE_M` are split (see the module notes).
    Missing geometries give NaN.

    The geometries are measured in chunks in threads (each area depends on its own rings
    only, summed in the same order: identical numbers); shapely, PROJ and Karney's algorithm
    release the GIL. The chunks hold about the same number of vertices; there is one per
    :data:`GEOM_CHUNK` geometries, and at least one per thread (1,500 townships with long
    edges are as much work as 10⁵ parcels, see :func:`_chunks`). A progress step per batch
    of one chunk per thread.
    """
    out = np.full(len(geoms), np.nan)
    present = np.flatnonzero(~shapely.is_missing(geoms))
    if len(present) == 0:
        return out
    # a Transformer is thread-safe since pyproj 3.1
    transformer = Transformer.from_crs(crs, "EPSG:4490", always_xy=True)
    todo = geoms[present]
    chunks = [todo[lo:hi] for lo, hi in itertools.pairwise(_chunks(todo))]
    step = max(1, n_threads())
    batches = [chunks[k:k + step] for k in range(0, len(chunks), step)]
    out[present] = np.concatenate([
        area for batch in progress(batches, total=len(batches), desc="ellipsoidal areas")
        for area in map_items(lambda chunk: _chunk_areas(chunk, transformer), batch)])
    return out
