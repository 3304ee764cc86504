"""Old module paths of the flat layout stay importable for one release, with a warning."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

from spatialplan import _compat


@pytest.mark.parametrize(("old", "new"), sorted(_compat.MOVED.items()))
def test_old_module_path_is_the_new_module(monkeypatch, old, new):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    assert module.__name__ == new  # the real module, not a copy with the old name


def test_monkeypatching_an_old_path_patches_the_real_module(monkeypatch):
    monkeypatch.delitem(sys.modules, "spatialplan.read", raising=False)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("spatialplan.read")
    from spatialplan.io import read

    monkeypatch.setattr(old, "_marker_for_test", 1, raising=False)
    assert read._marker_for_test == 1


@pytest.mark.parametrize(("package", "name", "new"), [
    ("spatialplan.rules", "read_rules", "spatialplan.rules.rulebook"),
    ("spatialplan.pipeline", "run_check", "spatialplan.pipeline.run"),
    ("spatialplan.pipeline", "write_check", "spatialplan.pipeline.write"),
    ("spatialplan.pipeline", "build_manifest", "spatialplan.pipeline.write"),
    ("spatialplan.pipeline", "CheckResult", "spatialplan.pipeline.result"),
    ("spatialplan.demo", "build_demo", "spatialplan.demo.synthetic"),
])
def test_folded_module_names_forward_with_a_warning(package, name, new):
    with pytest.warns(DeprecationWarning, match=f"{new}.{name}".replace(".", r"\.")):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(new), name)


def test_submodules_of_folded_packages_import_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from spatialplan.pipeline import engine  # noqa: F401
        from spatialplan.rules import catalog, siting  # noqa: F401


def test_unknown_names_still_raise():
    import spatialplan.rules

    with pytest.raises(AttributeError, match="no_such_name"):
        spatialplan.rules.no_such_name


@pytest.mark.parametrize("old", ["spatialplan.analysis.schedule", "spatialplan.schedule"])
@pytest.mark.parametrize("name", ["write_schedule_xlsx", "write_schedule_csv"])
def test_schedule_writers_moved_to_the_write_side(old, name):
    from spatialplan.render import schedule as writers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the old flat module path itself
        module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"spatialplan\.render\.schedule\.{name}"):
        value = getattr(module, name)
    assert value is getattr(writers, name)


def test_a_name_that_never_moved_still_raises():
    from spatialplan.analysis import schedule

    with pytest.raises(AttributeError, match="no_such_writer"):
        schedule.no_such_writer
