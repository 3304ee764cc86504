"""One preparation for the three control-line tables (overlay.control_line_report).

The report must equal the three separate calls, compute each layer's coverage certificate and
validation once, and its shortcuts for what lies outside the townships (boundary screen, local
outlines) must agree with the plain per-feature path and with shapely directly.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely import Polygon, box

import spatialplan as sp
from spatialplan.analysis import _overlay_geom, _overlay_lines, _overlay_pairs, overlay
from spatialplan.core import _parallel
from spatialplan.core._resources import demo_dir
from spatialplan.errors import CRSError, FieldError, GeometryError

CRS = "EPSG:4545"
X0, Y0 = 500_000.0, 2_988_000.0
KM = 1000.0
#: shapely #1871: a triangle and a diamond that only touch (see test_overlay)
TRIANGLE_1871 = Polygon([(446, -207), (315, -75.99999999999999), (557, -76)])
DIAMOND_1871 = Polygon([(184, -207), (315, -76), (446, -207), (315, -338)])


def _grid(n: int, size: float, seed: int, x0: float = X0, y0: float = Y0) -> np.ndarray:
    """A disjoint coverage of n x n jittered quads sharing their vertices, on the mm grid."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(n + 1) * size, np.arange(n + 1) * size)
    xs = np.round(x0 + xs + rng.uniform(-0.3, 0.3, xs.shape) * size, 3)
    ys = np.round(y0 + ys + rng.uniform(-0.3, 0.3, ys.shape) * size, 3)
    return np.array([Polygon([(xs[i, j], ys[i, j]), (xs[i, j + 1], ys[i, j + 1]),
                              (xs[i + 1, j + 1], ys[i + 1, j + 1]), (xs[i + 1, j], ys[i + 1, j])])
                     for i in range(n) for j in range(n)], dtype=object)


def _frame(role: str, geoms, crs: str = CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"feature_id": [f"{role}:{k}" for k in range(len(geoms))]},
                            geometry=list(geoms), crs=crs)


def _towns(geoms) -> gpd.GeoDataFrame:
    t = _frame("townships", geoms)
    t["code"] = [f"5201{k:05d}" for k in range(len(t))]
    t["name"] = [f"镇{k}" for k in range(len(t))]
    return t


def _case(seed: int, *, coverage_towns: bool = True, x0: float = X0, y0: float = Y0) -> dict:
    """Townships with a hole and a gap; a farmland coverage crossing borders and the edge;
    overlapping red-line patches, one outside every township, one multipart half outside, one
    touching the outline from outside and one from inside; development boundaries touching
    the red line, overlapping it and outside everything. ``x0, y0``: the south-west corner."""
    rng = np.random.default_rng(seed)
    cells = _grid(4, 1 * KM, seed, x0, y0)
    cells = np.delete(cells, [5, 15])  # an interior hole in the outline and a corner gap
    if not coverage_towns:  # no longer a valid coverage: the whole-outline path
        cells[0] = shapely.set_precision(shapely.buffer(cells[0], 3.0, join_style="mitre"),
                                         0.001)
    farm = _grid(18, 260.0, seed + 1, x0 - 300, y0 - 300)  # beyond the outline on every side
    minx, miny, maxx, maxy = shapely.total_bounds(cells)
    centres = rng.uniform((minx, miny), (maxx, maxy), (25, 2))
    red = [shapely.affinity.rotate(box(x - w, y - h, x + w, y + h), a)
           for (x, y), w, h, a in zip(centres, rng.uniform(20, 300, 25), rng.uniform(20, 300, 25),
                                      rng.uniform(0, 90, 25), strict=True)]
    # the south edge of the south-west township, on the outline (unless it was buffered)
    (ax, ay), (bx, by) = shapely.get_coordinates(cells[0])[:2]
    mx, my = (ax + bx) / 2, (ay + by) / 2
    inside_part = box(x0 + 400, y0 + 2400, x0 + 500, y0 + 2500)  # inside township 8
    red += [
        box(maxx + 500, maxy + 500, maxx + 800, maxy + 700),     # outside everything
        shapely.MultiPolygon([inside_part, box(maxx + 200, y0 + 1400, maxx + 300, y0 + 1500)]),
        Polygon([(ax, ay), (bx, by), (mx, my + 10)]),             # touches the edge from inside
        Polygon([(ax, ay), (bx, by), (mx, my - 10)]),             # touches it from outside
    ]
    red = shapely.set_precision(np.array(red, dtype=object), 0.001)
    cx, cy = shapely.get_coordinates(shapely.centroid(red[0]))[0]
    udb = [box(x0 + 500, y0 + 2400, x0 + 600, y0 + 2500),  # touches the inside part only
           box(cx - 50, cy - 50, cx + 250, cy + 250),        # overlaps a red-line patch
           box(maxx + 1000, y0, maxx + 1200, y0 + 200)]       # outside everything
    udb = shapely.set_precision(np.array(udb, dtype=object), 0.001)  # all on the mm grid
    return {
        "townships": _towns(cells),
        "redline": _frame("redline", red),
        "farmland": _frame("farmland", farm),
        "udb": _frame("udb", udb),
        "cropland": _frame("cropland", farm[::3]),
    }


