"""GDAL locked down for the whole process: no network, no code, no raw files from inputs.

pyogrio and rasterio each load their own GDAL (the wheels bundle different builds), so every
setting is made in both. :func:`lock_down` runs when :mod:`spatialplan.io.read` or
:mod:`spatialplan.io._raster` is imported, before spatialplan opens anything, and holds for every
open that follows, at any depth (a VRT's sources, a driver's sidecar files):

- ``CPL_VSIL_CURL_ALLOWED_FILENAME`` names the only file ``/vsicurl/`` (and ``/vsis3/``,
  ``/vsigs/``... which share its code) may open; it is set to a name nothing uses, so no
  network file system opens anything;
- the drivers that fetch URLs themselves, talk to a server or run a program (``HTTP``, ``WMS``,
  ``WMTS``, ``WCS``, ``WFS``, ``OAPIF``, database clients, ``GPSBabel``...) and the index
  formats that open arbitrary paths (``GTI``, ``OGR_VRT``, ``GDALG``) are deregistered through
  GDAL's own ``GDAL_SKIP`` (added to any value the user set);
- ``GDAL_VRT_ENABLE_PYTHON=NO`` (no Python pixel functions), ``GDAL_VRT_ENABLE_RAWRASTERBAND=NO``
  (a VRT cannot read an arbitrary file as raw cells), ``CPL_ALLOW_VSISTDIN=NO``.

``allow_remote=True`` (the API's explicit opt-in, see :func:`spatialplan.io.read.read_plan`) lifts
this for the duration of that read only (:func:`remote_allowed`): the user's own settings come
back, then the lock again.

Example
-------
>>> from spatialplan.core import _gdal_env
>>> _gdal_env.lock_down()
>>> import pyogrio
>>> pyogrio.get_gdal_config_option("GDAL_VRT_ENABLE_PYTHON")
'NO'
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LOCKED_OPTIONS", "NETWORK_DRIVERS", "is_locked", "lock_down", "remote_allowed"]

log = logging.getLogger(__name__)

#: drivers that reach the network or a server, run a program, or open paths named in the data
NETWORK_DRIVERS = (
    "HTTP", "WMS", "WMTS", "WCS", "WFS", "OAPIF", "OGCAPI", "CSW", "EEDA", "EEDAI", "DAAS",
    "PLMOSAIC", "PLSCENES", "STACIT", "STACTA", "NGW", "Elasticsearch", "Carto", "AmigoCloud",
    "CouchDB", "MongoDBv3", "PostgreSQL", "PostGISRaster", "MySQL", "MSSQLSpatial", "OCI",
    "HANA", "ODBC", "PGeo", "GNMDatabase", "ADBC", "GPSBabel", "KMLSUPEROVERLAY", "GDALG",
    "GTI", "OGR_VRT", "TileDB", "AIVector",
)

#: a file name no input uses: the only one /vsicurl/ and its kin may then open
_NO_REMOTE_FILE = "/vsicurl/spatialplan-network-access-is-disabled"

#: configuration options set while locked (GDAL_SKIP is handled apart: it is merged)
LOCKED_OPTIONS = {
    "CPL_VSIL_CURL_ALLOWED_FILENAME": _NO_REMOTE_FILE,
    "GDAL_VRT_ENABLE_PYTHON": "NO",
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
    "CPL_ALLOW_VSISTDIN": "NO",
}

_lock = threading.RLock()
@dataclass
class _LockState:
    locked: bool = False
    saved: dict[str, dict[str, str | None]] | None = None  # per library, the options before
    lifted: int = 0  # blocks of remote_allowed running


_state = _LockState()


class _Gdal:
    """Get, set and re-register in one library's GDAL (pyogrio's or rasterio's)."""

    def __init__(self, name: str, get: Callable[[str], str | None],
                 set_: Callable[[str, str | None], None], module: str) -> None:
        self.name, self.get, self.set, self.module = name, get, set_, module

    def register_all(self) -> bool:
        """Call GDALAllRegister, which also deregisters the drivers named in GDAL_SKIP."""
        func = _symbol(self.module, "GDALAllRegister")
        if func is None:
            return False
        func()
        return True

    def present(self, names: tuple[str, ...]) -> list[str]:
        """Return the drivers of ``names`` registered in this GDAL.

        Naming others in GDAL_SKIP makes GDAL warn.
        """
        func = _symbol(self.module, "GDALGetDriverByName")
        if func is None:
            return []
        func.restype = ctypes.c_void_p
        func.argtypes = [ctypes.c_char_p]
        return [name for name in names if func(name.encode())]


