"""Tests of spatialplan.analysis.terrain on analytic surfaces built in code (and one real DEM)."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from conftest import DATA_DIR
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject, transform_bounds
from shapely import box

from spatialplan.analysis.terrain import (
    AROUND_COLUMNS,
    NODATA,
    SITE_COLUMNS,
    read_terrain,
    site_slope_stats,
    slope_degrees,
    township_terrain_stats,
    write_slope,
)
from spatialplan.errors import CRSError, FieldError, GeometryError, RasterError

GK = "EPSG:4545"  # CGCS2000 3-degree GK zone 36 (CM 108°E), no zone prefix
X0, Y0 = 500_000.0, 2_900_000.0  # upper-left corner of the test grids (Guizhou, ~26°N)
RES = 10.0


def _write(path: Path, z: np.ndarray, *, crs: str | None = GK, nodata: float | None = NODATA,
           transform: Affine | None = None) -> Path:
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "width": z.shape[1],
               "height": z.shape[0], "transform": transform or Affine(RES, 0, X0, 0, -RES, Y0)}
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z.astype(np.float32), 1)
    return path


def _grid(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Metric x (east) and y (north) offsets of the cell centres from the grid corner."""
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    return (cols + 0.5) * RES, -(rows + 0.5) * RES


def _plane(angle_deg: float, *, aspect_deg: float = 30.0, n: int = 100) -> np.ndarray:
    x, y = _grid(n)
    a = math.radians(aspect_deg)
    return 500.0 + (x * math.cos(a) + y * math.sin(a)) * math.tan(math.radians(angle_deg))


def _sites(*geoms, crs: str = GK, prefix: str = "projects") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"feature_id": [f"{prefix}:{i}" for i in range(len(geoms))]},
                            geometry=list(geoms), crs=crs)


def _inner(slope: np.ndarray) -> np.ndarray:
    return slope[1:-1, 1:-1]


# --- slope on analytic surfaces ------------------------------------------------------------


@pytest.mark.parametrize("angle", [5.0, 20.0, 35.0])
def test_tilted_plane_gives_its_angle_everywhere_inside(tmp_path, angle):
    slope, profile = slope_degrees(_write(tmp_path / "plane.tif", _plane(angle)))
    inner = _inner(slope)
    assert (inner != NODATA).all()
    assert np.abs(inner - angle).max() < 0.1
    assert profile["nodata"] == NODATA and profile["crs"].to_epsg() == 4545


def test_edges_are_nodata(tmp_path):
    slope, _ = slope_degrees(_write(tmp_path / "plane.tif", _plane(10.0, n=20)))
    for edge in (slope[0], slope[-1], slope[:, 0], slope[:, -1]):
        assert (edge == NODATA).all()


def test_flat_plane_gives_zero(tmp_path):
    slope, _ = slope_degrees(_write(tmp_path / "flat.tif", np.full((50, 50), 812.0)))
    assert np.abs(_inner(slope)).max() < 1e-6


def test_cone_gives_its_flank_angle(tmp_path):
    x, y = _grid(121)
    r = np.hypot(x - 605.0, y + 605.0)
    z = 1500.0 - r * math.tan(math.radians(30.0))
    slope, _ = slope_degrees(_write(tmp_path / "cone.tif", z))
    flank = (r > 60.0) & (slope != NODATA)
    assert flank.sum() > 10_000
    assert np.abs(slope[flank] - 30.0).max() < 0.3


def test_open_dataset_is_accepted_and_left_open(tmp_path):
    z = _plane(12.0, n=30)
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "width": 30, "height": 30,
               "transform": Affine(RES, 0, X0, 0, -RES, Y0), "crs": GK, "nodata": NODATA}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(z.astype(np.float32), 1)
        with mem.open() as ds:
            slope, _ = slope_degrees(ds)
            assert not ds.closed
    assert np.abs(_inner(slope) - 12.0).max() < 0.1


# --- nodata and CRS settings ------------------------------------------------------------------


