"""Terrain: slope from a DEM, in metres, and exact zonal statistics for sites and townships.

Guizhou is karst mountain country: slope decides where a school or a sewage plant can go.
This module turns the plan's DEM into a slope grid and summarises it per project site (for the
``slope`` siting rule) and per township (with the survey's slope classes).

How slope is computed
---------------------
* The DEM is read into the **analysis CRS**, a projected CRS in metres (for Guizhou a CGCS2000
  3-degree Gauss-Krüger zone, EPSG:4534-4554). A DEM in a geographic CRS (degrees) is *warped*
  with cubic resampling to square, target-aligned cells with the source's ground size
  (measured on the ellipsoid at the raster centre). Warping (rather than per-row degree→metre
  pixel sizes) was chosen because the zonal statistics need a metric, equal-area grid anyway:
  exact coverage fractions, pixel counts and the m² of each slope class are then plain planar
  quantities in the same CRS as the plan's vectors. Cubic rather than bilinear because
  bilinear flattens ridges: on the real 90 m test DEM, per-row pixel sizes on the native grid
  give a median/max slope of 12.7°/34.4°, the cubic warp 12.6°/34.6°, a bilinear one
  12.1°/32.9°.
* Slope is Horn's 3x3 finite difference, in degrees. A cell whose 3x3 window touches nodata or
  the raster edge gets nodata: no slope is invented at the border of a hole.
* A DEM must declare its nodata and its CRS; otherwise pass ``nodata=`` /
  ``assume_no_nodata=True`` and ``assume_crs=`` explicitly (:func:`read_terrain`), or set
  ``nodata = …`` / ``assume_crs = …`` under ``[rasters.dem]`` in a plan file.

Zonal statistics use exactextract: every cell counts with the exact fraction of it covered by
the polygon, so small sites are measured correctly instead of by cell-centre sampling.

Examples
--------
>>> terrain = read_terrain("dem.tif", crs="EPSG:4545")              # doctest: +SKIP
>>> site_slope_stats(plan.layers["projects"].data, terrain)        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from exactextract import exact_extract
from exactextract.operation import Operation
from exactextract.raster import NumPyRasterSource
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError
from rasterio.enums import MaskFlags, Resampling
from rasterio.warp import reproject, transform_bounds
from shapely import box

from spatialplan.core.crs import refuse_ballpark
from spatialplan.errors import CRSError, FieldError, GeometryError, RasterError
from spatialplan.io._raster import (
    NODATA,
    WkbFeatureSource,
    coarse_dem_note,
    ground_resolution,
    horn_slope,
    metre_factor,
    open_raster,
    write_cog,
)

__all__ = [
    "AROUND_COLUMNS",
    "NODATA",
    "SITE_COLUMNS",
    "SLOPE_CLASSES",
    "Terrain",
    "read_terrain",
    "site_slope_stats",
    "slope_degrees",
    "township_terrain_stats",
    "write_slope",
]

log = logging.getLogger(__name__)

#: survey slope classes (坡度分级): label, lower bound (exclusive, except 0), upper (inclusive)
SLOPE_CLASSES: tuple[tuple[str, float, float], ...] = (
    ("le2", 0.0, 2.0),
    ("2_6", 2.0, 6.0),
    ("6_15", 6.0, 15.0),
    ("15_25", 15.0, 25.0),
    ("gt25", 25.0, 90.0),
)

#: columns :func:`site_slope_stats` adds after :data:`SITE_COLUMNS`: the slope of the site
#: buffered by one cell (``around_m``), for sites on too few cells (NaN for the others)
AROUND_COLUMNS: tuple[str, ...] = ("around_slope_mean_deg", "around_slope_max_deg", "around_m")

#: columns of :func:`site_slope_stats` and :func:`township_terrain_stats`, in order (DESIGN.md
#: "Terrain → siting")
SITE_COLUMNS: tuple[str, ...] = (
    "slope_mean_deg",
    "slope_max_deg",
    "share_over_15",
    "share_over_25",
    "elev_mean_m",
    "coverage",
    "n_pixels",
    "flag",
)

@dataclass(eq=False)
class Terrain:
    """A DEM and its slope on one metric grid (the analysis CRS).

    Build it with :func:`read_terrain`; pass it to :func:`site_slope_stats`,
    :func:`township_terrain_stats` and :func:`write_slope` to compute the slope only once.

    Attributes
    ----------
    elevation, slope
        float32 arrays (metres, degrees) with :data:`NODATA` where there is no value.
    transform
        Affine transform of both arrays (north-up, metres).
    crs
        The projected CRS of the grid.
    source
        Where the DEM came from (path or dataset name).
    reprojected
        True when the DEM was warped from another CRS.
    """

    elevation: np.ndarray
    slope: np.ndarray
    transform: Affine
    crs: CRS
    source: str
    reprojected: bool

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the grid."""
        return self.slope.shape

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the grid in its CRS."""
        rows, cols = self.shape
        left, top = self.transform.c, self.transform.f
        right = left + self.transform.a * cols
        bottom = top + self.transform.e * rows
        return left, bottom, right, top

    @property
    def cell_area_m2(self) -> float:
        """Planar area of one cell in m²."""
        return abs(self.transform.a * self.transform.e)

    @property
    def profile(self) -> dict[str, Any]:
        """A rasterio profile for writing the slope grid (float32, nodata, CRS, transform)."""
        rows, cols = self.shape
        return {
            "driver": "GTiff",
            "dtype": "float32",
            "count": 1,
            "width": cols,
            "height": rows,
            "crs": rasterio.crs.CRS.from_wkt(self.crs.to_wkt()),
            "transform": self.transform,
            "nodata": NODATA,
        }

    @cached_property
    def slope_class(self) -> np.ndarray:
        """uint8 grid of the survey slope class (1…5 as :data:`SLOPE_CLASSES`), 0 = nodata."""
        classes = np.zeros(self.slope.shape, dtype=np.uint8)
        for r0 in range(0, self.slope.shape[0], 512):  # row blocks keep the temporaries small
            block, out = self.slope[r0 : r0 + 512], classes[r0 : r0 + 512]
            out[...] = block >= 0.0  # valid slopes are ≥ 0, NODATA is negative
            for _, _, upper in SLOPE_CLASSES[:-1]:
                out += block > upper
        return classes


# --------------------------------------------------------------------------------------------
# reading the DEM and computing slope


def read_terrain(
    dem: Any,
    *,
    crs: Any = None,
    band: int = 1,
    nodata: float | None = None,
    assume_no_nodata: bool = False,
    assume_crs: Any = None,
    z_factor: float = 1.0,
) -> Terrain:
    """Read a DEM into a metric grid and compute its slope (degrees, Horn 3x3).

    Parameters
    ----------
    dem
        Path of a raster file or an open rasterio dataset.
    crs
        The analysis CRS (projected, metres), e.g. ``"EPSG:4545"``. Required when the DEM is
        geographic; when it differs from the DEM's CRS the DEM is warped (cubic) to square
        cells of the source's ground size. ``None`` keeps a projected metric DEM as it is.
    band
        1-based band holding the elevations.
    nodata
        Nodata value to use instead of (or in the absence of) the one in the file.
    assume_no_nodata
        Declare that a DEM without a nodata value has none (every cell is valid).
    assume_crs
        CRS to assume when the file has none (ignored when the file has one).
    z_factor
        Multiplier turning elevation units into metres (1 for metres).

    Returns
    -------
    Terrain
        Elevation and slope on the analysis grid.

    Raises
    ------
    RasterError
        Missing file, no nodata and no setting, no CRS and no ``assume_crs``, not
        georeferenced, rotated, smaller than 3x3 cells (before or after warping), or no
        valid cell.
    CRSError
        The analysis CRS is not projected in metres, or a geographic DEM without ``crs``.

    Examples
    --------
    >>> t = read_terrain("dem_4326.tif", crs="EPSG:4545")     # doctest: +SKIP
    >>> float(np.median(t.slope[t.slope != NODATA]))           # doctest: +SKIP
    13.2
    """
    with open_raster(dem) as ds:
        where = ds.name
        src_crs = _source_crs(ds, assume_crs)
        refuse_ballpark(src_crs, path=where)  # Xian80 / Beijing54: no datum shift in PROJ
        _check_georeferenced(ds)
        if not 1 <= band <= ds.count:
            raise RasterError(f"the DEM has {ds.count} band(s), band {band} was asked for",
                              path=where, hint="pass band=1")
        elevation, valid = _read_elevation(ds, band, nodata=nodata,
                                           assume_no_nodata=assume_no_nodata)
        transform, width, height = ds.transform, ds.width, ds.height

    _check_slope_size(width, height, where=where)
    target = _analysis_crs(crs, src_crs, where)
    reprojected = not _same_crs(src_crs, target)
    if reprojected:
        elevation, transform = _warp(elevation, transform, src_crs, target, width, height)
        valid = elevation != NODATA
        log.info("DEM %s warped from %s to %s at %.2f m cells (%dx%d)", where,
                 _crs_label(src_crs), _crs_label(target), transform.a,
                 elevation.shape[1], elevation.shape[0])
        _check_slope_size(elevation.shape[1], elevation.shape[0], where=where,
                          warped=_crs_label(target))
    factor = metre_factor(target) or 1.0
    if not valid.any():
        raise RasterError("the DEM has no valid cell", path=where,
                          hint="check the nodata value and the band")
    slope = horn_slope(elevation, valid, xres=abs(transform.a) * factor,
                       yres=abs(transform.e) * factor, z_factor=z_factor)
    if not (slope != NODATA).any():
        log.warning("DEM %s: no cell has a full 3x3 window of valid elevations, so the slope "
                    "is unknown everywhere (check the nodata value)", where)
    log.debug("slope computed for %s: %d valid cells", where, int((slope != NODATA).sum()))
    return Terrain(elevation=elevation, slope=slope, transform=transform, crs=target,
                   source=str(where), reprojected=reprojected)


def slope_degrees(dem: Any, *, crs: Any = None, band: int = 1,
                  **options: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Slope of a DEM in degrees, computed in metres, with a profile for writing it.

    Parameters
    ----------
    dem
        Path, open rasterio dataset, or a :class:`Terrain` (returned as is).
    crs, band
        As :func:`read_terrain`.
    **options
        ``nodata``, ``assume_no_nodata``, ``assume_crs``, ``z_factor`` (see
        :func:`read_terrain`).

    Returns
    -------
    (numpy.ndarray, dict)
        float32 slope with :data:`NODATA` at edges and around holes, and its rasterio profile.

    Examples
    --------
    >>> slope, profile = slope_degrees("dem.tif", crs="EPSG:4545")   # doctest: +SKIP
    >>> profile["nodata"]                                             # doctest: +SKIP
    -9999.0
    """
    terrain = _as_terrain(dem, crs=crs, band=band, **options)
    return terrain.slope, terrain.profile


