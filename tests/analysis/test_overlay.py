"""Tests of spatialplan.analysis.overlay: analytic cases, shapely #1871, agreement with
geopandas.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import equal_area_m2
from shapely import Polygon, box

from spatialplan.analysis import overlay
from spatialplan.errors import CRSError, FieldError, GeometryError, RulebookError

CRS = "EPSG:4545"  # CGCS2000 3-degree GK zone 36 (CM 108°E), no zone prefix
X0, Y0 = 500_000.0, 2_988_000.0  # on the central meridian, ~27°N


def shift(geom, dx=X0, dy=Y0):
    return shapely.affinity.translate(geom, dx, dy)


def towns(*geoms, codes=None, crs=CRS):
    codes = codes or [f"52010{k:04d}" for k in range(len(geoms))]
    return gpd.GeoDataFrame(
        {"feature_id": [f"townships:{k}" for k in range(len(geoms))], "code": codes,
         "name": [f"镇{k}" for k in range(len(geoms))]},
        geometry=[shift(g) for g in geoms], crs=crs,
    )


def layer(role, *geoms, crs=CRS):
    return gpd.GeoDataFrame(
        {"feature_id": [f"{role}:{k}" for k in range(len(geoms))]},
        geometry=[shift(g) for g in geoms], crs=crs,
    )


# --- the #1871 case (shapely issue 1871, GEOS OverlayNG) ---------------------------------------
# A triangle and a diamond that only touch along an edge: the triangle's apex y is
# -75.99999999999999 instead of -76. GEOS returns the whole triangle (area 15851) as their
# "intersection" although relate() says FF2F01212 (touches).
TRIANGLE_1871 = Polygon([(446, -207), (315, -75.99999999999999), (557, -76)])
DIAMOND_1871 = Polygon([(184, -207), (315, -76), (446, -207), (315, -338)])


def layer_raw(role, *geoms):
    """Like ``layer`` but without translation (keeps the exact #1871 coordinates)."""
    return gpd.GeoDataFrame({"feature_id": [f"{role}:{k}" for k in range(len(geoms))]},
                            geometry=list(geoms), crs=CRS)


def test_1871_case_touches_only():
    assert TRIANGLE_1871.touches(DIAMOND_1871)
    assert TRIANGLE_1871.relate(DIAMOND_1871)[0] == "F"  # interiors disjoint
    # the raw GEOS result may be the bogus triangle (it is with GEOS 3.12-3.14); not asserted


@pytest.mark.parametrize("grid_size", [overlay.DEFAULT_GRID_SIZE, None])
def test_1871_no_area_in_stats(grid_size):
    t = gpd.GeoDataFrame({"code": ["1"], "name": ["甲"]}, geometry=[DIAMOND_1871], crs=CRS)
    stats = overlay.township_stats(t, redline=layer_raw("redline", TRIANGLE_1871),
                                   grid_size=grid_size)
    assert stats.loc[0, "redline_m2"] == 0.0
    out = overlay.outside_townships(t, redline=layer_raw("redline", TRIANGLE_1871),
                                    grid_size=grid_size)
    assert out.loc[0, "outside_m2"] == pytest.approx(TRIANGLE_1871.area)


@pytest.mark.parametrize("grid_size", [overlay.DEFAULT_GRID_SIZE, None])
def test_1871_no_conflict_row(grid_size):
    result = overlay.line_conflicts(redline=layer_raw("redline", TRIANGLE_1871),
                                    farmland=layer_raw("farmland", DIAMOND_1871),
                                    grid_size=grid_size)
    assert len(result) == 0
    selfie = overlay.line_conflicts(udb=layer_raw("udb", TRIANGLE_1871, DIAMOND_1871),
                                    grid_size=grid_size)
    assert len(selfie) == 0


# --- township statistics -------------------------------------------------------------------------


def test_rectangles_known_areas_and_units():
    t = towns(box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000))
    stats = overlay.township_stats(
        t,
        redline=layer("redline", box(-100, 0, 300, 500)),   # 300 x 500 in town 0
        farmland=layer("farmland", box(500, 0, 1500, 200)),  # 500 x 200 in each
        udb=layer("udb", box(1900, 900, 1950, 950)),         # 50 x 50 in town 1
    )
    assert list(stats["township_code"]) == list(t["code"])
    assert stats["area_m2"].tolist() == [1e6, 1e6]
    assert stats["redline_m2"].tolist() == [150_000.0, 0.0]
    assert stats["farmland_m2"].tolist() == [100_000.0, 100_000.0]
    assert stats["udb_m2"].tolist() == [0.0, 2500.0]
    assert stats.loc[0, "redline_ha"] == pytest.approx(15.0)
    assert stats.loc[0, "redline_mu"] == pytest.approx(150_000 * 3 / 2000)
    assert stats.loc[1, "udb_share"] == pytest.approx(0.0025)
    assert "cropland_m2" not in stats
    for col in ("township_code", "township_name", "area_m2", "area_ellipsoidal_m2",
                "redline_m2", "redline_ha", "redline_mu", "redline_share",
                "farmland_share", "udb_share"):
        assert col in stats
    assert stats.attrs["tolerance"] == {"min_overlap_m2": 1.0, "min_overlap_share": 0.0}
    assert stats.crs == t.crs
    assert stats.geometry.equals(t.geometry)


