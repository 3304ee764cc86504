"""The rulebook's [reach] table: limits per catalogue facility type."""

from __future__ import annotations

import pytest

from spatialplan.errors import RulebookError
from spatialplan.rules.rulebook import merge_rules, read_rules


def test_default_reach_limits_are_catalogue_types_with_a_source():
    reach = read_rules()["reach"]
    assert reach["enabled"] and reach["snap_m"] == 1.0 and reach["source"]
    assert reach["limits_m"]["school"] == 5000.0
    assert reach["limits_m"]["health_center"] == 10000.0


def test_a_limit_is_overridden_and_another_type_added():
    limits = merge_rules({"reach": {"limits_m": {"school": 3000, "fire_station": 8000}}}
                         )["reach"]["limits_m"]
    assert limits["school"] == 3000.0 and limits["fire_station"] == 8000.0
    assert limits["health_center"] == 10000.0


def test_an_unknown_facility_type_is_refused_with_the_codes():
    with pytest.raises(RulebookError, match="unknown facility type") as err:
        merge_rules({"reach": {"limits_m": {"schol": 3000}}})
    assert "school" in str(err.value.hint)


def test_a_negative_limit_is_refused():
    with pytest.raises(RulebookError, match="non-negative"):
        merge_rules({"reach": {"limits_m": {"school": -1}}})


def test_reach_is_not_a_per_facility_override():
    with pytest.raises(RulebookError, match="unknown rulebook key"):
        merge_rules({"facility": {"school": {"reach": {"snap_m": 2.0}}}})


def test_no_minute_limits_are_bundled_and_walking_is_5_kmh():
    reach = read_rules()["reach"]
    assert reach["limits_min"] == {}
    assert reach["walk_kmh"] == 5.0 and reach["default_speed_kmh"] == 0.0


def test_minute_limits_and_speeds_are_read():
    reach = merge_rules({"reach": {"limits_min": {"school": 20}, "walk_kmh": 4,
                                   "default_speed_kmh": 30}})["reach"]
    assert reach["limits_min"] == {"school": 20.0}
    assert reach["walk_kmh"] == 4.0 and reach["default_speed_kmh"] == 30.0
    assert reach["limits_m"]["school"] == 5000.0


def test_a_minute_limit_of_an_unknown_type_is_refused():
    with pytest.raises(RulebookError, match=r"unknown facility type.*limits_min"):
        merge_rules({"reach": {"limits_min": {"schol": 20}}})


@pytest.mark.parametrize(("key", "value", "message"), [
    ("walk_kmh", 0, "positive"), ("walk_kmh", -1, "non-negative"),
    ("default_speed_kmh", -5, "non-negative"), ("walk_kmh", "fast", "must be a number"),
])
def test_bad_speeds_are_refused(key, value, message):
    with pytest.raises(RulebookError, match=message):
        merge_rules({"reach": {key: value}})


def test_a_negative_minute_limit_is_refused():
    with pytest.raises(RulebookError, match="non-negative"):
        merge_rules({"reach": {"limits_min": {"school": -20}}})
