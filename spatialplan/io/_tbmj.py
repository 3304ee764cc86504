"""Compare a layer's recorded 图斑面积 (``TBMJ``) with the ellipsoidal area computed from it.

三调 and the 国土空间规划一张图 record each polygon's ellipsoidal area (m²) in ``TBMJ``. When a
control-line or parcel layer carries that field, ``spatialplan validate`` sets its sum beside the
ellipsoidal area spatialplan computes from the same features (CGCS2000 ellipsoid,
:func:`spatialplan.core._geodesic.geodesic_areas`), so that a user sees at once whether the
figures will reconcile with the official ones (a wrong CRS, a false-easting slip or a layer cut
short shows as a large difference).

Values are read as numbers; a value that is present but no finite number ≥ 0 (text such as
``"12,3"`` or ``"abc"``, a negative or infinite area) is counted and named, never guessed, and
its feature is left out of both sums. A feature without a value (NULL, empty text) is counted
as missing and also left out. Rejected features (not in the layer's data) are not compared.

>>> import geopandas as gpd
>>> from shapely import box
>>> gdf = gpd.GeoDataFrame({"feature_id": ["farmland:0", "farmland:1", "farmland:2"],
...     "TBMJ": ["10000", "abc", None]}, geometry=[box(500_000, 3e6, 500_100, 3e6 + 100)] * 3,
...     crs="EPSG:4545")
>>> row = compare_tbmj(gdf, role="farmland")
>>> row["n_compared"], row["tbmj_sum_m2"], row["n_missing"], row["n_not_numeric"]
(1, 10000.0, 1, 1)
>>> row["not_numeric"]
"farmland:1='abc'"
>>> abs(row["relative_difference"]) < 1e-5
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from spatialplan.core._geodesic import geodesic_areas
from spatialplan.core._text import visible

__all__ = ["TBMJ_COLUMNS", "TBMJ_ROLES", "compare_tbmj", "tbmj_table"]

#: layers whose ``TBMJ`` is compared (control lines, survey cultivated land, parcels)
TBMJ_ROLES = ("redline", "farmland", "udb", "cropland", "parcels")
#: columns of :func:`tbmj_table` (and keys of each ``validate --json`` ``tbmj`` record)
TBMJ_COLUMNS = ["role", "field", "n_features", "n_compared", "tbmj_sum_m2", "ellipsoidal_m2",
                "relative_difference", "n_missing", "n_not_numeric", "not_numeric"]
#: features named in ``not_numeric`` (the count says how many there are)
MAX_NAMED = 5


def _tbmj_field(gdf: pd.DataFrame) -> str | None:
    """Return the layer's ``TBMJ`` column (any case), or ``None``."""
    return next((c for c in gdf.columns if str(c).upper() == "TBMJ"), None)


def _numbers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return the values as floats (NaN where no number) and the mask of missing values.

    A numeric column is taken as it is; text is stripped and parsed (empty text is missing).
    """
    missing = raw.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(dtype=float, na_value=np.nan), missing
    text = raw.astype("string").str.strip()
    missing |= (text == "").fillna(True).to_numpy(dtype=bool)
    number = pd.to_numeric(text.where(~missing), errors="coerce")
    return number.to_numpy(dtype=float, na_value=np.nan), missing


def _shown(value: object) -> str:
    """Text quoted (``'abc'``), anything else as written (``-1.0``, ``inf``)."""
    return repr(value) if isinstance(value, str) else str(value)


def compare_tbmj(gdf: gpd.GeoDataFrame, *, role: str) -> dict[str, Any] | None:
    """Sum of ``TBMJ`` against the computed ellipsoidal area of the same features.

    Parameters
    ----------
    gdf
        A read layer's accepted features (``feature_id``, geometry in a projected CRS).
    role
        The layer's role, for the record.

    Returns
    -------
    dict or None
        ``None`` when the layer has no ``TBMJ`` field; else the keys of :data:`TBMJ_COLUMNS`:
        ``field`` (its name in the layer), ``n_features``, ``n_compared`` (features with a
        number), ``tbmj_sum_m2`` and ``ellipsoidal_m2`` (their sums; the latter on the CGCS2000
        ellipsoid, feature by feature as ``TBMJ`` is), ``relative_difference``
        (``(ellipsoidal_m2 - tbmj_sum_m2) / tbmj_sum_m2``, NaN when the sum is 0),
        ``n_missing`` (no value), ``n_not_numeric`` and ``not_numeric`` (the first
        :data:`MAX_NAMED` such features as ``feature_id='text'`` or ``feature_id=-1.0``,
        ``; ``-separated).
    """
    field = _tbmj_field(gdf)
    if field is None:
        return None
    raw = gdf[field]
    number, missing = _numbers(raw)
    good = ~missing & np.isfinite(number) & (number >= 0)
    bad = np.flatnonzero(~missing & ~good)
    ids = gdf["feature_id"].astype(str).to_numpy() if "feature_id" in gdf else gdf.index
    named = "; ".join(visible(f"{ids[k]}={_shown(raw.iloc[k])}") for k in bad[:MAX_NAMED])
    geoms = np.asarray(gdf.geometry.array, dtype=object)[good]
    ellipsoidal = float(np.nansum(geodesic_areas(geoms, CRS.from_user_input(gdf.crs))))
    total = float(number[good].sum())
    return {
        "role": role, "field": str(field), "n_features": len(gdf), "n_compared": int(good.sum()),
        "tbmj_sum_m2": total, "ellipsoidal_m2": ellipsoidal,
        "relative_difference": (ellipsoidal - total) / total if total > 0 else float("nan"),
        "n_missing": int(missing.sum()), "n_not_numeric": len(bad),
        "not_numeric": named + ("; ..." if len(bad) > MAX_NAMED else ""),
    }


def tbmj_table(layers: Mapping[str, Any]) -> pd.DataFrame:
    """One :func:`compare_tbmj` row per layer of :data:`TBMJ_ROLES` carrying ``TBMJ``.

    ``layers`` maps a role to a read layer (with its accepted features in ``data``).
    """
    rows = [row for role in TBMJ_ROLES if role in layers
            if (row := compare_tbmj(layers[role].data, role=role)) is not None]
    return pd.DataFrame(rows, columns=TBMJ_COLUMNS)