def test_missing_line_is_nan_and_cropland_when_given():
    t = towns(box(0, 0, 100, 100))
    stats = overlay.township_stats(t, cropland=layer("cropland", box(0, 0, 50, 100)))
    assert np.isnan(stats.loc[0, "redline_m2"]) and np.isnan(stats.loc[0, "udb_share"])
    assert stats.loc[0, "cropland_m2"] == 5000.0
    assert stats.loc[0, "cropland_share"] == pytest.approx(0.5, rel=1e-9)  # ellipsoidal


def test_township_with_hole():
    holed = Polygon(box(0, 0, 1000, 1000).exterior.coords,
                    [box(400, 400, 600, 600).exterior.coords])
    t = towns(holed)
    farm = layer("farmland", box(300, 300, 700, 700), box(450, 450, 550, 550))
    stats = overlay.township_stats(t, farmland=farm)
    assert stats.loc[0, "area_m2"] == 1e6 - 40_000
    # ring of 400x400 minus the 200x200 hole; the patch inside the hole is outside the town
    assert stats.loc[0, "farmland_m2"] == 160_000 - 40_000
    out = overlay.outside_townships(t, farmland=farm)
    assert out.loc[0, "outside_m2"] == 40_000
    assert out.loc[0, "n_features"] == 2


def test_overlapping_patches_counted_once():
    t = towns(box(0, 0, 1000, 1000))
    red = layer("redline", box(0, 0, 600, 100), box(400, 0, 1000, 100), box(0, 0, 600, 100))
    stats = overlay.township_stats(t, redline=red)
    assert stats.loc[0, "redline_m2"] == pytest.approx(100_000.0)


def test_overlap_only_in_one_township():
    t = towns(box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000))
    # two overlapping patches in town 0, a coverage pair in town 1
    red = layer("redline", box(0, 0, 500, 100), box(200, 0, 700, 100),
                box(1000, 0, 1500, 100), box(1500, 0, 2000, 100))
    stats = overlay.township_stats(t, redline=red)
    assert stats["redline_m2"].tolist() == pytest.approx([70_000.0, 100_000.0])


def test_line_crossing_two_townships():
    t = towns(box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000))
    red = layer("redline", Polygon([(800, 0), (1300, 0), (1300, 100), (800, 100)]))
    stats = overlay.township_stats(t, redline=red)
    assert stats["redline_m2"].tolist() == [20_000.0, 30_000.0]
    assert overlay.outside_townships(t, redline=red).loc[0, "outside_m2"] == 0.0


def test_line_outside_all_townships():
    t = towns(box(0, 0, 1000, 1000))
    farm = layer("farmland", box(2000, 0, 2100, 100), box(900, 0, 1100, 100))
    stats = overlay.township_stats(t, farmland=farm)
    assert stats.loc[0, "farmland_m2"] == 10_000.0
    out = overlay.outside_townships(t, farmland=farm, udb=layer("udb", box(0, 0, 10, 10)))
    assert out["line"].tolist() == ["farmland", "udb"]
    row = out.set_index("line").loc["farmland"]
    assert row["outside_m2"] == 20_000.0
    assert row["outside_mu"] == pytest.approx(30.0)
    assert row["line_m2"] == 30_000.0
    assert row["n_features"] == 2
    assert row.geometry.area == pytest.approx(20_000.0)
    assert out.set_index("line").loc["udb", "outside_m2"] == 0.0


