"""The siting-rule registry: where every rule, built-in or plug-in, is defined once.

A :class:`SitingRule` holds a rule's id, the layer roles it reads, how far it looks beyond a
site (``search_radius_m``: the dask engine's partition margin), the projects-table measures it
writes, its source, its function and whether it is built in. The siting pass
(:func:`spatialplan.rules.siting.check_projects`), the dask partitioning
(:func:`spatialplan.pipeline.engine._search_radius`), the rulebook
(:data:`spatialplan.rules.rulebook.RULE_IDS`) and the findings order all read :data:`BUILTIN_RULES`
and the plug-in rules of the rulebook.

Built-in rules take the shared siting context and the layers (``function(ctx, layers) -> Out``);
plug-in rules, written with :func:`siting_rule`, take the sites and their declared layers
(``function(sites, layers, **params) -> DataFrame``) and run through
:func:`spatialplan.rules._plugins.run_plugin`.

Plug-in modules are named in a rulebook's ``[plugins] modules`` (``.py`` files relative to the
rulebook, or importable module names) and loaded by :func:`load_plugins`; the rulebook keeps
only their paths and sha256 (``rules["plugins"]["files"]``), so a dask worker loads the same
file again (:func:`plugin_rules`) and refuses it if it changed.

Example
-------
>>> [r.id for r in BUILTIN_RULES][:3]
['township', 'redline', 'farmland']
>>> rule_by_id("setback").radius({"setback": {"pairs": [{"min_m": 100.0}]}})
100.0
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from spatialplan.errors import RulebookError

__all__ = [
    "BUILTIN_RULES",
    "RESERVED_TABLES",
    "SitingRule",
    "builtin_ids",
    "load_plugins",
    "plugin_rules",
    "rule_by_id",
    "rule_ids",
    "search_radius",
    "siting_rule",
]

log = logging.getLogger(__name__)

#: rulebook tables that are not rules (a rule id may not take these names)
RESERVED_TABLES = frozenset({"meta", "tolerance", "facility", "plugins"})
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True, eq=False)
class SitingRule:
    """One siting rule.

    Attributes
    ----------
    id
        The rule id (``findings.rule``); also the name of its rulebook table.
    function
        Built-in: ``function(ctx, layers) -> Out``; plug-in: ``function(sites, layers,
        **params) -> DataFrame`` (see :func:`siting_rule`).
    layers
        Layer roles the rule reads (``"dem"``: the slope statistics of the DEM).
    search_radius_m
        How far beyond a site the rule looks, in metres: a number, the name of a keyword
        parameter (plug-ins) whose rulebook value gives it, or a callable of the merged
        rulebook (built-ins).
    measures
        Columns of the projects table the rule fills (built-ins only).
    source
        The source cited in every finding (plug-ins); ``None``: the rulebook's ``[id] source``.
    builtin
        True for the rules shipped with spatialplan.
    geometric
        The rule needs a usable site geometry (a site without one gets ``error``).
    per_facility
        The rule needs a known facility type (an unknown one gets ``error``).
    params
        Plug-ins: the keyword-only parameters and their defaults (``inspect.Parameter.empty``
        when required); their values come from the rulebook table ``[id]``.
    module, path, sha256
        Plug-ins: the entry of ``[plugins] modules``, the file loaded and its sha256.
    """

    id: str
    function: Callable[..., Any]
    layers: tuple[str, ...] = ()
    search_radius_m: float | str | Callable[[Mapping[str, Any]], float] = 0.0
    measures: tuple[str, ...] = ()
    source: str | None = None
    builtin: bool = False
    geometric: bool = True
    per_facility: bool = False
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    module: str | None = None
    path: str | None = None
    sha256: str | None = None

    def radius(self, rules: Mapping[str, Any]) -> float:
        """Return the rule's search radius in metres under the merged rulebook ``rules``."""
        r = self.search_radius_m
        if callable(r):
            return float(r(rules))
        if isinstance(r, str):
            value = (rules.get(self.id) or {}).get(r, self.params.get(r))
            return float(value) if isinstance(value, (int, float)) else 0.0
        return float(r)


