"""The dask engine gives the same results as the local engine (spatialplan.pipeline.engine)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from conftest import assert_same_results

import spatialplan as sp
from spatialplan.core._resources import demo_dir
from spatialplan.pipeline.engine import DEFERRED_ROLES, partition_townships, run_check_dask

distributed = pytest.importorskip("distributed")

CRS = "EPSG:4545"
X0, Y0 = 450_000.0, 3_070_000.0  # ≈ 107.5°E 27.7°N in CGCS2000 GK zone 36
KM = 1000.0


@pytest.fixture(scope="module")
def client(dask_client):
    """The module's in-process cluster (``dask_client`` of conftest)."""
    return dask_client


# --------------------------------------------------------------------------- generated case


def _townships() -> gpd.GeoDataFrame:
    """Six 4 km x 4 km townships in a 3 x 2 grid, with a 1 km gap east of the last one."""
    geoms, codes = [], []
    for k in range(6):
        col, row = k % 3, k // 3
        geoms.append(shapely.box(X0 + col * 4 * KM, Y0 + row * 4 * KM,
                                 X0 + (col + 1) * 4 * KM, Y0 + (row + 1) * 4 * KM))
        codes.append(f"52012300{k + 1}")
    return gpd.GeoDataFrame({"XZQDM": codes, "XZQMC": [f"镇{k}" for k in range(6)]},
                            geometry=geoms, crs=CRS)


def _lines() -> dict[str, gpd.GeoDataFrame]:
    """Control lines crossing township borders, overlapping each other and themselves."""
    farm = [shapely.box(X0 + i * 700, Y0 + 3 * KM, X0 + (i + 1) * 700, Y0 + 5 * KM)
            for i in range(18)]  # a band across every column border and the row border
    farm.append(shapely.box(X0 + 12.2 * KM, Y0 + 1 * KM, X0 + 12.8 * KM, Y0 + 2 * KM))  # outside
    red = [shapely.Point(X0 + 4 * KM, Y0 + 4 * KM).buffer(900),        # on a 4-corner point
           shapely.Point(X0 + 4.5 * KM, Y0 + 4.2 * KM).buffer(600),    # overlaps the first
           shapely.Point(X0 + 12 * KM, Y0 + 6 * KM).buffer(700)]       # half outside
    udb = [shapely.box(X0 + 7 * KM, Y0 + 3.5 * KM, X0 + 9 * KM, Y0 + 4.5 * KM),
           shapely.box(X0 + 1 * KM, Y0 + 1 * KM, X0 + 3 * KM, Y0 + 2 * KM),
           shapely.box(X0 + 11.9 * KM, Y0 + 1.6 * KM, X0 + 12.9 * KM, Y0 + 1.9 * KM)]
    parcels = [shapely.box(X0 + 7.9 * KM, Y0 + 3.6 * KM, X0 + 8.1 * KM, Y0 + 3.9 * KM),
               shapely.box(X0 + 1.5 * KM, Y0 + 1.2 * KM, X0 + 1.8 * KM, Y0 + 1.5 * KM)]
    return {
        "farmland": gpd.GeoDataFrame({"BSM": np.arange(len(farm))}, geometry=farm, crs=CRS),
        # the red line in CGCS2000 lon/lat: partition boxes are transformed to read it
        "redline": gpd.GeoDataFrame({"BSM": np.arange(3)}, geometry=red,
                                    crs=CRS).to_crs("EPSG:4490"),
        "udb": gpd.GeoDataFrame({"GHFQDM": ["010", "010", "020"]}, geometry=udb, crs=CRS),
        "parcels": gpd.GeoDataFrame({"YDYHDM": ["080403", "1302"]}, geometry=parcels, crs=CRS),
    }


