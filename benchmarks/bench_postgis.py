"""Reading one PostGIS table into a GeoDataFrame: psycopg 3, ADBC, GeoPandas + SQLAlchemy.

Usage::

    python benchmarks/bench_postgis.py URL [--rows 100000]       # issue 20: --rows 1000000

``URL`` is a database with PostGIS that this user may create a schema in (e.g. the test
cluster: ``python scripts/pg_cluster.py start /tmp/pg``). The table ``bench.parcels`` (small
squares near 107.5°E 27.8°N, EPSG:4490, four attributes, a primary key) is created once; each
reader then builds the same frame (attributes + shapely geometries), best of three. ADBC and
SQLAlchemy are optional (``pip install adbc-driver-postgresql pyarrow sqlalchemy``); a
reader whose library is missing is reported as such. The figures are in DESIGN.md. Then the
whole ``read_layer`` (read, validation, accounting) of the table against the same rows written
to a GeoPackage, and the ratio.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import shapely

log = logging.getLogger("bench_postgis")

COLUMNS = "id, bsm, dlbm, zldwmc, tbmj"


def make_table(url: str, rows: int) -> None:
    """Create ``bench.parcels`` with ``rows`` squares (kept when it already has them)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        have = conn.execute("SELECT count(*) FROM information_schema.tables WHERE "
                            "table_schema = 'bench' AND table_name = 'parcels'").fetchone()[0]
        if have and conn.execute("SELECT count(*) FROM bench.parcels").fetchone()[0] == rows:
            return
        conn.execute("DROP TABLE IF EXISTS bench.parcels")
        conn.execute("CREATE TABLE bench.parcels (id serial PRIMARY KEY, bsm bigint, dlbm text, "
                     "zldwmc text, tbmj double precision, geom geometry(Polygon, 4490))")
        rng = np.random.default_rng(0)
        x = 107.0 + rng.uniform(0, 1, rows)
        y = 27.5 + rng.uniform(0, 1, rows)
        wkb = shapely.to_wkb(shapely.box(x, y, x + 1e-3, y + 1e-3))
        with conn.cursor() as cur, cur.copy("COPY bench.parcels (bsm, dlbm, zldwmc, tbmj, geom) "
                                            "FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row((i, "0101", "示范村", float(i % 97), wkb[i].hex()))
        conn.execute("CREATE INDEX ON bench.parcels USING GIST (geom)")
        conn.execute("ANALYZE bench.parcels")


def read_spatialplan(url: str) -> gpd.GeoDataFrame:
    """Read with the chosen path: psycopg 3, binary cursor, ``ST_AsBinary`` → shapely."""
    from spatialplan.io.postgis import read_table

    return read_table(url, layer="bench.parcels", role="bench")[0]


def read_psycopg_copy(url: str) -> gpd.GeoDataFrame:
    """Read with psycopg 3 ``COPY ... TO STDOUT (FORMAT BINARY)``, rows typed on the client."""
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur, cur.copy(
            f"COPY (SELECT {COLUMNS}, ST_AsBinary(geom) FROM bench.parcels ORDER BY id) "
            "TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int8", "text", "text", "float8", "bytea"])
        rows = list(copy.rows())
    cols = list(zip(*rows, strict=True))
    return gpd.GeoDataFrame(
        {name: cols[i] for i, name in enumerate(COLUMNS.split(", "))},
        geometry=shapely.from_wkb(np.array(cols[-1], dtype=object)), crs="EPSG:4490")


def read_adbc(url: str) -> gpd.GeoDataFrame:
    """Read with ADBC's PostgreSQL driver straight into Arrow, WKB → shapely."""
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS}, ST_AsBinary(geom) AS wkb FROM bench.parcels "
                    "ORDER BY id")
        table = cur.fetch_arrow_table()
    frame = table.drop(["wkb"]).to_pandas()
    geoms = shapely.from_wkb(table.column("wkb").to_numpy(zero_copy_only=False))
    return gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4490")


def read_geopandas(url: str) -> gpd.GeoDataFrame:
    """Read with ``geopandas.read_postgis`` through SQLAlchemy (psycopg 3 dialect)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return gpd.read_postgis(f"SELECT {COLUMNS}, geom FROM bench.parcels ORDER BY id",
                                    conn, geom_col="geom")
    finally:
        engine.dispose()


READERS: dict[str, Callable[[str], gpd.GeoDataFrame]] = {
    "psycopg 3, binary cursor (spatialplan)": read_spatialplan,
    "psycopg 3, binary COPY": read_psycopg_copy,
    "ADBC PostgreSQL → Arrow": read_adbc,
    "geopandas.read_postgis + SQLAlchemy": read_geopandas,
}


def layer_ratio(url: str, rows: int, *, repeat: int = 2) -> float:
    """Time ``read_layer`` of the table from PostGIS and of the same rows from a GeoPackage.

    The whole read as a plan does it (read, validation, accounting), best of ``repeat``; logs
    both and returns the ratio PostGIS / GeoPackage (issue 20: at most 2 at 10⁶ rows).
    """
    import tempfile
    from pathlib import Path

    import pyogrio

    from spatialplan.io.read import read_layer

    times = {}
    with tempfile.TemporaryDirectory(prefix="bench_postgis_") as tmp:
        gpkg = Path(tmp) / "parcels.gpkg"
        frame = read_spatialplan(url)
        pyogrio.write_dataframe(frame.reset_index(drop=True), gpkg, layer="parcels")
        del frame
        sources = {"PostGIS": (url, "bench.parcels"), "GeoPackage": (gpkg, "parcels")}
        for name, (path, layer) in sources.items():
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                lyr = read_layer(path, role="redline", layer=layer)
                best = min(best, time.perf_counter() - t0)
            assert lyr.n_in == rows and lyr.n_ok == rows
            times[name] = best
            log.info("read_layer from %-10s %29.2f s  (%d features, validated)", name, best,
                     rows)
    ratio = times["PostGIS"] / times["GeoPackage"]
    log.info("ratio PostGIS / GeoPackage %23.2fx (target <= 2x)", ratio)
    return ratio


def main() -> None:
    """Run every reader three times on the same table and log the best time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    make_table(args.url, args.rows)
    for name, reader in READERS.items():
        times = []
        try:
            for _ in range(3):
                t0 = time.perf_counter()
                frame = reader(args.url)
                times.append(time.perf_counter() - t0)
        except ImportError as exc:
            log.info("%-42s not installed (%s)", name, exc.name)
            continue
        assert len(frame) == args.rows and frame.geometry.notna().all()
        log.info("%-42s %6.2f s  (%d rows)", name, min(times), len(frame))
    layer_ratio(args.url, args.rows)


if __name__ == "__main__":
    main()