def test_share_is_one_when_line_covers_township():
    t = towns(box(0, 0, 1000, 1000), Polygon([(0, 1000), (1000, 1000), (500, 1700)]))
    stats = overlay.township_stats(t, udb=layer("udb", box(-50, -50, 1050, 1800)))
    assert stats["udb_share"].tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


def test_nothing_dropped_and_order_kept():
    t = towns(box(0, 0, 10, 10), box(100, 0, 110, 10), box(200, 0, 210, 10))
    t.index = [7, 3, 5]
    stats = overlay.township_stats(t, farmland=layer("farmland", box(100, 0, 105, 10)))
    assert list(stats.index) == [7, 3, 5]
    assert stats["farmland_m2"].tolist() == [0.0, 50.0, 0.0]


def test_ellipsoidal_close_to_planar_near_central_meridian():
    t = towns(box(0, 0, 5000, 5000))
    stats = overlay.township_stats(t, farmland=layer("farmland", box(0, 0, 2500, 5000)),
                                   ellipsoidal_lines=True)
    planar, ellipsoidal = stats.loc[0, "area_m2"], stats.loc[0, "area_ellipsoidal_m2"]
    # GK scale factor on the central meridian is 1: areas differ by < 1e-5 there
    assert ellipsoidal == pytest.approx(planar, rel=1e-5)
    assert ellipsoidal != planar
    assert stats.loc[0, "farmland_ellipsoidal_m2"] == pytest.approx(ellipsoidal / 2, rel=1e-6)


def test_ellipsoidal_hole_and_off_meridian():
    holed = Polygon(box(0, 0, 2000, 2000).exterior.coords,
                    [box(500, 500, 1500, 1500).exterior.coords])
    far = shapely.affinity.translate(box(0, 0, 2000, 2000), -150_000, 0)  # ~1.5° west of CM
    stats = overlay.township_stats(towns(holed, far))
    ratio = stats["area_ellipsoidal_m2"] / stats["area_m2"]
    assert ratio[0] == pytest.approx(1.0, rel=1e-5)
    # GK enlarges areas off the meridian by about k² ≈ 1 + x²/R²: ellipsoidal is smaller
    assert ratio[1] == pytest.approx(1 / (1 + 150_000**2 / 6_371_000**2), rel=1e-4)


def test_line_areas_are_ellipsoidal_by_default_and_shares_too():
    """Official figures (三调 TBMJ, 一张图) are ellipsoidal: every line gets m², 公顷, 亩 on the
    ellipsoid, and its share is of the township's ellipsoidal area."""
    west = -150_000  # ~1.5° west of the CM: GK enlarges areas by ~5.5e-4 there
    town = shapely.affinity.translate(box(0, 0, 4000, 3000), west, 0)
    patches = [shapely.affinity.translate(g, west, 0) for g in (
        box(-1000, 0, 1500, 1000), box(1000, 500, 2500, 2000), box(3000, 2500, 5000, 4000))]
    stats = overlay.township_stats(towns(town), farmland=layer("farmland", *patches),
                                   redline=layer("redline", patches[0]))
    row = stats.iloc[0]
    inside = shapely.intersection(shift(town), shapely.union_all([shift(g) for g in patches]))
    assert row["farmland_ellipsoidal_m2"] == pytest.approx(equal_area_m2(inside), rel=1e-9)
    assert row["farmland_ellipsoidal_ha"] == pytest.approx(row["farmland_ellipsoidal_m2"] / 1e4)
    assert row["farmland_ellipsoidal_mu"] == pytest.approx(row["farmland_ellipsoidal_m2"] * 0.0015)
    assert row["farmland_m2"] == pytest.approx(inside.area)  # planar, analysis CRS
    assert row["farmland_ellipsoidal_m2"] < row["farmland_m2"] * (1 - 5e-4)
    share = row["farmland_ellipsoidal_m2"] / row["area_ellipsoidal_m2"]
    assert row["farmland_share"] == share
    assert row["area_ellipsoidal_m2"] == pytest.approx(equal_area_m2(shift(town)), rel=1e-10)
    assert row["redline_share"] == pytest.approx(equal_area_m2(shapely.intersection(
        shift(town), shift(patches[0]))) / row["area_ellipsoidal_m2"], rel=1e-9)
    assert np.isnan(row["udb_ellipsoidal_m2"]) and np.isnan(row["udb_ellipsoidal_mu"])
    for role in ("redline", "farmland", "udb"):
        cols = [c for c in stats.columns if c.startswith(f"{role}_")]
        assert cols == [f"{role}_{c}" for c in ("m2", "ha", "mu", "ellipsoidal_m2",
                                               "ellipsoidal_ha", "ellipsoidal_mu", "share")]
    fast = overlay.township_stats(towns(town), farmland=layer("farmland", *patches),
                                  ellipsoidal_lines=False)
    assert fast.loc[0, "farmland_m2"] == row["farmland_m2"]
    assert fast[["farmland_ellipsoidal_m2", "farmland_share"]].isna().all().all()


