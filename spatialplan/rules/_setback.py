"""The setback pairs of a rulebook (a leaf module: the rulebook and the site rules both use it).

A pair (``[[setback.pairs]]``) sets a minimum distance from the sites of the facility types in
``from`` to the sites of the types in ``to`` (and to detailed-plan parcels whose land-use code
starts with a prefix in ``to``), and to the features of the layers named in ``to_layers``: the
control lines (``redline``, ``farmland``, ``udb``, ``cropland``) or any layer role of the plan
(``[layers.rivers]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from spatialplan.errors import RulebookError

__all__ = [
    "LINE_ROLES",
    "NOT_TARGETS",
    "check_layer_role",
    "check_setback_layers",
    "setback_layer_roles",
    "setback_pairs",
]

#: the built-in layer roles a setback may be measured from (``to_layers``); a plan's own layer
#: roles may be named too
LINE_ROLES = ("redline", "farmland", "udb", "cropland")
#: roles ``to_layers`` may not name, and what to write instead
NOT_TARGETS = {
    "townships": "a setback from a township boundary is not supported",
    "parcels": "name a land-use code prefix in `to` (e.g. \"07\")",
    "projects": "name facility types in `to`",
    "built": "as-built footprints are not setback targets",
    "slope": "the DEM is not a setback target",
    "dem": "the DEM is not a setback target",
}
_ROLE = re.compile(r"^[a-z][a-z0-9_]*$")


def setback_pairs(rules: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the setback pairs of a rulebook, each with its own ``source`` filled in.

    Examples
    --------
    >>> from spatialplan.rules.rulebook import read_rules
    >>> pairs = setback_pairs(read_rules())
    >>> pairs[0]["from"], pairs[0]["min_m"]
    (['sewage'], 100.0)
    """
    table = rules["setback"]
    out = []
    for pair in table.get("pairs", []):
        item = dict(pair)
        item.setdefault("source", table["source"])
        out.append(item)
    return out


def check_layer_role(key: str, role: str, path: object) -> str:
    """Check one entry of a pair's ``to_layers``: a layer role a setback may be measured from.

    Raises
    ------
    RulebookError
        Not a role name (lower case, digits, ``_``), or a role that is no setback target.

    Examples
    --------
    >>> check_layer_role("setback.pairs[0].to_layers", "redline", None)
    'redline'
    """
    if not _ROLE.match(role):
        raise RulebookError(f"rulebook key '{key}' names {role!r}, not a layer role", path=path,
                            hint="name layer roles such as " + ", ".join(LINE_ROLES)
                            + " or a role of the plan ([layers.rivers])")
    if role in NOT_TARGETS:
        raise RulebookError(f"rulebook key '{key}' names the layer {role!r}, which is not a "
                            "setback target", path=path, hint=NOT_TARGETS[role])
    return role


def setback_layer_roles(rules: dict[str, Any]) -> list[str]:
    """Return the layer roles the rulebook's setback pairs name (``to_layers``), in order.

    Examples
    --------
    >>> setback_layer_roles({"setback": {"pairs": [{"to_layers": ["redline"]}, {"to": []}]}})
    ['redline']
    """
    roles = [r for pair in (rules.get("setback") or {}).get("pairs", [])
             for r in pair.get("to_layers", [])]
    return list(dict.fromkeys(roles))


def check_setback_layers(rules: dict[str, Any], available: Iterable[str], *,
                         path: object = None) -> None:
    """Refuse setback pairs naming a layer role the plan does not have.

    The control lines (:data:`LINE_ROLES`) are always known (a missing layer is reported by
    the rule as not checked); any other role must be among ``available``.

    Raises
    ------
    RulebookError
        Naming the role and the roles available.

    Examples
    --------
    >>> rules = {"setback": {"pairs": [{"to_layers": ["rivers"]}]}}
    >>> check_setback_layers(rules, ["townships", "rivers"])
    >>> try:
    ...     check_setback_layers(rules, ["townships"])
    ... except RulebookError as exc:
    ...     print(str(exc).split(".")[0])
    setback pair names the layer 'rivers', which the plan does not have
    """
    have = set(available)
    known = list(LINE_ROLES) + sorted(r for r in have - set(LINE_ROLES) - set(NOT_TARGETS))
    for role in setback_layer_roles(rules):
        if role not in LINE_ROLES and role not in have:
            raise RulebookError(
                f"setback pair names the layer {role!r}, which the plan does not have",
                path=path, hint="to_layers may name " + ", ".join(known)
                + " (a plan's own role needs its [layers.<role>] table)")
