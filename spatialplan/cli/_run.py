"""Shared plumbing of the commands that read a plan, run the check and write deliverables."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Collection
from pathlib import Path

from spatialplan.cli._common import (
    add_out_argument,
    add_plan_argument,
    add_quiet_argument,
    setup_progress,
)
from spatialplan.errors import PlanError

__all__ = [
    "add_font_argument",
    "add_run_options",
    "check_and_write",
    "exit_code",
    "fails_on",
    "print_summary",
    "read_plan_from_args",
]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def add_run_options(parser: argparse.ArgumentParser, *, plan: bool = True,
                    fail_on: bool = True) -> None:
    """Add the options every plan-running command shares."""
    if plan:
        add_plan_argument(parser)
    add_out_argument(parser)
    parser.add_argument("--as-of", type=_date, metavar="DATE",
                        help="date for the schedule checks (YYYY-MM-DD; default: the plan's)")
    parser.add_argument("--rules", metavar="FILE",
                        help="rulebook TOML overriding the plan's and the defaults")
    parser.add_argument("--catalog", metavar="FILE",
                        help="facility catalogue CSV (the columns of facility_types.csv) "
                        "overriding the plan's and the bundled one")
    parser.add_argument("--crs", metavar="CRS",
                        help='analysis CRS, e.g. "EPSG:4545" (default: the plan\'s, or auto)')
    if fail_on:
        parser.add_argument("--fail-on", choices=("fail", "review"),
                            help="exit 1 when a project has this verdict (review includes fail)")
    add_quiet_argument(parser)


def add_font_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--font`` (the layout map's CJK font) to a command that draws the layout."""
    parser.add_argument("--font", metavar="PATH",
                        help="CJK font file (.otf/.ttf/.ttc) or family for the layout map "
                        "(default: a system CJK font, else the bundled Noto Sans SC)")


def read_plan_from_args(args: argparse.Namespace, plan_path: str | Path | None = None):
    """Read the plan named on the command line with the command-line overrides applied.

    ``--out`` (when the command has one) is checked right after the plan file is parsed,
    before any layer is read: a folder holding an input, a file, a read-only or system folder
    is refused before the work, not after it (:func:`spatialplan.io.output.check_output_dir`).
    """
    from spatialplan.io.plan import read_plan_spec
    from spatialplan.io.read import read_plan

    setup_progress(args)
    path = Path(plan_path or args.plan)
    if not path.exists():
        raise PlanError("the plan file does not exist", path=path,
                        hint="give the path of a plan.toml (see README: The plan file)")
    spec = read_plan_spec(path, plugin_roles=True)  # roles of plug-ins: checked by read_plan
    rules = getattr(args, "rules", None)
    catalog = getattr(args, "catalog", None)
    if getattr(args, "out", None):
        from spatialplan.io.output import check_output_dir

        check_output_dir(args.out, _spec_inputs(spec, rules, catalog))
    return read_plan(spec, as_of=getattr(args, "as_of", None), crs=getattr(args, "crs", None),
                     rules=rules, catalog=catalog)


def _spec_inputs(spec, rules: str | None, catalog: str | None = None) -> list[Path]:
    """Every local input file a parsed plan names (plan, layers, rasters, rulebooks, catalogues)."""
    paths = [spec.path] + [s.path for s in (*spec.layers.values(), *spec.rasters.values())]
    paths += [spec.rules_path, rules, spec.catalog_path, catalog]
    return [Path(p) for p in paths if p is not None and "://" not in str(p)]


def check_and_write(args: argparse.Namespace, plan, *, outputs: Collection[str]) -> int:
    """Run the check on ``plan``, write ``outputs`` into ``args.out``, print a summary."""
    from spatialplan.pipeline.run import run_check
    from spatialplan.pipeline.write import write_check

    font = getattr(args, "font", None)
    if font is not None and "layout" in outputs:
        from spatialplan.render.layout import find_cjk_font

        find_cjk_font(font)  # a bad --font fails before the check runs
    result = run_check(plan, engine=getattr(args, "engine", None) or "local",
                       scheduler=getattr(args, "scheduler", None),
                       n_workers=getattr(args, "workers", None))
    written = write_check(plan, result, args.out, outputs=outputs,
                          township=getattr(args, "township", None), font=font)
    published = _publish(args, result, written)
    print_summary(plan, result, written)
    for table in published:
        sys.stdout.write(f"  published {table}\n")
    return exit_code(result, getattr(args, "fail_on", None))


def _publish(args: argparse.Namespace, result, written: dict) -> list[str]:
    """With ``--publish URL``: write the result tables and manifest into PostGIS.

    After the files are committed: a failed publish exits 2 and leaves the database's previous
    tables (one transaction), the files of this run stay written.
    """
    url = getattr(args, "publish", None)
    if url is None:
        return []
    import json

    from spatialplan.pipeline.write import publish_check

    manifest = json.loads(written["manifest"].read_text(encoding="utf-8"))
    return publish_check(result, url, schema=args.schema, manifest=manifest)


def print_summary(plan, result, written) -> None:
    """Print what was checked and written (the CLI's only output on stdout).

    Control characters in names and paths are shown escaped
    (:func:`spatialplan.core._text.visible`).
    """
    from spatialplan.core._text import visible

    tol = ", ".join(f"{k}={v}" for k, v in result.tolerance.items())
    lines = [
        f"plan: {plan.name} ({plan.path})",
        f"analysis CRS: {plan.crs.to_string()} — {plan.crs_reason}",
        f"as of: {plan.as_of}; tolerance: {tol}",
        f"townships: {len(result.township_stats)}; line conflicts: "
        f"{len(result.line_conflicts)}",
    ]
    if result.township_conflicts is not None and len(result.township_conflicts):
        tc = result.township_conflicts
        lines.append(f"township overlaps/gaps: {len(tc)} ({tc['area_m2'].sum():,.2f} m²)")
    if result.projects is not None:
        lines.append(f"projects: {len(result.projects)}, verdicts: "
                     + ", ".join(f"{k} {v}" for k, v in result.verdict_counts().items()))
    lines.append("written:")
    lines += [f"  {path}" for path in written.values()]
    sys.stdout.write("\n".join(visible(line) for line in lines) + "\n")


def exit_code(result, fail_on: str | None) -> int:
    """0, or 1 when ``--fail-on`` names a verdict some project has (review includes fail)."""
    if result.projects is None:
        return 0
    return fails_on(result.verdict_counts(), fail_on)


def fails_on(verdicts: dict[str, int], fail_on: str | None) -> int:
    """1 when ``--fail-on`` names a verdict with projects in ``verdicts`` (review includes fail)."""
    if not fail_on:
        return 0
    bad = {"fail", "error"} if fail_on == "fail" else {"fail", "error", "review"}
    return int(any(verdicts.get(v, 0) for v in bad))
