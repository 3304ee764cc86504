"""Scale distortion of the analysis CRS over the data, and the per-site scale correction.

A projected CRS measures lengths and areas on its plane, not on the ground: the point scale
factor ``k`` (lengths) and the areal scale (areas) differ from 1 away from the projection's
centre. :func:`measure_distortion` finds the largest distortion anywhere on the data (the
data's convex hull, outline and inside, in lon/lat; pyproj's factors);
:func:`check_distortion` refuses a named CRS above :data:`REFUSE_SHARE` and warns above
:data:`WARN_SHARE`. :func:`site_scale` gives, per site, the factors that turn a length or an
area measured in the analysis CRS into the one measured in the site's own CGCS2000 3-degree
Gauss-Krüger zone (exactly 1 for a site in the analysis zone).

Example
-------
>>> import geopandas as gpd, shapely
>>> g = gpd.GeoSeries([shapely.box(103.6, 26.0, 104.0, 26.5)], crs=4490).to_crs(4545)
>>> d = measure_distortion([g], g.crs)
>>> round(100 * d.linear, 2), round(100 * d.areal, 2)
(0.24, 0.48)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyproj
import shapely

from spatialplan.core.crs import CGCS2000, describe_crs, epsg_zone, gk_zone, zone_epsg
from spatialplan.errors import CRSError

__all__ = [
    "REFUSE_SHARE",
    "WARN_SHARE",
    "Distortion",
    "check_distortion",
    "measure_distortion",
    "site_scale",
]

log = logging.getLogger(__name__)

#: a named CRS distorting lengths or areas more than this anywhere on the data is refused
REFUSE_SHARE = 0.01
#: ... and one distorting them more than this draws a warning
WARN_SHARE = 0.001
#: points per side of the interior grid sampled inside the data's hull
_GRID = 17
#: the hull's outline is sampled at this many points at least
_OUTLINE = 256


@dataclass(frozen=True)
class Distortion:
    """The largest scale distortion of a CRS over the data.

    Attributes
    ----------
    crs
        The CRS measured.
    linear, areal
        The largest ``|scale - 1|`` of lengths (in any direction: Tissot's axes) and of areas,
        as fractions (0.0047 = 0.47 %).
    lon, lat
        Where the larger of the two is found (CGCS2000 degrees).
    centre_lon
        Longitude of the data's centre (the zone :meth:`fix` proposes).
    """

    crs: pyproj.CRS
    linear: float
    areal: float
    lon: float
    lat: float
    centre_lon: float

    @property
    def worst(self) -> float:
        """The larger of :attr:`linear` and :attr:`areal`."""
        return max(self.linear, self.areal)

    def text(self) -> str:
        """One clause for the CRS reason, e.g. ``scale distortion on the data ≤ 0.24 % ...``."""
        return (f"scale distortion on the data ≤ {100 * self.linear:.2f} % in length, "
                f"{100 * self.areal:.2f} % in area (largest at {self.lon:.2f}°E "
                f"{self.lat:.2f}°N)")

    def fix(self) -> str:
        """Return the fix: ``crs = "auto"`` or the Gauss-Krüger zone nearest the data's centre."""
        try:
            zone = gk_zone(self.centre_lon)
            epsg = zone_epsg(zone)
        except CRSError:
            return 'use crs = "auto"'
        return (f'use crs = "auto", or EPSG:{epsg} (CGCS2000 / 3-degree Gauss-Kruger CM '
                f'{3 * zone}E, the zone whose central meridian is nearest the data)')

    def as_dict(self) -> dict[str, float]:
        """Return the figures for the manifest (percentages, rounded to 0.001 %)."""
        return {"linear_pct": round(100 * self.linear, 3),
                "areal_pct": round(100 * self.areal, 3),
                "at_lon": round(self.lon, 4), "at_lat": round(self.lat, 4)}


def _hull(layers: Iterable[Any]) -> Any:
    """Convex hull of every coordinate of ``layers`` (GeoDataFrames/GeoSeries/arrays)."""
    parts = []
    for layer in layers:
        if layer is None:
            continue
        geoms = np.asarray(layer.geometry.values if hasattr(layer, "geometry") else layer)
        coords = shapely.get_coordinates(_rim(geoms[~shapely.is_missing(geoms)]))
        if len(coords):
            parts.append(_hull_candidates(coords))
    if not parts:
        return None
    return shapely.convex_hull(shapely.multipoints(np.vstack(parts)))


#: layers of fewer geometries skip the bounding-box screen of :func:`_rim`
_RIM_MIN = 1000
#: directions in which :func:`_rim` takes the farthest-reaching geometry
_RIM_DIRECTIONS = 32


def _rim(geoms: np.ndarray) -> np.ndarray:
    """Drop the geometries that cannot hold a vertex of the hull (a screen on their boxes).

    The vertices of the geometries whose boxes reach farthest in :data:`_RIM_DIRECTIONS`
    directions span a convex polygon inside the hull of every vertex; a geometry whose bounding
    box lies strictly inside that polygon has every vertex strictly inside the hull, so it can
    hold no hull vertex. Only bounds are computed for those (a parcel layer of 10⁶ features
    keeps ~10³ at its rim). The hull of what is kept is the same polygon.
    """
    if len(geoms) < _RIM_MIN:
        return geoms
    bounds = shapely.bounds(geoms)
    ok = np.flatnonzero(np.isfinite(bounds).all(axis=1))
    if len(ok) < _RIM_MIN:
        return geoms
    b = [np.ascontiguousarray(bounds[ok, k]) for k in range(4)]  # xmin, ymin, xmax, ymax
    # the geometry whose box reaches farthest in each of _RIM_DIRECTIONS directions
    far = []
    for angle in np.linspace(0, 2 * np.pi, _RIM_DIRECTIONS, endpoint=False):
        c, s = np.cos(angle), np.sin(angle)
        reach = b[2 if c >= 0 else 0] * c + b[3 if s >= 0 else 1] * s
        far.append(reach.argmax())
    ends = np.unique(ok[far])
    inner = shapely.convex_hull(shapely.multipoints(shapely.get_coordinates(geoms[ends])))
    if inner.area <= 0:
        return geoms
    keep = np.ones(len(geoms), dtype=bool)
    keep[ok[_boxes_inside(b, inner)]] = False
    return geoms[keep]


def _boxes_inside(boxes: list[np.ndarray], hull: Any) -> np.ndarray:
    """Tell which boxes (``[xmin, ymin, xmax, ymax]`` arrays) lie inside the convex ``hull``.

    A box is inside when, for every edge, its corner farthest along the edge's outward normal
    stays behind the edge by a margin (10⁻⁶ of the hull's size, about 0.1 m on a province):
    a few half-plane tests on the bounds arrays, no point-in-polygon call. Conservative: a box
    within the margin of an edge counts as not inside (its geometry is then kept).
    """
    ring = np.asarray(hull.exterior.coords)
    if shapely.is_ccw(hull.exterior):
        ring = ring[::-1]  # clockwise: the outward normal of an edge (dx, dy) is (-dy, dx)
    edge = np.diff(ring, axis=0)
    normal = np.column_stack([-edge[:, 1], edge[:, 0]])
    normal /= np.hypot(normal[:, 0], normal[:, 1])[:, None]
    offset = np.einsum("ij,ij->i", normal, ring[:-1])
    x0, y0, x1, y1 = boxes
    size = max(np.ptp(ring[:, 0]), np.ptp(ring[:, 1]))
    inside = np.ones(len(x0), dtype=bool)
    for (nx, ny), d in zip(normal, offset, strict=True):
        far = (x1 if nx >= 0 else x0) * nx + (y1 if ny >= 0 else y0) * ny
        inside &= far < d - 1e-6 * size
    return inside


def _hull_candidates(coords: np.ndarray) -> np.ndarray:
    """Keep the coordinates that may be vertices of their convex hull (Akl-Toussaint filter).

    The points extreme in x, y, x + y and x - y span a convex polygon; a point strictly inside
    it cannot be a hull vertex. This keeps the hull of millions of vertices cheap.
    """
    x, y = coords[:, 0], coords[:, 1]
    ends = [f(v) for v in (x, y, x + y, x - y) for f in (np.argmin, np.argmax)]
    inner = shapely.convex_hull(shapely.multipoints(coords[ends]))
    if inner.area <= 0:  # collinear extremes: nothing can be ruled out
        return coords
    return coords[~shapely.contains_xy(inner, x, y)]


def _samples(hull: Any) -> tuple[np.ndarray, np.ndarray]:
    """Points of the hull's outline (densified) and of a grid inside it (plane coordinates)."""
    xmin, ymin, xmax, ymax = hull.bounds
    size = max(xmax - xmin, ymax - ymin)
    outline = shapely.get_coordinates(
        shapely.segmentize(hull.boundary if hull.area > 0 else hull, size / _OUTLINE)
        if size > 0 else hull)
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, _GRID), np.linspace(ymin, ymax, _GRID))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    grid = grid[shapely.contains_xy(hull, grid[:, 0], grid[:, 1])] if hull.area > 0 else grid[:0]
    pts = np.vstack([outline, grid])
    return pts[:, 0], pts[:, 1]


