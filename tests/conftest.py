"""Shared test fixtures: small, generic, built in code (keep it that way)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

#: the small real public files the tests read (``tests/data/PROVENANCE.md``); part of the
#: repository, so the tests run from a plain clone
DATA_DIR = Path(__file__).resolve().parent / "data"

#: a point in Guizhou (CGCS2000 lon/lat) near the demo township
LON, LAT = 107.5, 27.8


def square(x: float, y: float, size: float) -> shapely.Polygon:
    """Axis-aligned square with lower-left corner (x, y)."""
    return shapely.box(x, y, x + size, y + size)


def equal_area_m2(geom: shapely.Geometry, crs: str = "EPSG:4545") -> float:
    """Ellipsoidal area of a plane polygon, independently of spatialplan's geodesic code.

    The polygon (edges straight in ``crs``), split to 1 m edges, measured in a GRS80 Lambert
    azimuthal equal-area projection centred on it.
    """
    from pyproj import Transformer

    c = shapely.centroid(geom)
    lon, lat = Transformer.from_crs(crs, "EPSG:4490", always_xy=True).transform(c.x, c.y)
    to_laea = Transformer.from_crs(crs, f"+proj=laea +lat_0={lat} +lon_0={lon} +ellps=GRS80",
                                   always_xy=True)
    fine = shapely.segmentize(geom, 1.0)
    return shapely.transform(fine, lambda xy: np.column_stack(to_laea.transform(xy[:, 0],
                                                                               xy[:, 1]))).area


def write_layer(gdf: gpd.GeoDataFrame, path: Path, **kwargs) -> Path:
    """Write ``gdf`` with pyogrio (the default engine) and return the path."""
    pyogrio.write_dataframe(gdf, path, **kwargs)
    return path


@pytest.fixture()
def townships_gdf() -> gpd.GeoDataFrame:
    """Two townships in CGCS2000 lon/lat near 107.5°E 27.8°N, with Chinese names."""
    return gpd.GeoDataFrame(
        {"XZQDM": ["520123001", "520123002"], "XZQMC": ["示范镇", "乌江镇"]},
        geometry=[square(LON, LAT, 0.05), square(LON + 0.05, LAT, 0.05)],
        crs="EPSG:4490",
    )


@pytest.fixture()
def data_dir() -> Path:
    """``tests/data``: the real public reference files (see its ``PROVENANCE.md``)."""
    return DATA_DIR


# --------------------------------------------------------------------------- local vs dask


def _plain_frame(df) -> pd.DataFrame:
    """A plain DataFrame without geometry (geometries are compared by area)."""
    out = pd.DataFrame(df).copy()
    if "geometry" in out:
        out["geometry_area"] = shapely.area(np.asarray(out.pop("geometry"), dtype=object))
    return out


def assert_same_results(local, dask) -> None:
    """Every result table equal: same rows and order, areas within 1e-6 relative."""
    for name in ("township_stats", "projects", "findings", "outside_townships", "terrain",
                 "county_summary", "township_conflicts"):
        pd.testing.assert_frame_equal(_plain_frame(getattr(local, name)),
                                      _plain_frame(getattr(dask, name)), rtol=1e-6, obj=name)
    a = local.line_conflicts
    a = a.iloc[_conflict_order(a)].reset_index(drop=True)
    pd.testing.assert_frame_equal(_plain_frame(a), _plain_frame(dask.line_conflicts), rtol=1e-6,
                                  obj="line_conflicts")
    assert local.verdict_counts() == dask.verdict_counts()
    pd.testing.assert_frame_equal(local.schedule, dask.schedule)
    for name in ("village_reach", "village_seat"):  # the "1+N" tables, when the plan has them
        assert (getattr(local, name) is None) == (getattr(dask, name) is None), name
        if getattr(local, name) is not None:
            pd.testing.assert_frame_equal(_plain_frame(getattr(local, name)),
                                          _plain_frame(getattr(dask, name)), rtol=1e-6, obj=name)


def _conflict_order(frame):
    from spatialplan.pipeline.engine import conflict_sort_key

    return conflict_sort_key(frame)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_url():
    """URL of a real PostgreSQL + PostGIS database (unix socket, no password).

    ``SPATIALPLAN_TEST_PG`` when the test command (``scripts/test.sh``) started the cluster;
    otherwise a throw-away cluster of this session (``scripts/pg_cluster.py``), so the tests
    run under a plain ``pytest`` too. Never skipped: without a server the tests fail. A server
    named by the variable must be one ``pg_cluster.py`` set up (database with PostGIS, the
    ``reader`` role of the password tests, TCP on 127.0.0.1 at the URL's port).
    """
    import importlib.util
    import os
    import shutil
    import tempfile

    url = os.environ.get("SPATIALPLAN_TEST_PG")
    if url:
        yield url
        return
    script = Path(__file__).resolve().parents[1] / "scripts" / "pg_cluster.py"
    spec = importlib.util.spec_from_file_location("_pg_cluster", script)
    assert spec is not None and spec.loader is not None
    cluster = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cluster)
    # a folder the server's user can reach (pytest's own tmp folders are private to us)
    folder = tempfile.mkdtemp(prefix="spatialplan-pg-")
    try:
        yield cluster.start(folder)
    finally:
        cluster.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def write_pg_table(url: str, gdf: gpd.GeoDataFrame, table: str, *, srid: int | None = None,
                   key: bool = True) -> str:
    """Write ``gdf`` as the PostGIS table ``schema.table`` (replaced); return ``table``.

    Text columns are ``text``, numbers ``double precision``; the geometry column ``geom``
    (SRID of the frame's CRS, or ``srid``); ``key`` adds an ``id serial`` primary key (rows in
    the frame's order). NULL geometries are kept.
    """
    import psycopg
    from psycopg import sql

    schema, name = table.split(".")
    srid = srid if srid is not None else (gdf.crs.to_epsg() if gdf.crs is not None else 0)
    attrs = [c for c in gdf.columns if c != gdf.geometry.name]
    kinds = ["bigint" if pd.api.types.is_integer_dtype(gdf[c]) else "double precision"
             if pd.api.types.is_numeric_dtype(gdf[c]) else "text" for c in attrs]
    cols = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(k)) for c, k in
            zip(attrs, kinds, strict=True)]
    if key:
        cols.insert(0, sql.SQL("id serial PRIMARY KEY"))
    cols.append(sql.SQL("geom geometry(Geometry, {})").format(sql.Literal(srid)))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name)))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(
            sql.Identifier(schema, name), sql.SQL(", ").join(cols)))
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}, ST_GeomFromWKB(%s, {}))").format(
            sql.Identifier(schema, name), sql.SQL(", ").join(
                [sql.Identifier(c) for c in attrs] + [sql.Identifier("geom")]),
            sql.SQL(", ").join([sql.Placeholder()] * len(attrs)), sql.Literal(srid))
        wkb = [None if g is None else shapely.to_wkb(g) for g in gdf.geometry.array]
        values = [[None if pd.isna(v) else v for v in row] for row in
                  gdf[attrs].astype(object).itertuples(index=False)]
        with conn.cursor() as cur:
            cur.executemany(insert, [[*v, w] for v, w in zip(values, wkb, strict=True)])
    return table


#: the demo's vector layers: role → (source, layer), as in ``layers/demo/plan.toml``
_DEMO_LAYERS = {"townships": ("xzq/XZQ.shp", None), "redline": ("planning.gpkg", "STBHHX"),
                "farmland": ("planning.gpkg", "YJJBNT"), "udb": ("planning.gpkg", "CZKFBJ"),
                "cropland": ("planning.gpkg", "DLTB"), "parcels": ("planning.gpkg", "KZXXGH_DK"),
                "projects": ("planning.gpkg", "XS_XMKJFW"), "built": ("planning.gpkg", "JG_FW"),
                "villages": ("planning.gpkg", "CJ"), "roads": ("planning.gpkg", "DL")}


@pytest.fixture(scope="session")
def pg_demo(pg_url):
    """The demo's vector layers as PostGIS tables in schema ``demo`` (once per session).

    Returns a function writing, into a folder, a copy of the demo plan whose layers are those
    tables (the DEM stays the demo's file); it returns the plan's path. ``url`` replaces the
    connection URL (e.g. one with a bad host or a password).
    """
    from spatialplan.core._resources import demo_dir

    demo = demo_dir()
    for role, (src, layer) in _DEMO_LAYERS.items():
        gdf = pyogrio.read_dataframe(demo / src, layer=layer,
                                     encoding="GBK" if src.endswith(".shp") else None)
        write_pg_table(pg_url, gdf, f"demo.{role}")
    text = (demo / "plan.toml").read_text(encoding="utf-8")

    def make(folder: Path, *, url: str | None = None) -> Path:
        lines = text.replace('path = "dem.tif"', f'path = "{(demo / "dem.tif").as_posix()}"')
        for role, (src, layer) in _DEMO_LAYERS.items():
            old = f'[layers.{role}]\npath = "{src}"\n' + (f'layer = "{layer}"\n' if layer else "")
            assert old in lines, old
            lines = lines.replace(old, f'[layers.{role}]\npath = "{url or pg_url}"\n'
                                  f'layer = "demo.{role}"\n')
        plan = Path(folder) / "plan.toml"
        plan.write_text(lines, encoding="utf-8")
        return plan

    return make


@pytest.fixture(scope="module")
def demo_plan():
    """The bundled demo plan, read once per test module."""
    import spatialplan as sp
    from spatialplan.core._resources import demo_dir

    return sp.read_plan(demo_dir() / "plan.toml")


@pytest.fixture(scope="module")
def demo_result(demo_plan):
    """The check of :func:`demo_plan` at its own date, once per test module."""
    import spatialplan as sp

    return sp.run_check(demo_plan)


@pytest.fixture(scope="module")
def dask_client():
    """A small in-process dask cluster (2 workers of 1 thread), always closed."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture
def whole_reads(monkeypatch) -> list[str]:
    """The roles this process reads whole (neither ``bbox`` nor ``fids``) through the reader."""
    import spatialplan.io.read as read

    calls: list[str] = []
    real = read._read_layer

    def spy(path, **options):
        if options.get("bbox") is None and options.get("fids") is None:
            calls.append(options["role"])
        return real(path, **options)

    monkeypatch.setattr(read, "_read_layer", spy)
    return calls