def _projects() -> gpd.GeoDataFrame:
    """Sites on both sides of borders: a setback pair, an overlap pair, a missing geometry."""
    site = shapely.box
    rows = [
        ("P1", "小学", "520123002", "school", site(X0 + 7.92 * KM, Y0 + 3.62 * KM,
                                                   X0 + 7.98 * KM, Y0 + 3.7 * KM)),
        ("P2", "污水站", "520123003", "sewage", site(X0 + 8.03 * KM, Y0 + 3.62 * KM,
                                                     X0 + 8.08 * KM, Y0 + 3.7 * KM)),
        ("P3", "卫生院", "520123005", "health_center", site(X0 + 3.9 * KM, Y0 + 3.9 * KM,
                                                         X0 + 4.1 * KM, Y0 + 4.1 * KM)),
        ("P4", "农贸市场", "520123002", "market", site(X0 + 3.95 * KM, Y0 + 1 * KM,
                                                     X0 + 4.2 * KM, Y0 + 1.2 * KM)),
        ("P5", "停车场", "520123001", "parking", site(X0 + 4.1 * KM, Y0 + 1.1 * KM,
                                                    X0 + 4.3 * KM, Y0 + 1.3 * KM)),
        ("P6", "垃圾转运站", "520123001", "refuse", site(X0 + 1.55 * KM, Y0 + 1.25 * KM,
                                                      X0 + 1.6 * KM, Y0 + 1.3 * KM)),
        ("P7", "养老院", "520123001", "elder_care", site(X0 + 1.62 * KM, Y0 + 1.25 * KM,
                                                       X0 + 1.7 * KM, Y0 + 1.35 * KM)),
        ("P8", "公厕", "520123006", "toilet", None),
        ("P9", "文化站", "520123004", "culture", site(X0 + 12.3 * KM, Y0 + 1.3 * KM,
                                                    X0 + 12.5 * KM, Y0 + 1.5 * KM)),
    ]
    frame = gpd.GeoDataFrame(
        {"XMDM": [r[0] for r in rows], "XMMC": [r[1] for r in rows],
         "XZQDM": [r[2] for r in rows], "XMLB": [r[3] for r in rows],
         "JSZT": ["planned"] * len(rows), "LTRQ": ["2024-03-01"] * len(rows),
         "ZTZ": [100.0 * (k + 1) for k in range(len(rows))],
         "KSNF": [2025] * len(rows), "JSNF": [2026] * len(rows)},
        geometry=[r[4] for r in rows], crs=CRS)
    return frame


@pytest.fixture(scope="module")
def generated_plan(tmp_path_factory) -> Path:
    """The generated case written as GeoPackages with a plan.toml."""
    folder = tmp_path_factory.mktemp("engine_case")
    pyogrio.write_dataframe(_townships(), folder / "xzq.gpkg", layer="XZQ")
    for role, gdf in _lines().items():
        pyogrio.write_dataframe(gdf, folder / f"{role}.gpkg", layer=role.upper())
    pyogrio.write_dataframe(_projects(), folder / "projects.gpkg", layer="XS_XMKJFW")
    text = ['[plan]', 'name = "engine test"', 'crs = "EPSG:4545"', 'as_of = "2025-06-30"', '',
            '[layers.townships]', 'path = "xzq.gpkg"', '']
    for role in ("farmland", "redline", "udb", "parcels"):
        text += [f"[layers.{role}]", f'path = "{role}.gpkg"', ""]
    text += ["[layers.projects]", 'path = "projects.gpkg"',
             'fields = { status = "JSZT", mapped_on = "LTRQ", start_year = "KSNF", '
             'end_year = "JSNF" }', ""]
    (folder / "plan.toml").write_text("\n".join(text), encoding="utf-8")
    return folder / "plan.toml"


def test_generated_case_identical(generated_plan, client):
    plan = sp.read_plan(generated_plan)
    local = sp.run_check(plan)
    dask = run_check_dask(plan, scheduler=client, partition_size=1)
    assert_same_results(local, dask)
    # the case does what it is meant to: conflicts across borders, a setback pair split
    # between partitions, a site overlap, a project without geometry and area outside
    assert local.line_conflicts["township_code"].isna().any()
    assert local.line_conflicts["township_code"].nunique() >= 3
    findings = local.findings.set_index(["project_id", "rule"])["status"]
    assert findings[("P1", "setback")] == "fail" and findings[("P2", "setback")] == "fail"
    assert findings[("P4", "project_overlap")] == "review"
    assert local.projects.set_index("project_id").loc["P8", "verdict"] == "error"
    assert local.outside_townships.set_index("line").loc["farmland", "outside_m2"] > 0
    # both engines write the ellipsoidal line areas and base the shares on them
    for result in (local, dask):
        stats = result.township_stats
        for role in ("redline", "farmland", "udb"):
            assert stats[f"{role}_ellipsoidal_mu"].notna().all(), role
            assert stats[f"{role}_share"].to_numpy() == pytest.approx(
                (stats[f"{role}_ellipsoidal_m2"] / stats["area_ellipsoidal_m2"]).to_numpy())


