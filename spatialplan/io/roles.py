"""Layer roles: the one registry of what each ``[layers.<role>]`` of a plan holds.

A role is defined once, as a frozen :class:`LayerRole`: its name, its geometry type
(``polygon``, ``line`` or ``point``), its canonical fields (required ones, default source-field
aliases, value kinds and ranges) and a one-line description. The built-in roles register here
(:func:`_builtin`, in reading order); the plan parser, the reader, the validation, the field
mapping, the error hints and the engines read :data:`BUILTIN_ROLES`, never a list of their own.

A plan may declare its own role (``[layers.rivers]`` with ``geometry = "line"``): that role
lives in the plan, not in this registry (:func:`layer_role` builds it), so that one plan's
roles never leak into the next. Its canonical fields are the keys of its ``fields`` table
(text, each required). A role only a plug-in rule names and the plan gives no ``geometry``
has geometry ``"any"``: every geometry type is kept, invalid ones repaired or rejected.

Example
-------
>>> from spatialplan.io.roles import BUILTIN_ROLES, layer_role
>>> BUILTIN_ROLES["townships"].geometry, BUILTIN_ROLES["townships"].required
('polygon', ('code', 'name'))
>>> layer_role("rivers", geometry="line").geometry
'line'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from spatialplan.errors import PlanError

__all__ = [
    "BUILTIN_ROLES",
    "GEOMETRY_TYPES",
    "LAYER_ROLES",
    "ROLE_NAME",
    "LayerRole",
    "check_geometry",
    "layer_role",
    "roles_table",
]

#: the geometry types a role may hold (a plan's ``geometry = "..."``)
GEOMETRY_TYPES = ("polygon", "line", "point")

#: a role name of a plan's own or a plug-in's layer (``[layers.rivers]``)
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: field names a plan's own role may not take (the reader sets them)
_RESERVED_FIELDS = ("feature_id", "geometry")


@dataclass(frozen=True)
class LayerRole:
    """One layer role.

    Attributes
    ----------
    name
        The role (``[layers.<name>]``; the prefix of every ``feature_id``).
    geometry
        ``"polygon"``, ``"line"`` or ``"point"``; ``"any"`` for a plug-in's layer whose plan
        gives no ``geometry`` (every type kept).
    description
        One line: what the layer holds.
    fields
        Canonical fields, in output order.
    required
        The canonical fields a layer must have (found by name, alias or the plan's mapping).
    aliases
        Default source-field names per canonical field (case-insensitive).
    kinds
        Value kind per canonical field (``str`` when not named): ``date``, ``number``,
        ``year``, ``status``, ``construction_type``.
    ranges
        Accepted (inclusive) range per ``number`` field; a value outside is a field error.
    point_sites
        A polygon role whose point features may be buffered to the plan's ``point_radius_m``.
    must_have_features
        A layer without any feature is an error.
    builtin
        Registered here (False: declared by a plan or a plug-in).
    """

    name: str
    geometry: str
    description: str = ""
    fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    point_sites: bool = False
    must_have_features: bool = False
    builtin: bool = False


_REGISTRY: dict[str, LayerRole] = {}

#: the built-in roles, name → :class:`LayerRole`, in reading order (read-only)
BUILTIN_ROLES: Mapping[str, LayerRole] = MappingProxyType(_REGISTRY)


def _builtin(name: str, geometry: str, description: str, **options: object) -> LayerRole:
    """Register one built-in role (module import time only)."""
    if name in _REGISTRY:  # pragma: no cover - a programming error, caught by any import
        raise ValueError(f"layer role {name!r} registered twice")
    if geometry not in (*GEOMETRY_TYPES, "point_or_polygon"):  # pragma: no cover - same
        raise ValueError(f"layer role {name!r}: unknown geometry {geometry!r}")
    role = LayerRole(name=name, geometry=geometry, description=description, builtin=True,
                     **options)  # type: ignore[arg-type]
    unknown = (set(role.required) | set(role.aliases) | set(role.kinds)
               | set(role.ranges)) - set(role.fields)
    if unknown:  # pragma: no cover - same
        raise ValueError(f"layer role {name!r}: {sorted(unknown)} are not among its fields")
    _REGISTRY[name] = role
    return role


#: largest accepted investment of one project, in 万元: 10⁸ 万元 = 10¹² yuan, more than three
#: times the whole 8+X programme of Guizhou (300 billion yuan for 6,000 projects); a larger
#: value is a unit or typing error, and would swamp every total of the 时序表
MAX_INVESTMENT_WAN = 1e8

#: largest accepted population of one village: a larger value is a unit or typing error
MAX_VILLAGE_POPULATION = 1e6

_builtin("townships", "polygon", "township outlines (乡镇行政区), one feature per township",
         fields=("code", "name", "county_code"), required=("code", "name"),
         aliases={"code": ("XZQDM",), "name": ("XZQMC",)}, must_have_features=True)
_builtin("redline", "polygon", "生态保护红线 (ecological protection red line)")
_builtin("farmland", "polygon", "永久基本农田 (permanent basic farmland)")
_builtin("udb", "polygon", "城镇开发边界 (urban development boundary), optional zone code",
         fields=("zone",), aliases={"zone": ("GHFQDM",)})
_builtin("parcels", "polygon", "planned land use parcels (用地用海 code)",
         fields=("landuse",), required=("landuse",),
         aliases={"landuse": ("YDYHDM", "YDDM", "DLBM")})
_builtin("projects", "polygon",
         "8+X project sites (polygons, or points buffered by point_radius_m)",
         fields=("project_id", "name", "township_code", "facility", "status",
                 "construction_type", "mapped_on", "permit_on", "start_on", "finish_on",
                 "investment_wan", "start_year", "end_year"),
         required=("project_id", "name", "facility"),
         aliases={
             "project_id": ("XMDM",),
             "name": ("XMMC",),
             "township_code": ("XZQDM",),
             "facility": ("XMLB", "SSLX"),
             "investment_wan": ("ZTZ", "TZE"),
             "construction_type": ("JSXZ", "建设性质", "XMXZ", "项目性质", "build_type",
                                   "construction_nature"),
         },
         kinds={"status": "status", "construction_type": "construction_type",
                "mapped_on": "date", "permit_on": "date", "start_on": "date",
                "finish_on": "date", "investment_wan": "number", "start_year": "year",
                "end_year": "year"},
         ranges={"investment_wan": (0.0, MAX_INVESTMENT_WAN)},
         point_sites=True, must_have_features=True)
_builtin("built", "polygon", "as-built footprints (先落图、后落地 evidence)",
         fields=("project_id",), required=("project_id",), aliases={"project_id": ("XMDM",)})
_builtin("cropland", "polygon", "耕地 (cropland), measured like the control lines")
_builtin("villages", "point_or_polygon",
         "villages (行政村 points or outlines; an outline counts at its representative point)",
         fields=("village_code", "name", "population", "township_code"),
         required=("village_code", "name"),
         aliases={"village_code": ("CJDM", "XZCDM", "ZLDWDM", "村代码", "村级代码", "行政村代码"),
                  "name": ("CJMC", "XZCMC", "ZLDWMC", "村名", "村名称", "行政村名称"),
                  "population": ("RK", "HJRK", "CZRK", "人口", "户籍人口", "常住人口"),
                  "township_code": ("XZDM", "乡镇代码")},
         kinds={"population": "number"}, ranges={"population": (0.0, MAX_VILLAGE_POPULATION)})
_builtin("roads", "line", "roads (lines) for the village reach, optional class and speed",
         fields=("class", "speed_kmh"),
         aliases={"class": ("DLDJ", "GLDJ", "道路等级"),
                  "speed_kmh": ("SJSD", "设计速度", "设计时速")},
         kinds={"speed_kmh": "number"}, ranges={"speed_kmh": (1.0, 200.0)})
_builtin("seats", "point", "town seats (镇区/乡政府驻地), one point per township",
         fields=("township_code", "name"),
         aliases={"township_code": ("XZQDM", "XZDM", "乡镇代码"), "name": ("XZQMC", "名称")})

#: the built-in role names, in reading order
LAYER_ROLES: tuple[str, ...] = tuple(BUILTIN_ROLES)


def check_geometry(value: object, *, where: str, path: Path | None = None) -> str:
    """Return a plan's ``geometry`` value, or raise :class:`PlanError` naming the key.

    Example
    -------
    >>> check_geometry("line", where="layers.rivers")
    'line'
    """
    if not isinstance(value, str) or value not in GEOMETRY_TYPES:
        raise PlanError(f"'{where}.geometry' must be one of {', '.join(GEOMETRY_TYPES)}, "
                        f"got {value!r}", path=path,
                        hint='write geometry = "polygon", "line" or "point"')
    return value


def layer_role(name: str, *, geometry: str | None = None, fields: Iterable[str] = (),
               plugin: bool = False, path: Path | None = None) -> LayerRole:
    """Return the role of one ``[layers.<name>]`` of a plan.

    Parameters
    ----------
    name
        The role name.
    geometry
        The plan's ``geometry`` value, if any.
    fields
        The canonical names of the plan's ``fields`` table: a plan's own role's fields.
    plugin
        A plug-in rule declares the role: without ``geometry`` it holds any geometry type.
    path
        The plan file, for error messages.

    Returns
    -------
    LayerRole
        The registered role for a built-in name; otherwise a role built for this plan.

    Raises
    ------
    PlanError
        An unknown geometry value, a built-in role declared with another geometry, a name
        that is not a role name, a reserved field name, or a role that is neither built in,
        declared with ``geometry`` nor named by a plug-in.

    Example
    -------
    >>> layer_role("redline").description
    '生态保护红线 (ecological protection red line)'
    >>> layer_role("wells", geometry="point", fields=["name"]).required
    ('name',)
    """
    where = f"layers.{name}"
    if geometry is not None:
        check_geometry(geometry, where=where, path=path)
    builtin = BUILTIN_ROLES.get(name)
    if builtin is not None:
        if geometry is not None and geometry != builtin.geometry:
            raise PlanError(
                f"'{where}.geometry' is {geometry!r}, but {name} is a built-in role holding "
                f"{builtin.geometry}s", path=path,
                hint=f"remove geometry from [{where}], or give your {geometry} layer a name "
                f"of its own, e.g. [layers.{name}_{geometry}s]")
        return builtin
    if not ROLE_NAME.match(name):
        raise PlanError(f"layer role 'layers.{name}' is not a role name", path=path,
                        hint="a role name is lower case letters, digits and '_', starting "
                        "with a letter, e.g. [layers.rivers]")
    if geometry is None and not plugin:
        raise unknown_role(name, path)
    own = tuple(fields)
    for canon in own:
        if canon in _RESERVED_FIELDS:
            raise PlanError(f"'{where}.fields.{canon}' is a name the reader sets", path=path,
                            hint=f"name the field otherwise, e.g. {canon}_source")
    if geometry is None:
        return LayerRole(name=name, geometry="any", fields=own, required=own,
                         description="layer of plug-in rules (any geometry type)")
    return LayerRole(name=name, geometry=geometry, fields=own, required=own,
                     description=f"the plan's own {geometry} layer")


def unknown_role(role: str, path: Path | None, plugin_roles: tuple[str, ...] = ()) -> PlanError:
    """Return the error for a ``[layers.<role>]`` that is not a known role.

    The role is neither built in, declared with ``geometry`` nor a loaded plug-in's layer;
    the error's hint lists the valid roles.

    Example
    -------
    >>> "townships" in unknown_role("forest", None).hint
    True
    """
    extra = f"; layers of the loaded plug-in rules: {', '.join(plugin_roles)}" if (
        plugin_roles) else ""
    return PlanError(f"unknown layer role 'layers.{role}'", path=path,
                     hint="valid roles are " + ", ".join(LAYER_ROLES) + extra
                     + f' (a plug-in rule of the rulebook may declare more); or declare your '
                     f'own with geometry = "line" (or "polygon", "point") under '
                     f'[layers.{role}]')


def roles_table() -> list[dict[str, object]]:
    """List the built-in roles as rows (name, geometry, required, optional fields, description).

    Example
    -------
    >>> roles_table()[0]["name"], roles_table()[0]["required"]
    ('townships', 'code, name')
    """
    return [{"name": r.name, "geometry": r.geometry,
             "required": ", ".join(r.required),
             "optional": ", ".join(f for f in r.fields if f not in r.required),
             "description": r.description} for r in BUILTIN_ROLES.values()]
