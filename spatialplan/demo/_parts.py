"""Layout and project register of the synthetic demo township.

Helpers of :mod:`spatialplan.demo.synthetic`.

Seat-local geometry (the valley frame, parcel blocks, development-boundary outlines), the "8+X"
project register with the planted cases documented in ``expected.csv``, the village-plan parcels
under sites outside the boundaries and the hand-placed control-line features. Nothing here draws
random numbers; :mod:`spatialplan.demo.synthetic` owns the seeds and writes the files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from shapely import affinity
from shapely.geometry import LineString, Polygon, box

__all__ = [
    "FILLER_CODES",
    "LANDUSE_NAMES",
    "ORPHAN_ID",
    "TOWNSHIPS",
    "UDB_FLEX",
    "UDB_MAIN",
    "UDB_SPECIAL",
    "VILLAGE_PLAN",
    "ZONES",
    "_Frame",
    "_Planted",
    "_Project",
    "_block",
    "_plant",
    "_register",
    "_udb_box",
    "_udb_poly",
    "_village_parcels",
]

# Township: (code, name, seat x, valley "n"/"s", has flexible zone).
TOWNSHIPS = (
    ("520399101", "示范镇（虚构）", -4000.0, "n"),
    ("520399102", "青山镇（虚构）", 4000.0, "n"),
    ("520399103", "清溪镇（虚构）", -4000.0, "s"),
    ("520399201", "龙井乡（虚构）", 4000.0, "s"),
)
SEATS_X = (-4000.0, 4000.0)

# Urban development boundary of each seat in seat-local metres (u east, v north).
UDB_MAIN = (
    (-800, -380), (-500, -450), (600, -450), (800, -300), (800, 320),
    (550, 450), (-600, 450), (-800, 250), (-800, 150), (-800, -150),
)
UDB_FLEX = ((800, -300), (1100, -240), (1100, 260), (800, 320))
UDB_SPECIAL = ((-1050, -150), (-800, -150), (-800, 150), (-1050, 150))
# 规划分区代码 (illustrative, see layers/demo/README.md).
ZONES = {"main": ("21", "城镇集中建设区"), "flex": ("22", "城镇弹性发展区"),
         "special": ("23", "特别用途区")}

# Parcel blocks: 11 x 6 grid of 200 m x 150 m cells, 20 m streets between blocks.
BLOCK_U0, BLOCK_V0, BLOCK_DU, BLOCK_DV, STREET = -1100.0, -450.0, 200.0, 150.0, 20.0
FILLER_CODES = (
    "070101", "070102", "070102", "070102", "070103", "0703", "090101", "090103",
    "090104", "0902", "080301", "0801", "1401", "1402", "1101", "100101",
)
LANDUSE_NAMES = {
    "070101": "一类城镇住宅用地", "070102": "二类城镇住宅用地", "070103": "三类城镇住宅用地",
    "0703": "农村宅基地", "0801": "机关团体用地", "080301": "图书与展览用地",
    "080403": "中小学用地", "080602": "基层医疗卫生设施用地", "080701": "老年人社会福利用地",
    "090101": "零售商业用地", "090102": "批发市场用地", "090103": "餐饮用地",
    "090104": "旅馆用地", "0902": "商务金融用地", "0904": "其他商业服务业用地",
    "100101": "一类工业用地", "1101": "物流仓储用地", "1207": "城镇村道路用地",
    "120801": "对外交通场站用地", "120803": "社会停车场用地", "1309": "环卫用地",
    "1301": "供水用地", "1302": "排水用地", "0704": "农村社区服务设施用地",
    "1401": "公园绿地", "1402": "防护绿地", "1403": "广场用地", "16": "留白用地",
}


# ---------------------------------------------------------------------------------------------
# small geometry helpers (local metres, origin ``spatialplan.demo.synthetic.ORIGIN``)


@dataclass(frozen=True)
class _Frame:
    """Valley centre lines and seat positions (all in local metres)."""

    phase_n: float
    phase_s: float

    def valley_y(self, x: np.ndarray | float, valley: str) -> np.ndarray:
        """Y of the river in valley ``"n"`` or ``"s"``; straight near the town seats."""
        x = np.asarray(x, dtype=float)
        taper = 1.0 - np.maximum.reduce([np.exp(-(((x - sx) / 2000.0) ** 2)) for sx in SEATS_X])
        if valley == "n":
            return 2500.0 + 180.0 * np.sin(2 * np.pi * x / 9000.0 + self.phase_n) * taper
        return -2500.0 + 180.0 * np.sin(2 * np.pi * x / 8000.0 + self.phase_s) * taper

    def floor_halfwidth(self, x: np.ndarray) -> np.ndarray:
        """Half-width of the flat valley floor: wide around the seats, narrow elsewhere."""
        return 330.0 + sum(500.0 * np.exp(-(((x - sx) / 1600.0) ** 2)) for sx in SEATS_X)

    def seat(self, town: int) -> tuple[float, float]:
        sx, valley = TOWNSHIPS[town][2], TOWNSHIPS[town][3]
        return sx, float(self.valley_y(sx, valley))

    def udb_xy(self, town: int, u: float, v: float) -> tuple[float, float]:
        """Seat-local (u, v) to local x, y (straight frame, used inside the town)."""
        sx, sy = self.seat(town)
        return sx + u, sy + v

    def valley_xy(self, town: int, u: float, v: float) -> tuple[float, float]:
        """Valley-following (u along the valley from the seat, v across it) to local x, y."""
        sx = TOWNSHIPS[town][2]
        return sx + u, float(self.valley_y(sx + u, TOWNSHIPS[town][3])) + v


def _udb_poly(frame: _Frame, town: int, pts: Sequence[tuple[float, float]]) -> Polygon:
    return Polygon([frame.udb_xy(town, u, v) for u, v in pts])


def _udb_box(frame: _Frame, town: int, u0: float, v0: float, u1: float, v1: float) -> Polygon:
    return _udb_poly(frame, town, [(u0, v0), (u1, v0), (u1, v1), (u0, v1)])


def _block(i: int, j: int, inset: float = 0.0) -> tuple[float, float, float, float]:
    """Seat-local bounds of parcel block ``(i, j)`` shrunk by ``inset`` metres."""
    half = STREET / 2 + inset
    u0 = BLOCK_U0 + BLOCK_DU * i
    v0 = BLOCK_V0 + BLOCK_DV * j
    return u0 + half, v0 + half, u0 + BLOCK_DU - half, v0 + BLOCK_DV - half


def _anchor_box(anchor: tuple[float, float], dx0: float, dy0: float, dx1: float,
                dy1: float) -> Polygon:
    return box(anchor[0] + dx0, anchor[1] + dy0, anchor[0] + dx1, anchor[1] + dy1)


def _corridor(frame: _Frame, town: int, u0: float, u1: float, v: float, half: float,
              *, valley: bool = True) -> Polygon:
    """Build a road corridor of width ``2 * half`` along the valley (or straight in the town)."""
    us = np.linspace(u0, u1, max(2, int(abs(u1 - u0) // 50) + 1))
    to_xy = frame.valley_xy if valley else frame.udb_xy
    line = LineString([to_xy(town, float(u), v) for u in us])
    return line.buffer(half, cap_style="flat", join_style="mitre")


@dataclass
class _Project:
    """One register entry and how to draw its site."""

    pid: str
    town: int
    facility: str
    name: str
    status: str
    dates: tuple[str | None, str | None, str | None, str | None]
    investment: float
    years: tuple[int, int]
    site: Callable[[_Frame], Polygon] | None = None
    declared_town: int | None = None
    kind: str = "新建"
    parcels: dict[tuple[int, int], object] = field(default_factory=dict)
    built: Callable[[Polygon], Polygon] | None = None
    geometry: Polygon | None = None


# ---------------------------------------------------------------------------------------------
# project register (the planted cases are documented in expected.csv)


def _shift(dx: float) -> Callable[[Polygon], Polygon]:
    return lambda g: affinity.translate(g, dx, 0.0)


def _inset(d: float) -> Callable[[Polygon], Polygon]:
    return lambda g: g.buffer(-d, join_style="mitre")


def _udb_site(town: int, u0: float, v0: float, u1: float, v1: float):
    return lambda f: _udb_box(f, town, u0, v0, u1, v1)


def _block_site(town: int, i: int, j: int, inset: float):
    return lambda f: _udb_box(f, town, *_block(i, j, inset))


def _valley_site(town: int, u: float, v: float, w: float, h: float):
    return lambda f: _anchor_box(f.valley_xy(town, u, v), -w / 2, -h / 2, w / 2, h / 2)


def _sewage_site(town: int, u: float, v: float):
    """Build a 120 m x 80 m plant with one chamfered corner (5 vertices)."""
    def draw(f: _Frame) -> Polygon:
        x, y = f.valley_xy(town, u, v)
        return Polygon([(x - 60, y - 40), (x + 60, y - 40), (x + 60, y + 20), (x + 40, y + 40),
                        (x - 60, y + 40)])
    return draw


def _register() -> list[_Project]:
    """Build the 8+X register: most projects pass; the planted cases are noted per line."""
    P = _Project
    A, B, C, D = 0, 1, 2, 3
    return [
        # 示范镇 (A)
        P("XM0101", A, "health_center", "示范镇卫生院改扩建工程", "completed",
          ("2022-03-10", "2022-06-01", "2022-07-15", "2023-10-30"), 1850.0, (2022, 2023),
          _block_site(A, 4, 3, 20), kind="改、扩建", parcels={(4, 3): "080602"},  # → 改扩建
          built=_inset(8)),
        P("XM0102", A, "学校", "示范镇中心小学教学楼及运动场", "completed",
          ("2021-04-02", "2021-08-20", "2021-09-10", "2022-08-25"), 3200.0, (2021, 2022),
          _block_site(A, 6, 3, 5), parcels={(6, 3): "080403"}, built=_inset(10)),
        P("XM0103", A, "农贸市场", "示范镇农贸市场", "planned",  # landuse fail (on 070102)
          ("2024/3/5", None, None, None), 980.0, (2025, 2026),
          _block_site(A, 3, 2, 15), parcels={(3, 2): "070102"}),
        P("XM0104", A, "elder_care", "示范镇敬老院", "under_construction",
          ("2023-11-20", "2024-04-10", "20240505", None), 1200.0, (2024, 2026),
          _block_site(A, 2, 3, 20), parcels={(2, 3): "080701"}),
        P("XM0105", A, "公园", "示范镇滨河公园", "planned",  # overlaps XM0106 by 3 m x 120 m
          ("2025-02-14", None, None, None), 650.0, (2026, 2027),
          _udb_site(A, -85, -285, 23, -165), parcels={(5, 1): ("split", 20.0, "1401", "120803")}),
        P("XM0106", A, "停车场", "示范镇公共停车场", "planned",
          ("2025-02-14", None, None, None), 180.0, (2026, 2026), _udb_site(A, 20, -285, 85, -165)),
        P("XM0107", A, "sewage", "示范镇污水处理厂", "under_construction",  # outside UDB: pass
          ("2023-05-06", "2023-09-12", "2023-10-08", None), 2600.0, (2023, 2025),
          _sewage_site(A, 1700, -60), kind="续建"),
        P("XM0108", A, "垃圾转运站", "示范镇镇区垃圾转运站", "planned",  # 30 m from XM0102
          ("2025-06-18", None, None, None), 260.0, (2026, 2027),
          _udb_site(A, 315, 40, 385, 100), parcels={(7, 3): "1309"}),
        P("XM0109", A, "道路", "示范镇—青山镇连接道路改造", "planned",  # crosses into 青山镇
          ("2025-09-01", None, None, None), 4200.0, (2026, 2028),
          lambda f: _corridor(f, A, 3100.0, 4900.0, 150.0, 6.0), kind="改建"),
        P("XM0110", A, "便民服务中心", "示范镇新田村便民服务中心", "planned",  # on farmland
          ("2025-04-01", None, None, None), 150.0, (2026, 2026),
          _valley_site(A, -1500, -250, 70, 60)),
        P("XM0111", A, "公厕", "示范镇镇区公厕", "completed",  # built 18 m east of its site
          ("2022-05-10", "2022-07-01", "2022-07-20", "2022-11-30"), 45.0, (2022, 2022),
          _udb_site(A, 530, -100, 560, -80), parcels={(8, 2): "1309"}, built=_shift(18.0)),
        # 青山镇 (B)
        P("XM0201", B, "乡镇卫生院", "青山镇卫生院迁建", "planned",  # 2/3 on 080602, 1/3 not
          ("2024-08-15", None, None, None), 1500.0, (2025, 2026),
          _udb_site(B, -250, 30, -40, 120), kind="迁建",
          parcels={(4, 3): "080602", (5, 3): "070102"}),
        P("XM0202", B, "school", "青山镇九年一贯制学校", "planned",
          ("2025-03-20", None, None, None), 5200.0, (2026, 2028),
          _block_site(B, 6, 3, 5), parcels={(6, 3): "080403"}),
        P("XM0203", B, "农贸市场", "青山镇农贸市场", "under_construction",
          ("2023-12-01", "2024-03-15", "2024-04-20", None), 1100.0, (2024, 2025),
          _block_site(B, 3, 2, 15), kind="续建", parcels={(3, 2): "090101"},
          built=_inset(30)),
        P("XM0204", B, "养老服务中心", "青山镇养老服务中心", "planned",
          ("2025-07-07", None, None, None), 900.0, (2026, 2027),
          _block_site(B, 2, 3, 20), parcels={(2, 3): "080701"}),
        P("XM0205", B, "refuse", "青山镇垃圾转运站", "completed",
          ("2021-03-01", "2021-05-10", "2021-06-01", "2021-12-20"), 320.0, (2021, 2021),
          _valley_site(B, -1750, 250, 80, 60), built=_inset(5)),
        P("XM0206", B, "污水处理厂", "青山镇污水处理厂", "completed",
          ("2020-10-10", "2021-01-15", "2021-03-01", "2022-06-30"), 2300.0, (2021, 2022),
          _sewage_site(B, 1700, 0), built=_inset(8)),
        P("XM0207", B, "客运站", "青山镇客运站", "under_construction",  # mapped after start
          ("2025-05-10", "2025-02-01", "2025-03-01", None), 800.0, (2025, 2026),
          _block_site(B, 8, 2, 15), parcels={(8, 2): "120801"}),
        P("XM0208", B, "水厂", "青山镇水源地取水泵站", "planned",  # in the wetland red line
          ("2025-10-10", None, None, None), 380.0, (2026, 2026),
          _valley_site(B, -1300, -50, 60, 40)),
        P("XM0209", B, "广场", "青山镇文化广场", "completed",  # finished after the as-of date
          ("2022-02-18", "2022-05-05", "2022-06-01", "2027-03-01"), 560.0, (2022, 2023),
          _block_site(B, 5, 1, 15), parcels={(5, 1): "1403"}, built=_inset(10)),
        P("XM0210", B, "社会停车场", "青山镇集镇停车场", "planned",  # declared in 清溪镇
          ("2025-05-10", None, None, None), 240.0, (2026, 2026),
          _block_site(B, 7, 1, 15), declared_town=C, parcels={(7, 1): "120803"}),
        # 清溪镇 (C)
        P("XM0301", C, "school", "清溪镇中学扩建", "planned",  # reaches into the spring red line
          ("2025-08-08", None, None, None), 2800.0, (2026, 2027),
          _udb_site(C, -280, 320, -120, 500), kind="扩建", parcels={(4, 5): "080403"}),
        P("XM0302", C, "卫生院", "清溪镇卫生院", "completed",
          ("2021-06-06", "2021-09-01", "2021-10-10", "2023-05-20"), 1700.0, (2021, 2023),
          _block_site(C, 6, 3, 20), parcels={(6, 3): "080602"}, built=_inset(12)),
        P("XM0303", C, "敬老院", "清溪镇敬老院", "completed",
          ("2022-01-12", "2022-04-01", "2022/5/8", "2023-09-30"), 950.0, (2022, 2023),
          _block_site(C, 2, 3, 20), parcels={(2, 3): "080701"}, built=_inset(6)),
        P("XM0304", C, "market", "清溪镇农贸市场提升改造", "completed",  # never mapped
          (None, "2023-03-01", "2023-04-15", "2024-01-20"), 700.0, (2023, 2024),
          _block_site(C, 3, 2, 15), kind="改建", parcels={(3, 2): "090101"},
          built=_inset(10)),
        P("XM0305", C, "镇区道路", "清溪镇镇区主干道", "planned",
          ("2025-01-15", None, None, None), 1600.0, (2026, 2027),
          lambda f: _corridor(f, C, -690.0, 490.0, 0.0, 6.0, valley=False)),
        P("XM0306", C, "污水处理设施", "清溪镇污水处理站", "planned",
          ("2025-11-11", None, None, None), 1400.0, (2026, 2027), _sewage_site(C, 1700, 0)),
        P("XM0307", C, "垃圾收集站", "清溪镇垃圾转运站", "under_construction",
          ("2024-02-02", "2024-05-20", "2024-06-15", None), 280.0, (2024, 2025),
          _valley_site(C, -1750, 250, 80, 60)),
        P("XM0308", C, "parking", "清溪镇过境停车场", "planned",  # on survey dry land (0103)
          ("2025-06-30", None, None, None), 220.0, (2026, 2026),
          _valley_site(C, -1350, -300, 70, 60)),
        P("XM0309", C, "供水工程", "清溪镇高位水池", "planned",  # slope 15-25 (placed on the DEM)
          ("2025-03-03", None, None, None), 160.0, (2026, 2026)),
        P("XM0310", C, "游客服务中心", "清溪镇游客服务中心", "under_construction",
          ("2024-06-06", "2024-09-09", "2024-10-10", None), 1300.0, (2024, 2026),
          _block_site(C, 7, 3, 15), kind="续建项目", parcels={(7, 3): "0904"}),  # → 续建
        # 龙井乡 (D)
        P("XM0401", D, "health_center", "龙井乡卫生院", "completed",
          ("2021-05-05", "2021-07-07", "2021-08-08", "2022-10-10"), 1200.0, (2021, 2022),
          _block_site(D, 4, 3, 20), parcels={(4, 3): "080602"}, built=_inset(12)),
        P("XM0402", D, "寄宿制学校", "龙井乡新寨村寄宿制小学", "planned",  # outside the UDB
          ("2025-04-20", None, None, None), 2400.0, (2026, 2027),
          _valley_site(D, -1450, -200, 120, 80)),
        P("XM0403", D, "集贸市场", "龙井乡集贸市场", "completed",
          ("2021-11-11", "2022-02-02", "2022-03-03", "2022-12-12"), 600.0, (2022, 2022),
          _block_site(D, 3, 2, 15), parcels={(3, 2): "090102"}, built=_inset(10)),
        P("XM0404", D, "日间照料中心", "龙井乡日间照料中心", "planned",
          ("2025-09-09", None, None, None), 300.0, (2026, 2026),
          _block_site(D, 2, 3, 20), parcels={(2, 3): "080701"}),
        P("XM0405", D, "park", "龙井乡休闲公园", "under_construction",
          ("2024-01-10", "20240315", "2024-04-01", None), 450.0, (2024, 2025),
          _block_site(D, 5, 1, 15), parcels={(5, 1): "1401"}),
        P("XM0406", D, "sewage", "龙井乡污水处理站", "planned",
          ("2025-05-05", None, None, None), 900.0, (2026, 2027), _sewage_site(D, 1700, -100)),
        P("XM0407", D, "垃圾收运/转运", "龙井乡垃圾收集转运点", "completed",
          ("2021-02-02", "2021-04-04", "2021-05-05", "2021-10-10"), 150.0, (2021, 2021),
          _valley_site(D, 1750, 250, 80, 60), built=_inset(5)),
        P("XM0408", D, "公共厕所", "龙井乡集镇公厕", "completed",
          ("2022-03-03", "2022-04-04", "2022-05-05", "2022-08-08"), 40.0, (2022, 2022),
          _udb_site(D, 530, -100, 560, -80), parcels={(8, 2): "1309"}, built=_inset(3)),
        P("XM0409", D, "road", "龙井乡通村公路", "planned",  # start_year > end_year
          ("2025-10-20", None, None, None), 2100.0, (2027, 2025),
          lambda f: _corridor(f, D, -2800.0, -1700.0, 200.0, 5.0)),
        P("XM0410", D, "refuse", "龙井乡山区垃圾收集站", "planned",  # slope > 25 (on the DEM)
          ("2025-08-18", None, None, None), 120.0, (2026, 2026)),
    ]


ORPHAN_ID = "XM0499"  # an as-built footprint with no planned project

# Sites outside the development boundaries sit on village-plan (村庄规划) parcels with these codes.
VILLAGE_PLAN = {
    "XM0107": "1302", "XM0109": "1207", "XM0110": "0704", "XM0205": "1309", "XM0206": "1302",
    "XM0208": "1301", "XM0306": "1302", "XM0307": "1309", "XM0308": "120803", "XM0309": "1301",
    "XM0402": "080403", "XM0406": "1302", "XM0407": "1309", "XM0409": "1207", "XM0410": "1309",
}


def _village_parcels(projects: list[_Project], udb: Polygon) -> list[dict]:
    """One village-plan parcel (the site plus 10 m) under each project outside the boundaries."""
    rows: list[dict] = []
    taken = udb.buffer(5.0)
    for p in projects:
        code = VILLAGE_PLAN.get(p.pid)
        if code is None or p.geometry is None:
            continue
        geom = p.geometry.buffer(10.0, join_style="mitre").difference(taken)
        taken = taken.union(geom)
        rows.append({"DKBH": f"CZ-{p.pid[2:]}", "YDYHDM": code, "YDYHMC": LANDUSE_NAMES[code],
                     "RJL": 0.5, "GHLX": "村庄规划", "geometry": geom})
    return rows


# ---------------------------------------------------------------------------------------------
# planted control-line features


@dataclass
class _Planted:
    """Hand-placed features that make the QA and the siting rules fire."""

    redline: list[tuple[Polygon, str, str]]  # (geometry, name, type)
    farmland: list[Polygon]  # patches that must be kept whatever the exclusions say
    cropland: list[Polygon]  # extra dry-land patches (0103)
    orphan: Polygon


def _plant(frame: _Frame, sites: dict[str, Polygon]) -> _Planted:
    a_farm = frame.valley_xy(0, -1500, -250)  # anchor of XM0110
    c_park = frame.valley_xy(2, -1350, -300)  # anchor of XM0308
    b_pump = frame.valley_xy(1, -1300, -50)  # anchor of XM0208
    spring = _udb_box(frame, 2, -400, 470, 0, 700)
    wetland = _anchor_box(b_pump, -150, -250, 150, 0)
    return _Planted(
        redline=[(spring, "清溪泉水源涵养区（虚构）", "水源涵养"),
                 (wetland, "青山河湿地（虚构）", "生物多样性维护")],
        farmland=[
            _anchor_box(a_farm, -140, -130, -5, 5),  # 30 m x 35 m under XM0110
            _udb_box(frame, 0, -200, -580, -80, -446),  # 120 m x 4 m inside 示范镇 UDB
            _udb_box(frame, 1, 100, -560, 130, -449.98),  # 30 m x 0.02 m sliver in 青山镇 UDB
        ],
        cropland=[_anchor_box(c_park, -15, -80, 110, -10)],  # 50 m x 20 m under XM0308
        orphan=_udb_box(frame, 3, 930, -130, 990, -60),
    )