def test_generated_case_partition_sizes(generated_plan, client):
    plan = sp.read_plan(generated_plan)
    local = sp.run_check(plan)
    for size in (2, 4):
        assert_same_results(local, run_check_dask(plan, scheduler=client, partition_size=size))


# --------------------------------------------------------------------------- demo


def test_demo_identical(client):
    plan = sp.read_plan(demo_dir() / "plan.toml")
    dask = run_check_dask(plan, scheduler=client, partition_size=1)
    assert_same_results(sp.run_check(plan), dask)


def test_demo_identical_with_the_lines_deferred(client):
    # the driver only opens the lines: the town seats still come from the development
    # boundary (read whole for them), so the village tables equal the local ones
    local = sp.run_check(sp.read_plan(demo_dir() / "plan.toml"))
    plan = sp.read_plan(demo_dir() / "plan.toml", defer=DEFERRED_ROLES)
    dask = run_check_dask(plan, scheduler=client, partition_size=1)
    assert_same_results(local, dask)
    assert dask.village_seat["connected"].any() and dask.village_seat["seat_m"].notna().any()


@pytest.mark.slow
def test_demo_identical_processes():
    """The default path: run_check(engine="dask") on a LocalCluster of worker processes."""
    plan = sp.read_plan(demo_dir() / "plan.toml")
    assert_same_results(sp.run_check(plan), sp.run_check(plan, engine="dask", n_workers=2))


# --------------------------------------------------------------------------- pieces


def test_partition_tiles_cover_the_plane():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (200, 2))
    tiles, owner = partition_townships(pts, partition_size=16)
    assert np.bincount(owner).max() <= 16
    probe = rng.uniform(-50, 150, (2000, 2))
    inside = np.array([[t[0] <= x < t[2] and t[1] <= y < t[3] for t in tiles]
                       for x, y in probe])
    assert (inside.sum(axis=1) == 1).all()
    for k, (x, y) in enumerate(pts):
        t = tiles[owner[k]]
        assert t[0] <= x < t[2] and t[1] <= y < t[3]


def test_unknown_engine_is_refused():
    plan = sp.read_plan(demo_dir() / "plan.toml")
    with pytest.raises(ValueError, match="unknown engine"):
        sp.run_check(plan, engine="spark")


def test_dem_missing_every_site_raises_in_both_engines(tmp_path, client):
    """A DEM that no site overlaps is an error for the dask engine too, with the same text."""
    import dataclasses

    import rasterio
    from affine import Affine

    plan = sp.read_plan(demo_dir() / "plan.toml")
    _xmin, _ymin, xmax, ymax = plan.layers["townships"].data.total_bounds
    far = tmp_path / "far_dem.tif"  # 2 km x 2 km, 50 km east of every township
    with rasterio.open(far, "w", driver="GTiff", width=100, height=100, count=1,
                       dtype="float32", crs=plan.crs, nodata=-9999.0,
                       transform=Affine(20.0, 0.0, xmax + 50_000, 0.0, -20.0, ymax)) as ds:
        ds.write(np.linspace(800, 900, 100 * 100, dtype="float32").reshape(1, 100, 100))
    plan.rasters["dem"] = dataclasses.replace(plan.rasters["dem"], path=far)
    with pytest.raises(sp.errors.RasterError, match="overlaps the DEM") as local:
        sp.run_check(plan)
    with pytest.raises(sp.errors.RasterError, match="overlaps the DEM") as dask:
        run_check_dask(plan, scheduler=client, partition_size=2)
    assert str(dask.value) == str(local.value)


def test_partitions_do_not_recheck_geopackages(generated_plan, client, monkeypatch):
    """The driver integrity-checks each GeoPackage once; partitions read without re-checking."""
    from spatialplan.io import read

    plan = sp.read_plan(generated_plan)
    calls = []
    real = read._check_sqlite
    monkeypatch.setattr(read, "_check_sqlite",
                        lambda path, **kw: (calls.append(path.name), real(path, **kw))[1])
    result = run_check_dask(plan, scheduler=client, partition_size=2)
    assert len(result.projects) == plan.layers["projects"].n_in  # rejected ones too
    from spatialplan.pipeline._dask import _EXTENT_ROLES

    read_files = {Path(plan.layers[r].source.path).name for r in _EXTENT_ROLES
                  if r in plan.layers}
    assert len(read_files) >= 3
    assert sorted(calls) == sorted(read_files)  # once each, by the driver


