"""The dask engine's partition helpers: their shortcuts give what the long way gives."""

from __future__ import annotations

import dataclasses
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from spatialplan.analysis import _overlay_geom as _geom
from spatialplan.analysis._overlay_lines import _Line
from spatialplan.errors import DataSourceError
from spatialplan.pipeline import _dask, _dask_accounts, engine

CRS = "EPSG:4545"


def _parcels(n: int, seed: int, *, overlap: bool = False) -> np.ndarray:
    """``n`` small boxes and L-shapes on the 1 mm grid, some empty or missing."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(500_000, 510_000, n), 3)
    y = np.round(rng.uniform(3_000_000, 3_010_000, n), 3)
    w = np.round(rng.uniform(5, 300, n), 3)
    boxes = shapely.box(x, y, x + w, y + w)
    ell = shapely.difference(boxes, shapely.box(x + w / 2, y + w / 2, x + w, y + w))
    geoms = np.where(rng.random(n) < 0.3, ell, boxes).astype(object)
    if not overlap:  # keep the first of every group of overlapping boxes
        tree = shapely.STRtree(geoms)
        a, b = tree.query(geoms, predicate="intersects")
        drop = np.unique(np.maximum(a, b)[a != b])
        geoms[drop] = None
    geoms[rng.choice(n, 5, replace=False)] = shapely.Polygon()
    geoms[rng.choice(n, 5, replace=False)] = None
    return geoms


TILES = [(502_000.0, 3_003_000.0, 507_500.0, 3_006_000.0),
         (-math.inf, -math.inf, 505_000.0, math.inf),
         (505_000.0, 3_004_000.0, math.inf, math.inf),
         (-math.inf, -math.inf, math.inf, math.inf)]


@pytest.mark.parametrize("tile", TILES)
def test_owner_by_bounds_is_the_owner_by_representative_point(tile):
    geoms = _parcels(3000, 1, overlap=True)
    fast = _dask._owned_by(geoms, tile)
    slow = _dask._in_tile(_dask._points(geoms), tile)
    assert fast.dtype == bool and np.array_equal(fast, slow)
    assert 0 < fast.sum() <= len(geoms) - 10  # the missing and empty ones are nobody's


@pytest.mark.parametrize("overlap", [False, True])
def test_tile_area_equals_the_dissolved_clip(overlap):
    geoms = _parcels(2000, 2, overlap=overlap)
    line = _Line("farmland", gpd.GeoDataFrame(geometry=geoms, crs=CRS), 0.001)
    box = (502_000.0, 3_001_000.0, 507_000.0, 3_008_000.0)
    zone = np.array([shapely.box(*box)])
    pairs = line.overlaps
    assert bool(len(pairs[0])) is overlap
    clip = _geom.clip_to_zones(zone, line.geoms, grid_size=0.001, tree=line.tree,
                               patch_area=line.area)
    long_way = _geom.dissolved_zone_areas(zone, line.geoms, clip, grid_size=0.001,
                                          overlaps=pairs)[0][0]
    assert _dask._tile_area(line, box, pairs) == pytest.approx(long_way, rel=1e-12)


def test_feature_numbers_of_conflict_ids():
    ids = pd.Series(["farmland:12", "redline:0", "udb:7"])
    assert engine._id_numbers(ids).tolist() == [12, 0, 7]
    missing = pd.Series(["farmland:1", None, "udb:3"], dtype=object)
    assert engine._id_numbers(missing).isna().tolist() == [False, True, False]
    assert engine._id_numbers(pd.Series([], dtype=object)).empty
    odd = pd.Series(["a:b:7", "x:1.5", "q", None, "z:-3"], dtype=object)
    assert engine._id_numbers(odd).tolist()[:2] == [7.0, 1.5]
    assert engine._id_numbers(odd).isna().tolist() == [False, False, True, True, False]
    frame = pd.DataFrame({"layer_a": ["udb", "redline", "farmland", "redline"],
                          "layer_b": ["udb", "farmland", "udb", "farmland"],
                          "feature_a": ["udb:1", "redline:10", "farmland:2", "redline:9"],
                          "feature_b": ["udb:2", "farmland:1", "udb:1", "farmland:1"],
                          "township_code": ["2", None, "1", "1"]})
    assert engine.conflict_sort_key(frame).tolist() == [3, 1, 2, 0]


def test_default_partitions_one_per_worker_thread_and_capped():
    assert engine.default_partition_size(1500, 1) == engine.MAX_PARTITION_TOWNSHIPS
    assert engine.default_partition_size(300, 2) == 150
    assert engine.default_partition_size(0, 2) == 1


@dataclasses.dataclass
class _FakeLayer:
    n_in: int
    rejected: pd.DataFrame
    repaired: pd.DataFrame
    source: object
    zm_dropped: np.ndarray = dataclasses.field(default_factory=lambda: np.array([], int))
    accounted: bool = False


def test_accounting_refuses_a_row_beyond_the_count(tmp_path):
    @dataclasses.dataclass
    class _Source:
        path: object = tmp_path / "a.gpkg"
        n_zm_dropped: int = 0

    empty = pd.DataFrame({"feature_id": pd.Series([], dtype=object)})
    plan = type("P", (), {})()
    plan.layers = {"farmland": _FakeLayer(3, empty, empty, _Source())}
    shared = type("S", (), {"deferred": frozenset({"farmland"})})()
    outs = [{"accounts": {"farmland": {"seen": np.array([0, 1, 2, 3]), "zm": [],
                                       "rejected": empty, "repaired": empty}}}]
    with pytest.raises(DataSourceError, match="changed while the check ran"):
        _dask_accounts.account_deferred(plan, shared, outs)
    outs = [{"accounts": {"farmland": {"seen": np.array([2, 0, 1, 1]), "zm": [],
                                       "rejected": empty, "repaired": empty}}}]
    _dask_accounts.account_deferred(plan, shared, outs)  # every row seen: nothing read again
    assert plan.layers["farmland"].accounted
