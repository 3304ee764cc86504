"""Geometry validation with accounting: reject, repair (``make_valid``, never ``buffer(0)``), count.

Every input feature ends in exactly one of three states, so that per layer
``n_in == n_ok + n_repaired + n_rejected``:

- **ok**: valid geometry of the layer's type, kept as is (Z/M coordinates are dropped and only
  counted);
- **repaired**: kept after a recorded change (``make_valid``, parts of another type dropped, a
  point site buffered to the plan's ``point_radius_m``), with area before/after (polygons);
- **rejected**: missing/empty geometry, a non-finite coordinate (NaN or ±infinity in x, y or a
  Z that would be dropped; in any ring or part), geometry of another type (a line in a polygon
  layer, a polygon in a line layer...), or a repair that would change the area by more than
  1 % (a line that ``make_valid`` leaves without a line, e.g. all vertices in one place).

The layer's geometry type is its role's (:mod:`spatialplan.io.roles`): ``polygon`` (every
built-in role), ``line``, ``point``, or ``any`` (a plug-in's layer whose plan gives no
``geometry``: every type kept, invalid ones made valid).

The area "before" a repair of an invalid polygon is the area of the polygonal parts of
``make_valid(g, method="linework")``, i.e. the faces enclosed by the rings as drawn, read with the
even-odd rule; the shoelace area of an invalid ring is meaningless (a bow-tie's is ~0). The
"after" area is that of ``make_valid(g, method="structure")``, which unions shells and subtracts
holes. The two agree for bow-ties, spikes and touching rings, and disagree where the drawing is
ambiguous (overlapping shells, holes outside their shell): then the repair is a guess, and if
the guesses differ by more than 1 % of the "before" area the feature is rejected.

Example
-------
>>> import geopandas as gpd, shapely
>>> bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
>>> g = gpd.GeoDataFrame({"feature_id": ["redline:0"]}, geometry=[bowtie], crs=4545)
>>> ok, rejected, repaired = validate_geometries(g, role="redline")
>>> len(ok), len(rejected), repaired["area_after_m2"].tolist()
(1, 0, [2.0])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from spatialplan.core._parallel import is_valid, map_chunks
from spatialplan.errors import GeometryError

__all__ = [
    "MAX_REPAIR_AREA_CHANGE",
    "area_m2",
    "non_finite",
    "polygonal_part",
    "screen_geometries",
    "validate_geometries",
]

log = logging.getLogger(__name__)

#: a repair that changes the area by more than this share of the "before" area is a rejection
MAX_REPAIR_AREA_CHANGE = 0.01

_POLYGONAL = {"Polygon", "MultiPolygon"}
_POINTS = {"Point", "MultiPoint"}
_LINES = {"LineString", "MultiLineString"}

#: shapely type ids a layer of each geometry type holds as they are
TYPE_IDS = {"polygon": (3, 6), "line": (1, 5), "point": (0, 4),
            "point_or_polygon": (0, 4, 3, 6)}


def _geometry(polygonal: bool, geometry: str | None) -> str:
    """Return the layer's geometry type: ``geometry``, or from the older ``polygonal`` flag."""
    if geometry is None:
        return "polygon" if polygonal else "any"
    if geometry not in ("any", *TYPE_IDS):  # pragma: no cover - caller's contract
        raise ValueError(f"unknown geometry type {geometry!r}")
    return geometry


def polygonal_part(geom: shapely.Geometry | None) -> shapely.Geometry | None:
    """Return the polygonal parts of ``geom`` (Polygon/MultiPolygon), or None if it has none.

    Example
    -------
    >>> gc = shapely.GeometryCollection([shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0),
    ...                                  (5, 5)])])
    >>> polygonal_part(gc).geom_type
    'Polygon'
    """
    if geom is None or geom.is_empty:
        return None
    kind = geom.geom_type
    if kind in _POLYGONAL:
        return geom
    if kind == "GeometryCollection" or kind.startswith("Multi"):
        polys = []
        for part in shapely.get_parts(geom):
            sub = polygonal_part(part)
            if sub is not None:
                polys.extend(shapely.get_parts(sub))
        if not polys:
            return None
        return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    return None


