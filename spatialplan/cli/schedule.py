"""``spatialplan schedule PLAN --out DIR``: the construction sequence table (时序表)."""

from __future__ import annotations

import argparse

from spatialplan.cli._run import add_run_options, check_and_write, read_plan_from_args

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``schedule`` command."""
    p = sub.add_parser(
        "schedule",
        help="write the 8+X construction sequence table (时序表) as XLSX and CSV",
        description="Check the plan and write schedule.xlsx and schedule.csv (UTF-8 with BOM) "
        "with each project's compliance conclusion, plus manifest.json.",
    )
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    return check_and_write(args, read_plan_from_args(args), outputs=["schedule"])
