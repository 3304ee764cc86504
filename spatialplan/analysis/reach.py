"""Town-village reach ("1+N" 镇村联动): which villages each 8+X facility type reaches by road.

The distance from a village to a project is the straight leg from the village to its nearest
point on the road network, plus the shortest path along the roads, plus the straight leg from
the road network to the project's site (from the site's nearest road point). For each facility
type with a limit, one multi-source Dijkstra pass (:mod:`._reach_graph`) gives every village
its nearest serving project: a project serves when its verdict is not ``fail``, whatever its
township (a village near a border is served from the next town). A village the roads do not
join to any serving project gets no distance, ``within_limit`` false and the reason.

Minute limits (optional, when the roads carry ``speed_kmh``): for a type with a limit in
minutes, a second Dijkstra pass runs on travel times (each road piece's length at its line's
speed, the two straight legs at ``walk_kmh``) and gives ``network_min``, the travel time to the
fastest serving project (it may differ from ``project_id``, the nearest by road distance).
``within_limit`` then requires ``network_m <= limit_m`` when the type has a metre limit and
``network_min <= limit_min`` when it has a minute limit. Without any minute limit the rows have
no ``network_min`` / ``limit_min`` columns.

Pure: GeoDataFrames in, (Geo)DataFrames out; nothing is written.

Example
-------
>>> import geopandas as gpd
>>> from shapely.geometry import LineString, Point
>>> roads = gpd.GeoDataFrame(geometry=[LineString([(0, 0), (1000, 0)])], crs=4544)
>>> villages = gpd.GeoDataFrame({"village_code": ["V1"], "name": ["甲村"]},
...                             geometry=[Point(0, 30)], crs=4544)
>>> projects = gpd.GeoDataFrame({"project_id": ["P1"], "facility": ["school"],
...                              "verdict": ["pass"]}, geometry=[Point(1000, -40)], crs=4544)
>>> out = village_reach(villages, roads, projects, limits_m={"school": 5000.0})
>>> float(out.reach["network_m"].iloc[0]), bool(out.reach["within_limit"].iloc[0])
(1070.0, True)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from spatialplan.analysis import _reach_graph as graph
from spatialplan.analysis import _reach_seats
from spatialplan.errors import FieldError

__all__ = ["MINUTE_COLUMNS", "REACH_COLUMNS", "Minutes", "ReachResult", "TownReach",
           "reach_shares", "road_pace", "town_reach", "village_points", "village_reach"]

logger = logging.getLogger(__name__)

#: columns of the ``village_reach`` layer, in order (before ``geometry``, the path)
REACH_COLUMNS = ("village_code", "name", "township_code", "facility", "project_id",
                 "network_m", "straight_m", "within_limit", "limit_m", "reason")
#: columns added after ``limit_m`` when minute limits are configured
MINUTE_COLUMNS = ("network_min", "limit_min")

NO_PROJECT = "该类设施无可服务项目 / no serving project of this type"
NO_ROAD = "道路不连通任何可服务项目 / no road connection to any serving project"
NO_ROADS = "无道路数据 / no roads"


@dataclass(frozen=True)
class Minutes:
    """Minute limits of the reach (rulebook ``[reach.limits_min]``, ``walk_kmh``, ...).

    Attributes
    ----------
    limits_min
        Facility code → the longest acceptable travel time in minutes (0: no minute limit).
    walk_kmh
        Speed on the two straight legs (village → road, road → site).
    default_speed_kmh
        Speed of road features whose ``speed_kmh`` is missing or not positive (``None``: such
        features make minute limits impossible, and :func:`road_pace` refuses).
    """

    limits_min: Mapping[str, float] = field(default_factory=dict)
    walk_kmh: float = 5.0
    default_speed_kmh: float | None = None

    @property
    def active(self) -> dict[str, float]:
        """The positive minute limits."""
        return {k: float(v) for k, v in self.limits_min.items() if v > 0}


def road_pace(roads: pd.DataFrame, *, default_speed_kmh: float | None = None) -> np.ndarray:
    """Return each road feature's pace in minutes per metre, from its ``speed_kmh``.

    A missing or non-positive speed takes ``default_speed_kmh``; without one the roads cannot
    carry minute limits and a :class:`~spatialplan.errors.FieldError` names the fix.
    """
    fix = ("give the roads a speed_kmh field (aliases SJSD, 设计速度, 设计时速), set [reach] "
           "default_speed_kmh, or remove [reach.limits_min]")
    if len(roads) == 0:
        return np.empty(0)
    if "speed_kmh" not in roads.columns:
        raise FieldError("minute limits ([reach.limits_min]) need road speeds, but the roads "
                         "layer has no speed_kmh field", layer="roads", hint=fix)
    speed = pd.to_numeric(roads["speed_kmh"], errors="coerce").to_numpy(dtype=float)
    bad = ~(speed > 0)
    if bad.any():
        if default_speed_kmh is None or not default_speed_kmh > 0:
            raise FieldError(f"minute limits ([reach.limits_min]) need road speeds, but "
                             f"{int(bad.sum())} of {len(speed)} road features have no positive "
                             "speed_kmh", layer="roads", hint=fix)
        logger.info("roads: %d feature(s) without a speed take default_speed_kmh = %g",
                    int(bad.sum()), default_speed_kmh)
        speed = np.where(bad, default_speed_kmh, speed)
    return 0.06 / speed


@dataclass(frozen=True)
class ReachResult:
    """What :func:`village_reach` returns.

    Attributes
    ----------
    reach
        The ``village_reach`` layer: one row per village and facility type with a limit
        (:data:`REACH_COLUMNS`; geometry = the path, village → roads → site; empty when the
        village is not connected).
    network
        Counts: ``nodes``, ``edges``, ``snapped`` (gaps joined under the tolerance),
        ``dangling`` (line ends touching nothing), ``snap_m``.
    """

    reach: gpd.GeoDataFrame
    network: Mapping[str, float] = field(default_factory=dict)


def village_points(villages: gpd.GeoDataFrame) -> np.ndarray:
    """Return each village's point (a polygon's representative point, a multipoint's first)."""
    geoms = villages.geometry.to_numpy()
    pts = shapely.point_on_surface(geoms)
    multi = shapely.get_type_id(geoms) == 4
    if multi.any():
        pts[multi] = shapely.get_geometry(geoms[multi], 0)
    return pts


