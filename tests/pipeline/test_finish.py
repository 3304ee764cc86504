"""The one finishing step both runners end in (spatialplan.pipeline.finish, issue 16)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import spatialplan as sp
from spatialplan.analysis.rollup import INDICATOR_COLUMNS
from spatialplan.errors import SpatialPlanError
from spatialplan.pipeline import run as run_module
from spatialplan.pipeline.finish import finish
from spatialplan.pipeline.result import CheckResult
from spatialplan.rules.siting import COVERAGE_COLUMNS


@pytest.fixture(scope="module")
def demo_result(demo_plan):
    return sp.run_check(demo_plan, as_of=dt.date(2026, 1, 2))


def _tables(result: CheckResult) -> dict:
    stats = result.township_stats
    plain = stats[[c for c in stats.columns
                   if c not in _COVERAGE and not c.startswith("reach_share_")]]
    return {"township_stats": plain, "outside_townships": result.outside_townships,
            "line_conflicts": result.line_conflicts}


#: the columns finish joins to the township statistics (all but the key)
_COVERAGE = (*COVERAGE_COLUMNS[1:], *INDICATOR_COLUMNS, "county_code", "county_rank")


def test_finish_rebuilds_the_local_result(demo_plan, demo_result):
    again = finish(demo_plan, **_tables(demo_result), as_of=demo_result.as_of,
                   projects=demo_result.projects, findings=demo_result.findings,
                   terrain=demo_result.terrain)
    pd.testing.assert_frame_equal(again.township_stats, demo_result.township_stats)
    pd.testing.assert_frame_equal(again.schedule, demo_result.schedule)
    pd.testing.assert_frame_equal(again.terrain, demo_result.terrain)
    assert again.as_of == dt.date(2026, 1, 2)
    assert again.tolerance == demo_result.tolerance


def test_finish_without_projects_is_the_statistics_alone(demo_plan, demo_result):
    stats = finish(demo_plan, **_tables(demo_result), as_of=demo_plan.as_of)
    assert stats.projects is None and stats.schedule is None and stats.terrain.empty
    assert not set(_COVERAGE) & set(stats.township_stats.columns)
    assert list(sp.run_stats(demo_plan).township_stats.columns) == list(
        stats.township_stats.columns)


def test_finish_refuses_a_lost_project(demo_plan, demo_result):
    with pytest.raises(SpatialPlanError, match="project accounting broken: 41 projects in, "
                                               "40 out"):
        finish(demo_plan, **_tables(demo_result), as_of=demo_result.as_of,
               projects=demo_result.projects.iloc[1:], findings=demo_result.findings)


def test_terrain_comes_in_township_order_and_a_missing_township_is_nan(demo_plan,
                                                                       demo_result):
    terrain = demo_result.terrain
    codes = list(demo_plan.layers["townships"].data["code"])
    shuffled = terrain.iloc[::-1].drop(index=codes[0])  # one township missing, order reversed
    got = finish(demo_plan, **_tables(demo_result), as_of=demo_result.as_of,
                 terrain=shuffled).terrain
    assert list(got.index) == codes
    assert got.iloc[0].isna().all()  # never another township's row
    pd.testing.assert_frame_equal(got.iloc[1:], terrain.iloc[1:], check_index_type=False)
    assert np.isfinite(got.iloc[1:].select_dtypes("number").to_numpy()).any()


def test_both_runners_end_in_finish(demo_plan, monkeypatch):
    from spatialplan.pipeline import engine

    calls = []

    def spy(plan, **tables):
        calls.append(sorted(tables))
        return finish(plan, **tables)

    monkeypatch.setattr(run_module, "finish", spy)
    sp.run_check(demo_plan)
    assert calls == [sorted(["township_stats", "outside_townships", "line_conflicts", "as_of",
                             "projects", "findings", "terrain", "township_conflicts"])]
    # the dask engine's combination of its partitions hands its tables to the same function
    assert engine.finish is finish
