"""Command-line interface: ``spatialplan COMMAND``.

Each command lives in its own small module exposing ``register(subparsers)``; the module's
``run(args) -> int`` calls one library function. Errors of the :class:`SpatialPlanError`
family become a one-paragraph message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from spatialplan._version import __version__
from spatialplan.errors import SpatialPlanError

__all__ = ["main", "build_parser"]

#: command modules, in the order ``--help`` lists them
COMMANDS = ("demo", "check", "validate", "stats", "terrain", "map", "layout", "schedule",
            "import_txt")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available command registered."""
    parser = argparse.ArgumentParser(
        prog="spatialplan",
        description="Township spatial planning checks: three control lines, 8+X facility "
        "siting, layout maps and construction schedules (三条控制线 · 8+X 项目选址核查).",
    )
    parser.add_argument("--version", action="version", version=f"spatialplan {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"spatialplan.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"spatialplan.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


class _VisibleFormatter(logging.Formatter):
    """Log lines with every control character made visible (:func:`spatialplan._text.visible`):
    a plan name or a GDAL message cannot send escape sequences to the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        from spatialplan._text import visible

        return visible(super().format(record))


def _configure_logging(*, verbose: bool) -> None:
    """spatialplan's own messages on stderr (INFO, or DEBUG with -v); other libraries' warnings.

    Every line goes through :class:`_VisibleFormatter` (control characters escaped)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_VisibleFormatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("spatialplan").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (0 ok, 1 ``--fail-on`` hit, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(verbose=args.verbose)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SpatialPlanError as exc:
        from spatialplan._text import visible

        sys.stderr.write(f"spatialplan: error: {visible(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("spatialplan: interrupted; no output was left half-written\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
