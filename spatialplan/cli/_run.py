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
    "summarize",
    "write_results",
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
                     rules=rules, catalog=catalog, defer=_deferred(args))


def _deferred(args: argparse.Namespace) -> tuple[str, ...]:
    """Return the roles the dask engine's driver only opens (its partitions read their features)."""
    if getattr(args, "engine", None) != "dask":
        return ()
    from spatialplan.pipeline.engine import DEFERRED_ROLES

    return DEFERRED_ROLES


def _spec_inputs(spec, rules: str | None, catalog: str | None = None) -> list[Path]:
    """Every local input file a parsed plan names (plan, layers, rasters, rulebooks, catalogues)."""
    paths = [spec.path] + [s.path for s in (*spec.layers.values(), *spec.rasters.values())]
    paths += [spec.rules_path, rules, spec.catalog_path, catalog]
    return [Path(p) for p in paths if p is not None and "://" not in str(p)]


def check_and_write(args: argparse.Namespace, plan, *, outputs: Collection[str]) -> int:
    """Run the check on ``plan``, write ``outputs`` into ``args.out``, print a summary.

    With ``--engine dask`` the outputs are written (and published) by a dask worker, where the
    partitions' rows are combined (:func:`spatialplan.pipeline.engine.run_check_dask`'s
    ``on_worker``): this process never holds the result tables.
    """
    from functools import partial

    from spatialplan.pipeline.run import run_check

    font = getattr(args, "font", None)
    if font is not None and "layout" in outputs:
        from spatialplan.render.layout import find_cjk_font

        find_cjk_font(font)  # a bad --font fails before the check runs
    write = partial(write_results, out=Path(args.out), outputs=tuple(outputs),
                    township=getattr(args, "township", None), font=font,
                    publish=getattr(args, "publish", None),
                    schema=getattr(args, "schema", None) or "spatialplan")
    if getattr(args, "engine", None) == "dask":
        from spatialplan.pipeline.engine import run_check_dask

        summary, written, published = run_check_dask(  # a worker may run elsewhere: no cwd
            plan, scheduler=getattr(args, "scheduler", None),
            n_workers=getattr(args, "workers", None),
            on_worker=partial(write, out=Path(args.out).resolve()))
    else:
        summary, written, published = write(plan, run_check(plan))
    print_summary(plan, summary, written)
    for table in published:
        sys.stdout.write(f"  published {table}\n")
    return exit_code(summary, getattr(args, "fail_on", None))


def write_results(plan, result, *, out: Path, outputs: Collection[str], township: str | None,
                  font: str | None, publish: str | None, schema: str
                  ) -> tuple[dict, dict[str, Path], list[str]]:
    """Write (and with ``publish``, publish) a check's outputs; return what the CLI prints.

    Returns the :func:`summarize` of the result, the files written and the tables published.
    A module-level function: the dask engine runs it on a worker.
    """
    from spatialplan.pipeline.write import write_check

    written = write_check(plan, result, out, outputs=outputs, township=township, font=font)
    published = _publish(publish, schema, result, written)
    return summarize(result), written, published


def _publish(url: str | None, schema: str, result, written: dict) -> list[str]:
    """With ``--publish URL``: write the result tables and manifest into PostGIS.

    After the files are committed: a failed publish exits 2 and leaves the database's previous
    tables (one transaction), the files of this run stay written.
    """
    if url is None:
        return []
    import json

    from spatialplan.pipeline.write import publish_check

    manifest = json.loads(written["manifest"].read_text(encoding="utf-8"))
    return publish_check(result, url, schema=schema, manifest=manifest)


def summarize(result) -> dict:
    """Return the figures :func:`print_summary` and :func:`exit_code` need, from a result.

    Keys: ``tolerance``, ``townships``, ``line_conflicts`` (row counts), ``township_conflicts``
    (``(rows, m²)`` or None), ``projects`` (count or None) and ``verdicts`` (or None).
    """
    tc = result.township_conflicts
    has_projects = result.projects is not None
    return {
        "tolerance": dict(result.tolerance),
        "townships": len(result.township_stats),
        "line_conflicts": len(result.line_conflicts),
        "township_conflicts": (len(tc), float(tc["area_m2"].sum()))
        if tc is not None and len(tc) else None,
        "projects": len(result.projects) if has_projects else None,
        "verdicts": result.verdict_counts() if has_projects else None,
    }


def print_summary(plan, summary: dict, written) -> None:
    """Print what was checked (a :func:`summarize` dict) and written; the CLI's stdout.

    Control characters in names and paths are shown escaped
    (:func:`spatialplan.core._text.visible`).
    """
    from spatialplan.core._text import visible

    tol = ", ".join(f"{k}={v}" for k, v in summary["tolerance"].items())
    lines = [
        f"plan: {plan.name} ({plan.path})",
        f"analysis CRS: {plan.crs.to_string()} — {plan.crs_reason}",
        f"as of: {plan.as_of}; tolerance: {tol}",
        f"townships: {summary['townships']}; line conflicts: {summary['line_conflicts']}",
    ]
    if summary["township_conflicts"] is not None:
        n, area = summary["township_conflicts"]
        lines.append(f"township overlaps/gaps: {n} ({area:,.2f} m²)")
    if summary["projects"] is not None:
        lines.append(f"projects: {summary['projects']}, verdicts: "
                     + ", ".join(f"{k} {v}" for k, v in summary["verdicts"].items()))
    lines.append("written:")
    lines += [f"  {path}" for path in written.values()]
    sys.stdout.write("\n".join(visible(line) for line in lines) + "\n")


def exit_code(summary: dict, fail_on: str | None) -> int:
    """0, or 1 when ``--fail-on`` names a verdict some project has (review includes fail).

    ``summary``: :func:`summarize` of the result.
    """
    if summary["verdicts"] is None:
        return 0
    return fails_on(summary["verdicts"], fail_on)


def fails_on(verdicts: dict[str, int], fail_on: str | None) -> int:
    """1 when ``--fail-on`` names a verdict with projects in ``verdicts`` (review includes fail)."""
    if not fail_on:
        return 0
    bad = {"fail", "error"} if fail_on == "fail" else {"fail", "error", "review"}
    return int(any(verdicts.get(v, 0) for v in bad))