def measure_distortion(layers: Iterable[Any], crs: Any) -> Distortion | None:
    """Measure the largest scale distortion of ``crs`` anywhere on the data.

    The data's convex hull (of every coordinate, in ``crs``) is sampled along its outline
    (:data:`_OUTLINE` points at least) and on a grid inside; each sample is taken to lon/lat
    and pyproj gives its factors there. For a transverse Mercator (Gauss-Krüger) plane the
    distortion grows with the distance from the central meridian, so its maximum lies on the
    hull's outline, at the east or west extreme.

    Parameters
    ----------
    layers
        GeoDataFrames or GeoSeries, all in ``crs``.
    crs
        The (projected) CRS to measure.

    Returns
    -------
    Distortion or None
        None when the layers hold no geometry.
    """
    crs = pyproj.CRS.from_user_input(crs)
    hull = _hull(layers)
    if hull is None or hull.is_empty:
        return None
    x, y = _samples(hull)
    to_lonlat = pyproj.Transformer.from_crs(crs, CGCS2000, always_xy=True)
    lon, lat = (np.asarray(v, dtype=float) for v in to_lonlat.transform(x, y, errcheck=False))
    ok = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[ok], lat[ok]
    f = pyproj.Proj(crs).get_factors(lon, lat, errcheck=False)
    a = np.asarray(f.tissot_semimajor, dtype=float)
    b = np.asarray(f.tissot_semiminor, dtype=float)
    linear = np.maximum(np.abs(a - 1.0), np.abs(b - 1.0))
    areal = np.abs(np.asarray(f.areal_scale, dtype=float) - 1.0)
    worst = np.fmax(linear, areal)
    if not np.isfinite(worst).any():
        return None
    i = int(np.nanargmax(worst))
    centre = hull.centroid
    centre_lon, _ = to_lonlat.transform(centre.x, centre.y)
    return Distortion(crs=crs, linear=float(np.nanmax(linear)), areal=float(np.nanmax(areal)),
                      lon=float(lon[i]), lat=float(lat[i]), centre_lon=float(centre_lon))


