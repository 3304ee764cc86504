"""The siting-rule registry: one definition per rule, read by siting, rulebook and engine."""

from __future__ import annotations

import dataclasses

import geopandas as gpd
import pandas as pd
import pytest
import shapely

import spatialplan as sp
from spatialplan.pipeline.engine import _search_radius
from spatialplan.rules import _registry, siting
from spatialplan.rules._registry import BUILTIN_RULES, SitingRule, rule_by_id, siting_rule
from spatialplan.rules.rulebook import RULE_IDS, merge_rules, read_rules


def test_rule_ids_come_from_the_registry():
    assert tuple(r.id for r in BUILTIN_RULES) == RULE_IDS
    assert RULE_IDS[:3] == ("township", "redline", "farmland") and RULE_IDS[-1] == "schedule"
    assert all(r.builtin and r.source is None for r in BUILTIN_RULES)
    # every built-in rule has its rulebook table (with its source)
    rules = read_rules()
    assert all("source" in rules[r] for r in RULE_IDS)


def test_projects_measures_are_the_registry_measures():
    declared = {m for r in BUILTIN_RULES for m in r.measures}
    assert set(siting.PROJECT_COLUMNS) >= declared
    assert rule_by_id("farmland").measures == ("farmland_m2", "farmland_mu")


def test_the_siting_pass_runs_the_registry(monkeypatch):
    """Replacing a registered rule's function changes what check_projects reports."""
    from spatialplan.rules._sites import Out

    def always_review(ctx, layers):
        return Out(ctx.n).fill(ctx.eligible_now, "review", "registry rule ran")

    swapped = tuple(dataclasses.replace(r, function=always_review) if r.id == "map_first" else r
                    for r in BUILTIN_RULES)
    monkeypatch.setattr(siting, "BUILTIN_RULES", swapped)
    p = gpd.GeoDataFrame({"project_id": ["A"], "name": ["污水站"], "facility": ["sewage"]},
                         geometry=[shapely.box(0, 0, 20, 20)], crs="EPSG:4545")
    _, fnd = siting.check_projects(p, as_of="2024-01-01")
    row = fnd.set_index("rule").loc["map_first"]
    assert (row["status"], row["message"]) == ("review", "registry rule ran")


def test_search_radius_is_the_largest_declared_radius():
    rules = read_rules()
    setback = max(p["min_m"] for p in rules["setback"]["pairs"])
    assert _search_radius(rules) == pytest.approx(setback + 1.0)
    wider = merge_rules({"facility": {"school": {"setback": {"pairs": [
        {"from": "sewage", "to": "school", "min_m": 900}]}}}})
    assert _search_radius(wider) == pytest.approx(901.0)  # facility overrides count too


def test_plugin_radius_named_by_a_parameter():
    @siting_rule("near_thing", layers=["things"], source="test", search_radius_m="reach_m")
    def near_thing(sites, layers, *, reach_m=40.0):
        return pd.DataFrame()

    rule = near_thing.siting_rule
    assert isinstance(rule, SitingRule) and not rule.builtin
    assert rule.radius({}) == 40.0
    assert rule.radius({"near_thing": {"reach_m": 250.0}}) == 250.0
    assert near_thing(None, None) is not None  # the function itself is unchanged


@pytest.mark.parametrize(("rule_id", "kwargs", "match"), [
    ("River", {"source": "x"}, "lower case"),
    ("slope", {"source": "x"}, "taken by a built-in rule"),
    ("plugins", {"source": "x"}, "taken by a built-in rule or rulebook table"),
    ("ok_id", {"source": "  "}, "give the rule's source"),
    ("ok_id", {"source": "x", "layers": ["Rivers!"]}, "layers must be role names"),
    ("ok_id", {"source": "x", "search_radius_m": -5}, "must be >= 0"),
])
def test_bad_declarations_are_refused(rule_id, kwargs, match):
    with pytest.raises(ValueError, match=match):
        siting_rule(rule_id, **kwargs)


def test_bad_signatures_are_refused():
    with pytest.raises(TypeError, match=r"must take \(sites, layers"):
        siting_rule("one_arg", source="x")(lambda sites: None)
    with pytest.raises(ValueError, match="not a keyword-only parameter"):
        @siting_rule("radius_typo", source="x", search_radius_m="min_mm")
        def radius_typo(sites, layers, *, min_m=1.0):
            return None


def test_public_api():
    assert sp.siting_rule is _registry.siting_rule
    assert "siting_rule" in sp.__all__
