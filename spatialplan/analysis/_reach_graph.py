"""The road network of the reach analysis: noding, snapping, attaching points, shortest paths.

Nodes are the vertices of the road lines (a vertex two lines share is one node); edges are
the straight pieces between consecutive vertices of a line, weighted by their length. An end of
a line that lies within the snapping tolerance of another line (its end or its middle) but does
not touch it is joined to it by a connector edge as long as the gap (an honest, measured
detour, never a free jump); a larger gap is not joined. Lines that cross without a shared
vertex are not joined (a bridge or an underpass crosses without meeting).

Anything that reaches the network (a village, a project's site, a town seat) attaches at its
nearest point on the nearest road piece; that point becomes a node splitting the piece, so the
distance along the road from it is exact, and the straight leg to it is kept apart.
Shortest paths run on a ``scipy.sparse`` matrix with :func:`scipy.sparse.csgraph.dijkstra`.

With a pace per road line (minutes per metre, from its speed), each edge also carries a travel
time: a piece of a line takes that line's pace, a snapping connector the pace of the piece it
joins; where two edges join the same pair of nodes, the shortest length and the shortest time are
kept separately (they may come from different lines).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

__all__ = ["Network", "build_network", "from_one", "matrix", "multi_source", "path_nodes",
           "roots"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Network:
    """A noded road network with its attachment points split in.

    Attributes
    ----------
    xy
        Node coordinates, shape ``(n, 2)``.
    u, v, w
        Edges (``u < v``, one per node pair, the shortest kept) and their lengths in metres.
    seg_u, seg_v
        The road pieces before splitting (node pairs), for attaching points.
    n_snapped
        Gaps under the snapping tolerance joined by a connector edge.
    n_dangling
        Line ends that touch no other line even after snapping (dead ends or larger gaps).
    t
        Travel time of each edge in minutes, when the network was built with a pace
        (``None`` otherwise).
    """

    xy: np.ndarray
    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    seg_u: np.ndarray
    seg_v: np.ndarray
    n_snapped: int
    n_dangling: int
    t: np.ndarray | None = None


def _pieces(lines: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return node coordinates (equal vertices are one node), the pieces' node pairs and lines."""
    parts, line = shapely.get_parts(lines, return_index=True)
    full = ~shapely.is_empty(parts)
    parts, line = parts[full], line[full]
    coords, idx = shapely.get_coordinates(parts, return_index=True)
    if len(coords) == 0:
        empty = np.empty(0, dtype=np.int64)
        return np.empty((0, 2)), empty, empty, empty
    order = np.lexsort((coords[:, 1], coords[:, 0]))
    c = coords[order]
    new = np.r_[True, (c[1:, 0] != c[:-1, 0]) | (c[1:, 1] != c[:-1, 1])]
    node = np.empty(len(coords), dtype=np.int64)
    node[order] = np.cumsum(new) - 1
    xy = c[new]
    same = idx[1:] == idx[:-1]
    pu, pv = node[:-1][same], node[1:][same]
    keep = pu != pv
    return xy, pu[keep], pv[keep], line[idx[:-1][same]][keep]


