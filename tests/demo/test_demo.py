"""The demo township generator: determinism, committed copy, formats and planted cases."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely

from spatialplan.core._resources import demo_dir
from spatialplan.demo.synthetic import DEFAULT_SEED, build_demo

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

COMMITTED = demo_dir()
GPKG_LAYERS = ["XZQ", "STBHHX", "YJJBNT", "CZKFBJ", "DLTB", "KZXXGH_DK", "XS_XMKJFW", "JG_FW",
               "CJ", "DL"]
RULES = ["township", "redline", "farmland", "cropland", "udb", "landuse", "slope", "setback",
         "project_overlap", "map_first", "as_built", "schedule"]
EIGHT = {"road", "health_center", "school", "market", "elder_care", "park", "sewage", "refuse"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """One fresh build of the demo with the default seed."""
    plan = build_demo(tmp_path_factory.mktemp("demo_fresh"), seed=DEFAULT_SEED)
    return plan.parent


# ---------------------------------------------------------------------------------------------
# comparing two demo folders by content


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and p.name != "__pycache__")


def _read_layer(path: Path, layer: str | None = None, **kwargs) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(path, layer=layer, **kwargs)


def _assert_same_frames(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame, what: str) -> None:
    assert a.crs == b.crs, what
    pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                  pd.DataFrame(b.drop(columns="geometry")), obj=what)
    wkb_a = shapely.to_wkb(a.geometry.values, output_dimension=2)
    wkb_b = shapely.to_wkb(b.geometry.values, output_dimension=2)
    assert list(wkb_a) == list(wkb_b), f"{what}: geometries differ"


def _assert_same_demo(a: Path, b: Path) -> None:
    assert _files(a) == _files(b)
    assert [n for n, _ in pyogrio.list_layers(a / "planning.gpkg")] == GPKG_LAYERS
    assert [n for n, _ in pyogrio.list_layers(b / "planning.gpkg")] == GPKG_LAYERS
    for layer in GPKG_LAYERS:
        _assert_same_frames(_read_layer(a / "planning.gpkg", layer),
                            _read_layer(b / "planning.gpkg", layer), layer)
    shp = Path("xzq") / "XZQ.shp"
    _assert_same_frames(_read_layer(a / shp, encoding="GBK"), _read_layer(b / shp, encoding="GBK"),
                        "XZQ.shp")
    for suffix in (".shp", ".shx", ".prj"):
        assert (a / shp).with_suffix(suffix).read_bytes() == (b / shp).with_suffix(suffix) \
            .read_bytes()
    dbf_a, dbf_b = (a / shp).with_suffix(".dbf").read_bytes(), (b / shp).with_suffix(".dbf") \
        .read_bytes()
    assert dbf_a[0] == dbf_b[0] and dbf_a[4:] == dbf_b[4:]  # bytes 1-3: date of last update
    with rasterio.open(a / "dem.tif") as ra, rasterio.open(b / "dem.tif") as rb:
        assert ra.profile == rb.profile
        assert ra.tags() == rb.tags()
        np.testing.assert_array_equal(ra.read(1), rb.read(1))
    for name in ("plan.toml", "README.md", "expected.csv", "sites/XM0107.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_committed_demo_equals_a_fresh_build(fresh):
    """The committed ``layers/demo`` never drifts from the generator."""
    _assert_same_demo(fresh, COMMITTED)


@pytest.mark.slow
def test_same_seed_same_contents(fresh, tmp_path):
    again = build_demo(tmp_path / "again").parent
    _assert_same_demo(fresh, again)


@pytest.mark.slow
def test_other_seed_builds_and_differs(tmp_path):
    other = build_demo(tmp_path / "other", seed=7).parent
    with rasterio.open(other / "dem.tif") as ra, rasterio.open(COMMITTED / "dem.tif") as rb:
        assert ra.shape == rb.shape
        assert not np.array_equal(ra.read(1), rb.read(1))
    assert (other / "expected.csv").read_bytes() == (COMMITTED / "expected.csv").read_bytes()


# ---------------------------------------------------------------------------------------------
# the committed demo


def test_size_and_files():
    total = sum((COMMITTED / f).stat().st_size for f in _files(COMMITTED))
    assert total < 10 * 1024 * 1024
    assert not list(COMMITTED.rglob("*.cpg"))
    assert "SYNTHETIC" in (COMMITTED / "README.md").read_text(encoding="utf-8")


def test_plan_file_shape():
    spec = tomllib.loads((COMMITTED / "plan.toml").read_text(encoding="utf-8"))
    assert set(spec) == {"plan", "layers", "rasters"}
    assert spec["plan"]["crs"] == "auto"
    assert spec["plan"]["as_of"] == "2026-11-26"
    assert set(spec["layers"]) == {"townships", "redline", "farmland", "udb", "cropland",
                                   "parcels", "projects", "built", "villages", "roads"}
    assert "encoding" not in spec["layers"]["townships"]
    for entry in [*spec["layers"].values(), *spec["rasters"].values()]:
        assert not Path(entry["path"]).is_absolute()
        assert (COMMITTED / entry["path"]).exists()
    assert spec["layers"]["projects"]["fields"]["status"] == "JSZT"


def test_plan_is_readable_by_the_plan_parser():
    plan = pytest.importorskip("spatialplan.io.plan")
    if not hasattr(plan, "read_plan_spec"):
        pytest.skip("spatialplan.io.plan.read_plan_spec not available")
    plan.read_plan_spec(COMMITTED / "plan.toml")


def test_townships_form_a_coverage_with_an_exclave():
    xzq = _read_layer(COMMITTED / "planning.gpkg", "XZQ").to_crs("EPSG:4545")
    assert len(xzq) == 4
    assert xzq["XZQDM"].str.fullmatch(r"520\d{6}").all()
    assert xzq["XZQMC"].str.contains("虚构").all()
    assert xzq.is_valid.all()
    area_km2 = xzq.area / 1e6
    assert area_km2.between(30, 60).all()
    assert abs(shapely.union_all(xzq.geometry.values).area - xzq.area.sum()) < 1.0
    assert sum(len(p.interiors) for g in xzq.geometry for p in shapely.get_parts(g)) == 1
    assert shapely.coverage_is_valid(xzq.geometry.values)


def test_gbk_shapefile_without_cpg():
    shp = COMMITTED / "xzq" / "XZQ.shp"
    assert not shp.with_suffix(".cpg").exists()
    raw = shp.with_suffix(".dbf").read_bytes()
    assert raw[29] == 0  # no language driver id
    assert "示范镇（虚构）".encode("gbk") in raw
    with pytest.raises(UnicodeDecodeError):
        raw[raw.index("示范镇".encode("gbk")):][:14].decode("utf-8")
    names = _read_layer(shp, encoding="GBK")["XZQMC"].tolist()
    assert names == _read_layer(COMMITTED / "planning.gpkg", "XZQ")["XZQMC"].tolist()


def test_bubiao_txt_matches_its_project():
    raw = (COMMITTED / "sites" / "XM0107.txt").read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    text = raw.decode("gbk")
    assert "带号=36" in text and "[地块坐标]" in text
    coords = []
    for line in text.split("\r\n"):
        if line.startswith("J"):
            _, ring, north, east = line.split(",")
            assert ring == "1"
            assert 36e6 < float(east) < 37e6
            coords.append((float(east) - 36e6, float(north)))
    site = shapely.Polygon(coords)
    projects = _read_layer(COMMITTED / "planning.gpkg", "XS_XMKJFW")
    assert projects.crs == "EPSG:4545"
    planned = projects.geometry[projects["XMDM"] == "XM0107"].iloc[0]
    assert planned.equals(site)
    assert f"{site.area / 10000:.4f}" in text


def test_dem_profile():
    with rasterio.open(COMMITTED / "dem.tif") as src:
        assert src.dtypes[0] == "float32"
        assert src.nodata == -9999.0
        assert src.crs.to_epsg() == 4545
        assert src.res == (30.0, 30.0)
        assert src.profile["tiled"] and src.compression.name.lower() == "deflate"
        data = src.read(1, masked=True)
        assert 0 < data.mask.sum() < 0.01 * data.size
        bounds = src.bounds
    xzq = _read_layer(COMMITTED / "planning.gpkg", "XZQ").to_crs("EPSG:4545")
    minx, miny, maxx, maxy = xzq.total_bounds
    assert bounds.left < minx - 500 and bounds.right > maxx + 500
    assert bounds.bottom < miny - 500 and bounds.top > maxy + 500


def test_control_lines_and_planted_qa_cases():
    gpkg = COMMITTED / "planning.gpkg"
    red, farm, udb = (shapely.union_all(_read_layer(gpkg, n).to_crs("EPSG:4545").geometry.values)
                      for n in ("STBHHX", "YJJBNT", "CZKFBJ"))
    assert red.intersection(farm).area == 0
    assert red.intersection(udb).area == 0
    overlap = [g.area for g in shapely.get_parts(farm.intersection(udb)) if g.area > 0]
    assert len(overlap) == 2
    assert 470 < max(overlap) < 490  # the conflict
    assert 0 < min(overlap) < 1  # the boundary-noise sliver
    farmland = _read_layer(gpkg, "YJJBNT")
    assert 200 <= len(farmland) <= 600
    assert set(_read_layer(gpkg, "CZKFBJ")["GHFQDM"]) == {"21", "22", "23"}
    assert set(_read_layer(gpkg, "DLTB")["DLBM"]) == {"0101", "0102", "0103"}


def test_register_covers_the_eight_and_the_x():
    catalog = pytest.importorskip("spatialplan.rules.catalog")
    cat = catalog.read_catalog()
    projects = _read_layer(COMMITTED / "planning.gpkg", "XS_XMKJFW")
    assert 30 <= len(projects) <= 60
    assert projects["XMDM"].is_unique
    codes = {catalog.resolve_facility(v, cat) for v in projects["XMLB"]}
    assert codes >= EIGHT
    assert len(codes - EIGHT) >= 4
    assert projects["XMLB"].isin(sorted(codes)).any()  # some given as codes ...
    assert projects["XMLB"].str.contains(r"[\u4e00-\u9fff]").any()  # ... some in Chinese
    assert set(projects["JSZT"]) == {"planned", "under_construction", "completed"}
    dates = pd.concat([projects[c] for c in ("LTRQ", "XKRQ", "KGRQ", "JGRQ")]).dropna()
    assert dates.str.fullmatch(r"\d{4}/\d{1,2}/\d{1,2}").any()
    assert dates.str.fullmatch(r"\d{8}").any()
    built = _read_layer(COMMITTED / "planning.gpkg", "JG_FW")
    assert (~built["XMDM"].isin(projects["XMDM"])).sum() == 1


def test_parcel_codes_are_in_the_code_table():
    catalog = pytest.importorskip("spatialplan.rules.catalog")
    known = set(catalog.read_landuse_codes().index)
    parcels = _read_layer(COMMITTED / "planning.gpkg", "KZXXGH_DK")
    assert set(parcels["YDYHDM"]) <= known


def test_expected_cases_fire_and_pass_for_every_rule():
    with open(COMMITTED / "expected.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"project_id", "rule", "status", "note"}
    projects = set(_read_layer(COMMITTED / "planning.gpkg", "XS_XMKJFW")["XMDM"])
    built = set(_read_layer(COMMITTED / "planning.gpkg", "JG_FW")["XMDM"])
    keys = [(r["project_id"], r["rule"]) for r in rows]
    assert len(keys) == len(set(keys))
    for rule in RULES:
        statuses = {r["status"] for r in rows if r["rule"] == rule}
        assert "pass" in statuses, rule
        assert statuses & {"review", "fail"}, rule
    for r in rows:
        assert r["project_id"] in projects | built
        assert r["rule"] in RULES
        assert r["status"] in {"pass", "review", "fail"}


def test_register_construction_types_read_as_official_terms(caplog):
    """JSXZ (建设性质) is read as construction_type: variants normalised, none unrecognised."""
    from spatialplan.io._fields import CONSTRUCTION_TYPES
    from spatialplan.io.read import read_plan

    raw = _read_layer(COMMITTED / "planning.gpkg", "XS_XMKJFW").set_index("XMDM")["JSXZ"]
    assert {"改、扩建", "续建项目"} <= set(raw)  # spelled as registers spell them
    plan = read_plan(COMMITTED / "plan.toml")
    data = plan.layers["projects"].data.set_index("project_id")
    kinds = data["construction_type"]
    assert set(kinds) <= set(CONSTRUCTION_TYPES)
    assert {"新建", "扩建", "改建", "改扩建", "续建", "迁建"} <= set(kinds)
    assert kinds["XM0101"] == "改扩建" and kinds["XM0310"] == "续建"
    assert kinds["XM0201"] == "迁建" and data.loc["XM0201", "status"] == "planned"
    assert "construction_type" not in caplog.text  # no unrecognised value warned about
