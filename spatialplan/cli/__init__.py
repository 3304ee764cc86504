"""Command-line interface: ``spatialplan COMMAND``.

Each command lives in its own small module exposing ``register(subparsers)``; the module's
``run(args) -> int`` calls one library function. Errors of the :class:`SpatialPlanError`
family become a one-paragraph message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

from spatialplan._version import __version__
from spatialplan.errors import SpatialPlanError

__all__ = ["build_parser", "main"]

#: command modules, in the order ``--help`` lists them
COMMANDS = ("demo", "check", "validate", "stats", "terrain", "map", "layout", "schedule",
            "compare", "import_txt")


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
    """Format log lines with every control character made visible.

    (:func:`spatialplan.core._text.visible`): a plan name or a GDAL message cannot send
    escape sequences to the terminal.
    """

    def format(self, record: logging.LogRecord) -> str:
        from spatialplan.core._text import visible

        return visible(super().format(record))


def _configure_logging(*, verbose: bool) -> None:
    """Log spatialplan's own messages on stderr (INFO, or DEBUG with -v); other libraries' warnings.

    Every line goes through :class:`_VisibleFormatter` (control characters escaped).
    """
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
        with _stop_signals_interrupt():
            return int(args.func(args) or 0)
    except SpatialPlanError as exc:
        from spatialplan.core._text import visible

        sys.stderr.write(f"spatialplan: error: {visible(exc)}\n")
        return 2
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            sys.stderr.write(f"spatialplan: stopped by {signal.Signals(signum).name}; "
                             "nothing was left half-written: the output folder holds the "
                             "previous run's files (or, if this run had finished writing, all "
                             "of its files) and no temporary files\n")
        return 128 + signum


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that every writer cleans up the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """Raise :class:`Stopped` (a ``KeyboardInterrupt``) in the block on SIGTERM and SIGHUP.

    As Ctrl-C does: staging folders are removed and a folder the run created too. A SIGKILL
    cannot be caught; the next run into the folder removes what it left.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, _raise_stopped)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
