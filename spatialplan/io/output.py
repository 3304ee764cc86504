"""Writing results: atomically, checked, never over an input.

Every file is written to a temporary name beside its target, read back and checked, then moved
into place with :func:`os.replace`. A whole run writes into a staging folder inside the output
folder (:func:`staged_output`) and moves its files into place only when every one succeeded, so
an interrupted or failed run leaves the previous outputs or nothing, never a half-written file.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import functools
import hashlib
import importlib.util
import io
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from spatialplan.errors import OutputError, SpatialPlanError

__all__ = [
    "atomic_path",
    "check_csv",
    "check_output_dir",
    "check_xlsx",
    "column_widths",
    "defuse_formula",
    "defuse_formulas",
    "fit_excel_cells",
    "os_error_cause",
    "output_error",
    "sha256_file",
    "staged_output",
    "write_json",
    "write_results",
    "write_table",
]

log = logging.getLogger(__name__)

_STAGING_PREFIX = ".spatialplan-staging-"

#: a staging folder's name: the prefix, the PID and host of the run that owns it, a random part
#: (so the next run can tell the folders of dead runs from those of a run still writing)
_STAGING_NAME = re.compile(r"^\.spatialplan-staging-(?P<pid>[0-9]+)-(?P<host>[A-Za-z0-9._]*)-"
                           r"(?P<rest>[a-z0-9_]+)$")

#: a staging folder without PID (an older spatialplan, or a host where PIDs are not checked)
#: is taken for a dead run's once it has not changed for this long
_UNOWNED_STAGING_AGE_S = 3600.0

#: inside the staging folder: the previous run's files, kept until the commit has finished
_BACKUP = ".previous"

#: folders that are views of the running system: nothing is ever written there (but
#: ``/dev/shm``, an ordinary memory-backed folder)
_SYSTEM_DIRS = ("/proc", "/sys", "/dev")
_ORDINARY_UNDER_SYSTEM = ("/dev/shm",)  # noqa: S108 (a path compared, not used)

#: what an OSError means, in words, and what to do about it
_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free disk space or choose an --out folder on another "
                   "disk"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space in your quota or choose another "
                   "--out folder"),
    errno.EFBIG: ("the file is larger than this system allows", "choose an --out folder on "
                  "another file system"),
    errno.EROFS: ("the folder is on a read-only file system", "choose an --out folder on a "
                  "writable disk"),
    errno.EACCES: ("permission denied", "choose an --out folder you may write to, and close "
                   "the file in any program holding it open (e.g. Excel)"),
    errno.EPERM: ("the operation is not permitted", "choose an --out folder you may write to"),
    errno.EBUSY: ("the file is in use", "close it in the program holding it open (e.g. Excel)"),
    errno.EISDIR: ("a folder has that name", "move or rename the folder"),
    errno.ENOTDIR: ("a file stands where a folder is needed", "choose another --out folder"),
    errno.EXDEV: ("the file would cross file systems", "do not mount another file system "
                  "inside the output folder"),
    errno.EIO: ("the disk reported an input/output error", "check the disk"),
}

#: GDAL reports some OSErrors as text only
_CAUSE_TEXTS = (("No space left on device", errno.ENOSPC), ("Read-only file system", errno.EROFS),
                ("Permission denied", errno.EACCES), ("Disk quota exceeded", errno.EDQUOT),
                ("File too large", errno.EFBIG))


def os_error_cause(exc: BaseException) -> tuple[str, str | None]:
    """Say what an OSError (or a GDAL error carrying one's text) means, and what to do about it.

    Examples
    --------
    >>> os_error_cause(OSError(28, "No space left on device"))[0]
    'the disk is full (No space left on device)'
    """
    code = getattr(exc, "errno", None)
    text = str(getattr(exc, "strerror", None) or exc)
    if code not in _CAUSES:
        code = next((c for pattern, c in _CAUSE_TEXTS if pattern in str(exc)), code)
    if code not in _CAUSES:
        return text, None
    cause, hint = _CAUSES[code]
    return f"{cause} ({text})", hint


def output_error(exc: BaseException, path: str | os.PathLike, *,
                 action: str = "write") -> OutputError:
    """Build an :class:`OutputError` naming the file, the cause of ``exc`` in words and the fix."""
    cause, hint = os_error_cause(exc)
    return OutputError(f"cannot {action} {Path(path).name}: {cause}", path=path, hint=hint)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary name keeps the target's suffix so that format drivers recognise it. On any
    exception (including ``KeyboardInterrupt``) the temporary file is removed and the target is
    left as it was; an :class:`OSError` (a full disk, a read-only folder) becomes an
    :class:`OutputError` naming the file and the cause.

    Parameters
    ----------
    path
        The final file path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("ok")
    >>> target.read_text()
    'ok'
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}",
                                    dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(exc, target) from exc
    tmp = Path(name)
    tmp.unlink()  # writers (GDAL) want to create the file themselves
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError("the writer produced no file", path=target)
        os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise output_error(exc, target) from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    """Remove a file or folder if it exists (cleanup helper that never raises)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def check_output_dir(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> Path:
    """Refuse an output folder that cannot take the outputs, before any work is done.

    Refused: a folder holding an input (writing there could overwrite it), a path that is a
    file or lies below a file, a folder under ``/proc``, ``/sys`` or ``/dev`` (``/dev/shm``
    is allowed), and a folder (or,
    when it does not exist yet, its nearest existing parent) on a read-only file system or
    without write permission. Nothing is created.

    Parameters
    ----------
    out_dir
        The folder outputs will be written to (created later, by :func:`staged_output`).
    inputs
        Every input file of the run (layers, rasters, plan, rulebook).

    Returns
    -------
    Path
        The resolved output folder.

    Raises
    ------
    OutputError
        Naming the folder, why it cannot be used and what to do.
    """
    out = Path(out_dir).resolve()
    for root in _SYSTEM_DIRS:
        if _within(out, root) and not any(_within(out, ok) for ok in _ORDINARY_UNDER_SYSTEM):
            raise OutputError(f"the output folder is inside {root}, a view of the running "
                              "system, not a place for files", path=out,
                              hint="choose an ordinary folder with --out")
    if out.exists() and not out.is_dir():
        raise OutputError("the output path exists and is not a folder", path=out,
                          hint="name a folder with --out")
    for item in inputs:
        src = Path(item).resolve()
        if src == out or out in src.parents:
            raise OutputError(
                f"the output folder contains the input {src.name}; writing there could "
                "overwrite it",
                path=out,
                hint="choose an output folder that holds no input data",
            )
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"the output folder cannot be created: {existing} is a file",
                          path=out, hint="choose another folder with --out")
    if _read_only(existing):
        raise OutputError("the output folder is on a read-only file system", path=existing,
                          hint="choose an --out folder on a writable disk")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError("no permission to write in the output folder", path=existing,
                          hint="choose an --out folder you may write to")
    return out


def _within(path: Path, folder: str) -> bool:
    return path == Path(folder) or Path(folder) in path.parents


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only (False where unknown)."""
    if not hasattr(os, "statvfs"):
        return False
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder; on success commit its files into ``out_dir`` as one run.

    The folder holds the whole previous run or the whole new one, never a mix:

    - before the first move every target is checked (one that is a folder refuses the run);
    - the previous files are moved aside into the staging folder, the new ones into place
      (``manifest.json`` last); a failure at any move puts every file back as it was and
      raises :class:`OutputError` ("nothing was changed");
    - when the run writes a ``manifest.json``, the files the previous manifest lists, that this
      run did not write and whose sha256 still matches (so spatialplan wrote them and nobody
      changed them since) go too: a run never leaves an earlier run's map beside its results;
    - SIGINT, SIGTERM and SIGHUP wait until the moves (or their undoing) are done.

    A failed or interrupted run removes its staging folder, and the output folder too when
    this run created it. Staging folders of dead runs (a killed process cannot clean up) are
    removed, with a warning, by the next run into the same folder.

    Raises
    ------
    OutputError
        A target that cannot be replaced, a failed move (after undoing the others), or a
        writer's error, naming the final file rather than its temporary copy.
    """
    out = Path(out_dir)
    created = _missing_dirs(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(), dir=out))
    except OSError as exc:
        _remove_created(created)
        raise output_error(exc, out, action="create a folder in") from exc
    keep = committed = False
    try:
        try:
            yield staging
        except OSError as exc:
            where = Path(exc.filename) if isinstance(exc.filename, (str, os.PathLike)) else None
            error = (output_error(exc, where) if where else
                     output_error(exc, out, action="write into"))
            raise _published(error, staging, out) from exc
        except SpatialPlanError as exc:
            raise _published(exc, staging, out) from exc
        try:
            _commit(staging, out)
        except _Unrestored:
            keep = True  # it holds previous files that could not be put back
            raise
        committed = True
    finally:
        if not keep:
            _remove(staging)
        if not committed:
            _remove_created(created)


