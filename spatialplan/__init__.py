"""spatialplan: township territorial spatial planning checks (国土空间规划 · 三条控制线 · "8+X").

The package re-exports the public API of its topic modules; see ``DESIGN.md``.
"""

import logging

from spatialplan._version import __version__
from spatialplan.errors import (
    CRSError,
    DataLayerError,
    DataSourceError,
    FieldError,
    GeometryError,
    OutputError,
    PlanError,
    RasterError,
    RulebookError,
    SpatialPlanError,
)

logging.getLogger("spatialplan").addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "CRSError",
    "DataLayerError",
    "DataSourceError",
    "FieldError",
    "GeometryError",
    "OutputError",
    "PlanError",
    "RasterError",
    "RulebookError",
    "SpatialPlanError",
]
