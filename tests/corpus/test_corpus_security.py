"""Hostile-input corpus: what an outside audit tried, and its variants (issue 15, items 1, 3,
10, 11).

- Network and files outside the plan: a DEM VRT whose sources are URLs, ``/vsi*`` paths,
  driver strings, files outside the folder (also through a symlink or a nested VRT), raw bands,
  entities; a web-service XML posing as a raster; an OGR VRT. A local TCP listener counts the
  connections: there must be none, both through the CLI and when GDAL is called directly
  below spatialplan's own checks (the process-wide GDAL lock).
- Terminal escapes: ESC/OSC/CSI, 8-bit CSI and bidi overrides in a plan name, a project id and
  a file name never reach stdout or stderr raw.
- A TOML nested 100,000 levels deep, an oversized plan, bad ``SPATIALPLAN_THREADS`` values.
- Named pipes as a layer, a sidecar, the plan, the rulebook, the DEM, a VRT source, the
  catalogue: refused at once, never read (run in subprocesses with a timeout: a run that
  blocks is killed and fails the test).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine

from spatialplan import errors
from spatialplan.analysis.terrain import read_terrain
from spatialplan.cli import main
from spatialplan.core import _gdal_env
from spatialplan.io.read import read_plan

LON, LAT = 107.5, 27.8
GK36 = "EPSG:4545"

# -- builders --------------------------------------------------------------------------------


def towns() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"XZQDM": ["520123001"], "XZQMC": ["示范镇"]},
                            geometry=[shapely.box(LON, LAT, LON + 0.05, LAT + 0.05)],
                            crs="EPSG:4490")


def projects(ids: list[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"XMDM": ids, "XMMC": [f"项目{i}" for i in range(len(ids))], "XMLB": ["卫生院"] * len(ids)},
        geometry=[shapely.box(LON + 0.01 * i, LAT, LON + 0.01 * i + 0.005, LAT + 0.005)
                  for i in range(len(ids))], crs="EPSG:4490")


def write_plan(folder: Path, *, name: str = "corpus", dem: str | None = None,
               extra: str = "", project_ids: list[str] | None = None) -> Path:
    """A plan with townships (and projects, a DEM) in ``folder``."""
    pyogrio.write_dataframe(towns(), folder / "towns.gpkg")
    text = f'[plan]\nname = "{name}"\n{extra}\n[layers.townships]\npath = "towns.gpkg"\n'
    if project_ids is not None:
        pyogrio.write_dataframe(projects(project_ids), folder / "projects.gpkg")
        text += '\n[layers.projects]\npath = "projects.gpkg"\n'
    if dem is not None:
        text += f'\n[rasters.dem]\npath = "{dem}"\n'
    plan = folder / "plan.toml"
    plan.write_text(text, encoding="utf-8")
    return plan


def write_tif(path: Path) -> Path:
    """A 20 x 20 GeoTIFF DEM (10 m cells, EPSG:4545) inside the township."""
    x0, y0 = towns().to_crs(GK36).total_bounds[[0, 3]]
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=1,
                       dtype="float32", crs=GK36, nodata=-9999.0,
                       transform=Affine(10.0, 0.0, float(x0) + 200, 0.0, -10.0,
                                        float(y0) - 200)) as ds:
        ds.write(np.full((20, 20), 800.0, dtype="float32"), 1)
    return path


def vrt_text(source: str, *, relative: bool = False, band: str = "",
             tag: str = "SourceFilename") -> str:
    """A 20 x 20 VRT DEM with one simple source (``band``: extra VRTRasterBand attributes)."""
    x0, y0 = towns().to_crs(GK36).total_bounds[[0, 3]]
    return (f'<VRTDataset rasterXSize="20" rasterYSize="20"><SRS>{GK36}</SRS>'
            f"<GeoTransform>{float(x0) + 200}, 10, 0, {float(y0) - 200}, 0, -10</GeoTransform>"
            f'<VRTRasterBand dataType="Float32" band="1"{band}><NoDataValue>-9999</NoDataValue>'
            f'<SimpleSource><{tag} relativeToVRT="{int(relative)}">{source}</{tag}>'
            "<SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>")


@pytest.fixture()
def listener() -> Iterator[tuple[int, list[int]]]:
    """(port, [connections]) of a TCP listener on 127.0.0.1 answering 404 to everything."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    count = [0]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            count[0] += 1
            with conn:
                try:
                    conn.settimeout(2)
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], count
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        server.close()
        thread.join(timeout=5)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def assert_refused(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.rstrip("\n").splitlines()[-1].startswith("spatialplan: error:"), err
    message = " ".join(err.split())
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


# -- 1. network and files outside the plan ---------------------------------------------------

#: VRT sources that would reach the listener (``{port}`` is filled in)
REMOTE_SOURCES = {
    "vsicurl": "/vsicurl/http://127.0.0.1:{port}/x.tif",
    "plain-http": "http://127.0.0.1:{port}/x.tif",
    "vsicurl-url-option": "/vsicurl?url=http://127.0.0.1:{port}/x.tif",
    "vsizip-over-vsicurl": "/vsizip//vsicurl/http://127.0.0.1:{port}/x.zip/x.tif",
    "vrt-connection-string": "vrt:///vsicurl/http://127.0.0.1:{port}/x.tif",
    "gtiff-dir-prefix": "GTIFF_DIR:1:/vsicurl/http://127.0.0.1:{port}/x.tif",
}


@pytest.mark.parametrize("command", ["validate", "check"])
@pytest.mark.parametrize("kind", sorted(REMOTE_SOURCES))
def test_vrt_with_remote_source_is_refused_without_a_connection(
        tmp_path: Path, listener, capsys, kind: str, command: str) -> None:
    port, count = listener
    (tmp_path / "dem.vrt").write_text(vrt_text(REMOTE_SOURCES[kind].format(port=port)))
    plan = write_plan(tmp_path, dem="dem.vrt", project_ids=["XM1"])
    argv = [command, str(plan), "-q"] + (["--out", str(tmp_path / "out")]
                                         if command == "check" else [])
    code, _, err = run_cli(argv, capsys)
    assert_refused(code, err, "VRT sources must be local files", "dem.vrt")
    assert count[0] == 0
    assert not (tmp_path / "out").exists()


def test_wms_description_named_as_a_vrt_source_is_refused(tmp_path: Path, listener,
                                                          capsys) -> None:
    port, count = listener
    (tmp_path / "tiles.xml").write_text(wms_xml(port))
    (tmp_path / "dem.vrt").write_text(vrt_text("tiles.xml", relative=True))
    code, _, err = run_cli(["validate", str(write_plan(tmp_path, dem="dem.vrt")), "-q"], capsys)
    assert_refused(code, err, "not a GDAL VRT", "tiles.xml")
    assert count[0] == 0


def test_wms_description_named_as_the_dem_is_refused(tmp_path: Path, listener,
                                                     capsys) -> None:
    port, count = listener
    (tmp_path / "dem.tif").write_text(wms_xml(port))
    code, _, err = run_cli(["validate", str(write_plan(tmp_path, dem="dem.tif")), "-q"], capsys)
    assert_refused(code, err, "not a GDAL VRT", "dem.tif")
    assert count[0] == 0


def wms_xml(port: int) -> str:
    return (f"<GDAL_WMS><Service name=\"TMS\"><ServerUrl>http://127.0.0.1:{port}/${{z}}/${{x}}/"
            "${y}.png</ServerUrl></Service><DataWindow><UpperLeftX>-20037508.34</UpperLeftX>"
            "<UpperLeftY>20037508.34</UpperLeftY><LowerRightX>20037508.34</LowerRightX>"
            "<LowerRightY>-20037508.34</LowerRightY><TileLevel>1</TileLevel><TileCountX>1"
            "</TileCountX><TileCountY>1</TileCountY><YOrigin>top</YOrigin></DataWindow>"
            "<Projection>EPSG:3857</Projection><BlockSizeX>256</BlockSizeX><BlockSizeY>256"
            "</BlockSizeY><BandsCount>1</BandsCount></GDAL_WMS>")


@pytest.mark.parametrize("kind", [*sorted(REMOTE_SOURCES), "wms-file"])
def test_gdal_itself_makes_no_connection(tmp_path: Path, listener, kind: str) -> None:
    """Below spatialplan's checks: GDAL opened directly (both libraries) reaches nothing."""
    port, count = listener
    _gdal_env.lock_down()  # done on import of spatialplan.io.read; idempotent
    if kind == "wms-file":
        (tmp_path / "tiles.xml").write_text(wms_xml(port))
        source = str(tmp_path / "tiles.xml")
    else:
        source = REMOTE_SOURCES[kind].format(port=port)
    vrt = tmp_path / "dem.vrt"
    vrt.write_text(vrt_text(source))
    for attempt in (lambda: rasterio.open(vrt).read(1), lambda: rasterio.open(source).read(1),
                    lambda: pyogrio.read_info(source)):
        with contextlib.suppress(Exception):  # only the connection count matters here
            attempt()
    assert count[0] == 0


def test_allow_remote_is_the_explicit_opt_in(listener) -> None:
    """The listener does see GDAL when the user allows it, and the lock comes back after."""
    port, count = listener
    with _gdal_env.remote_allowed(), pytest.raises(rasterio.errors.RasterioIOError):
        rasterio.open(f"/vsicurl/http://127.0.0.1:{port}/a.tif")
    assert count[0] > 0
    seen = count[0]
    with pytest.raises(rasterio.errors.RasterioIOError):
        rasterio.open(f"/vsicurl/http://127.0.0.1:{port}/b.tif")
    assert count[0] == seen
    assert _gdal_env.is_locked()


def test_gdal_options_hold_in_both_libraries() -> None:
    _gdal_env.lock_down()
    from rasterio import _env as rio_env

    for key, value in _gdal_env.LOCKED_OPTIONS.items():
        assert pyogrio.get_gdal_config_option(key) == value
        assert rio_env.get_gdal_config(key, normalize=False) == value
    assert "HTTP" not in pyogrio.list_drivers()
    with rasterio.Env() as env:
        drivers = env.drivers()
    assert "GTiff" in drivers and "VRT" in drivers
    assert not {"HTTP", "WMS", "WMTS", "WCS", "STACIT", "GTI"} & set(drivers)


def _outside_tif(tmp_path: Path) -> Path:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    return write_tif(outside / "secret.tif")


#: VRT variants reading local files they may not: (builder(plan folder, outside tif), fragment)
LOCAL_ESCAPES: dict[str, tuple[Callable[[Path, Path], str], str]] = {
    "etc-passwd": (lambda d, o: vrt_text("/etc/passwd"), "outside the VRT's folder"),
    "absolute-outside": (lambda d, o: vrt_text(str(o)), "outside the VRT's folder"),
    "dotdot-relative": (lambda d, o: vrt_text("../elsewhere/secret.tif", relative=True),
                        "outside the VRT's folder"),
    "symlink-inside": (lambda d, o: (os.symlink(o, d / "link.tif"),
                                     vrt_text("link.tif", relative=True))[1],
                       "outside the VRT's folder"),
    "nested-vrt": (lambda d, o: ((d / "inner.vrt").write_text(vrt_text(str(o))),
                                 vrt_text("inner.vrt", relative=True))[1],
                   "outside the VRT's folder"),
    "warped-source-dataset": (lambda d, o: vrt_text(str(o), tag="SourceDataset"),
                              "outside the VRT's folder"),
    "raw-band": (lambda d, o: (write_tif(d / "in.tif"),
                               vrt_text("in.tif", relative=True,
                                        band=' subClass="VRTRawRasterBand"'))[1],
                 "raw raster band"),
    "python-pixel-function": (lambda d, o: (write_tif(d / "in.tif"), vrt_text(
        "in.tif", relative=True, band=' subClass="VRTDerivedRasterBand"').replace(
        "<NoDataValue>", "<PixelFunctionLanguage>Python</PixelFunctionLanguage>"
        "<NoDataValue>"))[1], "pixel-function code"),
    "entity": (lambda d, o: '<!DOCTYPE v [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
               + vrt_text("&e;"), "DOCTYPE"),
    "cycle": (lambda d, o: vrt_text("dem.vrt", relative=True), "cycle"),
    "text-file-source": (lambda d, o: ((d / "notes.txt").write_text("x"),
                                       vrt_text("notes.txt", relative=True))[1],
                         "neither a GeoTIFF nor a VRT"),
}


@pytest.mark.parametrize("kind", sorted(LOCAL_ESCAPES))
def test_vrt_reading_outside_the_folder_is_refused(tmp_path: Path, capsys, kind: str) -> None:
    folder = tmp_path / "plan"
    folder.mkdir()
    build, fragment = LOCAL_ESCAPES[kind]
    (folder / "dem.vrt").write_text(build(folder, _outside_tif(tmp_path)))
    plan = write_plan(folder, dem="dem.vrt")
    with pytest.raises(errors.RasterError, match=re.escape(fragment)):
        read_plan(plan)
    with pytest.raises(errors.RasterError, match=re.escape(fragment)):
        read_terrain(folder / "dem.vrt", crs=GK36)
    code, _, err = run_cli(["validate", str(plan), "-q"], capsys)
    assert_refused(code, err, fragment, "dem.vrt")


def test_vrt_of_local_tiles_is_read(tmp_path: Path, capsys) -> None:
    """The checks refuse what they must only: a VRT of a GeoTIFF below its folder is read."""
    (tmp_path / "tiles").mkdir()
    write_tif(tmp_path / "tiles" / "a.tif")
    (tmp_path / "dem.vrt").write_text(vrt_text("tiles/a.tif", relative=True))
    (tmp_path / "all.vrt").write_text(vrt_text("dem.vrt", relative=True))  # nested
    plan = write_plan(tmp_path, dem="all.vrt")
    assert read_plan(plan).rasters["dem"].res == (10.0, 10.0)
    terrain = read_terrain(tmp_path / "all.vrt", crs=GK36)
    assert float(terrain.elevation.max()) == 800.0
    code, out, _ = run_cli(["validate", str(plan), "-q"], capsys)
    assert code == 0 and "all.vrt" in out


def test_ogr_vrt_is_unknown_to_gdal(tmp_path: Path) -> None:
    """An OGR VRT (which reads any local file) cannot be opened at all, whatever its name."""
    import spatialplan.io.read  # noqa: F401 - locks GDAL

    vrt = tmp_path / "red.vrt"
    vrt.write_text('<OGRVRTDataSource><OGRVRTLayer name="t"><SrcDataSource>/etc/passwd'
                   "</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>")
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.list_layers(vrt)


# -- 3. terminal escapes ---------------------------------------------------------------------

#: what a terminal acts on: C0 (but the line feed), DEL, C1, bidi controls
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HOSTILE = {
    "osc-title": "\x1b]0;pwned\x07",
    "csi-clear": "\x1b[2J",
    "c1-csi": "\x9b2J",
    "bidi-override": "\u202egpj.exe",
    "carriage-return": "ok\rspatialplan: error: forged",
}


def _toml_basic(text: str) -> str:
    """``text`` as a TOML basic string body (controls as \\u escapes)."""
    return "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f else c
                   for c in text)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_plan_name_and_project_id_never_reach_the_terminal_raw(tmp_path: Path, capsys,
                                                               kind: str) -> None:
    evil = HOSTILE[kind]
    plan = write_plan(tmp_path, name=_toml_basic(f"plan{evil}"),
                      project_ids=[f"XM{evil}", f"XM{evil}"])  # duplicates: logged, rejected
    code, out, err = run_cli(["validate", str(plan), "-q"], capsys)
    assert code == 0, err
    assert not RAW_CONTROL.search(out + err), repr(out + err)
    assert "duplicate project_id" in out and "share a project_id" in err
    escaped = evil.encode("unicode_escape").decode("ascii")[:4]
    assert escaped in out and escaped in err
    code, out, err = run_cli(["validate", str(plan), "-q", "--json"], capsys)
    assert code == 0 and not RAW_CONTROL.search(out + err), repr(out + err)