def test_no_slope_is_invented_next_to_nodata(tmp_path):
    z = _plane(20.0)
    z[40:45, 40:45] = NODATA
    slope, _ = slope_degrees(_write(tmp_path / "hole.tif", z))
    assert (slope[39:46, 39:46] == NODATA).all()  # the hole and its 1-cell ring
    ring = np.ones((100, 100), bool)
    ring[39:46, 39:46] = False
    ring[[0, -1], :] = ring[:, [0, -1]] = False
    assert np.abs(slope[ring] - 20.0).max() < 0.1


def test_nan_cells_count_as_nodata(tmp_path):
    z = _plane(20.0, n=30)
    z[10, 10] = np.nan
    slope, _ = slope_degrees(_write(tmp_path / "nan.tif", z))
    assert (slope[9:12, 9:12] == NODATA).all()


def test_dem_without_nodata_needs_a_setting(tmp_path):
    path = _write(tmp_path / "nonodata.tif", _plane(8.0, n=20), nodata=None)
    with pytest.raises(RasterError, match="nodata") as exc:
        slope_degrees(path)
    assert "nodata=<value>" in exc.value.hint  # the API argument
    assert "nodata = <value> under [rasters.dem]" in exc.value.hint  # the plan setting
    slope, _ = slope_degrees(path, assume_no_nodata=True)
    assert np.abs(_inner(slope) - 8.0).max() < 0.1
    z = _plane(8.0, n=20)
    z[5, 5] = -32768
    path = _write(tmp_path / "explicit.tif", z, nodata=None)
    slope, _ = slope_degrees(path, nodata=-32768)
    assert slope[5, 5] == NODATA and slope[4, 4] == NODATA


def test_dem_without_crs_needs_assume_crs(tmp_path):
    path = _write(tmp_path / "nocrs.tif", _plane(8.0, n=20), crs=None)
    with pytest.raises(RasterError, match="no CRS") as exc:
        slope_degrees(path)
    assert "assume_crs=<CRS>" in exc.value.hint  # the API argument
    assert "assume_crs = " in exc.value.hint and "[rasters.dem]" in exc.value.hint
    slope, profile = slope_degrees(path, assume_crs=GK)
    assert profile["crs"].to_epsg() == 4545
    assert np.abs(_inner(slope) - 8.0).max() < 0.1


def test_missing_file_and_bad_band(tmp_path):
    with pytest.raises(RasterError, match="not found"):
        slope_degrees(tmp_path / "missing.tif")
    with pytest.raises(RasterError, match="band"):
        slope_degrees(_write(tmp_path / "p.tif", _plane(8.0, n=10)), band=2)


def test_geographic_dem_needs_an_analysis_crs(tmp_path):
    transform = Affine(0.0001, 0, 107.5, 0, -0.0001, 26.5)
    path = _write(tmp_path / "geo.tif", np.full((20, 20), 900.0), crs="EPSG:4490",
                  transform=transform)
    with pytest.raises(CRSError, match="EPSG:4545"):
        slope_degrees(path)
    with pytest.raises(CRSError, match="metres"):
        slope_degrees(path, crs="EPSG:4490")
    slope, profile = slope_degrees(path, crs=GK)
    assert profile["crs"].to_epsg() == 4545
    assert 9.0 < profile["transform"].a < 11.0  # ~0.0001° of ground, in metres
    assert np.abs(slope[slope != NODATA]).max() < 1e-3


# --- zonal statistics -------------------------------------------------------------------------


@pytest.fixture
def plane20(tmp_path):
    return read_terrain(_write(tmp_path / "plane20.tif", _plane(20.0)))


@pytest.fixture(scope="module")
def plane20_shared(tmp_path_factory):
    return read_terrain(_write(tmp_path_factory.mktemp("dem") / "plane20.tif", _plane(20.0)))


