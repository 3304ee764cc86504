"""spatialplan: township territorial spatial planning checks (国土空间规划 · 三条控制线 · "8+X").

The package re-exports the public API of its topic modules; see ``DESIGN.md``. The map, layout
and report functions (folium, matplotlib) are imported on first use.
"""

import importlib
import logging

from spatialplan import _compat
from spatialplan._version import __version__
from spatialplan.analysis.overlay import (
    control_line_report,
    line_conflicts,
    outside_townships,
    township_conflicts,
    township_stats,
)
from spatialplan.analysis.schedule import sequence_table
from spatialplan.analysis.terrain import (
    read_terrain,
    site_slope_stats,
    slope_degrees,
    township_terrain_stats,
    write_slope,
)
from spatialplan.core._resources import demo_plan_path
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
from spatialplan.io.bubiao import read_bubiao_txt
from spatialplan.io.plan import read_plan_spec
from spatialplan.io.read import (
    Layer,
    Plan,
    feature_issues,
    read_layer,
    read_plan,
    unknown_landuse_report,
    validation_report,
)
from spatialplan.pipeline.compare import Comparison, compare, write_compare
from spatialplan.pipeline.many import check_many
from spatialplan.pipeline.result import CheckResult
from spatialplan.pipeline.run import run_check, run_stats
from spatialplan.pipeline.write import check_layouts, check_map, write_check
from spatialplan.rules._registry import siting_rule
from spatialplan.rules.catalog import Catalog, landuse_compatible, read_catalog, resolve_facility
from spatialplan.rules.rulebook import read_rules
from spatialplan.rules.siting import check_projects, facility_coverage

logging.getLogger("spatialplan").addHandler(logging.NullHandler())
_compat.install()

#: names served lazily from heavier modules (folium, matplotlib)
_LAZY = {
    "explore": "spatialplan.render.webmap",
    "write_map": "spatialplan.render.webmap",
    "layout_figure": "spatialplan.render.layout",
    "write_layout": "spatialplan.render.layout",
    "render_report": "spatialplan.render.report",
    "write_report": "spatialplan.render.report",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spatialplan' has no attribute {name!r}")


__all__ = [
    "CRSError",
    "Catalog",
    "CheckResult",
    "Comparison",
    "DataLayerError",
    "DataSourceError",
    "FieldError",
    "GeometryError",
    "Layer",
    "OutputError",
    "Plan",
    "PlanError",
    "RasterError",
    "RulebookError",
    "SpatialPlanError",
    "__version__",
    "check_layouts",
    "check_many",
    "check_map",
    "check_projects",
    "compare",
    "control_line_report",
    "demo_plan_path",
    "explore",
    "facility_coverage",
    "feature_issues",
    "landuse_compatible",
    "layout_figure",
    "line_conflicts",
    "outside_townships",
    "read_bubiao_txt",
    "read_catalog",
    "read_layer",
    "read_plan",
    "read_plan_spec",
    "read_rules",
    "read_terrain",
    "render_report",
    "resolve_facility",
    "run_check",
    "run_stats",
    "sequence_table",
    "site_slope_stats",
    "siting_rule",
    "slope_degrees",
    "township_conflicts",
    "township_stats",
    "township_terrain_stats",
    "unknown_landuse_report",
    "validation_report",
    "write_check",
    "write_compare",
    "write_layout",
    "write_map",
    "write_report",
    "write_slope",
]
