"""The streaming XLSX writer: values, types, styles, limits and byte-determinism."""

from __future__ import annotations

import datetime as dt
import logging
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest

from spatialplan.errors import OutputError
from spatialplan.io import _xlsx
from spatialplan.io._xlsx import column_letter, write_xlsx
from spatialplan.io.output import write_table


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "乡镇名称": ["示范镇", "乌江镇", None, "  前后空格  "],
        "户数": [1, 2, 3, 4],
        "面积(m²)": [0.1 + 0.2, 1e-300, np.nan, 137535210.61076745],
        "比例": [0.0, 1.0000000000000002, 2.5, -3.0],
        "代码": ["0520", "=SUM(A1:A2)", "+1", "@x"],
    })


def test_round_trip_through_openpyxl_and_pandas(tmp_path):
    df = _table()
    path = write_table(df, tmp_path / "t.xlsx", sheet_name="乡镇统计")
    ws = openpyxl.load_workbook(path)["乡镇统计"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == tuple(df.columns)
    assert rows[1] == ("示范镇", 1, 0.30000000000000004, 0.0, "0520")
    assert rows[3][0] is None and rows[3][2] is None  # None and NaN: empty cells
    assert rows[4][0] == "  前后空格  "
    assert rows[2][2] == 1e-300 and rows[4][2] == 137535210.61076745  # full precision
    assert rows[2][3] == 1.0000000000000002
    assert isinstance(rows[1][1], int) and isinstance(rows[1][3], float)
    back = pd.read_excel(path)
    assert list(back.columns) == list(df.columns)
    assert back["户数"].dtype == np.int64 and back["面积(m²)"].dtype == np.float64
    assert back["面积(m²)"].tolist()[:2] == df["面积(m²)"].tolist()[:2]
    assert np.isnan(back.loc[2, "面积(m²)"])
    assert back["代码"].tolist() == ["0520", "=SUM(A1:A2)", "+1", "@x"]


def test_formula_like_text_stays_text(tmp_path):
    path = write_table(_table(), tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(path).active
    assert ws["E3"].value == "=SUM(A1:A2)" and ws["E3"].data_type == "s"
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in sheet and b"<f " not in sheet


def test_header_frozen_bold_and_widths(tmp_path):
    path = write_table(_table(), tmp_path / "t.xlsx")
    ws = openpyxl.load_workbook(path).active
    assert ws.freeze_panes == "A2"
    assert ws["A1"].font.b and not ws["A2"].font.b
    # CJK counts double: "乡镇名称" (8) vs "户数" (4, clamped to the minimum 8 + 2)
    assert ws.column_dimensions["A"].width == 14
    assert ws.column_dimensions["B"].width == 8


def test_same_bytes_on_a_second_write(tmp_path):
    a = write_table(_table(), tmp_path / "a.xlsx").read_bytes()
    b = write_table(_table(), tmp_path / "b.xlsx").read_bytes()
    assert a == b
    with zipfile.ZipFile(tmp_path / "a.xlsx") as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert b"dcterms:created" not in zf.read("docProps/core.xml")


def test_types_dates_bools_mixed(tmp_path):
    df = pd.DataFrame({
        "day": pd.to_datetime(["2024-01-02", None, "1900-01-05"]),
        "when": pd.to_datetime(["2024-01-02 10:30:15", "2024-01-03", None], format="ISO8601"),
        "ok": [True, False, True],
        "n": pd.array([1, None, 3], dtype="Int64"),
        "mixed": ["a", 2, dt.date(2025, 6, 30)],
        "inf": [np.inf, -np.inf, 1.5],
        "s": pd.array(["x", None, "z"], dtype="string"),
    })
    path = tmp_path / "t.xlsx"
    write_xlsx(df, path)
    ws = openpyxl.load_workbook(path).active
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert rows[0] == (dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2, 10, 30, 15), True, 1,
                       "a", "inf", "x")
    assert rows[1] == (None, dt.datetime(2024, 1, 3), False, None, 2, "-inf", None)
    assert rows[2][0] == dt.datetime(1900, 1, 5)  # Excel's 1900 leap-year rule applied
    assert rows[2][4] == dt.datetime(2025, 6, 30)
    assert ws["A2"].number_format == "yyyy-mm-dd"
    assert ws["B2"].number_format == "yyyy-mm-dd hh:mm:ss"
    back = pd.read_excel(path)
    assert back["day"].dtype.kind == "M" and back["ok"].dtype == bool


def test_bold_rows_and_number_format(tmp_path):
    df = pd.DataFrame({"name": ["a", "total"], "money": [1234.5, np.nan]})
    path = tmp_path / "t.xlsx"
    write_xlsx(df, path, bold_rows=[False, True], number_formats={"money": "#,##0.00"})
    ws = openpyxl.load_workbook(path).active
    assert not ws["A2"].font.b and ws["A3"].font.b and ws["B3"].font.b  # empty cell styled
    assert ws["B2"].number_format == "#,##0.00" and ws["B2"].value == 1234.5
    assert ws["B3"].value is None


def test_over_long_text_is_an_error_not_a_cut(tmp_path):
    df = pd.DataFrame({"reasons": ["ok", "长" * 20_000]})  # 20,000 characters fit
    write_table(df, tmp_path / "fits.xlsx")
    df = pd.DataFrame({"reasons": ["ok", "x" * (_xlsx.MAX_CELL_CHARS + 1)]})
    with pytest.raises(OutputError, match="32,767") as err:
        write_table(df, tmp_path / "t.xlsx")
    assert "CSV" in err.value.hint and err.value.feature == "row 2"
    assert not (tmp_path / "t.xlsx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["fits.xlsx"]  # no temporary left
    astral = pd.DataFrame({"a": ["😀" * 16_384]})  # 32,768 UTF-16 units
    with pytest.raises(OutputError):
        write_xlsx(astral, tmp_path / "u.xlsx")


def test_too_many_rows_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(_xlsx, "MAX_ROWS", 3)
    write_xlsx(pd.DataFrame({"a": [1, 2]}), tmp_path / "ok.xlsx")
    with pytest.raises(OutputError, match="at most 2") as err:
        write_table(pd.DataFrame({"a": [1, 2, 3]}), tmp_path / "t.xlsx")
    assert "CSV" in err.value.hint
    assert not (tmp_path / "t.xlsx").exists()


def test_control_characters_replaced_and_logged(tmp_path, caplog):
    texts = ["a\x00b\x1fc", "tab\tline\nret\r", "\ud800x", "\ufffe"]  # lone surrogate:
    df = pd.DataFrame({"名称": pd.Series(texts, dtype=object)})  # only in an object column
    path = tmp_path / "t.xlsx"
    with caplog.at_level(logging.WARNING, logger="spatialplan.io._xlsx"):
        write_xlsx(df, path)
    assert "4 character(s) that XML cannot hold replaced with U+FFFD" in caplog.text
    values = [c.value for c in openpyxl.load_workbook(path).active["A"]][1:]
    assert values == ["a\ufffdb\ufffdc", "tab\tline\nret\r", "\ufffdx", "\ufffd"]


def test_escaping_of_markup_and_sheet_names(tmp_path):
    df = pd.DataFrame({"<b>&": ["</t></is></c><c>", "a & b"]})
    path = tmp_path / "t.xlsx"
    write_xlsx(df, path, sheet_name="表 & <1>")
    wb = openpyxl.load_workbook(path)
    ws = wb["表 & <1>"]
    assert [c.value for c in ws["A"]] == ["<b>&", "</t></is></c><c>", "a & b"]
    for bad in ("a/b", "x" * 32, "", "'q'"):
        with pytest.raises(OutputError, match="sheet name"):
            write_xlsx(df, tmp_path / "bad.xlsx", sheet_name=bad)


def test_empty_and_wide_tables(tmp_path):
    write_xlsx(pd.DataFrame({"a": pd.Series([], dtype=float), "b": []}), tmp_path / "e.xlsx")
    back = pd.read_excel(tmp_path / "e.xlsx")
    assert list(back.columns) == ["a", "b"] and len(back) == 0
    wide = pd.DataFrame([list(range(30))], columns=[f"c{i}" for i in range(30)])
    write_xlsx(wide, tmp_path / "w.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "w.xlsx").active
    assert ws["AD2"].value == 29
    assert column_letter(16383) == "XFD"


def test_index_kept_when_asked(tmp_path):
    df = pd.DataFrame({"v": [1.5]}, index=pd.Index(["T1"], name="code"))
    path = write_table(df, tmp_path / "t.xlsx", index=True)
    assert [c.value for c in openpyxl.load_workbook(path).active[2]] == ["T1", 1.5]


def test_many_rows_span_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(_xlsx, "_CHUNK_ROWS", 7)
    df = pd.DataFrame({"i": range(50), "s": [f"行{i}" if i % 3 else None for i in range(50)]})
    path = tmp_path / "t.xlsx"
    write_xlsx(df, path, bold_rows=[i % 10 == 0 for i in range(50)])
    back = pd.read_excel(path)
    assert back["i"].tolist() == list(range(50))
    assert back["s"].isna().tolist() == [i % 3 == 0 for i in range(50)]
    ws = openpyxl.load_workbook(path).active
    assert ws["A12"].font.b and not ws["A13"].font.b


# --------------------------------------------------------------------------------------------
# the Arrow path builds the same bytes as the Python one
# --------------------------------------------------------------------------------------------

needs_arrow = pytest.mark.skipif(_xlsx.arrow_compute() is None,
                                 reason="pyarrow not installed (or unlike repr)")


def _many_kinds(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    words = np.array(["示范镇", "a&b", "<x>", "", "plain", 'q"uote', "c,omma", "n\nl", "c\rr",
                      "=1+1", "0520", " sp ", "😀", "x" * 40], dtype=object)
    floats = rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64).copy()
    floats[::7] = np.nan
    floats[3] = np.inf
    stamps = pd.to_datetime(rng.integers(0, 2_000_000_000, n), unit="s")
    return pd.DataFrame({
        "bits": floats,
        "mag": rng.random(n) * 10.0 ** rng.integers(-8, 20, n),
        "zero": np.where(rng.random(n) < .5, 0.0, -0.0),
        "int": rng.integers(-2**62, 2**62, n),
        "Int64": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
        "bool": rng.random(n) < .5,
        "obj": pd.Series(words[rng.integers(0, len(words), n)], dtype=object),
        "objnone": pd.Series([None if i % 3 == 0 else w for i, w in
                              enumerate(words[rng.integers(0, len(words), n)])], dtype=object),
        "string": pd.array(words[rng.integers(0, len(words), n)], dtype="string"),
        "mixed": pd.Series([i if i % 4 else f"小计{i}" for i in range(n)], dtype=object),
        "day": stamps.normalize(),
        "when": stamps.where(rng.random(n) < .9),
        "old": pd.Series(pd.to_datetime(["1899-12-01"] * n)).where(np.arange(n) % 50 == 0),
        "ctrl": pd.Series(["a\x01b" if i == 5 else "ok" for i in range(n)], dtype=object),
    })


def _python_bytes(monkeypatch, frame, path, **options) -> bytes:
    with monkeypatch.context() as m:
        m.setattr(_xlsx, "arrow_compute", lambda: None)
        write_xlsx(frame, path, **options)
    return path.read_bytes()


@needs_arrow
@pytest.mark.parametrize("options", [
    {},
    {"bold_rows": [i % 9 == 0 for i in range(400)],
     "number_formats": {"mag": "#,##0.00", "int": "0", "string": "@"}},
    {"number_formats": {"zero": "0.00", "day": "yyyy/m/d"}},
])
def test_arrow_and_python_cells_give_the_same_bytes(tmp_path, monkeypatch, options):
    frame = _many_kinds()
    monkeypatch.setattr(_xlsx, "_CHUNK_ROWS", 97)  # chunks that split the special rows
    widths = [12.5] * frame.shape[1]
    arrow = write_xlsx(frame, tmp_path / "a.xlsx", widths=widths, **options).read_bytes()
    assert arrow == _python_bytes(monkeypatch, frame, tmp_path / "p.xlsx", widths=widths,
                                  **options)
    sheet = zipfile.ZipFile(tmp_path / "a.xlsx").read("xl/worksheets/sheet1.xml")
    assert sheet.count(b"<row ") == 401 and b"&amp;" in sheet and b"&#13;" in sheet


@needs_arrow
def test_arrow_path_keeps_the_python_rules_for_rare_cells(tmp_path, monkeypatch, caplog):
    frame = pd.DataFrame({
        "surrogate": pd.Series(["\ud800x", "ok"], dtype=object),
        "long": ["x" * 20_000, "y"],
        "empty": pd.Series([None, None], dtype=object),
        "strempty": pd.array(["", None], dtype="string"),
        "inf": [-np.inf, 1.0],
    })
    with caplog.at_level(logging.WARNING, logger="spatialplan.io._xlsx"):
        arrow = write_xlsx(frame, tmp_path / "a.xlsx").read_bytes()
    assert "1 character(s)" in caplog.text
    assert arrow == _python_bytes(monkeypatch, frame, tmp_path / "p.xlsx")
    with pytest.raises(OutputError, match="32,767"):
        write_xlsx(pd.DataFrame({"a": ["ok", "x" * 40_000]}), tmp_path / "long.xlsx")


@needs_arrow
def test_float_texts_are_repr():
    rng = np.random.default_rng(11)
    values = np.concatenate([
        rng.integers(0, 2**64, 200_000, dtype=np.uint64).view(np.float64),
        rng.random(100_000) * 10.0 ** rng.integers(-12, 24, 100_000),
        np.round(rng.random(50_000) * 1e6, 2), np.arange(-500.0, 500.0),
        [0.0, -0.0, 1e16, 1e16 - 2, 1e-4, 9.999999999999999e-05, 5e-324, 1e10, 9999999999.5,
         1.7976931348623157e308, np.nan, np.inf, -np.inf],
    ])
    texts = _xlsx.float_texts(values).to_pylist()
    assert texts == [repr(v) if np.isfinite(v) else None for v in values.tolist()]


@needs_arrow
def test_a_formatter_unlike_repr_turns_the_arrow_path_off(monkeypatch):
    arrow = _xlsx._arrow_modules()
    assert _xlsx._floats_like_repr(arrow)
    pc = arrow.pc
    monkeypatch.setattr(_xlsx, "_float_texts", lambda a, v: pc.cast(arrow.pa.array(v),
                                                                    arrow.pa.large_string()))
    assert not _xlsx._floats_like_repr(arrow)  # Arrow's own text: "1" for 1.0, "1e+10"


@needs_arrow
def test_utf8_view_of_a_slice():
    pa = _xlsx.arrow_compute().pa
    texts = pa.array(["ab", "示范", "", "z"], type=pa.large_string())
    assert bytes(_xlsx.utf8_view(texts.slice(1, 2))) == "示范".encode()
    assert bytes(_xlsx.utf8_view(texts.slice(4, 0))) == b""
    with pytest.raises(ValueError):
        _xlsx.utf8_view(pa.array(["a", None], type=pa.large_string()))


def test_sheet_compressed_behind_gives_the_same_bytes(tmp_path, monkeypatch):
    from spatialplan.core import _parallel

    monkeypatch.setattr(_xlsx, "_CHUNK_ROWS", 7)
    started = []
    init = _xlsx._Behind.__init__

    def counted(self, entry, **kw):
        started.append(1)
        init(self, entry, **kw)

    monkeypatch.setattr(_xlsx._Behind, "__init__", counted)
    frame = _many_kinds(60)
    with _parallel.limited(1):
        one = write_xlsx(frame, tmp_path / "one.xlsx").read_bytes()
    assert started == []
    with _parallel.limited(2):
        two = write_xlsx(frame, tmp_path / "two.xlsx").read_bytes()
    assert started == [1] and one == two


def test_an_error_while_compressing_behind_is_raised(tmp_path, monkeypatch):
    import threading

    from spatialplan.core import _parallel

    class DiskFull:
        def __init__(self, entry):
            self.entry, self.calls = entry, 0

        def write(self, data):
            self.calls += 1
            if self.calls == 4:
                raise OSError(28, "No space left on device")
            return self.entry.write(data)

    monkeypatch.setattr(_xlsx, "_CHUNK_ROWS", 7)
    init = _xlsx._Behind.__init__
    monkeypatch.setattr(_xlsx._Behind, "__init__",
                        lambda self, entry, **kw: init(self, DiskFull(entry), **kw))
    with _parallel.limited(2), pytest.raises(OutputError, match=r"disk is full .No space"):
        write_table(_many_kinds(60), tmp_path / "t.xlsx")
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "spatialplan-xlsx"]


@pytest.mark.parametrize("sheet", ["统计表", "O'Brien & <1>"])
def test_print_setup_landscape_fit_to_width_header_on_every_page(tmp_path, sheet):
    path = write_xlsx(_table(), tmp_path / "t.xlsx", sheet_name=sheet)
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet]
    assert ws.page_setup.orientation == "landscape"
    assert ws.page_setup.paperSize == 9  # A4
    assert ws.sheet_properties.pageSetUpPr.fitToPage is True
    assert (int(ws.page_setup.fitToWidth), int(ws.page_setup.fitToHeight)) == (1, 0)
    assert ws.print_title_rows == "$1:$1"  # the header row repeats on every printed page
    with zipfile.ZipFile(path) as zf:
        workbook = zf.read("xl/workbook.xml").decode("utf-8")
    assert '<definedName name="_xlnm.Print_Titles" localSheetId="0">' in workbook
    # the same file through write_table (township_stats.xlsx, line_conflicts.xlsx, 时序表)
    ws2 = openpyxl.load_workbook(write_table(_table(), tmp_path / "w.xlsx")).active
    assert ws2.page_setup.orientation == "landscape" and ws2.print_title_rows == "$1:$1"


def _int_objects(n: int = 300) -> pd.DataFrame:
    """Object columns of Python ints (feature numbers) with every kind of missing value, and
    near misses that must keep the per-value path (bools, numpy ints, ints beyond 64 bits)."""
    missing = [None, np.nan, pd.NA]
    return pd.DataFrame({
        "ints": pd.Series([missing[i % 3] if i % 10 == 0 else (i * 7919 - 10**6)
                           for i in range(n)], dtype=object),
        "extremes": pd.Series([2**63 - 1, -2**63, 0, -1] * (n // 4), dtype=object),
        "huge": pd.Series([2**64 if i == 3 else i for i in range(n)], dtype=object),
        "bools": pd.Series([True if i == 5 else i for i in range(n)], dtype=object),
        "numpy": pd.Series([np.int64(i) if i % 2 else i for i in range(n)], dtype=object),
        "all missing": pd.Series([None] * n, dtype=object),
    })


@needs_arrow
@pytest.mark.parametrize("bold", [False, True])
def test_int_object_columns_give_the_python_bytes(tmp_path, monkeypatch, bold):
    frame = _int_objects()
    monkeypatch.setattr(_xlsx, "_CHUNK_ROWS", 97)
    options = {"bold_rows": [i % 9 == 0 for i in range(len(frame))]} if bold else {}
    options["number_formats"] = {"ints": "0"}
    arrow = write_xlsx(frame, tmp_path / "a.xlsx", **options).read_bytes()
    assert arrow == _python_bytes(monkeypatch, frame, tmp_path / "p.xlsx", **options)


@needs_arrow
def test_int_texts_only_for_plain_ints():
    frame = _int_objects()
    assert _xlsx.int_texts(frame["ints"]).to_pylist() == [
        None if i % 10 == 0 else str(i * 7919 - 10**6) for i in range(len(frame))]
    assert _xlsx.int_texts(frame["extremes"]).to_pylist()[:2] == [str(2**63 - 1), str(-2**63)]
    for name in ("huge", "bools", "numpy", "all missing"):
        assert _xlsx.int_texts(frame[name]) is None, name
