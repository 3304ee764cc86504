"""The pipeline's imports run one way (issue 16): no import circle, analysis apart from writing.

The import graph is read from the source with :mod:`ast`, every ``import`` counted wherever it
stands (module level, inside a function, under ``TYPE_CHECKING``), as grimp counts them; the
implicit import of a parent package is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import spatialplan

ROOT = Path(spatialplan.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module → the spatialplan modules it imports (anywhere in its source)."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base
                           for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in paths and t != name}
        graph[name] = edges
    return graph


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> set[str]:
    """Pop the strongly connected component of ``root`` off Tarjan's stack."""
    component = set()
    while True:
        w = stack.pop()
        on_stack.discard(w)
        component.add(w)
        if w == root:
            return component


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = _pop_component(stack, on_stack, v)
                    if len(component) > 1:
                        found.append(component)
    return found


@pytest.fixture(scope="module")
def graph():
    return _import_graph()


def test_the_graph_reader_finds_a_circle():
    """The check can fail: a made-up circle a -> b -> c -> a is found, a one-way chain is not."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    # two circles joined one way are two components; a self-import is no circle of modules
    assert _cycles({"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"e"}}) == [
        {"c", "d"}, {"a", "b"}]


def test_the_graph_holds_function_level_imports(graph):
    # run_check's dispatch to the dask engine is an import inside the function
    assert "spatialplan.pipeline.engine" in graph["spatialplan.pipeline.run"]


def test_no_import_circle_anywhere(graph):
    # the whole package, not only the pipeline: no two modules import each other, directly or
    # through others (the stage contracts themselves are in .importlinter, run by test.sh)
    assert _cycles(graph) == []


def test_pipeline_imports_run_one_way(graph):
    pipeline = {m for m in graph if m.startswith("spatialplan.pipeline.")}
    # what every runner and writer shares imports no other pipeline module
    assert not graph["spatialplan.pipeline.result"] & pipeline
    # the finishing step knows no runner; the writers know no runner and no finishing step
    assert graph["spatialplan.pipeline.finish"] & pipeline == {"spatialplan.pipeline.result"}
    assert graph["spatialplan.pipeline.write"] & pipeline == {"spatialplan.pipeline.result"}
    # the analysis side never imports the write side
    for runner in ("run", "engine", "_dask"):
        assert "spatialplan.pipeline.write" not in graph[f"spatialplan.pipeline.{runner}"]


def test_coverage_and_schedule_are_assembled_in_one_place():
    """Only the finishing step joins the 8+X coverage and builds the 时序表 (both engines)."""
    users = sorted(p.name for p in (ROOT / "pipeline").glob("*.py")
                   if "facility_coverage(" in p.read_text(encoding="utf-8")
                   or "sequence_table(" in p.read_text(encoding="utf-8"))
    assert users == ["finish.py"]


#: the modules that write files
_WRITERS = ("spatialplan.io.output", "spatialplan.io._xlsx", "spatialplan.render.schedule")


def test_analysis_and_rules_import_no_writer_renderer_or_pipeline(graph):
    """analysis/ and rules/ compute in memory: the 时序表 is built in analysis and written by
    render.schedule (analysis.schedule imported io.output before)."""
    later = ("spatialplan.render", "spatialplan.pipeline", "spatialplan.cli")
    found = {m: sorted(d for d in graph[m] if d in _WRITERS or d.startswith(later))
             for m in graph if m.startswith(("spatialplan.analysis", "spatialplan.rules"))}
    assert {m: d for m, d in found.items() if d} == {}
