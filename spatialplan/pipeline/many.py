"""Many plans in one run (``spatialplan check PLAN PLAN ... --out DIR``) and their roll-up.

Each plan is checked and written into a sub-folder of its own; a plan that fails (bad input)
is recorded with its error and the others go on. Over the plans that succeeded, the townships
are ranked inside their counties again and summed up per county: ``county_summary``,
``county_townships`` and ``runs`` (one row per plan) are written at the top of the folder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from spatialplan._version import __version__
from spatialplan.errors import OutputError, PlanError, SpatialPlanError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

__all__ = ["PlanRun", "check_many", "find_plans", "folder_names", "roll_up", "write_roll_up"]

#: the roll-up files at the top of the output folder, besides ``manifest.json``
ROLL_UP_FILES = ("county_summary.csv", "county_summary.xlsx", "county_townships.csv",
                 "county_townships.xlsx", "runs.csv")


@dataclasses.dataclass
class PlanRun:
    """One plan of a run over many: where its outputs went, or why it failed.

    Attributes
    ----------
    plan
        The plan file.
    folder
        Its output sub-folder (written only when the plan succeeded).
    error
        The one-paragraph error of a plan that failed, else ``None``.
    township_stats
        Its ``township_stats`` with the township indicators (``None`` when it failed).
    verdicts
        Its projects per verdict.
    """

    plan: Path
    folder: Path
    error: str | None = None
    township_stats: pd.DataFrame | None = None
    verdicts: dict[str, int] = dataclasses.field(default_factory=dict)


def find_plans(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """List the plan files named: files as given, folders by the plans they hold.

    A folder holds the ``plan.toml`` of each sub-folder and each ``*.toml`` directly in it
    that has a ``[layers]`` table (a rulebook beside the plans is not a plan).

    Raises
    ------
    PlanError
        A path that does not exist, or a folder holding no plan.
    """
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_file():
            found.append(given)
            continue
        if not given.is_dir():
            raise PlanError("the plan file or folder does not exist", path=given,
                            hint="give plan.toml files or folders holding them")
        inside = sorted(given.glob("*/plan.toml"))
        for toml in sorted(given.glob("*.toml")):
            try:
                with toml.open("rb") as f:
                    if "layers" in tomllib.load(f):
                        inside.append(toml)
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                inside.append(toml)  # checked (and reported) as a plan like any other
        if not inside:
            raise PlanError("the folder holds no plan (no */plan.toml, no *.toml with "
                            "[layers])", path=given, hint="name the plan files themselves")
        found += sorted(inside)
    return list(dict.fromkeys(p.resolve() for p in found))


def folder_names(plans: Sequence[Path]) -> list[str]:
    """Name each plan's output sub-folder: the file's stem, or its folder's for ``plan.toml``.

    Characters other than letters, digits, ``-``, ``_`` and ``.`` become ``_``; a name used
    twice gets ``-2``, ``-3``...

    Examples
    --------
    >>> folder_names([Path("a/520111/plan.toml"), Path("b/520111/plan.toml"), Path("x y.toml")])
    ['520111', '520111-2', 'x_y']
    """
    names: list[str] = []
    for plan in plans:
        base = plan.parent.name if plan.stem == "plan" and plan.parent.name else plan.stem
        base = re.sub(r"[^\w.-]", "_", base).strip(".") or "plan"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def check_many(plans: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
               outputs: Collection[str] | None = None, as_of: Any = None,
               rules: str | os.PathLike | None = None, crs: str | None = None,
               engine: str = "local", **engine_options: Any) -> list[PlanRun]:
    """Check every plan into a sub-folder of ``out_dir``, then write the roll-up over them.

    Parameters
    ----------
    plans
        Plan files, or folders holding them (:func:`find_plans`).
    out_dir
        The output folder: one sub-folder per plan (:func:`folder_names`), and the roll-up
        files (:data:`ROLL_UP_FILES`, ``manifest.json``) at its top.
    outputs
        The deliverables of each plan (default: all of
        :data:`spatialplan.pipeline.write.OUTPUT_KINDS`).
    as_of, rules, crs
        As for :func:`spatialplan.read_plan`, for every plan.
    engine, **engine_options
        As for :func:`spatialplan.run_check`.

    Returns
    -------
    list of PlanRun
        One per plan, in order; a plan that failed carries its error and no outputs.
    """
    from spatialplan.io.read import read_plan
    from spatialplan.pipeline.engine import DEFERRED_ROLES
    from spatialplan.pipeline.run import run_check
    from spatialplan.pipeline.write import OUTPUT_KINDS, write_check

    deferred = DEFERRED_ROLES if engine == "dask" else ()  # the partitions read them

    files = find_plans(plans)
    out = Path(out_dir).resolve()
    holding = [p for p in files if out == p.parent or out in p.parents]
    if holding:
        raise OutputError(f"the output folder holds the plan {holding[0]}: the plans' outputs "
                          "would be written among their inputs", path=out,
                          hint="choose an output folder outside the plans' folders")
    runs = [PlanRun(plan=p, folder=out / name) for p, name in zip(files, folder_names(files),
                                                                   strict=True)]
    for i, run in enumerate(runs, 1):
        log.info("plan %d of %d: %s → %s", i, len(runs), run.plan, run.folder)
        try:
            plan = read_plan(run.plan, as_of=as_of, crs=crs, defer=deferred,
                             rules=None if rules is None else Path(rules))
            result = run_check(plan, engine=engine, **engine_options)
            write_check(plan, result, run.folder,
                        outputs=OUTPUT_KINDS if outputs is None else outputs)
        except SpatialPlanError as exc:
            run.error = str(exc)
            log.error("plan %s failed: %s", run.plan, exc)
            continue
        run.township_stats = pd.DataFrame(result.township_stats.drop(columns="geometry"))
        run.verdicts = result.verdict_counts()
    write_roll_up(runs, out)
    return runs


def roll_up(runs: Sequence[PlanRun]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank the townships of all the plans in their counties and sum them up per county.

    Returns
    -------
    (county_summary, county_townships)
        The county rows (:func:`spatialplan.analysis.rollup.county_summary`) and every
        township of the plans that succeeded with its ``plan``, ``county_code`` and
        ``county_rank`` (recomputed over all the plans: a county spread over two plans is
        one county).
    """
    from spatialplan.analysis import rollup
    from spatialplan.analysis.overlay import STAT_LINES

    frames = [r.township_stats.assign(plan=str(r.plan)) for r in runs
              if r.township_stats is not None]
    if not frames:
        return pd.DataFrame(columns=list(rollup.COUNTY_COLUMNS)), pd.DataFrame()
    towns = pd.concat(frames, ignore_index=True)
    twice = towns["township_code"].astype(str).duplicated(keep=False)
    if twice.any():
        codes = sorted(set(towns.loc[twice, "township_code"].astype(str)))
        log.warning("%d townships are in more than one plan and are counted once for each in "
                    "the county roll-up: %s", len(codes),
                    ", ".join(codes[:10]) + (" ..." if len(codes) > 10 else ""))
    towns["county_rank"] = rollup.rank_in_county(towns)
    counties = rollup.county_summary(
        towns, lines=[c for c in STAT_LINES if f"{c}_m2" in towns.columns])
    front = ["plan", "county_code", "county_rank", "township_code", "township_name"]
    towns = towns.sort_values(["county_code", "county_rank", "township_code"], kind="stable")
    return counties, towns[front + [c for c in towns.columns if c not in front]]