def _part_of(geom: shapely.Geometry, kinds: set[str]) -> shapely.Geometry | None:
    """Return the parts of ``geom`` whose type is in ``kinds``, as one geometry, or None.

    ``kinds`` holds two types: a type and its multi-type; several parts give the multi-type.
    """
    parts = [p for p in shapely.get_parts(geom) if not p.is_empty]
    flat: list[shapely.Geometry] = []
    for p in parts:
        if p.geom_type == "GeometryCollection" or (p.geom_type.startswith("Multi")
                                                   and p.geom_type not in kinds):
            sub = _part_of(p, kinds)
            if sub is not None:
                flat.extend(shapely.get_parts(sub))
        elif p.geom_type in kinds:
            flat.extend(shapely.get_parts(p))
    if not flat:
        return None
    if len(flat) == 1:
        return flat[0]
    return (shapely.MultiLineString(flat) if "LineString" in kinds
            else shapely.MultiPoint(flat))


def area_m2(geoms: np.ndarray | list, crs: object | None) -> np.ndarray:
    """Area of each geometry in m²: planar in a projected CRS, ellipsoidal in a geographic one.

    Example
    -------
    >>> area_m2([shapely.box(0, 0, 10, 10)], "EPSG:4545").tolist()
    [100.0]
    """
    geoms = np.asarray(geoms, dtype=object)
    if crs is None:
        return np.asarray(shapely.area(geoms), dtype=float)
    crs = pyproj.CRS.from_user_input(crs)
    if not crs.is_geographic:
        return np.asarray(shapely.area(geoms), dtype=float)
    geod = crs.get_geod() or pyproj.Geod(ellps="WGS84")
    out = np.zeros(len(geoms))
    for i, g in enumerate(geoms):
        if g is not None and not g.is_empty:
            out[i] = abs(geod.geometry_area_perimeter(g)[0])
    return out


def _make_valid(geom: shapely.Geometry, method: str) -> shapely.Geometry:
    try:
        return shapely.make_valid(geom, method=method, keep_collapsed=False)
    except (TypeError, ValueError, shapely.errors.UnsupportedGEOSVersionError):  # GEOS < 3.10
        return shapely.make_valid(geom)


def _structure_repair(poly: shapely.Geometry) -> shapely.Geometry | None:
    """Return the polygonal part of ``make_valid(poly, method="structure")``.

    It is made valid once more if GEOS returned an invalid result (GEOS 3.14 can return parts
    sharing an edge, e.g. for a ring that passes through a vertex twice; a second pass unions
    them).
    """
    fixed = polygonal_part(_make_valid(poly, "structure"))
    if fixed is not None and not shapely.is_valid(fixed):
        fixed = polygonal_part(_make_valid(fixed, "structure"))
    return fixed


def _buffer_points(geom: shapely.Geometry, radius: float, crs: object | None) -> shapely.Geometry:
    if crs is None:
        raise GeometryError("cannot buffer point sites of a layer without CRS",
                            hint="set assume_crs for the layer")
    crs = pyproj.CRS.from_user_input(crs)
    if not crs.is_geographic:
        return shapely.buffer(geom, radius, quad_segs=16)
    from spatialplan.core.crs import gk_zone_crs

    local = gk_zone_crs(geom.centroid.x)
    fwd = pyproj.Transformer.from_crs(crs, local, always_xy=True)
    back = pyproj.Transformer.from_crs(local, crs, always_xy=True)
    metric = shapely.transform(geom, lambda c: np.column_stack(fwd.transform(c[:, 0], c[:, 1])))
    buffered = shapely.buffer(metric, radius, quad_segs=16)
    return shapely.transform(buffered,
                             lambda c: np.column_stack(back.transform(c[:, 0], c[:, 1])))


