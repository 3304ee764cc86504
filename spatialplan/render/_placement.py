"""Where the layout map puts its site numbers, and which sites cluster (pure geometry).

:func:`place_labels` places label boxes in display (pixel) space so that no two overlap, none
covers an obstacle (north arrow, scale bar, inset) and each stays inside the map frame;
:func:`cluster_window` finds the smallest window holding at least ``k`` sites (the town seat)
for the layout map's enlarged inset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["boxes_overlap", "cluster_window", "place_labels"]

# candidate directions, most preferred first (cartographic habit: upper right, then the others)
_FIRST = (45, 135, -45, -135, 90, -90, 0, 180)


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether boxes ``a`` (..., 4) and ``b`` (..., 4) (x0, y0, x1, y1) overlap, broadcast.

    Examples
    --------
    >>> boxes_overlap(np.array([0, 0, 2, 2]), np.array([[1, 1, 3, 3], [2, 0, 3, 1]])).tolist()
    [True, False]
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return ((a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2])
            & (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3]))


def _candidates(rel: np.ndarray, gap: float, reach: float) -> np.ndarray:
    """Offsets (m, 3): dx, dy and the distance of the box from its anchor, nearest first."""
    w, h = rel[2] - rel[0], rel[3] - rel[1]
    out = []
    d = gap
    ring = 0
    while d <= reach:
        n_dir = 8 if ring < 2 else 16 if ring < 5 else 32
        angles = list(_FIRST) + [a for a in np.linspace(-180, 180, n_dir, endpoint=False)
                                 if round(a) not in _FIRST]
        for deg in angles[:max(n_dir, 8)]:
            t = math.radians(deg)
            # an ellipse around the box centre: the box edge keeps about ``d`` from the anchor
            dx = math.cos(t) * (w / 2 + d)
            dy = math.sin(t) * (h / 2 + d)
            out.append((dx, dy, d))
        ring += 1
        d = gap + ring * 0.6 * h * (1 + 0.25 * ring)
    return np.array(out)


def place_labels(
    anchors: np.ndarray,
    rel_boxes: np.ndarray,
    *,
    frame: Sequence[float],
    obstacles: Sequence[Sequence[float]] = (),
    gap: float = 2.0,
    keep_clear: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets that place every label box near its anchor without any two overlapping.

    Greedy, most crowded anchor first: each label takes the candidate position (rings of
    growing distance around its anchor) that overlaps no placed label, no obstacle and stays
    inside ``frame``, preferring near positions that cover no other anchor.

    Parameters
    ----------
    anchors
        (n, 2) anchor points in display units (pixels).
    rel_boxes
        (n, 4) each label's box (x0, y0, x1, y1) relative to its anchor when not offset.
    frame
        (x0, y0, x1, y1): the boxes must stay inside.
    obstacles
        Boxes no label may overlap.
    gap
        Distance (pixels) of the nearest positions from the anchor.
    keep_clear
        Radius (pixels) around every other anchor (its site marker) that a label should not
        cover: such positions cost more, they are not forbidden.

    Returns
    -------
    offsets, boxes
        (n, 2) offsets to add to the label positions and (n, 4) the placed boxes. A label that
        cannot be placed without overlap (a frame too small for its labels) takes the position
        overlapping the fewest others.

    Examples
    --------
    >>> anchors = np.array([[50.0, 50.0], [51.0, 50.0]])
    >>> rel = np.array([[-5, -4, 5, 4], [-5, -4, 5, 4]], dtype=float)
    >>> off, boxes = place_labels(anchors, rel, frame=(0, 0, 100, 100))
    >>> bool(boxes_overlap(boxes[0], boxes[1]))
    False
    """
    anchors = np.asarray(anchors, dtype=float).reshape(-1, 2)
    rel_boxes = np.asarray(rel_boxes, dtype=float).reshape(-1, 4)
    n = len(anchors)
    offsets = np.zeros((n, 2))
    boxes = np.zeros((n, 4))
    if n == 0:
        return offsets, boxes
    fx0, fy0, fx1, fy1 = map(float, frame)
    reach = max(fx1 - fx0, fy1 - fy0)
    obst = np.asarray(obstacles, dtype=float).reshape(-1, 4)
    size = np.median(rel_boxes[:, 3] - rel_boxes[:, 1])
    dist = np.linalg.norm(anchors[:, None, :] - anchors[None, :, :], axis=2)
    crowd = (dist < 4 * size).sum(axis=1)
    order = sorted(range(n), key=lambda i: (-crowd[i], i))
    placed: list[int] = []
    for i in order:
        cand = _candidates(rel_boxes[i], gap, reach)
        centre = np.array([(rel_boxes[i][0] + rel_boxes[i][2]) / 2,
                           (rel_boxes[i][1] + rel_boxes[i][3]) / 2])
        # offsets move the box centre to anchor + (dx, dy)
        off = cand[:, :2] - centre
        cb = rel_boxes[i][None, :] + np.hstack([off, off]) + np.tile(anchors[i], 2)
        inside = ((cb[:, 0] >= fx0) & (cb[:, 1] >= fy0) & (cb[:, 2] <= fx1)
                  & (cb[:, 3] <= fy1))
        hits = np.zeros(len(cb), dtype=int)
        if placed:
            hits += boxes_overlap(cb[:, None, :], boxes[placed][None, :, :]).sum(axis=1)
        if len(obst):
            hits += boxes_overlap(cb[:, None, :], obst[None, :, :]).sum(axis=1)
        others = np.delete(anchors, i, axis=0)
        r = keep_clear
        covered = ((others[None, :, 0] > cb[:, None, 0] - r)
                   & (others[None, :, 0] < cb[:, None, 2] + r)
                   & (others[None, :, 1] > cb[:, None, 1] - r)
                   & (others[None, :, 1] < cb[:, None, 3] + r)).sum(axis=1)
        cost = cand[:, 2] + covered * 3 * size
        ok = inside & (hits == 0)
        if ok.any():
            best = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
        else:  # no free position: the least overlapping one inside the frame (if any)
            penalty = hits * 1e9 + (~inside) * 1e12 + cost
            best = int(np.argmin(penalty))
        offsets[i] = off[best]
        boxes[i] = cb[best]
        placed.append(i)
    return offsets, boxes


def cluster_window(bounds: np.ndarray, *, k: int) -> tuple[tuple[float, ...], np.ndarray]:
    """Find the smallest window (largest side) holding ``k`` sites: where the sites crowd.

    Parameters
    ----------
    bounds
        (n, 4) site bounds (x0, y0, x1, y1), n >= k.
    k
        How many sites the window must hold.

    Returns
    -------
    window, members
        (x0, y0, x1, y1) covering the whole of the member sites, and their indices.

    Examples
    --------
    >>> b = np.array([[0, 0, 1, 1], [2, 0, 3, 1], [1, 2, 2, 3], [50, 50, 51, 51]], float)
    >>> window, members = cluster_window(b, k=3)
    >>> window, members.tolist()
    ((0.0, 0.0, 3.0, 3.0), [0, 1, 2])
    """
    bounds = np.asarray(bounds, dtype=float).reshape(-1, 4)
    centres = (bounds[:, :2] + bounds[:, 2:]) / 2
    dist = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=2)
    best: tuple[float, tuple[float, ...], np.ndarray] | None = None
    for i in range(len(bounds)):
        members = np.sort(np.argsort(dist[i], kind="stable")[:k])
        b = bounds[members]
        window = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
        side = max(window[2] - window[0], window[3] - window[1])
        if best is None or side < best[0]:
            best = (side, tuple(float(v) for v in window), members)
    assert best is not None
    return best[1], best[2]
