"""Town seats of the reach analysis: where each township's seat is, and each village's road to it.

A seat comes from the ``seats`` layer (one point per township; its ``township_code``, or the
township it lies in), or, without that layer, it is the representative point of the largest
piece of development boundary (``udb``) inside the township. The road distance of a village to
the seat of its own township is exact: one multi-source pass from every seat settles the
villages whose nearest seat is their own; for the others, a search from their own seat grows
its radius (doubling) until it reaches them, which ends because a village is only searched for
when it lies on the seat's piece of the network.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse.csgraph import connected_components

from spatialplan.analysis import _reach_graph as graph

__all__ = ["SEAT_COLUMNS", "seat_distances", "town_seats"]

logger = logging.getLogger(__name__)

#: columns of the ``village_seat`` table, in order
SEAT_COLUMNS = ("village_code", "name", "township_code", "seat_source", "seat_m", "straight_m",
                "connected", "reason")

FROM_LAYER = "seats layer"
FROM_UDB = "largest development-boundary polygon (no seats layer)"
NO_SEAT = "乡镇无镇区驻地 / the township has no town seat"
NO_ROAD = "道路不连通镇区驻地 / no road connection to the town seat"
NO_TOWNSHIP = "村不在任何乡镇内 / the village lies outside every township"


def town_seats(
    townships: gpd.GeoDataFrame, *, seats: gpd.GeoDataFrame | None = None,
    udb: gpd.GeoDataFrame | None = None,
) -> gpd.GeoDataFrame:
    """Return one seat point per township (``township_code``, ``seat_source``, geometry).

    Parameters
    ----------
    townships
        Township outlines with ``code``.
    seats
        The ``seats`` layer (points), or None.
    udb
        The development boundary, used when ``seats`` is None.
    """
    codes = townships["code"].astype(str).to_numpy()
    if seats is not None:
        pts = seats.geometry.to_numpy()
        code = (seats["township_code"].astype("string").to_numpy(dtype=object)
                if "township_code" in seats else np.full(len(seats), None, dtype=object))
        missing = pd.isna(code)
        if missing.any():
            code[missing] = _containing(townships, pts[missing])
        frame = pd.DataFrame({"township_code": code, "geometry": pts}).dropna()
        dup = frame["township_code"].duplicated()
        if dup.any():
            logger.warning("seats: %d township(s) with more than one seat; the first is used",
                           int(frame.loc[dup, "township_code"].nunique()))
        frame = frame.loc[~dup]
        source = FROM_LAYER
    else:
        frame = _udb_seats(townships, udb)
        source = FROM_UDB
        logger.info("seats: no seats layer; each seat is the representative point of the "
                    "township's largest development-boundary polygon")
    frame = frame.loc[frame["township_code"].isin(codes)]
    return gpd.GeoDataFrame({"township_code": frame["township_code"].to_numpy(dtype=object),
                             "seat_source": source},
                            geometry=list(frame["geometry"]), crs=townships.crs)


def _containing(townships: gpd.GeoDataFrame, pts: np.ndarray) -> np.ndarray:
    """Return the code of the township each point lies in (None outside every township)."""
    out = np.full(len(pts), None, dtype=object)
    tree = shapely.STRtree(townships.geometry.to_numpy())
    p, t = tree.query(pts, predicate="intersects")
    first = np.unique(p, return_index=True)[1]
    out[p[first]] = townships["code"].astype(str).to_numpy()[t[first]]
    return out


def _udb_seats(townships: gpd.GeoDataFrame, udb: gpd.GeoDataFrame | None) -> pd.DataFrame:
    """Return the representative point of the largest development-boundary piece per township."""
    if udb is None or udb.empty:
        return pd.DataFrame({"township_code": [], "geometry": []})
    parts = shapely.get_parts(udb.geometry.to_numpy())
    tgeom = townships.geometry.to_numpy()
    p, t = shapely.STRtree(tgeom).query(parts, predicate="intersects")
    pieces = shapely.intersection(parts[p], tgeom[t])
    area = shapely.area(pieces)
    order = np.lexsort((-area, t))
    first = np.r_[True, t[order][1:] != t[order][:-1]][: len(order)]
    best = order[first]
    return pd.DataFrame({"township_code": townships["code"].astype(str).to_numpy()[t[best]],
                         "geometry": shapely.point_on_surface(pieces[best])})


def seat_distances(
    net: graph.Network, villages: pd.DataFrame, *, vpts: np.ndarray,
    vatt: tuple[np.ndarray, np.ndarray], seats: gpd.GeoDataFrame,
    satt: tuple[np.ndarray, np.ndarray],
) -> pd.DataFrame:
    """Return the ``village_seat`` table: each village's road distance to its own seat."""
    n = len(villages)
    frame = pd.DataFrame({
        "village_code": villages["village_code"].to_numpy(dtype=object),
        "name": villages["name"].to_numpy(dtype=object),
        "township_code": villages["township_code"].to_numpy(dtype=object),
        "seat_source": np.full(n, seats["seat_source"].iloc[0] if len(seats) else FROM_UDB,
                               dtype=object),
        "seat_m": np.full(n, np.nan), "straight_m": np.full(n, np.nan),
        "connected": np.zeros(n, dtype=bool), "reason": np.full(n, None, dtype=object),
    })
    seat_of = pd.Series(np.arange(len(seats)), index=seats["township_code"].to_numpy())
    own = seat_of.reindex(frame["township_code"].to_numpy()).to_numpy()
    has = ~np.isnan(own)
    frame.loc[frame["township_code"].isna(), "reason"] = NO_TOWNSHIP
    frame.loc[frame["township_code"].notna() & ~has, "reason"] = NO_SEAT
    if not has.any() or len(net.u) == 0:
        frame.loc[has, "reason"] = NO_ROAD
        return frame
    own_i = own[has].astype(np.int64)
    frame.loc[has, "straight_m"] = shapely.distance(vpts[has], seats.geometry.to_numpy()[own_i])
    dist = _own_seat(net, vatt[0][has], vatt[1][has], own_i, satt)
    ok = np.isfinite(dist)
    idx = np.flatnonzero(has)
    frame.loc[idx[ok], "seat_m"] = dist[ok]
    frame.loc[idx, "connected"] = ok
    frame.loc[idx[~ok], "reason"] = NO_ROAD
    return frame