# --- conflicts ---------------------------------------------------------------------------------


def test_conflicts_between_each_pair_and_self():
    red = layer("redline", box(0, 0, 100, 100))
    farm = layer("farmland", box(50, 0, 150, 100), box(140, 0, 200, 100))  # self: 10x100
    udb = layer("udb", box(90, 90, 300, 300))
    result = overlay.line_conflicts(redline=red, farmland=farm, udb=udb)
    got = {(r.layer_a, r.layer_b, r.feature_a, r.feature_b): r.area_m2
           for r in result.itertuples()}
    assert got == {
        ("redline", "farmland", "redline:0", "farmland:0"): 5000.0,
        ("redline", "udb", "redline:0", "udb:0"): 100.0,
        ("farmland", "farmland", "farmland:0", "farmland:1"): 1000.0,
        ("farmland", "udb", "farmland:0", "udb:0"): 600.0,
        ("farmland", "udb", "farmland:1", "udb:0"): 600.0,
    }
    assert set(result["kind"]) == {"conflict"}
    assert result["township_code"].isna().all()
    assert set(result.geom_type) <= {"Polygon", "MultiPolygon"}
    assert np.allclose(result.area, result["area_m2"])
    assert list(result.columns[:7]) == ["layer_a", "layer_b", "feature_a", "feature_b",
                                        "township_code", "area_m2", "kind"]


def test_touching_lines_are_no_conflict():
    red = layer("redline", box(0, 0, 100, 100))
    farm = layer("farmland", box(100, 0, 200, 100), box(200, 0, 300, 100),
                 box(300, 100, 400, 200))  # an edge, an edge, a corner
    udb = layer("udb", box(100, 100, 300, 200))
    assert len(overlay.line_conflicts(redline=red, farmland=farm, udb=udb)) == 0


def test_boundary_noise_below_tolerance():
    red = layer("redline", box(0, 0, 100, 100))
    farm = layer("farmland", box(99.5, 0, 200, 1))  # 0.5 x 1 = 0.5 m²
    result = overlay.line_conflicts(redline=red, farmland=farm)
    assert result["kind"].tolist() == ["boundary_noise"]
    assert result["area_m2"].tolist() == pytest.approx([0.5])
    assert result.attrs["tolerance"]["min_overlap_m2"] == 1.0
    strict = overlay.line_conflicts(redline=red, farmland=farm,
                                    tolerance={"min_overlap_m2": 0.1, "source": "x"})
    assert strict["kind"].tolist() == ["conflict"]
    shares = overlay.line_conflicts(redline=red, farmland=farm,
                                    tolerance={"min_overlap_m2": 0, "min_overlap_share": 0.01})
    assert shares["kind"].tolist() == ["boundary_noise"]  # 0.5 / 100 m² = 0.005