#: why a point project site without ``point_radius_m`` is rejected, and the fix
POINT_SITE_REASON = ("{kind} site in a polygon layer, and the plan gives no point_radius_m: "
                     "add point_radius_m = 15 (the site's radius in metres) under "
                     "[layers.projects] in the plan file, or draw the site as a polygon")


def _classify(geom: shapely.Geometry | None, *, polygonal: bool = True,
              point_radius_m: float | None, crs: object | None, role: str = "",
              geometry: str | None = None
              ) -> tuple[str, shapely.Geometry | None, str, float, float]:
    """Return (state, new geometry, reason, area_before, area_after) for one geometry.

    The geometry is one of a layer of type ``geometry`` (default: ``polygon``, or ``any`` when
    not ``polygonal``).
    """
    geometry = _geometry(polygonal, geometry)
    nan = math.nan
    if geom is None:
        return "rejected", None, "geometry is missing (None)", nan, nan
    if geom.is_empty:
        return "rejected", None, "geometry is empty", nan, nan
    why_not_finite = _non_finite_reason(geom)
    if why_not_finite is not None:
        return "rejected", None, why_not_finite, nan, nan
    kind = geom.geom_type
    if geometry == "line":
        return _classify_line(geom, kind)
    if geometry == "point" or (geometry == "point_or_polygon" and kind in _POINTS):
        return _classify_point(geom, kind)
    if geometry == "point_or_polygon":
        return _classify_polygon(geom, kind, crs=crs)
    if geometry == "any":
        return _classify_any(geom)
    if kind in _POINTS:
        return _classify_point_site(geom, kind, point_radius_m=point_radius_m, crs=crs,
                                    role=role)
    return _classify_polygon(geom, kind, crs=crs)


def _classify_any(geom: shapely.Geometry
                  ) -> tuple[str, shapely.Geometry | None, str, float, float]:
    """Run :func:`_classify` in a layer of any type (``geom`` present, non-empty, finite)."""
    nan = math.nan
    if shapely.is_valid(geom):
        return "ok", geom, "", nan, nan
    fixed = _make_valid(geom, "structure")
    if fixed.is_empty:
        return "rejected", None, "invalid geometry; make_valid left nothing", nan, nan
    return "repaired", fixed, "invalid geometry made valid", nan, nan


def _classify_point_site(geom: shapely.Geometry, kind: str, *, point_radius_m: float | None,
                         crs: object | None, role: str
                         ) -> tuple[str, shapely.Geometry | None, str, float, float]:
    """Run :func:`_classify` on a point (``kind`` in ``_POINTS``) in a polygon layer."""
    nan = math.nan
    if point_radius_m is None:
        why = (POINT_SITE_REASON.format(kind=kind) if role == "projects"
               else f"{kind} in a polygon layer (a point has no area)")
        return "rejected", None, why, nan, nan
    buffered = _buffer_points(geom, point_radius_m, crs)
    after = float(area_m2([buffered], crs)[0])
    return ("repaired", buffered, f"{kind} site buffered to point_radius_m = "
            f"{point_radius_m:g} m", 0.0, after)


def _classify_polygon(geom: shapely.Geometry, kind: str, *, crs: object | None
                      ) -> tuple[str, shapely.Geometry | None, str, float, float]:
    """Run :func:`_classify` on a geometry that is not a point in a polygon layer."""
    nan = math.nan
    if kind not in _POLYGONAL and kind != "GeometryCollection":
        return "rejected", None, f"{kind} in a polygon layer", nan, nan
    poly = polygonal_part(geom)
    if poly is None:
        return "rejected", None, f"{kind} without polygonal parts in a polygon layer", nan, nan
    dropped = poly is not geom
    if shapely.is_valid(poly):
        if dropped:
            a = float(area_m2([poly], crs)[0])
            return "repaired", poly, "non-polygonal parts dropped", a, a
        return "ok", poly, "", nan, nan
    return _repair_polygon(poly, crs=crs)


