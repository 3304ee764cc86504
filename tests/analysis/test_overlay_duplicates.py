"""Control-line layers holding copies of their own features, or a few genuine overlaps.

A layer imported twice (every parcel present twice) used to take the exact pairwise paths on
the whole layer. Now the copies are found in linear time (``_overlay_pairs.first_equal``), the
layer is certified without them, and only the polygons of the certificate's rejected chunks are
tested pairwise. The three tables must not change: every copy still appears as a self-overlap
row, in the order of the pairwise STRtree test, and the areas are those of a brute-force
union. The references here are shapely directly and the same report with the shortcuts turned
off (no copies detected, every polygon a suspect): the plain path the code took before.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import Polygon, box
from test_overlay_shared import X0, Y0, _case, _frame, _grid, _towns

from spatialplan.analysis import _overlay_pairs as _pairs
from spatialplan.analysis import overlay

GRID = overlay.DEFAULT_GRID_SIZE
#: most suspects one grown polygon leaves: the sub-chunks it meets (its own and its neighbours')
REFINED = 5 * _pairs.REFINE_CHUNK


# --- helpers ---------------------------------------------------------------------------------


def _turned(poly: Polygon, shift: int = 1) -> Polygon:
    """The same polygon with its ring started ``shift`` vertices later and run the other way."""
    ring = np.asarray(poly.exterior.coords)[:-1]
    ring = np.roll(ring, -shift, axis=0)[::-1]
    return Polygon(ring)


def _with_copies(gdf: gpd.GeoDataFrame, copies: dict[int, int]) -> gpd.GeoDataFrame:
    """``gdf`` with appended copies: new row → the row it copies (geometry object as given)."""
    extra = gdf.iloc[list(copies.values())].copy()
    extra["feature_id"] = [f"{gdf['feature_id'].iloc[0].split(':')[0]}:{len(gdf) + k}"
                           for k in range(len(extra))]
    out = pd.concat([gdf, extra], ignore_index=True)
    for row, geom in copies.items():
        if isinstance(geom, shapely.Geometry):
            out.loc[row, "geometry"] = geom
    return gpd.GeoDataFrame(out, geometry="geometry", crs=gdf.crs)


def _doubled(gdf: gpd.GeoDataFrame, *, times: int = 2, turn: bool = False) -> gpd.GeoDataFrame:
    """Every feature of ``gdf`` ``times`` times (the layer imported again), copies appended;
    ``turn``: the copies' rings start elsewhere and run the other way."""
    role = gdf["feature_id"].iloc[0].split(":")[0]
    frames = [gdf]
    for t in range(1, times):
        copy = gdf.copy()
        if turn:
            copy["geometry"] = [_turned(p, t) for p in copy.geometry]
        frames.append(copy)
    out = pd.concat(frames, ignore_index=True)
    out["feature_id"] = [f"{role}:{k}" for k in range(len(out))]
    return gpd.GeoDataFrame(out, geometry="geometry", crs=gdf.crs)


def _plain(monkeypatch) -> None:
    """Turn the shortcuts off: no copy is detected and a rejected layer's every polygon is a
    suspect (the pairwise paths the code took before)."""
    def no_copies(geoms):
        present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        return np.where(present, np.arange(len(geoms)), -1)

    real = _pairs.coverage_certificate

    def everyone(geoms, **kwargs):
        out = real(geoms, **kwargs)
        if kwargs.get("return_suspects") and not out[0]:
            return out[0], out[1], np.flatnonzero(~shapely.is_missing(geoms))
        return out

    monkeypatch.setattr(_pairs, "first_equal", no_copies)
    monkeypatch.setattr(_pairs, "coverage_certificate", everyone)


def _report(case: dict, **kwargs) -> overlay.ControlLineReport:
    lines = {r: case.get(r) for r in ("redline", "farmland", "udb", "cropland")}
    return overlay.control_line_report(case["townships"], **lines, **kwargs)