def write_slope(dem: Any, out_path: str | os.PathLike, *, crs: Any = None, band: int = 1,
                **options: Any) -> Path:
    """Write the slope of a DEM as a Cloud-Optimised GeoTIFF (atomically).

    Tiled 512x512, DEFLATE with the floating-point predictor, average overviews, CRS and
    nodata (:data:`NODATA`) set. Written to a temporary file beside ``out_path`` then renamed.

    Parameters
    ----------
    dem
        Path, open rasterio dataset or :class:`Terrain`.
    out_path
        Target file (its folder must exist).
    crs, band, **options
        As :func:`slope_degrees`.

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Examples
    --------
    >>> write_slope("dem.tif", "out/slope.tif", crs="EPSG:4545")      # doctest: +SKIP
    PosixPath('out/slope.tif')
    """
    terrain = _as_terrain(dem, crs=crs, band=band, **options)
    tags = {"units": "degree", "method": "Horn 3x3", "source": terrain.source,
            "reprojected": str(terrain.reprojected)}
    return write_cog(terrain.slope, terrain.profile, out_path, tags=tags)


def _as_terrain(dem: Any, *, crs: Any, band: int = 1, **options: Any) -> Terrain:
    if isinstance(dem, Terrain):
        return dem
    return read_terrain(dem, crs=crs, band=band, **options)


