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

from spatialplan.core._parallel import map_chunks, map_items, n_threads
from spatialplan.core._progress import progress

__all__ = ["MAX_EDGE_M", "geodesic_areas"]

#: longest edge (m) measured as one geodesic; longer edges are split (``shapely.segmentize``)
MAX_EDGE_M = 100.0


#: rings (or vertices, for the transformation) per thread chunk of :func:`geodesic_areas`
RING_CHUNK = 20_000


def _ring_lonlat(
    geoms: np.ndarray, crs: CRS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Oriented rings of ``geoms`` (none missing) as EPSG:4490 longitude/latitude.

    Returns ``lon``, ``lat`` (every ring's vertices, ring after ring, closed), ``bounds`` (ring
    ``k`` is ``lon[bounds[k]:bounds[k + 1]]``), ``ring_part`` and ``part_owner`` (ring → part →
    position in ``geoms``). Exteriors run counter-clockwise and holes clockwise, as
    ``pyproj.Geod`` expects; the vertices are transformed vectorised, in chunks in threads
    (PROJ releases the GIL; a ``Transformer`` is thread-safe since pyproj 3.1).
    """
    parts, part_owner = shapely.get_parts(shapely.orient_polygons(geoms), return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    transformer = Transformer.from_crs(crs, "EPSG:4490", always_xy=True)
    cuts = _cuts(len(coords), 10 * RING_CHUNK)
    lonlat = map_items(lambda lo_hi: transformer.transform(coords[lo_hi[0]:lo_hi[1], 0],
                                                           coords[lo_hi[0]:lo_hi[1], 1]),
                       list(itertools.pairwise(cuts)))
    lon = np.concatenate([np.asarray(x, dtype=float) for x, _ in lonlat])
    lat = np.concatenate([np.asarray(y, dtype=float) for _, y in lonlat])
    bounds = np.searchsorted(ring_of, np.arange(len(rings) + 1))
    return lon, lat, bounds, ring_part, part_owner


def _cuts(n: int, chunk: int) -> np.ndarray:
    """Chunk bounds ``0 = c0 < c1 < ... = n``: one chunk per thread, each at least ``chunk``."""
    return np.linspace(0, n, max(1, min(n_threads(), n // chunk)) + 1).astype(int)


def _ring_areas(lon: np.ndarray, lat: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Signed geodesic area of each ring ``lon[bounds[k]:bounds[k + 1]]`` (GRS80).

    Counter-clockwise rings are positive, as ``Geod.geometry_area_perimeter`` sums them.
    ``Geod.polygon_area_perimeter`` copies its arrays and calls ``_polygon_area_perimeter``,
    which runs Karney's algorithm without the GIL: that method is called directly on the
    (float64, contiguous) slices when pyproj has it, the same computation without the copies,
    and the rings go to threads in chunks of :data:`RING_CHUNK` (a progress step per batch
    of one chunk per thread).
    """
    geod = Geod(ellps="GRS80")
    area = getattr(geod, "_polygon_area_perimeter", geod.polygon_area_perimeter)

    def chunk(lo_hi: tuple[int, int]) -> list[float]:
        edges = itertools.pairwise(bounds[lo_hi[0]:lo_hi[1] + 1].tolist())
        return [area(lon[a:b], lat[a:b])[0] for a, b in edges]

    starts = list(range(0, len(bounds) - 1, RING_CHUNK))
    chunks = [(lo, min(lo + RING_CHUNK, len(bounds) - 1)) for lo in starts]
    step = max(1, n_threads())
    batches = [chunks[k:k + step] for k in range(0, len(chunks), step)]
    areas = [ring for batch in progress(batches, total=len(batches), desc="ellipsoidal areas")
             for ring in itertools.chain.from_iterable(map_items(chunk, batch))]
    return np.array(areas, dtype=float)


def geodesic_areas(geoms: np.ndarray, crs: CRS) -> np.ndarray:
    """Ellipsoidal area (m²) of each geometry on the CGCS2000 ellipsoid.

    Vertices are transformed to EPSG:4490 longitude/latitude (``always_xy``) in one vectorised
    call; the geodesic polygon area is then computed by ``pyproj.Geod(ellps="GRS80")``
    (Karney's algorithm). GRS80 and the CGCS2000 ellipsoid share ``a`` and differ in ``1/f``
    by about 1e-9: the semi-minor axes differ by about 0.1 mm, far below any area we report.
    Rings are oriented (exterior counter-clockwise, holes clockwise) first, as ``Geod``
    expects, and edges longer than :data:`MAX_EDGE_M` are split (see the module notes).
    Missing geometries give NaN. The edges are split, the vertices transformed and the rings
    measured in chunks in threads (identical numbers).
    """
    out = np.full(len(geoms), np.nan)
    present = np.flatnonzero(~shapely.is_missing(geoms))
    if len(present) == 0:
        return out
    split = map_chunks(shapely.segmentize, geoms[present], prepared_ok=True,
                       max_segment_length=MAX_EDGE_M)
    lon, lat, bounds, ring_part, part_owner = _ring_lonlat(split, crs)
    # signed ring areas (exteriors counter-clockwise > 0, holes clockwise < 0), as
    # Geod.geometry_area_perimeter sums them, without building shapely coordinate sequences
    ring_area = _ring_areas(lon, lat, bounds)
    per_part = np.bincount(ring_part, weights=ring_area, minlength=len(part_owner))
    out[present] = np.abs(np.bincount(part_owner, weights=per_part, minlength=len(present)))
    return out
