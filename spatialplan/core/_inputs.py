"""Checks on input files before anything opens them: file kinds, sidecars, VRT sources.

- Only regular files are opened (a FileGDB is a folder): a named pipe blocks the reader
  forever, a device never ends. :func:`require_regular` checks the named file;
  :func:`check_siblings` the files beside it that GDAL or SQLite may open too (a shapefile's
  ``.dbf``/``.shx``/``.prj``/``.cpg``, a GeoTIFF's ``.aux.xml``/``.ovr``, a GeoPackage's
  ``-wal``), i.e. every entry of the folder named like the file's stem followed by ``.``,
  ``-`` or ``_``.
- A raster is read only if it is a GeoTIFF or a GDAL VRT (:func:`check_raster`). A VRT is
  parsed here first, with a size limit and without DOCTYPE, entities, CDATA or character
  references, and every file it names (``SourceFilename``, ``SourceDataset``, ...; nested VRTs
  recursively) must be a GeoTIFF or VRT inside the top VRT's folder — symlinks resolved, never a
  URL, a ``/vsi*`` path or a driver prefix such as ``NETCDF:`` — unless the user allowed remote
  sources. Raw raster bands and Python pixel functions are refused. GDAL itself is locked down
  as well (:mod:`spatialplan.core._gdal_env`), so a source that slipped past these checks still
  cannot reach the network.

Example
-------
>>> from spatialplan.errors import DataSourceError
>>> require_regular("/dev/null", error=DataSourceError)
Traceback (most recent call last):
...
spatialplan.errors.DataSourceError: the path is a character device, not a regular file (file /dev/null). Fix: name a regular file; pipes, devices and sockets are never read
"""  # noqa: E501

from __future__ import annotations

import os
import re
import stat
import xml.parsers.expat
from pathlib import Path
from xml.etree import ElementTree

from spatialplan.errors import RasterError, SpatialPlanError

__all__ = [
    "MAX_TOML_BYTES",
    "MAX_XML_BYTES",
    "check_raster",
    "check_siblings",
    "file_kind",
    "read_small_file",
    "require_regular",
]

#: largest VRT file parsed (GDAL writes a few kB per source; 16 MiB is ~10^5 sources)
MAX_XML_BYTES = 16 * 1024 * 1024
#: deepest chain of VRTs naming VRTs
_MAX_VRT_DEPTH = 8
#: VRT elements whose text names a dataset
_FILE_TAGS = {"SourceFilename", "SourceDataset", "ImageFilename", "SrcDataSource",
              "OverviewFilename", "Filename"}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
#: a URL, a GDAL virtual file system, a driver prefix (``NETCDF:``, ``vrt://``), inline XML
_VIRTUAL = re.compile(r"^\s*(/vsi|<|[A-Za-z][A-Za-z0-9_+.-]+:)|://", re.IGNORECASE)
_FORBIDDEN_XML = re.compile(r"<!DOCTYPE|<!ENTITY|<!\[CDATA\[|&#", re.IGNORECASE)


def file_kind(mode: int) -> str:
    """Name the kind of file ``mode`` (an ``os.stat`` mode) describes."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR,
                       "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def require_regular(path: str | os.PathLike, *, error: type[SpatialPlanError],
                    layer: str | None = None, folder_ok: bool = False,
                    what: str = "the path") -> None:
    """Raise ``error`` unless ``path`` is a regular file (or, with ``folder_ok``, a folder).

    A missing path passes: the caller reports it with its own "not found" message.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise error(f"cannot inspect {what}: {exc.strerror}", path=path, layer=layer,
                    hint="check the path and its permissions") from exc
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return
    raise error(f"{what} is {file_kind(mode)}, not a regular file", path=path, layer=layer,
                hint="name a regular file; pipes, devices and sockets are never read")