def _serving(projects: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Projects that serve villages: a usable site and a verdict other than ``fail``."""
    geom = projects.geometry
    ok = geom.notna().to_numpy() & ~geom.is_empty.to_numpy()
    ok &= projects["verdict"].astype(str).ne("fail").to_numpy()
    return projects.loc[ok]


def village_reach(
    villages: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, projects: gpd.GeoDataFrame, *,
    limits_m: Mapping[str, float], snap_m: float = 1.0, paths: bool = True,
    minutes: Minutes | None = None,
) -> ReachResult:
    """Find, for each village and facility type with a limit, its nearest serving project by road.

    Parameters
    ----------
    villages
        ``village_code``, ``name``, optional ``township_code``; points or polygons.
    roads
        Road lines, in the same metric CRS.
    projects
        The checked register: ``project_id``, ``facility`` (resolved code), ``verdict``, the
        site geometry (null for a rejected feature).
    limits_m
        Facility code → the longest acceptable road distance in metres (0: type left out).
    snap_m
        Gaps between road lines up to this distance are joined (see :mod:`._reach_graph`).
    paths
        Build the path geometries (off: geometry empty, for speed).
    minutes
        Minute limits (:class:`Minutes`); the roads then need ``speed_kmh``
        (:func:`road_pace`). A type with a minute limit only gets rows too (``limit_m`` NaN).

    Returns
    -------
    ReachResult
    """
    return _reach(villages, roads, projects, limits_m=limits_m, snap_m=snap_m, paths=paths,
                  minutes=minutes)[0]


def _reach(
    villages: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, projects: gpd.GeoDataFrame, *,
    limits_m: Mapping[str, float], snap_m: float, paths: bool,
    extra: np.ndarray | None = None, minutes: Minutes | None = None,
) -> tuple[ReachResult, graph.Network, tuple[np.ndarray, np.ndarray],
           tuple[np.ndarray, np.ndarray]]:
    """Run :func:`village_reach`; also attach ``extra`` points (the seats) to the network."""
    vpts = village_points(villages)
    serving = _serving(projects)
    sites = serving.geometry.to_numpy()
    extra = np.asarray([] if extra is None else extra, dtype=object)
    by_min = minutes.active if minutes is not None else {}
    pace = (road_pace(roads, default_speed_kmh=minutes.default_speed_kmh)
            if minutes is not None and by_min else None)
    net, anode, leg = graph.build_network(
        roads.geometry.to_numpy(), snap_m=snap_m, points=np.r_[vpts, sites, extra], pace=pace
    )
    nv, ns = len(vpts), len(vpts) + len(sites)
    by_m = {k: float(v) for k, v in limits_m.items() if v > 0}
    walk = 0.06 / minutes.walk_kmh if minutes is not None else 0.0
    frames = []
    for code in dict.fromkeys([*by_m, *by_min]):
        mask = serving["facility"].astype(str).eq(code).to_numpy()
        frame = _one_type(
            net, villages, vpts, (anode[:nv], leg[:nv]),
            (serving.loc[mask], anode[nv:ns][mask], leg[nv:ns][mask]),
            code=code, limit=by_m.get(code, np.nan), paths=paths,
        )
        if by_min:
            _add_minutes(frame, net, (anode[:nv], leg[:nv]),
                         (anode[nv:ns][mask], leg[nv:ns][mask]),
                         limit=by_min.get(code, np.nan), walk=walk)
        frames.append(frame)
    reach = pd.concat(frames, ignore_index=True) if frames else _empty(villages)
    counts = {"nodes": len(net.xy), "edges": len(net.u), "snapped": net.n_snapped,
              "dangling": net.n_dangling, "snap_m": snap_m}
    result = ReachResult(gpd.GeoDataFrame(reach, geometry="geometry", crs=villages.crs), counts)
    return result, net, (anode[:nv], leg[:nv]), (anode[ns:], leg[ns:])


def _add_minutes(
    frame: gpd.GeoDataFrame, net: graph.Network, vatt: tuple[np.ndarray, np.ndarray],
    satt: tuple[np.ndarray, np.ndarray], *, limit: float, walk: float,
) -> None:
    """Add ``network_min`` / ``limit_min`` to one type's rows and tighten ``within_limit``."""
    vnode, vleg = vatt
    snode, sleg = satt
    minutes = np.full(len(frame), np.nan)
    if len(snode) and len(net.u) and net.t is not None:
        tdist, _ = graph.multi_source(net, snode, sleg * walk, weights=net.t)
        total = vleg * walk + tdist[vnode]
        minutes = np.where(np.isfinite(total), total, np.nan)
    at = frame.columns.get_loc("limit_m") + 1
    frame.insert(at, "network_min", minutes)
    frame.insert(at + 1, "limit_min", np.full(len(frame), limit))
    if np.isfinite(limit):
        frame["within_limit"] = frame["within_limit"].to_numpy(dtype=bool) & (
            np.nan_to_num(minutes, nan=np.inf) <= limit)


def _empty(villages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    cols = {c: pd.Series(dtype=object) for c in REACH_COLUMNS}
    return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=villages.crs))