def _staging_prefix() -> str:
    """Return the staging prefix of this run: ``.spatialplan-staging-<pid>-<host>-``."""
    return f"{_STAGING_PREFIX}{os.getpid()}-{_host()}-"


@functools.cache
def _host() -> str:
    """Return the machine's name as it may stand in a staging folder's name."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64]


def _missing_dirs(out: Path) -> list[Path]:
    """``out`` and its parents that do not exist yet, deepest first."""
    missing = []
    path = Path(os.path.abspath(out))
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_created(created: Sequence[Path]) -> None:
    """Remove the folders a failed run created, deepest first, as long as they are empty."""
    for path in created:
        try:
            path.rmdir()
        except OSError:
            return


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` runs on this machine (None where that cannot be told)."""
    if os.name != "posix":
        return None  # os.kill(pid, 0) would end the process on Windows
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists (another user's) or cannot be probed
        return True
    return True


def _remove_dead_staging(out: Path) -> list[str]:
    """Remove staging folders left in ``out`` by runs that are dead; log them; return names.

    A folder whose name carries this host and the PID of a process that no longer runs is
    removed; one of a live process (a concurrent run) or of another host is left alone; one
    without a PID (an older spatialplan) is removed once unchanged for an hour.
    """
    removed = []
    with contextlib.suppress(OSError):
        entries = [p for p in out.iterdir() if p.name.startswith(_STAGING_PREFIX)]
        for entry in entries:
            if entry.is_symlink() or not entry.is_dir():
                continue
            match = _STAGING_NAME.match(entry.name)
            alive = None
            if match and match["host"] == _host():
                alive = _pid_alive(int(match["pid"]))
            elif match:
                continue  # another machine's run (a shared folder): not ours to judge
            if alive is None:
                alive = time.time() - entry.stat().st_mtime < _UNOWNED_STAGING_AGE_S
            if not alive:
                _remove(entry)
                if not entry.exists():
                    removed.append(entry.name)
    if removed:
        log.warning("removed %d staging folder(s) left in %s by interrupted runs: %s",
                    len(removed), out, ", ".join(sorted(removed)))
    return removed


#: a temporary file of :func:`atomic_path`: ``.<stem>.<random>.tmp<suffix>``
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>.*)$")