def check_siblings(path: str | os.PathLike, *, error: type[SpatialPlanError],
                   layer: str | None = None) -> None:
    """Raise ``error`` if a file GDAL may open beside ``path`` is not a regular file.

    Beside a file: every entry of its folder named like its stem followed by ``.``, ``-`` or
    ``_`` (case-insensitive). Inside a folder (a FileGDB): every entry.
    """
    path = Path(path)
    if path.is_dir():
        folder, wanted = path, None
    else:
        folder, wanted = path.parent, path.stem.casefold()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return  # the open itself reports an unreadable folder
    for entry in entries:
        name = entry.name.casefold()
        if wanted is not None and not (name.startswith(wanted)
                                       and name[len(wanted):len(wanted) + 1] in (".", "-", "_")):
            continue
        try:
            mode = entry.stat().st_mode  # follows symlinks
        except OSError:
            continue  # a dangling link: nothing to open
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise error(f"{entry.name} beside the data is {file_kind(mode)}; GDAL could open "
                        "it and block", path=path, layer=layer,
                        hint=f"remove or rename {entry.name}")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _fail(message: str, path: object, layer: str | None, hint: str) -> RasterError:
    return RasterError(message, path=path, layer=layer, hint=hint)


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(64)


def _is_xml(head: bytes) -> bool:
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<")


def check_raster(path: str | os.PathLike, *, layer: str | None = None,
                 allow_remote: bool = False) -> str | None:
    """Check a raster named by the user before GDAL opens it (see the module docstring).

    Parameters
    ----------
    path
        The raster file (a local path; remote ones are refused earlier, or allowed).
    layer
        The raster's name in the plan, for messages.
    allow_remote
        The user's explicit opt-in: a VRT may then name remote or outside sources.

    Returns
    -------
    str or None
        The GDAL driver to open it with (``"GTiff"`` or ``"VRT"``), None when it is missing.

    Raises
    ------
    RasterError
        Not a regular file, a sidecar that is not one, neither GeoTIFF nor VRT, or a VRT
        naming something it may not.
    """
    path = Path(path)
    require_regular(path, error=RasterError, layer=layer, what="the raster")
    if not path.exists():
        return None  # the caller says "not found"
    check_siblings(path, error=RasterError, layer=layer)
    head = _head(path)
    if head.startswith(_TIFF_MAGIC):
        return "GTiff"
    if not _is_xml(head):
        raise _fail("cannot open as a raster: the file is neither a GeoTIFF nor a GDAL VRT",
                    path, layer, "convert the DEM to GeoTIFF")
    root = Path(os.path.realpath(path)).parent
    _check_vrt(path, top=path, root=root, layer=layer, allow_remote=allow_remote, depth=0,
               seen=set())
    return "VRT"


def _read_vrt(path: Path, layer: str | None) -> ElementTree.Element:
    size = path.stat().st_size
    if size > MAX_XML_BYTES:
        raise _fail(f"the VRT is {size:,} bytes; at most {MAX_XML_BYTES:,} are read", path,
                    layer, "mosaic the sources into one GeoTIFF")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail("the VRT is not UTF-8 text", path, layer, "save the VRT as UTF-8") from exc
    forbidden = _FORBIDDEN_XML.search(text)
    if forbidden:
        raise _fail(f"the VRT holds {forbidden.group()!r} (DOCTYPE, entities, CDATA and "
                    "character references are not read)", path, layer,
                    "write the VRT with gdalbuildvrt, without a DOCTYPE or entities")
    try:
        root = ElementTree.fromstring(text)  # noqa: S314 - no DOCTYPE or entity can be left
    except (ElementTree.ParseError, xml.parsers.expat.ExpatError) as exc:
        raise _fail(f"the VRT is not well-formed XML: {exc}", path, layer,
                    "rebuild it with gdalbuildvrt") from exc
    if root.tag != "VRTDataset":
        raise _fail(f"cannot open as a raster: XML <{root.tag[:40]}> is not a GDAL VRT "
                    "(web services and other XML descriptions are not read)", path, layer,
                    "give a GeoTIFF or a VRT of local GeoTIFFs")
    return root


