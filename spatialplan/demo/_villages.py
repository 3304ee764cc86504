"""Villages and roads of the demo township (the "1+N" reach), in local metres.

Three invented villages per township, placed relative to its seat (no randomness: every seed
gives the same villages). One road runs along each valley through both seats, so a village
near the middle border reaches the next town's projects; a north-south road joins the two
valleys; each village has a branch to the nearest point of its valley road. One branch (the
third village of 龙井乡) stops 60 m short of the valley road, a gap larger than the 1 m
snapping tolerance: that village is reported as unconnected, never silently linked.
"""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString, Point

from spatialplan.demo._parts import TOWNSHIPS, _Frame

__all__ = ["GAP_VILLAGE", "village_rows"]

#: per township: (offset along x from the seat, offset away from the valley, population)
_OFFSETS = ((-2500.0, 1000.0, 1260), (2500.0, -900.0, 840), (500.0, 1300.0, 430))
_NAMES = (("桃园村", "石门村", "高坡村"), ("杨柳村", "新寨村", "龙潭村"),
          ("清水村", "团结村", "坪上村"), ("大树村", "凉水村", "岩脚村"))
#: the village whose branch road stops short of the valley road (a 60 m gap)
GAP_VILLAGE = "520399201003"
_GAP_M = 60.0


def village_rows(frame: _Frame) -> tuple[list[dict], list[dict]]:
    """Return the village rows (``CJDM``, ``CJMC``, ``RK``, point) and road rows (``DLDJ``)."""
    villages = []
    for town, (code, *_rest, valley) in enumerate(TOWNSHIPS):
        sx, sy = frame.seat(town)
        away = 1.0 if valley == "n" else -1.0
        for k, (du, dv, people) in enumerate(_OFFSETS):
            villages.append({"CJDM": f"{code}{k + 1:03d}", "CJMC": f"{_NAMES[town][k]}（虚构）",
                             "RK": people, "valley": valley,
                             "geometry": Point(sx + du, sy + away * dv)})
    roads = []
    xs = np.arange(-7600.0, 7601.0, 200.0)
    valley_roads = {}
    for valley in ("n", "s"):
        line = LineString(np.column_stack([xs, frame.valley_y(xs, valley)]))
        valley_roads[valley] = line
        roads.append({"DLDJ": "县道", "geometry": line})
    ns_x = 0.0
    roads.append({"DLDJ": "县道", "geometry": LineString(
        [valley_roads["s"].interpolate(valley_roads["s"].project(Point(ns_x, -2500.0))),
         (ns_x, 0.0),
         valley_roads["n"].interpolate(valley_roads["n"].project(Point(ns_x, 2500.0)))])})
    for v in villages:
        road = valley_roads[v.pop("valley")]
        end = road.interpolate(road.project(v["geometry"]))
        start = v["geometry"]
        if v["CJDM"] == GAP_VILLAGE:  # stop short of the valley road
            length = start.distance(end)
            end = LineString([start, end]).interpolate(length - _GAP_M)
        roads.append({"DLDJ": "村道", "geometry": LineString([start, end])})
    return villages, roads