def _source_crs(ds: Any, assume_crs: Any) -> CRS:
    if ds.crs is not None:
        return CRS.from_user_input(ds.crs.to_wkt())
    if assume_crs is None:
        raise RasterError("the DEM has no CRS", path=ds.name,
                          hint="fix the file (gdal_edit.py -a_srs), pass assume_crs=<CRS> "
                          "(API) or, in a plan file, add assume_crs = \"EPSG:…\" under "
                          "[rasters.dem]")
    return _parse_crs(assume_crs, where=ds.name)


def _check_slope_size(width: int, height: int, *, where: Any, warped: str | None = None
                      ) -> None:
    """Refuse a DEM grid smaller than Horn's 3x3 window: it has no cell with a slope."""
    if width >= 3 and height >= 3:
        return
    grid = f"{width}x{height} cells, columns x rows"
    raise RasterError(
        f"slope needs at least 3x3 cells (the DEM has {grid}"
        + (f" once warped to {warped})" if warped else ")"), path=where,
        hint="give a DEM that covers the sites and townships with at least 3 cells each way "
        "(Horn's slope reads each cell's 3x3 neighbourhood)")


def _check_georeferenced(ds: Any) -> None:
    t = ds.transform
    if t == Affine.identity():
        raise RasterError("the DEM is not georeferenced (no geotransform)", path=ds.name,
                          hint="georeference the DEM before using it")
    if t.b != 0 or t.d != 0:
        raise RasterError("the DEM grid is rotated", path=ds.name,
                          hint="warp it to a north-up grid (gdalwarp)")


