"""``spatialplan demo --out DIR``: the full check on the bundled synthetic demo township."""

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
    """Add the ``demo`` command."""
    p = sub.add_parser(
        "demo",
        help="run the full check on the bundled synthetic demo township",
        description="Run `spatialplan check` on the bundled demo (layers/demo/plan.toml, "
        "synthetic data in real Guizhou coordinates) and write every deliverable into --out.",
    )
    add_run_options(p, plan=False)
    add_font_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from spatialplan.core._resources import demo_dir
    from spatialplan.pipeline.write import OUTPUT_KINDS

    plan = read_plan_from_args(args, demo_dir() / "plan.toml")
    return check_and_write(args, plan, outputs=OUTPUT_KINDS)
