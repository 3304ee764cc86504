"""write_check hashes each output as soon as it is written: the manifest's checksums are the
files', failures are raised as before, and no hashing thread outlives the call."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

import spatialplan as sp
import spatialplan.pipeline.write as write_mod
from spatialplan.core._parallel import set_threads
from spatialplan.errors import OutputError

OUTPUTS = ["gpkg", "stats_tables", "schedule", "report"]


@pytest.fixture(params=[1, 2], ids=["serial", "threads"])
def threads(request):
    set_threads(request.param)
    yield request.param
    set_threads(None)


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("spatialplan-hash")]


def test_manifest_checksums_are_the_files(demo_plan, demo_result, tmp_path, threads):
    out = tmp_path / "out"
    written = sp.write_check(demo_plan, demo_result, out, outputs=OUTPUTS)
    manifest = json.loads(written["manifest"].read_text(encoding="utf-8"))
    listed = {entry["file"]: entry["sha256"] for entry in manifest["outputs"].values()}
    assert set(listed) == {p.name for p in out.iterdir()} - {"manifest.json"}
    for name, digest in listed.items():
        assert digest == hashlib.sha256((out / name).read_bytes()).hexdigest(), name
    assert not _hash_threads()


def test_a_failing_hash_is_raised_and_nothing_published(demo_plan, demo_result, tmp_path,
                                                        monkeypatch, threads):
    from spatialplan.io import output

    real = output.sha256_file

    def broken(path, **kwargs):
        if str(path).endswith("schedule.csv"):
            raise OSError("read error")
        return real(path, **kwargs)

    monkeypatch.setattr(output, "sha256_file", broken)
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="cannot write into out: read error; nothing in"):
        sp.write_check(demo_plan, demo_result, out, outputs=OUTPUTS)
    assert not out.exists()
    assert not _hash_threads()


def test_a_failing_job_leaves_no_hashing_behind(demo_plan, demo_result, tmp_path,
                                                monkeypatch, threads):
    from spatialplan.render import schedule

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(schedule, "write_schedule_csv", broken)
    with pytest.raises(OutputError, match=r"cannot write schedule\.csv"):
        sp.write_check(demo_plan, demo_result, tmp_path / "out", outputs=OUTPUTS)
    assert not _hash_threads()


def test_first_jobs_start_before_the_largest(tmp_path):
    started: list[str] = []
    lock = threading.Lock()

    def job(name: str, **kwargs) -> write_mod._Job:
        def write() -> None:
            with lock:
                started.append(name)
        return write_mod._Job({name: tmp_path / name}, write, **kwargs)

    jobs = [job("big", weight=100), job("small", weight=1), job("manifest", first=True)]
    done: list[str] = []
    set_threads(1)
    try:  # one thread: list order
        write_mod._run_jobs(jobs, done=lambda j: done.append(next(iter(j.files))))
    finally:
        set_threads(None)
    assert started == done == ["big", "small", "manifest"]
    started.clear()
    write_mod._run_in_threads(jobs, [2, 0, 1], {}, threads=1)
    assert started == ["manifest", "big", "small"]
    order = sorted(range(3), key=lambda i: (not jobs[i].first, -jobs[i].weight))
    assert order == [2, 0, 1]
