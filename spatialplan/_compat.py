"""Old module paths of the flat 0.x layout, kept as aliases for one release.

Before the layout by stage, every module sat directly in ``spatialplan/`` (``spatialplan.read``,
``spatialplan.overlay``, ...). Importing such a path still works: :class:`_OldPathFinder` hands
back the module at its new place (the same module object, so a ``monkeypatch`` of the old path
patches the real module) with a :class:`DeprecationWarning` that names the new path. The three
old modules whose names became folders (``spatialplan.rules``, ``spatialplan.pipeline``,
``spatialplan.demo``) forward their attributes through :func:`forward_attribute`, and a module
whose names moved to another (:data:`MOVED_NAMES`) through :func:`moved_attribute`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

#: old public module path -> its new path
MOVED: dict[str, str] = {
    "spatialplan.crs": "spatialplan.core.crs",
    "spatialplan.plan": "spatialplan.io.plan",
    "spatialplan.read": "spatialplan.io.read",
    "spatialplan.bubiao": "spatialplan.io.bubiao",
    "spatialplan.output": "spatialplan.io.output",
    "spatialplan.overlay": "spatialplan.analysis.overlay",
    "spatialplan.terrain": "spatialplan.analysis.terrain",
    "spatialplan.schedule": "spatialplan.analysis.schedule",
    "spatialplan.catalog": "spatialplan.rules.catalog",
    "spatialplan.siting": "spatialplan.rules.siting",
    "spatialplan.webmap": "spatialplan.render.webmap",
    "spatialplan.layout": "spatialplan.render.layout",
    "spatialplan.report": "spatialplan.render.report",
    "spatialplan.engine": "spatialplan.pipeline.engine",
}

#: old modules that became folders -> the modules that hold their old contents (searched in
#: order: ``spatialplan.pipeline`` was split into its analysis and its write side)
FOLDED: dict[str, tuple[str, ...]] = {
    "spatialplan.rules": ("spatialplan.rules.rulebook",),
    "spatialplan.pipeline": ("spatialplan.pipeline.result", "spatialplan.pipeline.run",
                             "spatialplan.pipeline.write"),
    "spatialplan.demo": ("spatialplan.demo.synthetic",),
}


#: module -> {name: the module it moved to}: single names that left a module that stays
MOVED_NAMES: dict[str, dict[str, str]] = {
    "spatialplan.analysis.schedule": {
        "write_schedule_xlsx": "spatialplan.render.schedule",
        "write_schedule_csv": "spatialplan.render.schedule",
    },
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old path is an alias for one release",
                  DeprecationWarning, stacklevel=3)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self._new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(spec.name, self._new)
        return importlib.import_module(self._new)

    def exec_module(self, module: ModuleType) -> None:  # the module is already executed
        return None


class _OldPathFinder(importlib.abc.MetaPathFinder):
    """Finds the old flat module paths listed in :data:`MOVED`."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder for old module paths on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
        sys.meta_path.append(_OldPathFinder())


def forward_attribute(package: str, name: str):
    """Attribute ``name`` of a folded old module, for a package's ``__getattr__``.

    Parameters
    ----------
    package : str
        The package asked, one of :data:`FOLDED`.
    name : str
        The attribute asked for.

    Raises
    ------
    AttributeError
        When neither the package nor its old module has ``name``.
    """
    if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is not None:
        # a submodule of the package: let the import system load it
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    for target in FOLDED[package]:
        module = importlib.import_module(target)
        if hasattr(module, name):
            _warn(f"{package}.{name}", f"{target}.{name}")
            return getattr(module, name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def moved_attribute(module: str, name: str):
    """Attribute ``name`` that moved out of ``module``, for that module's ``__getattr__``.

    Parameters
    ----------
    module : str
        The module asked, one of :data:`MOVED_NAMES`.
    name : str
        The attribute asked for.

    Raises
    ------
    AttributeError
        When ``name`` did not move out of ``module``.
    """
    target = MOVED_NAMES.get(module, {}).get(name)
    if target is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    _warn(f"{module}.{name}", f"{target}.{name}")
    return getattr(importlib.import_module(target), name)
