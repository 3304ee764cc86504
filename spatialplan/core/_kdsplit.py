"""k-d split of points into tiles of bounded size (private).

Used by the dask engine to group townships into partitions
(:func:`spatialplan.pipeline.engine.partition_townships`) and by the coverage certificate to cut a
large layer into spatially compact chunks
(:func:`spatialplan.analysis._overlay_geom.coverage_certificate`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["partition_points"]

_INF = math.inf


def partition_points(points: np.ndarray, *, partition_size: int
                        ) -> tuple[list[tuple[float, float, float, float]], np.ndarray]:
    """Split points k-d style into half-open tiles of at most ``partition_size`` points.

    Parameters
    ----------
    points
        ``(n, 2)`` coordinates (e.g. the townships' representative points).
    partition_size
        Largest number of points per tile (points at one spot are never split).

    Returns
    -------
    tiles
        One ``(xmin, ymin, xmax, ymax)`` per tile; together they cover the plane (outer
        bounds are infinite), a point belongs to the tile with ``xmin <= x < xmax`` and
        ``ymin <= y < ymax``.
    owner
        Tile index of every point.

    Examples
    --------
    >>> tiles, owner = partition_points(np.array([[0, 0], [10, 0], [20, 5]]),
    ...                                 partition_size=2)
    >>> len(tiles), owner.tolist()
    (2, [0, 1, 1])
    """
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    columns = (np.ascontiguousarray(pts[:, 0]), np.ascontiguousarray(pts[:, 1]))
    tiles: list[tuple[float, float, float, float]] = []
    owner = np.zeros(len(pts), dtype=np.intp)
    stack = [(np.arange(len(pts)), (-_INF, -_INF, _INF, _INF))]
    while stack:
        idx, bounds = stack.pop(0)
        cut = _median_cut([c[idx] for c in columns], partition_size)
        if cut is None:
            owner[idx] = len(tiles)
            tiles.append(bounds)
            continue
        axis, value, low = cut
        xmin, ymin, xmax, ymax = bounds
        if axis == 0:  # cut at x = value
            lower, upper = (xmin, ymin, value, ymax), (value, ymin, xmax, ymax)
        else:  # cut at y = value
            lower, upper = (xmin, ymin, xmax, value), (xmin, value, xmax, ymax)
        stack[:0] = [(idx[low], lower), (idx[~low], upper)]
    return tiles, owner


def _median_cut(values: list[np.ndarray], size: int
                ) -> tuple[int, float, np.ndarray] | None:
    """Find the median cut of points given as coordinate columns.

    Return its axis, value and lower-side mask, or None when they fit in one tile (or all lie at one
    spot).
    """
    n = len(values[0])
    if n <= max(size, 1):
        return None
    spans = [v.max() - v.min() for v in values]
    for axis in np.argsort(-np.asarray(spans), kind="stable"):
        column = values[axis]
        value = float(np.partition(column, n // 2)[n // 2])
        low = column < value
        if low.any() and not low.all():
            return int(axis), value, low
    return None