# --------------------------------------------------------------------------- built-in rules
# Adapters: each calls its rule body in _sites / _dates with its layer.


def _layer_rule(name: str, role: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    def run(ctx, layers):
        from spatialplan.rules import _sites

        return getattr(_sites, f"rule_{name}")(ctx, layers.get(role))

    run.__name__ = f"rule_{name}"
    return run


def _project_overlap(ctx, layers):
    from spatialplan.rules import _sites

    return _sites.rule_project_overlap(ctx)


def _date_result(ctx, result):
    import numpy as np

    from spatialplan.rules._sites import Out

    out = Out(ctx.n)
    out.status, out.measure, out.unit, out.message = (np.array(a) for a in result)
    return out


def _setback(ctx, layers):
    from spatialplan.rules import _sites

    return _sites.rule_setback(ctx, layers.get("parcels"), layers=layers)


def _map_first(ctx, layers):
    from spatialplan.rules import _dates

    return _date_result(ctx, _dates.map_first(ctx.attrs, as_of=ctx.as_of))


def _schedule(ctx, layers):
    from spatialplan.rules import _dates

    period = ctx.rules["schedule"]["plan_period"]
    return _date_result(ctx, _dates.schedule_dates(
        ctx.attrs, as_of=ctx.as_of, plan_period=(period["start"], period["end"])))


def _setback_radius(rules: Mapping[str, Any]) -> float:
    """Largest setback distance of the rulebook (facility overrides included).

    It covers the pairs measured to layers (``to_layers``) too: the dask engine reads every
    layer (control lines, a plan's own roles) this far beyond a partition's sites.
    """
    tables = [rules, *list((rules.get("facility") or {}).values())]
    dists = [float(p.get("min_m", 0.0)) for t in tables
             for p in ((t.get("setback") or {}).get("pairs") or [])]
    return max(dists, default=0.0)


def _builtin(rule_id: str, function, layers=(), *, measures=(), radius=0.0, geometric=True,
             per_facility=False) -> SitingRule:
    return SitingRule(id=rule_id, function=function, layers=tuple(layers),
                      search_radius_m=radius, measures=tuple(measures), builtin=True,
                      geometric=geometric, per_facility=per_facility)


#: The built-in rules in evaluation (and findings) order: part of the output contract.
BUILTIN_RULES: tuple[SitingRule, ...] = (
    _builtin("township", _layer_rule("township", "townships"), ["townships"]),
    _builtin("redline", _layer_rule("redline", "redline"), ["redline"],
             measures=["redline_m2"], per_facility=True),
    _builtin("farmland", _layer_rule("farmland", "farmland"), ["farmland"],
             measures=["farmland_m2", "farmland_mu"]),
    _builtin("cropland", _layer_rule("cropland", "cropland"), ["cropland"],
             measures=["cropland_m2"]),
    _builtin("udb", _layer_rule("udb", "udb"), ["udb"], measures=["outside_udb_m2"],
             per_facility=True),
    _builtin("landuse", _layer_rule("landuse", "parcels"), ["parcels"],
             measures=["landuse_compatible_share"], per_facility=True),
    _builtin("slope", _layer_rule("slope", "slope"), ["dem"],
             measures=["slope_mean_deg", "slope_max_deg", "slope_over_limit_share"],
             per_facility=True),
    _builtin("setback", _setback, ["parcels", "projects"],
             measures=["setback_min_m"], radius=_setback_radius, per_facility=True),
    _builtin("project_overlap", _project_overlap, ["projects"],
             measures=["project_overlap_m2"]),
    _builtin("map_first", _map_first, geometric=False),
    _builtin("as_built", _layer_rule("as_built", "built"), ["built"],
             measures=["built_inside_share"]),
    _builtin("schedule", _schedule, geometric=False),
)
_BUILTIN_BY_ID = {r.id: r for r in BUILTIN_RULES}


def builtin_ids() -> tuple[str, ...]:
    """Ids of the built-in rules, in order."""
    return tuple(_BUILTIN_BY_ID)


def rule_by_id(rule_id: str) -> SitingRule:
    """Return the built-in rule ``rule_id`` (``KeyError`` when there is none)."""
    return _BUILTIN_BY_ID[rule_id]


# --------------------------------------------------------------------------- plug-ins


def siting_rule(rule_id: str, *, layers: Iterable[str] = (), source: str,
                search_radius_m: float | str = 0.0) -> Callable[[Callable], Callable]:
    """Declare a county siting rule (a plug-in): decorate its function.

    The rule runs like a built-in one when a rulebook names its module under
    ``[plugins] modules``: its keyword-only parameters take their values from the rulebook
    table ``[<rule_id>]`` (type-checked against the defaults; ``enabled = false`` turns it
    off), its findings carry ``source``, join each project's verdict, and anything that goes
    wrong in it becomes an ``error`` finding naming the plug-in.

    Parameters
    ----------
    rule_id
        The rule id (lower case, digits and ``_``; not a built-in rule's id).
    layers
        The layer roles the rule reads (``[layers.<role>]`` of the plan, e.g. ``"rivers"``,
        or a built-in role such as ``"parcels"``).
    source
        The regulation or document the rule implements, cited in every finding.
    search_radius_m
        How far beyond a site the rule looks (metres), or the name of a keyword parameter
        whose value gives it (e.g. ``"min_m"``); the dask engine reads layers and neighbouring
        sites this far beyond each partition.

    Returns
    -------
    callable
        The decorator; the function is returned unchanged, with the rule as its
        ``siting_rule`` attribute.

    The function is called as ``function(sites, layers, **params)``: ``sites`` is a
    GeoDataFrame of the checked projects with a usable site (``project_id``, ``feature_id``,
    ``name``, ``township_code``, ``facility`` (catalogue code when known), ``group``,
    ``status``, ``construction_type``, dates, ``investment_wan``, years, ``geometry``) in the
    analysis CRS; ``layers`` maps each declared role to its GeoDataFrame (analysis CRS). It
    returns a DataFrame with ``project_id``, ``status`` (``pass``, ``review``, ``fail``,
    ``error`` or ``not_applicable``), ``measure`` (number or NaN), ``unit`` and ``message``:
    at most one row per site.

    Examples
    --------
    >>> import pandas as pd
    >>> import spatialplan as sp
    >>> @sp.siting_rule("river_setback", layers=["rivers"], source="某县自然资源局 2026 第3号",
    ...                 search_radius_m="min_m")
    ... def river_setback(sites, layers, *, min_m=50.0):
    ...     rivers = layers["rivers"].geometry.union_all()
    ...     dist = sites.geometry.distance(rivers)
    ...     return pd.DataFrame({"project_id": sites["project_id"],
    ...                          "status": ["pass" if d >= min_m else "fail" for d in dist],
    ...                          "measure": dist, "unit": "m",
    ...                          "message": [f"{d:.0f} m from a river" for d in dist]})
    >>> river_setback.siting_rule.id, river_setback.siting_rule.params
    ('river_setback', {'min_m': 50.0})
    """
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise ValueError(f"siting_rule id {rule_id!r} must be lower case letters, digits and "
                         "'_', starting with a letter")
    if rule_id in _BUILTIN_BY_ID or rule_id in RESERVED_TABLES:
        raise ValueError(f"siting_rule id {rule_id!r} is taken by a built-in rule or rulebook "
                         "table; choose another id")
    roles = (layers,) if isinstance(layers, str) else tuple(layers)
    if not all(isinstance(r, str) and _ID.match(r) for r in roles):
        raise ValueError(f"siting_rule {rule_id!r}: layers must be role names such as "
                         f"'rivers', got {list(roles)!r}")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"siting_rule {rule_id!r}: give the rule's source (the regulation "
                         "or document it implements)")
    if isinstance(search_radius_m, bool) or not isinstance(search_radius_m, (int, float, str)):
        raise ValueError(f"siting_rule {rule_id!r}: search_radius_m must be a number of "
                         "metres or the name of a keyword parameter")
    if not isinstance(search_radius_m, str) and not search_radius_m >= 0:
        raise ValueError(f"siting_rule {rule_id!r}: search_radius_m must be >= 0")

    def decorate(func: Callable) -> Callable:
        params = _keyword_params(rule_id, func)
        if isinstance(search_radius_m, str) and search_radius_m not in params:
            raise ValueError(f"siting_rule {rule_id!r}: search_radius_m names "
                             f"{search_radius_m!r}, which is not a keyword-only parameter "
                             f"of {func.__name__}")
        func.siting_rule = SitingRule(  # type: ignore[attr-defined]
            id=rule_id, function=func, layers=roles,
            search_radius_m=(search_radius_m if isinstance(search_radius_m, str)
                             else float(search_radius_m)),
            source=source.strip(), params=params)
        return func

    return decorate


