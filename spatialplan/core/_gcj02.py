"""WGS84 / CGCS2000 → GCJ-02 ("Mars coordinates") for **display only**.

Gaode/AMap tiles are drawn in GCJ-02, an obfuscated datum offset by a few hundred metres
from WGS84 (CGCS2000 agrees with WGS84 to well under a metre at map scale). Overlays shown
on Gaode tiles must be shifted with the public standard formula below; analysis never uses
GCJ-02. Outside mainland China (rough bounding box) coordinates are returned unchanged, as
the published formula does.

The formula is the widely published one (Krasovsky 1940 ellipsoid, a = 6378245 m,
e² = 0.00669342162296594323); it is accurate to about 1-2 m against AMap.
"""

from __future__ import annotations

import numpy as np
import shapely

__all__ = ["geometry_to_gcj02", "out_of_china", "wgs84_to_gcj02"]

_A = 6378245.0
_EE = 0.00669342162296594323


def out_of_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Return a boolean array: True where (lon, lat) is outside the GCJ-02 area (rough box)."""
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _transform_lat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift WGS84 longitudes/latitudes (degrees) to GCJ-02.

    Parameters
    ----------
    lon, lat
        Arrays (or scalars) of WGS84 / CGCS2000 coordinates in degrees.

    Returns
    -------
    tuple of arrays
        GCJ-02 longitudes and latitudes; points outside China are unchanged.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(106.65, 26.38)
    >>> round(float(lon - 106.65), 4), round(float(lat - 26.38), 4)
    (0.0036, -0.0036)
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    x = lon - 105.0
    y = lat - 35.0
    dlat = _transform_lat(x, y)
    dlon = _transform_lon(x, y)
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, lon, lon + dlon), np.where(outside, lat, lat + dlat)


def geometry_to_gcj02(geoms: np.ndarray | shapely.Geometry) -> np.ndarray | shapely.Geometry:
    """Shift shapely geometries in EPSG:4326 (lon, lat) to GCJ-02, for display only.

    Examples
    --------
    >>> from shapely import Point
    >>> p = geometry_to_gcj02(Point(106.65, 26.38))
    >>> round(p.x, 4)
    106.6536
    """

    def _shift(coords: np.ndarray) -> np.ndarray:
        lon, lat = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, _shift)
