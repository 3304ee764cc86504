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
