"""PostGIS layers: read from a real PostgreSQL server (the ``pg_url`` fixture), never mocked."""

from __future__ import annotations

import logging
import socket
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import pandas as pd
import psycopg
import pytest
import shapely
from conftest import LAT, LON, square, write_pg_table

from spatialplan.errors import DataLayerError, DataSourceError, PlanError
from spatialplan.io import postgis
from spatialplan.io.plan import parse_plan_spec
from spatialplan.io.read import read_layer, validation_report


def _towns(n: int = 3) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"XZQDM": [f"52012300{i}" for i in range(n)], "XZQMC": [f"镇{i}" for i in range(n)]},
        geometry=[square(LON + 0.05 * i, LAT, 0.05) for i in range(n)], crs="EPSG:4490")


def _redline() -> gpd.GeoDataFrame:
    bowtie = shapely.Polygon([(LON, LAT), (LON + 0.01, LAT + 0.01), (LON + 0.01, LAT),
                              (LON, LAT + 0.01), (LON, LAT)])
    return gpd.GeoDataFrame(
        {"dlbm": ["0101", "0102", "0101", "0103"], "area": [1.0, 2.0, 3.0, 4.0]},
        geometry=[square(LON, LAT, 0.01), None, bowtie, square(LON + 0.02, LAT, 0.01)],
        crs="EPSG:4490")


def test_read_accounts_for_every_row_and_takes_the_crs_from_the_srid(pg_url):
    table = write_pg_table(pg_url, _redline(), "yzt.stbhhx")
    lyr = read_layer(pg_url, role="redline", layer=table)
    assert lyr.n_in == 4 == lyr.n_ok + lyr.n_repaired + lyr.n_rejected
    assert lyr.n_rejected == 1  # the NULL geometry
    assert lyr.n_repaired == 1  # the bow-tie
    assert lyr.source.crs.to_epsg() == 4490
    assert lyr.source.driver == "PostgreSQL"
    assert list(lyr.data["feature_id"]) == ["redline:0", "redline:2", "redline:3"]
    assert list(lyr.rejected["feature_id"]) == ["redline:1"]


def test_a_projected_srid_and_an_unlisted_one(pg_url):
    towns = _towns().to_crs("EPSG:4545")
    lyr = read_layer(pg_url, role="townships", layer=write_pg_table(pg_url, towns, "yzt.xzq"))
    assert lyr.source.crs.to_epsg() == 4545
    assert list(lyr.data["code"]) == list(towns["XZQDM"])
    assert abs(lyr.data.area.sum() - towns.area.sum()) < 1e-6 * towns.area.sum()


def test_srid_0_needs_assume_crs(pg_url):
    table = write_pg_table(pg_url, _towns(), "yzt.nocrs", srid=0)
    with pytest.raises(Exception, match="no CRS"):
        read_layer(pg_url, role="townships", layer=table)
    lyr = read_layer(pg_url, role="townships", layer=table, assume_crs="EPSG:4490")
    assert lyr.source.crs_source == "assumed"


def test_where_filter_selects_rows_with_parameters(pg_url):
    table = write_pg_table(pg_url, _redline(), "yzt.filtered")
    lyr = read_layer(pg_url, role="redline", layer=table,
                     where="dlbm IN ('0101', '0103') AND area >= 3")
    assert lyr.n_in == 2
    # feature ids are the row positions of the filtered read
    assert list(lyr.data["feature_id"]) == ["redline:0", "redline:1"]


@pytest.mark.parametrize("text", [
    "dlbm = '0101'; DROP TABLE yzt.victim",
    "dlbm = '0101' OR 1 = 1",
    "dlbm = '0101' -- comment",
    "pg_sleep(10) = 1",
    "dlbm = (SELECT 1)",
    "area > 1 AND",
])
def test_where_filter_refuses_anything_but_comparisons(text):
    with pytest.raises(PlanError, match="not a simple filter"):
        postgis.parse_where(text)


def test_quoted_literal_cannot_escape_its_parameter(pg_url):
    write_pg_table(pg_url, _towns(), "yzt.victim")
    table = write_pg_table(pg_url, _redline(), "yzt.inj")
    lyr = read_layer(pg_url, role="redline", layer=table,
                     where="dlbm = '0101'' ; DROP TABLE yzt.victim; --'")
    assert lyr.n_in == 0
    assert read_layer(pg_url, role="townships", layer="yzt.victim").n_in == 3


def test_table_names_are_identifiers_never_sql(pg_url):
    write_pg_table(pg_url, _towns(), "yzt.victim2")
    with pytest.raises(DataLayerError, match="not found"):
        read_layer(pg_url, role="townships", layer='yzt.victim2"; DROP TABLE yzt.victim2; --')
    assert read_layer(pg_url, role="townships", layer="yzt.victim2").n_in == 3


