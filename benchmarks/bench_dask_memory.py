"""Benchmark: peak memory of the ``spatialplan check`` process, local vs dask engine, from PostGIS.

Generates ``bench_province``'s synthetic plan (townships, control lines, parcels, an 8+X
register), loads the red line, farmland, development boundary and parcels into PostGIS tables
(schema ``bench_dask``, with spatial indexes; the townships and projects stay GeoPackages), then
runs ``spatialplan check PLAN --out DIR --no-map --no-layout`` twice, with ``--engine local`` and
``--engine dask --workers N``, and prints each command's wall time and the peak RSS of the
command's own process (the driver; the dask workers are separate processes, not counted), and
the ratio dask / local (issue 20's target at 10⁶ parcels: under 1/4). The two runs must give the
same verdict summary.

Usage::

    python benchmarks/bench_dask_memory.py URL [--parcels 1000000] [--townships N] [--workers 2]

``URL`` is a database with PostGIS this user may create a schema in (e.g. the test cluster:
``python scripts/pg_cluster.py start /tmp/pg``). Needs psutil and the dask extra
(``pip install ".[test,dask]"``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_province import run_check_command, write_plan

SCHEMA = "bench_dask"
#: role → (GeoPackage, layer) of bench_province's plan, loaded into PostGIS
TABLES = {"redline": ("controls.gpkg", "STBHHX"), "farmland": ("controls.gpkg", "YJJBNT"),
          "udb": ("controls.gpkg", "CZKFBJ"), "parcels": ("parcels.gpkg", "KZXXGH_DK")}


def load_table(url: str, gdf: gpd.GeoDataFrame, table: str) -> None:
    """Write ``gdf`` as ``SCHEMA.table`` (replaced) with COPY, a serial key and a GiST index."""
    import psycopg
    from psycopg import sql

    attrs = [c for c in gdf.columns if c != gdf.geometry.name]
    kinds = ["bigint" if pd.api.types.is_integer_dtype(gdf[c]) else "double precision"
             if pd.api.types.is_numeric_dtype(gdf[c]) else "text" for c in attrs]
    name = sql.Identifier(SCHEMA, table)
    srid = gdf.crs.to_epsg()
    cols = [sql.SQL("id serial PRIMARY KEY")] + [
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(k))
        for c, k in zip(attrs, kinds, strict=True)] + [
        sql.SQL("geom geometry(Geometry, {})").format(sql.Literal(srid))]
    wkb = shapely.to_wkb(gdf.geometry.array, hex=True, include_srid=False)
    values = [gdf[c].astype(object).where(gdf[c].notna(), None).tolist() for c in attrs]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, sql.SQL(", ").join(cols)))
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(name, sql.SQL(", ").join(
            [sql.Identifier(c) for c in [*attrs, "geom"]]))
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            for i in range(len(gdf)):
                copy.write_row([v[i] for v in values] + [wkb[i]])
        conn.execute(sql.SQL("CREATE INDEX ON {} USING GIST (geom)").format(name))
        conn.execute(sql.SQL("ANALYZE {}").format(name))


def to_postgis(plan_path: Path, url: str) -> Path:
    """Load the plan's lines and parcels into PostGIS; return a plan reading them from there."""
    folder = plan_path.parent
    text = plan_path.read_text(encoding="utf-8")
    for role, (src, layer) in TABLES.items():
        load_table(url, pyogrio.read_dataframe(folder / src, layer=layer), role)
        old = f'[layers.{role}]\npath = "{src}"\n' + (
            f'layer = "{layer}"\n' if role != "parcels" else "")
        assert old in text, old
        text = text.replace(old, f'[layers.{role}]\npath = "{url}"\nlayer = "{SCHEMA}.{role}"\n')
    out = folder / "plan_postgis.toml"
    out.write_text(text, encoding="utf-8")
    return out


def run_check(plan_path: Path, out: Path, *engine: str) -> tuple[float, int, str, int]:
    """Run the check; return its wall time, peak RSS, verdict summary and largest child's peak.

    The peak RSS (bytes) is the command's own process; the child's is the largest of its child
    processes (the dask workers; 0 without). Exit 1 (a verdict) is fine.
    """
    wall, peak, child_peak, summary = run_check_command(plan_path, out, *engine, ok=(0, 1))
    return wall, peak, summary, child_peak


def main(argv: list[str] | None = None) -> int:
    """Generate, load, run both engines and print their driver's peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--parcels", type=int, default=1_000_000)
    parser.add_argument("--townships", type=int, default=None,
                        help="default: one per 670 parcels (1,500 at 10⁶), at least 8")
    parser.add_argument("--projects", type=int, default=None,
                        help="default: one per 100 parcels, at least 50")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    towns = args.townships or max(8, args.parcels // 670)
    projects = args.projects or max(50, args.parcels // 100)
    with tempfile.TemporaryDirectory() as tmp:
        plan = write_plan(Path(tmp) / "plan", townships=towns, parcels=args.parcels,
                          projects=projects, seed=args.seed)
        plan = to_postgis(plan, args.url)
        print(f"plan: {towns} townships, {args.parcels} parcels, {projects} projects; "
              f"lines and parcels in PostGIS ({SCHEMA}.*)")
        local = run_check(plan, Path(tmp) / "local", "--engine", "local")
        dask = run_check(plan, Path(tmp) / "dask", "--engine", "dask", "--workers",
                         str(args.workers))
    mib = 2 ** 20
    print(f"local engine   {local[0]:7.1f} s   driver peak RSS {local[1] / mib:8.0f} MiB")
    print(f"dask engine    {dask[0]:7.1f} s   driver peak RSS {dask[1] / mib:8.0f} MiB "
          f"({args.workers} worker processes, not counted; the largest peaked at "
          f"{dask[3] / mib:,.0f} MiB)")
    print(f"ratio dask / local driver peak RSS   {dask[1] / local[1]:.2f} (target < 0.25 at "
          "10⁶ parcels)")
    print(f"verdicts equal: {'yes' if local[2] == dask[2] else 'NO'}   ({local[2]})")
    return 0 if local[2] == dask[2] else 1


if __name__ == "__main__":
    raise SystemExit(main())
