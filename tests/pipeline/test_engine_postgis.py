"""The dask engine reads each partition's extent straight from PostGIS: same results."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest
from conftest import assert_same_results

import spatialplan as sp
from spatialplan.io.plan import read_plan_spec
from spatialplan.pipeline.engine import DEFERRED_ROLES, _layer_bounds, _positions, run_check_dask

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client(dask_client):
    """The module's in-process cluster (``dask_client`` of conftest)."""
    return dask_client


def test_dask_from_postgis_equals_local(tmp_path, pg_demo, client):
    plan = sp.read_plan(pg_demo(tmp_path))
    local = sp.run_check(plan)
    for size in (1, 3):
        assert_same_results(local, run_check_dask(plan, scheduler=client, partition_size=size))


def test_driver_reads_counts_and_extents_only(tmp_path, pg_demo, pg_url):
    spec = read_plan_spec(pg_demo(tmp_path)).layers["farmland"]
    pos = _positions(spec)
    assert pos.offset == 1 and pos.fids is None  # serial keys 1..n: no key list
    plan = sp.read_plan(pg_demo(tmp_path))
    box = _layer_bounds(spec, plan.crs)
    data = plan.layers["farmland"].data.total_bounds
    assert box[0] <= data[0] and box[1] <= data[1] and box[2] >= data[2] and box[3] >= data[3]


def test_sparse_keys_map_to_full_read_positions(tmp_path, pg_demo, pg_url, client):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS demo.farmland_sparse")
        conn.execute("CREATE TABLE demo.farmland_sparse AS SELECT * FROM demo.farmland")
        conn.execute("UPDATE demo.farmland_sparse SET id = id * 7 + 3")
        conn.execute("ALTER TABLE demo.farmland_sparse ADD PRIMARY KEY (id)")
    plan_path = pg_demo(tmp_path)
    text = plan_path.read_text(encoding="utf-8")
    plan_path.write_text(text.replace('layer = "demo.farmland"',
                                      'layer = "demo.farmland_sparse"'), encoding="utf-8")
    spec = read_plan_spec(plan_path).layers["farmland"]
    assert _positions(spec).fids is not None
    plan = sp.read_plan(plan_path)
    assert_same_results(sp.run_check(plan), run_check_dask(plan, scheduler=client,
                                                           partition_size=2))


def test_driver_opens_the_tables_for_counts_and_extents(tmp_path, pg_demo, client, request):
    from spatialplan.pipeline.write import _database_inputs

    full = sp.read_plan(pg_demo(tmp_path))
    local = sp.run_check(full)
    whole = request.getfixturevalue("whole_reads")  # from here on: reads after the local run
    plan = sp.read_plan(pg_demo(tmp_path), defer=DEFERRED_ROLES)
    assert_same_results(local, run_check_dask(plan, scheduler=client, partition_size=2))
    deferred = [r for r in DEFERRED_ROLES if r in plan.layers]
    # only the development boundary, read whole for the town seats of the village reach
    # (the demo has villages and no seats layer); the lines and parcels are never read whole
    assert "villages" in plan.layers and "seats" not in plan.layers
    assert deferred and set(whole) & set(deferred) == {"udb"}, whole
    assert plan.crs == full.crs
    inputs = {row["role"]: row for row in _database_inputs(plan)}
    for role in deferred:
        layer = plan.layers[role]
        assert layer.deferred and len(layer.data) == 0
        assert layer.n_in == full.layers[role].n_in  # the table's rows, NULL geometries too
        assert layer.source.crs == full.layers[role].source.crs
        box, data = layer.extent, full.layers[role].data.total_bounds
        assert box[0] <= data[0] and box[1] <= data[1] and box[2] >= data[2] and box[3] >= data[3]
        assert inputs[role]["deferred"] and inputs[role]["rows"] == layer.n_in


def test_a_deferred_table_of_lines_is_refused(tmp_path, pg_demo, pg_url):
    from spatialplan.errors import DataLayerError

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS demo.farmland_lines")
        conn.execute("CREATE TABLE demo.farmland_lines (id serial PRIMARY KEY, "
                     "geom geometry(LineString, 4545))")
        conn.execute("INSERT INTO demo.farmland_lines (geom) VALUES "
                     "(ST_GeomFromText('LINESTRING(450000 3075000, 451000 3076000)', 4545))")
    plan_path = pg_demo(tmp_path)
    text = plan_path.read_text(encoding="utf-8")
    plan_path.write_text(text.replace('layer = "demo.farmland"', 'layer = "demo.farmland_lines"'),
                         encoding="utf-8")
    with pytest.raises(DataLayerError, match="farmland layer holds lines"):
        sp.read_plan(plan_path, defer=DEFERRED_ROLES)


@pytest.mark.parametrize("key", ["serial", "none"])
def test_dask_accounts_the_rows_no_partition_reads(tmp_path, pg_demo, pg_url, client, key):
    from spatialplan.io.read import feature_issues, validation_report

    table = f"farmland_awkward_{key}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS demo.{table}")
        conn.execute(f"CREATE TABLE demo.{table} AS SELECT * FROM demo.farmland ORDER BY id")
        if key == "none":  # no primary key: rows are keyed by ctid
            conn.execute(f"ALTER TABLE demo.{table} DROP COLUMN id")
        else:
            conn.execute(f"ALTER TABLE demo.{table} ADD PRIMARY KEY (id)")
        srid = conn.execute("SELECT ST_SRID(geom) FROM demo.farmland LIMIT 1").fetchone()[0]
        extra = ("NULL", f"ST_GeomFromText('POLYGON EMPTY', {srid})",
                 # a bowtie on the demo's farmland (a tenth of its extent), repaired by the read
                 "ST_Translate(ST_Scale(ST_SetSRID(ST_GeomFromText('POLYGON((0 0, 1 1, 1 0, "
                 f"0 1, 0 0))'), {srid}), (ST_XMax(ext) - ST_XMin(ext)) / 10, "
                 "(ST_YMax(ext) - ST_YMin(ext)) / 10), ST_XMin(ext), ST_YMin(ext))")
        for geom in extra:
            columns = "geom" if key == "none" else "id, geom"
            values = geom if key == "none" else f"(SELECT max(id) + 1 FROM demo.{table}), {geom}"
            conn.execute(f"INSERT INTO demo.{table} ({columns}) SELECT {values} FROM "
                         f"(SELECT ST_Extent(geom) AS ext FROM demo.farmland) e")
    plan_path = pg_demo(tmp_path)
    text = plan_path.read_text(encoding="utf-8")
    plan_path.write_text(text.replace('layer = "demo.farmland"', f'layer = "demo.{table}"'),
                         encoding="utf-8")
    full = sp.read_plan(plan_path)
    assert full.layers["farmland"].n_rejected >= 2 and full.layers["farmland"].n_repaired >= 1
    plan = sp.read_plan(plan_path, defer=DEFERRED_ROLES)
    assert_same_results(sp.run_check(full),
                        run_check_dask(plan, scheduler=client, partition_size=2))
    assert plan.layers["farmland"].accounted
    pd.testing.assert_frame_equal(validation_report(plan), validation_report(full),
                                  check_dtype=False)
    pd.testing.assert_frame_equal(feature_issues(plan), feature_issues(full))