def _symbol(module_name: str, symbol: str) -> Any:
    """``symbol`` of the GDAL library the extension module ``module_name`` is linked to.

    A ctypes function (its ``restype`` and ``argtypes`` are set by the caller), or None.
    """
    try:
        module = importlib.import_module(module_name)
        path = Path(module.__file__ or "")
    except (ImportError, TypeError):
        return None
    candidates = [path]
    libs = path.parent.parent / f"{path.parent.name}.libs"  # delvewheel / auditwheel folders
    dylibs = path.parent / ".dylibs"
    for folder in (libs, dylibs):
        if folder.is_dir():
            candidates += sorted(p for p in folder.iterdir() if "gdal" in p.name.lower())
    for candidate in candidates:
        try:
            return getattr(ctypes.CDLL(str(candidate)), symbol)
        except (OSError, AttributeError):
            continue
    return None


def _libraries() -> list[_Gdal]:
    import pyogrio
    from rasterio import _env as rio_env

    def pyogrio_set(key: str, value: str | None) -> None:
        pyogrio.set_gdal_config_options({key: value})

    def rio_get(key: str) -> str | None:
        value = rio_env.get_gdal_config(key, normalize=False)
        return None if value is None else str(value)

    def rio_set(key: str, value: str | None) -> None:
        if value is None:
            rio_env.del_gdal_config(key)
        else:
            rio_env.set_gdal_config(key, value, normalize=False)

    return [_Gdal("pyogrio", pyogrio.get_gdal_config_option, pyogrio_set, "pyogrio._ogr"),
            _Gdal("rasterio", rio_get, rio_set, "rasterio._base")]


def _skip_value(user: str | None, drivers: list[str]) -> str:
    names = (user or "").replace(",", " ").split()
    return " ".join(dict.fromkeys([*names, *drivers]))


def _apply_lock() -> None:
    saved: dict[str, dict[str, str | None]] = {}
    for lib in _libraries():
        saved[lib.name] = {key: lib.get(key) for key in (*LOCKED_OPTIONS, "GDAL_SKIP")}
        for key, value in LOCKED_OPTIONS.items():
            lib.set(key, value)
        if not lib.register_all():  # registered first, so that the skip list can be checked
            log.warning("cannot reach %s's GDAL library to deregister its network drivers; "
                        "/vsicurl/ and VRT checks still apply", lib.name)
            continue
        lib.set("GDAL_SKIP", _skip_value(saved[lib.name]["GDAL_SKIP"],
                                         lib.present(NETWORK_DRIVERS)))
        lib.register_all()
    _state.saved = saved


def _apply_unlock() -> None:
    saved = _state.saved or {}
    for lib in _libraries():
        for key, value in saved.get(lib.name, {}).items():
            lib.set(key, value)
        lib.register_all()  # drivers no longer skipped come back


def lock_down() -> None:
    """Lock GDAL (both libraries') for the whole process; idempotent (see the module doc)."""
    with _lock:
        if _state.locked:
            return
        _apply_lock()
        _state.locked = True


def is_locked() -> bool:
    """Tell whether the lock holds (False inside :func:`remote_allowed`)."""
    return _state.locked and not _state.lifted


@contextlib.contextmanager
def remote_allowed(allow: bool = True) -> Iterator[None]:
    """Lift the lock while the block runs when ``allow`` is True (the user's explicit opt-in).

    Process-wide while it lasts: other threads' opens are not locked either. Nested and
    concurrent uses are counted; the lock comes back when the last one ends.
    """
    if not allow:
        lock_down()
        yield
        return
    with _lock:
        lock_down()
        if _state.lifted == 0:
            _apply_unlock()
        _state.lifted += 1
    try:
        yield
    finally:
        with _lock:
            _state.lifted -= 1
            if _state.lifted == 0:
                _apply_lock()
