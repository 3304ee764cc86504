"""Plan file (``plan.toml``): parse and validate the description of one planning job.

A plan names the input layers by role, optional rasters (DEM), the rulebook, the facility
catalogue, the analysis CRS and the as-of date. Paths in the file are relative to the file.
Parsing is strict: an unknown key or a value of the wrong type is a
:class:`~spatialplan.errors.PlanError` naming the key and the table it sits in (for example
``layers.redline.pth``).

Example
-------
>>> from spatialplan.io.plan import read_plan_spec
>>> spec = read_plan_spec("layers/demo/plan.toml")  # doctest: +SKIP
>>> sorted(spec.layers)  # doctest: +SKIP
['farmland', 'projects', 'redline', 'townships', 'udb']
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialplan.core._inputs import read_small_file
from spatialplan.errors import DataSourceError, PlanError
from spatialplan.io.roles import (
    BUILTIN_ROLES,
    LAYER_ROLES,
    ROLE_NAME,
    LayerRole,
    check_geometry,
    layer_role,
    unknown_role,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "LAYER_ROLES",
    "LayerSpec",
    "PlanSpec",
    "RasterSpec",
    "check_local_path",
    "is_remote",
    "parse_plan_spec",
    "read_plan_spec",
]

log = logging.getLogger(__name__)

_TOP_KEYS = {"plan", "layers", "rasters", "rules", "catalog"}
_PLAN_KEYS = {"name", "crs", "as_of"}
_LAYER_KEYS = {"path", "layer", "encoding", "assume_crs", "fields", "point_radius_m",
               "geometry", "where", "geometry_column"}
#: layer keys of a PostGIS layer only (``path = "postgresql://..."``)
_PG_KEYS = ("where", "geometry_column")
_RASTER_KEYS = {"path", "assume_crs", "nodata"}
_RULES_KEYS = {"path"}
_CATALOG_KEYS = {"path"}
_REMOTE_PREFIXES = ("http://", "https://", "ftp://", "s3://", "gs://", "az://", "/vsi")


@dataclass(frozen=True)
class LayerSpec:
    """One ``[layers.<role>]`` table of a plan.

    Attributes
    ----------
    role
        The role: a built-in one (:data:`spatialplan.io.roles.BUILTIN_ROLES`), the plan's own
        (declared with ``geometry``) or a plug-in rule's.
    path
        Absolute path of the data source (resolved against the plan's folder); a remote URL or
        ``/vsi*`` path (only with ``allow_remote``) is kept as a string.
    layer
        Layer name inside the source (required when the source has several layers).
    encoding
        Declared text encoding (wins over ``.cpg`` and detection).
    assume_crs
        CRS to assume for a source that carries none, e.g. ``"EPSG:4490"``.
    fields
        Field mapping, canonical name → source field name (for the plan's own role: its
        canonical fields).
    point_radius_m
        Projects only: point sites are buffered to this radius (metres) and recorded as repairs.
    geometry
        The plan's ``geometry`` (``polygon``, ``line``, ``point``), or None: a built-in role's
        registered type, or any type for a plug-in's layer.
    where
        PostGIS layers only: the row filter (:func:`spatialplan.io.postgis.parse_where`).
    geometry_column
        PostGIS layers only: the geometry column of a table that has several.
    """

    role: str
    path: Path | str
    layer: str | None = None
    encoding: str | None = None
    assume_crs: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    point_radius_m: float | None = None
    geometry: str | None = None
    where: str | None = None
    geometry_column: str | None = None


@dataclass(frozen=True)
class RasterSpec:
    """One ``[rasters.<name>]`` table of a plan (e.g. ``dem``)."""

    name: str
    path: Path | str
    assume_crs: str | None = None
    nodata: float | None = None


@dataclass(frozen=True)
class PlanSpec:
    """The parsed plan file: what to read, not yet read.

    Attributes
    ----------
    name
        Plan name (``[plan] name``; default: the file's stem).
    path
        Absolute path of the plan file (``None`` when parsed from a dict).
    crs
        ``"auto"`` or a CRS string such as ``"EPSG:4545"``.
    as_of
        Date used by schedule checks (default: today).
    layers
        Role → :class:`LayerSpec`.
    rasters
        Name → :class:`RasterSpec`.
    rules_path
        The user's rulebook file, or ``None`` for the bundled defaults.
    catalog_path
        The user's facility catalogue (``[catalog] path``, a ``facility_types.csv``), or
        ``None`` for the bundled one.
    """

    name: str
    path: Path | None
    crs: str = "auto"
    as_of: _dt.date = field(default_factory=_dt.date.today)
    layers: dict[str, LayerSpec] = field(default_factory=dict)
    rasters: dict[str, RasterSpec] = field(default_factory=dict)
    rules_path: Path | None = None
    catalog_path: Path | None = None


def is_remote(path: str | Path) -> bool:
    """Return True for a URL or a GDAL virtual file system path (``/vsicurl/``, ``/vsi*``).

    Example
    -------
    >>> is_remote("https://example.org/a.gpkg"), is_remote("data/a.gpkg")
    (True, False)
    """
    text = str(path).strip().lower()
    return text.startswith(_REMOTE_PREFIXES) or "://" in text


def check_local_path(path: str | Path, *, allow_remote: bool = False,
                     layer: str | None = None) -> None:
    """Refuse a remote path unless ``allow_remote`` is True.

    Raises
    ------
    DataSourceError
        For ``http(s)://``, ``/vsicurl/`` and any other ``/vsi*`` or URL path.

    Example
    -------
    >>> check_local_path("plan/townships.gpkg")
    """
    if is_remote(path) and not allow_remote:
        raise DataSourceError(
            "remote or virtual data sources are not read by default", path=path, layer=layer,
            hint="download the file and name the local copy, or call the API with "
            "allow_remote=True",
        )


def read_plan_spec(path: str | Path, *, allow_remote: bool = False,
                   plugin_roles: bool = False) -> PlanSpec:
    """Read and validate a plan file.

    Parameters
    ----------
    path
        The ``plan.toml`` file.
    allow_remote
        Accept ``http(s)://`` and ``/vsi*`` layer paths (refused by default).
    plugin_roles
        Accept other role names without ``geometry`` too, as layers of plug-in rules
        (``[layers.rivers]``); :func:`spatialplan.io.read.read_plan` refuses those no loaded
        plug-in declares. A role declared with ``geometry`` is accepted either way.

    Returns
    -------
    PlanSpec

    Raises
    ------
    PlanError
        Unreadable TOML, unknown key, wrong type, unknown role.
    DataSourceError
        The plan file is missing, or a layer path is remote and ``allow_remote`` is False.

    Example
    -------
    >>> spec = read_plan_spec("plan.toml")  # doctest: +SKIP
    >>> spec.layers["townships"].path  # doctest: +SKIP
    PosixPath('/data/town/townships.gpkg')
    """
    check_local_path(path, allow_remote=False)
    path = Path(path).expanduser().resolve()
    try:
        raw = read_small_file(path, error=PlanError, what="the plan file")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raw = None
    if raw is None or not path.is_file():
        raise DataSourceError("plan file not found", path=path,
                              hint="give the path of an existing plan.toml")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"plan file is not valid TOML: {exc}", path=path,
                        hint="check quotes, brackets and '=' on the reported line") from exc
    except UnicodeDecodeError as exc:
        raise PlanError("plan file is not UTF-8 text", path=path,
                        hint="save the plan file as UTF-8") from exc
    except RecursionError:
        raise PlanError("plan file nests arrays or tables too deeply to be read", path=path,
                        hint="a plan needs at most three levels ([layers.role.fields])"
                        ) from None
    return parse_plan_spec(data, base=path.parent, path=path, allow_remote=allow_remote,
                           plugin_roles=plugin_roles)


def parse_plan_spec(data: dict[str, Any], *, base: str | Path, path: str | Path | None = None,
                    allow_remote: bool = False, plugin_roles: bool = False) -> PlanSpec:
    """Validate an already-loaded plan mapping (the TOML document as a dict).

    Parameters
    ----------
    data
        The plan document.
    base
        Folder that relative paths are resolved against.
    path
        The plan file, for error messages.
    allow_remote
        Accept remote layer paths.
    plugin_roles
        Accept other role names (lower case, digits, ``_``) without ``geometry`` as plug-in
        layer roles. Roles not built in (the plan's own and plug-ins') follow the built-in ones
        in ``layers``.

    Example
    -------
    >>> spec = parse_plan_spec({"layers": {"redline": {"path": "r.gpkg"}}}, base="/tmp")
    >>> spec.layers["redline"].path.name
    'r.gpkg'
    """
    base = Path(base)
    ppath = None if path is None else Path(path)
    _check_keys(data, _TOP_KEYS, "", ppath)
    plan = _table(data, "plan", ppath)
    _check_keys(plan, _PLAN_KEYS, "plan", ppath)
    name = _opt(plan, "name", str, "plan", ppath) or (ppath.stem if ppath else "plan")
    crs = _opt(plan, "crs", str, "plan", ppath) or "auto"
    crs = _check_crs_text(crs, "plan.crs", ppath, allow_auto=True)
    as_of = _parse_as_of(plan.get("as_of"), ppath)

    layers_table = _table(data, "layers", ppath)
    layers = {}
    for role, table in layers_table.items():
        declared = isinstance(table, dict) and "geometry" in table
        if role not in BUILTIN_ROLES and not declared and not (
                plugin_roles and ROLE_NAME.match(role)):
            raise unknown_role(role, ppath)
        layers[role] = _parse_layer(role, table, base, ppath, allow_remote, plugin_roles)
    layers = {r: layers[r] for r in sorted(layers, key=lambda r: r not in BUILTIN_ROLES)}

    rasters = {}
    for rname, table in _table(data, "rasters", ppath).items():
        rasters[rname] = _parse_raster(rname, table, base, ppath, allow_remote)

    return PlanSpec(name=name, path=ppath, crs=crs, as_of=as_of, layers=layers,
                    rasters=rasters, rules_path=_file_table(data, "rules", base, ppath),
                    catalog_path=_file_table(data, "catalog", base, ppath))


# -- helpers ---------------------------------------------------------------------------------


def _file_table(data: dict, key: str, base: Path, path: Path | None) -> Path | None:
    """Return the local file named by a ``[rules]`` or ``[catalog]`` table (key ``path``).

    The path is relative to the plan; a URL or ``/vsi*`` path is refused (never read).
    """
    table = _table(data, key, path)
    _check_keys(table, {"rules": _RULES_KEYS, "catalog": _CATALOG_KEYS}[key], key, path)
    text = _opt(table, "path", str, key, path)
    if text is None:
        return None
    return Path(_resolve(text, base, f"{key}.path", path, allow_remote=False))


def _where(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _check_keys(table: dict, allowed: set[str], where: str, path: Path | None) -> None:
    for key in table:
        if key not in allowed:
            raise PlanError(
                f"unknown key '{_where(where, key)}' in the plan file", path=path,
                hint=f"allowed keys in [{where or 'top level'}] are " + ", ".join(sorted(allowed)),
            )


def _table(data: dict, key: str, path: Path | None, where: str = "") -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PlanError(f"'{_where(where, key)}' must be a table, got {type(value).__name__}",
                        path=path, hint=f"write it as [{_where(where, key)}]")
    return value


def _opt(table: dict, key: str, kind: type | tuple[type, ...], where: str,
         path: Path | None) -> Any:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PlanError(
            f"'{_where(where, key)}' must be {want}, got {type(value).__name__} {value!r}",
            path=path, hint=f"write {_where(where, key)} as a {want}",
        )
    return value


def _check_crs_text(text: str, where: str, path: Path | None, *, allow_auto: bool) -> str:
    if allow_auto and text.strip().lower() == "auto":
        return "auto"
    import pyproj

    try:
        pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise PlanError(f"'{where}' is not a CRS: {text!r}", path=path,
                        hint="use 'auto' or an EPSG code such as 'EPSG:4545'") from exc
    return text


def _parse_as_of(value: Any, path: Path | None) -> _dt.date:
    if value is None:
        return _dt.date.today()
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise PlanError(f"'plan.as_of' must be a date like 2026-11-26, got {value!r}", path=path,
                    hint='write as_of = "YYYY-MM-DD"')


def _resolve(text: str, base: Path, where: str, path: Path | None, *,
             allow_remote: bool) -> Path | str:
    if not text.strip():
        raise PlanError(f"'{where}' is empty", path=path, hint="give a file path")
    if is_remote(text):
        check_local_path(text, allow_remote=allow_remote, layer=where)
        return text.strip()
    p = Path(text).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _parse_layer(role: str, table: Any, base: Path, path: Path | None,
                 allow_remote: bool, plugin_roles: bool = False) -> LayerSpec:
    where = f"layers.{role}"
    if not isinstance(table, dict):
        raise PlanError(f"'{where}' must be a table", path=path, hint=f"write [{where}]")
    _check_keys(table, _LAYER_KEYS, where, path)
    src = _opt(table, "path", str, where, path)
    if src is None:
        raise PlanError(f"'{where}.path' is missing", path=path,
                        hint=f'add path = "..." under [{where}]')
    geometry = table.get("geometry")
    if geometry is not None:
        check_geometry(geometry, where=where, path=path)
    fields = _table(table, "fields", path, where)
    spec = layer_role(role, geometry=geometry, fields=fields, plugin=plugin_roles, path=path)
    _check_layer_fields(fields, spec.fields, role=role, where=where, path=path)
    radius = _point_radius(table, spec, where=where, path=path)
    encoding = _opt(table, "encoding", str, where, path)
    if encoding is not None:
        import codecs

        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise PlanError(f"'{where}.encoding' is not a known encoding: {encoding!r}",
                            path=path, hint="use e.g. GBK, GB18030 or UTF-8") from exc
    assume = _opt(table, "assume_crs", str, where, path)
    if assume is not None:
        _check_crs_text(assume, f"{where}.assume_crs", path, allow_auto=False)
    pg_where, geometry_column = _pg_keys(table, src, where=where, path=path)
    return LayerSpec(
        role=role,
        path=_layer_path(src, base, f"{where}.path", path, allow_remote=allow_remote),
        layer=_opt(table, "layer", str, where, path),
        encoding=encoding,
        assume_crs=assume,
        fields=dict(fields),
        point_radius_m=None if radius is None else float(radius),
        geometry=geometry,
        where=pg_where,
        geometry_column=geometry_column,
    )


def _layer_path(text: str, base: Path, where: str, path: Path | None, *,
                allow_remote: bool) -> Path | str:
    """Return a layer's path: a PostgreSQL URL (checked: no password) or as :func:`_resolve`."""
    from spatialplan.io.postgis import check_url, is_postgres

    if is_postgres(text):
        return check_url(text, where=where, plan=path)
    return _resolve(text, base, where, path, allow_remote=allow_remote)


def _pg_keys(table: dict, src: str, *, where: str, path: Path | None
             ) -> tuple[str | None, str | None]:
    """Return ``where`` (parsed to check it) and ``geometry_column``: PostGIS layers only."""
    from spatialplan.io.postgis import is_postgres, parse_where

    values = [_opt(table, key, str, where, path) for key in _PG_KEYS]
    for key, value in zip(_PG_KEYS, values, strict=True):
        if value is not None and not is_postgres(src):
            raise PlanError(f"'{where}.{key}' is only for a PostgreSQL layer", path=path,
                            hint=f'remove {key}, or give path = "postgresql://user@host/db" '
                            'and layer = "schema.table"')
    if values[0] is not None:
        parse_where(values[0], where=f"{where}.where", plan=path)
    return values[0], values[1]


def _check_layer_fields(fields: dict, allowed: tuple[str, ...], *, role: str, where: str,
                        path: Path | None) -> None:
    """Refuse a ``fields`` key that is not a canonical field of ``role``, or not text."""
    for canon in fields:
        if canon not in allowed:
            raise PlanError(
                f"unknown key '{where}.fields.{canon}': not a canonical field of {role}",
                path=path, hint="canonical fields of " + role + " are "
                + (", ".join(allowed) if allowed else "(none)"),
            )
        _opt(fields, canon, str, f"{where}.fields", path)


def _point_radius(table: dict, spec: LayerRole, *, where: str, path: Path | None
                  ) -> int | float | None:
    """Return the layer's ``point_radius_m``, checked: > 0, and only for a point-site role."""
    radius = _opt(table, "point_radius_m", (int, float), where, path)
    if radius is not None:
        if not spec.point_sites:
            sites = [r.name for r in BUILTIN_ROLES.values() if r.point_sites]
            raise PlanError(f"'{where}.point_radius_m' is only allowed for "
                            f"{', '.join(sites)}", path=path,
                            hint="remove point_radius_m from this layer")
        if not radius > 0:
            raise PlanError(f"'{where}.point_radius_m' must be > 0, got {radius}", path=path,
                            hint="give the site radius in metres, e.g. 30")
    return radius


def _parse_raster(name: str, table: Any, base: Path, path: Path | None,
                  allow_remote: bool) -> RasterSpec:
    where = f"rasters.{name}"
    if not isinstance(table, dict):
        raise PlanError(f"'{where}' must be a table", path=path, hint=f"write [{where}]")
    _check_keys(table, _RASTER_KEYS, where, path)
    src = _opt(table, "path", str, where, path)
    if src is None:
        raise PlanError(f"'{where}.path' is missing", path=path,
                        hint=f'add path = "..." under [{where}]')
    assume = _opt(table, "assume_crs", str, where, path)
    if assume is not None:
        _check_crs_text(assume, f"{where}.assume_crs", path, allow_auto=False)
    nodata = _opt(table, "nodata", (int, float), where, path)
    return RasterSpec(
        name=name,
        path=_resolve(src, base, f"{where}.path", path, allow_remote=allow_remote),
        assume_crs=assume,
        nodata=None if nodata is None else float(nodata),
    )