def _base(villages: gpd.GeoDataFrame, code: str, limit: float) -> pd.DataFrame:
    n = len(villages)
    tcode = (villages["township_code"].to_numpy(dtype=object) if "township_code" in villages
             else np.full(n, None, dtype=object))
    return pd.DataFrame({
        "village_code": villages["village_code"].to_numpy(dtype=object),
        "name": villages["name"].to_numpy(dtype=object) if "name" in villages
        else np.full(n, None, dtype=object),
        "township_code": tcode,
        "facility": np.full(n, code, dtype=object),
        "project_id": np.full(n, None, dtype=object),
        "network_m": np.full(n, np.nan),
        "straight_m": np.full(n, np.nan),
        "within_limit": np.zeros(n, dtype=bool),
        "limit_m": np.full(n, limit),
        "reason": np.full(n, None, dtype=object),
    })


def _one_type(
    net: graph.Network, villages: gpd.GeoDataFrame, vpts: np.ndarray,
    vatt: tuple[np.ndarray, np.ndarray],
    src: tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray], *, code: str, limit: float,
    paths: bool,
) -> gpd.GeoDataFrame:
    """Return the rows of one facility type."""
    frame = _base(villages, code, limit)
    geom = np.full(len(frame), None, dtype=object)
    sites, snode, sleg = src
    vnode, vleg = vatt
    if len(sites) == 0 or len(net.u) == 0:
        frame["reason"] = NO_PROJECT if len(sites) == 0 else NO_ROADS
        return gpd.GeoDataFrame(frame, geometry=geom, crs=villages.crs)
    dist, pred = graph.multi_source(net, snode, sleg)
    total = vleg + dist[vnode]
    ok = np.isfinite(total)
    root = graph.roots(pred, vnode[ok])
    # the project behind each source node: the one with the smallest leg there
    order = np.lexsort((sleg, snode))
    first = np.r_[True, snode[order][1:] != snode[order][:-1]]
    by_node = pd.Series(order[first], index=snode[order][first])
    which = by_node.reindex(root).to_numpy()
    site_geoms = sites.geometry.to_numpy()
    frame.loc[ok, "project_id"] = sites["project_id"].to_numpy(dtype=object)[which]
    frame.loc[ok, "network_m"] = total[ok]
    frame.loc[ok, "straight_m"] = shapely.distance(vpts[ok], site_geoms[which])
    frame["within_limit"] = ok & ((np.nan_to_num(total, nan=np.inf) <= limit) | np.isnan(limit))
    frame.loc[~ok, "reason"] = NO_ROAD
    if paths and ok.any():
        geom[ok] = _paths(net, pred, vpts[ok], vnode[ok], site_geoms[which])
    return gpd.GeoDataFrame(frame, geometry=geom, crs=villages.crs)


