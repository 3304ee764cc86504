"""Village reach along the roads (issue 18): hand-computed distances on a small road grid."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, Polygon

from spatialplan.analysis import _reach_graph as graph
from spatialplan.analysis.reach import (
    NO_PROJECT,
    NO_ROAD,
    REACH_COLUMNS,
    Minutes,
    reach_shares,
    village_reach,
)
from spatialplan.errors import FieldError

CRS = 4544


def _grid() -> list[LineString]:
    """Roads y = 0 and y = 1000 from x 0 to 2000, x = 0, 1000, 2000 from y 0 to 1000.

    The horizontal roads carry a vertex at every crossing (shared with the vertical ones).
    """
    return [LineString([(0, 0), (1000, 0), (2000, 0)]),
            LineString([(0, 1000), (1000, 1000), (2000, 1000)]),
            LineString([(0, 0), (0, 1000)]), LineString([(1000, 0), (1000, 1000)]),
            LineString([(2000, 0), (2000, 1000)])]


def _roads(lines) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=lines, crs=CRS)


def _villages(points, codes=None, **cols) -> gpd.GeoDataFrame:
    codes = codes or [f"V{i}" for i in range(len(points))]
    return gpd.GeoDataFrame({"village_code": codes, "name": [f"{c}村" for c in codes], **cols},
                            geometry=list(points), crs=CRS)


def _projects(rows) -> gpd.GeoDataFrame:
    ids, fac, verdict, geoms = zip(*rows, strict=True)
    return gpd.GeoDataFrame({"project_id": ids, "facility": fac, "verdict": verdict},
                            geometry=list(geoms), crs=CRS)


def test_grid_distance_is_leg_plus_road_plus_leg_by_hand():
    villages = _villages([Point(500, 30)])
    projects = _projects([("S1", "school", "pass", Point(2000, 1040)),
                          # nearer along the roads (30 + 2000 + 400) but failed: serves nobody
                          ("S2", "school", "fail", Point(500, 600))])
    out = village_reach(villages, _roads(_grid()), projects,
                        limits_m={"school": 2600.0, "health_center": 2500.0}).reach
    school = out.loc[out["facility"] == "school"].iloc[0]
    # 30 to the road, 500 + 1000 + 1000 along it, 40 from the corner to the site
    assert school["network_m"] == pytest.approx(30 + 2500 + 40)
    assert school["project_id"] == "S1"
    assert school["straight_m"] == pytest.approx(math.hypot(1500, 1010))
    assert bool(school["within_limit"])
    assert school.geometry.length == pytest.approx(school["network_m"])
    assert school.geometry.coords[0] == (500, 30) and school.geometry.coords[-1] == (2000, 1040)
    clinic = out.loc[out["facility"] == "health_center"].iloc[0]
    assert pd.isna(clinic["network_m"]) and not clinic["within_limit"]
    assert clinic["reason"] == NO_PROJECT


def test_the_limit_decides_within():
    villages = _villages([Point(500, 30)])
    projects = _projects([("S1", "school", "review", Point(2000, 1040))])
    out = village_reach(villages, _roads(_grid()), projects, limits_m={"school": 2569.0}).reach
    assert not out["within_limit"].iloc[0]
    assert out["network_m"].iloc[0] == pytest.approx(2570)


def test_nearest_by_road_not_by_straight_line():
    # P_near is 700 m away in a straight line but 30 + 500 + 1000 + 100 + 200 by road;
    # P_far is 1,100 m away in a straight line and 30 + 1100 + 10 by road
    villages = _villages([Point(500, 30)])
    projects = _projects([("P_near", "school", "pass", Point(900, 600)),
                          ("P_far", "school", "pass", Point(1600, -10))])
    out = village_reach(villages, _roads(_grid()), projects, limits_m={"school": 5000.0}).reach
    assert out["project_id"].iloc[0] == "P_far"
    assert out["network_m"].iloc[0] == pytest.approx(30 + 1100 + 10)


def test_a_village_behind_a_large_gap_is_unconnected_and_a_small_gap_is_joined():
    lines = [*_grid(),
             LineString([(2000.6, 0), (3000, 0)]),  # 0.6 m gap: joined
             LineString([(2050, 500), (3000, 500)])]  # 50 m gap: not joined
    villages = _villages([Point(3000, 20), Point(3000, 510)])
    projects = _projects([("S1", "school", "pass", Point(0, -10))])
    res = village_reach(villages, _roads(lines), projects, limits_m={"school": 1e5})
    out = res.reach
    assert out["network_m"].iloc[0] == pytest.approx(20 + 1000 - 0.6 + 0.6 + 2000 + 10)
    assert pd.isna(out["network_m"].iloc[1]) and not out["within_limit"].iloc[1]
    assert out["reason"].iloc[1] == NO_ROAD
    assert out.geometry.iloc[1] is None
    assert res.network["snapped"] == 1


def test_a_t_junction_within_the_tolerance_joins_the_middle_of_a_road():
    # a side road ending 0.4 m short of the middle of y = 0 (no vertex there)
    lines = [*_grid(), LineString([(1500, -800), (1500, -0.4)])]
    villages = _villages([Point(1500, -800)])
    projects = _projects([("S1", "school", "pass", Point(1000, 0))])
    out = village_reach(villages, _roads(lines), projects, limits_m={"school": 1e4}).reach
    assert out["network_m"].iloc[0] == pytest.approx(799.6 + 0.4 + 500)


def test_crossing_lines_without_a_shared_vertex_are_not_joined():
    lines = [LineString([(0, 0), (1000, 0)]), LineString([(500, -500), (500, 500)])]
    villages = _villages([Point(500, 500)])
    projects = _projects([("S1", "school", "pass", Point(0, 0))])
    out = village_reach(villages, _roads(lines), projects, limits_m={"school": 1e4}).reach
    assert out["reason"].iloc[0] == NO_ROAD


def test_a_border_village_is_served_from_the_next_town():
    villages = _villages([Point(1900, 30)], township_code=["T1"])
    projects = gpd.GeoDataFrame(
        {"project_id": ["own", "next"], "facility": ["school", "school"],
         "verdict": ["pass", "pass"], "township_code": ["T1", "T2"]},
        geometry=[Point(0, 0), Point(2000, 1000)], crs=CRS)
    out = village_reach(villages, _roads(_grid()), projects, limits_m={"school": 5000.0}).reach
    assert out["project_id"].iloc[0] == "next"
    assert out["township_code"].iloc[0] == "T1"
    assert out["network_m"].iloc[0] == pytest.approx(30 + 100 + 1000)


def test_polygon_villages_use_their_representative_point():
    square = Polygon([(400, 20), (600, 20), (600, 220), (400, 220)])
    villages = _villages([square])
    projects = _projects([("S1", "school", "pass", Point(500, 0))])
    out = village_reach(villages, _roads(_grid()), projects, limits_m={"school": 5000.0}).reach
    rep = square.representative_point()
    assert out["network_m"].iloc[0] == pytest.approx(rep.y)


def test_a_polygon_site_is_reached_at_its_nearest_road_point():
    site = Polygon([(1400, 50), (1600, 50), (1600, 250), (1400, 250)])
    villages = _villages([Point(500, 30)])
    projects = _projects([("S1", "school", "pass", site)])
    out = village_reach(villages, _roads(_grid()), projects, limits_m={"school": 5000.0}).reach
    assert out["network_m"].iloc[0] == pytest.approx(30 + 900 + 50)


def test_reach_shares_weighted_by_population_and_unweighted():
    villages = _villages([Point(500, 30), Point(1500, 900)], township_code=["T1", "T1"],
                         population=[100, 300])
    projects = _projects([("S1", "school", "pass", Point(400, 0))])
    res = village_reach(villages, _roads(_grid()), projects, limits_m={"school": 500.0})
    assert res.reach["within_limit"].tolist() == [True, False]
    weighted = reach_shares(res.reach, villages)
    assert weighted["reach_share_school"].iloc[0] == pytest.approx(0.25)
    plain = reach_shares(res.reach, villages.drop(columns="population"))
    assert plain["reach_share_school"].iloc[0] == pytest.approx(0.5)
    every = reach_shares(res.reach, villages, townships=pd.Series(["T1", "T2"]))
    assert every["township_code"].tolist() == ["T1", "T2"]
    assert pd.isna(every["reach_share_school"].iloc[1])


def _nx_distances(net, vnode, vleg, snode, sleg):
    g = nx.Graph()
    g.add_weighted_edges_from(zip(net.u.tolist(), net.v.tolist(), net.w.tolist(), strict=True))
    out = []
    for node, leg in zip(vnode, vleg, strict=True):
        d = nx.single_source_dijkstra_path_length(g, int(node)) if node in g else {node: 0.0}
        costs = [leg + d[s] + c for s, c in zip(snode, sleg, strict=True) if s in d]
        out.append(min(costs, default=np.inf))
    return np.array(out)


def test_distances_equal_one_networkx_search_per_village():
    rng = np.random.default_rng(7)
    pts = rng.uniform(0, 3000, size=(60, 2))
    lines = [LineString([pts[i], pts[j]]) for i, j in rng.integers(0, 60, size=(90, 2)) if i != j]
    lines += [LineString([pts[i], pts[i + 1]]) for i in range(0, 40)]
    villages = _villages([Point(p) for p in rng.uniform(0, 3000, size=(25, 2))])
    sites = [Point(p) for p in rng.uniform(0, 3000, size=(6, 2))]
    projects = _projects([(f"S{i}", "school", "pass", g) for i, g in enumerate(sites)])
    out = village_reach(villages, _roads(lines), projects, limits_m={"school": 1e9}, snap_m=0)
    net, node, leg = graph.build_network(np.array(lines, dtype=object), snap_m=0,
                                         points=np.r_[villages.geometry.to_numpy(), sites])
    want = _nx_distances(net, node[:25], leg[:25], node[25:], leg[25:])
    got = out.reach["network_m"].fillna(np.inf).to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_two_projects_on_one_road_point_do_not_add_up():
    villages = _villages([Point(500, 30)])
    projects = _projects([("A", "school", "pass", Point(1000, -30)),
                          ("B", "school", "pass", Point(1000, -20))])
    out = village_reach(villages, _roads(_grid()), projects, limits_m={"school": 5000.0}).reach
    assert out["project_id"].iloc[0] == "B"
    assert out["network_m"].iloc[0] == pytest.approx(30 + 500 + 20)


def _townships() -> gpd.GeoDataFrame:
    """T1 west of x = 1000, T2 east of it (both 0..2000 wide in y from -1000 to 2000)."""
    return gpd.GeoDataFrame({"code": ["T1", "T2"], "name": ["甲镇", "乙镇"]},
                            geometry=[Polygon([(-1000, -1000), (1000, -1000), (1000, 2000),
                                               (-1000, 2000)]),
                                      Polygon([(1000, -1000), (2500, -1000), (2500, 2000),
                                               (1000, 2000)])], crs=CRS)


def test_town_reach_seats_from_the_layer_and_villages_outside_every_township():
    from spatialplan.analysis.reach import town_reach

    villages = _villages([Point(500, 30), Point(1900, 30), Point(9000, 9000)])
    seats = gpd.GeoDataFrame({"township_code": ["T1", "T2"]},
                             geometry=[Point(0, -10), Point(2000, 1010)], crs=CRS)
    projects = _projects([("S1", "school", "pass", Point(1000, -20))])
    out = town_reach(villages, _roads(_grid()), projects, _townships(),
                     limits_m={"school": 600.0}, seats=seats)
    assert out.reach["township_code"].tolist()[:2] == ["T1", "T2"]
    assert pd.isna(out.reach["township_code"].iloc[2])
    assert out.outside["village_code"].tolist() == ["V2"]
    seat = out.village_seat.set_index("village_code")
    assert seat.loc["V0", "seat_m"] == pytest.approx(30 + 500 + 10)
    # V1's nearest seat is its own T2 seat; it is also checked through the growing search
    assert seat.loc["V1", "seat_m"] == pytest.approx(30 + 100 + 1000 + 10)
    assert not seat.loc["V2", "connected"] and "outside every township" in seat.loc["V2",
                                                                                   "reason"]
    shares = out.shares.set_index("township_code")["reach_share_school"]
    assert shares["T1"] == 1.0 and shares["T2"] == 0.0


def test_the_own_seat_is_found_when_another_seat_is_nearer():
    from spatialplan.analysis.reach import town_reach

    # V0 lies in T1 but next to T2's seat: its own seat is 30 + 1000 + 1000 + 10 away
    villages = _villages([Point(900, 30)])
    seats = gpd.GeoDataFrame({"township_code": ["T1", "T2"]},
                             geometry=[Point(-10, 1000), Point(1010, 0)], crs=CRS)
    projects = _projects([("S1", "school", "pass", Point(1000, -20))])
    out = town_reach(villages, _roads(_grid()), projects, _townships(),
                     limits_m={"school": 600.0}, seats=seats)
    assert out.village_seat["seat_m"].iloc[0] == pytest.approx(30 + 900 + 1000 + 10)


def test_without_a_seats_layer_the_largest_udb_polygon_gives_the_seat():
    from spatialplan.analysis.reach import town_reach

    udb = gpd.GeoDataFrame(geometry=[Polygon([(-200, 900), (200, 900), (200, 1100),
                                              (-200, 1100)]),
                                     Polygon([(500, -5), (510, -5), (510, 5), (500, 5)])],
                           crs=CRS)
    villages = _villages([Point(0, 500)], township_code=["T1"])
    projects = _projects([("S1", "school", "pass", Point(0, 0))])
    out = town_reach(villages, _roads(_grid()), projects, _townships(),
                     limits_m={"school": 600.0}, udb=udb)
    assert out.seats["township_code"].tolist() == ["T1"]
    assert "development-boundary" in out.seats["seat_source"].iloc[0]
    assert out.seats.geometry.iloc[0].within(udb.geometry.iloc[0])
    assert out.village_seat["connected"].iloc[0]


# --- minute limits (roads with speeds) -------------------------------------------------------

def _two_speed_roads(speeds=(10.0, 60.0)) -> gpd.GeoDataFrame:
    """A direct road (0,0)-(1000,0) and a detour (0,0)-(0,400)-(1000,400)-(1000,0).

    The direct road (1000 m) is the shortest; at 10 km/h against 60 km/h on the detour (1800 m)
    the detour is the fastest.
    """
    lines = [LineString([(0, 0), (1000, 0)]),
             LineString([(0, 0), (0, 400), (1000, 400), (1000, 0)])]
    return gpd.GeoDataFrame({"speed_kmh": list(speeds)}, geometry=lines, crs=CRS)


def _school_at(x: float, y: float) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"project_id": ["P1"], "facility": ["school"], "verdict": ["pass"]},
                            geometry=[Point(x, y)], crs=CRS)


def _minutes_run(limits_m, limits_min, **kw):
    return village_reach(_villages([Point(-10, 0)]), _two_speed_roads(), _school_at(1010, 0),
                         limits_m=limits_m, minutes=Minutes(limits_min=limits_min, **kw)).reach


def test_minutes_follow_the_fastest_route_not_the_shortest():
    row = _minutes_run({"school": 5000}, {"school": 3}).iloc[0]
    # legs 10 m + 10 m at 5 km/h: 20 * 60 / 5000 min; the detour 1800 m at 60 km/h: 1.8 min
    legs = 20 * 60 / 5000
    assert row["network_m"] == pytest.approx(1020.0)  # the shortest route's distance
    assert row["network_min"] == pytest.approx(1800 * 60 / 60000 + legs)
    assert row["limit_min"] == 3.0 and bool(row["within_limit"])
    # the direct road alone would take 1000 m at 10 km/h = 6 min
    slow = village_reach(_villages([Point(-10, 0)]), _two_speed_roads((10.0, 1.0)),
                         _school_at(1010, 0), limits_m={"school": 5000},
                         minutes=Minutes(limits_min={"school": 30})).reach.iloc[0]
    assert slow["network_min"] == pytest.approx(1000 * 60 / 10000 + legs)


def test_walk_speed_sets_the_legs():
    row = _minutes_run({"school": 5000}, {"school": 30}, walk_kmh=2.0).iloc[0]
    assert row["network_min"] == pytest.approx(1.8 + 20 * 60 / 2000)


def test_within_limit_needs_both_limits():
    assert not bool(_minutes_run({"school": 5000}, {"school": 2})["within_limit"].iloc[0])
    assert not bool(_minutes_run({"school": 1000}, {"school": 30})["within_limit"].iloc[0])
    assert bool(_minutes_run({"school": 1020}, {"school": 2.04})["within_limit"].iloc[0])


def test_a_type_with_a_minute_limit_only_gets_rows():
    out = _minutes_run({"school": 0}, {"school": 3})
    assert len(out) == 1 and math.isnan(out["limit_m"].iloc[0])
    assert bool(out["within_limit"].iloc[0]) and out["network_m"].iloc[0] == pytest.approx(1020)


def test_a_type_with_a_metre_limit_only_has_no_minutes_when_others_do():
    projects = pd.concat([_school_at(1010, 0), _school_at(1010, 0).assign(
        project_id="P2", facility="market")], ignore_index=True)
    out = village_reach(_villages([Point(-10, 0)]), _two_speed_roads(), projects,
                        limits_m={"school": 5000, "market": 5000},
                        minutes=Minutes(limits_min={"school": 3})).reach.set_index("facility")
    assert math.isnan(out.loc["market", "limit_min"]) and bool(out.loc["market", "within_limit"])
    assert out.loc["market", "network_min"] == pytest.approx(1.8 + 20 * 60 / 5000)


def test_without_minute_limits_the_columns_are_absent():
    out = village_reach(_villages([Point(-10, 0)]), _two_speed_roads(), _school_at(1010, 0),
                        limits_m={"school": 5000}, minutes=Minutes())
    assert [c for c in out.reach.columns if c != "geometry"] == list(REACH_COLUMNS)


def test_minute_limits_without_road_speeds_are_refused():
    roads = _two_speed_roads().drop(columns="speed_kmh")
    with pytest.raises(FieldError, match="no speed_kmh field") as err:
        village_reach(_villages([Point(-10, 0)]), roads, _school_at(1010, 0),
                      limits_m={"school": 5000}, minutes=Minutes(limits_min={"school": 3}))
    assert "default_speed_kmh" in str(err.value)


def test_roads_missing_a_speed_take_the_default_or_are_counted():
    roads = _two_speed_roads((10.0, np.nan))
    args = (_villages([Point(-10, 0)]), roads, _school_at(1010, 0))
    with pytest.raises(FieldError, match="1 of 2 road features"):
        village_reach(*args, limits_m={"school": 5000},
                      minutes=Minutes(limits_min={"school": 3}))
    row = village_reach(*args, limits_m={"school": 5000}, minutes=Minutes(
        limits_min={"school": 30}, default_speed_kmh=60.0)).reach.iloc[0]
    assert row["network_min"] == pytest.approx(1.8 + 20 * 60 / 5000)


def test_minute_limits_without_any_road_leave_the_villages_unconnected():
    roads = gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=CRS))
    row = village_reach(_villages([Point(-10, 0)]), roads, _school_at(1010, 0),
                        limits_m={"school": 5000},
                        minutes=Minutes(limits_min={"school": 3})).reach.iloc[0]
    assert math.isnan(row["network_min"]) and not bool(row["within_limit"])
    assert row["reason"].endswith("no roads")
