"""Control-line layers checked and prepared once per run.

Private to :mod:`spatialplan.analysis.overlay`.

:class:`_Line` holds one layer's polygons, validated and put on the precision grid once, and
what derives from them at most once (areas, ids, STRtree, coverage certificate, overlapping
pairs, copies); :class:`_Zones` adds the townships' outline.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property

import geopandas as gpd
import numpy as np
import shapely

from spatialplan.analysis import _overlay_geom as _geom
from spatialplan.analysis import _overlay_pairs as _pairs
from spatialplan.core._parallel import is_valid, map_chunks
from spatialplan.errors import GeometryError

__all__: list[str] = []

log = logging.getLogger("spatialplan.analysis.overlay")

_GEOM_HINT = "repair the layer (spatialplan validate reports invalid features) and run again"


def _feature_ids(gdf: gpd.GeoDataFrame, role: str) -> np.ndarray:
    if "feature_id" in gdf.columns:
        return gdf["feature_id"].astype(str).to_numpy(dtype=object)
    return np.array([f"{role}:{n}" for n in range(len(gdf))], dtype=object)


def _same_objects(geoms: np.ndarray, known: np.ndarray | None) -> bool:
    """Tell whether ``geoms`` holds exactly the objects of ``known``, in order.

    Shapely geometries are immutable: the same object is the same, already validated, geometry.
    """
    if known is None or len(known) != len(geoms):
        return False
    return all(a is b for a, b in zip(geoms, known, strict=True))


def _refused(gdf: gpd.GeoDataFrame, role: str, positions: np.ndarray, what: str, *,
             hint: str) -> GeometryError:
    """Build the error for a layer holding ``len(positions)`` features of a kind ``what``.

    The message names the first of them.
    """
    return GeometryError(f"the {role} layer holds {len(positions)} {what}", layer=role,
                         feature=_feature_ids(gdf, role)[positions[0]], hint=hint)


def _polygons(gdf: gpd.GeoDataFrame, role: str, grid_size: float | None,
              known_valid: np.ndarray | None = None) -> np.ndarray:
    """Polygon geometries of a layer as an object array, checked and put on the grid.

    ``known_valid``: geometries already found valid (``Layer.validated`` of
    :func:`spatialplan.io.read.read_plan`); when the layer holds exactly these objects, the
    validity test (the costliest check: ~2 s CPU per million parcels) is not repeated.
    """
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    skip_validity = _same_objects(geoms, known_valid)
    geoms = np.where(shapely.is_empty(geoms), None, geoms)
    types = shapely.get_type_id(geoms)
    bad = np.flatnonzero(~np.isin(types, [-1, 3, 6]))
    if len(bad):
        kind = shapely.get_type_id(geoms[bad[0]])
        raise _refused(gdf, role, bad, f"non-polygon geometries (type id {kind})",
                       hint="control lines and townships must be Polygon or MultiPolygon")
    if skip_validity:
        invalid = np.array([], dtype=np.intp)
    else:
        invalid = np.flatnonzero(~shapely.is_missing(geoms)
                                 & ~map_chunks(is_valid, geoms))
    if len(invalid):
        reason = shapely.is_valid_reason(geoms[invalid[0]])
        raise _refused(gdf, role, invalid, f"invalid polygons ({reason})", hint=_GEOM_HINT)
    snapped, kept = _geom.snap_with_report(geoms, grid_size)
    if len(kept):  # counted and named, never dropped: these keep their original coordinates
        log.warning("the %s layer holds %d polygons that would collapse or turn invalid on the "
                    "%g m grid (first: %s); they are measured with their original coordinates",
                    role, len(kept), grid_size, _feature_ids(gdf, role)[kept[0]])
    return snapped


# ---------------------------------------------------------------------------------------------
# layers checked and prepared once per run


class _Line:
    """One line layer, checked and put on the grid once; what derives from it, at most once.

    Parameters
    ----------
    role
        The layer's role (``redline``, ``farmland``...): messages and default feature ids.
    gdf
        The layer, in the analysis CRS (already checked).
    grid_size
        Precision grid (m), already checked.
    known_valid
        Geometries already validated, see :func:`_polygons`.

    Raises
    ------
    GeometryError
        The layer holds non-polygon or invalid geometries.
    """

    def __init__(self, role: str, gdf: gpd.GeoDataFrame, grid_size: float | None,
                 known_valid: np.ndarray | None = None) -> None:
        self.role = role
        self.gdf = gdf
        self.grid_size = grid_size
        self.geoms = _polygons(gdf, role, grid_size, known_valid)

    @cached_property
    def area(self) -> np.ndarray:
        """Planar area of each feature (NaN for a missing geometry)."""
        return shapely.area(self.geoms)

    @cached_property
    def ids(self) -> np.ndarray:
        """Feature ids (``feature_id``, or ``"{role}:{n}"`` when the layer has none)."""
        return _feature_ids(self.gdf, self.role)

    @cached_property
    def bounds(self) -> np.ndarray:
        """Bounding box of each feature, ``(n, 4)`` (NaN for a missing geometry)."""
        return shapely.bounds(self.geoms)

    @cached_property
    def tree(self) -> shapely.STRtree:
        """STRtree of the features."""
        return shapely.STRtree(self.geoms)

    @cached_property
    def first(self) -> np.ndarray:
        """Give, per feature, the first feature with an identical geometry.

        Itself when none; -1 when missing (:func:`spatialplan.analysis._overlay_pairs.first_equal`).
        Copies are named in a warning: a layer imported twice is a common data-entry accident.
        """
        first = _pairs.first_equal(self.geoms)
        copies = np.flatnonzero(first >= 0)
        copies = copies[first[copies] != copies]
        if len(copies):
            examples = ", ".join(f"{self.ids[k]} = {self.ids[first[k]]}" for k in copies[:3])
            log.warning("the %s layer holds %d features whose geometry repeats an earlier "
                        "feature's (%s%s), e.g. the layer was imported twice; each copy is a "
                        "self-overlap in line_conflicts and is counted once in the statistics",
                        self.role, len(copies), examples, ", ..." if len(copies) > 3 else "")
        return first

    @cached_property
    def distinct(self) -> np.ndarray:
        """Return the features with every copy of an earlier one as ``None``.

        Same positions, same union; the array itself when the layer has no copies.
        """
        copy = self.first != np.arange(len(self.geoms))
        copy &= self.first >= 0
        if not copy.any():
            return self.geoms
        return np.where(copy, None, self.geoms)

    @cached_property
    def certificate(self) -> tuple[bool, np.ndarray | None, np.ndarray]:
        """``(certified, parts, suspects)`` of the coverage certificate of the distinct features.

        As :func:`spatialplan.analysis._overlay_pairs.coverage_certificate` gives them; when
        certified, ``parts`` are pieces of the layer's union with pairwise disjoint interiors.
        """
        return _pairs.coverage_certificate(self.distinct, areas=self.area, return_suspects=True)

    @cached_property
    def distinct_overlaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the pairs of distinct features whose interiors intersect.

        None for a certified coverage; only the certificate's suspects are tested.
        """
        certified, _, suspects = self.certificate
        return _pairs.overlap_pairs(self.distinct, certified=certified, suspects=suspects,
                                    tree=self.tree)

    @cached_property
    def overlaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the pairs of features whose interiors intersect, copies included.

        In the order of the pairwise STRtree test (the order of the self-overlap rows).
        """
        if self.distinct is self.geoms:
            return self.distinct_overlaps
        pairs = _pairs.with_copies(*self.distinct_overlaps, self.first)
        return _pairs.query_order(self.tree, self.geoms, *pairs)

    @cached_property
    def dissolved_area(self) -> float:
        """Area of the layer's union (:func:`spatialplan.analysis._overlay_geom.dissolved_area`)."""
        return _geom.dissolved_area(self.distinct, self.distinct_overlaps,
                                    grid_size=self.grid_size, areas=self.area)


class _Zones(_Line):
    """Township outlines: a :class:`_Line` of role ``townships``, with their union.

    Parameters
    ----------
    gdf, grid_size, known_valid
        As for :class:`_Line`.
    """

    def __init__(self, gdf: gpd.GeoDataFrame, grid_size: float | None,
                 known_valid: np.ndarray | None = None) -> None:
        super().__init__("townships", gdf, grid_size, known_valid)

    @cached_property
    def dissolved(self) -> tuple[shapely.Geometry | None, bool]:
        """Return ``(outline, coverage)`` of the townships.

        The union of the townships (``None`` if there is none) and whether they form a valid
        coverage (see :func:`_overlay_geom.dissolve`). The tests against it prepare it
        themselves (:func:`spatialplan.core._parallel.map_prepared`).
        """
        return _geom.dissolve(self.geoms, grid_size=self.grid_size)


def _prepare_lines(given: Mapping[str, gpd.GeoDataFrame], grid_size: float | None,
                   known_valid: Mapping[str, np.ndarray] | None = None) -> dict[str, _Line]:
    known = known_valid or {}
    return {role: _Line(role, gdf, grid_size, known.get(role)) for role, gdf in given.items()}