def test_site_stats_on_a_plane(plane20):
    sites = _sites(box(X0 + 100, Y0 - 400, X0 + 300, Y0 - 250),
                   box(X0 + 500, Y0 - 900, X0 + 800, Y0 - 600))
    stats = site_slope_stats(sites, plane20)
    assert list(stats.columns) == [*SITE_COLUMNS, *AROUND_COLUMNS]
    assert stats.index.name == "feature_id"
    assert stats.index.tolist() == ["projects:0", "projects:1"]
    assert np.allclose(stats["slope_mean_deg"], 20.0, atol=0.1)
    assert np.allclose(stats["slope_max_deg"], 20.0, atol=0.1)
    assert np.allclose(stats["share_over_15"], 1.0) and np.allclose(stats["share_over_25"], 0.0)
    assert np.allclose(stats["coverage"], 1.0)
    assert stats.loc["projects:0", "n_pixels"] == pytest.approx(20 * 15)
    assert (stats["flag"] == "ok").all()
    # elevation of the plane at the site centre (the mean of a plane over a rectangle)
    z = 500 + (200 * math.cos(math.radians(30)) - 325 * math.sin(math.radians(30))) \
        * math.tan(math.radians(20))
    assert stats.loc["projects:0", "elev_mean_m"] == pytest.approx(z, abs=0.01)


def test_site_half_outside_the_dem_reports_partial_coverage(plane20):
    # 500 m of the 1000 m wide site lie on the DEM; its last 10 m column is the nodata edge
    sites = _sites(box(X0 + 500, Y0 - 600, X0 + 1500, Y0 - 400))
    stats = site_slope_stats(sites, plane20)
    assert stats["coverage"].iloc[0] == pytest.approx(0.49, abs=1e-6)
    assert stats["flag"].iloc[0] == "partial_coverage"
    assert stats["slope_mean_deg"].iloc[0] == pytest.approx(20.0, abs=0.1)


def test_site_over_a_nodata_hole(tmp_path):
    z = _plane(20.0)
    z[40:60, 40:60] = NODATA
    terrain = read_terrain(_write(tmp_path / "hole.tif", z))
    sites = _sites(box(X0 + 350, Y0 - 650, X0 + 650, Y0 - 350),  # frame around the hole
                   box(X0 + 450, Y0 - 550, X0 + 550, Y0 - 450))  # inside the hole
    stats = site_slope_stats(sites, terrain)
    framed, inside = stats.iloc[0], stats.iloc[1]
    assert framed["coverage"] == pytest.approx(1 - 22 * 22 / 900, abs=1e-6)
    assert framed["flag"] == "partial_coverage"
    assert framed["slope_mean_deg"] == pytest.approx(20.0, abs=0.1)
    assert inside["flag"] == "no_data" and inside["coverage"] == 0
    assert np.isnan(inside["slope_mean_deg"]) and inside["n_pixels"] == 0


def test_tiny_site_is_flagged(plane20):
    sites = _sites(box(X0 + 502, Y0 - 507, X0 + 507, Y0 - 502))  # 5 m x 5 m
    stats = site_slope_stats(sites, plane20)
    assert stats["n_pixels"].iloc[0] == pytest.approx(0.25)
    assert stats["flag"].iloc[0] == "too_few_pixels"
    assert stats["coverage"].iloc[0] == pytest.approx(1.0)
    assert stats["slope_mean_deg"].iloc[0] == pytest.approx(20.0, abs=0.1)


def test_empty_geometry_and_outside_sites_are_no_data(plane20):
    sites = _sites(box(X0 + 100, Y0 - 300, X0 + 200, Y0 - 200), None,
                   box(X0 + 5000, Y0 - 300, X0 + 5100, Y0 - 200))
    stats = site_slope_stats(sites, plane20)
    assert stats["flag"].tolist() == ["ok", "no_data", "no_data"]


def test_vectors_not_overlapping_the_dem_raise(plane20):
    with pytest.raises(RasterError, match="overlaps"):
        site_slope_stats(_sites(box(X0 + 5000, Y0, X0 + 5100, Y0 + 100)), plane20)


def test_vectors_are_reprojected_explicitly(plane20):
    site = _sites(box(X0 + 300, Y0 - 600, X0 + 600, Y0 - 300)).to_crs("EPSG:4490")
    stats = site_slope_stats(site, plane20)
    assert stats["slope_mean_deg"].iloc[0] == pytest.approx(20.0, abs=0.1)
    assert stats["coverage"].iloc[0] == pytest.approx(1.0, abs=1e-3)


