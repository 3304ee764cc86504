"""The setback pairs of a rulebook (a leaf module: the rulebook and the site rules both use it)."""

from __future__ import annotations

from typing import Any


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
