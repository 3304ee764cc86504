"""Raster helpers for :mod:`spatialplan.analysis.terrain`.

Opening, Horn slope, COG writing, features.

Private module: nothing here is public API. The functions are small and pure where they can
be (``horn_slope`` takes arrays, not files) so that the terrain module reads top-down.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from exactextract.feature import Feature, FeatureSource
from pyproj import CRS, Geod
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import DatasetReader, MemoryFile

from spatialplan.core import _gdal_env
from spatialplan.core._inputs import check_raster
from spatialplan.errors import OutputError, RasterError

__all__ = [
    "COARSE_DEM_FACTOR",
    "NODATA",
    "WkbFeatureSource",
    "coarse_dem_note",
    "ground_resolution",
    "horn_slope",
    "metre_factor",
    "open_raster",
    "write_cog",
]

log = logging.getLogger(__name__)

_gdal_env.lock_down()  # no network, no VRT code or raw files, for every GDAL open that follows

#: nodata value of every float32 grid the terrain module produces (slope, warped elevation)
NODATA = -9999.0

#: rows of the DEM processed at once by :func:`horn_slope` (bounds the float64 temporaries)
_CHUNK_ROWS = 512


@contextlib.contextmanager
def open_raster(source: Any) -> Iterator[DatasetReader]:
    """Yield an open rasterio dataset for a path or pass an open dataset through.

    A dataset opened here is closed on exit; one passed in is left open for its owner.
    ``NotGeoreferencedWarning`` is swallowed: the caller checks the CRS and transform itself
    and raises a :class:`RasterError` with a hint instead. A path is checked first
    (:func:`spatialplan.core._inputs.check_raster`: a regular GeoTIFF, or a VRT whose sources are
    local GeoTIFFs in its folder) and opened with the GTiff or VRT driver only; a GDAL error
    while the caller reads a dataset opened here becomes a :class:`RasterError`.
    """
    if isinstance(source, DatasetReader):
        if source.closed:
            raise RasterError("the DEM dataset is closed", path=source.name,
                              hint="pass an open rasterio dataset or a path")
        yield source
        return
    if not isinstance(source, (str, os.PathLike)):
        raise RasterError(f"cannot read a DEM from a {type(source).__name__}",
                          hint="pass a file path or an open rasterio dataset")
    path = Path(source)
    driver = check_raster(path)
    if not path.exists():
        raise RasterError("DEM file not found", path=path, hint="check the path in the plan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            dataset = rasterio.open(path, driver=driver)
        except rasterio.errors.RasterioIOError as exc:
            raise RasterError(f"cannot open the DEM: {exc}", path=path,
                              hint="use a GeoTIFF (or a VRT of GeoTIFFs)") from exc
    with dataset:
        try:
            yield dataset
        except rasterio.errors.RasterioIOError as exc:
            raise RasterError(f"cannot read the DEM: {exc}", path=path,
                              hint="check the file (and a VRT's sources) with gdalinfo") from exc


#: a DEM cell larger than this many times the median site area is "far coarser than the sites"
#: (a team default [unconfirmed]: the median site then covers under 1 % of one cell)
COARSE_DEM_FACTOR = 100.0


def coarse_dem_note(cell_m: float, site_areas_m2: Any) -> str | None:
    """Say so when a DEM's cells are far coarser than the sites, naming the resolution.

    Parameters
    ----------
    cell_m
        Width of one (square) DEM cell in metres.
    site_areas_m2
        Areas of the sites in m² (empty or missing ones ignored).

    Returns
    -------
    str or None
        A sentence when one cell is more than :data:`COARSE_DEM_FACTOR` times the median site
        area, else ``None``.

    Examples
    --------
    >>> coarse_dem_note(21_000.0, [600.0, 2_000.0]) is not None
    True
    >>> coarse_dem_note(30.0, [600.0, 2_000.0]) is None
    True
    """
    areas = np.asarray(site_areas_m2, dtype=float)
    areas = areas[np.isfinite(areas) & (areas > 0)]
    if areas.size == 0 or not math.isfinite(cell_m) or cell_m <= 0:
        return None
    median = float(np.median(areas))
    if cell_m * cell_m <= COARSE_DEM_FACTOR * median:
        return None
    return (f"the DEM's cells are {cell_m:,.0f} m wide ({cell_m * cell_m:,.0f} m² each), far "
            f"coarser than the sites (median {median:,.0f} m²): the slope of a site is mostly "
            "that of the terrain around it; use a DEM of 30 m or finer")


def metre_factor(crs: CRS) -> float | None:
    """Metres per horizontal unit of a projected CRS, or None for a geographic/odd CRS."""
    if not crs.is_projected:
        return None
    axis = crs.axis_info[0] if crs.axis_info else None
    if axis is None or axis.unit_conversion_factor in (None, 0):
        return None
    return float(axis.unit_conversion_factor)


def ground_resolution(transform: Any, crs: CRS, width: int, height: int) -> float:
    """Side (metres) of a square cell with the ground area of the source's centre cell.

    Geographic grids are measured on the CRS ellipsoid at the raster centre (the geometric
    mean of the east-west and north-south cell sizes); projected grids are converted from
    their linear unit.
    """
    xres, yres = abs(transform.a), abs(transform.e)
    if crs.is_geographic:
        geod = Geod(ellps="WGS84")
        with contextlib.suppress(Exception):
            geod = crs.get_geod() or geod
        cx = transform.c + transform.a * width / 2.0
        cy = transform.f + transform.e * height / 2.0
        _, _, dx = geod.inv(cx - xres / 2, cy, cx + xres / 2, cy)
        _, _, dy = geod.inv(cx, cy - yres / 2, cx, cy + yres / 2)
        return math.sqrt(abs(dx) * abs(dy))
    factor = metre_factor(crs) or 1.0
    return math.sqrt(xres * yres) * factor


def horn_slope(
    elevation: np.ndarray,
    valid: np.ndarray,
    *,
    xres: float,
    yres: float,
    z_factor: float = 1.0,
) -> np.ndarray:
    """Slope in degrees with Horn's 3x3 method; cells whose window is not all valid → NODATA.

    ``xres``/``yres`` are the cell sizes in the same unit as the elevations (metres). Edge
    rows and columns never have a full window and are NODATA. Works in row blocks so the
    float64 temporaries stay small on large DEMs.
    """
    height, width = elevation.shape
    out = np.full((height, width), NODATA, dtype=np.float32)
    if height < 3 or width < 3:
        return out
    for r0 in range(1, height - 1, _CHUNK_ROWS):
        r1 = min(r0 + _CHUNK_ROWS, height - 1)
        z = elevation[r0 - 1 : r1 + 1].astype(np.float64)
        v = valid[r0 - 1 : r1 + 1]
        a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
        d, f = z[1:-1, :-2], z[1:-1, 2:]
        g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
        dzdx = ((c + 2.0 * f + i) - (a + 2.0 * d + g)) / (8.0 * xres)
        dzdy = ((g + 2.0 * h + i) - (a + 2.0 * b + c)) / (8.0 * yres)
        slope = np.degrees(np.arctan(z_factor * np.hypot(dzdx, dzdy)))
        ok = v[:-2, :-2] & v[:-2, 1:-1] & v[:-2, 2:] & v[1:-1, :-2] & v[1:-1, 1:-1]
        ok &= v[1:-1, 2:] & v[2:, :-2] & v[2:, 1:-1] & v[2:, 2:]
        out[r0:r1, 1:-1] = np.where(ok, slope, NODATA)
    return out


def _overview_factors(width: int, height: int, *, min_size: int = 256) -> list[int]:
    factors, factor = [], 2
    while max(width, height) // factor >= min_size:
        factors.append(factor)
        factor *= 2
    return factors


def write_cog(array: np.ndarray, profile: dict, out_path: str | os.PathLike,
              *, tags: dict | None = None) -> Path:
    """Write one float32 band as a Cloud-Optimised GeoTIFF, atomically.

    Tiled 512x512, DEFLATE with floating-point predictor, average overviews, CRS and nodata
    set. The file is written to a temporary name in the target folder, read back, then
    ``os.replace``d over the target; on failure nothing is left behind.
    """
    target = Path(out_path)
    if not target.parent.is_dir():
        raise OutputError("output folder does not exist", path=target.parent,
                          hint="create the folder first")
    mem_profile = {k: v for k, v in profile.items() if k not in ("blockxsize", "blockysize",
                                                                  "tiled", "compress")}
    mem_profile.update(driver="GTiff", count=1, dtype="float32")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with MemoryFile() as mem:
            with mem.open(**mem_profile) as dst:
                dst.write(array.astype(np.float32, copy=False), 1)
                if tags:
                    dst.update_tags(**tags)
            with mem.open() as src:
                rasterio.shutil.copy(
                    src, tmp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                    BLOCKSIZE=512, OVERVIEW_RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
                )
        with rasterio.open(tmp) as check:
            if check.crs is None or check.nodata is None or check.shape != array.shape:
                raise OutputError("slope GeoTIFF failed its read-back check", path=target)
        os.replace(tmp, target)
    except OutputError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, rasterio.errors.RasterioError) as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the slope GeoTIFF: {exc}", path=target,
                          hint="check free disk space and permissions") from exc
    log.debug("wrote %s (%dx%d, COG, deflate)", target, array.shape[1], array.shape[0])
    return target


class _WkbFeature(Feature):
    """An exactextract feature holding WKB bytes and a row number (no GeoJSON round trip)."""

    def __init__(self, wkb: bytes | None = None, row: int | None = None) -> None:
        Feature.__init__(self)
        self.wkb = wkb
        self.props: dict[str, Any] = {} if row is None else {"row": row}

    def geometry(self) -> bytes | None:
        return self.wkb

    def set_geometry(self, wkb: bytes | None) -> None:
        self.wkb = wkb

    def set_geometry_format(self) -> str:
        return "wkb"

    def get(self, name: str) -> Any:
        return self.props[name]

    def set(self, name: str, value: Any) -> None:
        self.props[name] = value

    def fields(self) -> list[str]:
        return list(self.props)


class WkbFeatureSource(FeatureSource):
    """exactextract feature source over WKB geometries; the only attribute is ``row``."""

    def __init__(self, wkbs: list[bytes], rows: list[int], *, srs_wkt: str) -> None:
        super().__init__()
        self._wkbs = wkbs
        self._rows = rows
        self._srs_wkt = srs_wkt

    def count(self) -> int:
        return len(self._wkbs)

    def __iter__(self) -> Iterator[_WkbFeature]:
        for wkb, row in zip(self._wkbs, self._rows, strict=True):
            yield _WkbFeature(wkb, row)

    def srs_wkt(self) -> str:
        return self._srs_wkt