def test_summary_and_error_lines_escape_controls(tmp_path: Path, capsys) -> None:
    evil = HOSTILE["osc-title"] + HOSTILE["c1-csi"]
    plan = write_plan(tmp_path, name=_toml_basic(f"plan{evil}"))
    code, out, err = run_cli(["stats", str(plan), "--out", str(tmp_path / "out"), "-q"],
                             capsys)
    assert code == 0, err
    assert "plan\\x1b]0;pwned\\x07\\x9b2J" in out
    assert not RAW_CONTROL.search(out + err), repr(out + err)
    # an error naming a hostile file name
    (tmp_path / "plan.toml").write_text(
        f'[layers.townships]\npath = "{_toml_basic("towns" + evil)}.gpkg"\n', encoding="utf-8")
    code, out, err = run_cli(["validate", str(plan), "-q"], capsys)
    assert_refused(code, err, "not found", "towns\\x1b]0;pwned\\x07")
    assert not RAW_CONTROL.search(out + err), repr(out + err)


def test_visible() -> None:
    from spatialplan.core._text import visible

    assert visible("a\x1b[2Jb\x07\x9b\u202e\u2066\x7f\n") == \
        "a\\x1b[2Jb\\x07\\x9b\\u202e\\u2066\\x7f\\n"
    assert visible("示范镇 a\tb", keep_newlines=True) == "示范镇 a\\tb"
    assert visible("x\ny", keep_newlines=True) == "x\ny"