def _published(exc: SpatialPlanError, staging: Path, out: Path) -> SpatialPlanError:
    """Return ``exc`` naming the output file instead of its copy in the staging folder.

    The message also says that the output folder was not changed.
    """
    path = exc.path
    message = exc.message
    if path and (Path(path) == staging or staging in Path(path).parents):
        name = Path(path).name
        match = _TEMPORARY.match(name)
        final = out / (match["stem"] + match["suffix"] if match else name)
        message = message.replace(str(Path(path)), str(final)).replace(str(staging), str(out))
        path = str(final)
    elif not isinstance(exc, OutputError):
        return exc
    message = message.replace(str(staging), str(out))
    if "nothing in" not in message:
        message += f"; nothing in {out} was changed"
    new = type(exc)(message, path=path, layer=exc.layer, feature=exc.feature, hint=exc.hint)
    return new


class _Unrestored(OutputError):
    """A failed commit could not put every previous file back: keep the staging folder."""


def _commit(staging: Path, out: Path) -> None:
    """Move the staging folder's files into ``out`` as one run (see :func:`staged_output`).

    When undoing a failed move fails too, the staging folder (holding the previous files that
    could not be put back) is renamed ``.spatialplan-recovery-*`` so that no later run removes
    it, and :class:`_Unrestored` names it.
    """
    new = sorted((p.name for p in staging.iterdir() if p.name != _BACKUP),
                 key=lambda name: (name == "manifest.json", name))
    stale = _stale_outputs(out, new) if "manifest.json" in new else []
    _check_targets(out, new + stale)
    backup = staging / _BACKUP
    backup.mkdir()
    moved: list[tuple[Path, Path]] = []
    with _signals_deferred():
        try:
            for name in new:
                target = out / name
                if os.path.lexists(target):
                    _move(target, backup / name, moved)
                _move(staging / name, target, moved)
            for name in stale:
                _move(out / name, backup / name, moved)
        except BaseException as exc:
            failed = _undo(moved)
            if failed:
                kept = _keep_recovery(staging, out)
                raise _Unrestored(
                    f"moving the new files into place failed ({exc}) and "
                    f"{', '.join(dict.fromkeys(failed))} could not be put back; the previous "
                    f"files are in {kept / _BACKUP}", path=out,
                    hint="move the files from that folder back into the output folder") from exc
            if isinstance(exc, OSError):
                name = Path(exc.filename or "").name or "a file"
                cause, hint = os_error_cause(exc)
                raise OutputError(f"cannot move {name} into place: {cause}; every file was put "
                                  f"back, nothing in {out} was changed", path=out,
                                  hint=hint) from exc
            raise
    if stale:
        log.info("removed %d file(s) of the previous run that this run did not write: %s",
                 len(stale), ", ".join(stale))


def _move(src: Path, dst: Path, moved: list[tuple[Path, Path]]) -> None:
    os.replace(src, dst)
    moved.append((src, dst))


def _undo(moved: Sequence[tuple[Path, Path]]) -> list[str]:
    """Undo renames, last first; return the names that could not be moved back."""
    failed = []
    for src, dst in reversed(moved):
        try:
            os.replace(dst, src)
        except OSError:
            failed.append(src.name)
    return failed


def _keep_recovery(staging: Path, out: Path) -> Path:
    """Rename a staging folder that holds files needed to recover, so no run removes it."""
    kept = out / f".spatialplan-recovery-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    try:
        os.replace(staging, kept)
    except OSError:
        return staging
    return kept