def _segments(xy: np.ndarray, pu: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """Return the pieces as two-point line geometries."""
    return shapely.linestrings(np.stack([xy[pu], xy[pv]], axis=1).reshape(-1, 2),
                               indices=np.repeat(np.arange(len(pu)), 2))


def _locate(lines: np.ndarray, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the position along each piece of its nearest point to each geometry, and the gap."""
    short = shapely.shortest_line(lines, geoms)
    at = shapely.get_point(short, 0)
    return shapely.line_locate_point(lines, at), shapely.length(short)


def _split(
    xy: np.ndarray, pieces: tuple[np.ndarray, np.ndarray, np.ndarray],
    att: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """Split pieces at attachment positions.

    ``att`` is (piece, position along it, the node the point already is or -1 for a new node).
    Returns the edges (u, v, w, the piece each comes from), each attachment's node and the
    coordinates of all nodes (the new ones appended).
    """
    pu, pv, plen = pieces
    aseg, apos, anode = att
    apos = np.clip(apos, 0.0, plen[aseg])
    order = np.lexsort((anode < 0, apos, aseg))
    s, d, node = aseg[order], apos[order], anode[order].copy()
    dup = np.r_[False, (s[1:] == s[:-1]) & (d[1:] == d[:-1])][: len(s)]
    node = np.where(d <= 0.0, pu[s], np.where(d >= plen[s], pv[s], node))
    fresh = (node < 0) & ~dup
    node[fresh] = len(xy) + np.arange(int(fresh.sum()))
    frac = (d[fresh] / plen[s[fresh]])[:, None]
    new_xy = xy[pu[s[fresh]]] + (xy[pv[s[fresh]]] - xy[pu[s[fresh]]]) * frac
    node = node[np.maximum.accumulate(np.where(dup, 0, np.arange(len(s))))]
    inner = ~dup & (d > 0.0) & (d < plen[s])
    si, di, ni = s[inner], d[inner], node[inner]
    change = si[1:] != si[:-1]
    new_start = np.r_[True, change][: len(si)]
    prev_n = np.where(new_start, pu[si], np.r_[0, ni[:-1]][: len(si)])
    prev_d = np.where(new_start, 0.0, np.r_[0.0, di[:-1]][: len(si)])
    last = np.r_[change, True][: len(si)]
    split = np.zeros(len(pu), dtype=bool)
    split[si] = True
    eu = np.r_[pu[~split], prev_n, ni[last]]
    ev = np.r_[pv[~split], ni, pv[si[last]]]
    ew = np.r_[plen[~split], di - prev_d, plen[si[last]] - di[last]]
    eseg = np.r_[np.flatnonzero(~split), si, si[last]]
    out = np.empty(len(s), dtype=np.int64)
    out[order] = node
    return (eu, ev, ew, eseg), out, np.vstack([xy, new_xy])


def _snap_pairs(
    xy: np.ndarray, pieces: tuple[np.ndarray, np.ndarray], ends: np.ndarray, snap_m: float,
    tree: shapely.STRtree,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (end node, piece) pairs of loose ends within ``snap_m`` of a piece not their own."""
    pu, pv = pieces
    if snap_m <= 0 or len(ends) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    ei, si = tree.query(shapely.points(xy[ends]), predicate="dwithin", distance=snap_m)
    node = ends[ei]
    own = (pu[si] == node) | (pv[si] == node)
    return node[~own], si[~own]


def build_network(
    lines: np.ndarray, *, snap_m: float = 1.0, points: np.ndarray | None = None,
    pace: np.ndarray | None = None,
) -> tuple[Network, np.ndarray, np.ndarray]:
    """Node the road lines and attach ``points`` (any geometries) at their nearest road point.

    Parameters
    ----------
    lines
        Road geometries (LineString / MultiLineString) in a metric CRS.
    snap_m
        Gaps between a line end and another line up to this distance are joined.
    points
        Geometries to attach (villages, sites, seats).
    pace
        Minutes per metre of each line (from its speed): the edges then carry travel times
        (:attr:`Network.t`).

    Returns
    -------
    network, attach_node, leg_m
        The network; for each of ``points`` its attachment node and its straight leg (NaN and
        -1 when there is no road at all).
    """
    points = np.asarray([] if points is None else points, dtype=object)
    xy, pu, pv, pline = _pieces(np.asarray(lines, dtype=object))
    if len(pu) == 0:
        empty = np.empty(0, dtype=np.int64)
        net = Network(xy, empty, empty, np.empty(0), pu, pv, 0, 0,
                      t=None if pace is None else np.empty(0))
        return net, np.full(len(points), -1, dtype=np.int64), np.full(len(points), np.nan)
    plen = np.hypot(*(xy[pv] - xy[pu]).T)
    # loose ends: a vertex on one piece only (a shared vertex already joins its lines)
    ends = np.flatnonzero(np.bincount(np.r_[pu, pv], minlength=len(xy)) == 1)
    segs = _segments(xy, pu, pv)
    tree = shapely.STRtree(segs)
    sn, ss = _snap_pairs(xy, (pu, pv), ends, snap_m, tree)
    spos, sgap = _locate(segs[ss], shapely.points(xy[sn]))
    pseg = tree.query_nearest(points, all_matches=False)[1] if len(points) else np.empty(0, int)
    ppos, pleg = _locate(segs[pseg], points)
    given = np.r_[np.where(sgap == 0.0, sn, -1), np.full(len(points), -1)]
    (eu, ev, ew, eseg), anode, xy_all = _split(
        xy, (pu, pv, plen), (np.r_[ss, pseg], np.r_[spos, ppos], given)
    )
    snap_node = anode[: len(sn)]
    gap = sgap > 0.0
    eu = np.r_[eu, sn[gap]]
    ev = np.r_[ev, snap_node[gap]]
    ew = np.r_[ew, sgap[gap]]
    et = None if pace is None else ew * np.asarray(pace, dtype=float)[pline[np.r_[eseg, ss[gap]]]]
    joins = np.unique(np.stack([np.minimum(sn, snap_node), np.maximum(sn, snap_node)]), axis=1)
    net = _finish(xy_all, (eu, ev, ew), pieces=(pu, pv), snapped=(sn, joins.shape[1]),
                  ends=ends, times=et)
    return net, anode[len(sn):], pleg


def _finish(
    xy: np.ndarray, edges: tuple[np.ndarray, np.ndarray, np.ndarray], *,
    pieces: tuple[np.ndarray, np.ndarray], snapped: tuple[np.ndarray, int], ends: np.ndarray,
    times: np.ndarray | None = None,
) -> Network:
    """Canonical edges (u < v, the shortest per pair, no loops) and the snapping counts."""
    eu, ev, ew = edges
    a, b = np.minimum(eu, ev), np.maximum(eu, ev)
    keep = a != b
    a, b, ew = a[keep], b[keep], ew[keep]
    order = np.lexsort((ew, b, a))
    t = None
    if times is not None:
        # the fastest per pair, in the order of the kept (shortest) edges
        torder = np.lexsort((times[keep], b, a))
        t = times[keep][torder]
    a, b, ew = a[order], b[order], ew[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])][: len(a)]
    dangling = int((~np.isin(ends, snapped[0])).sum())
    n_snapped = snapped[1]
    if n_snapped:
        logger.info("roads: %d gap(s) under the snapping tolerance joined (line end to road)",
                    n_snapped)
    return Network(xy, a[first], b[first], ew[first], pieces[0], pieces[1], n_snapped,
                   dangling, t=None if t is None else t[first])


