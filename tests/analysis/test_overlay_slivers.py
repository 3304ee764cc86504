"""A layer with small overlaps spread everywhere: the certificate's refined suspects.

Every certificate chunk of such a layer is rejected; ``coverage_certificate(return_suspects=
True)`` re-certifies the rejected chunks in sub-chunks of ``REFINE_CHUNK`` polygons and, when
the cleared pieces do not certify together, tests them pairwise. The suspects must still hold
a polygon of every overlapping pair: the pairs found from them equal the exact test on the whole
layer (``_old_pairs``), and the report equals the plain path (every polygon a suspect).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely import box
from test_overlay_duplicates import (
    GRID,
    _old_pairs,
    _plain,
    _report,
    assert_same_report,
    grown_across_chunks,
)
from test_overlay_shared import _case, _frame, _grid

from spatialplan.analysis import _overlay_pairs as _pairs


def _grown(geoms: np.ndarray, picks, width: float = 0.05) -> np.ndarray:
    """``geoms`` with the polygons ``picks`` grown by ``width`` (a sliver over each neighbour)."""
    out = geoms.copy()
    picks = np.asarray(picks, dtype=np.intp)
    out[picks] = shapely.set_precision(shapely.buffer(geoms[picks], width, join_style="mitre"),
                                       GRID)
    return out


def _suspect_pairs(layer: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    certified, parts, suspects = _pairs.coverage_certificate(layer, chunk_size=chunk,
                                                             return_suspects=True)
    assert not certified and parts is None
    assert (np.diff(suspects) > 0).all()
    return _pairs.overlap_pairs(layer, certified=False, suspects=suspects)


def _check(layer: np.ndarray, chunk: int) -> np.ndarray:
    """Assert the refined suspects find the whole layer's pairs; return the suspects."""
    got = _suspect_pairs(layer, chunk)
    want = _old_pairs(layer)
    assert len(want[0]) > 0
    assert [p.tolist() for p in got] == [p.tolist() for p in want]
    return _pairs.coverage_certificate(layer, chunk_size=chunk, return_suspects=True)[2]


@pytest.fixture(params=[4, 7])
def refine(request, monkeypatch):
    """Small sub-chunks, so that a 20 x 20 grid has many of them in every chunk."""
    monkeypatch.setattr(_pairs, "REFINE_CHUNK", request.param)
    monkeypatch.setattr(_pairs, "LEAF_BATCH", 5)  # several vectorised batches
    return request.param


@pytest.mark.parametrize("chunk", [30, 100, 400])
@pytest.mark.parametrize("seed", [0, 1])
def test_slivers_spread_everywhere(refine, chunk, seed):
    geoms = _grid(20, 100.0, seed)
    picks = np.random.default_rng(seed).choice(len(geoms), size=8, replace=False)
    suspects = _check(_grown(geoms, picks), chunk)
    assert set(picks.tolist()) <= set(suspects.tolist())
    assert len(suspects) < len(geoms)  # refined: not the whole layer


@pytest.mark.parametrize("chunk", [25, 50, 100])
def test_slivers_straddling_chunk_and_sub_chunk_borders(refine, chunk):
    geoms = _grid(20, 100.0, 3)
    owner = np.full(len(geoms), -1)
    for k, idx in enumerate(_pairs._spatial_chunks(geoms, chunk)):
        sub = _pairs._spatial_chunks(geoms[idx], refine)
        for s, leaf in enumerate(sub):
            owner[idx[leaf]] = k * 1000 + s
    i, j = shapely.STRtree(geoms).query(geoms, predicate="touches")
    across_chunks = [a for a, b in zip(i, j, strict=True) if owner[a] // 1000 != owner[b] // 1000]
    across_subs = [a for a, b in zip(i, j, strict=True)
                   if owner[a] // 1000 == owner[b] // 1000 and owner[a] != owner[b]]
    picks = np.unique(np.r_[across_chunks[::7][:5], across_subs[::7][:5]])
    _check(_grown(geoms, picks), chunk)


def test_slivers_in_one_sub_chunk(refine):
    geoms = _grid(20, 100.0, 4)
    chunk = _pairs._spatial_chunks(geoms, 100)[1]
    leaf = chunk[_pairs._spatial_chunks(geoms[chunk], refine)[2]]
    suspects = _check(_grown(geoms, leaf[:2]), 100)
    assert set(leaf.tolist()) <= set(suspects.tolist())


@pytest.mark.parametrize("chunk", [25, 100])
def test_overlap_between_two_certified_chunks(refine, chunk):
    """Each chunk certifies, only their unions overlap: the refinement finds the few
    sub-chunks on either side instead of declaring every polygon a suspect."""
    layer, a, b = grown_across_chunks(_grid(12, 100.0, 5), chunk)
    suspects = _check(layer, chunk)
    assert a in suspects or b in suspects
    assert len(suspects) <= 2 * refine


def test_nested_and_identical_polygons(refine):
    geoms = _grid(15, 100.0, 6)
    inner = shapely.set_precision(shapely.buffer(geoms[40], -20.0, join_style="mitre"), GRID)
    layer = np.concatenate([geoms, [inner, geoms[100], geoms[170], None, shapely.Polygon()]])
    suspects = _check(layer, 40)
    assert {40, 100, 170, len(geoms), len(geoms) + 1, len(geoms) + 2} <= set(suspects.tolist())


@pytest.mark.parametrize("chunk", [10, 50])
def test_everything_overlaps(refine, chunk):
    geoms = _grid(10, 100.0, 7)
    layer = _grown(geoms, np.arange(len(geoms)), width=3.0)
    assert len(_check(layer, chunk)) == len(layer)


def test_shifted_copy_of_the_whole_layer(refine):
    """Two certified halves that overlap everywhere: every piece conflicts."""
    geoms = _grid(10, 100.0, 8)
    layer = np.concatenate([geoms, shapely.transform(geoms, lambda xy: xy + 30.0)])
    _check(layer, 50)


@pytest.mark.parametrize("chunk", [40, 120])
def test_report_with_slivers_equals_the_plain_path(monkeypatch, refine, chunk):
    case = _case(2)
    farm = case["farmland"].copy()
    geoms = np.asarray(farm.geometry.array, object)
    picks = np.random.default_rng(2).choice(len(geoms), size=len(geoms) // 20, replace=False)
    farm["geometry"] = _grown(geoms, picks)
    case["farmland"] = farm
    case["cropland"] = _frame("cropland", np.array(
        [box(*shapely.bounds(geoms[k])) for k in picks[:6]] + [box(0, 0, 1, 1)], dtype=object))
    monkeypatch.setattr(_pairs, "CERTIFICATE_CHUNK", chunk)
    got = _report(case)
    assert len(got.line_conflicts) > 0
    _plain(monkeypatch)
    assert_same_report(got, _report(case))


@pytest.mark.slow
def test_many_slivers_against_the_whole_layer():
    geoms = _grid(60, 50.0, 9)
    picks = np.random.default_rng(9).choice(len(geoms), size=len(geoms) // 100, replace=False)
    for chunk in (300, 1000):
        _check(_grown(geoms, picks), chunk)
