"""Every package folder is installed: setup.cfg lists each folder that holds an ``__init__.py``."""

from __future__ import annotations

import configparser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_setup_cfg_lists_every_package_folder():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    listed = set(cfg["options"]["packages"].split())
    folders = {".".join(p.parent.relative_to(REPO).parts)
               for p in (REPO / "spatialplan").rglob("__init__.py")}
    assert folders, "no package folders found"
    assert folders <= listed, f"missing from setup.cfg [options] packages: {folders - listed}"


def test_the_fast_read_path_comes_with_a_plain_install():
    """``pip install .`` brings pyarrow: the Arrow read path and fast writers need it (issue 21).

    It was only in the ``dask`` extra, and the default install ran the same check 20 % slower.
    """
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in requires("spatialplan") or []]
    plain = {r.name.lower() for r in reqs if r.marker is None
             or r.marker.evaluate({"extra": ""})}
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    # and ADBC's PostgreSQL driver: the bulk read of a PostGIS table (issue 20)
    for name in ("pyarrow", "adbc-driver-postgresql"):
        assert name in plain, name
        assert name in cfg["options"]["install_requires"], name