def test_conflicts_split_by_township():
    t = towns(box(0, 0, 100, 100), box(100, 0, 200, 100))
    red = layer("redline", box(50, 0, 250, 10))
    udb = layer("udb", box(0, 0, 300, 5))
    result = overlay.line_conflicts(redline=red, udb=udb, townships=t)
    assert result["township_code"].tolist() == [t["code"][0], t["code"][1], None]
    assert result["area_m2"].tolist() == [250.0, 500.0, 250.0]
    assert result["pair_area_m2"].tolist() == [1000.0] * 3
    assert set(result["kind"]) == {"conflict"}


def test_no_layers_no_conflicts():
    result = overlay.line_conflicts()
    assert len(result) == 0
    assert "kind" in result.columns


# --- input checks ------------------------------------------------------------------------------


def test_geographic_crs_rejected():
    t = towns(box(0, 0, 1, 1))
    geo = gpd.GeoDataFrame({"code": ["1"], "name": ["甲"]},
                           geometry=[box(107, 27, 107.1, 27.1)], crs="EPSG:4490")
    with pytest.raises(CRSError, match="geographic"):
        overlay.township_stats(geo)
    with pytest.raises(CRSError):
        overlay.township_stats(t, redline=layer_raw("redline", box(0, 0, 1, 1)).set_crs(
            "EPSG:4490", allow_override=True))
    with pytest.raises(CRSError, match="no CRS"):
        overlay.line_conflicts(redline=layer_raw("redline", box(0, 0, 1, 1)).set_crs(
            None, allow_override=True))
    with pytest.raises(CRSError, match="not in the analysis CRS"):
        overlay.township_stats(t, udb=layer("udb", box(0, 0, 1, 1), crs="EPSG:4544"))


def test_bad_inputs():
    t = towns(box(0, 0, 1, 1))
    with pytest.raises(FieldError, match="name"):
        overlay.township_stats(t.drop(columns="name"))
    with pytest.raises(FieldError, match="feature_id"):
        overlay.line_conflicts(redline=layer("redline", box(0, 0, 1, 1)).drop(
            columns="feature_id"))
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    with pytest.raises(GeometryError, match="invalid") as info:
        overlay.township_stats(t, farmland=layer("farmland", box(0, 0, 1, 1), bowtie))
    assert info.value.feature == "farmland:1"
    with pytest.raises(GeometryError, match="non-polygon"):
        overlay.township_stats(t, farmland=layer("farmland", shapely.LineString([(0, 0),
                                                                                 (1, 1)])))
    with pytest.raises(RulebookError):
        overlay.township_stats(t, tolerance={"min_overlap_m2": -1})
    with pytest.raises(RulebookError):
        overlay.township_stats(t, tolerance={"min_overlap_share": 5})


def test_missing_and_empty_geometries():
    t = towns(box(0, 0, 100, 100))
    farm = layer("farmland", box(0, 0, 10, 10))
    farm.loc[1] = ["farmland:1", None]
    farm.loc[2] = ["farmland:2", Polygon()]
    stats = overlay.township_stats(t, farmland=farm)
    assert stats.loc[0, "farmland_m2"] == 100.0
    assert len(overlay.line_conflicts(farmland=farm)) == 0


# --- agreement with an independent computation ---------------------------------------------------


def random_case(seed, n_towns=12, n_patches=150, overlapping=True):
    """Townships: a Voronoi coverage with a gap; patches: random rotated rectangles + blobs."""
    rng = np.random.default_rng(seed)
    pts = shapely.multipoints(rng.uniform(0, 10_000, (n_towns, 2)))
    frame = box(0, 0, 10_000, 10_000)
    cells = shapely.get_parts(shapely.voronoi_polygons(pts, extend_to=frame))
    cells = shapely.set_precision(shapely.intersection(cells, frame), 0.001)
    cells = cells[1:]  # one cell missing: a gap in the outlines
    centres = rng.uniform(-500, 10_500, (n_patches, 2))
    rects = [shapely.affinity.rotate(box(x - w, y - h, x + w, y + h), a)
             for (x, y), w, h, a in zip(centres, rng.uniform(20, 400, n_patches),
                                        rng.uniform(20, 400, n_patches),
                                        rng.uniform(0, 90, n_patches), strict=True)]
    patches = np.array(rects, dtype=object)
    if not overlapping:  # make them disjoint: difference with everything before
        patches = np.array([shapely.difference(p, shapely.union_all(patches[:k]))
                            for k, p in enumerate(patches)], dtype=object)
        patches = patches[~shapely.is_empty(patches)]
    patches = shapely.set_precision(patches, 0.001)
    t = gpd.GeoDataFrame({"code": [str(k) for k in range(len(cells))],
                          "name": ["t"] * len(cells)}, geometry=list(cells), crs=CRS)
    lines = gpd.GeoDataFrame({"feature_id": [f"x:{k}" for k in range(len(patches))]},
                             geometry=list(patches), crs=CRS)
    return t, lines