def write_roll_up(runs: Sequence[PlanRun], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the roll-up files and ``manifest.json`` at the top of ``out_dir``, all or nothing."""
    from spatialplan.io import output
    from spatialplan.render._labels import chinese_headers, county_headers

    counties, towns = roll_up(runs)
    listing = pd.DataFrame([{
        "plan": str(r.plan), "folder": r.folder.name, "status": "error" if r.error else "ok",
        "error": r.error or "", **{f"n_{k}": v for k, v in r.verdicts.items()}}
        for r in runs])
    for column in [c for c in listing.columns if c.startswith("n_")]:
        listing[column] = listing[column].astype("Int64")
    out = Path(out_dir)
    with output.staged_output(out) as stage:
        for name, table, sheet in (("county_summary", counties, "县域汇总"),
                                   ("county_townships", towns, "县内乡镇排名")):
            labelled = (county_headers if name == "county_summary" else chinese_headers)(table)
            output.write_table(labelled, stage / f"{name}.csv")
            output.write_table(output.fit_excel_cells(labelled, full_text_in=f"{name}.csv"),
                               stage / f"{name}.xlsx", sheet_name=sheet)
        output.write_table(listing, stage / "runs.csv")
        manifest = {"command": "check", "spatialplan": __version__,
                    "plans": [{"plan": str(r.plan), "folder": r.folder.name,
                               "error": r.error} for r in runs],
                    "counts": {"plans": len(runs), "failed": sum(bool(r.error) for r in runs),
                               "counties": len(counties), "townships": len(towns)},
                    "outputs": {name: {"file": name,
                                       "sha256": output.sha256_file(stage / name)}
                                for name in ROLL_UP_FILES}}
        output.write_json(manifest, stage / "manifest.json")
    return {name: out / name for name in (*ROLL_UP_FILES, "manifest.json")}
