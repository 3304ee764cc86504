"""Options and helpers shared by the CLI commands (plan argument, output folder, quiet flag).

Example
-------
>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_plan_argument(p); add_quiet_argument(p)
>>> p.parse_args(["plan.toml", "-q"]).quiet
True
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

from spatialplan.core._progress import show_progress

__all__ = [
    "add_json_argument",
    "add_out_argument",
    "add_plan_argument",
    "add_quiet_argument",
    "dump_json",
    "format_table",
    "setup_progress",
]


def add_plan_argument(parser: argparse.ArgumentParser) -> None:
    """Add the positional ``PLAN`` argument (a plan.toml)."""
    parser.add_argument("plan", metavar="PLAN", help="plan file (plan.toml)")


def add_out_argument(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Add ``--out DIR`` (the output folder; must not hold input data)."""
    parser.add_argument("--out", required=required, metavar="DIR",
                        help="output folder (created; must not hold input data)")


def add_quiet_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``-q/--quiet`` (no progress bars)."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--json`` (machine-readable output on stdout)."""
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON instead of tables")


def setup_progress(args: argparse.Namespace) -> None:
    """Show progress bars on an interactive stderr unless ``--quiet`` was given."""
    show_progress(not getattr(args, "quiet", False) and sys.stderr.isatty())


def format_table(df: pd.DataFrame, *, columns: list[str] | None = None) -> str:
    """Render a DataFrame as a plain-text table (no index) for the terminal.

    Example
    -------
    >>> print(format_table(pd.DataFrame({"a": [1]})))
     a
     1
    """
    if columns is not None:
        df = df[[c for c in columns if c in df.columns]]
    if df.empty:
        return "  (none)"
    return df.to_string(index=False)


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


def dump_json(data: Any) -> str:
    r"""Serialise ``data`` to JSON (dates, numpy scalars and paths handled; NaN → null).

    Example
    -------
    >>> dump_json({"n": float("nan")})
    '{\n  "n": null\n}'
    """
    return json.dumps(_nan_to_none(data), ensure_ascii=False, indent=2, default=_json_default)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    try:
        if value is not None and not isinstance(value, str | bool | int) and pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value