def _separate(case: dict, **kwargs):
    lines = {r: case.get(r) for r in ("redline", "farmland", "udb", "cropland")}
    grid = {k: v for k, v in kwargs.items() if k == "grid_size"}
    tol = {k: v for k, v in kwargs.items() if k == "tolerance"}
    stats = overlay.township_stats(case["townships"], **lines, **kwargs)
    outside = overlay.outside_townships(case["townships"], **lines, **grid)
    conflicts = overlay.line_conflicts(redline=lines["redline"], farmland=lines["farmland"],
                                       udb=lines["udb"], townships=case["townships"], **grid,
                                       **tol)
    return stats, outside, conflicts


def _report(case: dict, **kwargs):
    lines = {r: case.get(r) for r in ("redline", "farmland", "udb", "cropland")}
    return overlay.control_line_report(case["townships"], **lines, **kwargs)


def assert_identical(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    pd.testing.assert_frame_equal(pd.DataFrame(a).drop(columns="geometry"),
                                  pd.DataFrame(b).drop(columns="geometry"))
    ga, gb = np.asarray(a.geometry.array, object), np.asarray(b.geometry.array, object)
    both_missing = shapely.is_missing(ga) & shapely.is_missing(gb)
    assert (shapely.equals_exact(ga, gb, tolerance=0) | both_missing).all()
    assert a.attrs == b.attrs
    assert a.crs == b.crs


# --- the report equals the three calls -------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("coverage_towns", [True, False])
@pytest.mark.parametrize("grid_size", [overlay.DEFAULT_GRID_SIZE, None])
def test_report_equals_separate_calls(seed, coverage_towns, grid_size):
    case = _case(seed, coverage_towns=coverage_towns)
    assert _overlay_pairs.coverage_certificate(
        np.asarray(case["farmland"].geometry.array, object))[0]
    tol = {"min_overlap_m2": 5.0}
    report = _report(case, tolerance=tol, grid_size=grid_size)
    stats, outside, conflicts = report
    assert report.township_stats is stats
    for got, want in zip(report, _separate(case, tolerance=tol, grid_size=grid_size),
                         strict=True):
        assert_identical(got, want)
    # the case exercises what it should
    row = outside.set_index("line")
    assert (row.loc[["redline", "farmland", "udb", "cropland"], "outside_m2"] > 0).all()
    assert {"conflict"} <= set(conflicts["kind"])
    assert conflicts["township_code"].isna().any() and conflicts["township_code"].notna().any()
    assert (conflicts["layer_a"] == conflicts["layer_b"]).any()  # red-line self-overlaps


def test_report_with_some_lines_or_none():
    case = _case(2)
    for lines in ({}, {"farmland": case["farmland"]}, {"cropland": case["cropland"]},
                  {"redline": case["redline"], "udb": case["udb"]}):
        sub = {"townships": case["townships"], **lines}
        for got, want in zip(_report(sub), _separate(sub), strict=True):
            assert_identical(got, want)


def test_report_ellipsoidal_lines():
    case = _case(3)
    got = _report(case, ellipsoidal_lines=True).township_stats
    assert_identical(got, _separate(case, ellipsoidal_lines=True)[0])
    assert "farmland_ellipsoidal_m2" in got


# --- exactness of the shortcuts ----------------------------------------------------------------


def _plain_outside(patches: np.ndarray, towns: np.ndarray) -> tuple[int, float]:
    """Pieces outside the outline with one (safeguarded) difference per patch."""
    outline = shapely.union_all(towns)
    parts = _overlay_geom.safe_overlay(shapely.difference, patches, np.full(len(patches), outline),
                                       grid_size=overlay.DEFAULT_GRID_SIZE)
    touching = shapely.touches(outline, patches)
    parts[touching] = patches[touching]
    area = np.nan_to_num(shapely.area(parts))
    return int((area > 0).sum()), float(area.sum())


@pytest.mark.parametrize("seed", [0, 4])
@pytest.mark.parametrize("coverage_towns", [True, False])
def test_outside_agrees_with_plain_paths(seed, coverage_towns):
    """The screened, locally cut outside parts against every patch tested and cut against the
    whole outline (the overlay's plain path) and against one difference per patch."""
    case = _case(seed, coverage_towns=coverage_towns)
    outside = _report(case).outside_townships.set_index("line")
    zones = np.asarray(case["townships"].geometry.array, object)
    outline = _overlay_geom.union(zones, grid_size=overlay.DEFAULT_GRID_SIZE)
    shapely.prepare(outline)
    for role in ("redline", "farmland", "udb", "cropland"):
        patches = _overlay_lines._polygons(case[role], role, overlay.DEFAULT_GRID_SIZE)
        _, parts = _overlay_geom.outside_parts(patches, outline,
                                               grid_size=overlay.DEFAULT_GRID_SIZE)
        overlapping = len(_overlay_pairs.overlap_pairs(patches)[0]) > 0
        slow = overlay._outside_row(patches, parts, overlapping=overlapping,
                                    grid_size=overlay.DEFAULT_GRID_SIZE)
        row = outside.loc[role]
        assert row["n_features"] == slow["n_features"], role
        assert row["outside_m2"] == pytest.approx(slow["outside_m2"], rel=1e-9), role
        assert row["line_m2"] == pytest.approx(slow["line_m2"], rel=1e-12), role
        assert shapely.equals(row.geometry, slow["geometry"]), role
        # screened, cut against the whole outline (no local outlines)
        _, cut = _overlay_geom.outside_parts(patches, outline, grid_size=overlay.DEFAULT_GRID_SIZE,
                                             tree=shapely.STRtree(patches))
        tile = overlay._outside_row(patches, cut, overlapping=overlapping,
                                    grid_size=overlay.DEFAULT_GRID_SIZE)
        assert tile["n_features"] == row["n_features"], role
        assert tile["outside_m2"] == pytest.approx(row["outside_m2"], rel=1e-9), role
        if role != "redline":  # overlapping patches are dissolved; the others are summed
            n, area = _plain_outside(patches, zones)
            assert row["n_features"] == n, role
            assert row["outside_m2"] == pytest.approx(area, rel=1e-9), role


@pytest.mark.parametrize("seed", [5, 6])
@pytest.mark.parametrize("coverage_towns", [True, False])
def test_conflict_pieces_agree_with_shapely(seed, coverage_towns):
    """Each conflict row: the pair's overlap ∩ its township, or the overlap - every township
    (against the whole outline, what the local outlines of a coverage stand in for), both
    safeguarded as the overlay does (an implausible floating result is snap-rounded)."""
    case = _case(seed, coverage_towns=coverage_towns)
    conflicts = _report(case).line_conflicts
    whole = overlay.line_conflicts(redline=case["redline"], farmland=case["farmland"],
                                   udb=case["udb"])
    key = ["layer_a", "layer_b", "feature_a", "feature_b"]
    pair = whole.set_index(key).geometry[pd.MultiIndex.from_frame(conflicts[key])].to_numpy()
    zones = case["townships"].set_index("code").geometry
    outline = shapely.union_all(zones.to_numpy())
    out = conflicts["township_code"].isna().to_numpy()
    assert out.any() and (~out).any()
    grid = overlay.DEFAULT_GRID_SIZE
    outside = _overlay_geom.safe_overlay(shapely.difference, pair[out],
                                         np.full(out.sum(), outline), grid_size=grid)
    towns = zones[conflicts["township_code"][~out]].to_numpy()
    expected = np.empty(len(conflicts))
    expected[out] = shapely.area(outside)
    expected[~out] = shapely.area(_overlay_geom.safe_overlay(shapely.intersection, towns,
                                                             pair[~out], grid_size=grid))
    assert conflicts["area_m2"].to_numpy() == pytest.approx(expected, rel=1e-9)
    assert shapely.equals(conflicts.geometry.to_numpy()[out], outside).all()


@pytest.mark.parametrize("grid_size", [overlay.DEFAULT_GRID_SIZE, None])
def test_1871_touching_only_never_carries_area(grid_size):
    towns = _towns([DIAMOND_1871])
    red = _frame("redline", [TRIANGLE_1871])
    stats, outside, conflicts = overlay.control_line_report(
        towns, redline=red, farmland=_frame("farmland", [DIAMOND_1871]), grid_size=grid_size)
    assert stats.loc[0, "redline_m2"] == 0.0
    assert stats.loc[0, "farmland_m2"] == pytest.approx(DIAMOND_1871.area)
    row = outside.set_index("line")
    assert row.loc["redline", "outside_m2"] == pytest.approx(TRIANGLE_1871.area)
    assert row.loc["redline", "n_features"] == 1
    assert row.loc["farmland", "outside_m2"] == 0.0
    assert len(conflicts) == 0


def test_screen_multipart_hole_and_touching_patches():
    """Cases of the boundary screen: a multipart patch half outside, a patch in a township's
    hole, patches touching the outline from outside and from inside, one far away."""
    ring = Polygon(box(0, 0, 1000, 1000).exterior.coords,
                   [box(400, 400, 600, 600).exterior.coords])
    towns = _towns([shapely.affinity.translate(g, X0, Y0)
                    for g in (ring, box(1000, 0, 2000, 1000))])
    red = [shapely.MultiPolygon([box(100, 100, 200, 200), box(2100, 100, 2200, 200)]),
           box(450, 450, 550, 550),        # in the hole: wholly outside
           box(2000, 300, 2100, 400),      # touches the outline from outside
           box(1900, 300, 2000, 400),      # touches it from inside
           box(950, 300, 1050, 400),       # across two townships, covered
           box(5000, 5000, 5100, 5100)]    # far away
    red = _frame("redline", [shapely.affinity.translate(g, X0, Y0) for g in red])
    outside = overlay.control_line_report(towns, redline=red).outside_townships
    assert outside.loc[0, "n_features"] == 4
    assert outside.loc[0, "outside_m2"] == 4 * 10_000.0
    assert outside.loc[0, "line_m2"] == 7 * 10_000.0


# --- prepared once ---------------------------------------------------------------------------


def _count(monkeypatch, module, name: str) -> list:
    calls = []
    real = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(len(args[0]) if len(args) and hasattr(args[0], "__len__") else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_certificate_and_validation_once_per_layer(monkeypatch):
    case = _case(0)
    certificates = _count(monkeypatch, _overlay_pairs, "coverage_certificate")
    validations = _count(monkeypatch, _overlay_lines, "_polygons")
    _report(case)
    sizes = sorted(len(case[r]) for r in ("redline", "farmland", "udb", "cropland"))
    assert sorted(certificates) == sizes
    assert sorted(validations) == sorted([*sizes, len(case["townships"])])
    certificates.clear()
    _separate(case)  # the separate calls repeat them (what the report saves)
    assert len(certificates) > len(sizes)


def test_run_stats_prepares_once(monkeypatch):
    plan = sp.read_plan(demo_dir() / "plan.toml")
    reports = _count(monkeypatch, overlay, "control_line_report")
    certificates = _count(monkeypatch, _overlay_pairs, "coverage_certificate")
    result = sp.run_stats(plan)
    assert len(reports) == 1
    given = [r for r in ("redline", "farmland", "udb", "cropland") if r in plan.layers]
    assert len(certificates) == len(given)
    monkeypatch.undo()
    towns = plan.layers["townships"].data
    lines = {r: plan.layers[r].data if r in plan.layers else None
             for r in ("redline", "farmland", "udb", "cropland")}
    # a run adds what township overlaps count twice (none in the demo), see test_townships
    twice = ["overlap_townships", *(c for c in result.township_stats.columns
                                    if c.endswith("_double_counted_m2"))]
    assert_identical(result.township_stats.drop(columns=twice),
                     overlay.township_stats(towns, tolerance=result.tolerance, **lines))


# --- errors ----------------------------------------------------------------------------------


def test_invalid_input_names_the_layer():
    case = _case(0)
    bowtie = shapely.affinity.translate(Polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), X0, Y0)
    farm = case["farmland"].copy()
    farm.loc[3, "geometry"] = bowtie
    with pytest.raises(GeometryError, match="invalid") as info:
        _report({**case, "farmland": farm})
    assert info.value.layer == "farmland" and info.value.feature == "farmland:3"
    towns = case["townships"].copy()
    towns.loc[1, "geometry"] = bowtie
    with pytest.raises(GeometryError) as info:
        _report({**case, "townships": towns})
    assert info.value.layer == "townships"
    udb = case["udb"].copy()
    udb.loc[0, "geometry"] = shapely.LineString([(X0, Y0), (X0 + 1, Y0 + 1)])
    with pytest.raises(GeometryError, match="non-polygon") as info:
        _report({**case, "udb": udb})
    assert info.value.layer == "udb"
    with pytest.raises(FieldError, match="feature_id") as info:
        _report({**case, "redline": case["redline"].drop(columns="feature_id")})
    assert info.value.layer == "redline"
    with pytest.raises(FieldError, match="name"):
        _report({**case, "townships": case["townships"].drop(columns="name")})
    with pytest.raises(CRSError):
        _report({**case, "udb": case["udb"].set_crs("EPSG:4546", allow_override=True)})
    # cropland only enters the statistics: no feature_id needed, as in township_stats
    stats = _report({**case, "cropland": case["cropland"].drop(columns="feature_id")})[0]
    assert (stats["cropland_m2"] > 0).any()


@pytest.mark.parametrize("prepare", [False, True])
def test_validation_in_threads_finds_the_first_invalid(monkeypatch, prepare):
    """Validity is checked on chunks in threads (none prepared) or in this thread."""
    monkeypatch.setattr(_parallel, "MIN_CHUNK", 10)
    monkeypatch.setattr(_parallel, "_override", 3)
    case = _case(0)
    farm = case["farmland"].copy()
    bowtie = shapely.affinity.translate(Polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), X0, Y0)
    farm.loc[[200, 250], "geometry"] = [bowtie, bowtie]
    if prepare:
        shapely.prepare(farm.geometry.array[5])
    with pytest.raises(GeometryError, match="2 invalid polygons") as info:
        overlay.control_line_report(case["townships"], farmland=farm)
    assert info.value.feature == "farmland:200"
    got = overlay.control_line_report(case["townships"], farmland=case["farmland"])
    assert_identical(got.township_stats, overlay.township_stats(case["townships"],
                                                                farmland=case["farmland"]))



