"""Locate bundled data (``layers/``) whether installed plainly or in editable mode."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["layers_dir", "catalog_path", "demo_dir", "demo_plan_path"]


def layers_dir() -> Path:
    """Return the folder holding the bundled ``catalog/`` and ``demo/`` data."""
    return Path(str(importlib.resources.files("spatialplan.layers")))


def catalog_path(name: str) -> Path:
    """Return the path of a bundled catalogue file, e.g. ``"facility_types.csv"``."""
    return layers_dir() / "catalog" / name


def demo_dir() -> Path:
    """Return the folder of the bundled demo township (with its ``plan.toml``)."""
    return layers_dir() / "demo"


def demo_plan_path() -> Path:
    """Return the path of the bundled demo township's ``plan.toml`` (synthetic data).

    Examples
    --------
    >>> demo_plan_path().name
    'plan.toml'
    """
    return demo_dir() / "plan.toml"
