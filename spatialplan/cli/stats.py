"""``spatialplan stats PLAN --out DIR``: control-line statistics per township and conflicts."""

from __future__ import annotations

import argparse

from spatialplan.cli._run import add_run_options, read_plan_from_args

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``stats`` command."""
    p = sub.add_parser(
        "stats",
        help="three control lines on the townships: areas, shares and conflicts (三线统计)",
        description="Overlay the ecological red line, permanent basic farmland, urban "
        "development boundary (and survey cropland) on the township outlines. Writes "
        "results.gpkg (township_stats, line_conflicts, outside_townships, "
        "township_conflicts), township_stats.csv/.xlsx, line_conflicts.csv/.xlsx and "
        "township_conflicts.csv/.xlsx with Chinese headers, and manifest.json.",
    )
    add_run_options(p, fail_on=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from spatialplan.cli._run import print_summary, summarize
    from spatialplan.pipeline.run import run_stats
    from spatialplan.pipeline.write import write_check

    plan = read_plan_from_args(args)
    result = run_stats(plan)
    written = write_check(plan, result, args.out, outputs=["gpkg", "stats_tables"])
    print_summary(plan, summarize(result), written)
    return 0