def check_distortion(distortion: Distortion | None, *, named: bool) -> None:
    """Refuse a named CRS distorting the data more than 1 %, warn above 0.1 %.

    An automatic choice (``named=False``) is never refused: it is only warned about.

    Raises
    ------
    CRSError
        Naming the CRS, the distortion in %, where it is largest, and the fix.
    """
    if distortion is None or distortion.worst <= WARN_SHARE:
        return
    d = distortion
    name = describe_crs(d.crs)
    what = (f"the analysis CRS {name} distorts the data by up to {100 * d.linear:.2f} % in "
            f"length and {100 * d.areal:.2f} % in area (largest at {d.lon:.2f}°E {d.lat:.2f}°N)")
    if named and d.worst > REFUSE_SHARE:
        raise CRSError(
            f"{what}, more than the {100 * REFUSE_SHARE:g} % allowed: areas, distances and the "
            "verdicts near a threshold would be wrong", hint=d.fix())
    log.warning("%s: site measures are corrected to each site's own Gauss-Kruger zone, "
                "other figures are not%s", what, f"; to avoid it, {d.fix()}" if named else "")


def site_scale(geoms: np.ndarray, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Factors turning site lengths and areas in ``crs`` into those of the site's own zone.

    A site's own zone is the CGCS2000 3-degree Gauss-Krüger zone of its centroid (the plane
    official survey figures are measured in; its distortion stays below 0.03 % in length and
    0.06 % in area in Guizhou). The length factor is ``k_own / k_crs`` at the centroid, the area
    factor the ratio of the areal scales (the length scale is taken as the root of the areal
    one: ``k`` of a conformal plane such as Gauss-Krüger or UTM). A length measured in ``crs``
    times the factor is the length measured in the own zone, to far below 0.001 % across a
    site. Sites in the zone of
    ``crs`` itself (and missing geometries) get exactly 1.

    Parameters
    ----------
    geoms
        The sites, in ``crs``.
    crs
        Their projected CRS (None: factors 1).

    Returns
    -------
    (ndarray, ndarray)
        Length and area factors, one per site.

    Example
    -------
    >>> import geopandas as gpd, shapely
    >>> g = gpd.GeoSeries([shapely.box(103.6, 26.0, 103.601, 26.001)], crs=4490).to_crs(4545)
    >>> lin, area = site_scale(g.values, g.crs)
    >>> round(float(lin[0]), 5), round(float(area[0]), 5)
    (0.99785, 0.9957)
    """
    n = len(geoms)
    lin, area = np.ones(n), np.ones(n)
    if crs is None or n == 0:
        return lin, area
    crs = pyproj.CRS.from_user_input(crs)
    if not crs.is_projected:
        return lin, area
    geoms = np.asarray(geoms, dtype=object)
    usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    rows = np.flatnonzero(usable)
    c = shapely.get_coordinates(shapely.centroid(geoms[rows]))
    to_lonlat = pyproj.Transformer.from_crs(crs, CGCS2000, always_xy=True)
    lon, lat = (np.asarray(v, dtype=float) for v in to_lonlat.transform(
        c[:, 0], c[:, 1], errcheck=False))
    with np.errstate(invalid="ignore"):
        zones = np.floor(lon / 3.0 + 0.5)
    here = epsg_zone(crs)
    other = np.isfinite(zones) & (zones >= 25) & (zones <= 45) & (zones != (here or -1))
    if not other.any():
        return lin, area
    f = pyproj.Proj(crs).get_factors(lon[other], lat[other], errcheck=False)
    a_crs = np.asarray(f.areal_scale, dtype=float)
    k_crs = np.sqrt(a_crs)  # k itself for a conformal plane (Gauss-Kruger, UTM)
    k_own, a_own = np.ones(len(k_crs)), np.ones(len(k_crs))
    zo = zones[other].astype(int)
    for zone in np.unique(zo):
        pick = zo == zone
        g = pyproj.Proj(pyproj.CRS.from_epsg(zone_epsg(int(zone)))).get_factors(
            lon[other][pick], lat[other][pick], errcheck=False)
        a_own[pick] = np.asarray(g.areal_scale, dtype=float)
        k_own[pick] = np.sqrt(a_own[pick])
    at = rows[other]
    lin[at] = k_own / k_crs
    area[at] = a_own / a_crs
    return lin, area