def test_reads_run_in_a_read_only_transaction(pg_url):
    with postgis.connect(pg_url) as conn, conn.transaction():
        assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE public.nope (a int)")


def test_password_in_url_is_refused_with_the_fix(tmp_path):
    for url in ("postgresql://u:s3cret@db.example/yzt", "postgresql://u@db/yzt?password=s3cret"):
        with pytest.raises(PlanError) as err:
            parse_plan_spec({"layers": {"redline": {"path": url, "layer": "a.b"}}},
                            base=tmp_path)
        assert "s3cret" not in str(err.value)
        assert "PGPASSWORD" in str(err.value) and "~/.pgpass" in str(err.value)
        with pytest.raises(PlanError):
            read_layer(url, role="redline", layer="a.b")


def test_where_only_for_postgres_and_checked_when_parsed(tmp_path):
    with pytest.raises(PlanError, match="only for a PostgreSQL layer"):
        parse_plan_spec({"layers": {"redline": {"path": "r.gpkg", "where": "a = 1"}}},
                        base=tmp_path)
    with pytest.raises(PlanError, match=r"layers\.redline\.where"):
        parse_plan_spec({"layers": {"redline": {"path": "postgresql://u@h/db", "layer": "a.b",
                                                "where": "a = 1 OR b = 2"}}}, base=tmp_path)
    spec = parse_plan_spec({"layers": {"redline": {
        "path": "postgresql://u@/db?host=/run/postgresql", "layer": "a.b", "where": "a = 1",
        "geometry_column": "shape"}}}, base=tmp_path)
    lyr = spec.layers["redline"]
    assert (lyr.path, lyr.where, lyr.geometry_column) == (
        "postgresql://u@/db?host=/run/postgresql", "a = 1", "shape")
    with pytest.raises(DataSourceError):  # other remote schemes stay refused
        parse_plan_spec({"layers": {"redline": {"path": "mysql://u@h/db"}}}, base=tmp_path)


def _tcp_url(pg_url: str, user: str = "reader") -> str:
    port = parse_qs(urlsplit(pg_url).query)["port"][0]
    return f"postgresql://{user}@127.0.0.1:{port}/spatialplan_test"


def test_password_from_pgpassword_and_never_in_errors_or_logs(pg_url, monkeypatch, caplog):
    table = write_pg_table(pg_url, _towns(), "public.pwd_towns")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("GRANT USAGE ON SCHEMA public TO reader")
        conn.execute("GRANT SELECT ON public.pwd_towns TO reader")
    monkeypatch.setenv("PGPASSWORD", "reader-secret")
    caplog.set_level(logging.DEBUG)
    lyr = read_layer(_tcp_url(pg_url), role="townships", layer=table)
    assert lyr.n_in == 3
    monkeypatch.setenv("PGPASSWORD", "wrong-secret")
    with pytest.raises(DataSourceError) as err:
        read_layer(_tcp_url(pg_url), role="townships", layer=table)
    assert "127.0.0.1" in str(err.value) and "password authentication failed" in str(err.value)
    assert "secret" not in str(err.value) and "secret" not in caplog.text


def test_bad_host_is_a_clear_error_with_the_host():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataSourceError, match=rf"127\.0\.0\.1:{port}.*refused"):
        read_layer(f"postgresql://u@127.0.0.1:{port}/db", role="redline", layer="a.b")


def test_validation_report_shows_the_source(pg_url):
    table = write_pg_table(pg_url, _redline(), "yzt.report")
    report = validation_report({"redline": read_layer(pg_url, role="redline", layer=table)})
    row = report.iloc[0]
    assert row["path"] == pg_url and row["layer"] == table and row["driver"] == "PostgreSQL"
    assert row["n_in"] == row["n_ok"] + row["n_repaired"] + row["n_rejected"] == 4


def test_mask_url_hides_any_password():
    assert postgis.mask_url("postgresql://u:pw@h:5/db") == "postgresql://u:***@h:5/db"


def test_two_geometry_columns_need_geometry_column(pg_url):
    write_pg_table(pg_url, _redline(), "yzt.twogeom")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE yzt.twogeom ADD COLUMN centre geometry(Point, 4490)")
    with pytest.raises(DataLayerError, match="2 geometry columns"):
        read_layer(pg_url, role="redline", layer="yzt.twogeom")
    lyr = read_layer(pg_url, role="redline", layer="yzt.twogeom", geometry_column="geom")
    assert lyr.n_in == 4


