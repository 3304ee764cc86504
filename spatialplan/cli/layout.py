"""``spatialplan layout PLAN --out DIR``: the 8+X project layout map (项目布局图)."""

from __future__ import annotations

import argparse

from spatialplan.cli._run import (
    add_font_argument,
    add_run_options,
    check_and_write,
    read_plan_from_args,
)

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``layout`` command."""
    p = sub.add_parser(
        "layout",
        help="write the print-quality 8+X layout map (layout.pdf, layout.png)",
        description="Check the plan and write the 8+X 项目布局图: A3 landscape, 300 dpi, one "
        "PDF page per township (or the one given with --township) and a PNG.",
    )
    add_run_options(p)
    add_font_argument(p)
    p.add_argument("--township", metavar="CODE", help="only this township (XZQDM code)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    return check_and_write(args, read_plan_from_args(args), outputs=["layout"])