def _check_targets(out: Path, names: Sequence[str]) -> None:
    """Refuse the commit before the first move when a target cannot be replaced."""
    folders = [name for name in names
               if (out / name).is_dir() and not (out / name).is_symlink()]
    if folders:
        raise OutputError(
            f"cannot replace {', '.join(folders)} in the output folder: "
            f"{'it is a folder' if len(folders) == 1 else 'they are folders'}; nothing in "
            f"{out} was changed", path=out / folders[0],
            hint="move or rename it, or choose another --out folder")
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"no permission to write in the output folder; nothing in {out} "
                          "was changed", path=out, hint="choose an --out folder you may write to")


def _stale_outputs(out: Path, new: Sequence[str]) -> list[str]:
    """List the files of the previous run that this run does not write and that are unchanged.

    The previous run's files are those of its ``manifest.json``, unchanged since as their sha256
    says; others are named in a warning and left alone.
    """
    previous = out / "manifest.json"
    try:
        data = json.loads(previous.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        log.warning("%s cannot be read; the files of the previous run it lists are left as "
                    "they are", previous)
        return []
    entries = data.get("outputs") if isinstance(data, dict) else None
    stale = set()
    for entry in (entries.values() if isinstance(entries, dict) else []):
        name = entry.get("file") if isinstance(entry, dict) else None
        if (not isinstance(name, str) or name in new or name != Path(name).name
                or name.startswith(".") or "\\" in name or name == "manifest.json"):
            continue
        target = out / name
        if target.is_symlink() or not target.is_file():
            continue
        digest = entry.get("sha256")
        if not isinstance(digest, str):
            log.warning("%s is from an earlier run (its manifest gives no checksum) and this "
                        "run did not write it; it is left in place", target)
        elif sha256_file(target) != digest:
            log.warning("%s is from an earlier run but was changed since; this run did not "
                        "write it and leaves it in place", target)
        else:
            stale.add(name)
    return sorted(stale)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block has finished, then deliver them.

    The commit's moves, or their undoing, are never cut in half. Main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not None:
            previous[signum] = signal.signal(signum, lambda n, _frame: caught.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])


def _clean_for_ogr(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy whose columns OGR can store: lists/dicts/mixed objects become text."""
    out = df.copy()
    geom_name = out.geometry.name if isinstance(out, gpd.GeoDataFrame) else None
    for col in out.columns:
        if col == geom_name:
            continue
        series = out[col]
        if series.dtype == object:
            if pd.api.types.infer_dtype(series.to_numpy(), skipna=True) in ("string", "empty"):
                out[col] = series.astype("string")  # only text and missing values: no per-cell
            else:
                out[col] = series.map(_cell_to_text).astype("string")
        elif isinstance(series.dtype, pd.CategoricalDtype):
            out[col] = series.astype("string")
    return out


def _cell_to_text(value: object) -> object:
    """Render one object cell as text for OGR (None stays None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple, set, dict)):
        return json.dumps(value if not isinstance(value, set) else sorted(value),
                          ensure_ascii=False, default=str)
    if isinstance(value, (np.generic,)):
        return str(value.item())
    return str(value)


@functools.cache
def _arrow_writes() -> bool:
    """Whether pyogrio can write through Arrow (GDAL >= 3.8 and pyarrow installed).

    The Arrow path writes the same layers (field types, nulls, geometry types, extents and
    spatial index checked identical) about twice as fast: 0.81 s -> 0.44 s for 32,711 line
    conflicts, 0.65 s -> 0.21 s for 24,000 findings.
    """
    if tuple(pyogrio.__gdal_version__) < (3, 8, 0):
        return False
    return importlib.util.find_spec("pyarrow") is not None