def reference(t, lines):
    """Independent: geopandas.overlay, dissolve per township, area."""
    pieces = gpd.overlay(t[["code", "geometry"]], lines[["feature_id", "geometry"]],
                         how="intersection", keep_geom_type=True)
    per_town = pieces.dissolve(by="code").area
    return per_town.reindex(t["code"]).fillna(0.0).to_numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("overlapping", [True, False])
def test_agrees_with_geopandas_overlay(seed, overlapping):
    t, lines = random_case(seed, overlapping=overlapping)
    stats = overlay.township_stats(t, redline=lines)
    expected = reference(t, lines)
    assert stats["redline_m2"].to_numpy() == pytest.approx(expected, rel=1e-6, abs=1e-6)
    # outside the outlines = dissolved line minus what lies inside
    whole = shapely.union_all(lines.geometry.to_numpy()).area
    outside = overlay.outside_townships(t, redline=lines).loc[0, "outside_m2"]
    assert outside + expected.sum() == pytest.approx(whole, rel=1e-6)
    assert outside > 0


@pytest.mark.parametrize("seed", [3, 4])
def test_conflicts_agree_with_geopandas_overlay(seed):
    t, a = random_case(seed, n_patches=60)
    _, b = random_case(seed + 100, n_patches=60, overlapping=False)
    result = overlay.line_conflicts(redline=a, farmland=b, townships=t)
    cross = result[(result["layer_a"] == "redline") & (result["layer_b"] == "farmland")]
    expected = gpd.overlay(a, b, how="intersection", keep_geom_type=True)
    pairs = cross.drop_duplicates(["feature_a", "feature_b"])
    assert pairs["pair_area_m2"].sum() == pytest.approx(expected.area.sum(), rel=1e-9)
    # split by township (inside pieces + the part outside every township): same total
    assert cross["area_m2"].sum() == pytest.approx(expected.area.sum(), rel=1e-6)
    self_rows = result[(result["layer_a"] == "redline") & (result["layer_b"] == "redline")]
    pairs = gpd.sjoin(a, a, predicate="overlaps")
    assert set(zip(self_rows["feature_a"], self_rows["feature_b"], strict=True)) <= {
        tuple(sorted(p)) for p in zip(pairs["feature_id_left"], pairs["feature_id_right"],
                                      strict=True)
    } | {(x, y) for x, y in zip(self_rows["feature_a"], self_rows["feature_b"], strict=True)}
    # every self-overlap row carries area and the pairs are ordered
    assert (self_rows["area_m2"] > 0).all()
    assert not self_rows.empty
    assert isinstance(result, pd.DataFrame)


# --- the coverage fast path ----------------------------------------------------------------------