def _keyword_params(rule_id: str, func: Callable) -> dict[str, Any]:
    """Return the keyword-only parameters of a plug-in function and their defaults."""
    if not callable(func):
        raise TypeError(f"siting_rule {rule_id!r} decorates {func!r}, not a function")
    sig = inspect.signature(func)
    positional = [p for p in sig.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 2:
        raise TypeError(f"siting_rule {rule_id!r}: {func.__name__} must take (sites, layers, "
                        "*, parameters...)")
    return {p.name: p.default for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: plug-in modules loaded in this process: (path or module name, sha256) → their rules
_LOADED: dict[tuple[str, str], tuple[SitingRule, ...]] = {}
#: one loading at a time (dask workers with several threads load from partitions at once)
_LOAD_LOCK = threading.RLock()


def _is_file_entry(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or "\\" in entry


def _load_entry(entry: str, *, base: Path | None, rulebook: object,
                sha256: str | None = None, path: str | None = None) -> tuple[SitingRule, ...]:
    """Load the rules of one ``[plugins] modules`` entry (once per process and file hash)."""
    with _LOAD_LOCK:
        return _load_entry_locked(entry, base=base, rulebook=rulebook, sha256=sha256,
                                  path=path)


def _load_entry_locked(entry: str, *, base: Path | None, rulebook: object,
                       sha256: str | None, path: str | None) -> tuple[SitingRule, ...]:
    if _is_file_entry(entry) or path is not None:
        file = Path(path) if path is not None else Path(entry).expanduser()
        if not file.is_absolute():
            file = ((base or Path.cwd()) / file).resolve()
        if not file.is_file():
            raise RulebookError(f"plug-in file {entry!r} not found ({file})", path=rulebook,
                                hint="give [plugins] modules as .py paths relative to the "
                                "rulebook, or importable module names")
        digest = _sha256(file)
        key = (str(file), digest)
        if key not in _LOADED:
            _LOADED[key] = _exec_file(entry, file, digest, rulebook)
    else:
        module = _import(entry, rulebook)
        file_name = getattr(module, "__file__", None)
        module_file = Path(file_name) if file_name else None
        digest = (_sha256(module_file) if module_file is not None and module_file.is_file()
                  else "")
        key = (entry, digest)
        if key not in _LOADED:
            _LOADED[key] = _collect(module, entry, module_file, digest, rulebook)
    if sha256 is not None and sha256 != digest:
        raise RulebookError(f"plug-in {entry!r} changed since the rulebook was read "
                            f"(sha256 {digest[:12]}…, was {sha256[:12]}…)", path=rulebook,
                            hint="run the check again")
    return _LOADED[key]


def _failed(entry: str, exc: BaseException, rulebook: object) -> RulebookError:
    return RulebookError(f"plug-in {entry!r} could not be loaded: {type(exc).__name__}: "
                         f"{escape_text(str(exc))}", path=rulebook,
                         hint="fix the plug-in module (or remove it from [plugins] modules)")


def _exec_file(entry: str, file: Path, digest: str, rulebook: object) -> tuple[SitingRule, ...]:
    name = f"_spatialplan_plugin_{digest[:16]}_{re.sub(r'[^0-9A-Za-z_]', '_', file.stem)}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise RulebookError(f"plug-in {entry!r} is not a Python module ({file})",
                            path=rulebook, hint="name a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise _failed(entry, exc, rulebook) from exc
    return _collect(module, entry, file, digest, rulebook)


def _import(entry: str, rulebook: object):
    try:
        return importlib.import_module(entry)
    except Exception as exc:
        raise _failed(entry, exc, rulebook) from exc


def _collect(module, entry: str, file: Path | None, digest: str,
             rulebook: object) -> tuple[SitingRule, ...]:
    found = []
    for value in list(vars(module).values()):
        rule = getattr(value, "siting_rule", None) if callable(value) else None
        if isinstance(rule, SitingRule) and rule.function is value and (
                getattr(value, "__module__", None) == module.__name__):
            found.append(dataclasses.replace(rule, module=entry,
                                             path=None if file is None else str(file),
                                             sha256=digest))
    if not found:
        raise RulebookError(f"plug-in {entry!r} defines no rule", path=rulebook,
                            hint="decorate the rule functions with @spatialplan.siting_rule")
    return tuple(found)


def load_plugins(entries: Iterable[str], *, base: Path | None,
                 rulebook: object) -> tuple[list[dict[str, Any]], tuple[SitingRule, ...]]:
    """Load the plug-in modules a rulebook names.

    Parameters
    ----------
    entries
        The ``[plugins] modules`` list: ``.py`` paths (relative to ``base``) or module names.
    base
        The rulebook's folder.
    rulebook
        The rulebook file, for error messages.

    Returns
    -------
    files : list of dict
        Per entry: ``module`` (as given), ``path``, ``sha256`` and ``rules`` (ids), for the
        rulebook and the manifest.
    rules : tuple of SitingRule
        Their rules, in module then definition order.

    Raises
    ------
    RulebookError
        A file is missing, fails to import (the error is named), defines no rule, or a rule
        id is used twice.
    """
    files: list[dict[str, Any]] = []
    rules: list[SitingRule] = []
    seen: dict[str, str] = {}
    for entry in entries:
        found = _load_entry(entry, base=base, rulebook=rulebook)
        for rule in found:
            if rule.id in seen:
                raise RulebookError(f"plug-in rule id {rule.id!r} of {entry!r} is also defined "
                                    f"by {seen[rule.id]!r}", path=rulebook,
                                    hint="give every rule its own id")
            seen[rule.id] = entry
        files.append({"module": entry, "path": found[0].path, "sha256": found[0].sha256,
                      "rules": [r.id for r in found]})
        rules.extend(found)
    return files, tuple(rules)


def plugin_rules(rules: Mapping[str, Any]) -> tuple[SitingRule, ...]:
    """Return the plug-in rules of a merged rulebook, loaded here when not yet (workers).

    Raises
    ------
    RulebookError
        A plug-in file changed since the rulebook was read, or fails to load here.
    """
    out: list[SitingRule] = []
    for f in (rules.get("plugins") or {}).get("files", []):
        out.extend(_load_entry(f["module"], base=None, rulebook=f["module"],
                               sha256=f["sha256"], path=f["path"]))
    return tuple(out)


def rule_ids(rules: Mapping[str, Any]) -> tuple[str, ...]:
    """Ids of every rule a rulebook runs: the built-in ones, then its plug-ins' (no loading)."""
    extra = [r for f in (rules.get("plugins") or {}).get("files", []) for r in f["rules"]]
    return builtin_ids() + tuple(extra)


def search_radius(rules: Mapping[str, Any]) -> float:
    """Return the largest search radius of every rule (built-in and plug-in) under ``rules``."""
    radii = [r.radius(rules) for r in BUILTIN_RULES + plugin_rules(rules)]
    return max(radii, default=0.0)


def escape_text(text: str, *, limit: int = 300) -> str:
    r"""``text`` on one line: control characters escaped, at most ``limit`` characters.

    Examples
    --------
    >>> escape_text("bad\nvalue\x00")
    'bad\\nvalue\\x00'
    """
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return out if len(out) <= limit else out[: limit - 1] + "…"
