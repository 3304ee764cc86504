"""The siting rulebook: defaults shipped as TOML, merged with the user's file, validated.

The default rulebook is ``layers/catalog/rules.toml``. A user's rulebook overrides any part of
it: tables merge key by key, lists (``setback.pairs``, ``redline.review_kinds``) are
replaced whole. Every key of the user's file must exist in the default schema (except the
facility codes under ``[facility]`` and the entries of ``setback.pairs``); an unknown key or a
value of the wrong type raises :class:`~spatialplan.errors.RulebookError` naming the dotted key
and the file. TOML is read with :mod:`tomllib` (``tomli`` on Python 3.10): never YAML.

Examples
--------
>>> from spatialplan.rules.rulebook import read_rules, rules_for
>>> rules = read_rules()
>>> rules["slope"]["limit_deg"]
25.0
>>> rules_for(rules, "road")["slope"]["limit_deg"]
35.0
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import sys
from pathlib import Path
from typing import Any

from spatialplan.core._inputs import read_small_file
from spatialplan.core._resources import catalog_path
from spatialplan.errors import RulebookError
from spatialplan.rules._registry import builtin_ids, load_plugins
from spatialplan.rules._setback import check_layer_role, setback_pairs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "RULE_IDS",
    "default_rules_path",
    "merge_rules",
    "read_rules",
    "rules_for",
    "setback_pairs",
]

logger = logging.getLogger(__name__)

#: Built-in rule ids in evaluation order (from the registry, :mod:`spatialplan.rules._registry`);
#: they are part of the output contract (``findings.rule``).
RULE_IDS: tuple[str, ...] = builtin_ids()

_NON_RULE_TABLES = ("meta", "tolerance", "facility", "plugins", "reach")
#: tables keyed by catalogue facility code (any code of the catalogue, a number each)
_LIMIT_TABLES = ("reach.limits_m", "reach.limits_min")
#: number keys that must be greater than 0 (a speed)
_POSITIVE_KEYS = {"walk_kmh"}
_SHARE_KEYS = {
    "min_overlap_share",
    "pass_share",
    "min_inside_share",
    "max_share_over_limit",
}
_VERDICT_VALUES = {"pass", "review", "fail"}
_PAIR_REQUIRED = {"from": (str, list), "min_m": (int, float)}
_PAIR_OPTIONAL = {"source": (str,), "to": (str, list), "to_layers": (str, list)}


def default_rules_path() -> Path:
    """Return the path of the bundled default rulebook ``layers/catalog/rules.toml``."""
    return catalog_path("rules.toml")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        raw = read_small_file(path, error=RulebookError, what="the rulebook")
        return tomllib.loads(raw.decode("utf-8"))
    except RecursionError:
        raise RulebookError(
            "rulebook nests arrays or tables too deeply to be read", path=path,
            hint="a rulebook needs a few levels ([facility.<code>.<rule>])"
        ) from None
    except (FileNotFoundError, IsADirectoryError):
        raise RulebookError(
            "rulebook file not found", path=path, hint="check the path given as the rulebook"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise RulebookError(
            f"rulebook is not valid TOML: {exc}", path=path, hint="fix the TOML syntax"
        ) from None
    except UnicodeDecodeError:
        raise RulebookError(
            "rulebook is not UTF-8 text", path=path, hint="save the file as UTF-8"
        ) from None


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _wrong_type(key: str, expected: str, value: object, path: object) -> RulebookError:
    return RulebookError(
        f"rulebook key '{key}' must be a {expected}, got {_type_name(value)} {value!r}",
        path=path,
        hint=f"give '{key}' a {expected} value as in the default rulebook",
    )


def _check_scalar(key: str, default: object, value: object, path: object) -> object:
    """Check ``value`` against the type of ``default``; return it (ints widened to float)."""
    leaf = key.rsplit(".", 1)[-1]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _wrong_type(key, "boolean (true/false)", value, path)
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(key, "integer", value, path)
        return value
    if isinstance(default, float):
        return _check_number(key, leaf, value, path)
    if isinstance(default, str):
        return _check_string(key, leaf, value, path)
    raise _wrong_type(key, _type_name(default), value, path)  # pragma: no cover


def _check_number(key: str, leaf: str, value: object, path: object) -> float:
    """Check a number key: not negative, a share (``leaf`` in ``_SHARE_KEYS``) at most 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong_type(key, "number", value, path)
    value = float(value)
    if value != value or value < 0:  # NaN or negative
        raise RulebookError(
            f"rulebook key '{key}' must be a non-negative number, got {value!r}", path=path
        )
    if leaf in _POSITIVE_KEYS and value == 0:
        raise RulebookError(f"rulebook key '{key}' must be a positive number, got {value!r}",
                            path=path, hint="give a speed in km/h, e.g. 5 for walking")
    if leaf in _SHARE_KEYS and value > 1:
        raise RulebookError(
            f"rulebook key '{key}' is a share and must lie in 0..1, got {value!r}",
            path=path,
            hint="write 95% as 0.95",
        )
    return value