# -- 10. deep TOML, bad settings ------------------------------------------------------------

DEEP = 100_000
DEEP_TOML = {
    "arrays": "x = " + "[" * DEEP + "]" * DEEP + "\n",
    "inline-tables": "x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n",
}


@pytest.mark.parametrize("kind", sorted(DEEP_TOML))
def test_deeply_nested_plan_is_a_plan_error(tmp_path: Path, capsys, kind: str) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(DEEP_TOML[kind], encoding="utf-8")
    with pytest.raises(errors.PlanError, match="too deeply"):
        read_plan(plan)
    code, _, err = run_cli(["validate", str(plan), "-q"], capsys)
    assert_refused(code, err, "too deeply", "plan.toml")


@pytest.mark.parametrize("kind", sorted(DEEP_TOML))
def test_deeply_nested_rulebook_is_a_rulebook_error(tmp_path: Path, capsys, kind: str) -> None:
    (tmp_path / "rules.toml").write_text(DEEP_TOML[kind], encoding="utf-8")
    plan = write_plan(tmp_path, extra='\n[rules]\npath = "rules.toml"\n')
    with pytest.raises(errors.RulebookError, match="too deeply"):
        read_plan(plan)
    code, _, err = run_cli(["validate", str(plan), "-q"], capsys)
    assert_refused(code, err, "too deeply", "rules.toml")