def test_threads_leave_the_warning_filters_alone(monkeypatch):
    """Validity and snapping tests in threads must not swap ``warnings.filters`` (shapely's
    ``is_valid`` uses ``catch_warnings``, which is not thread-safe)."""
    import warnings

    monkeypatch.setattr(_parallel, "MIN_CHUNK", 10)
    monkeypatch.setattr(_parallel, "_override", 3)
    case = _case(0)
    before = list(warnings.filters)
    for _ in range(3):
        overlay.control_line_report(case["townships"], farmland=case["farmland"],
                                    redline=case["redline"], udb=case["udb"])
    assert list(warnings.filters) == before

# --- geometries validated by read_plan are not tested again ----------------------------------


def _validity_tests(monkeypatch) -> list:
    """Sizes of the arrays _overlay_lines._polygons tests for validity."""
    calls = []
    real = _overlay_lines.map_chunks

    def counting(func, *arrays, **kwargs):
        if func is _overlay_lines.is_valid:
            calls.append(len(arrays[0]))
        return real(func, *arrays, **kwargs)

    monkeypatch.setattr(_overlay_lines, "map_chunks", counting)
    return calls


def _case_plan(tmp_path, case: dict):
    """A plan.toml over GeoPackages of a case, stored in the analysis CRS (no reprojection)."""
    lines = ['[plan]\nname = "case"\ncrs = "EPSG:4545"\n']
    for role in ("townships", "redline", "farmland", "udb", "cropland"):
        if case.get(role) is not None:
            case[role].drop(columns="feature_id").to_file(tmp_path / "case.gpkg", layer=role)
            lines.append(f'[layers.{role}]\npath = "case.gpkg"\nlayer = "{role}"\n')
    (tmp_path / "plan.toml").write_text("\n".join(lines), encoding="utf-8")
    return sp.read_plan(tmp_path / "plan.toml")