def _check_string(key: str, leaf: str, value: object, path: object) -> str:
    """Check a string key: ``outside_default`` must be a verdict."""
    if not isinstance(value, str):
        raise _wrong_type(key, "string", value, path)
    if leaf == "outside_default" and value not in _VERDICT_VALUES:
        raise RulebookError(
            f"rulebook key '{key}' must be one of {sorted(_VERDICT_VALUES)}, got {value!r}",
            path=path,
        )
    return value


def _as_str_list(key: str, value: object, path: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong_type(key, "string or list of strings", value, path)
    return list(value)


def _check_pairs(key: str, value: object, path: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _wrong_type(key, "list of tables ([[setback.pairs]])", value, path)
    out = []
    for i, pair in enumerate(value):
        pkey = f"{key}[{i}]"
        if not isinstance(pair, dict):
            raise _wrong_type(pkey, "table with from, to, min_m", pair, path)
        for name in pair:
            if name not in _PAIR_REQUIRED and name not in _PAIR_OPTIONAL:
                raise RulebookError(
                    f"unknown rulebook key '{pkey}.{name}'",
                    path=path,
                    hint="a setback pair has the keys from, to, to_layers, min_m and source",
                )
        for name in (*_PAIR_REQUIRED, "to"):
            if name not in pair and (name != "to" or "to_layers" not in pair):
                raise RulebookError(
                    f"rulebook key '{pkey}.{name}' is missing",
                    path=path,
                    hint="a setback pair needs from, min_m and to (facility types, land-use "
                    "code prefixes) or to_layers (layer roles such as redline)",
                )
        out.append(_checked_pair(pkey, pair, path))
    return out


def _checked_pair(pkey: str, pair: dict[str, Any], path: object) -> dict[str, Any]:
    """One setback pair with its values checked (``to`` always present, maybe empty)."""
    checked = {
        "from": _as_str_list(f"{pkey}.from", pair["from"], path),
        "to": _as_str_list(f"{pkey}.to", pair.get("to", []), path),
        "min_m": _check_scalar(f"{pkey}.min_m", 0.0, pair["min_m"], path),
    }
    if "to_layers" in pair:
        key = f"{pkey}.to_layers"
        checked["to_layers"] = [check_layer_role(key, role, path)
                                for role in _as_str_list(key, pair["to_layers"], path)]
    if not checked["to"] and not checked.get("to_layers"):
        raise RulebookError(f"rulebook setback pair '{pkey}' has no target", path=path,
                            hint="give to (facility types, land-use code prefixes) or "
                            "to_layers (layer roles such as redline)")
    if "source" in pair:
        checked["source"] = _check_scalar(f"{pkey}.source", "", pair["source"], path)
    return checked


def _check_review_kinds(key: str, value: object, path: object) -> list[str]:
    """Check ``redline.review_kinds``: keys of the ten kinds of 自然资发〔2022〕142号."""
    from spatialplan.rules.catalog import read_redline_activities

    kinds = _as_str_list(key, value, path)
    known = read_redline_activities()
    unknown = [k for k in kinds if k not in known.index]
    if unknown:
        raise RulebookError(
            f"rulebook key '{key}' names unknown kind(s) {', '.join(map(repr, unknown))}",
            path=path, hint="use kinds of 自然资发〔2022〕142号 (redline_activities.csv): "
            + ", ".join(f"{k} ({n})" for k, n in zip(known.index, known["number"],
                                                     strict=True)))
    return kinds


def _migrate_redline(user: dict[str, Any], prefix: str, path: object) -> dict[str, Any]:
    """Read an old ``[redline] review_categories`` as ``review_kinds`` (with a warning)."""
    from spatialplan.rules.catalog import REDLINE_CATEGORY_KINDS

    table = user.get("redline")
    if not isinstance(table, dict) or "review_categories" not in table:
        return user
    key = f"{prefix}redline.review_categories"
    if "review_kinds" in table:
        raise RulebookError(f"rulebook has both '{key}' and its replacement review_kinds",
                            path=path, hint="remove review_categories")
    old = _as_str_list(key, table["review_categories"], path)
    bad = [c for c in old if c not in REDLINE_CATEGORY_KINDS or c == "none"]
    if bad:
        raise RulebookError(f"rulebook key '{key}' has unknown categories {bad}", path=path,
                            hint="write review_kinds with kinds of redline_activities.csv")
    kinds = list(dict.fromkeys(REDLINE_CATEGORY_KINDS[c] for c in old))
    logger.warning("%s: '%s' is replaced by review_kinds: read as %s", path, key, kinds)
    rest = {k: v for k, v in table.items() if k != "review_categories"}
    return {**user, "redline": {**rest, "review_kinds": kinds}}


def _check_list(key: str, default: list, value: object, path: object) -> list:
    if key.endswith("setback.pairs"):
        return _check_pairs(key, value, path)
    if key.endswith("redline.review_kinds"):
        return _check_review_kinds(key, value, path)
    if not isinstance(value, list):
        raise _wrong_type(key, "list", value, path)
    if default and isinstance(default[0], str):
        return _as_str_list(key, value, path)
    return list(value)


def _check_table(
    user: dict[str, Any], schema: dict[str, Any], prefix: str, path: object
) -> dict[str, Any]:
    """Validate ``user`` against ``schema`` (a table of the default rulebook), recursively."""
    out: dict[str, Any] = {}
    for name, value in user.items():
        key = f"{prefix}{name}"
        if name not in schema:
            known = ", ".join(sorted(schema)) or "none"
            raise RulebookError(
                f"unknown rulebook key '{key}'",
                path=path,
                hint=f"known keys here: {known} (check the spelling)",
            )
        default = schema[name]
        if key in _LIMIT_TABLES:
            out[name] = _check_limits(key, value, path)
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise _wrong_type(key, "table", value, path)
            out[name] = _check_table(value, default, f"{key}.", path)
        elif isinstance(default, list):
            out[name] = _check_list(key, default, value, path)
        else:
            out[name] = _check_scalar(key, default, value, path)
    return out


def _check_limits(key: str, value: object, path: object) -> dict[str, float]:
    """Check a table of limits per facility type: catalogue codes, non-negative numbers."""
    from spatialplan.rules.catalog import read_catalog

    if not isinstance(value, dict):
        raise _wrong_type(key, "table", value, path)
    codes = set(read_catalog().facilities["code"])
    unknown = sorted(set(value) - codes)
    if unknown:
        raise RulebookError(
            f"unknown facility type(s) {unknown} in rulebook '{key}'",
            path=path,
            hint="use the codes of layers/catalog/facility_types.csv: " + ", ".join(sorted(codes)),
        )
    return {code: _check_number(f"{key}.{code}", code, v, path) for code, v in value.items()}


def _check_facility(
    user: object, schema: dict[str, Any], path: object
) -> dict[str, dict[str, Any]]:
    if not isinstance(user, dict):
        raise _wrong_type("facility", "table", user, path)
    rule_schema = {k: v for k, v in schema.items() if k not in ("meta", "facility", "reach")}
    out = {}
    for code, overrides in user.items():
        key = f"facility.{code}"
        if not isinstance(overrides, dict):
            raise _wrong_type(key, "table of rule overrides", overrides, path)
        overrides = _migrate_redline(overrides, f"{key}.", path)
        out[code] = _check_table(overrides, rule_schema, f"{key}.", path)
    return out


def _validate(user: dict[str, Any], schema: dict[str, Any], path: object) -> dict[str, Any]:
    """Validate a whole rulebook (or a partial override) against the default ``schema``."""
    rest = _migrate_redline({k: v for k, v in user.items() if k != "facility"}, "", path)
    out = _check_table(rest, {k: v for k, v in schema.items() if k != "facility"}, "", path)
    if "facility" in user:
        out["facility"] = _check_facility(user["facility"], schema, path)
    return out


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_consistency(rules: dict[str, Any], path: object) -> None:
    period = rules["schedule"]["plan_period"]
    if period["start"] > period["end"]:
        raise RulebookError(
            f"rulebook 'schedule.plan_period' starts after it ends "
            f"({period['start']} > {period['end']})",
            path=path,
        )
    tables = [("", rules)] + [
        (f"facility.{code}.", _deep_merge(rules, over))
        for code, over in rules.get("facility", {}).items()
    ]
    for prefix, table in tables:
        slope = table["slope"]
        if slope["review_from_deg"] > slope["limit_deg"]:
            raise RulebookError(
                f"rulebook '{prefix}slope.review_from_deg' ({slope['review_from_deg']}) is "
                f"above '{prefix}slope.limit_deg' ({slope['limit_deg']})",
                path=path,
            )


_DEFAULTS_CACHE: dict[str, dict[str, Any]] = {}


def _defaults() -> dict[str, Any]:
    path = default_rules_path()
    key = str(path)
    if key not in _DEFAULTS_CACHE:
        raw = _load_toml(path)
        # The defaults define the schema; still normalise them (ints → floats, pair lists).
        _DEFAULTS_CACHE[key] = _validate(raw, raw, path)
        missing = [r for r in RULE_IDS if r not in raw]
        if missing:  # pragma: no cover - guards the shipped file
            raise RulebookError(f"default rulebook lacks rules {missing}", path=path)
    return copy.deepcopy(_DEFAULTS_CACHE[key])


def merge_rules(
    override: dict[str, Any],
    *,
    base: dict[str, Any] | None = None,
    path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Validate ``override`` against the default schema and deep-merge it into ``base``.

    Parameters
    ----------
    override
        A (partial) rulebook, e.g. the ``[rules]`` table of a plan file.
    base
        Rulebook to merge into; the bundled defaults when ``None``.
    path
        File the override came from, for error messages.

    Returns
    -------
    dict
        A new merged rulebook; neither input is modified.

    Raises
    ------
    RulebookError
        Unknown key (named with its dotted path) or wrong value type.

    Examples
    --------
    >>> merge_rules({"slope": {"limit_deg": 20}})["slope"]["limit_deg"]
    20.0
    """
    defaults = _defaults()
    where = path if path is not None else "<rulebook override>"
    checked = _validate(override, defaults, where)
    merged = _deep_merge(defaults if base is None else base, checked)
    _check_consistency(merged, where)
    return merged


def read_rules(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read the rulebook: the bundled defaults deep-merged with the user's TOML file.

    Parameters
    ----------
    path
        The user's rulebook (TOML). ``None`` returns the defaults.

    Returns
    -------
    dict
        The merged rulebook: ``tolerance``, one table per rule id in :data:`RULE_IDS`
        (each with ``enabled`` and ``source``), ``facility`` (per-facility overrides) and
        ``meta``.

    Raises
    ------
    RulebookError
        The file is missing or not TOML, has a key the default schema lacks (the dotted key
        is named) or a value of the wrong type.

    Examples
    --------
    >>> rules = read_rules()
    >>> rules["tolerance"]["min_overlap_m2"], rules["landuse"]["pass_share"]
    (1.0, 0.95)
    """
    if path is None:
        return _defaults()
    path = Path(path)
    user = _load_toml(path)
    plugins = _read_plugins(user, path)
    rules = merge_rules(user, path=path)
    if plugins is not None:
        rules.update(plugins)
    logger.debug("rulebook %s merged over the defaults", path)
    return rules


_PLUGIN_KEYS = {"modules"}


def _read_plugins(user: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """Load the plug-ins of ``[plugins] modules`` and take their tables out of ``user``.

    Returns the rulebook entries they add: ``plugins`` (``modules`` as given and ``files``:
    module, path, sha256 and rule ids of each) and one table per plug-in rule (its keyword
    parameters from the rulebook or their defaults, and ``enabled``).
    """
    table = user.pop("plugins", None)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise _wrong_type("plugins", "table", table, path)
    for name in table:
        if name not in _PLUGIN_KEYS:
            raise RulebookError(f"unknown rulebook key 'plugins.{name}'", path=path,
                                hint="[plugins] has one key, modules = [\"county_rules.py\"]")
    modules = _as_str_list("plugins.modules", table.get("modules", []), path)
    files, found = load_plugins(modules, base=path.parent, rulebook=path)
    out: dict[str, Any] = {"plugins": {"modules": modules, "files": files}}
    for rule in found:
        out[rule.id] = _plugin_table(rule, user.pop(rule.id, {}), path)
    if found:
        logger.info("loaded plug-in rules: %s", "; ".join(
            f"{', '.join(f['rules'])} ({f['module']} sha256 {f['sha256'][:12]}…)"
            for f in files))
    return out


def _plugin_table(rule, given: object, path: Path) -> dict[str, Any]:
    """Check a plug-in rule's rulebook table: its parameters against their defaults."""
    if not isinstance(given, dict):
        raise _wrong_type(rule.id, "table", given, path)
    known = {**rule.params, "enabled": True}
    for name in given:
        if name not in known:
            raise RulebookError(
                f"unknown rulebook key '{rule.id}.{name}'", path=path,
                hint=f"the plug-in rule {rule.id} takes: {', '.join(sorted(known))}")
    out: dict[str, Any] = {}
    for name, default in known.items():
        key = f"{rule.id}.{name}"
        if name not in given:
            if default is inspect.Parameter.empty:
                raise RulebookError(f"rulebook key '{key}' is missing", path=path,
                                    hint=f"the plug-in rule {rule.id} needs a value for {name}")
            out[name] = default
            continue
        out[name] = _check_plugin_value(key, default, given[name], path)
    return out


def _check_plugin_value(key: str, default: object, value: object, path: object) -> object:
    """``value`` of a plug-in parameter, of the type of its default (ints widened to float)."""
    if default is None or default is inspect.Parameter.empty:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise _wrong_type(key, _type_name(default), value, path)
    return value


def rules_for(rules: dict[str, Any], facility_code: str | None) -> dict[str, Any]:
    """Return the rulebook with the ``[facility.<code>]`` overrides of one facility applied.

    Parameters
    ----------
    rules
        A merged rulebook from :func:`read_rules`.
    facility_code
        Catalogue code of the facility (``None`` or an unknown code: no overrides).

    Returns
    -------
    dict
        A copy of ``rules`` without the ``facility`` table, the facility's overrides merged in.

    Examples
    --------
    >>> rules = read_rules()
    >>> rules_for(rules, "road")["slope"]["limit_deg"]
    35.0
    >>> rules_for(rules, "school")["slope"]["limit_deg"]
    25.0
    """
    base = {k: v for k, v in rules.items() if k != "facility"}
    overrides = (rules.get("facility") or {}).get(facility_code) if facility_code else None
    if not overrides:
        return copy.deepcopy(base)
    return _deep_merge(base, overrides)