def matrix(net: Network) -> csr_matrix:
    """Return the network as a symmetric sparse matrix (for single-source searches)."""
    n = len(net.xy)
    return csr_matrix((np.r_[net.w, net.w], (np.r_[net.u, net.v], np.r_[net.v, net.u])),
                      shape=(n, n))


def multi_source(
    net: Network, sources: np.ndarray, cost: np.ndarray, *, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Shortest distance from the nearest of ``sources`` (with a starting cost) to every node.

    One Dijkstra pass from a super-source joined to each source by an edge of its starting
    cost. Returns the distances (inf where unreachable) and the predecessors (-9999 at the
    super-source's neighbours and where unreachable). ``weights`` replaces the edge lengths
    (e.g. :attr:`Network.t` for travel times).
    """
    n = len(net.xy)
    src = n
    # two sources on one node: keep the cheaper start (the matrix would add them up)
    order = np.lexsort((cost, sources))
    first = np.r_[True, sources[order][1:] != sources[order][:-1]][: len(order)]
    sources, cost = sources[order][first], cost[order][first]
    rows = np.r_[net.u, net.v, np.full(len(sources), src)]
    cols = np.r_[net.v, net.u, sources]
    w = net.w if weights is None else weights
    data = np.r_[w, w, cost]
    graph = csr_matrix((data, (rows, cols)), shape=(n + 1, n + 1))
    dist, pred = dijkstra(graph, directed=True, indices=src, return_predecessors=True)
    pred = np.where(pred == src, -9999, pred)
    return dist[:n], pred[:n]


def from_one(graph: csr_matrix, node: int, *, limit: float = np.inf) -> np.ndarray:
    """Return the shortest distance from one node to every node, up to ``limit`` (else inf)."""
    return dijkstra(graph, directed=True, indices=int(node), limit=limit)


def roots(pred: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Return the source node at the start of each node's shortest path (pointer jumping)."""
    up = np.where(pred < 0, np.arange(len(pred)), pred)
    while True:
        nxt = up[up]
        if np.array_equal(nxt, up):
            return up[nodes]
        up = nxt


def path_nodes(pred: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the nodes of each path (from ``nodes`` back to its source) and their path index."""
    cur = nodes.copy()
    which = np.arange(len(nodes))
    out_n, out_i = [cur], [which]
    while len(cur):
        nxt = pred[cur]
        alive = nxt >= 0
        cur, which = nxt[alive], which[alive]
        out_n.append(cur)
        out_i.append(which)
    n, i = np.concatenate(out_n), np.concatenate(out_i)
    order = np.argsort(i, kind="stable")
    return n[order], i[order]