def test_partitions_never_prepare_the_shared_townships(generated_plan, client):
    """Partitions running as threads of one process get their own township geometries.

    GEOS prepared geometries are not thread-safe (libgeos/geos#825): two partitions preparing
    and querying the same shared township objects at once could crash the process.
    """
    plan = sp.read_plan(generated_plan)
    towns = np.asarray(plan.layers["townships"].data.geometry.array, dtype=object)
    assert not shapely.is_prepared(towns).any()
    run_check_dask(plan, scheduler=client, partition_size=2)
    assert not shapely.is_prepared(towns).any()


def test_dask_workers_use_the_plans_catalogue(generated_plan, client, tmp_path):
    """A user catalogue (``read_plan(catalog=)``) reaches the workers: same results as local."""
    import pandas as pd

    from spatialplan.rules.catalog import read_catalog

    df = pd.read_csv(read_catalog().path, dtype=str, keep_default_na=False)
    df["outside_udb"] = df["outside_udb"].map({"allowed": "review", "review": "allowed"})
    df.to_csv(tmp_path / "flipped.csv", index=False, encoding="utf-8")
    default = sp.read_plan(generated_plan)
    plan = sp.read_plan(generated_plan, catalog=tmp_path / "flipped.csv")
    local = sp.run_check(plan)
    dask = run_check_dask(plan, scheduler=client, partition_size=1)
    assert_same_results(local, dask)

    def udb(result):
        f = result.findings
        return f[f["rule"] == "udb"].set_index("project_id")["status"]

    changed = udb(dask) != udb(sp.run_check(default))
    assert changed.any()  # the flipped policy shows in the workers' findings


# --------------------------------------------------------------------------- the driver's memory


def test_driver_never_reads_the_extent_roles(generated_plan, client, whole_reads):
    local = sp.run_check(sp.read_plan(generated_plan))
    whole = whole_reads
    whole.clear()  # the reads of the local run above
    plan = sp.read_plan(generated_plan, defer=DEFERRED_ROLES)
    assert_same_results(local, run_check_dask(plan, scheduler=client, partition_size=2))
    assert "townships" in whole and "projects" in whole
    assert not set(whole) & set(DEFERRED_ROLES), whole  # partitions read them by extent only
    for role, gdf in _lines().items():
        layer = plan.layers[role]
        assert layer.deferred and len(layer.data) == 0 and layer.data.crs == plan.crs
        assert layer.n_in == len(gdf)
        box, data = layer.extent, gdf.to_crs(plan.crs).total_bounds
        assert box[0] <= data[0] and box[1] <= data[1] and box[2] >= data[2] and box[3] >= data[3]


def test_cli_dask_check_marks_what_the_driver_did_not_read(generated_plan, client, monkeypatch,
                                                           tmp_path, whole_reads):
    import json

    from spatialplan.cli import main
    from spatialplan.pipeline import engine

    real = engine.run_check_dask
    monkeypatch.setattr(engine, "run_check_dask",
                        lambda plan, **kw: real(plan, scheduler=client, partition_size=2,
                                                on_worker=kw["on_worker"]))
    whole = whole_reads
    assert main(["check", str(generated_plan), "--out", str(tmp_path / "out"), "--engine",
                 "dask", "--no-map", "--no-layout", "-q"]) in (0, 1)
    assert not set(whole) & set(DEFERRED_ROLES), whole
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    local = sp.run_check(sp.read_plan(generated_plan))
    assert manifest["counts"]["verdicts"] == local.verdict_counts()
    assert sorted(manifest["deferred_layers"]["roles"]) == sorted(_lines())
    layers = {row["role"]: row for row in manifest["layers"]}
    full = sp.read_plan(generated_plan)
    for role, gdf in _lines().items():  # counted from the partitions' reports
        assert layers[role]["n_in"] == len(gdf)
        for column in ("n_ok", "n_repaired", "n_rejected", "n_zm_dropped"):
            assert layers[role][column] == getattr(full.layers[role], column, None) or (
                layers[role][column] == getattr(full.layers[role].source, column))
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "layers not read by the driver" in report
    # the map draws the deferred layers (read whole for it), as a local run's map does
    assert main(["check", str(generated_plan), "--out", str(tmp_path / "map"), "--engine",
                 "dask", "--no-layout", "-q"]) in (0, 1)
    assert set(whole) & set(DEFERRED_ROLES) == set(_lines())
    page = (tmp_path / "map" / "map.html").read_text(encoding="utf-8")
    for name in ("永久基本农田", "生态保护红线", "城镇开发边界"):
        assert name in page, name