def _repair_polygon(poly: shapely.Geometry, *, crs: object | None
                    ) -> tuple[str, shapely.Geometry | None, str, float, float]:
    """Repair the invalid polygonal ``poly`` with make_valid, or reject it (saying why)."""
    before_geom = polygonal_part(_make_valid(poly, "linework"))
    after_geom = _structure_repair(poly)
    before = float(area_m2([before_geom], crs)[0]) if before_geom is not None else 0.0
    after = float(area_m2([after_geom], crs)[0]) if after_geom is not None else 0.0
    why = shapely.is_valid_reason(poly)
    if why.startswith("Hole lies outside shell"):
        return ("rejected", None, f"invalid polygon ({why}): make_valid would turn the hole "
                "into land; the intended area is ambiguous", before, after)
    if after_geom is None or after <= 0:
        return "rejected", None, f"invalid polygon ({why}); make_valid leaves no area", \
            before, after
    if not shapely.is_valid(after_geom):
        return ("rejected", None, f"invalid polygon ({why}); make_valid gives an invalid "
                f"polygon ({shapely.is_valid_reason(after_geom)})", before, after)
    change = abs(after - before) / before if before > 0 else math.inf
    if change > MAX_REPAIR_AREA_CHANGE:
        return ("rejected", None, f"invalid polygon ({why}); make_valid would change the area "
                f"by {change:.1%} (> {MAX_REPAIR_AREA_CHANGE:.0%})", before, after)
    return "repaired", after_geom, f"invalid polygon ({why}) repaired with make_valid", \
        before, after


def _classify_line(geom: shapely.Geometry, kind: str
                   ) -> tuple[str, shapely.Geometry | None, str, float, float]:
    """:func:`_classify` in a line layer (``geom`` present, non-empty, finite)."""
    nan = math.nan
    if kind in _LINES and shapely.is_valid(geom):
        return "ok", geom, "", nan, nan
    if kind in _LINES or kind == "LinearRing":
        why = shapely.is_valid_reason(geom)
        if kind == "LinearRing" and shapely.is_valid(geom):
            return "repaired", shapely.LineString(geom.coords), "LinearRing stored as " \
                "LineString", nan, nan
        fixed = _part_of(_make_valid(geom, "structure"), _LINES)
        if fixed is None:
            return ("rejected", None, f"invalid line ({why}); make_valid leaves no line (all "
                    "vertices in one place?)", nan, nan)
        return "repaired", fixed, f"invalid line ({why}) made valid", nan, nan
    if kind == "GeometryCollection":
        lines = _part_of(geom, _LINES)
        if lines is not None:
            if not shapely.is_valid(lines):
                lines = _part_of(_make_valid(lines, "structure"), _LINES)
            if lines is not None:
                return "repaired", lines, "parts that are not lines dropped", nan, nan
        return "rejected", None, f"{kind} without lines in a line layer", nan, nan
    return "rejected", None, f"{kind} in a line layer", nan, nan


def _classify_point(geom: shapely.Geometry, kind: str
                    ) -> tuple[str, shapely.Geometry | None, str, float, float]:
    """:func:`_classify` in a point layer (``geom`` present, non-empty, finite)."""
    nan = math.nan
    if kind in _POINTS:  # finite, non-empty points are valid
        return "ok", geom, "", nan, nan
    if kind == "GeometryCollection":
        points = _part_of(geom, _POINTS)
        if points is not None:
            return "repaired", points, "parts that are not points dropped", nan, nan
        return "rejected", None, f"{kind} without points in a point layer", nan, nan
    return "rejected", None, f"{kind} in a point layer", nan, nan


