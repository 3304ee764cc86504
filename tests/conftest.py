"""Shared test fixtures: small, generic, built in code (keep it that way)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

#: the small real public files the tests read (``tests/data/PROVENANCE.md``); part of the
#: repository, so the tests run from a plain clone
DATA_DIR = Path(__file__).resolve().parent / "data"

#: a point in Guizhou (CGCS2000 lon/lat) near the demo township
LON, LAT = 107.5, 27.8


def square(x: float, y: float, size: float) -> shapely.Polygon:
    """Axis-aligned square with lower-left corner (x, y)."""
    return shapely.box(x, y, x + size, y + size)


def equal_area_m2(geom: shapely.Geometry, crs: str = "EPSG:4545") -> float:
    """Ellipsoidal area of a plane polygon, independently of spatialplan's geodesic code.

    The polygon (edges straight in ``crs``), split to 1 m edges, measured in a GRS80 Lambert
    azimuthal equal-area projection centred on it.
    """
    from pyproj import Transformer

    c = shapely.centroid(geom)
    lon, lat = Transformer.from_crs(crs, "EPSG:4490", always_xy=True).transform(c.x, c.y)
    to_laea = Transformer.from_crs(crs, f"+proj=laea +lat_0={lat} +lon_0={lon} +ellps=GRS80",
                                   always_xy=True)
    fine = shapely.segmentize(geom, 1.0)
    return shapely.transform(fine, lambda xy: np.column_stack(to_laea.transform(xy[:, 0],
                                                                               xy[:, 1]))).area


def write_layer(gdf: gpd.GeoDataFrame, path: Path, **kwargs) -> Path:
    """Write ``gdf`` with pyogrio (the default engine) and return the path."""
    pyogrio.write_dataframe(gdf, path, **kwargs)
    return path


@pytest.fixture()
def townships_gdf() -> gpd.GeoDataFrame:
    """Two townships in CGCS2000 lon/lat near 107.5°E 27.8°N, with Chinese names."""
    return gpd.GeoDataFrame(
        {"XZQDM": ["520123001", "520123002"], "XZQMC": ["示范镇", "乌江镇"]},
        geometry=[square(LON, LAT, 0.05), square(LON + 0.05, LAT, 0.05)],
        crs="EPSG:4490",
    )


@pytest.fixture()
def data_dir() -> Path:
    """``tests/data``: the real public reference files (see its ``PROVENANCE.md``)."""
    return DATA_DIR


# --------------------------------------------------------------------------- local vs dask


def _plain_frame(df) -> pd.DataFrame:
    """A plain DataFrame without geometry (geometries are compared by area)."""
    out = pd.DataFrame(df).copy()
    if "geometry" in out:
        out["geometry_area"] = shapely.area(np.asarray(out.pop("geometry"), dtype=object))
    return out


def assert_same_results(local, dask) -> None:
    """Every result table equal: same rows and order, areas within 1e-6 relative."""
    for name in ("township_stats", "projects", "findings", "outside_townships", "terrain"):
        pd.testing.assert_frame_equal(_plain_frame(getattr(local, name)),
                                      _plain_frame(getattr(dask, name)), rtol=1e-6, obj=name)
    a = local.line_conflicts
    a = a.iloc[_conflict_order(a)].reset_index(drop=True)
    pd.testing.assert_frame_equal(_plain_frame(a), _plain_frame(dask.line_conflicts), rtol=1e-6,
                                  obj="line_conflicts")
    assert local.verdict_counts() == dask.verdict_counts()
    pd.testing.assert_frame_equal(local.schedule, dask.schedule)


def _conflict_order(frame):
    from spatialplan.pipeline.engine import conflict_sort_key

    return conflict_sort_key(frame)