def test_bad_vectors_raise(plane20):
    no_crs = _sites(box(X0 + 100, Y0 - 300, X0 + 200, Y0 - 200)).set_crs(None,
                                                                          allow_override=True)
    with pytest.raises(CRSError):
        site_slope_stats(no_crs, plane20)
    with pytest.raises(FieldError, match="id column"):
        site_slope_stats(_sites(box(X0, Y0 - 100, X0 + 100, Y0)), plane20, id_column="xmdm")
    dup = _sites(box(X0, Y0 - 100, X0 + 100, Y0), box(X0, Y0 - 200, X0 + 100, Y0 - 100))
    dup["feature_id"] = "same"
    with pytest.raises(FieldError, match="unique"):
        site_slope_stats(dup, plane20)
    points = gpd.GeoDataFrame({"feature_id": ["p"]}, geometry=gpd.points_from_xy([X0 + 50],
                                                                                  [Y0 - 50]),
                              crs=GK)
    with pytest.raises(GeometryError, match="polygons"):
        site_slope_stats(points, plane20)


def test_dem_path_uses_the_sites_crs_as_analysis_crs(tmp_path):
    # a geographic DEM of a flat area: the sites' GK CRS becomes the analysis CRS
    transform = Affine(0.0001, 0, 107.99, 0, -0.0001, 26.21)
    path = _write(tmp_path / "geo.tif", np.full((100, 100), 900.0), crs="EPSG:4490",
                  transform=transform)
    t = read_terrain(path, crs=GK)
    xmin, ymin, xmax, ymax = t.bounds
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    stats = site_slope_stats(_sites(box(cx - 100, cy - 100, cx + 100, cy + 100)), path)
    assert stats["slope_mean_deg"].iloc[0] == pytest.approx(0.0, abs=1e-3)
    assert stats["elev_mean_m"].iloc[0] == pytest.approx(900.0)


def _hills(n: int) -> np.ndarray:
    x, y = _grid(n)
    z = np.full(x.shape, 1000.0)
    for cx, cy, h, s in [(900, -1100, 450, 500), (2600, -2500, 600, 700),
                         (1500, -3000, -300, 600), (3200, -900, 350, 450)]:
        z += h * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
    return z


def test_geographic_and_gk_versions_of_a_dem_give_the_same_site_stats(tmp_path):
    n = 400  # 4 km x 4 km, 10 m cells
    z = _hills(n)
    gk_path = _write(tmp_path / "gk.tif", z)
    # the same surface expressed in CGCS2000 geographic coordinates (EPSG:4490)
    src_t = Affine(RES, 0, X0, 0, -RES, Y0)
    west, south, east, north = transform_bounds(GK, "EPSG:4490", X0, Y0 - n * RES,
                                                X0 + n * RES, Y0)
    dst_t = Affine(0.0001, 0, west, 0, -0.0001, north)
    w, h = math.ceil((east - west) / 0.0001), math.ceil((north - south) / 0.0001)
    geo = np.full((h, w), NODATA, dtype=np.float32)
    reproject(z.astype(np.float32), geo, src_transform=src_t, src_crs=GK, src_nodata=NODATA,
              dst_transform=dst_t, dst_crs="EPSG:4490", dst_nodata=NODATA,
              resampling=Resampling.bilinear)
    geo_path = _write(tmp_path / "geo.tif", geo, crs="EPSG:4490", transform=dst_t)

    rng = np.random.default_rng(7)
    geoms = []
    for _ in range(25):
        x, y = X0 + rng.uniform(400, 3400), Y0 - rng.uniform(400, 3400)
        geoms.append(box(x, y, x + rng.uniform(80, 300), y + rng.uniform(80, 300)))
    sites = _sites(*geoms)
    a = site_slope_stats(sites, gk_path)
    b = site_slope_stats(sites, geo_path)  # analysis CRS: the sites' GK zone
    assert a["slope_mean_deg"].max() > 10  # the surface is not trivially flat
    assert (a["flag"] == "ok").all() and (b["flag"] == "ok").all()
    assert np.abs(a["slope_mean_deg"] - b["slope_mean_deg"]).max() < 0.5
    assert np.abs(a["slope_max_deg"] - b["slope_max_deg"]).max() < 1.5  # grids differ
    assert np.abs(a["elev_mean_m"] - b["elev_mean_m"]).max() < 1.0
    assert np.abs(a["share_over_15"] - b["share_over_15"]).max() < 0.1


