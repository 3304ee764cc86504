"""``spatialplan compare BEFORE AFTER --out DIR``: what changed between two checks."""

from __future__ import annotations

import argparse
import sys

from spatialplan.cli._common import add_out_argument

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``compare`` command."""
    p = sub.add_parser(
        "compare",
        help="what changed between two checks: projects and township indicators (两次检查对比)",
        description="Compare two output folders of `spatialplan check` (or their "
        "results.gpkg): projects are matched by project_id. Writes changes.csv/.xlsx (one row "
        "per project and kind of change: added, removed, verdict, moved, status, dates, "
        "investment, reasons), township_changes.csv/.xlsx, changes.html, changes_map.html and "
        "manifest.json. Projects and townships that did not change have no row.",
    )
    p.add_argument("before", metavar="BEFORE", help="the earlier check's output folder or "
                   "results.gpkg")
    p.add_argument("after", metavar="AFTER", help="the later check's output folder or "
                   "results.gpkg")
    add_out_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from spatialplan.core._text import visible
    from spatialplan.pipeline.compare import compare, write_compare

    comparison = compare(args.before, args.after)
    written = write_compare(comparison, args.out)
    kinds = comparison.projects["change"].value_counts()
    lines = [f"before: {comparison.before.source}", f"after: {comparison.after.source}",
             f"projects changed: {comparison.projects['project_id'].nunique()} ("
             + (", ".join(f"{k} {n}" for k, n in kinds.items()) or "none") + ")",
             f"township indicators changed: {len(comparison.townships)}", "written:"]
    lines += [f"  {path}" for path in written.values()]
    sys.stdout.write("\n".join(visible(line) for line in lines) + "\n")
    return 0
