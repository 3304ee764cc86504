"""CRS policy: CGCS2000 Gauss-Krüger zone choice, zone-prefix checks, datum refusal, reprojection.

One analysis CRS per run: the CGCS2000 3-degree Gauss-Krüger zone **without** zone prefix
(EPSG:4534-4554) of the data's centre, or the one the plan names. Every layer is reprojected
explicitly (pyproj ``always_xy=True``) and checked finite and inside China afterwards.

Example
-------
>>> from spatialplan.core.crs import gk_zone_crs
>>> gk_zone_crs(107.5).to_epsg(), gk_zone_crs(107.5, prefixed=True).to_epsg()
(4545, 4524)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj
import shapely

from spatialplan.errors import CRSError

__all__ = [
    "CGCS2000",
    "CHINA_LONLAT_BOUNDS",
    "GCJ02Offset",
    "check_area_of_use",
    "check_inside_china",
    "check_latlon_swap",
    "check_near_reference",
    "check_zone_prefix",
    "choose_analysis_crs",
    "describe_crs",
    "detect_gcj02_offset",
    "epsg_zone",
    "gk_zone",
    "gk_zone_crs",
    "lonlat_bounds",
    "refuse_ballpark",
    "to_analysis",
    "zone_epsg",
]

log = logging.getLogger(__name__)

#: CGCS2000 geographic (axis order lat, lon in EPSG; we always use ``always_xy``)
CGCS2000 = pyproj.CRS.from_epsg(4490)

#: (min lon, min lat, max lon, max lat) of the "inside China" check
CHINA_LONLAT_BOUNDS = (73.0, 3.0, 136.0, 54.0)

_BALLPARK_DATUMS = ("xian 1980", "xian_1980", "beijing 1954", "beijing_1954")
_ZONES = range(25, 46)  # 3-degree zones covered by the CGCS2000 GK EPSG codes


def gk_zone(lon: float) -> int:
    """Return the 3-degree Gauss-Krüger zone number of a longitude (zone = round(lon / 3)).

    Halves round up (106.5°E → zone 36), unlike Python's banker's rounding.

    Example
    -------
    >>> gk_zone(105.2), gk_zone(107.5)
    (35, 36)
    """
    if not math.isfinite(lon):
        raise CRSError(f"longitude {lon} is not finite", hint="check the layer's coordinates")
    return math.floor(lon / 3.0 + 0.5)


def zone_epsg(zone: int, *, prefixed: bool = False) -> int:
    """Return the EPSG code of CGCS2000 3-degree Gauss-Krüger zone ``zone``.

    Parameters
    ----------
    zone
        The 3-degree zone number (25-45; Guizhou lies in 35, 36 and 37).
    prefixed
        True for the zone-prefixed CRS (EPSG:4513-4533 = 4488 + zone), False (default) for the
        one without prefix (EPSG:4534-4554 = 4509 + zone).

    Raises
    ------
    CRSError
        If the zone is outside 25-45.

    Example
    -------
    >>> zone_epsg(36), zone_epsg(36, prefixed=True)
    (4545, 4524)
    """
    if zone not in _ZONES:
        raise CRSError(f"zone {zone} is not a CGCS2000 3-degree zone of China (25-45)",
                       hint="check the zone number or the easting prefix")
    return (4488 if prefixed else 4509) + zone


def epsg_zone(crs: pyproj.CRS) -> int | None:
    """Return the 3-degree zone of a CGCS2000 Gauss-Krüger CRS (prefixed or not), else None.

    The inverse of :func:`zone_epsg`.

    Example
    -------
    >>> epsg_zone(pyproj.CRS.from_epsg(4545)), epsg_zone(pyproj.CRS.from_epsg(4524))
    (36, 36)
    """
    epsg = crs.to_epsg()
    for prefixed in (False, True):
        zone = None if epsg is None else epsg - (4488 if prefixed else 4509)
        if zone in _ZONES:
            return zone
    return None


def gk_zone_crs(lon: float, *, prefixed: bool = False) -> pyproj.CRS:
    """Return the CGCS2000 3-degree Gauss-Krüger CRS of the zone containing ``lon``.

    Parameters
    ----------
    lon
        Longitude in degrees east.
    prefixed
        True for the zone-prefixed CRS (EPSG:4513-4533, easting = zone·10⁶ + 500 000 + x),
        False (default) for the one without prefix (EPSG:4534-4554).

    Raises
    ------
    CRSError
        If the zone is outside 25-45 (75°E-135°E).

    Example
    -------
    >>> gk_zone_crs(105.2).to_epsg()
    4544
    """
    zone = gk_zone(lon)
    if zone not in _ZONES:
        raise CRSError(
            f"longitude {lon:.3f}° lies in 3-degree zone {zone}, outside the CGCS2000 "
            "Gauss-Kruger zones 25-45 (75°E-135°E)",
            hint="check the layer's CRS and coordinates (lon/lat swapped?)",
        )
    return pyproj.CRS.from_epsg(zone_epsg(zone, prefixed=prefixed))


def lonlat_bounds(obj: Any, crs: Any = None) -> tuple[float, float, float, float]:
    """Bounds of a GeoDataFrame/GeoSeries (or a bounds tuple in ``crs``) in CGCS2000 lon/lat.

    Example
    -------
    >>> lonlat_bounds((107.0, 27.0, 108.0, 28.0), "EPSG:4490")
    (107.0, 27.0, 108.0, 28.0)
    """
    if hasattr(obj, "total_bounds"):
        crs = obj.crs if crs is None else crs
        geoms = np.asarray(obj.geometry.values if hasattr(obj, "geometry") else obj.values)
        geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
        if len(geoms) == 0:
            return (math.nan,) * 4
        bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
    else:
        bounds = tuple(float(v) for v in obj)
    if crs is None:
        raise CRSError("data has no CRS, cannot place it on the earth",
                       hint="set assume_crs for the layer in the plan")
    crs = pyproj.CRS.from_user_input(crs)
    if crs.equals(CGCS2000, ignore_axis_order=True) or (crs.is_geographic and crs.to_epsg()
                                                        in (4326, 4490)):
        return bounds  # type: ignore[return-value]
    tr = pyproj.Transformer.from_crs(crs, CGCS2000, always_xy=True)
    return tuple(float(v) for v in tr.transform_bounds(*bounds, densify_pts=21))  # type: ignore


def choose_analysis_crs(layers_or_bounds: Any, *,
                        requested: str | pyproj.CRS | None = "auto") -> tuple[pyproj.CRS, str]:
    """Choose the analysis CRS: the plan's, or the GK zone (no prefix) of the data's centre.

    Parameters
    ----------
    layers_or_bounds
        A GeoDataFrame, an iterable or mapping of GeoDataFrames, or a bounds tuple
        ``(min lon, min lat, max lon, max lat)`` in CGCS2000 lon/lat.
    requested
        ``"auto"`` (or None) to choose from the data, else a CRS (e.g. ``"EPSG:4545"``), which
        must be projected.

    Returns
    -------
    (pyproj.CRS, str)
        The CRS and the reason it was chosen (recorded in ``Plan.crs_reason``).

    Example
    -------
    >>> crs, why = choose_analysis_crs((107.2, 27.6, 107.8, 28.0))
    >>> crs.to_epsg()
    4545
    """
    if requested is not None and not (isinstance(requested, str)
                                      and requested.strip().lower() == "auto"):
        try:
            crs = pyproj.CRS.from_user_input(requested)
        except pyproj.exceptions.CRSError as exc:
            raise CRSError(f"analysis CRS {requested!r} is not a CRS",
                           hint="use 'auto' or e.g. 'EPSG:4545'") from exc
        if not crs.is_projected:
            raise CRSError(f"analysis CRS {crs.name} is not projected: nothing is measured in "
                           "degrees", hint="use a CGCS2000 Gauss-Kruger zone, e.g. EPSG:4545")
        refuse_ballpark(crs)
        return crs, f"named in the plan: {describe_crs(crs)}"
    bounds = _combined_bounds(layers_or_bounds)
    if not all(math.isfinite(v) for v in bounds):
        raise CRSError("cannot choose the analysis CRS: no layer has any geometry",
                       hint="check the layers, or name the CRS in the plan (crs = 'EPSG:4545')")
    lon = (bounds[0] + bounds[2]) / 2.0
    lat = (bounds[1] + bounds[3]) / 2.0
    crs = gk_zone_crs(lon)
    reason = (f"auto: centre of the data {lon:.3f}°E {lat:.3f}°N lies in 3-degree zone "
              f"{gk_zone(lon)} → {describe_crs(crs)}")
    west, east = gk_zone(bounds[0]), gk_zone(bounds[2])
    if west != east:
        reason += f" (the data spans zones {west}-{east})"
        log.warning("data spans Gauss-Kruger zones %s-%s; using zone %s", west, east,
                    gk_zone(lon))
    return crs, reason


def describe_crs(crs: pyproj.CRS) -> str:
    """Name a CRS for a message: ``EPSG:4545 CGCS2000 / 3-degree Gauss-Kruger CM 108E``."""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg} {crs.name}" if epsg else crs.name


def _combined_bounds(obj: Any) -> tuple[float, float, float, float]:
    if isinstance(obj, tuple | list) and len(obj) == 4 and all(
            isinstance(v, int | float | np.floating | np.integer) for v in obj):
        return tuple(float(v) for v in obj)  # type: ignore[return-value]
    if hasattr(obj, "total_bounds"):
        items: Iterable[Any] = [obj]
    elif isinstance(obj, Mapping):
        items = obj.values()
    else:
        items = obj
    boxes = []
    for item in items:
        data = getattr(item, "data", item)  # accept Layer objects too
        b = lonlat_bounds(data)
        if all(math.isfinite(v) for v in b):
            boxes.append(b)
    if not boxes:
        return (math.nan,) * 4
    arr = np.asarray(boxes)
    return (float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()),
            float(arr[:, 3].max()))


def _false_easting(crs: pyproj.CRS) -> float | None:
    op = crs.coordinate_operation
    if op is None:
        return None
    for p in op.params:
        if p.name.lower().startswith("false easting"):
            return float(p.value)
    return None


def _xy_bounds(obj: Any) -> tuple[float, float, float, float]:
    """Total bounds of a (Geo)DataFrame/GeoSeries, or a bounds tuple as floats.

    Missing and empty geometries have NaN bounds, which ``shapely.total_bounds`` ignores; with
    no other geometry the result is NaN.
    """
    if hasattr(obj, "geometry"):
        geoms = np.asarray(obj.geometry.values)
        if len(geoms) == 0:
            return (math.nan,) * 4
        obj = shapely.total_bounds(geoms)
    minx, miny, maxx, maxy = (float(v) for v in obj)
    return minx, miny, maxx, maxy


def check_zone_prefix(gdf_or_bounds: Any, crs: Any, *, layer: str | None = None,
                      path: object | None = None) -> None:
    """Check that zone-prefixed eastings (> 10⁶) match a prefixed CRS of zone ``int(E / 10⁶)``.

    Also refuses the reverse (a prefixed CRS with eastings below 10⁶) and projected-looking
    coordinates under a geographic CRS.

    Raises
    ------
    CRSError
        Naming the expected EPSG code.

    Example
    -------
    >>> check_zone_prefix((36_500_000, 3_000_000, 36_600_000, 3_100_000), "EPSG:4524")
    """
    crs = pyproj.CRS.from_user_input(crs)
    minx, miny, maxx, maxy = _check_finite_bounds(gdf_or_bounds, layer=layer, path=path)
    if not math.isfinite(minx):
        return
    if crs.is_geographic:
        if max(abs(minx), abs(maxx)) > 360 or max(abs(miny), abs(maxy)) > 90:
            raise CRSError(
                f"coordinates ({minx:.0f}, {miny:.0f}) look projected (metres) but the CRS is "
                f"geographic ({crs.name})", layer=layer, path=path,
                hint=_prefix_hint(minx) if minx > 1e6 else "set the layer's real CRS "
                "(e.g. a CGCS2000 Gauss-Kruger zone) with assume_crs or fix its .prj",
            )
        return
    if not _is_transverse_mercator(crs):
        return  # zone prefixes only exist for Gauss-Kruger / transverse Mercator grids
    fe = _false_easting(crs)
    if minx > 1e6 or maxx > 1e6:
        zone_min, zone_max = int(minx // 1e6), int(maxx // 1e6)
        if zone_min != zone_max:
            raise CRSError(f"eastings {minx:.0f}-{maxx:.0f} carry different zone prefixes "
                           f"({zone_min}, {zone_max})", layer=layer, path=path,
                           hint="split the layer by zone or reproject it before use")
        zone = zone_max
        if fe is None or int(fe // 1e6) != zone:
            raise CRSError(
                f"eastings like {maxx:.0f} carry zone prefix {zone}, but the CRS "
                f"{describe_crs(crs)} does not (false easting {fe})", layer=layer, path=path,
                hint=_prefix_hint(maxx),
            )
    elif fe is not None and fe > 1e6:
        zone = int(fe // 1e6)
        raise CRSError(
            f"the CRS {describe_crs(crs)} expects zone-prefixed eastings ({zone}xxxxxx) but the "
            f"data's eastings are {minx:.0f}-{maxx:.0f}", layer=layer, path=path,
            hint=f"use the CRS without prefix, EPSG:{zone_epsg(zone)}" if zone in _ZONES
            else "use the CRS without zone prefix",
        )


def _check_finite_bounds(gdf_or_bounds: Any, *, layer: str | None, path: object | None
                         ) -> tuple[float, float, float, float]:
    """Return :func:`_xy_bounds`, all NaN for no geometry.

    A NaN or infinite bound otherwise is a :class:`CRSError` (a feature with such a coordinate,
    which ``read_layer`` rejects before these checks: no zone or axis test can read such bounds).
    """
    bounds = _xy_bounds(gdf_or_bounds)
    if all(math.isnan(v) for v in bounds) or all(math.isfinite(v) for v in bounds):
        return bounds
    raise CRSError(f"the coordinates' bounds {tuple(bounds)} are not finite (NaN or infinity)",
                   layer=layer, path=path,
                   hint="remove or fix the features with NaN or infinite coordinates "
                   "(read_layer rejects them and names each)")


def _is_transverse_mercator(crs: pyproj.CRS) -> bool:
    """Tell whether ``crs`` is Gauss-Kruger / transverse Mercator (where zone prefixes occur)."""
    op = crs.coordinate_operation
    method = (op.method_name or "").lower() if op is not None else ""
    return "transverse mercator" in method or "gauss" in method


def _prefix_hint(easting: float) -> str:
    zone = int(easting // 1e6)
    if zone in _ZONES:
        return (f"the zone-{zone} prefixed CRS is EPSG:{zone_epsg(zone, prefixed=True)} "
                f"(CGCS2000 / 3-degree "
                f"Gauss-Kruger zone {zone}); set it with assume_crs or fix the .prj")
    return f"zone prefix {zone} is not a CGCS2000 3-degree zone (25-45); check the data"


def check_latlon_swap(gdf_or_bounds: Any, crs: Any, *, layer: str | None = None,
                      path: object | None = None) -> None:
    """Refuse geographic data whose x look like latitudes (3-54) and y like longitudes (73-136).

    Example
    -------
    >>> check_latlon_swap((107.0, 27.0, 108.0, 28.0), "EPSG:4490")
    """
    crs = pyproj.CRS.from_user_input(crs)
    if not crs.is_geographic:
        return
    minx, miny, maxx, maxy = _xy_bounds(gdf_or_bounds)
    if not math.isfinite(minx):
        return
    lon0, lat0, lon1, lat1 = CHINA_LONLAT_BOUNDS
    if lat0 <= minx and maxx <= lat1 and lon0 <= miny and maxy <= lon1:
        raise CRSError(
            f"x values {minx:.3f}-{maxx:.3f} look like latitudes and y values "
            f"{miny:.3f}-{maxy:.3f} like longitudes: longitude and latitude are swapped",
            layer=layer, path=path,
            hint="write x = longitude, y = latitude (the data was probably written in the "
            "EPSG:4490 axis order lat, lon)",
        )


def refuse_ballpark(crs: Any, *, transformation: str | None = None, layer: str | None = None,
                    path: object | None = None) -> None:
    """Refuse Xian 1980 / Beijing 1954 CRSs, for which PROJ has only a "ballpark" path.

    A CRS carrying its own datum shift (a bound CRS, e.g. with ``+towgs84=``) or an explicit
    ``transformation`` (a PROJ pipeline) is accepted.

    Raises
    ------
    CRSError
        For a CRS whose datum name contains "Xian 1980" or "Beijing 1954".

    Example
    -------
    >>> refuse_ballpark("EPSG:4545")
    """
    crs = pyproj.CRS.from_user_input(crs)
    if transformation or crs.is_bound:
        return
    names = []
    for c in (crs, crs.geodetic_crs):
        if c is not None and c.datum is not None:
            names.append(c.datum.name)
    text = " ".join(names).lower() or crs.name.lower()
    if any(d in text for d in _BALLPARK_DATUMS):
        raise CRSError(
            f"source CRS {describe_crs(crs)} uses the datum {names[0] if names else crs.name}; "
            "PROJ can only convert it to CGCS2000 by a 'ballpark' transformation without "
            "datum shift (errors of tens of metres)", layer=layer, path=path,
            hint="convert the data to CGCS2000 with your surveying bureau's parameters, or "
            "give a CRS with +towgs84 parameters / a PROJ pipeline (transformation=...)",
        )


def check_inside_china(gdf: Any, *, layer: str | None = None, path: object | None = None,
                       valid: np.ndarray | None = None) -> None:
    """Check every coordinate of ``gdf`` is finite and inside China (lon 73-136, lat 3-54).

    Every coordinate is tested for being finite. Then, for a projected layer, a fast test
    transforms only a densified outline (and an interior grid) of the coordinates' bounding box
    to lon/lat (:func:`_bbox_inside_china`); when that is inconclusive, every coordinate is
    transformed and tested, so the error names the first offending one.

    ``valid`` (one bool per geometry) marks geometries GEOS holds valid, e.g. those the reader's
    screening passed: GEOS holds a non-finite x or y invalid, and a valid polygon's holes lie
    inside its shell, so these geometries' boxes (``shapely.bounds``, cached by GEOS) give the
    bounding box of their coordinates without extracting them (:func:`_valid_bounds`); only the
    others' coordinates are read. Whenever that box does not prove the layer inside, the full
    test above runs: same outcome and same errors as without ``valid``.

    Raises
    ------
    CRSError
        Naming the layer and the first offending coordinate.

    Example
    -------
    >>> import geopandas as gpd, shapely
    >>> check_inside_china(gpd.GeoSeries([shapely.Point(107, 27)], crs=4490))
    """
    if gdf.crs is None:
        raise CRSError("layer has no CRS", layer=layer, path=path,
                       hint="set assume_crs for the layer in the plan")
    geoms = np.asarray(gdf.geometry.values if hasattr(gdf, "geometry") else gdf.values)
    if valid is not None:
        box = _valid_bounds(geoms, np.asarray(valid, dtype=bool))
        if box is _NO_COORDINATES:
            return
        if box is not None and _bbox_inside_china(box, _to_cgcs2000(gdf.crs)):
            return
    coords = shapely.get_coordinates(geoms)
    if len(coords) == 0:
        return
    if not np.isfinite(coords).all():
        bad = ~np.isfinite(coords).all(axis=1)
        raise CRSError(f"{int(bad.sum())} coordinates are not finite after reprojection",
                       layer=layer, path=path,
                       hint="check the layer's CRS; the coordinates may not belong to it")
    tr = _to_cgcs2000(gdf.crs)
    x, y = coords[:, 0], coords[:, 1]  # per column: much faster than min(axis=0)
    bounds = (x.min(), y.min(), x.max(), y.max())
    if _bbox_inside_china(bounds, tr):
        return
    if tr is None:
        lon, lat = coords[:, 0], coords[:, 1]
    else:
        lon, lat = tr.transform(coords[:, 0], coords[:, 1], errcheck=False)
        lon, lat = np.asarray(lon), np.asarray(lat)
    lon0, lat0, lon1, lat1 = CHINA_LONLAT_BOUNDS
    with np.errstate(invalid="ignore"):
        outside = ~(np.isfinite(lon) & np.isfinite(lat) & (lon >= lon0) & (lon <= lon1)
                    & (lat >= lat0) & (lat <= lat1))
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise CRSError(
            f"{int(outside.sum())} of {len(lon)} coordinates fall outside China "
            f"(first: x={coords[i, 0]:.3f}, y={coords[i, 1]:.3f} → lon {lon[i]:.3f}, "
            f"lat {lat[i]:.3f})", layer=layer, path=path,
            hint="the layer's CRS does not match its coordinates: check the .prj / assume_crs, "
            "zone prefix and axis order",
        )


def _to_cgcs2000(crs: Any) -> pyproj.Transformer | None:
    """Return the transformer from ``crs`` to CGCS2000 lon/lat; None for lon/lat already."""
    crs = pyproj.CRS.from_user_input(crs)
    if crs.is_geographic and crs.to_epsg() in (4326, 4490):
        return None
    return pyproj.Transformer.from_crs(crs, CGCS2000, always_xy=True)


#: :func:`_valid_bounds` of geometries without any coordinate
_NO_COORDINATES = (math.nan,) * 4


def _valid_bounds(geoms: np.ndarray, valid: np.ndarray) -> tuple[float, ...] | None:
    """Bounding box of every coordinate (x, y) of ``geoms``, if all are finite; else None.

    ``valid`` marks the geometries GEOS holds valid: their x and y are finite and their boxes
    (``shapely.bounds``; NaN for an empty geometry) are those of their coordinates. The other
    geometries' coordinates are extracted and tested. Returns :data:`_NO_COORDINATES` (the
    same object) when there is no coordinate at all, None when a coordinate is not finite.
    """
    if len(valid) != len(geoms):
        raise ValueError("valid needs one flag per geometry")
    xy = shapely.get_coordinates(geoms[~valid])
    if not np.isfinite(xy).all():
        return None
    lows, highs = [xy.min(axis=0)] if len(xy) else [], [xy.max(axis=0)] if len(xy) else []
    boxes = shapely.bounds(geoms[valid] if not valid.all() else geoms)
    if len(boxes):  # fmin / fmax pass over the NaN boxes of empty or missing geometries
        low = np.array([np.fmin.reduce(boxes[:, 0]), np.fmin.reduce(boxes[:, 1])])
        if not np.isnan(low[0]):
            lows.append(low)
            highs.append(np.array([np.fmax.reduce(boxes[:, 2]), np.fmax.reduce(boxes[:, 3])]))
    if not lows:
        return _NO_COORDINATES
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    return float(low[0]), float(low[1]), float(high[0]), float(high[1])


#: points per side of the bounding-box outline transformed by the fast inside-China test
_OUTLINE_POINTS = 128
#: the fast test needs the outline this far (degrees, ~1 km) inside the lon/lat rectangle
_OUTLINE_MARGIN_DEG = 0.01


def _bbox_inside_china(bounds: tuple[float, ...], tr: pyproj.Transformer | None) -> bool:
    """Tell whether every point of the box ``bounds`` provably maps inside China's rectangle.

    ``tr`` maps the layer's CRS to CGCS2000 lon/lat (``None``: the coordinates are lon/lat,
    and the box's corners decide exactly). Otherwise the box's outline, densified to
    :data:`_OUTLINE_POINTS` per side, and a 17 x 17 interior grid are transformed. A CRS's
    inverse projection is continuous and one-to-one on the box, so the box's image is the
    region enclosed by the image of its outline; when that outline lies inside the lon/lat
    rectangle (convex, hence simply connected) so does the whole image, i.e. every coordinate
    in the box. The outline must keep :data:`_OUTLINE_MARGIN_DEG` from the rectangle's edges,
    which covers the curvature of the image between the sampled points. False means "not
    proven" (the caller then tests every coordinate), never "outside".
    """
    lon0, lat0, lon1, lat1 = CHINA_LONLAT_BOUNDS
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    if tr is None:
        return lon0 <= xmin and xmax <= lon1 and lat0 <= ymin and ymax <= lat1
    t = np.linspace(0.0, 1.0, _OUTLINE_POINTS + 1)
    xs, ys = xmin + t * (xmax - xmin), ymin + t * (ymax - ymin)
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, 17), np.linspace(ymin, ymax, 17))
    x = np.concatenate([xs, np.full_like(ys, xmax), xs, np.full_like(ys, xmin), gx.ravel()])
    y = np.concatenate([np.full_like(xs, ymin), ys, np.full_like(xs, ymax), ys, gy.ravel()])
    lon, lat = tr.transform(x, y, errcheck=False)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    m = _OUTLINE_MARGIN_DEG
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isfinite(lon) & np.isfinite(lat) & (lon >= lon0 + m)
                           & (lon <= lon1 - m) & (lat >= lat0 + m) & (lat <= lat1 - m)))


def to_analysis(gdf: Any, crs: Any, *, layer: str | None = None, path: object | None = None,
                transformation: str | None = None) -> Any:
    """Reproject ``gdf`` explicitly to the analysis CRS and check the result.

    Checks, in order: source CRS present, no ballpark datum, lon/lat not swapped, zone prefix
    consistent; then transforms with ``always_xy=True`` (or the user's PROJ pipeline
    ``transformation``) and checks every coordinate finite and inside China.

    Returns
    -------
    GeoDataFrame
        A new frame in ``crs``; the input is not modified.

    Example
    -------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoDataFrame(geometry=[shapely.Point(107.5, 27.8)], crs=4490)
    >>> round(to_analysis(g, "EPSG:4545").geometry.x.iloc[0])
    450728
    """
    return _to_analysis(gdf, crs, layer=layer, path=path, transformation=transformation)


def _to_analysis(gdf: Any, crs: Any, *, layer: str | None = None, path: object | None = None,
                 transformation: str | None = None, inside_checked: bool = False) -> Any:
    """:func:`to_analysis`, for a caller that has already checked these geometries.

    ``inside_checked=True`` says :func:`check_inside_china` has already passed on exactly these
    geometries in their own CRS (``read_layer`` does this): when the reprojection is then the
    identity (same CRS, no ``transformation``) the geometries are unchanged and the check is
    not repeated. Any real reprojection is always checked afterwards.
    """
    if gdf.crs is None:
        raise CRSError("layer has no CRS", layer=layer, path=path,
                       hint="set assume_crs for the layer in the plan, e.g. 'EPSG:4490'")
    src = pyproj.CRS.from_user_input(gdf.crs)
    dst = pyproj.CRS.from_user_input(crs)
    refuse_ballpark(src, transformation=transformation, layer=layer, path=path)
    bounds = _xy_bounds(gdf)
    check_latlon_swap(bounds, src, layer=layer, path=path)
    check_zone_prefix(bounds, src, layer=layer, path=path)
    if transformation:
        tr = pyproj.Transformer.from_pipeline(transformation)
    elif src.equals(dst):
        tr = None
    else:
        tr = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    geoms = np.asarray(gdf.geometry.values if hasattr(gdf, "geometry") else gdf.values)
    if tr is not None:

        def _xy(coords: np.ndarray) -> np.ndarray:
            x, y = tr.transform(coords[:, 0], coords[:, 1], errcheck=False)
            return np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])

        geoms = shapely.transform(geoms, _xy)
    out = _with_geometry(gdf, geoms, dst)
    if tr is not None or not inside_checked:
        check_inside_china(out, layer=layer, path=path)
    return out


def _with_geometry(gdf: Any, geoms: np.ndarray, crs: pyproj.CRS) -> Any:
    import geopandas as gpd

    if isinstance(gdf, gpd.GeoDataFrame):
        name = gdf.geometry.name
        out = gdf.copy()
        out[name] = gpd.GeoSeries(geoms, index=gdf.index, crs=crs, name=name)
        return out.set_crs(crs, allow_override=True)
    return gpd.GeoSeries(geoms, index=gdf.index, crs=crs, name=gdf.name)


def check_area_of_use(gdf: Any, crs: Any = None, *, layer: str | None = None,
                      path: object | None = None, margin_deg: float = 1.0) -> None:
    """Refuse data lying wholly outside the declared CRS's area of use (a wrong ``.prj``).

    The data's bounds are converted to lon/lat and compared with ``crs.area_of_use`` widened
    by ``margin_deg``; a CRS without an area of use is not checked.

    Raises
    ------
    CRSError
        Naming the CRS, its area of use and where the data would lie.

    Example
    -------
    >>> check_area_of_use((107.0, 27.0, 108.0, 28.0), "EPSG:4490")
    """
    crs = pyproj.CRS.from_user_input(gdf.crs if crs is None else crs)
    area = crs.area_of_use
    if area is None:
        return
    bounds = _xy_bounds(gdf)
    if not all(math.isfinite(v) for v in bounds):
        return
    try:
        lon0, lat0, lon1, lat1 = lonlat_bounds(bounds, crs)
    except (pyproj.exceptions.ProjError, CRSError):  # pragma: no cover - defensive
        return
    c0, c1, c2, c3 = CHINA_LONLAT_BOUNDS
    if not all(math.isfinite(v) for v in (lon0, lat0, lon1, lat1)) or not (
            c0 <= lon0 and lon1 <= c2 and c1 <= lat0 and lat1 <= c3):
        return  # not transformable or outside China: check_inside_china reports it
    west, south = area.west - margin_deg, area.south - margin_deg
    east, north = area.east + margin_deg, area.north + margin_deg
    if lon1 < west or lon0 > east or lat1 < south or lat0 > north:
        raise CRSError(
            f"the coordinates lie outside the area of use of the declared CRS "
            f"{describe_crs(crs)} ({area.name}: lon {area.west:.1f}-{area.east:.1f}, lat "
            f"{area.south:.1f}-{area.north:.1f}); read in it they would fall at lon "
            f"{lon0:.2f}-{lon1:.2f}, lat {lat0:.2f}-{lat1:.2f}", layer=layer, path=path,
            hint="the declared CRS is wrong: fix the .prj or set the real CRS with assume_crs",
        )


def check_near_reference(gdf: Any, reference: Any, *, layer: str | None = None,
                         path: object | None = None, reference_name: str = "townships",
                         max_gap_m: float = 5000.0) -> None:
    """Refuse a layer lying more than ``max_gap_m`` from the reference (e.g. the townships).

    Both frames must be in the same projected CRS (the analysis CRS). A layer in the wrong
    Gauss-Kruger zone, or with a wrong false easting, lands hundreds of km away from the
    townships while still "inside China": this catches it.

    Raises
    ------
    CRSError
        With the distance in km.

    Example
    -------
    >>> import geopandas as gpd, shapely
    >>> a = gpd.GeoSeries([shapely.box(0, 0, 10, 10)], crs=4545)
    >>> check_near_reference(a, a)
    """
    a, b = _xy_bounds(gdf), _xy_bounds(reference)
    if not all(math.isfinite(v) for v in (*a, *b)):
        return
    dx = max(b[0] - a[2], a[0] - b[2], 0.0)
    dy = max(b[1] - a[3], a[1] - b[3], 0.0)
    gap = math.hypot(dx, dy)
    if gap > max_gap_m:
        raise CRSError(
            f"the layer lies {gap / 1000:.0f} km from the {reference_name}: its declared CRS "
            "is probably wrong (another Gauss-Kruger zone, or a wrong false easting)",
            layer=layer, path=path,
            hint="check the layer's .prj / assume_crs against the "
            f"{reference_name}' CRS (zone number, zone prefix)",
        )


@dataclass(frozen=True)
class GCJ02Offset:
    """Result of :func:`detect_gcj02_offset`.

    Attributes
    ----------
    dx_m, dy_m, offset_m
        Shift of the layer relative to the reference (metres, east/north, length).
    expected_dx_m, expected_dy_m
        The GCJ-02 shift at the reference's centre (metres).
    likely_gcj02
        True when the observed shift matches the GCJ-02 shift (within 30 % or 100 m) and
        exceeds 100 m.
    message
        One sentence for the user, with the hint.
    """

    dx_m: float
    dy_m: float
    offset_m: float
    expected_dx_m: float
    expected_dy_m: float
    likely_gcj02: bool
    message: str


def detect_gcj02_offset(layer_gdf: Any, reference_gdf: Any) -> GCJ02Offset:
    """Compare a layer with a trusted reference outline to spot GCJ-02 (Gaode/AMap) coordinates.

    GCJ-02 data claims EPSG:4326 but is shifted by a few hundred metres (in Guizhou about
    +350 m east, -380 m north). The shift cannot be recognised from one layer alone; with a
    reference outline of the same area (e.g. the county outline in CGCS2000/WGS84) the
    centroid shift of the layer's union is compared with the GCJ-02 shift predicted at the
    reference centre.

    Parameters
    ----------
    layer_gdf, reference_gdf
        The suspect layer and the reference, both with a CRS (any; compared in the local
        Gauss-Kruger zone).

    Returns
    -------
    GCJ02Offset

    Example
    -------
    >>> import geopandas as gpd, shapely
    >>> ref = gpd.GeoDataFrame(geometry=[shapely.box(106.6, 26.3, 106.8, 26.5)], crs=4326)
    >>> detect_gcj02_offset(ref, ref).likely_gcj02
    False
    """
    from spatialplan.core._gcj02 import wgs84_to_gcj02

    if layer_gdf.crs is None or reference_gdf.crs is None:
        raise CRSError("both layers need a CRS to compare them",
                       hint="set assume_crs for the layer without one")
    ref_ll = reference_gdf.to_crs(CGCS2000)
    centre = shapely.union_all(np.asarray(ref_ll.geometry.values)).centroid
    local = gk_zone_crs(centre.x)
    a = shapely.union_all(np.asarray(layer_gdf.to_crs(local).geometry.values)).centroid
    b = shapely.union_all(np.asarray(reference_gdf.to_crs(local).geometry.values)).centroid
    dx, dy = a.x - b.x, a.y - b.y
    glon, glat = wgs84_to_gcj02(centre.x, centre.y)
    fwd = pyproj.Transformer.from_crs(CGCS2000, local, always_xy=True)
    x0, y0 = fwd.transform(centre.x, centre.y)
    x1, y1 = fwd.transform(float(glon), float(glat))
    ex, ey = float(x1 - x0), float(y1 - y0)
    offset, expected = math.hypot(dx, dy), math.hypot(ex, ey)
    miss = math.hypot(dx - ex, dy - ey)
    likely = offset > 100.0 and miss < max(0.3 * expected, 100.0)
    if likely:
        message = (f"the layer is shifted {offset:.0f} m (east {dx:+.0f} m, north {dy:+.0f} m) "
                   f"from the reference, as GCJ-02 (Gaode/AMap) coordinates are (expected "
                   f"{expected:.0f} m here). Fix: get the data in CGCS2000/WGS84; analysis never "
                   "uses GCJ-02")
    else:
        message = (f"the layer is shifted {offset:.0f} m from the reference; GCJ-02 would be "
                   f"{expected:.0f} m (east {ex:+.0f} m, north {ey:+.0f} m): not GCJ-02")
    return GCJ02Offset(dx_m=float(dx), dy_m=float(dy), offset_m=float(offset),
                       expected_dx_m=ex, expected_dy_m=ey, likely_gcj02=bool(likely),
                       message=message)
