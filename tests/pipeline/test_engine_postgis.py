"""The dask engine reads each partition's extent straight from PostGIS: same results."""

from __future__ import annotations

import psycopg
import pytest
from conftest import assert_same_results

import spatialplan as sp
from spatialplan.io.plan import read_plan_spec
from spatialplan.pipeline.engine import _layer_bounds, _positions, run_check_dask

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
