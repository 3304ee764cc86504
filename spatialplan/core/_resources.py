"""Locate bundled data (``layers/``) installed, in editable mode, or in a source tree.

Installed (plainly or editable), the repository's top-level ``layers/`` is the package
``spatialplan.layers`` (``setup.cfg`` maps it with ``package_dir``). Imported from a source tree
(e.g. ``python`` started at the repository root, or ``PYTHONPATH`` set to it) there is no such
package: ``spatialplan/`` is imported from the folder and ``layers/`` sits beside it, and that
folder is used.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from spatialplan.errors import DataSourceError

__all__ = ["catalog_path", "demo_dir", "demo_plan_path", "layers_dir"]

#: the top-level ``layers/`` of a source tree: beside the ``spatialplan/`` folder
_SOURCE_LAYERS = Path(__file__).resolve().parents[2] / "layers"


def layers_dir() -> Path:
    """Return the folder holding the bundled ``catalog/`` and ``demo/`` data.

    Raises
    ------
    DataSourceError
        If neither the package ``spatialplan.layers`` nor a source tree's ``layers/`` (with its
        ``catalog/``) is found: a broken installation.

    Example
    -------
    >>> (layers_dir() / "catalog" / "rules.toml").is_file()
    True
    """
    try:
        return Path(str(importlib.resources.files("spatialplan.layers")))
    except ModuleNotFoundError as exc:
        if exc.name != "spatialplan.layers":
            raise
    if (_SOURCE_LAYERS / "catalog").is_dir():
        return _SOURCE_LAYERS
    raise DataSourceError("the bundled data of spatialplan (catalogue, demo) is missing: no "
                          "package 'spatialplan.layers' and no layers/ folder beside "
                          f"{_SOURCE_LAYERS.parent / 'spatialplan'}", path=_SOURCE_LAYERS,
                          hint="reinstall spatialplan (pip install .), or run from a complete "
                          "clone of the repository")


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
