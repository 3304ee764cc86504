"""``spatialplan check PLAN --out DIR``: the full check and every deliverable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spatialplan.cli._run import (
    add_font_argument,
    add_run_options,
    check_and_write,
    read_plan_from_args,
)
from spatialplan.errors import PlanError

__all__ = ["register", "run"]


def register(sub) -> None:
    """Add the ``check`` command."""
    p = sub.add_parser(
        "check",
        help="check a plan (or many): control lines, 8+X siting, schedule, maps and report",
        description="Read the plan, overlay the three control lines on the townships, check "
        "every 8+X project site against the rulebook and write results.gpkg, report.html, "
        "map.html, layout.pdf/png, schedule.xlsx/csv, county_summary.csv/.xlsx and "
        "manifest.json into --out. With several plans (or a folder of plans: its */plan.toml "
        "and its *.toml with [layers]), each plan goes into a sub-folder of --out and the "
        "county roll-up over all of them (county_summary, county_townships, runs.csv) to its "
        "top; a plan that fails is reported and the others go on (exit 2 if any failed).",
    )
    p.add_argument("plan", metavar="PLAN", nargs="+",
                   help="plan file (plan.toml), several, or a folder of plans")
    add_run_options(p, plan=False)
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
    outputs = [k for k in OUTPUT_KINDS if k not in skip]
    many = len(args.plan) > 1 or Path(args.plan[0]).is_dir()
    if args.publish is not None:  # a bad URL (or a password in it) fails before the check
        from spatialplan.io.postgis import check_url

        if many:
            raise PlanError("--publish takes one plan: the result tables of several plans "
                            "would replace each other in the schema",
                            hint="publish each plan with its own check ... --publish URL "
                            "--schema NAME")
        args.publish = check_url(args.publish, where="--publish")
    if many:
        return _run_many(args, outputs)
    plan = read_plan_from_args(args, args.plan[0])
    return check_and_write(args, plan, outputs=outputs)


def _run_many(args: argparse.Namespace, outputs: list[str]) -> int:
    """Check several plans into sub-folders of ``--out`` and write their roll-up."""
    from spatialplan.cli._common import setup_progress
    from spatialplan.cli._run import fails_on
    from spatialplan.core._text import visible
    from spatialplan.pipeline.many import check_many

    setup_progress(args)
    if args.font is not None and "layout" in outputs:
        from spatialplan.render.layout import find_cjk_font

        find_cjk_font(args.font)
    runs = check_many(args.plan, args.out, outputs=outputs, as_of=args.as_of, rules=args.rules,
                      crs=args.crs, engine=args.engine, scheduler=args.scheduler,
                      n_workers=args.workers)
    lines = [f"plans: {len(runs)}, failed: {sum(bool(r.error) for r in runs)}"]
    for r in runs:
        state = f"error: {r.error}" if r.error else ", ".join(
            f"{k} {v}" for k, v in r.verdicts.items())
        lines.append(f"  {r.folder.name}: {r.plan} — {state}")
    lines.append(f"roll-up: {Path(args.out) / 'county_summary.csv'}")
    sys.stdout.write("\n".join(visible(line) for line in lines) + "\n")
    if any(r.error for r in runs):
        return 2
    return max((fails_on(r.verdicts, args.fail_on) for r in runs), default=0)
