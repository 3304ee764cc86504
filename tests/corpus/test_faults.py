"""Outputs under faults: atomic replacement, full disk, kill mid-write; inputs untouched;
deterministic tables.

Decision on SIGKILL: a writer killed mid-write cannot clean up, so a hidden temporary file
``.<stem>.<random>.tmp<suffix>`` may remain beside the target. The target itself is always the
previous file or a complete new one. Leftover temporaries are not removed automatically (a
concurrent run may own one); they are hidden, never read as outputs, and safe to delete.
A whole run writes inside a staging folder named with its PID and host: the next run into the
same folder removes the staging folders of dead runs (with a warning); SIGTERM and SIGHUP
clean up like Ctrl-C.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from spatialplan.analysis.overlay import township_stats
from spatialplan.cli import main
from spatialplan.errors import OutputError
from spatialplan.io import output

DEMO = Path(__file__).resolve().parents[2] / "layers" / "demo"


def temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name)


def table(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"code": [f"5201{i:05d}" for i in range(n)],
                         "name": ["示范镇"] * n, "area_m2": [i * 1.5 for i in range(n)]})


@pytest.mark.parametrize("name", ["t.csv", "t.xlsx", "m.json", "results.gpkg"])
def test_writers_replace_atomically(tmp_path: Path, name: str) -> None:
    """Each writer goes through a temporary beside the target, then replaces it."""
    target = tmp_path / name

    def write(df: pd.DataFrame) -> None:
        if name.endswith(".json"):
            output.write_json({"n": len(df)}, target)
        elif name.endswith(".gpkg"):
            output.write_results(tmp_path, {"t": df})
        else:
            output.write_table(df, target)

    write(table(3))
    first = target.read_bytes()
    write(table(7))
    assert target.read_bytes() != first
    assert temporaries(tmp_path) == []


def test_failed_write_keeps_previous(tmp_path: Path) -> None:
    """A writer failing inside the temporary block leaves the previous file and no temporary."""
    target = tmp_path / "t.csv"
    output.write_table(table(3), target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError), output.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk gone")
    assert target.read_bytes() == before
    assert temporaries(tmp_path) == []
    with pytest.raises(OutputError):
        output.write_table(table(3), tmp_path / "t.txt")
    assert not (tmp_path / "t.txt").exists() and temporaries(tmp_path) == []


_CHILD = textwrap.dedent("""
    import resource, signal, sys
    import pandas as pd
    from spatialplan.io.output import write_table
    limit = int(sys.argv[2])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    n = int(sys.argv[3])
    df = pd.DataFrame({"code": range(n), "name": ["示范镇污水处理厂"] * n, "x": [0.5] * n})
    print("start", flush=True)
    write_table(df, sys.argv[1])
""")


def _child(target: Path, *, limit: int, rows: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(target), str(limit), str(rows)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_full_disk_leaves_previous_output(tmp_path: Path) -> None:
    """RLIMIT_FSIZE (like ``ulimit -f``): the write fails, the previous file stays intact."""
    target = tmp_path / "big.csv"
    output.write_table(table(3), target)
    before = target.read_bytes()
    proc = _child(target, limit=64 * 1024, rows=200_000)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "File too large" in err or "Errno 27" in err
    assert target.read_bytes() == before
    assert temporaries(tmp_path) == []


@pytest.mark.slow
def test_kill_mid_write_never_leaves_half_file(tmp_path: Path) -> None:
    """SIGKILL while writing: the target is the previous file or a complete new one."""
    target = tmp_path / "big.csv"
    output.write_table(table(3), target)
    before = target.read_bytes()
    proc = _child(target, limit=0, rows=1_500_000)
    assert proc.stdout.readline().strip() == "start"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    data = target.read_bytes()
    if data != before:  # the write finished before the kill: then it is complete
        back = pd.read_csv(target, encoding="utf-8-sig")
        assert len(back) == 1_500_000
    for tmp in temporaries(tmp_path):  # allowed leftovers: hidden, named after the target
        assert tmp.name.startswith(".big.") and tmp.name.endswith(".tmp.csv")
    output.write_table(table(4), target)  # the next run writes normally
    assert len(pd.read_csv(target, encoding="utf-8-sig")) == 4


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_validate_never_modifies_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Hash every demo input before and after ``spatialplan validate`` (a copy of layers/demo)."""
    if not (DEMO / "plan.toml").exists():
        pytest.skip("demo data not generated")
    demo = tmp_path / "demo"
    shutil.copytree(DEMO, demo, ignore=shutil.ignore_patterns("*-journal", "*-wal", "*-shm"))
    before = _digest(demo)
    assert main(["validate", str(demo / "plan.toml"), "-q"]) == 0
    capsys.readouterr()
    assert _digest(demo) == before