def test_bbox_read_takes_only_the_rows_meeting_the_box(pg_url):
    table = write_pg_table(pg_url, _towns(4), "yzt.bbox")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE INDEX ON yzt.bbox USING GIST (geom)")
    box = (LON + 0.06, LAT + 0.01, LON + 0.09, LAT + 0.02)  # inside the second township only
    lyr = read_layer(pg_url, role="townships", layer=table, bbox=box,
                     feature_positions=lambda keys: keys - 1)
    assert lyr.n_in == 1 and list(lyr.data["feature_id"]) == ["townships:1"]


def test_a_server_that_never_answers_times_out_with_the_host():
    with socket.socket() as s:  # accepts the TCP connection (backlog), never speaks
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(DataSourceError, match=rf"127\.0\.0\.1:{port}.*timeout"):
            read_layer(f"postgresql://u@127.0.0.1:{port}/db?connect_timeout=2",
                       role="redline", layer="a.b")



# -- the bulk read through ADBC (io._pg_arrow) ----------------------------------------------

def _typed_table(url: str, table: str, extra: str = "") -> None:
    """A table with a column of every type the Arrow read takes, NULLs, no and empty geometry."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS yzt")
        conn.execute(f"DROP TABLE IF EXISTS yzt.{table}")
        conn.execute(f"CREATE TABLE yzt.{table} (id serial PRIMARY KEY, a int2, b int4, c int8, "
                     "d real, e double precision, f numeric(12, 3), g text, h varchar(20), "
                     f"i char(6), j boolean, k date{extra}, geom geometry(Geometry, 4490))")
        rows = [
            (1, 2, 3, 1.5, 2.25, "1234.500", "乌江镇", "示范", "ab", True, "2024-03-01"),
            (None, None, None, None, None, None, None, None, None, None, None),
            (-1, 7, 2**40, -0.5, 1e10, "-0.001", "", "x", "abcdef", False, "1999-12-31"),
        ]
        geoms = [square(LON, LAT, 0.01).wkt, None, "POLYGON EMPTY"]
        for row, wkt in zip(rows, geoms, strict=True):
            conn.execute(f"INSERT INTO yzt.{table} (a, b, c, d, e, f, g, h, i, j, k, geom) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                         "ST_GeomFromText(%s, 4490))", (*row, wkt))


def test_the_arrow_read_gives_the_row_read_s_frame(pg_url, monkeypatch):
    pytest.importorskip("adbc_driver_postgresql")
    from spatialplan.io import _pg_arrow

    _typed_table(pg_url, "typed")
    used: list[bool] = []
    real = postgis.arrow_read_ok
    monkeypatch.setattr(postgis, "arrow_read_ok", lambda *a: used.append(real(*a)) or used[-1])
    fast, _ = postgis.read_table(pg_url, layer="yzt.typed", role="redline")
    monkeypatch.setattr(postgis, "arrow_read_ok", lambda *a: False)
    rows, _ = postgis.read_table(pg_url, layer="yzt.typed", role="redline")
    assert used == [True]
    assert fast.index.equals(rows.index) and fast.index.name == rows.index.name
    assert [repr(t) for t in fast.dtypes] == [repr(t) for t in rows.dtypes]
    pd.testing.assert_frame_equal(pd.DataFrame(fast.drop(columns=fast.geometry.name)),
                                  pd.DataFrame(rows.drop(columns=rows.geometry.name)),
                                  check_exact=True)
    assert [None if g is None else g.wkb for g in fast.geometry] == [
        None if g is None else g.wkb for g in rows.geometry]
    assert fast["g"].tolist()[0] == "乌江镇" and fast["f"].tolist()[0] == 1234.5
    # and the whole layer reads alike: accounting, repairs, rejections
    layer = read_layer(pg_url, role="redline", layer="yzt.typed")
    assert layer.n_in == 3 and layer.n_ok == 1 and layer.n_rejected == 2
    assert {"int2", "numeric", "date", "bpchar", "bool"} <= _pg_arrow.ARROW_TYPES


def test_a_column_of_another_type_is_read_by_rows(pg_url, monkeypatch):
    _typed_table(pg_url, "typed_json", extra=", l jsonb")
    src = {"types": {"a": "int2", "l": "jsonb"}}
    assert not postgis.arrow_read_ok(pg_url, src)
    assert read_layer(pg_url, role="redline", layer="yzt.typed_json").n_in == 3


def test_the_arrow_session_is_read_only(pg_url):
    adbc = pytest.importorskip("adbc_driver_postgresql.dbapi")
    from spatialplan.io._pg_arrow import adbc_uri

    with adbc.connect(adbc_uri(pg_url, timeout_s=10)) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('transaction_read_only'), "
                    "current_setting('default_transaction_read_only'), "
                    "current_setting('application_name')")
        assert tuple(cur.fetchone()) == ("on", "on", "spatialplan")