def test_run_stats_skips_validity_of_what_read_plan_validated(monkeypatch, tmp_path):
    plan = _case_plan(tmp_path, _case(0))
    assert {"townships", "redline", "farmland", "udb"} <= set(plan.layers)
    for role, layer in plan.layers.items():  # the very objects read_plan validated
        assert _overlay_lines._same_objects(np.asarray(layer.data.geometry.array, dtype=object),
                                     layer.validated), role
    tests = _validity_tests(monkeypatch)
    skipped = sp.run_stats(plan)
    assert tests == []
    monkeypatch.undo()
    for layer in plan.layers.values():
        layer.validated = None
    tests = _validity_tests(monkeypatch)
    full = sp.run_stats(plan)
    assert len(tests) == len([r for r in ("townships", "redline", "farmland", "udb", "cropland")
                              if r in plan.layers])
    for name in ("township_stats", "outside_townships", "line_conflicts"):
        assert_identical(getattr(skipped, name), getattr(full, name))


def test_reprojected_layers_are_validated_again(monkeypatch):
    plan = sp.read_plan(demo_dir() / "plan.toml")  # stored in CGCS2000 lon/lat
    tests = _validity_tests(monkeypatch)
    sp.run_stats(plan)
    assert len(plan.layers["farmland"].data) in tests  # new objects: not the validated ones


