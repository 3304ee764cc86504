"""The CLI on a plan whose layers are PostGIS tables (a real server: ``pg_url``)."""

from __future__ import annotations

import json
import logging
import socket
from urllib.parse import parse_qs, urlsplit

import psycopg
from conftest import assert_same_results

import spatialplan as sp
from spatialplan.cli import main
from spatialplan.core._resources import demo_dir


def test_check_from_postgis_matches_the_files(tmp_path, pg_demo):
    plan = pg_demo(tmp_path)
    from_db = sp.run_check(sp.read_plan(plan))
    assert_same_results(sp.run_check(sp.read_plan(demo_dir() / "plan.toml")), from_db)


def test_validate_shows_the_tables_and_exits_0(tmp_path, pg_demo, pg_url, capsys):
    assert main(["validate", str(pg_demo(tmp_path)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["role"]: r for r in data["layers"]}
    assert rows["redline"]["path"] == pg_url and rows["redline"]["layer"] == "demo.redline"
    assert rows["redline"]["driver"] == "PostgreSQL"


def test_unreachable_server_exits_2_naming_the_host(tmp_path, pg_demo, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    plan = pg_demo(tmp_path, url=f"postgresql://planner@127.0.0.1:{port}/yzt")
    assert main(["validate", str(plan), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spatialplan: error:") and f"127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_password_in_plan_exits_2_with_the_fix(tmp_path, pg_demo, capsys):
    plan = pg_demo(tmp_path, url="postgresql://planner:hunter2@db.example/yzt")
    assert main(["check", str(plan), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "PGPASSWORD" in err and "Traceback" not in err


def test_password_never_in_manifest_report_or_log(tmp_path, pg_demo, pg_url, monkeypatch,
                                                  caplog):
    port = parse_qs(urlsplit(pg_url).query)["port"][0]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("GRANT USAGE ON SCHEMA demo TO reader")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA demo TO reader")
    monkeypatch.setenv("PGPASSWORD", "reader-secret")
    caplog.set_level(logging.DEBUG)
    plan = pg_demo(tmp_path, url=f"postgresql://reader@127.0.0.1:{port}/spatialplan_test")
    out = tmp_path / "out"
    assert main(["check", str(plan), "--out", str(out), "-q", "--no-map", "--no-layout"]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    tables = [i for i in manifest["inputs"] if i.get("driver") == "PostgreSQL"]
    assert len(tables) == 10 and all(i["rows"] > 0 and len(i["extent"]) == 4 for i in tables)
    assert {i["table"] for i in tables} >= {"demo.townships", "demo.projects"}
    for f in out.iterdir():
        if f.suffix in (".json", ".html", ".csv"):
            assert "reader-secret" not in f.read_text(encoding="utf-8-sig"), f.name
    assert "reader-secret" not in caplog.text