# --------------------------------------------------------------------------- feature accounting


def _awkward_farmland() -> gpd.GeoDataFrame:
    """Farmland whose features a read repairs or rejects, some across partition borders."""
    bowtie = shapely.Polygon([(X0 + 3.5 * KM, Y0 + 1 * KM), (X0 + 4.5 * KM, Y0 + 2 * KM),
                              (X0 + 4.5 * KM, Y0 + 1 * KM), (X0 + 3.5 * KM, Y0 + 2 * KM)])
    with_z = shapely.Polygon([(X0 + 7.5 * KM, Y0 + 5 * KM, 1), (X0 + 8.5 * KM, Y0 + 5 * KM, 1),
                              (X0 + 8.5 * KM, Y0 + 6 * KM, 2), (X0 + 7.5 * KM, Y0 + 6 * KM, 2)])
    geoms = [shapely.box(X0 + 0.5 * KM, Y0 + 0.5 * KM, X0 + 1 * KM, Y0 + 1 * KM),
             None,                                                   # no geometry: read by none
             bowtie,                                                 # repaired, on a border
             shapely.LineString([(X0 + 5 * KM, Y0 + 5 * KM), (X0 + 9 * KM, Y0 + 6 * KM)]),
             with_z,                                                 # Z dropped, on a border
             shapely.Polygon(),                                      # empty
             shapely.box(X0 + 10 * KM, Y0 + 6 * KM, X0 + 11 * KM, Y0 + 7 * KM)]
    return gpd.GeoDataFrame({"BSM": np.arange(len(geoms)), "NOTE": list("abcdefg")},
                            geometry=geoms, crs=CRS)


def test_dask_accounts_every_feature_of_a_deferred_layer(generated_plan, client, tmp_path):
    from spatialplan.io.read import feature_issues, validation_report

    folder = tmp_path / "plan"
    folder.mkdir()
    for path in generated_plan.parent.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    pyogrio.write_dataframe(_awkward_farmland(), folder / "farmland.gpkg", layer="FARMLAND")
    full = sp.read_plan(folder / "plan.toml")
    assert full.layers["farmland"].n_repaired >= 1 and full.layers["farmland"].n_rejected >= 3
    assert full.layers["farmland"].source.n_zm_dropped == 1
    deferred = sp.read_plan(folder / "plan.toml", defer=DEFERRED_ROLES)
    assert pd.isna(validation_report(deferred).set_index("role").loc["farmland", "n_ok"])
    assert_same_results(sp.run_check(full),
                        run_check_dask(deferred, scheduler=client, partition_size=1))
    layer = deferred.layers["farmland"]
    assert layer.deferred and layer.accounted and len(layer.data) == 0
    pd.testing.assert_frame_equal(validation_report(deferred), validation_report(full),
                                  check_dtype=False)
    pd.testing.assert_frame_equal(feature_issues(deferred), feature_issues(full))
    pd.testing.assert_frame_equal(layer.rejected, full.layers["farmland"].rejected)


