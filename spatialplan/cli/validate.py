"""``spatialplan validate PLAN``: read every layer and report sources, CRS, encodings, counts.

Prints, per layer, the source (file, layer, driver), the source CRS, the text encoding and how
it was chosen, and n_in = n_ok + n_repaired + n_rejected; then every repaired and rejected
feature with its reason, the parcel land-use codes outside the land-use code table with their
parcel counts, the rasters, the analysis CRS and the overlaps and enclosed gaps between the
township outlines (count and area); for a control-line or parcel layer carrying 三调 ``TBMJ``
(ellipsoidal m²), its sum beside the computed ellipsoidal area. Exit 0 when the plan could be
read (even with rejected features), 2 on a fatal problem.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from spatialplan.cli._common import (
    add_json_argument,
    add_plan_argument,
    add_quiet_argument,
    dump_json,
    format_table,
    setup_progress,
)
from spatialplan.core._text import visible

__all__ = ["register", "run"]

_LAYER_COLUMNS = ["role", "path", "layer", "driver", "source_crs", "crs_source", "encoding",
                  "encoding_source", "n_in", "n_ok", "n_repaired", "n_rejected", "n_zm_dropped"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``validate`` command."""
    parser = subparsers.add_parser(
        "validate", help="read a plan's layers and report CRS, encodings, repairs, rejections",
        description="Read every layer and raster of PLAN, check CRS, encodings, fields and "
        "geometries, and print a per-layer report (n_in = n_ok + n_repaired + n_rejected) "
        "with every repaired or rejected feature. Exit 2 on a fatal problem.",
    )
    add_plan_argument(parser)
    add_json_argument(parser)
    add_quiet_argument(parser)
    parser.add_argument("--crs", metavar="CRS",
                        help='analysis CRS, e.g. "EPSG:4545" (default: the plan\'s, or auto)')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Read the plan and print the validation report; return 0."""
    from spatialplan.io.read import (
        feature_issues,
        raster_report,
        read_plan,
        tbmj_report,
        unknown_landuse_report,
        validation_report,
    )

    setup_progress(args)
    plan = read_plan(Path(args.plan), crs=args.crs)
    layers = validation_report(plan)
    issues = feature_issues(plan)
    rasters = raster_report(plan)
    outlines = _township_outlines(plan)
    unknown = unknown_landuse_report(plan)
    tbmj = tbmj_report(plan)
    if args.json:
        print(_json_visible(dump_json({
            "plan": {"name": plan.name, "path": str(plan.path), "as_of": str(plan.as_of)},
            "analysis_crs": plan.crs.to_string(),
            "crs_reason": plan.crs_reason,
            "layers": layers.to_dict(orient="records"),
            "issues": issues.to_dict(orient="records"),
            "rasters": rasters.to_dict(orient="records"),
            "township_conflicts": outlines,
            "unknown_landuse_codes": unknown.to_dict(orient="records"),
            "tbmj": tbmj.to_dict(orient="records"),
        })))
        return 0
    layers["path"] = [_short(p, plan.path) for p in layers["path"]]
    rasters["path"] = [_short(p, plan.path) for p in rasters["path"]]
    layers, issues, rasters, unknown = (_visible_frame(df)
                                        for df in (layers, issues, rasters, unknown))
    print(visible(f"plan: {plan.name} ({plan.path})"))
    print(visible(f"analysis CRS: {plan.crs.to_string()} — {plan.crs_reason}"))
    print(f"as of: {plan.as_of}")
    print("\nlayers (n_in = n_ok + n_repaired + n_rejected):")
    print(format_table(layers, columns=_LAYER_COLUMNS))
    print(f"\nrepaired features: {int((issues['kind'] == 'repaired').sum())}")
    print(format_table(issues[issues["kind"] == "repaired"]))
    print(f"\nrejected features: {int((issues['kind'] == 'rejected').sum())}")
    print(format_table(issues[issues["kind"] == "rejected"],
                       columns=["role", "feature_id", "reason"]))
    if len(unknown):
        print(f"\nparcel land-use codes not in the land-use code table: {len(unknown)} "
              "(sites on them get review in the landuse rule)")
        print(format_table(unknown))
    if len(rasters):
        print("\nrasters:")
        print(format_table(rasters))
    if outlines is not None:
        print("\ntownship outlines: " + ", ".join(
            f"{v['count']} {k}s ({v['area_m2']:,.2f} m²)" for k, v in outlines.items()))
    if len(tbmj):
        _print_tbmj(_visible_frame(tbmj))
    return 0


def _township_outlines(plan) -> dict[str, dict] | None:
    """Overlaps and gaps between the plan's townships: count and area per kind.

    None for a plan without a townships layer (nothing to check).
    """
    from spatialplan.analysis.overlay import township_conflicts
    from spatialplan.pipeline.result import plan_tolerance

    towns = plan.layers.get("townships")
    if towns is None:
        return None
    found = township_conflicts(towns.data, tolerance=plan_tolerance(plan),
                               known_valid={"townships": towns.validated})
    return {kind: {"count": int((found["kind"] == kind).sum()),
                   "area_m2": float(found.loc[found["kind"] == kind, "area_m2"].sum())}
            for kind in ("overlap", "gap")}


def _print_tbmj(tbmj: pd.DataFrame) -> None:
    """Print the TBMJ comparison: sums, relative difference, values that are not numbers."""
    print("\nTBMJ (图斑面积, ellipsoidal m²) against the computed ellipsoidal area "
          "(CGCS2000 椭球面积) of the same features:")
    shown = tbmj.assign(relative_difference=[f"{v:+.2e}" if v == v else "n/a"
                                             for v in tbmj["relative_difference"]],
                        tbmj_sum_m2=[f"{v:.2f}" for v in tbmj["tbmj_sum_m2"]],
                        ellipsoidal_m2=[f"{v:.2f}" for v in tbmj["ellipsoidal_m2"]])
    print(format_table(shown, columns=["role", "field", "n_compared", "tbmj_sum_m2",
                                       "ellipsoidal_m2", "relative_difference", "n_missing",
                                       "n_not_numeric"]))
    for row in tbmj.itertuples():
        if row.n_not_numeric:
            print(f"  {row.role}: {row.n_not_numeric} {row.field} values are not numbers ≥ 0 "
                  f"(left out of both sums): {row.not_numeric}")


def _visible_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with control characters in its text cells and column names made visible."""
    out = df.map(lambda v: visible(v) if isinstance(v, str) else v)
    out.columns = [visible(c) for c in out.columns]
    return out


#: characters JSON leaves raw (C0 is escaped by json itself): DEL, C1, bidi and line separators
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                       "\u2066-\u2069]")


def _json_visible(text: str) -> str:
    r"""Write the characters of :data:`_JSON_RAW` in JSON text as ``\uXXXX`` escapes.

    They only occur inside strings, where the escape is the same character.
    """
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _short(path: str, plan_path: Path | None) -> str:
    """Show ``path`` relative to the plan's folder when it lies inside it."""
    if plan_path is None:
        return path
    try:
        return str(Path(path).relative_to(Path(plan_path).parent))
    except ValueError:
        return path