def _non_finite_reason(geom: shapely.Geometry) -> str | None:
    """Return why ``geom`` has a non-finite coordinate, naming the first one.

    A non-finite coordinate is NaN or ±infinity in x, y, or z when it has z. None when every
    coordinate is finite.
    """
    coords = shapely.get_coordinates(geom, include_z=bool(shapely.has_z(geom)))
    bad = ~np.isfinite(coords).all(axis=1)
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    first = ", ".join(f"{axis}={v:.3f}" for axis, v in zip("xyz", coords[i], strict=False))
    return (f"non-finite coordinates (NaN or infinity): {int(bad.sum())} of {len(coords)} "
            f"vertices, first vertex {i + 1} ({first})")


#: geometries whose Z coordinates are tested at once by :func:`_finite_z` (bounds the array)
_Z_CHUNK = 65_536


def _finite_z(geoms: np.ndarray) -> np.ndarray:
    """Return True for each geometry whose Z coordinates are all finite (``geoms`` all have Z)."""
    out = np.ones(len(geoms), dtype=bool)
    for start in range(0, len(geoms), _Z_CHUNK):
        part = geoms[start:start + _Z_CHUNK]
        coords, index = shapely.get_coordinates(part, include_z=True, return_index=True)
        bad = ~np.isfinite(coords[:, 2])
        if bad.any():
            out[start + np.unique(index[bad])] = False
    return out