def test_township_stats_add_slope_class_areas(tmp_path):
    x, _y = _grid(100)
    # west half flat (class ≤2°), east half a 30° ramp (class >25°)
    z = np.where(x < 500, 700.0, 700.0 + (x - 500) * math.tan(math.radians(30)))
    terrain = read_terrain(_write(tmp_path / "steps.tif", z))
    towns = gpd.GeoDataFrame({"code": ["520111001", "520111002"]},
                             geometry=[box(X0 + 100, Y0 - 900, X0 + 400, Y0 - 100),
                                       box(X0 + 600, Y0 - 900, X0 + 900, Y0 - 100)], crs=GK)
    stats = township_terrain_stats(towns, terrain)
    assert stats.index.name == "code"
    classes = ["slope_le2_m2", "slope_2_6_m2", "slope_6_15_m2", "slope_15_25_m2",
               "slope_gt25_m2"]
    assert list(stats.columns) == ["area_m2", *SITE_COLUMNS, *classes]
    assert stats["area_m2"].tolist() == pytest.approx([240_000, 240_000])
    west, east = stats.loc["520111001"], stats.loc["520111002"]
    assert west["slope_le2_m2"] == pytest.approx(240_000)
    assert east["slope_gt25_m2"] == pytest.approx(240_000)
    assert east["share_over_25"] == pytest.approx(1.0)
    total = stats[classes].sum(axis=1)
    assert np.allclose(total, stats["coverage"] * stats["area_m2"])


# --- writing ----------------------------------------------------------------------------------


def test_write_slope_makes_a_cog(tmp_path):
    terrain = read_terrain(_write(tmp_path / "plane.tif", _plane(15.0, n=600)))
    out = write_slope(terrain, tmp_path / "slope.tif")
    assert out == tmp_path / "slope.tif"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plane.tif", "slope.tif"]
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 4545 and ds.nodata == NODATA and ds.dtypes[0] == "float32"
        assert ds.block_shapes[0] == (512, 512)
        assert ds.compression.name.lower() == "deflate"
        assert ds.overviews(1) == [2]
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.tags()["units"] == "degree"
        slope = ds.read(1)
    assert np.abs(_inner(slope) - 15.0).max() < 0.1


def test_write_slope_into_missing_folder_fails_cleanly(tmp_path):
    from spatialplan.errors import OutputError

    path = _write(tmp_path / "plane.tif", _plane(15.0, n=10))
    with pytest.raises(OutputError):
        write_slope(path, tmp_path / "nope" / "slope.tif")


# --- real DEM ---------------------------------------------------------------------------------


def test_real_mountain_dem_slope_in_metres():
    path = DATA_DIR / "mountain_dem_90m_epsg4326.tif"
    # Tennessee, ~84.2°W: UTM zone 16N is the metric CRS here (no GK zone applies)
    slope, profile = slope_degrees(path, crs="EPSG:32616", assume_no_nodata=True)
    values = slope[slope != NODATA]
    assert 75 < profile["transform"].a < 90  # ~83 m square cells
    assert 11.0 < np.median(values) < 15.0
    assert 30.0 < values.max() < 42.0


def test_dem_settings_pass_through_the_stats_functions(tmp_path):
    path = _write(tmp_path / "bare.tif", _plane(20.0), crs=None, nodata=None)
    sites = _sites(box(X0 + 300, Y0 - 600, X0 + 600, Y0 - 300))
    with pytest.raises(RasterError):
        site_slope_stats(sites, path)
    stats = site_slope_stats(sites, path, assume_crs=GK, assume_no_nodata=True)
    assert stats["slope_mean_deg"].iloc[0] == pytest.approx(20.0, abs=0.1)
    towns = gpd.GeoDataFrame({"code": ["1"]}, geometry=[box(X0 + 100, Y0 - 900, X0 + 900,
                                                             Y0 - 100)], crs=GK)
    stats = township_terrain_stats(towns, path, crs=GK, assume_crs=GK, nodata=-1.0)
    assert stats["slope_15_25_m2"].iloc[0] == pytest.approx(640_000)