def _stats() -> pd.DataFrame:
    towns = gpd.GeoDataFrame({"feature_id": ["townships:0", "townships:1"],
                              "code": ["520123001", "520123002"], "name": ["甲镇", "乙镇"]},
                             geometry=[shapely.box(0, 0, 1000, 1000),
                                       shapely.box(1000, 0, 2000, 1000)], crs="EPSG:4545")
    red = gpd.GeoDataFrame({"feature_id": ["redline:0", "redline:1"]},
                           geometry=[shapely.box(500, 200, 1500, 400),
                                     shapely.box(100, 100, 300, 900)], crs="EPSG:4545")
    return township_stats(towns, redline=red)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_tables_are_byte_identical(tmp_path: Path, suffix: str) -> None:
    """The same inputs give byte-identical tables on a second run (XLSX: across seconds)."""
    a, b = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    output.write_table(_stats(), a)
    if suffix == ".xlsx":
        time.sleep(1.1)  # a writer stamping the current second (as openpyxl did) would differ
    output.write_table(_stats(), b)
    assert a.read_bytes() == b.read_bytes()


# --------------------------------------------------------------------------------------------
# A whole run stopped by a signal: SIGTERM/SIGHUP clean up like Ctrl-C; SIGKILL's leftovers go
# at the next run into the folder
# --------------------------------------------------------------------------------------------

_STOPPED_RUN = textwrap.dedent("""
    import sys, time
    from spatialplan.io import output
    from spatialplan.cli import main

    real = output.write_results

    def slow(*args, **kwargs):  # the GeoPackage is written, then the run is still busy
        path = real(*args, **kwargs)
        print("written", flush=True)
        time.sleep(60)
        return path

    output.write_results = slow
    sys.exit(main(sys.argv[1:]))
""")


def _tiny_plan(folder: Path) -> Path:
    from test_corpus_outputs import build_plan

    return build_plan(folder)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.mark.parametrize(("signum", "fresh"), [(signal.SIGTERM, False), (signal.SIGHUP, False),
                                               (signal.SIGTERM, True), (signal.SIGKILL, False)])
def test_a_run_stopped_by_a_signal_leaves_the_folder_as_it_was(tmp_path, caplog, signum, fresh):
    plan = _tiny_plan(tmp_path / "data")
    out = tmp_path / "new" / "out" if fresh else tmp_path / "out"
    if not fresh:
        out.mkdir()
        (out / "report.html").write_text("the previous run's report")
        (out / "notes.txt").write_text("the user's own file")
    before = _snapshot(out)
    env = {**os.environ, "SPATIALPLAN_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _STOPPED_RUN, "check", str(plan), "--out",
                             str(out), "-q", "--no-map", "--no-layout"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "written"
    staging = [p for p in out.iterdir() if p.name.startswith(".spatialplan-staging-")]
    assert [p.name.split("-")[2] for p in staging] == [str(proc.pid)]
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL and staging[0].exists()
        with caplog.at_level("WARNING", logger="spatialplan"), output.staged_output(out):
            pass  # the next run into the folder
        assert f"removed 1 staging folder(s) left in {out} by interrupted runs" in caplog.text
        assert staging[0].name in caplog.text
    else:
        assert proc.returncode == 128 + signum
        assert f"stopped by {signal.Signals(signum).name}" in err and "Traceback" not in err
    assert _snapshot(out) == before  # hidden folders included: no staging folder is left
    assert not (tmp_path / "new").exists()
