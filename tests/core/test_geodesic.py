"""Tests of spatialplan.core._geodesic: ellipsoidal areas of plane (Gauss-Krüger) polygons."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from conftest import equal_area_m2
from pyproj import CRS
from shapely import box

from spatialplan.core._geodesic import geodesic_areas

GK = CRS("EPSG:4545")  # CGCS2000 3-degree GK zone 36, CM 108°E
X_WEST, Y0 = 350_000.0, 2_988_000.0  # 150 km west of the central meridian, ~27°N


def test_area_of_the_plane_polygon_not_of_geodesic_edges():
    """A 20 km square off the central meridian: its straight plane edges, not geodesics."""
    square = shapely.affinity.translate(box(0, 0, 20_000, 20_000), X_WEST, Y0)
    got = geodesic_areas(np.array([square]), GK)[0]
    assert got == pytest.approx(equal_area_m2(square), rel=1e-10)
    assert got < square.area * (1 - 4e-4)  # GK enlarges areas by ~k² off the meridian


def test_pieces_add_up_to_the_whole():
    """Cutting a polygon does not change its ellipsoidal area (shared edges cancel, split
    edges follow the plane edge), so a township's line areas add up to its own."""
    whole = shapely.affinity.translate(
        shapely.Polygon([(0, 0), (30_000, 2_000), (25_000, 18_000), (-3_000, 15_000)]),
        X_WEST, Y0)
    cut = shapely.affinity.translate(box(-5_000, -1_000, 12_345, 20_000), X_WEST, Y0)
    pieces = np.array([shapely.intersection(whole, cut), shapely.difference(whole, cut), None])
    areas = geodesic_areas(np.concatenate([[whole], pieces]), GK)
    assert np.isnan(areas[3])
    assert areas[1] + areas[2] == pytest.approx(areas[0], rel=1e-11)