def jittered_grid(n, size, seed):
    """A coverage of n x n jittered quads (shared vertices), coordinates on the mm grid."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n + 1) * size, np.arange(n + 1) * size)
    xs = np.round(xs + rng.uniform(-0.3, 0.3, xs.shape) * size, 3)
    ys = np.round(ys + rng.uniform(-0.3, 0.3, ys.shape) * size, 3)
    quads = [Polygon([(xs[i, j], ys[i, j]), (xs[i, j + 1], ys[i, j + 1]),
                      (xs[i + 1, j + 1], ys[i + 1, j + 1]), (xs[i + 1, j], ys[i + 1, j])])
             for i in range(n) for j in range(n)]
    return np.array(quads, dtype=object)


def test_disjoint_coverage_certificate():
    from spatialplan.analysis import _overlay_pairs as _pairs

    grid = jittered_grid(6, 100.0, 0)
    assert _pairs.is_disjoint_coverage(grid)
    assert not _pairs.is_disjoint_coverage(np.append(grid, grid[7]))  # duplicate
    assert not _pairs.is_disjoint_coverage(np.append(grid, box(10, 10, 20, 20)))  # nested
    blobs = shapely.buffer(shapely.points([(0, 0), (150, 0)]), 100)
    assert not _pairs.is_disjoint_coverage(blobs)  # crossing overlap
    assert _pairs.is_disjoint_coverage(np.array([box(0, 0, 1, 1), None], dtype=object))


@pytest.mark.parametrize("seed", [0, 1])
def test_coverage_path_agrees_with_geopandas_overlay(seed):
    t, _ = random_case(seed)
    t["geometry"] = t.geometry.translate(-1_000, -1_000)
    farm = gpd.GeoDataFrame({"feature_id": [f"farmland:{k}" for k in range(400)]},
                            geometry=list(jittered_grid(20, 500.0, seed)), crs=CRS)
    stats = overlay.township_stats(t, farmland=farm)
    pieces = gpd.overlay(t[["code", "geometry"]], farm, how="intersection",
                         keep_geom_type=True)
    expected = (pieces.assign(a=pieces.area).groupby("code")["a"].sum()
                .reindex(t["code"]).fillna(0.0).to_numpy())
    assert stats["farmland_m2"].to_numpy() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    slow = overlay.township_stats(t, farmland=farm, ellipsoidal_lines=True)  # pairwise path
    assert slow["farmland_m2"].to_numpy() == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_union_path_matches_per_zone_path(monkeypatch):
    """The certificate's pieces, clipped per zone, agree with the per-zone boundary path."""
    from spatialplan.analysis import _overlay_geom as g
    from spatialplan.analysis import _overlay_pairs as _pairs

    t, _ = random_case(0)
    t["geometry"] = t.geometry.translate(-1_000, -1_000)
    zones = np.asarray(t.geometry.array, dtype=object)
    grid = jittered_grid(20, 500.0, 0)
    certified, parts = _pairs.coverage_certificate(grid)
    assert certified and parts is not None
    fast = g.union_zone_areas(zones, parts, grid_size=0.001)
    slow = g.coverage_zone_areas(zones, grid, grid_size=0.001)
    assert fast == pytest.approx(slow, rel=1e-9, abs=1e-6)
    monkeypatch.setattr(g, "MAX_CLIP_COORDS", 0)  # parts too large: the per-zone fallback
    assert g.union_zone_areas(zones, parts, grid_size=0.001) is None
    farm = gpd.GeoDataFrame({"feature_id": [f"farmland:{k}" for k in range(len(grid))]},
                            geometry=list(grid), crs=CRS)
    stats = overlay.township_stats(t, farmland=farm)
    assert stats["farmland_m2"].to_numpy() == pytest.approx(fast, rel=1e-9, abs=1e-6)


def test_certificate_returns_union_only_when_certified():
    from spatialplan.analysis import _overlay_pairs as _pairs

    grid = jittered_grid(4, 100.0, 1)
    certified, parts = _pairs.coverage_certificate(grid)
    assert certified
    assert shapely.area(parts).sum() == pytest.approx(shapely.area(grid).sum(), rel=1e-12)
    assert shapely.equals(shapely.union_all(parts), shapely.union_all(grid))
    assert _pairs.coverage_certificate(np.append(grid, grid[3])) == (False, None)
    assert _pairs.coverage_certificate(np.array([None], dtype=object)) == (True, None)


def test_union_path_touching_zone_carries_no_area():
    """#1871 guard on the union path: a coverage only touching a zone adds nothing."""
    from spatialplan.analysis import _overlay_geom as g

    zones = np.array([box(0, 0, 10, 10), box(10, 0, 20, 10)], dtype=object)
    merged = shapely.coverage_union_all(np.array([box(10, 0, 15, 10), box(15, 0, 20, 10)]))
    areas = g.union_zone_areas(zones, merged, grid_size=0.001)
    assert areas.tolist() == [0.0, 100.0]
