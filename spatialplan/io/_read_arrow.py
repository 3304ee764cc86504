"""Reading a layer through Arrow (private): only where the frame equals the classic read's.

:func:`spatialplan.io.read.read_layer` reads GeoPackage and GeoJSON layers whose fields are all
text, integer or real through ``pyogrio.read_dataframe(use_arrow=True)`` (about twice as fast
as the classic read, and the same frame: :func:`_as_classic`); anything else, or any failure
here, is left to the classic read. A large layer is read in two passes so that its geometries
are screened for validity in threads while the rest is decoded (:func:`_read_arrow_split`).
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from spatialplan.core._parallel import Overlap

__all__: list[str] = []

#: the reader's logger: how a layer was read is part of reading it
log = logging.getLogger("spatialplan.io.read")


#: drivers whose text is UTF-8 by format and which may be read through Arrow. Not FlatGeobuf:
#: GDAL 3.12's Arrow stream of a FlatGeobuf without a spatial index holding a missing geometry
#: has broken offsets, and reading it crashed the process (segmentation fault)
_ARROW_DRIVERS = ("GPKG", "GeoJSON")
#: (OGR field type, subtype) pairs that pyogrio reads identically with and without Arrow
#: (checked for every combination of these with no, some and only null values, 0/1/n rows,
#: 2D/3D, single/multi and missing geometries); dates, times, booleans, JSON, lists and
#: binary fields differ (e.g. a date is datetime64 classically, ``datetime.date`` with Arrow)
_ARROW_FIELD_TYPES = frozenset({
    ("OFTString", "OFSTNone"), ("OFTInteger", "OFSTNone"), ("OFTInteger", "OFSTInt16"),
    ("OFTInteger64", "OFSTNone"), ("OFTReal", "OFSTNone"), ("OFTReal", "OFSTFloat32"),
})


def _arrow_read_ok(info: dict) -> bool:
    """Tell whether reading through Arrow gives the same frame as the classic read, only faster.

    Only for a GeoPackage or GeoJSON layer (:data:`_ARROW_DRIVERS`) whose fields all have a type
    in :data:`_ARROW_FIELD_TYPES`; never for shapefiles, whose encoding is ours to choose.
    """
    types, subtypes = info.get("ogr_types"), info.get("ogr_subtypes")
    if info.get("driver") not in _ARROW_DRIVERS or types is None \
            or subtypes is None or len(types) != len(subtypes):
        return False
    if not all(pair in _ARROW_FIELD_TYPES for pair in zip(types, subtypes, strict=True)):
        return False
    return importlib.util.find_spec("pyarrow") is not None


def _as_classic(gdf: gpd.GeoDataFrame, info: dict) -> gpd.GeoDataFrame | None:
    """Make an Arrow read equal to the classic one; None if its text is not valid UTF-8.

    Arrow does not check the text it wraps: bytes that are not UTF-8 (e.g. GBK written into a
    GeoJSON) become a string column that fails only when used; the classic read refuses
    them at once, with a hint. The classic read also gives ``object`` None for a text field
    without any value (Arrow: a string dtype of NaN; with any value both are the same).
    """
    import pyarrow as pa

    for name in gdf.columns:
        dtype = gdf[name].dtype
        if (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") \
                or isinstance(dtype, pd.ArrowDtype):
            try:
                pa.array(gdf[name].array).validate(full=True)
            except (pa.lib.ArrowException, TypeError, ValueError):
                return None
    if len(gdf) == 0:
        return gdf
    for name, kind in zip(info.get("fields", []), info.get("ogr_types", []), strict=True):
        if kind == "OFTString" and name in gdf.columns and gdf[name].isna().all() \
                and gdf[name].dtype != object:
            gdf[name] = pd.Series([None] * len(gdf), index=gdf.index, dtype=object)
    return gdf


def _read_arrow(path: Path | str, *, layer: str | None, info: dict,
                screening: Overlap | None = None, bbox: tuple | None = None
                ) -> tuple[gpd.GeoDataFrame | None, list]:
    """(frame as the classic read gives it, warnings), or (None, []) if the read failed.

    A ``bbox`` read has the source FIDs as its index, as the classic one.
    """
    gdf, caught = None, []
    if screening is not None and screening.threaded and bbox is None \
            and info.get("features", -1) >= _SPLIT_MIN_FEATURES:
        gdf, caught = _read_arrow_split(path, layer=layer, screening=screening)
    if gdf is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                gdf = pyogrio.read_dataframe(path, layer=layer, use_arrow=True, bbox=bbox,
                                             fid_as_index=bbox is not None)
            except Exception as exc:  # the classic read repeats it and reports
                log.debug("Arrow read of %s failed (%s); reading it the classic way", path,
                          exc)
                return None, []
    gdf = _as_classic(gdf, info)
    if gdf is None:
        log.debug("Arrow read of %s has text that is not UTF-8; reading it the classic way",
                  path)
        return None, []
    gdf.attrs["unreadable"] = {}
    return gdf, list(caught)


#: an Arrow read of a layer with at least this many features decodes its geometries in batches
#: of :data:`_DECODE_BATCH` and screens them in threads meanwhile (:func:`_read_arrow_split`);
#: small batches, because a worker waits for the GIL whenever the decoding holds it (a whole
#: ``from_wkb`` call): 65,536 left the workers idle for most of the decoding, 16,384 does not
_SPLIT_MIN_FEATURES = 100_000
_DECODE_BATCH = 16_384


def _read_arrow_split(path: Path | str, *, layer: str | None, screening: Overlap
                      ) -> tuple[gpd.GeoDataFrame | None, list]:
    """Read the frame ``pyogrio.read_dataframe(use_arrow=True)`` gives, in two passes.

    ``read_dataframe`` decodes every geometry (``shapely.from_wkb``, holding the GIL) before
    anything can look at them. Here the geometries are read first, on their own, and decoded
    batch by batch, each batch handed to ``screening`` (whose threads test it while the next
    one is decoded); then ``read_dataframe(use_arrow=True, read_geometry=False)`` reads the
    attributes, and the frame is put together as ``read_dataframe`` does it. Returns
    ``(None, [])``, with nothing left in ``screening``, whenever this might not match the
    single read: a warning or an error while reading the geometries (the whole read gives
    them in its own place), an error reading the attributes, or counts that differ.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            meta, geoms = _decode_geometries(path, layer=layer, screening=screening)
            if caught:
                raise _NotSplit
            attrs = pyogrio.read_dataframe(path, layer=layer, use_arrow=True,
                                           read_geometry=False)
            if len(attrs.columns) == 0:  # read_dataframe gives a bare DataFrame()
                attrs = pd.DataFrame(index=pd.RangeIndex(len(geoms)))
            if len(attrs) != len(geoms):
                raise _NotSplit
        except Exception:  # the whole read repeats it in its own place, or succeeds
            screening.cancel()
            return None, []
    attrs["geometry"] = geoms
    return gpd.GeoDataFrame(attrs, geometry="geometry", crs=meta["crs"]), list(caught)


class _NotSplit(Exception):
    """The two-pass read might not give what the single read gives."""


def _decode_geometries(path: Path | str, *, layer: str | None, screening: Overlap
                       ) -> tuple[dict, np.ndarray]:
    """(pyogrio meta, geometries) of a layer, each decoded batch handed to ``screening``."""
    import pyarrow as pa

    parts = []
    with pyogrio.raw.open_arrow(path, layer=layer, columns=[], datetime_as_string=True,
                                batch_size=_DECODE_BATCH, use_pyarrow=True) as (meta, reader):
        name = meta["geometry_name"] or "wkb_geometry"
        for batch in reader:
            wkb = batch.column(name)
            if isinstance(wkb.type, pa.BaseExtensionType):
                wkb = wkb.storage
            parts.append(shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)))
            screening.submit(parts[-1])
    return meta, (np.concatenate(parts) if parts else np.empty(0, dtype=object))
