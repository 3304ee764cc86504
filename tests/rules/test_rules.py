"""Tests of the rulebook: defaults, deep merge, per-facility overrides, bad rulebooks."""

from __future__ import annotations

import re

import pytest

from spatialplan.errors import RulebookError
from spatialplan.rules.rulebook import (
    RULE_IDS,
    default_rules_path,
    merge_rules,
    read_rules,
    rules_for,
    setback_pairs,
)


def _write(tmp_path, text: str):
    path = tmp_path / "my_rules.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_have_every_rule_with_enabled_and_source():
    rules = read_rules()
    assert default_rules_path().name == "rules.toml"
    assert rules["tolerance"] == {
        "min_overlap_m2": 1.0,
        "min_overlap_share": 0.0,
        "source": rules["tolerance"]["source"],
    }
    for rule in RULE_IDS:
        assert rules[rule]["enabled"] is True, rule
        assert rules[rule]["source"].strip(), rule
    assert rules["landuse"]["pass_share"] == 0.95
    assert rules["landuse"]["parent_counts"] is False
    assert rules["slope"]["limit_deg"] == 25.0
    assert rules["slope"]["review_from_deg"] == 15.0
    assert rules["as_built"]["min_inside_share"] == 0.95
    assert rules["schedule"]["plan_period"] == {"start": 2021, "end": 2035}
    assert "142号" in rules["redline"]["source"]
    assert "第35条" in rules["farmland"]["source"]
    assert "193号" in rules["udb"]["source"]


def test_setback_pairs_carry_sources():
    pairs = setback_pairs(read_rules())
    assert pairs and all(p["source"] and p["min_m"] > 0 for p in pairs)
    assert any("07" in p["to"] for p in pairs)


def test_user_file_merges_deep(tmp_path):
    path = _write(
        tmp_path,
        """
[tolerance]
min_overlap_m2 = 200

[slope]
limit_deg = 20
""",
    )
    rules = read_rules(path)
    assert rules["tolerance"]["min_overlap_m2"] == 200.0
    assert isinstance(rules["tolerance"]["min_overlap_m2"], float)
    assert rules["tolerance"]["min_overlap_share"] == 0.0  # kept from the defaults
    assert rules["slope"]["limit_deg"] == 20.0
    assert rules["slope"]["review_from_deg"] == 15.0


def test_setback_list_is_replaced_whole(tmp_path):
    path = _write(
        tmp_path,
        """
[[setback.pairs]]
from = "sewage"
to = ["school"]
min_m = 300
""",
    )
    pairs = setback_pairs(read_rules(path))
    assert len(pairs) == 1
    assert pairs[0] == {
        "from": ["sewage"],
        "to": ["school"],
        "min_m": 300.0,
        "source": read_rules()["setback"]["source"],
    }


def test_per_facility_override(tmp_path):
    path = _write(
        tmp_path,
        """
[facility.school.slope]
limit_deg = 10
review_from_deg = 5
""",
    )
    rules = read_rules(path)
    assert rules_for(rules, "school")["slope"]["limit_deg"] == 10.0
    assert rules_for(rules, "market")["slope"]["limit_deg"] == 25.0
    assert rules_for(rules, "road")["slope"]["limit_deg"] == 35.0  # default override kept
    assert "facility" not in rules_for(rules, "school")
    assert rules_for(rules, None)["slope"]["limit_deg"] == 25.0


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[slope]\nlimit_degree = 20\n", "slope.limit_degree"),
        ("[slop]\nlimit_deg = 20\n", "slop"),
        ("[facility.road.slope]\nmax = 3\n", "facility.road.slope.max"),
        ("[schedule.plan_period]\nbegin = 2020\n", "schedule.plan_period.begin"),
        (
            "[[setback.pairs]]\nfrom = 'sewage'\nto = 'school'\nmin_m = 1\ndist = 2\n",
            "setback.pairs[0].dist",
        ),
    ],
)
def test_unknown_key_is_named(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(RulebookError, match=re.escape(f"unknown rulebook key '{key}'")) as info:
        read_rules(path)
    assert info.value.path == str(path)
    assert "my_rules.toml" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[slope]\nlimit_deg = 'steep'\n", "slope.limit_deg"),
        ("[landuse]\nparent_counts = 1\n", "landuse.parent_counts"),
        ("[redline]\nenabled = 'yes'\n", "redline.enabled"),
        ("[schedule.plan_period]\nstart = 2021.5\n", "schedule.plan_period.start"),
        ("slope = 3\n", "slope"),
        ("[redline]\nreview_categories = [1, 2]\n", "redline.review_categories"),
        (
            "[[setback.pairs]]\nfrom = 'sewage'\nto = 'school'\nmin_m = '5'\n",
            "setback.pairs[0].min_m",
        ),
    ],
)
def test_wrong_type_is_named(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(RulebookError, match=re.escape(f"rulebook key '{key}' must be")):
        read_rules(path)


@pytest.mark.parametrize(
    "text",
    [
        "[landuse]\npass_share = 95\n",
        "[tolerance]\nmin_overlap_m2 = -1\n",
        "[udb]\noutside_default = 'maybe'\n",
        "[schedule.plan_period]\nstart = 2040\n",
        "[slope]\nreview_from_deg = 30\n",
        "[[setback.pairs]]\nfrom = 'sewage'\nmin_m = 5\n",
        "this is not toml",
    ],
)
def test_bad_values_are_rejected(tmp_path, text):
    with pytest.raises(RulebookError):
        read_rules(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(RulebookError, match="not found"):
        read_rules(tmp_path / "nope.toml")


def test_merge_rules_does_not_mutate():
    base = read_rules()
    merged = merge_rules({"farmland": {"enabled": False}}, base=base)
    assert merged["farmland"]["enabled"] is False
    assert base["farmland"]["enabled"] is True
    assert read_rules()["farmland"]["enabled"] is True
