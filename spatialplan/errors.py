"""The one exception hierarchy of spatialplan.

Every error a user can cause (bad plan file, unreadable layer, CRS problem, bad
rulebook, ...) is a :class:`SpatialPlanError`. Each carries enough context for a
one-paragraph message: the file, the layer, the feature and what to do about it.
The CLI turns these into exit code 2 without a traceback.
"""

from __future__ import annotations

__all__ = [
    "CRSError",
    "DataLayerError",
    "DataSourceError",
    "FieldError",
    "GeometryError",
    "OutputError",
    "PlanError",
    "RasterError",
    "RulebookError",
    "SettingError",
    "SpatialPlanError",
]


class SpatialPlanError(Exception):
    """Base class of every error raised on purpose by spatialplan.

    Parameters
    ----------
    message
        What went wrong, in one sentence.
    path
        The file involved, if any.
    layer
        The layer (plan role or source layer name) involved, if any.
    feature
        The feature id (``feature_id``) or row involved, if any.
    hint
        What the user can do to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: object | None = None,
        layer: str | None = None,
        feature: object | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.layer = layer
        self.feature = None if feature is None else str(feature)
        self.hint = hint

    def __str__(self) -> str:
        """Return the message, where it happened (file, layer, feature) and the hint."""
        parts = [self.message]
        where = []
        if self.path:
            where.append(f"file {self.path}")
        if self.layer:
            where.append(f"layer {self.layer}")
        if self.feature:
            where.append(f"feature {self.feature}")
        if where:
            parts.append("(" + ", ".join(where) + ")")
        text = " ".join(parts)
        if self.hint:
            text += f". Fix: {self.hint}"
        return text


class PlanError(SpatialPlanError):
    """The plan file (TOML) is malformed: unknown key, wrong type, missing path."""


class DataSourceError(SpatialPlanError):
    """A data source cannot be opened: missing, not geodata, corrupt, remote, or not allowed."""


class DataLayerError(SpatialPlanError):
    """A layer inside a source is missing, ambiguous, empty or has unusable content."""


class FieldError(DataLayerError):
    """A required field is missing or a field value cannot be parsed (date, number)."""


class CRSError(SpatialPlanError):
    """A CRS is missing, inconsistent with the coordinates, or cannot be transformed safely."""


class GeometryError(SpatialPlanError):
    """A geometry problem that cannot be recorded as a repair or a rejection."""


class RasterError(SpatialPlanError):
    """A raster (DEM) is missing nodata or CRS, or does not cover the data."""


class RulebookError(SpatialPlanError):
    """The rulebook or catalogue is malformed: unknown key, wrong type, unknown facility."""


class OutputError(SpatialPlanError):
    """An output cannot be written safely (would overwrite an input, disk full, ...)."""


class SettingError(SpatialPlanError, ValueError):
    """An environment setting (e.g. ``SPATIALPLAN_THREADS``) has a value that is not allowed.

    Also a ``ValueError``, which is what callers caught before it existed.
    """
