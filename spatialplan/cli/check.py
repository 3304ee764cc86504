"""``spatialplan check PLAN --out DIR``: the full check and every deliverable."""

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
    """Add the ``check`` command."""
    p = sub.add_parser(
        "check",
        help="check a plan: control lines, 8+X siting, schedule, maps and report",
        description="Read the plan, overlay the three control lines on the townships, check "
        "every 8+X project site against the rulebook and write results.gpkg, report.html, "
        "map.html, layout.pdf/png, schedule.xlsx/csv and manifest.json into --out.",
    )
    add_run_options(p)
    add_font_argument(p)
    p.add_argument("--no-map", action="store_true", help="skip map.html")
    p.add_argument("--no-layout", action="store_true", help="skip layout.pdf/png")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local (default) or dask: the same check partitioned by groups of "
                   "townships on dask.distributed, identical results")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --engine dask: an existing scheduler, e.g. tcp://host:8786 "
                   "(default: a local cluster)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --engine dask and no --scheduler: local worker processes "
                   "(default 2)")
    p.add_argument("--publish", metavar="URL",
                   help="also write the result tables and the manifest into PostGIS "
                   "(postgresql://user@host/db; the password from PGPASSWORD, ~/.pgpass or "
                   "PGSERVICE), all or none, replacing the previous ones")
    p.add_argument("--schema", metavar="NAME", default="spatialplan",
                   help="with --publish: the schema to write into (default spatialplan)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command."""
    from spatialplan.pipeline.write import OUTPUT_KINDS

    skip = {"map"} if args.no_map else set()
    skip |= {"layout"} if args.no_layout else set()
    if args.publish is not None:  # a bad URL (or a password in it) fails before the check
        from spatialplan.io.postgis import check_url

        args.publish = check_url(args.publish, where="--publish")
    plan = read_plan_from_args(args)
    return check_and_write(args, plan, outputs=[k for k in OUTPUT_KINDS if k not in skip])