def write_results(
    out_dir: str | os.PathLike,
    tables: Mapping[str, pd.DataFrame],
    *,
    filename: str = "results.gpkg",
) -> Path:
    """Write (Geo)DataFrames as the layers of one GeoPackage, atomically and checked.

    Parameters
    ----------
    out_dir
        Folder to write into.
    tables
        Layer name → DataFrame. GeoDataFrames become spatial layers (null geometries are
        kept), plain DataFrames attribute-only tables.
    filename
        Name of the GeoPackage.

    Returns
    -------
    Path
        The written GeoPackage.

    Raises
    ------
    OutputError
        When a layer read back does not have the expected row count, or writing fails.
    """
    target = Path(out_dir) / filename
    with atomic_path(target) as tmp:
        for name, frame in tables.items():
            clean = _clean_for_ogr(frame)
            try:
                pyogrio.write_dataframe(clean, tmp, layer=name, driver="GPKG",
                                        use_arrow=_arrow_writes())
            except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError,
                    OSError) as exc:
                cause, hint = os_error_cause(exc)
                raise OutputError(f"cannot write layer {name} of {target.name}: {cause}",
                                  path=target, layer=name, hint=hint) from exc
        for name, frame in tables.items():
            n = pyogrio.read_info(tmp, layer=name)["features"]
            if n != len(frame):
                raise OutputError(f"layer {name} read back with {n} rows, expected {len(frame)}",
                                  path=target, layer=name)
    log.debug("wrote %s (%s)", target, ", ".join(f"{k}: {len(v)}" for k, v in tables.items()))
    return target


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    sheet_name: str = "Sheet1",
    index: bool = False,
    bold_rows: Sequence[bool] | np.ndarray | None = None,
    number_formats: Mapping[str, str] | None = None,
) -> Path:
    """Write a table as CSV (UTF-8 with BOM, so Excel reads Chinese) or XLSX, atomically.

    Parameters
    ----------
    df
        The table; a geometry column, if any, is dropped.
    path
        Target ending in ``.csv`` or ``.xlsx``.
    sheet_name
        Sheet name for XLSX.
    index
        Whether to write the index.
    bold_rows, number_formats
        XLSX only: one bold flag per data row, and column name → Excel number format (see
        :func:`spatialplan.io._xlsx.write_xlsx`).

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    OutputError
        An unsupported suffix; for XLSX, a table Excel cannot hold (over 1,048,575 rows or
        16,384 columns, a text over 32,767 characters): nothing is cut silently.

    Notes
    -----
    XLSX files are written by :func:`spatialplan.io._xlsx.write_xlsx`: text as inline strings (a
    value like ``"=SUM(A1)"`` stays text), floats exactly, missing values as empty cells,
    characters XML cannot hold replaced with U+FFFD (logged), the same bytes on every run.
    CSV files hold what ``DataFrame.to_csv`` writes (floats by ``repr``, minimal quoting, CRLF),
    built through Arrow when the columns allow it; their records are counted back
    (:func:`check_csv`).
    """
    target = Path(path)
    if isinstance(df, gpd.GeoDataFrame):
        df = pd.DataFrame(df.drop(columns=df.geometry.name))
    suffix = target.suffix.lower()
    with atomic_path(target) as tmp:
        if suffix == ".csv":
            _write_csv(df, tmp, index=index)
            check_csv(tmp, rows=len(df), target=target)
        elif suffix == ".xlsx":
            _write_xlsx(df, tmp, sheet_name=sheet_name, index=index, bold_rows=bold_rows,
                        number_formats=number_formats)
        else:
            raise OutputError(f"unsupported table format {suffix!r}", path=target,
                              hint="use .csv or .xlsx")
    return target