def assert_same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    """Same rows in the same order, numbers within 1e-9 relative, equal geometries."""
    pd.testing.assert_frame_equal(pd.DataFrame(a).drop(columns="geometry"),
                                  pd.DataFrame(b).drop(columns="geometry"),
                                  rtol=1e-9, atol=1e-6)
    ga, gb = np.asarray(a.geometry.array, object), np.asarray(b.geometry.array, object)
    missing = shapely.is_missing(ga)
    assert (missing == shapely.is_missing(gb)).all()
    assert shapely.equals(ga[~missing], gb[~missing]).all()


def assert_same_report(got, want) -> None:
    for a, b in zip(got, want, strict=True):
        assert_same(a, b)


def _old_pairs(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairwise test on the whole layer, as it always ran: STRtree order, exact touches."""
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    i, j = i[i < j], j[i < j]
    touching = shapely.touches(geoms[i], geoms[j])
    return i[~touching], j[~touching]


def _brute_stats(towns: gpd.GeoDataFrame, line: gpd.GeoDataFrame) -> np.ndarray:
    """Each township's area of the dissolved line, with shapely directly."""
    whole = shapely.union_all(np.asarray(line.geometry.array, object))
    return shapely.area(shapely.intersection(np.asarray(towns.geometry.array, object), whole))


def _brute_outside(towns: gpd.GeoDataFrame, line: gpd.GeoDataFrame) -> tuple[int, float, float]:
    """``n_features``, ``outside_m2``, ``line_m2`` of the outside table, with shapely."""
    geoms = np.asarray(line.geometry.array, object)
    outline = shapely.union_all(np.asarray(towns.geometry.array, object))
    whole = shapely.union_all(geoms)
    n = int((shapely.area(shapely.difference(geoms, outline)) > 0).sum())
    return n, float(shapely.difference(whole, outline).area), float(whole.area)


# --- finding copies --------------------------------------------------------------------------


def test_first_equal_matches_turned_restarted_and_multipart_copies():
    holed = Polygon(box(0, 0, 10, 10).exterior.coords, [box(2, 2, 4, 4).exterior.coords,
                                                         box(6, 6, 8, 8).exterior.coords])
    holed_other = Polygon(_turned(box(0, 0, 10, 10), 2).exterior.coords,
                          [box(6, 6, 8, 8).exterior.coords[::-1], box(2, 2, 4, 4).exterior.coords])
    multi = shapely.MultiPolygon([box(20, 0, 21, 1), box(23, 0, 24, 1)])
    multi_other = shapely.MultiPolygon([_turned(box(23, 0, 24, 1)), box(20, 0, 21, 1)])
    extra_vertex = Polygon([(0, 0), (5, 0), (10, 0), (10, 10), (0, 10)])  # same set, + a vertex
    diamond = Polygon([(5, 0), (10, 5), (5, 10), (0, 5)])  # the same bounding box
    geoms = np.array([box(0, 0, 10, 10), holed, multi, _turned(box(0, 0, 10, 10), 3),
                      holed_other, multi_other, extra_vertex, diamond, None, Polygon(),
                      box(0, 0, 10, 10), box(0, 0, 10, 10)], dtype=object)
    assert _pairs.first_equal(geoms).tolist() == [0, 1, 2, 0, 1, 2, 6, 7, -1, -1, 0, 0]
    assert _pairs.first_equal(np.array([], dtype=object)).tolist() == []
    # the same five vertices in another order: another polygon, the same unordered hash
    notch = Polygon([(0, 0), (2, 1), (4, 0), (4, 4), (0, 4)])
    other = Polygon([(0, 0), (4, 0), (2, 1), (4, 4), (0, 4)])
    assert notch.is_valid and other.is_valid and not notch.equals(other)
    assert (_pairs._normal_hash(np.array([notch, other]))[0]
            == _pairs._normal_hash(np.array([other]))[0])
    # the exact test keeps them apart; the copy of the second is left to the pairwise test
    assert _pairs.first_equal(np.array([notch, other, _turned(other, 2)])).tolist() == [0, 1, 2]
    assert _pairs.first_equal(np.array([other, notch, _turned(other, 2)])).tolist() == [0, 1, 0]
    assert _pairs.first_equal(np.array([None, box(0, 0, 1, 1)])).tolist() == [-1, 1]


def test_a_hash_collision_never_merges_different_geometries(monkeypatch):
    """Every candidate hashed alike: only the exact test decides."""
    monkeypatch.setattr(_pairs, "_normal_hash", lambda geoms: np.zeros(len(geoms), dtype=np.uint64))
    square, diamond = box(0, 0, 2, 2), Polygon([(1, 0), (2, 1), (1, 2), (0, 1)])
    geoms = np.array([square, diamond, _turned(square), diamond, box(5, 5, 6, 6)])
    assert _pairs.first_equal(geoms).tolist() == [0, 1, 0, 3, 4]  # the second diamond stays apart
    # which costs time only: the pairwise test still finds the diamonds' overlap
    line = overlay._Line("farmland", _frame("farmland", geoms), GRID)
    assert list(zip(*(p.tolist() for p in line.overlaps), strict=True)) == [
        (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def test_first_equal_in_batches(monkeypatch):
    geoms = _grid(12, 100.0, 3)
    monkeypatch.setattr(_pairs, "HASH_CHUNK", 7)
    layer = np.concatenate([geoms, geoms[::-1], [_turned(p) for p in geoms[:5]]])
    first = _pairs.first_equal(layer)
    n = len(geoms)
    assert first[:n].tolist() == list(range(n))
    assert first[n:2 * n].tolist() == list(range(n))[::-1]
    assert first[2 * n:].tolist() == list(range(5))


def test_with_copies_gives_every_pair_in_the_pairwise_order():
    geoms = _grid(6, 100.0, 4)
    bulge = shapely.buffer(geoms[7], 20.0, join_style="mitre")  # overlaps its neighbours
    layer = np.array([*geoms, geoms[3], bulge, geoms[3], _turned(geoms[10]), bulge,
                      geoms[20]], dtype=object)
    first = _pairs.first_equal(layer)
    distinct = np.where(first == np.arange(len(layer)), layer, None)
    tree = shapely.STRtree(layer)
    pairs = _pairs.overlap_pairs(distinct, certified=False, tree=tree)
    got = _pairs.query_order(tree, layer, *_pairs.with_copies(*pairs, first))
    want = _old_pairs(layer)
    assert [p.tolist() for p in got] == [p.tolist() for p in want]
    assert len(want[0]) > 10


# --- the certificate's suspects --------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("size", [1, 9, 40])
def test_suspects_find_every_overlap_of_one_chunk(seed, size):
    geoms = _grid(20, 100.0, seed)
    rng = np.random.default_rng(seed)
    chunks = _pairs._spatial_chunks(geoms, size)
    chunk = chunks[rng.integers(len(chunks))]
    k = int(rng.choice(chunk))
    layer = geoms.copy()
    layer[k] = shapely.set_precision(shapely.buffer(geoms[k], 15.0, join_style="mitre"), GRID)
    certified, parts, suspects = _pairs.coverage_certificate(layer, chunk_size=size,
                                                        return_suspects=True)
    assert not certified and parts is None
    assert k in suspects
    # localised within k's chunk (refined), or near k when k is a chunk by itself
    assert len(suspects) <= (REFINED if size == 1 else min(len(chunk), REFINED))
    got = _pairs.overlap_pairs(layer, certified=False, suspects=suspects)
    want = _old_pairs(layer)
    assert [p.tolist() for p in got] == [p.tolist() for p in want]
    assert len(want[0]) >= 4
    # two levels still agree with the old verdict
    assert _pairs.coverage_certificate(layer, chunk_size=size) == (False, None)


def grown_across_chunks(geoms: np.ndarray, chunk: int) -> tuple[np.ndarray, int, int]:
    """``(layer, a, b)``: ``geoms`` with ``a`` grown into its neighbour ``b`` of another chunk
    of ``chunk`` polygons, keeping ``a``'s chunk valid by itself."""
    labels = np.full(len(geoms), -1)
    for k, idx in enumerate(_pairs._spatial_chunks(geoms, chunk)):
        labels[idx] = k
    i, j = shapely.STRtree(geoms).query(geoms, predicate="touches")
    a, b = next((x, y) for x, y in zip(i, j, strict=True) if labels[x] != labels[y])
    layer = geoms.copy()
    layer[a] = shapely.set_precision(shapely.union(geoms[a], shapely.intersection(
        geoms[b], shapely.buffer(geoms[a], 10.0))), GRID)
    return layer, int(a), int(b)


def test_suspects_localised_when_the_certified_chunks_overlap():
    """A polygon straddling two chunks that each certify: only level two can tell, and the
    refinement finds the small pieces of the two chunks that conflict."""
    layer, a, b = grown_across_chunks(_grid(10, 100.0, 5), 25)
    certified, _, suspects = _pairs.coverage_certificate(layer, chunk_size=25, return_suspects=True)
    assert not certified
    assert a in suspects or b in suspects
    assert len(suspects) <= 2 * _pairs.REFINE_CHUNK
    got = _pairs.overlap_pairs(layer, certified=False, suspects=suspects)
    assert [p.tolist() for p in got] == [p.tolist() for p in _old_pairs(layer)]


def test_certificate_without_suspects_is_unchanged():
    geoms = _grid(10, 100.0, 6)
    assert _pairs.coverage_certificate(geoms, chunk_size=10, return_suspects=True)[2].tolist() == []
    assert _pairs.coverage_certificate(np.array([None], dtype=object), return_suspects=True)[
        2].tolist() == []
    doubled = np.concatenate([geoms, geoms])
    assert _pairs.coverage_certificate(doubled, chunk_size=10) == (False, None)


# --- the three tables ------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 7, 40])
@pytest.mark.parametrize("kind", ["pairs", "triples", "turned", "some"])
def test_report_with_copies_equals_the_plain_path(monkeypatch, chunk, kind):
    case = _case(0)
    original = dict(case)  # shapely's references: GEOS' union of identical twins may be off
    farm = case["farmland"]
    if kind == "pairs":
        case["farmland"] = _doubled(farm)
    elif kind == "triples":
        case["farmland"] = _doubled(farm, times=3)
    elif kind == "turned":
        case["farmland"] = _doubled(farm, turn=True)
    else:  # a few copies, far apart (different chunks), and a copy of a copy
        case["farmland"] = _with_copies(farm, {len(farm): 5, len(farm) + 1: 300,
                                               len(farm) + 2: 5})
    case["redline"] = _with_copies(case["redline"], {len(case["redline"]): 2})
    if chunk is not None:
        monkeypatch.setattr(_pairs, "CERTIFICATE_CHUNK", chunk)
    got = _report(case)
    _plain(monkeypatch)
    want = _report(case)
    assert_same(got.township_stats, want.township_stats)
    assert_same(got.line_conflicts, want.line_conflicts)
    # the plain path dissolved the red line's outside pieces with the copy's, and GEOS' floating
    # union of a piece and its identical twin comes out 0.13 m² (1.6e-7) off here: the outside
    # table is that of the layer without its copies (plus the copies in n_features)
    assert_same(got.outside_townships.iloc[1:], want.outside_townships.iloc[1:])
    monkeypatch.undo()
    alone = {**case, "redline": case["redline"].iloc[:-1]}
    first = _report(alone).outside_townships.iloc[[0]].copy()
    first["n_features"] += 1
    assert_same(got.outside_townships.iloc[[0]], first)
    # and shapely directly (the farmland: GEOS' union of the overlapping red-line blobs, whole
    # or per township, differs by ~2e-7 here, on the plain path as before)
    stats, outside, conflicts = got
    for role in ("farmland",):
        assert stats[f"{role}_m2"].to_numpy() == pytest.approx(
            _brute_stats(case["townships"], original[role]), rel=1e-9, abs=1e-6)
        n, out_m2, line_m2 = _brute_outside(case["townships"], original[role])
        row = outside.set_index("line").loc[role]
        assert row["n_features"] == _brute_outside(case["townships"], case[role])[0] > n
        assert row["outside_m2"] == pytest.approx(out_m2, rel=1e-9)
        assert row["line_m2"] == pytest.approx(line_m2, rel=1e-9)
    # every copy is a self-overlap of the whole feature
    own = conflicts[(conflicts["layer_a"] == "farmland") & (conflicts["layer_b"] == "farmland")]
    whole = own.groupby(["feature_a", "feature_b"])["area_m2"].sum()
    area = case["farmland"].set_index("feature_id").area
    first = _pairs.first_equal(np.asarray(case["farmland"].geometry.array, object))
    ids = case["farmland"]["feature_id"].to_numpy()
    copies = np.flatnonzero(first != np.arange(len(first)))
    assert len(copies) > 0
    for k in copies:
        assert whole[(ids[first[k]], ids[k])] == pytest.approx(area[ids[k]], rel=1e-9)


def test_report_with_copies_equals_the_layer_without_them():
    case = _case(1)
    clean = _report(case)
    case["farmland"] = _doubled(case["farmland"], turn=True)
    doubled = _report(case)
    stats = ["farmland_m2", "farmland_ha", "farmland_mu", "farmland_ellipsoidal_m2",
             "farmland_ellipsoidal_mu", "farmland_share"]
    assert doubled.township_stats[stats].to_numpy() == pytest.approx(
        clean.township_stats[stats].to_numpy(), rel=1e-9, nan_ok=True)
    a, b = (r.outside_townships.set_index("line").loc["farmland"] for r in (clean, doubled))
    assert b["n_features"] == 2 * a["n_features"]
    assert b["line_m2"] == pytest.approx(a["line_m2"], rel=1e-9)
    assert b["outside_m2"] == pytest.approx(a["outside_m2"], rel=1e-9)
    conflicts = doubled.line_conflicts
    own = (conflicts["layer_a"] == "farmland") & (conflicts["layer_b"] == "farmland")
    n = len(case["farmland"]) // 2
    assert own.sum() >= n and len(clean.line_conflicts.query("layer_a == layer_b == 'farmland'"
                                                             )) == 0
    assert conflicts.loc[own, "feature_a"].map(lambda f: int(f.split(":")[1]) < n).all()
    assert (conflicts.loc[own, "kind"] == "conflict").all()


@pytest.mark.parametrize("chunk", [9, 40])
def test_genuine_overlaps_in_one_chunk(monkeypatch, chunk):
    """A few overlapping parcels in one chunk (and a copy elsewhere): only that chunk is
    tested pairwise, and the tables are those of the plain path."""
    case = _case(2)
    farm = case["farmland"].copy()
    geoms = np.asarray(farm.geometry.array, object)
    chunks = _pairs._spatial_chunks(geoms, chunk)
    k = int(chunks[len(chunks) // 2][0])
    farm.loc[k, "geometry"] = shapely.set_precision(
        shapely.buffer(geoms[k], 25.0, join_style="mitre"), GRID)
    case["farmland"] = _with_copies(farm, {len(farm): int(chunks[0][-1])})
    monkeypatch.setattr(_pairs, "CERTIFICATE_CHUNK", chunk)
    tested = []
    real = _pairs.overlap_pairs
    # the layer's calls (with its tree), not the certificate's own test of its pieces
    monkeypatch.setattr(_pairs, "overlap_pairs", lambda geoms, **kw: (
        "tree" in kw and tested.append(len(kw["suspects"]))) or real(geoms, **kw))
    got = _report(case)
    assert 0 < tested[1] <= chunk  # farmland: one chunk's suspects
    _plain(monkeypatch)
    want = _report(case)
    assert_same(got.township_stats, want.township_stats)
    assert_same(got.line_conflicts, want.line_conflicts)
    # line_m2: only the overlapping parcels are dissolved now; GEOS' union of the whole layer
    # is good to ~2e-9 here (the same set with or without a copy: 0.02 m² apart in 2.2e7 m²)
    a, b = got.outside_townships, want.outside_townships
    assert a["line_m2"].to_numpy() == pytest.approx(b["line_m2"].to_numpy(), rel=1e-8)
    assert_same(a.drop(columns="line_m2"), b.drop(columns="line_m2"))
    # near-parallel edges of the grown parcel and its neighbours: GEOS' floating unions, per
    # township or whole, agree to ~2e-8 only (the plain path above agrees to 1e-9)
    assert got.township_stats["farmland_m2"].to_numpy() == pytest.approx(
        _brute_stats(case["townships"], farm), rel=1e-7, abs=1e-6)
    own = got.line_conflicts.query("layer_a == layer_b == 'farmland'")
    assert own["feature_a"].nunique() > 2


@pytest.mark.parametrize("grid_size", [GRID, None])
def test_ellipsoidal_areas_with_copies(monkeypatch, grid_size):
    """Geodesic areas depended on where the line is cut (~1e-7): copies are dissolved with
    their originals, as on the plain path, so the numbers stay those of the plain path."""
    case = _case(3)
    lines = {"farmland": case["farmland"], "redline": case["redline"]}
    clean = overlay.township_stats(case["townships"], **lines, grid_size=grid_size)
    doubled = {"farmland": _doubled(lines["farmland"], turn=True),
               "redline": _with_copies(lines["redline"], {len(lines["redline"]): 4})}
    got = overlay.township_stats(case["townships"], **doubled, ellipsoidal_lines=True,
                                 grid_size=grid_size)
    for role in lines:
        assert got[f"{role}_m2"].to_numpy() == pytest.approx(
            clean[f"{role}_m2"].to_numpy(), rel=1e-9, abs=1e-6), role
    _plain(monkeypatch)
    want = overlay.township_stats(case["townships"], **doubled, ellipsoidal_lines=True,
                                  grid_size=grid_size)
    assert_same(got, want)
    assert (got["farmland_ellipsoidal_m2"] > 0).sum() > 5


def test_copies_are_named_in_a_warning(caplog):
    case = _case(0)
    case["farmland"] = _with_copies(case["farmland"], {324: 3, 325: 4, 326: 5, 327: 6})
    with caplog.at_level(logging.WARNING, logger="spatialplan.analysis.overlay"):
        _report(case)
    messages = [r.getMessage() for r in caplog.records if "repeats" in r.getMessage()]
    assert len(messages) == 1
    assert "farmland layer holds 4 features" in messages[0]
    assert "farmland:324 = farmland:3" in messages[0] and ", ..." in messages[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spatialplan.analysis.overlay"):
        _report(_case(0))
    assert not [r for r in caplog.records if "repeats" in r.getMessage()]


def test_a_copy_outside_every_township_and_a_lone_copy():
    towns = _towns([box(X0, Y0, X0 + 1000, Y0 + 1000)])
    far = box(X0 + 2000, Y0, X0 + 2100, Y0 + 100)
    half = box(X0 + 950, Y0, X0 + 1050, Y0 + 100)
    farm = _frame("farmland", [far, half, _turned(far), half, box(X0, Y0, X0 + 10, Y0 + 10)])
    stats, outside, conflicts = overlay.control_line_report(towns, farmland=farm)
    assert stats.loc[0, "farmland_m2"] == pytest.approx(5000.0 + 100.0)
    row = outside.iloc[0]
    assert row["n_features"] == 4 and row["outside_m2"] == pytest.approx(10_000.0 + 5000.0)
    assert row["line_m2"] == pytest.approx(10_000.0 * 2 + 100.0)
    assert conflicts[["feature_a", "feature_b", "township_code"]].values.tolist() == [
        ["farmland:0", "farmland:2", None], ["farmland:1", "farmland:3", "520100000"],
        ["farmland:1", "farmland:3", None]]


@pytest.mark.slow
def test_benchmark_case_doubled(monkeypatch):
    """The benchmark's province case with every parcel imported twice, several chunks."""
    import sys
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_overlay import make_case
    case = make_case(30, 4000, 1)
    monkeypatch.setattr(_pairs, "CERTIFICATE_CHUNK", 500)
    clean = _report(case)
    case["farmland"] = _doubled(case["farmland"], turn=True)
    got = _report(case)
    assert got.township_stats["farmland_m2"].to_numpy() == pytest.approx(
        clean.township_stats["farmland_m2"].to_numpy(), rel=1e-9, abs=1e-6)
    _plain(monkeypatch)
    want = _report(case)
    assert_same_report(got, want)
    assert "bench_overlay" in sys.modules
