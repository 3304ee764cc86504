"""``spatialplan check --publish URL [--schema NAME]``: results into PostGIS, all or none."""

from __future__ import annotations

import socket

import pandas as pd
import psycopg
import pyogrio
import pytest

from spatialplan.cli import main
from spatialplan.core._resources import demo_dir
from spatialplan.errors import OutputError
from spatialplan.io._pg_write import publish_tables
from spatialplan.pipeline.write import PUBLISHED_TABLES

FAST = ["-q", "--no-map", "--no-layout"]


def _tables(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,)).fetchall()]
        return {n: conn.execute(f'SELECT count(*) FROM "{schema}"."{n}"').fetchone()[0]
                for n in names}


def _fresh(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _publish(tmp_path, url, schema, name="out"):
    return main(["check", str(demo_dir() / "plan.toml"), "--out", str(tmp_path / name), *FAST,
                 "--publish", url, "--schema", schema])


def test_publish_writes_every_results_table_with_index_and_manifest(tmp_path, pg_url, capsys):
    _fresh(pg_url, "pub_a")
    assert _publish(tmp_path, pg_url, "pub_a") == 0
    assert "published pub_a.projects" in capsys.readouterr().out
    counts = _tables(pg_url, "pub_a")
    gpkg = tmp_path / "out" / "results.gpkg"
    for name in pyogrio.list_layers(gpkg)[:, 0]:
        assert counts[name] == pyogrio.read_info(gpkg, layer=name)["features"], name
    assert counts["manifest"] > 5
    with psycopg.connect(pg_url) as conn:
        srid = conn.execute("SELECT srid FROM geometry_columns WHERE f_table_schema = 'pub_a' "
                            "AND f_table_name = 'projects'").fetchone()[0]
        gist = conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = 'pub_a' "
                            "AND indexdef ILIKE '%USING gist%'").fetchone()[0]
        inputs = conn.execute("SELECT value FROM pub_a.manifest WHERE key = 'inputs'"
                              ).fetchone()[0]
        areas = conn.execute("SELECT sum(ST_Area(geometry)) FROM pub_a.township_stats"
                             ).fetchone()[0]
    spatial = [n for n, kind in pyogrio.list_layers(gpkg) if kind is not None]
    assert srid == 4545 and gist == len(spatial) >= 4
    assert "plan.toml" in inputs and areas > 0


def test_republish_replaces_and_a_failure_changes_nothing(tmp_path, pg_url):
    _fresh(pg_url, "pub_b")
    assert _publish(tmp_path, pg_url, "pub_b", "one") == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pub_b.findings (project_id) VALUES ('marker')")
        conn.execute("CREATE TABLE pub_b.outside_townships_extra (a int)")  # not ours: kept
    before = _tables(pg_url, "pub_b")
    # a failure on the last table (text with a NUL byte, which PostgreSQL refuses)
    with pytest.raises(OutputError, match="nothing was changed"):
        publish_tables(pg_url, {"projects": pd.DataFrame({"a": [1]}),
                                "findings": pd.DataFrame({"a": ["a\x00b"]})},
                       schema="pub_b", replace=PUBLISHED_TABLES)
    assert _tables(pg_url, "pub_b") == before
    assert _publish(tmp_path, pg_url, "pub_b", "two") == 0
    after = _tables(pg_url, "pub_b")
    assert after["findings"] == before["findings"] - 1  # the marker row is gone
    assert "outside_townships_extra" in after


def test_publish_url_with_password_is_refused_before_the_check(tmp_path, capsys):
    assert _publish(tmp_path, "postgresql://u:hunter2@db.example/yzt", "x") == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "PGPASSWORD" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_publish_to_unreachable_server_exits_2(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _publish(tmp_path, f"postgresql://u@127.0.0.1:{port}/db", "x") == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "Traceback" not in err