def _own_seat(
    net: graph.Network, vnode: np.ndarray, vleg: np.ndarray, own: np.ndarray,
    satt: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Road distance from each village to its own seat (inf when not connected)."""
    snode, sleg = satt
    dist, pred = graph.multi_source(net, snode, sleg)
    total = vleg + dist[vnode]
    near = np.full(len(vnode), -1, dtype=np.int64)
    ok = np.isfinite(total)
    root = graph.roots(pred, vnode[ok])
    # the seat behind each root node (seats sharing a node: the cheaper one won the search)
    order = np.lexsort((sleg, snode))
    first = np.r_[True, snode[order][1:] != snode[order][:-1]][: len(order)]
    near[ok] = pd.Series(order[first], index=snode[order][first]).reindex(root).to_numpy()
    out = np.where(near == own, total, np.inf)
    todo = np.flatnonzero(ok & (near != own))
    if len(todo):
        out[todo] = _searched(net, vnode[todo], vleg[todo], own[todo], satt, total[todo])
    return out


def _searched(
    net: graph.Network, vnode: np.ndarray, vleg: np.ndarray, own: np.ndarray,
    satt: tuple[np.ndarray, np.ndarray], lower: np.ndarray,
) -> np.ndarray:
    """Distances to the own seat by growing searches from it (same piece of network only)."""
    snode, sleg = satt
    m = graph.matrix(net)
    _, comp = connected_components(m, directed=False)
    out = np.full(len(vnode), np.inf)
    for seat in np.unique(own):
        rows = np.flatnonzero((own == seat) & (comp[vnode] == comp[snode[seat]]))
        limit = max(2.0 * float(lower[rows].max()), 1000.0) if len(rows) else 0.0
        while len(rows):
            d = graph.from_one(m, snode[seat], limit=limit)[vnode[rows]]
            done = np.isfinite(d)
            out[rows[done]] = sleg[seat] + d[done] + vleg[rows[done]]
            rows, limit = rows[~done], limit * 2.0
    return out