def _write_csv(df: pd.DataFrame, path: Path, *, index: bool) -> None:
    """Write CSV as ``DataFrame.to_csv`` does.

    UTF-8 with BOM, CRLF, minimal quoting, missing values empty; through Arrow when every column
    allows it (:func:`_csv_columns`).

    The Arrow path gives the same bytes as pandas (161,828 line conflicts, written and read
    back: 1.6-2.1 s -> 0.3-0.4 s); pandas writes the other tables (dates, nullable or
    categorical columns, an index, ...).
    """
    columns = None if index else _csv_columns(df)
    if columns is None:
        with open(path, "w", encoding="utf-8", newline="") as fh:  # the C UTF-8 encoder
            fh.write("\ufeff")
            defuse_formulas(df, index=index).to_csv(fh, index=index, lineterminator="\r\n")
        return
    with open(path, "wb") as fh:
        fh.write(codecs.BOM_UTF8)
        fh.write((",".join(_csv_quote(defuse_formula(str(c))) for c in df.columns)
                  + "\r\n").encode("utf-8"))
        step = max(1, _CSV_CHUNK_CELLS // len(columns))
        for start in range(0, len(df), step):
            fh.write(_csv_rows(columns, start, min(start + step, len(df))))


#: cells per chunk of the Arrow CSV writer (bounded memory at a million rows)
_CSV_CHUNK_CELLS = 1_000_000


def _csv_columns(df: pd.DataFrame) -> list[Callable[[int, int], Any]] | None:
    """Give one function per column returning its CSV texts of rows ``start:stop``.

    Each gives an Arrow array without nulls. None when pandas should write the table: no pyarrow,
    fewer than two columns (a lone empty field is written ``""``), a label that is not text, or a
    column other than float64, numpy integer or boolean, or text (object columns: text, or text and
    ``int``).
    """
    from spatialplan.io._xlsx import arrow_compute

    if arrow_compute() is None or df.shape[1] < 2 or not _csv_quotes_like_python():
        return None
    if isinstance(df.columns, pd.MultiIndex) or not all(isinstance(c, str) for c in df.columns):
        return None
    columns = [_csv_column(df.iloc[:, j]) for j in range(df.shape[1])]
    return None if any(c is None for c in columns) else columns


def _csv_column(series: pd.Series) -> Callable[[int, int], Any] | None:
    """How one column becomes CSV text, as pandas writes it, or None (see _csv_columns)."""
    from spatialplan.io._xlsx import arrow_compute, float_texts, int_texts, text_array

    pa, pc = arrow_compute()
    dtype = series.dtype
    if isinstance(dtype, np.dtype) and dtype == np.float64:
        values = series.to_numpy()

        def floats(start: int, stop: int) -> Any:
            part = values[start:stop]
            texts = float_texts(part)
            if np.isinf(part).any():
                texts = pc.replace_with_mask(texts, pa.array(np.isinf(part)), pa.array(
                    ["inf" if v > 0 else "-inf" for v in part[np.isinf(part)].tolist()],
                    type=pa.large_string()))
            return texts.fill_null("")

        return floats
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        values = series.to_numpy()
        return lambda start, stop: pc.cast(pa.array(values[start:stop]), pa.large_string())
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        values = series.to_numpy()
        true, false = (pa.scalar(t, type=pa.large_string()) for t in ("True", "False"))
        return lambda start, stop: pc.if_else(pa.array(values[start:stop]), true, false)
    is_object = pd.api.types.is_object_dtype(dtype)
    if isinstance(dtype, pd.StringDtype) or is_object:
        texts = text_array(series)
        if texts is None and is_object:
            texts = int_texts(series)  # only int: one cast (feature numbers)
        if texts is None and is_object:
            texts = _int_and_text(series)
        if texts is None:
            return None
        texts = _csv_quote_array(_defuse_array(texts.fill_null("")))
        return lambda start, stop: texts.slice(start, stop - start)
    return None


#: a text a spreadsheet would take for a formula (OWASP, CSV injection): it starts with ``=``,
#: ``+``, ``-``, ``@``, a tab, CR, LF or NUL, or with ``=+-@`` after spaces (also no-break and
#: ideographic ones); an RE2 pattern (Arrow) that Python's ``re`` reads the same way
_FORMULA_START = "^(?:[=+\\-@\\t\\r\\n\\x00]|[ \u00a0\u3000]+[=+\\-@])"
#: ... unless it is a plain decimal number ("-5", "+1.5e3"): read as that number, never as a
#: formula, so it is left as it is (numbers stay numbers, also in a text column)
_PLAIN_NUMBER = "^[+-]?(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_FORMULA_RE = re.compile(_FORMULA_START)
_PLAIN_NUMBER_RE = re.compile(_PLAIN_NUMBER[1:-1])  # used with fullmatch (no "$" before "\n")


def defuse_formula(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would read it as a formula.

    The OWASP guidance on CSV injection: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return (here also line feed, NUL, and ``=+-@`` after leading spaces) is prefixed
    with a single quote, which Excel, LibreOffice and WPS read as "this is text". A plain
    decimal number (``-5``, ``+1.5e3``) cannot hold a formula and stays as it is.

    Examples
    --------
    >>> defuse_formula("=1+1")
    "'=1+1"
    >>> defuse_formula("-5"), defuse_formula("-5+A1"), defuse_formula("示范镇")
    ('-5', "'-5+A1", '示范镇')
    """
    if _FORMULA_RE.match(text) and not _PLAIN_NUMBER_RE.fullmatch(text):
        return "'" + text
    return text


def defuse_formulas(df: pd.DataFrame, *, index: bool = False) -> pd.DataFrame:
    """Copy ``df`` with its text cells and column names passed through :func:`defuse_formula`.

    The index labels too, with ``index``; numbers, dates and missing values are untouched.
    """
    out = df.copy()
    for j in range(out.shape[1]):
        series = out.iloc[:, j]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        elif not (pd.api.types.is_object_dtype(series.dtype)
                  or isinstance(series.dtype, pd.StringDtype)):
            continue
        out.isetitem(j, series.map(_defuse_cell))
    if not isinstance(out.columns, pd.MultiIndex):
        out.columns = pd.Index([_defuse_cell(c) for c in out.columns], dtype=object)
    if index and not isinstance(out.index, pd.MultiIndex) and (
            pd.api.types.is_object_dtype(out.index.dtype)
            or isinstance(out.index.dtype, pd.StringDtype)):
        out.index = out.index.map(_defuse_cell)
    return out


def _defuse_cell(value: object) -> object:
    return defuse_formula(value) if isinstance(value, str) else value


def _defuse_array(texts: Any) -> Any:
    """:func:`defuse_formula` of every value of an Arrow text array without nulls."""
    from spatialplan.io._xlsx import arrow_compute, join_texts

    pc = arrow_compute().pc
    risky = pc.match_substring_regex(texts, _FORMULA_START)
    if not pc.any(risky).as_py():
        return texts
    risky = pc.and_(risky, pc.invert(pc.match_substring_regex(texts, _PLAIN_NUMBER)))
    return pc.if_else(risky, join_texts("'", texts), texts)


def _int_and_text(series: pd.Series) -> Any | None:
    """Convert an object column of ``str`` and ``int`` values to Arrow text.

    Such as the 时序表's 序号 beside its subtotal labels: ``str()`` of each like the csv
    module; None for anything else.
    """
    from spatialplan.io._xlsx import arrow_compute

    pa = arrow_compute().pa
    values = series.to_numpy(dtype=object)
    missing = pd.isna(values)
    texts = []
    for v, m in zip(values.tolist(), missing.tolist(), strict=True):
        if m:
            texts.append(None)
        elif type(v) is str or type(v) is int:
            texts.append(str(v))
        else:
            return None
    try:
        return pa.array(texts, type=pa.large_string())
    except (UnicodeError, pa.ArrowException):
        return None


def _csv_quote(text: str) -> str:
    """Quote a field as the csv module writes it with minimal quoting."""
    if any(c in text for c in _CSV_SPECIAL):
        return '"' + text.replace('"', '""') + '"'
    return text


#: the characters that make the csv module quote a field (minimal quoting)
_CSV_SPECIAL = (",", '"', "\r", "\n")


def _csv_quote_array(texts: Any) -> Any:
    """:func:`_csv_quote` of every value of an Arrow text array."""
    from spatialplan.io._xlsx import arrow_compute, join_texts

    pc = arrow_compute().pc
    special = pc.match_substring_regex(texts, "[" + "".join(_CSV_SPECIAL) + "]")
    if not pc.any(special).as_py():
        return texts
    return pc.if_else(special, join_texts('"', pc.replace_substring(texts, '"', '""'), '"'),
                      texts)


@functools.cache
def _csv_quotes_like_python() -> bool:
    """Whether :func:`_csv_quote` quotes as this Python's csv module does (as pandas uses it)."""
    probes = ["a", "", " a ", "a,b", 'a"b', "a\rb", "a\nb", "a;b", "a\tb", "a'b", "\u2028",
              "\x85", "=1", "示范,镇"]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([*probes, "x"])
    return buf.getvalue() == ",".join(map(_csv_quote, [*probes, "x"])) + "\r\n"


def _csv_rows(columns: Sequence[Callable[[int, int], Any]], start: int, stop: int) -> memoryview:
    """Return the UTF-8 bytes of data rows ``start:stop``, each line ending in CRLF."""
    from spatialplan.io._xlsx import join_texts, utf8_view

    lines = join_texts(*[column(start, stop) for column in columns], separator=",")
    return utf8_view(join_texts(lines, "\r\n"))


def check_csv(path: str | os.PathLike, *, rows: int, target: str | os.PathLike | None = None,
              chunk: int = 1 << 22) -> None:
    """Read a CSV back and count its records.

    Raise OutputError unless there are ``rows`` below the header (a short, truncated or
    cut-in-a-quote file).

    A record ends at a line feed outside double quotes (the csv module quotes every field
    holding a line break), so a text with line breaks counts once. The file must start with
    the UTF-8 BOM and end with CRLF.
    """
    where = Path(target or path)
    records, inside, last = 0, False, b""
    with open(path, "rb") as fh:
        head = fh.read(3)
        for block in iter(lambda: fh.read(chunk), b""):
            parts = block.split(b'"')
            records += sum(p.count(b"\n") for p in parts[1 if inside else 0::2])
            inside ^= len(parts) % 2 == 0
            last = (last + block)[-2:]
    problems = [text for text, bad in (("no UTF-8 BOM", head != codecs.BOM_UTF8),
                                       ("ends inside a quoted field", inside),
                                       ("no final line end", last != b"\r\n")) if bad]
    if problems or records != rows + 1:
        raise OutputError(f"CSV read back with {max(records - 1, 0)} rows, expected {rows}"
                          + (f" ({'; '.join(problems)})" if problems else ""), path=where)


def fit_excel_cells(df: pd.DataFrame, *, full_text_in: str) -> pd.DataFrame:
    """``df`` with every text over Excel's 32,767 characters a cell cut, with a marker.

    A cut text ends in ``…[cut: N characters in all; full text in <full_text_in>]`` and fits
    one cell (counted in UTF-16 units, as Excel does); a warning names the cells. ``df`` itself
    is returned when no text is that long. Used for the XLSX tables of a run, beside the CSV
    and GeoPackage that keep every text whole.

    Examples
    --------
    >>> t = fit_excel_cells(pd.DataFrame({"name": ["名" * 40_000]}), full_text_in="t.csv")
    >>> len(t.loc[0, "name"]) <= 32_767, t.loc[0, "name"][-52:]
    (True, '…[cut: 40,000 characters in all; full text in t.csv]')
    """
    from spatialplan.io._xlsx import MAX_CELL_CHARS

    out = None
    for j in range(df.shape[1]):
        series = df.iloc[:, j]
        if not (pd.api.types.is_object_dtype(series.dtype)
                or isinstance(series.dtype, (pd.StringDtype, pd.CategoricalDtype))):
            continue
        if _longest_text(series) <= MAX_CELL_CHARS // 2:
            continue  # below half the limit a text fits even in UTF-16 pairs
        values = series.astype(object).to_numpy()
        long = np.fromiter((len(v) if isinstance(v, str) else 0 for v in values), dtype=np.int64,
                           count=len(values)) > MAX_CELL_CHARS // 2
        if not long.any():
            continue
        values = values.copy()
        cut = 0
        for i in np.flatnonzero(long):
            text = values[i]
            if _utf16_units(text) > MAX_CELL_CHARS:
                values[i] = _cut_to_cell(text, MAX_CELL_CHARS, full_text_in)
                cut += 1
        if cut:
            out = df.copy() if out is None else out
            out.isetitem(j, pd.Series(values, index=df.index, dtype=object))
            log.warning("%d text(s) of column %r over Excel's %s characters a cell are cut in "
                        "the XLSX file; %s holds them whole", cut, df.columns[j],
                        f"{MAX_CELL_CHARS:,}", full_text_in)
    return df if out is None else out


def _longest_text(series: pd.Series) -> int:
    """Measure the longest text of a column (Arrow's kernel when it can, else Python)."""
    from spatialplan.io._xlsx import arrow_compute, text_array

    if arrow_compute() is not None and not isinstance(series.dtype, pd.CategoricalDtype):
        texts = text_array(series)
        if texts is not None:
            longest = arrow_compute().pc.max(arrow_compute().pc.utf8_length(texts)).as_py()
            return int(longest or 0)
    return max((len(v) for v in series.astype(object).tolist() if isinstance(v, str)),
               default=0)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _cut_to_cell(text: str, limit: int, full_text_in: str) -> str:
    """``text`` cut so that it and its marker take at most ``limit`` UTF-16 units."""
    marker = f"…[cut: {len(text):,} characters in all; full text in {full_text_in}]"
    keep = limit - _utf16_units(marker)
    head = text[:keep]
    excess = _utf16_units(head) - keep
    while excess > 0:  # characters outside the BMP take two units: drop half the excess
        head = head[:len(head) - (excess + 1) // 2]
        excess = _utf16_units(head) - keep
    return head + marker


def _write_xlsx(df: pd.DataFrame, path: Path, *, sheet_name: str, index: bool,
                bold_rows: Sequence[bool] | np.ndarray | None = None,
                number_formats: Mapping[str, str] | None = None) -> None:
    """Write one sheet with a frozen header and widths fitted to the text (CJK counts double).

    Written by :func:`spatialplan.io._xlsx.write_xlsx` (inline strings, so formula-like text stays
    text; limits checked; byte-deterministic), then checked: every zip entry's CRC is verified.
    """
    from spatialplan.io._xlsx import write_xlsx

    frame = df.reset_index() if index else df
    write_xlsx(frame, path, sheet_name=sheet_name, widths=column_widths(frame),
               bold_rows=bold_rows, number_formats=number_formats)
    check_xlsx(path)


def check_xlsx(path: Path) -> None:
    """Read an XLSX back as a zip and verify every entry (CRC); raise OutputError if broken."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise OutputError(f"the XLSX file read back broken: {exc}", path=path) from exc
    if bad is not None or "xl/worksheets/sheet1.xml" not in names:
        raise OutputError(f"the XLSX file read back broken ({bad or 'no sheet'})", path=path)


def column_widths(frame: pd.DataFrame, *, sample: int = 500) -> list[float]:
    """Excel column widths fitted to each column's header and first ``sample`` values.

    East Asian wide characters count as two; widths are clamped to 8-60 characters.

    Examples
    --------
    >>> column_widths(pd.DataFrame({"乡镇名称": ["示范镇"], "n": [1]}))
    [10, 8]
    """
    widths = []
    head = frame.head(sample)
    for j, col in enumerate(frame.columns):
        # a missing value's text ("None", "nan", "NaT", "<NA>") is narrower than the minimum
        texts = [str(col)] + [str(v) for v in head.iloc[:, j].tolist()]
        width = max(_display_width(t) for t in texts)
        widths.append(min(max(8, width + 2), 60))
    return widths


#: characters counted as two columns wide (East Asian wide; everything from U+2E81 up)
_WIDE = re.compile("[\u2e81-\U0010ffff]")


def _display_width(text: str) -> int:
    """Approximate display width: East Asian wide characters (above U+2E80) count as two."""
    if text.isascii():
        return len(text)
    return len(text) + len(_WIDE.findall(text))


def write_json(obj: object, path: str | os.PathLike) -> Path:
    """Write JSON (UTF-8, readable Chinese, sorted keys) atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True,
                                  default=str) + "\n", encoding="utf-8")
        json.loads(tmp.read_text(encoding="utf-8"))
    return target


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file (a folder such as a FileGDB: of its files in order)."""
    p = Path(path)
    digest = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            digest.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                digest.update(block)
    return digest.hexdigest()
