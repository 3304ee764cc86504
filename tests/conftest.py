"""Shared test fixtures: small, generic, built in code (keep it that way)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
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