def _check_vrt(path: Path, *, top: Path, root: Path, layer: str | None, allow_remote: bool,
               depth: int, seen: set[Path]) -> None:
    """Check the VRT ``path`` (``top`` itself or a VRT it names); errors name ``top``."""
    real = Path(os.path.realpath(path))
    inner = "" if path == top else f" (in {path.name}, named by it)"
    if real in seen:
        raise _fail(f"the VRT names itself through its sources (a cycle){inner}", top, layer,
                    "rebuild the VRT from the GeoTIFF tiles")
    if depth > _MAX_VRT_DEPTH:
        raise _fail(f"VRTs nested more than {_MAX_VRT_DEPTH} deep", top, layer,
                    "rebuild one VRT from the GeoTIFF tiles")
    seen = seen | {real}
    tree = _read_vrt(path, layer)
    for element in tree.iter():
        if element.get("subClass") == "VRTRawRasterBand" or element.tag == "VRTRawRasterBand":
            raise _fail(f"the VRT has a raw raster band (it reads any file as cells){inner}",
                        top, layer, "use a VRT of GeoTIFF sources")
        if element.tag == "PixelFunctionLanguage" and (element.text or "").strip():
            raise _fail(f"the VRT runs pixel-function code{inner}", top, layer,
                        "compute the grid beforehand and give the GeoTIFF")
        if element.tag in _FILE_TAGS:
            _check_source(element, vrt=path, top=top, root=root, layer=layer,
                          allow_remote=allow_remote, depth=depth, seen=seen)


def _check_source(element: ElementTree.Element, *, vrt: Path, top: Path, root: Path,
                  layer: str | None, allow_remote: bool, depth: int, seen: set[Path]) -> None:
    text = (element.text or "").strip()
    where = (f"<{element.tag}>{text[:200]}</{element.tag}> in the VRT"
             + ("" if vrt == top else f" {vrt.name} (named by it)"))
    if not text:
        raise _fail(f"empty <{element.tag}> in the VRT", top, layer, "rebuild the VRT")
    if _VIRTUAL.search(text):
        if allow_remote:
            return
        raise _fail(f"{where} is a URL, a /vsi path or a driver connection string; VRT "
                    "sources must be local files", top, layer,
                    "download the source beside the VRT, or call the API with "
                    "allow_remote=True")
    relative = element.get("relativeToVRT", "0").strip() == "1"
    source = Path(text)
    if not source.is_absolute():
        source = (vrt.parent if relative else Path.cwd()) / source
    real = Path(os.path.realpath(source))
    if not _inside(real, root):
        if allow_remote:
            return
        raise _fail(f"{where} lies outside the VRT's folder {root}", top, layer,
                    "keep the VRT's sources in its folder (or below it)")
    require_regular(real, error=RasterError, layer=layer, what=f"the VRT source {text[:200]}")
    if not real.exists():
        raise _fail(f"{where} does not exist", top, layer, "rebuild the VRT")
    check_siblings(real, error=RasterError, layer=layer)
    head = _head(real)
    if head.startswith(_TIFF_MAGIC):
        return
    if _is_xml(head):
        _check_vrt(real, top=top, root=root, layer=layer, allow_remote=allow_remote,
                   depth=depth + 1, seen=seen)
        return
    raise _fail(f"{where} is neither a GeoTIFF nor a VRT", top, layer,
                "use GeoTIFF sources")


#: largest plan or rulebook file read (a real one is a few kB)
MAX_TOML_BYTES = 1024 * 1024


def read_small_file(path: str | os.PathLike, *, error: type[SpatialPlanError], what: str,
                    limit: int = MAX_TOML_BYTES) -> bytes:
    """Read the bytes of a small regular file; ``error`` if not regular or larger than ``limit``.

    ``FileNotFoundError`` passes through for the caller's own message.
    """
    require_regular(path, error=error, what=what)
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"{what} is larger than {limit:,} bytes", path=path,
                    hint=f"{what} is a short text file; check that the right file is named")
    return data