def test_a_geometry_changed_after_reading_is_validated(monkeypatch, tmp_path):
    plan = _case_plan(tmp_path, _case(1))
    farm = plan.layers["farmland"].data
    x0, y0 = farm.geometry.iloc[0].centroid.coords[0]
    bowtie = Polygon([(x0, y0), (x0 + 10, y0 + 10), (x0 + 10, y0), (x0, y0 + 10)])
    farm.loc[farm.index[0], "geometry"] = bowtie  # in place: same frame, one new object
    tests = _validity_tests(monkeypatch)
    with pytest.raises(GeometryError, match="farmland layer holds 1 invalid"):
        sp.run_stats(plan)
    assert len(farm) in tests


def test_known_valid_must_be_the_same_objects():
    case = _case(0)
    farm = case["farmland"]
    geoms = np.asarray(farm.geometry.array, dtype=object)
    assert _overlay_lines._same_objects(geoms, geoms.copy())
    equal_copies = shapely.from_wkb(shapely.to_wkb(geoms))  # equal, but other objects
    assert not _overlay_lines._same_objects(geoms, equal_copies)
    assert not _overlay_lines._same_objects(geoms, geoms[:-1])
    assert not _overlay_lines._same_objects(geoms, None)
    bowtie = shapely.affinity.translate(Polygon([(0, 0), (10, 10), (10, 0), (0, 10)]), X0, Y0)
    bad = farm.copy()
    bad.loc[bad.index[3], "geometry"] = bowtie
    with pytest.raises(GeometryError, match="farmland"):  # a stale snapshot is not trusted
        _report({**case, "farmland": bad}, known_valid={"farmland": geoms})