def _drop_zm(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop Z and M: return (geometries, had Z or M, non-finite Z).

    The geometries are those without Z/M, the masks those that had Z or M and those with a
    non-finite Z; others are untouched.

    A geometry with a non-finite Z keeps its Z (it is rejected, naming the coordinate, by
    :func:`_classify`): dropping the Z first would hide the broken coordinate.
    """
    has_z = np.asarray(shapely.has_z(geoms), dtype=bool)  # False for missing geometries
    zm = has_z.copy()
    if hasattr(shapely, "has_m"):
        zm |= np.asarray(shapely.has_m(geoms), dtype=bool)
    bad_z = np.zeros(len(geoms), dtype=bool)
    if zm.any():
        geoms = geoms.copy()
        if has_z.any():
            bad_z[has_z] = ~_finite_z(geoms[has_z])
        flat = zm & ~bad_z
        geoms[flat] = shapely.force_2d(geoms[flat])
    return geoms, zm, bad_z


def screen_geometries(geoms: np.ndarray, *, polygonal: bool = True, geometry: str | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the vectorised part of :func:`validate_geometries`.

    Returns (geometries without Z/M, had Z/M, ok as they are).

    Element-wise, so the results for consecutive chunks, concatenated, are those for the whole
    array; the GEOS work releases the GIL (:class:`spatialplan.core._parallel.Overlap` runs it on
    chunks of a layer while the rest is still being decoded). Features not ok are classified
    one by one by :func:`validate_geometries`. A feature with a non-finite coordinate is never
    ok: GEOS holds a non-finite x or y invalid ("Invalid Coordinate"), and a non-finite Z is
    tested here (such a geometry keeps its Z, see :func:`_drop_zm`).

    Example
    -------
    >>> bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    >>> flat, zm, ok = screen_geometries(np.array([shapely.box(0, 0, 1, 1), bowtie, None]))
    >>> ok.tolist(), zm.tolist()
    ([True, False, False], [False, False, False])
    """
    geoms, zm, bad_z = _drop_zm(np.asarray(geoms, dtype=object))
    ok = _fast_ok(geoms, geometry=_geometry(polygonal, geometry))
    if bad_z.any():
        ok &= ~bad_z
    return geoms, zm, ok


def non_finite(screened: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Return the mask of the features with a non-finite coordinate (NaN or ±infinity).

    It is computed from :func:`screen_geometries`' result; :func:`validate_geometries` rejects
    exactly these (among others).

    Only features not ok are tested (one by one): an ok feature has none (see
    :func:`screen_geometries`). Callers use it to keep such features out of bounding boxes
    and CRS checks before validation rejects them.

    Example
    -------
    >>> bad = shapely.Polygon([(0, 0), (1, 0), (np.inf, 1), (0, 0)])
    >>> non_finite(screen_geometries(np.array([shapely.box(0, 0, 1, 1), bad, None]))).tolist()
    [False, True, False]
    """
    geoms, _zm, ok = screened
    out = np.zeros(len(geoms), dtype=bool)
    for i in np.flatnonzero(~ok).tolist():
        g = geoms[i]
        out[i] = g is not None and not g.is_empty and _non_finite_reason(g) is not None
    return out


def _fast_ok(geoms: np.ndarray, *, geometry: str) -> np.ndarray:
    """Test the common case, vectorised: present, non-empty, valid and of the layer's type.

    The layer's type is tested with :data:`TYPE_IDS`.
    """
    # a missing geometry's type id is -1
    ok = (np.isin(shapely.get_type_id(geoms), TYPE_IDS[geometry]) if geometry in TYPE_IDS
          else ~shapely.is_missing(geoms))
    ok = _refine(ok, geoms, lambda g: ~shapely.is_empty(g))
    return _refine(ok, geoms, lambda g: map_chunks(is_valid, g))


def _refine(mask: np.ndarray, geoms: np.ndarray, test: Callable[[np.ndarray], np.ndarray]
            ) -> np.ndarray:
    """``mask`` with its True entries replaced by ``test`` of those geometries."""
    if mask.all():
        return np.asarray(test(geoms), dtype=bool)
    mask = mask.copy()
    mask[mask] = test(geoms[mask])
    return mask


#: state codes of :func:`_classify_slow`
_OK, _REPAIRED, _REJECTED = 0, 1, 2


def _classify_slow(geoms: np.ndarray, slow: np.ndarray, fids: np.ndarray, *, geometry: str,
                   point_radius_m: float | None, crs: object | None, role: str = ""
                   ) -> tuple[np.ndarray, np.ndarray, list[dict], dict[int, tuple]]:
    """Run :func:`_classify` on the positions ``slow``, whose feature ids are ``fids``.

    The positions ``slow`` are those not ok by :func:`_fast_ok`.

    Returns the geometries (changed where repaired, None where rejected), the state of every
    feature (``_OK``, ``_REPAIRED``, ``_REJECTED``), the repaired rows in input order and, per
    rejected position, (reason, area before, area after).
    """
    states = np.full(len(geoms), _OK, dtype=np.int8)
    rep_rows: list[dict] = []
    rej_reasons: dict[int, tuple] = {}
    if len(slow) == 0:
        return geoms, states, rep_rows, rej_reasons
    geoms = geoms.copy()
    for i, fid in zip(slow.tolist(), fids, strict=True):
        state, new, reason, before, after = _classify(
            geoms[i], geometry=geometry, point_radius_m=point_radius_m, crs=crs, role=role)
        geoms[i] = new
        if state == "repaired":
            states[i] = _REPAIRED
            rep_rows.append({"feature_id": fid, "reason": reason, "area_before_m2": before,
                             "area_after_m2": after})
        elif state == "rejected":
            states[i] = _REJECTED
            rej_reasons[i] = (reason, before, after)
    return geoms, states, rep_rows, rej_reasons


def validate_geometries(gdf: gpd.GeoDataFrame, *, role: str, polygonal: bool = True,
                        point_radius_m: float | None = None,
                        screened: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                        geometry: str | None = None
                        ) -> tuple[gpd.GeoDataFrame, pd.DataFrame, pd.DataFrame]:
    """Validate, repair and account for every geometry of a layer.

    Parameters
    ----------
    gdf
        The layer; a ``feature_id`` column is created (``"{role}:{n}"``) if missing.
    role
        Layer role, used in ids and messages.
    polygonal
        True (all built-in roles) to accept only Polygon/MultiPolygon, False for any type;
        ``geometry``, when given, wins.
    point_radius_m
        Buffer Point/MultiPoint sites to this radius (metres) and record it as a repair;
        without it a point in a polygon layer is rejected (for ``projects`` the reason names
        ``point_radius_m`` and where to set it).
    screened
        :func:`screen_geometries` of exactly ``gdf``'s geometries, in order, with the same
        ``polygonal`` / ``geometry`` (computed beforehand, e.g. in threads while the layer was
        read); None computes it here.
    geometry
        The layer's geometry type (its role's, :mod:`spatialplan.io.roles`): ``"polygon"``,
        ``"line"`` (LineString/MultiLineString), ``"point"`` (Point/MultiPoint) or ``"any"``.

    Returns
    -------
    accepted : GeoDataFrame
        ok + repaired features, 2D, in input order; ``accepted.attrs["n_zm_dropped"]`` counts
        the features whose Z/M coordinates were dropped, ``attrs["zm_dropped_rows"]`` gives
        their positions in ``gdf``.
    rejected : DataFrame
        ``feature_id``, ``reason``, then the attribute columns.
    repaired : DataFrame
        ``feature_id``, ``reason``, ``area_before_m2``, ``area_after_m2``.

    Example
    -------
    >>> g = gpd.GeoDataFrame(geometry=[None, shapely.box(0, 0, 1, 1)], crs=4545)
    >>> ok, rejected, repaired = validate_geometries(g, role="udb")
    >>> rejected[["feature_id", "reason"]].values.tolist()
    [['udb:0', 'geometry is missing (None)']]
    """
    if "feature_id" not in gdf.columns:
        gdf = gdf.copy()
        gdf.insert(0, "feature_id", [f"{role}:{i}" for i in range(len(gdf))])
    geom_name = gdf.geometry.name
    geometry = _geometry(polygonal, geometry)
    if screened is None:
        screened = screen_geometries(gdf.geometry.values, geometry=geometry)
    geoms, zm, ok = screened
    if len(geoms) != len(gdf):  # pragma: no cover - caller's contract
        raise ValueError("screened geometries do not match the layer")
    slow = np.flatnonzero(~ok)
    new_geoms, states, rep_rows, rej_reasons = _classify_slow(
        geoms, slow, gdf["feature_id"].iloc[slow].to_numpy(), geometry=geometry,
        point_radius_m=point_radius_m, crs=gdf.crs, role=role)
    keep = states != _REJECTED
    accepted = gdf.loc[keep].copy()
    if zm.any() or len(slow):
        accepted[geom_name] = gpd.GeoSeries(new_geoms[keep], index=accepted.index,
                                            crs=gdf.crs)
    attrs = [c for c in gdf.columns if c not in ("feature_id", geom_name)]
    rejected = pd.DataFrame(gdf.loc[~keep, ["feature_id", *attrs]]).reset_index(drop=True)
    rej_pos = np.flatnonzero(~keep)
    for col, k in (("reason", 0), ("area_before_m2", 1), ("area_after_m2", 2)):
        rejected.insert(k + 1, col, [rej_reasons[i][k] for i in rej_pos])
    repaired = pd.DataFrame(rep_rows, columns=["feature_id", "reason", "area_before_m2",
                                               "area_after_m2"])
    n_ok = int((states == _OK).sum())
    if n_ok + len(repaired) + len(rejected) != len(gdf):  # pragma: no cover - invariant
        raise GeometryError(f"accounting broken in layer {role}", layer=role)
    accepted.attrs["n_zm_dropped"] = int(zm.sum())
    accepted.attrs["zm_dropped_rows"] = np.flatnonzero(zm)
    if len(rejected) or len(repaired):
        log.info("layer %s: %d ok, %d repaired, %d rejected", role, n_ok, len(repaired),
                 len(rejected))
    return accepted, rejected, repaired
