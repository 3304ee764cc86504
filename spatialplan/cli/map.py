"""``spatialplan map PLAN --out DIR``: the interactive web map (map.html)."""

from __future__ import annotations

import argparse

from spatialplan.cli._run import add_run_options, check_and_write, read_plan_from_args

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``map`` command."""
    p = sub.add_parser(
        "map",
        help="write the Folium web map (map.html) with verdict-coloured project sites",
        description="Check the plan and write map.html: townships, the three control lines, "
        "conflicts and project sites coloured by verdict. A Tianditu basemap is added when "
        "the TIANDITU_KEY environment variable holds a key.",
    )
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    return check_and_write(args, read_plan_from_args(args), outputs=["map"])