def test_oversized_plan_is_refused(tmp_path: Path, capsys) -> None:
    plan = write_plan(tmp_path)
    with plan.open("a", encoding="utf-8") as fh:
        fh.write(("# " + "x" * 1022 + "\n") * 1100)  # 1.1 MB of comments
    code, _, err = run_cli(["validate", str(plan), "-q"], capsys)
    assert_refused(code, err, "larger than 1,048,576 bytes", "plan.toml")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "1_0", "999999", "٣"])
def test_bad_thread_setting_is_exit_2(tmp_path: Path, capsys, monkeypatch,
                                      value: str) -> None:
    monkeypatch.setenv("SPATIALPLAN_THREADS", value)
    plan = write_plan(tmp_path)
    code, _, err = run_cli(["validate", str(plan), "-q"], capsys)
    assert_refused(code, err, "SPATIALPLAN_THREADS must be a whole number from 1 to 256")


def test_good_thread_setting_is_used(tmp_path: Path, monkeypatch) -> None:
    from spatialplan.core._parallel import n_threads

    monkeypatch.setenv("SPATIALPLAN_THREADS", " 3 ")
    assert n_threads() == 3


# -- 11. named pipes and other non-regular files --------------------------------------------


def _unblock(paths: list[Path]) -> None:
    """Open every FIFO for writing and close it: a reader blocked on one gets EOF."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass


def run_with_deadline(argv: list[str], fifos: list[Path], seconds: float = 60.0
                      ) -> tuple[int, str]:
    """``spatialplan argv`` in a subprocess (a hang cannot stall the suite): (code, stderr);
    if it blocks, it is killed, the FIFOs are unblocked and the test fails."""
    try:
        done = subprocess.run([sys.executable, "-m", "spatialplan", *argv], capture_output=True,
                              text=True, timeout=seconds, check=False)
    except subprocess.TimeoutExpired:
        _unblock(fifos)
        pytest.fail(f"{argv} blocked on a named pipe")
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stderr


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


#: where a FIFO is put: (builder(folder) → (plan, fifo), fragment)
FIFO_CASES: dict[str, Callable[[Path], tuple[Path, Path]]] = {
    "layer": lambda d: (write_plan(d), _fifo(d / "towns.gpkg")),
    "shapefile-dbf": lambda d: (_shp_plan(d), _fifo(d / "towns.dbf")),
    "shapefile-cpg": lambda d: (_shp_plan(d), _fifo(d / "towns.cpg")),
    "gpkg-wal": lambda d: (write_plan(d), _fifo(d / "towns.gpkg-wal")),
    "plan-file": lambda d: (d / "plan.toml", _fifo(d / "plan.toml")),
    "rulebook": lambda d: (write_plan(d, extra='\n[rules]\npath = "rules.toml"\n'),
                           _fifo(d / "rules.toml")),
    "dem": lambda d: (write_plan(d, dem="dem.tif"), _fifo(d / "dem.tif")),
    "dem-sidecar": lambda d: (write_plan(d, dem="dem.tif"),
                              (write_tif(d / "dem.tif"), _fifo(d / "dem.tif.aux.xml"))[1]),
    "vrt-source": lambda d: (write_plan(d, dem="dem.vrt"),
                             ((d / "dem.vrt").write_text(vrt_text("a.tif", relative=True)),
                              _fifo(d / "a.tif"))[1]),
}


def _shp_plan(folder: Path) -> Path:
    pyogrio.write_dataframe(towns(), folder / "towns.shp", encoding="UTF-8")
    plan = folder / "plan.toml"
    plan.write_text('[layers.townships]\npath = "towns.shp"\n', encoding="utf-8")
    return plan


@pytest.mark.parametrize("kind", sorted(FIFO_CASES))
def test_named_pipe_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    plan, fifo = FIFO_CASES[kind](tmp_path)
    code, err = run_with_deadline(["validate", str(plan), "-q"], [fifo])
    assert code == 2, err
    assert "named pipe (FIFO)" in err and fifo.name in err, err


def test_named_pipe_layer_in_a_subprocess(tmp_path: Path) -> None:
    """The audit's own case, in a separate process with a timeout (a hang cannot stall us)."""
    plan = write_plan(tmp_path)
    _fifo(tmp_path / "towns.gpkg")
    try:
        done = subprocess.run([sys.executable, "-m", "spatialplan", "validate", str(plan), "-q"],
                              capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        _unblock([tmp_path / "towns.gpkg"])
        pytest.fail("validate blocked on a named pipe")
    assert done.returncode == 2, done.stderr
    assert "named pipe (FIFO)" in done.stderr and "Traceback" not in done.stderr


def test_catalogue_fifo_is_refused(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path / "facility_types.csv")
    code = ("from spatialplan.rules.catalog import read_catalog\n"
            "from spatialplan.errors import RulebookError\n"
            "try:\n    read_catalog(__import__('sys').argv[1])\n"
            "except RulebookError as exc:\n    print(exc)\n")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True,
                              text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        _unblock([fifo])
        pytest.fail("read_catalog blocked on a named pipe")
    assert done.returncode == 0, done.stderr
    assert "named pipe (FIFO)" in done.stdout and "facility_types.csv" in done.stdout


def test_socket_as_layer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text('[layers.townships]\npath = "towns.gpkg"\n',
                                        encoding="utf-8")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "towns.gpkg"))
        with pytest.raises(errors.DataSourceError, match="is a socket, not a regular file"):
            read_plan(tmp_path / "plan.toml")


def test_device_as_dem_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.RasterError, match="character device"):
        read_plan(write_plan(tmp_path, dem="/dev/zero"))