def _read_elevation(ds: Any, band: int, *, nodata: float | None,
                    assume_no_nodata: bool) -> tuple[np.ndarray, np.ndarray]:
    data = ds.read(band)
    file_nodata = ds.nodatavals[band - 1]
    if nodata is not None:
        valid = data != nodata
    elif file_nodata is not None:
        valid = data != file_nodata
    elif MaskFlags.per_dataset in ds.mask_flag_enums[band - 1] or \
            MaskFlags.alpha in ds.mask_flag_enums[band - 1]:
        valid = ds.read_masks(band) > 0
    elif assume_no_nodata:
        valid = np.ones(data.shape, dtype=bool)
    else:
        raise RasterError("the DEM declares no nodata value", path=ds.name,
                          hint="set one in the file (gdal_edit.py -a_nodata), pass "
                          "nodata=<value> (API; assume_no_nodata=True if every cell is valid) "
                          "or, in a plan file, add nodata = <value> under [rasters.dem]")
    elevation = data.astype(np.float32)
    valid &= np.isfinite(elevation)
    elevation[~valid] = NODATA
    return elevation, valid


def _parse_crs(value: Any, *, where: Any = None) -> CRS:
    try:
        return CRS.from_user_input(value)
    except PyprojCRSError as exc:
        raise CRSError(f"unknown CRS {value!r}", path=where,
                       hint="use an EPSG code such as 'EPSG:4545'") from exc


def _suggest_gk(crs: CRS, where: Any) -> str:
    try:
        with open_raster(where) as ds:
            b = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        lon = (b[0] + b[2]) / 2
    except Exception:
        return "e.g. 'EPSG:4545' (CGCS2000 GK zone 36)"
    zone = round(lon / 3)
    if 25 <= zone <= 45:
        return f"e.g. 'EPSG:{4534 + zone - 25}' (CGCS2000 GK zone {zone}, CM {3 * zone}°E)"
    return "a projected CRS in metres for the area (UTM or a national grid)"