# --- CLI --------------------------------------------------------------------------------------


def _plan(tmp_path: Path, *, dem: bool = True) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    towns = gpd.GeoDataFrame({"XZQDM": ["520111001", "520111002"], "XZQMC": ["青岩镇", "黔陶乡"]},
                             geometry=[box(X0 + 100, Y0 - 900, X0 + 450, Y0 - 100),
                                       box(X0 + 450, Y0 - 900, X0 + 900, Y0 - 100)], crs=GK)
    towns.to_file(data / "townships.gpkg")
    _write(data / "dem.tif", _plane(20.0))
    text = '[plan]\nname = "terrain test"\ncrs = "EPSG:4545"\n\n' \
           '[layers.townships]\npath = "data/townships.gpkg"\n'
    if dem:
        text += '\n[rasters.dem]\npath = "data/dem.tif"\n'
    plan = tmp_path / "plan.toml"
    plan.write_text(text, encoding="utf-8")
    return plan


def test_cli_terrain_writes_slope_and_stats(tmp_path, capsys):
    import pandas as pd

    from spatialplan.cli import main

    plan = _plan(tmp_path)
    out = tmp_path / "out"
    assert main(["terrain", str(plan), "--out", str(out), "-q"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["slope.tif", "terrain_stats.csv"]
    stats = pd.read_csv(out / "terrain_stats.csv", encoding="utf-8-sig", dtype={"code": str})
    assert stats["code"].tolist() == ["520111001", "520111002"]
    assert stats["name"].tolist() == ["青岩镇", "黔陶乡"]
    assert np.allclose(stats["slope_mean_deg"], 20.0, atol=0.1)
    with rasterio.open(out / "slope.tif") as ds:
        assert ds.crs.to_epsg() == 4545 and ds.nodata == NODATA
    printed = capsys.readouterr().out
    assert "terrain_stats.csv" in printed and "median 20.0°" in printed


def test_cli_terrain_without_dem_is_a_usage_error(tmp_path, capsys):
    from spatialplan.cli import main

    plan = _plan(tmp_path, dem=False)
    assert main(["terrain", str(plan), "--out", str(tmp_path / "out")]) == 2
    assert "no DEM" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_no_sites_give_an_empty_frame(plane20):
    stats = site_slope_stats(_sites(), plane20)
    assert stats.empty and list(stats.columns) == [*SITE_COLUMNS, *AROUND_COLUMNS]


@settings(max_examples=20, deadline=None)
@given(x=st.floats(-200, 900), y=st.floats(-900, 200), w=st.floats(1, 600), h=st.floats(1, 600))
def test_invariants_for_any_box(plane20_shared, x, y, w, h):
    site = box(X0 + x, Y0 - y - h, X0 + x + w, Y0 - y)
    towns = gpd.GeoDataFrame({"code": ["t"]}, geometry=[site], crs=GK)
    if not site.intersects(box(*plane20_shared.bounds)):
        return
    row = township_terrain_stats(towns, plane20_shared).iloc[0]
    assert 0.0 <= row["coverage"] <= 1.0
    classes = row[[c for c in row.index if c.startswith("slope_") and c.endswith("_m2")]]
    assert classes.sum() == pytest.approx(row["coverage"] * row["area_m2"], rel=1e-7, abs=1e-6)
    assert row["n_pixels"] * 100.0 == pytest.approx(row["coverage"] * row["area_m2"], rel=1e-7)
    if row["flag"] != "no_data":
        assert row["slope_mean_deg"] == pytest.approx(20.0, abs=0.1)
        assert row["share_over_15"] == pytest.approx(1.0)
    else:
        assert row["n_pixels"] == 0


def test_slope_class_bounds_follow_the_survey_convention():
    from pyproj import CRS

    from spatialplan.analysis.terrain import Terrain

    slope = np.array([[NODATA, 0.0, 2.0, 2.01, 6.0, 6.5, 15.0, 15.5, 25.0, 25.5, 60.0]],
                     dtype=np.float32)
    t = Terrain(elevation=np.zeros_like(slope), slope=slope, transform=Affine(10, 0, X0, 0, -10,
                                                                                Y0),
                crs=CRS.from_user_input(GK), source="test", reprojected=False)
    assert t.slope_class.tolist() == [[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]]


# --- small sites: the cells around them (issue 17, item 8) ---------------------------------


def _flat_then_steep(tmp_path: Path) -> Path:
    """A 30 m DEM: flat west of x = X0 + 600 m, a 60° slope east of it."""
    cols = np.arange(40)
    x = (cols + 0.5) * 30.0
    z = 500.0 + np.maximum(x - 600.0, 0.0) * math.tan(math.radians(60.0))
    return _write(tmp_path / "flat_steep.tif", np.tile(z, (40, 1)),
                  transform=Affine(30.0, 0, X0, 0, -30.0, Y0))


def _register(sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    n = len(sites)
    return sites.assign(project_id=[f"P{i}" for i in range(n)], name="公厕",
                        facility="toilet", township_code=None, status="planned",
                        mapped_on=pd.Timestamp("2023-01-01"), start_year=2025, end_year=2026)


def test_small_sites_are_judged_by_the_cells_around_them(tmp_path):
    from spatialplan.rules.siting import check_projects

    terrain = read_terrain(_flat_then_steep(tmp_path))
    flat = box(X0 + 150, Y0 - 600, X0 + 170, Y0 - 570)  # 600 m², far from the slope
    near = box(X0 + 545, Y0 - 600, X0 + 565, Y0 - 570)  # 600 m² on flat cells beside it
    big = box(X0 + 90, Y0 - 900, X0 + 270, Y0 - 720)  # 36 cells: no need to look around
    stats = site_slope_stats(_sites(flat, near, big), terrain)
    assert (stats["flag"].iloc[:2] == "too_few_pixels").all()
    assert stats["slope_max_deg"].iloc[1] < 1.0  # the site itself is flat ...
    assert stats["around_slope_max_deg"].iloc[1] > 15.0  # ... the cells around it are not
    assert stats["around_slope_max_deg"].iloc[0] < 1.0
    assert stats["around_m"].iloc[0] == 30.0
    assert stats[list(AROUND_COLUMNS)].iloc[2].isna().all()
    _projects, findings = check_projects(_register(_sites(flat, near, big)), slope=stats,
                                        as_of="2024-06-30")
    slope = findings[findings["rule"] == "slope"].set_index("project_id")
    assert slope["status"].to_dict() == {"P0": "pass", "P1": "review", "P2": "pass"}
    assert "周边一个像元（30 m）" in slope.loc["P0", "message"]
    assert "near or over the limit" in slope.loc["P1", "message"]


def test_a_dem_far_coarser_than_the_sites_is_named_in_a_warning(tmp_path, caplog):
    coarse = _write(tmp_path / "coarse.tif", np.full((10, 10), 800.0),
                    transform=Affine(21_000.0, 0, X0, 0, -21_000.0, Y0))
    sites = _sites(box(X0 + 50_000, Y0 - 50_000, X0 + 50_020, Y0 - 49_970))
    with caplog.at_level("WARNING", logger="spatialplan.analysis.terrain"):
        site_slope_stats(sites, read_terrain(coarse))
    assert any("21,000 m" in r.getMessage() and "far coarser" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    fine = read_terrain(_write(tmp_path / "fine.tif", _plane(5.0)))  # 10 m cells
    with caplog.at_level("WARNING", logger="spatialplan.analysis.terrain"):
        site_slope_stats(_sites(box(X0 + 200, Y0 - 230, X0 + 220, Y0 - 200)), fine)
    assert not [r for r in caplog.records if "far coarser" in r.getMessage()]