@pytest.mark.parametrize("layer", ["FARM", 'a"b; drop table t; --'])
def test_geopackage_positions_come_from_sqlite_not_a_fid_list(tmp_path, layer, monkeypatch):
    from spatialplan.io.plan import LayerSpec
    from spatialplan.pipeline.engine import _positions

    path = tmp_path / "farm.gpkg"
    pyogrio.write_dataframe(_lines()["farmland"], path, layer=layer)
    calls: list = []
    real = pyogrio.read_dataframe
    monkeypatch.setattr(pyogrio, "read_dataframe",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    pos = _positions(LayerSpec(role="farmland", path=path, layer=layer))
    assert pos.offset == 1 and pos.fids is None and not calls
    assert pos.fids_of(np.array([0, 5])).tolist() == [1, 6]
    with __import__("sqlite3").connect(path) as con:  # a gap in the FIDs: a list is read
        con.execute(f'DELETE FROM "{layer.replace(chr(34), chr(34) * 2)}" WHERE fid = 3')
    pos = _positions(LayerSpec(role="farmland", path=path, layer=layer))
    assert pos.offset is None and calls
    assert pos.fids_of(np.array([0, 2])).tolist() == [1, 4]


# --------------------------------------------------------------------------- writing on a worker


def test_cli_dask_combines_and_writes_on_a_worker(generated_plan, client, monkeypatch, tmp_path,
                                                  capsys):
    from spatialplan.cli import main
    from spatialplan.pipeline import engine

    real_dask, real_reduce = engine.run_check_dask, engine._reduce
    where: list[str] = []

    def reduce_spy(*args, **kwargs):
        try:
            where.append(distributed.get_worker().name)
        except ValueError:
            where.append("driver")
        return real_reduce(*args, **kwargs)

    monkeypatch.setattr(engine, "_reduce", reduce_spy)
    monkeypatch.setattr(engine, "run_check_dask",
                        lambda plan, **kw: real_dask(plan, scheduler=client, partition_size=2,
                                                     on_worker=kw["on_worker"]))
    code = main(["check", str(generated_plan), "--out", str(tmp_path / "dask"), "--engine",
                 "dask", "--no-map", "--no-layout", "--fail-on", "fail"])
    first = capsys.readouterr()
    printed = first.out
    assert "writing" in first.err  # the worker's log lines are shown by this process
    assert len(where) == 1 and where[0] != "driver", where
    assert main(["check", str(generated_plan), "--out", str(tmp_path / "local"), "--no-map",
                 "--no-layout", "--fail-on", "fail"]) == code == 1
    local = capsys.readouterr().out
    # the same summary, paths aside
    assert printed.replace(str(tmp_path / "dask"), "OUT") == local.replace(
        str(tmp_path / "local"), "OUT")
    for name in ("projects.csv", "findings.csv", "township_stats.csv", "line_conflicts.csv"):
        if (tmp_path / "local" / name).exists():
            assert (tmp_path / "dask" / name).read_bytes() == (
                tmp_path / "local" / name).read_bytes(), name


def test_an_error_on_the_worker_stops_the_cli_with_its_message(generated_plan, client,
                                                                 monkeypatch, tmp_path, capsys):
    from spatialplan.cli import main
    from spatialplan.errors import RasterError
    from spatialplan.pipeline import engine

    real = engine.run_check_dask

    def broken(plan, result):
        import logging

        logging.getLogger("spatialplan.test").warning("before the error")
        raise RasterError("none of the 9 sites overlaps the DEM", layer="sites")

    monkeypatch.setattr(engine, "run_check_dask",
                        lambda plan, **kw: real(plan, scheduler=client, on_worker=broken))
    code = main(["check", str(generated_plan), "--out", str(tmp_path / "out"), "--engine",
                 "dask", "--no-map", "--no-layout"])
    err = capsys.readouterr().err
    assert code == 2
    assert "none of the 9 sites overlaps the DEM" in err and "Traceback" not in err
    assert "before the error" in err


def test_each_worker_gets_its_share_of_the_host_cores(client):
    import os

    from spatialplan.pipeline._dask import worker_threads

    shares = worker_threads(client)
    workers = client.scheduler_info()["workers"]
    assert set(shares) == set(workers)
    cores = len(os.sched_getaffinity(0))  # one host: its cores shared by the two workers
    assert all(n == max(1, cores // len(workers)) for n in shares.values()), shares


def test_distributed_info_lines_stay_off_the_console_unless_verbose():
    import logging

    from spatialplan.pipeline.engine import _quiet_distributed

    sched, ours = logging.getLogger("distributed.scheduler"), logging.getLogger("spatialplan")
    before = sched.level, ours.level
    try:
        sched.setLevel(logging.INFO)
        ours.setLevel(logging.INFO)
        _quiet_distributed()
        assert sched.level == logging.WARNING
        sched.setLevel(logging.INFO)
        ours.setLevel(logging.DEBUG)  # -v: everything is shown
        _quiet_distributed()
        assert sched.level == logging.INFO
    finally:
        sched.setLevel(before[0])
        ours.setLevel(before[1])


def test_the_layout_reads_a_deferred_layer_once_for_all_its_pages(generated_plan, client,
                                                                   monkeypatch):
    import matplotlib.pyplot as plt

    import spatialplan.io.read as read
    from spatialplan.pipeline.write import _layout_pages

    plan = sp.read_plan(generated_plan, defer=DEFERRED_ROLES)
    result = run_check_dask(plan, scheduler=client, partition_size=2)
    reads: list[str] = []
    real = read.read_spec_layer
    monkeypatch.setattr(read, "read_spec_layer",
                        lambda ls, **kw: reads.append(kw["role"]) or real(ls, **kw))
    n, pages = _layout_pages(plan, result)
    for _, figure in zip(range(2), pages, strict=False):
        plt.close(figure)
    assert n == 6 and sorted(reads) == sorted(_lines())  # each drawn line once, not per page