def _paths(
    net: graph.Network, pred: np.ndarray, start: np.ndarray, nodes: np.ndarray,
    sites: np.ndarray,
) -> np.ndarray:
    """Line geometries village → its road point → ... → the site's road point → the site."""
    pn, pi = graph.path_nodes(pred, nodes)
    road_end = shapely.points(net.xy[graph.roots(pred, nodes)])
    site_pt = shapely.get_point(shapely.shortest_line(sites, road_end), 0)
    k = len(nodes)
    xy = np.concatenate([shapely.get_coordinates(start), net.xy[pn],
                         shapely.get_coordinates(site_pt)])
    idx = np.concatenate([np.arange(k), pi, np.arange(k)])
    seq = np.concatenate([np.zeros(k), np.ones(len(pi)), np.full(k, 2.0)])
    order = np.lexsort((np.arange(len(idx)), seq, idx))
    return shapely.linestrings(xy[order], indices=idx[order])


def reach_shares(
    reach: pd.DataFrame, villages: pd.DataFrame, *, townships: pd.Series | None = None
) -> pd.DataFrame:
    """Share of each township's villages within the limit, per facility type.

    Weighted by ``population`` when the village layer has that column (a village without a
    population weighs 0); otherwise each village counts once. Villages without a township are
    left out. Returns one row per township code with ``reach_share_<facility>`` columns.

    Parameters
    ----------
    reach
        The ``village_reach`` rows (:func:`village_reach`).
    villages
        The village layer (for ``population``), in the order of ``reach``'s rows per type.
    townships
        Township codes to report (all with a row, NaN where a township has no village).
    """
    weighted = "population" in villages.columns
    weights = (pd.to_numeric(villages["population"], errors="coerce").fillna(0.0).to_numpy()
               if weighted else np.ones(len(villages)))
    frame = pd.DataFrame({
        "township_code": reach["township_code"].to_numpy(dtype=object),
        "facility": reach["facility"].to_numpy(dtype=object),
        "w": np.tile(weights, max(len(reach) // max(len(villages), 1), 1))[: len(reach)],
    })
    frame["hit"] = frame["w"] * reach["within_limit"].to_numpy(dtype=bool)
    frame = frame.loc[frame["township_code"].notna()]
    sums = frame.groupby(["township_code", "facility"], sort=False)[["w", "hit"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        share = (sums["hit"] / sums["w"]).where(sums["w"] > 0)
    out = share.unstack("facility")
    out.columns = [f"reach_share_{c}" for c in out.columns]
    out.index.name = "township_code"
    if townships is not None:
        out = out.reindex(pd.Index(townships.astype(str), name="township_code"))
    return out.reset_index()


@dataclass(frozen=True)
class TownReach:
    """What :func:`town_reach` returns (the reach outputs of a check).

    Attributes
    ----------
    reach
        The ``village_reach`` layer (:func:`village_reach`).
    village_seat
        Each village's road distance to its own town seat (``_reach_seats.SEAT_COLUMNS``);
        ``connected`` false with the reason when the roads do not join them.
    shares
        ``township_code`` and ``reach_share_<facility>`` per township (:func:`reach_shares`).
    seats
        The seat of each township (``township_code``, ``seat_source``, point).
    outside
        ``village_code``, ``name`` of the villages outside every township.
    network
        The road network's counts (:attr:`ReachResult.network`).
    """

    reach: gpd.GeoDataFrame
    village_seat: pd.DataFrame
    shares: pd.DataFrame
    seats: gpd.GeoDataFrame
    outside: pd.DataFrame
    network: Mapping[str, float]


def town_reach(
    villages: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, projects: gpd.GeoDataFrame,
    townships: gpd.GeoDataFrame, *, limits_m: Mapping[str, float], snap_m: float = 1.0,
    seats: gpd.GeoDataFrame | None = None, udb: gpd.GeoDataFrame | None = None,
    paths: bool = True, minutes: Minutes | None = None,
) -> TownReach:
    """Run the whole "1+N" reach of a plan: village reach, shares, seats.

    A village without a ``township_code`` takes the township it lies in; the villages in no
    township are counted and named (logged, and in :attr:`TownReach.outside`), kept in the
    reach rows and left out of the shares.

    Parameters
    ----------
    villages, roads, projects
        As :func:`village_reach`.
    townships
        Township outlines (``code``).
    limits_m, snap_m
        The rulebook's ``[reach]`` settings.
    seats, udb
        The ``seats`` layer, else the development boundary for the seats
        (:func:`._reach_seats.town_seats`).
    paths
        Build the path geometries.
    minutes
        Minute limits (:class:`Minutes`).

    Returns
    -------
    TownReach
    """
    villages = _with_townships(villages, townships)
    outside = villages.loc[villages["township_code"].isna(), ["village_code", "name"]]
    if len(outside):
        named = ", ".join(f"{c} {n}" for c, n in outside.head(10).itertuples(index=False))
        logger.warning("villages: %d outside every township (%s%s)", len(outside), named,
                       ", ..." if len(outside) > 10 else "")
    seat_pts = _reach_seats.town_seats(townships, seats=seats, udb=udb)
    result, net, vatt, satt = _reach(villages, roads, projects, limits_m=limits_m,
                                     snap_m=snap_m, paths=paths, minutes=minutes,
                                     extra=seat_pts.geometry.to_numpy())
    table = _reach_seats.seat_distances(net, villages, vpts=village_points(villages), vatt=vatt,
                                        seats=seat_pts, satt=satt)
    shares = reach_shares(result.reach, villages, townships=townships["code"])
    return TownReach(result.reach, table, shares, seat_pts, outside.reset_index(drop=True),
                     result.network)


def _with_townships(villages: gpd.GeoDataFrame, townships: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Fill a missing ``township_code`` with the township each village lies in."""
    out = villages.copy()
    code = np.full(len(out), None, dtype=object)
    if "township_code" in out:
        given = out["township_code"]
        code[given.notna().to_numpy()] = given.dropna().astype(str).to_numpy(dtype=object)
    missing = np.array([c is None for c in code], dtype=bool)
    if missing.any():
        code[missing] = _reach_seats._containing(townships, village_points(out)[missing])
    out["township_code"] = code
    return out