def _analysis_crs(crs: Any, src_crs: CRS, where: Any) -> CRS:
    if crs is None:
        if src_crs.is_geographic:
            raise CRSError("the DEM is in a geographic CRS (degrees): slope needs metres",
                           path=where, hint=f"pass the analysis CRS, {_suggest_gk(src_crs, where)}")
        target = src_crs
    else:
        target = _parse_crs(crs, where=where)
    factor = metre_factor(target)
    if factor is None or abs(factor - 1.0) > 1e-9:
        raise CRSError(f"the analysis CRS {_crs_label(target)} is not projected in metres",
                       path=where, hint="pass crs= a projected CRS in metres, "
                       "e.g. a CGCS2000 GK zone (EPSG:4534-4554)")
    return target


def _same_crs(a: CRS, b: CRS) -> bool:
    return a == b or a.equals(b, ignore_axis_order=True)


def _crs_label(crs: CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.name


def _warp(elevation: np.ndarray, transform: Affine, src_crs: CRS, dst_crs: CRS,
          width: int, height: int) -> tuple[np.ndarray, Affine]:
    res = ground_resolution(transform, src_crs, width, height)
    left, top = transform.c, transform.f
    right, bottom = left + transform.a * width, top + transform.e * height
    src_rio = rasterio.crs.CRS.from_wkt(src_crs.to_wkt())
    dst_rio = rasterio.crs.CRS.from_wkt(dst_crs.to_wkt())
    xmin, ymin, xmax, ymax = transform_bounds(src_rio, dst_rio, left, min(bottom, top), right,
                                              max(bottom, top), densify_pts=21)
    # target-aligned square cells of the source's ground size
    xmin, ymax = math.floor(xmin / res) * res, math.ceil(ymax / res) * res
    dst_w = max(1, math.ceil((xmax - xmin) / res))
    dst_h = max(1, math.ceil((ymax - ymin) / res))
    dst_transform = Affine(res, 0.0, xmin, 0.0, -res, ymax)
    out = np.full((dst_h, dst_w), NODATA, dtype=np.float32)
    reproject(elevation, out, src_transform=transform, src_crs=src_rio, src_nodata=NODATA,
              dst_transform=dst_transform, dst_crs=dst_rio, dst_nodata=NODATA,
              resampling=Resampling.cubic)
    return out, dst_transform


# --------------------------------------------------------------------------------------------
# zonal statistics


def site_slope_stats(
    sites: gpd.GeoDataFrame,
    dem: Any,
    *,
    id_column: str = "feature_id",
    crs: Any = None,
    min_pixels: float = 4.0,
    min_coverage: float = 0.99,
    band: int = 1,
    nodata: float | None = None,
    assume_no_nodata: bool = False,
    assume_crs: Any = None,
    around_below: float | None = None,
) -> pd.DataFrame:
    """Slope and elevation statistics per site, with exact cell-coverage fractions.

    A site on fewer valid cells than ``around_below`` also gets the slope of the cells around
    it: the same statistics on the site buffered by one cell size. A DEM whose cell is far
    coarser than the sites (:func:`spatialplan.io._raster.coarse_dem_note`) is logged as a
    warning naming its resolution.

    Parameters
    ----------
    sites
        Polygon sites (any CRS; reprojected explicitly to the terrain grid's CRS).
    dem
        A :class:`Terrain` (computed once with :func:`read_terrain`, then reused) or a DEM
        path / open rasterio dataset, read here with :func:`read_terrain`.
    id_column
        Column with the unique site id; it becomes the index.
    crs
        Analysis CRS for reading ``dem``; default: the sites' CRS when projected.
    min_pixels
        Sites whose valid cells sum (coverage-weighted) to fewer than this are flagged
        ``too_few_pixels``; their values are still given but should not be trusted alone.
    min_coverage
        Share of the site area that must have valid cells to be ``ok`` rather than
        ``partial_coverage``.
    band, nodata, assume_no_nodata, assume_crs
        DEM settings passed to :func:`read_terrain` (ignored when ``dem`` is a Terrain).
    around_below
        Sites with fewer valid cells than this get the figures around them (default:
        ``min_pixels``).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``id_column``, columns :data:`SITE_COLUMNS`, then :data:`AROUND_COLUMNS`.
        ``slope_mean_deg``,
        ``slope_max_deg`` (max of any touched valid cell), ``share_over_15`` and
        ``share_over_25`` (share of the valid area with slope > 15° / > 25°), ``elev_mean_m``,
        ``coverage`` (share of the site area with valid slope cells), ``n_pixels`` (sum of
        coverage fractions of valid cells) and ``flag`` — ``no_data`` (no valid cell; values
        NaN), ``too_few_pixels``, ``partial_coverage`` or ``ok``, checked in that order.
        ``around_slope_mean_deg`` and ``around_slope_max_deg`` are the mean and max slope of
        the site buffered by ``around_m`` (one cell size), for the sites on fewer than
        ``around_below`` cells (but at least some) whose buffered site lies wholly on valid
        slope cells (``min_coverage``); NaN elsewhere.

    Raises
    ------
    RasterError
        No site overlaps the DEM, or the DEM cannot be read.
    CRSError
        The sites have no CRS.
    FieldError
        ``id_column`` is missing or not unique.
    GeometryError
        A site is not a polygon.

    Examples
    --------
    >>> terrain = read_terrain("dem.tif", crs="EPSG:4545")                 # doctest: +SKIP
    >>> stats = site_slope_stats(projects, terrain)                       # doctest: +SKIP
    >>> stats.loc["projects:0", ["slope_mean_deg", "flag"]].tolist()       # doctest: +SKIP
    [8.4, 'ok']
    """
    ids = _ids(sites, id_column)
    terrain = _as_terrain(dem, crs=_default_crs(crs, sites), band=band, nodata=nodata,
                          assume_no_nodata=assume_no_nodata, assume_crs=assume_crs)
    geoms = _geometries(sites, terrain, ids, role="sites")
    raw = _zonal(terrain, geoms)
    frame = _site_frame(raw, ids, terrain, min_pixels=min_pixels, min_coverage=min_coverage)
    note = coarse_dem_note(abs(terrain.transform.a), raw["area"][raw["area"] > 0])
    if note:
        log.warning("DEM %s: %s", terrain.source, note)
    below = min_pixels if around_below is None else around_below
    around = _around(terrain, geoms, raw["count"], below=below, min_coverage=min_coverage)
    return pd.concat([frame, pd.DataFrame(around, index=ids)], axis=1)


def township_terrain_stats(
    townships: gpd.GeoDataFrame,
    dem: Any,
    *,
    id_column: str = "code",
    crs: Any = None,
    min_pixels: float = 4.0,
    min_coverage: float = 0.99,
    band: int = 1,
    nodata: float | None = None,
    assume_no_nodata: bool = False,
    assume_crs: Any = None,
) -> pd.DataFrame:
    """Terrain statistics per township, with the area of each survey slope class.

    Same as :func:`site_slope_stats` (without :data:`AROUND_COLUMNS`) plus ``area_m2``
    (planar area of the township in the grid's CRS) and ``slope_le2_m2``, ``slope_2_6_m2``,
    ``slope_6_15_m2``, ``slope_15_25_m2``, ``slope_gt25_m2``: m² of valid cells in each class
    (≤2°, 2-6°, 6-15°, 15-25°, >25°; upper bounds inclusive), exact coverage-weighted. Their
    sum is ``coverage x area_m2``.

    Parameters
    ----------
    townships
        Township polygons.
    dem, crs, min_pixels, min_coverage, band, nodata, assume_no_nodata, assume_crs
        As :func:`site_slope_stats`.
    id_column
        Township code column (index of the result).

    Returns
    -------
    pandas.DataFrame
        One row per township.

    Examples
    --------
    >>> township_terrain_stats(plan.layers["townships"].data, terrain)     # doctest: +SKIP
    """
    ids = _ids(townships, id_column)
    terrain = _as_terrain(dem, crs=_default_crs(crs, townships), band=band, nodata=nodata,
                          assume_no_nodata=assume_no_nodata, assume_crs=assume_crs)
    geoms = _geometries(townships, terrain, ids, role="townships")
    raw = _zonal(terrain, geoms)
    frame = _site_frame(raw, ids, terrain, min_pixels=min_pixels, min_coverage=min_coverage)
    valid_m2 = raw["count"] * terrain.cell_area_m2
    classes = {f"slope_{label}_m2": raw["fracs"][:, k] * valid_m2
               for k, (label, _, _) in enumerate(SLOPE_CLASSES)}
    return pd.concat([pd.DataFrame({"area_m2": raw["area"]}, index=ids), frame,
                      pd.DataFrame(classes, index=ids)], axis=1)


def _around(terrain: Terrain, geoms: gpd.GeoSeries, count: np.ndarray, *, below: float,
            min_coverage: float) -> dict[str, np.ndarray]:
    """:data:`AROUND_COLUMNS` per row position: the sites on too few cells, buffered one cell."""
    n = len(geoms)
    out = {c: np.full(n, np.nan) for c in AROUND_COLUMNS}
    rows = np.flatnonzero((count > 0) & (count < below))
    if rows.size == 0:
        return out
    cell = abs(terrain.transform.a)
    raw = _zonal(terrain, geoms.iloc[rows].buffer(cell))
    whole = _coverage(raw["count"], raw["area"], terrain.cell_area_m2) >= min_coverage
    out["around_slope_mean_deg"][rows] = np.where(whole, raw["mean"], np.nan)
    out["around_slope_max_deg"][rows] = np.where(whole, raw["max"], np.nan)
    out["around_m"][rows] = cell
    log.info("slope: %d site(s) on fewer than %g DEM cells judged with the cells within %g m "
             "around them", rows.size, below, cell)
    return out


def _default_crs(crs: Any, frame: gpd.GeoDataFrame) -> Any:
    if crs is not None:
        return crs
    if frame.crs is not None and frame.crs.is_projected:
        return frame.crs
    return None


def _ids(frame: gpd.GeoDataFrame, id_column: str) -> pd.Index:
    if id_column not in frame.columns:
        raise FieldError(f"no id column {id_column!r}", hint=f"pass id_column= one of "
                         f"{[c for c in frame.columns if c != frame.geometry.name]}")
    ids = pd.Index(frame[id_column], name=id_column)
    if ids.has_duplicates:
        dup = ids[ids.duplicated()][0]
        raise FieldError(f"id column {id_column!r} is not unique", feature=dup,
                         hint="dissolve the features by id or pick a unique column")
    return ids


def _geometries(frame: gpd.GeoDataFrame, terrain: Terrain, ids: pd.Index,
                *, role: str) -> gpd.GeoSeries:
    if frame.crs is None:
        raise CRSError(f"the {role} have no CRS", layer=role,
                       hint="read them through spatialplan.io.read or set the CRS explicitly")
    geoms = frame.geometry
    target = terrain.crs
    if not _same_crs(CRS.from_user_input(geoms.crs), target):
        log.info("reprojecting %d %s from %s to the terrain CRS %s", len(geoms), role,
                 _crs_label(CRS.from_user_input(geoms.crs)), _crs_label(target))
        geoms = geoms.to_crs(target)
    present = ~(geoms.isna() | geoms.is_empty)
    kinds = geoms[present].geom_type
    bad = ~kinds.isin(["Polygon", "MultiPolygon"])
    if bad.any():
        pos = int(np.flatnonzero(present.to_numpy())[np.flatnonzero(bad.to_numpy())[0]])
        raise GeometryError(f"{role} must be polygons, found a {kinds[bad].iloc[0]}",
                            layer=role, feature=ids[pos],
                            hint="give points a declared footprint (buffer) first")
    if len(geoms) and present.any():
        xmin, ymin, xmax, ymax = terrain.bounds
        hits = geoms[present].intersects(box(xmin, ymin, xmax, ymax))
        if not hits.any():
            raise RasterError(f"none of the {len(geoms)} {role} overlaps the DEM",
                              path=terrain.source, layer=role,
                              hint="check the DEM covers the plan area and both CRSs")
    return geoms


def _zonal(terrain: Terrain, geoms: gpd.GeoSeries) -> dict[str, np.ndarray]:
    """Raw exactextract results per row position: count, mean, max, elev, area, fracs."""
    n = len(geoms)
    raw = {"count": np.zeros(n), "mean": np.full(n, np.nan), "max": np.full(n, np.nan),
           "elev": np.full(n, np.nan), "area": geoms.area.fillna(0.0).to_numpy(),
           "fracs": np.zeros((n, len(SLOPE_CLASSES)))}
    present = np.flatnonzero(~(geoms.isna() | geoms.is_empty).to_numpy())
    if present.size == 0:
        return raw
    wkt = terrain.crs.to_wkt()
    extent = terrain.bounds
    slope = NumPyRasterSource(terrain.slope, *extent, nodata=NODATA, name="slope", srs_wkt=wkt)
    classes = NumPyRasterSource(terrain.slope_class, *extent, nodata=0, name="cls", srs_wkt=wkt)
    elev = NumPyRasterSource(terrain.elevation, *extent, nodata=NODATA, name="elev", srs_wkt=wkt)
    ops = [
        Operation("count", "count", slope),
        Operation("mean", "mean", slope),
        Operation("max", "max", slope),
        Operation("unique", "cls", classes),
        Operation("frac", "frac", classes),
        Operation("mean", "elev", elev),
    ]
    wkbs = [g.wkb for g in geoms.iloc[present]]
    source = WkbFeatureSource(wkbs, present.tolist(), srs_wkt=wkt)
    out = exact_extract(None, source, ops, include_cols=["row"], output="pandas")
    rows = out["row"].to_numpy(dtype=np.int64)
    for column in ("count", "mean", "max", "elev"):
        raw[column][rows] = out[column].to_numpy(dtype=np.float64)
    fracs = raw["fracs"]
    for row, values, shares in zip(rows, out["cls"], out["frac"], strict=True):
        for value, share in zip(values, shares, strict=True):
            fracs[row, int(value) - 1] += share
    return raw


def _coverage(count: np.ndarray, area: np.ndarray, cell_area: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(area > 0, count * cell_area / area, 0.0)
    return np.clip(share, 0.0, 1.0)


def _site_frame(raw: dict[str, np.ndarray], ids: pd.Index, terrain: Terrain, *,
                min_pixels: float, min_coverage: float) -> pd.DataFrame:
    count, fracs = raw["count"], raw["fracs"]
    has = count > 0
    coverage = _coverage(count, raw["area"], terrain.cell_area_m2)
    flag = np.full(len(count), "ok", dtype=object)
    flag[coverage < min_coverage] = "partial_coverage"
    flag[count < min_pixels] = "too_few_pixels"
    flag[~has] = "no_data"
    columns = {
        "slope_mean_deg": np.where(has, raw["mean"], np.nan),
        "slope_max_deg": np.where(has, raw["max"], np.nan),
        "share_over_15": np.where(has, fracs[:, 3] + fracs[:, 4], np.nan),
        "share_over_25": np.where(has, fracs[:, 4], np.nan),
        "elev_mean_m": raw["elev"],
        "coverage": coverage,
        "n_pixels": count,
        "flag": pd.array(flag, dtype="str"),
    }
    return pd.DataFrame(columns, index=ids)
