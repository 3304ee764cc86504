"""Canonical fields per layer role: aliases, mapping and value parsing (helper of ``read``).

Example
-------
>>> from spatialplan.io._fields import map_fields
>>> map_fields(["xzqdm", "XZQMC", "geometry"], role="townships")
{'code': 'xzqdm', 'name': 'XZQMC'}
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import partial

import numpy as np
import pandas as pd

from spatialplan.errors import FieldError
from spatialplan.io.roles import BUILTIN_ROLES, MAX_INVESTMENT_WAN, LayerRole

__all__ = [
    "CANONICAL_FIELDS",
    "CONSTRUCTION_TYPES",
    "CONSTRUCTION_TYPE_VALUES",
    "FIELD_ALIASES",
    "FIELD_KINDS",
    "MAX_INVESTMENT_WAN",
    "NUMBER_RANGES",
    "REQUIRED_FIELDS",
    "STATUS_VALUES",
    "apply_fields",
    "construction_type",
    "map_fields",
    "parse_date",
    "parse_number",
]

log = logging.getLogger(__name__)

# The per-role tables below are views of the layer-role registry (:mod:`spatialplan.io.roles`),
# kept under their old names: a role's fields, aliases, kinds and ranges are defined there.

#: canonical fields per built-in role, in output order
CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {r.name: r.fields for r in BUILTIN_ROLES.values()}

#: required canonical fields per built-in role (roles with some)
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {r.name: r.required for r in BUILTIN_ROLES.values()
                                               if r.required}

#: default source-field aliases (case-insensitive), per built-in role and canonical field
FIELD_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    r.name: dict(r.aliases) for r in BUILTIN_ROLES.values() if r.aliases}

#: value kind of each canonical field of the built-in roles: str, date, number, year, ...
FIELD_KINDS: dict[str, str] = {f: r.kinds.get(f, "str") for r in BUILTIN_ROLES.values()
                               for f in r.fields}

#: accepted project statuses and the Chinese words mapped to them
STATUS_VALUES: dict[str, str] = {
    "planned": "planned", "规划": "planned", "计划": "planned", "拟建": "planned",
    "未开工": "planned", "前期": "planned",
    "under_construction": "under_construction", "在建": "under_construction",
    "施工中": "under_construction", "建设中": "under_construction",
    "completed": "completed", "已建": "completed", "建成": "completed", "已完成": "completed",
    "完成": "completed", "竣工": "completed", "已竣工": "completed",
}

#: the official 建设性质 terms (国家统计局 固定资产投资统计: 新建、扩建、改建、迁建、恢复; plus
#: 改扩建 and 续建 as planning registers write them), in display order
CONSTRUCTION_TYPES: tuple[str, ...] = ("新建", "扩建", "改建", "改扩建", "续建", "迁建", "恢复")

#: accepted spellings of each 建设性质 term (compared after :func:`_construction_key`:
#: full-width → half-width, spaces, "、", "/" and a trailing "项目"/"工程" removed, lower case)
CONSTRUCTION_TYPE_VALUES: dict[str, str] = {
    **{t: t for t in CONSTRUCTION_TYPES},
    "new": "新建", "newbuild": "新建", "new_build": "新建",
    "newconstruction": "新建", "new_construction": "新建",
    "extension": "扩建", "expansion": "扩建",
    "改造": "改建", "rebuild": "改建", "renovation": "改建",
    "reconstruction": "改建",
    "改扩": "改扩建", "改建扩建": "改扩建", "扩改建": "改扩建", "改建和扩建": "改扩建",
    "renovation_expansion": "改扩建", "renovation_and_expansion": "改扩建",
    "continued": "续建", "continuation": "续建", "continuing": "续建",
    "易地新建": "迁建", "异地新建": "迁建", "relocation": "迁建",
    "relocated": "迁建",
    "恢复重建": "恢复", "restoration": "恢复", "restore": "恢复",
}

_STRING_FIELDS_KEEP_ZEROS = {"code", "landuse", "project_id", "township_code", "zone"}

#: accepted range (inclusive) of each number field of the built-in roles; a value outside is a
#: field error of its feature. Years have theirs in ``_parse_year`` (a four-digit year, 1900-2200)
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    f: lim for r in BUILTIN_ROLES.values() for f, lim in r.ranges.items()}

def _role(role: str | LayerRole) -> LayerRole:
    """Return the :class:`~spatialplan.io.roles.LayerRole` of ``role``.

    A name gives the built-in role, or a role without canonical fields.
    """
    if isinstance(role, LayerRole):
        return role
    return BUILTIN_ROLES.get(role) or LayerRole(name=role, geometry="any")


def map_fields(columns: Iterable[str], *, role: str | LayerRole,
               fields: Mapping[str, str] | None = None, layer: str | None = None,
               path: object | None = None) -> dict[str, str]:
    """Find the source column of each canonical field of ``role``.

    ``role`` is a built-in role's name or a :class:`~spatialplan.io.roles.LayerRole` (a plan's
    own role, whose canonical fields are its ``fields`` keys).

    The plan's ``fields`` (canonical → source name) win over the canonical name itself, which
    wins over the default aliases; matching is case-insensitive.

    Returns
    -------
    dict
        canonical name → source column, for the fields found.

    Raises
    ------
    FieldError
        A mapped or required field does not exist; the message lists the fields that do.

    Example
    -------
    >>> map_fields(["XMDM", "XMMC", "SSLX"], role="projects")
    {'project_id': 'XMDM', 'name': 'XMMC', 'facility': 'SSLX'}
    """
    spec = _role(role)
    role = spec.name
    columns = [c for c in columns if c != "geometry"]
    lower = {c.lower(): c for c in columns}
    existing = ", ".join(columns) or "(none)"
    canon_fields = spec.fields
    mapping: dict[str, str] = {}
    for canon, source in (fields or {}).items():
        if canon not in canon_fields:
            raise FieldError(f"'{canon}' is not a canonical field of {role}", layer=layer,
                             path=path, hint="canonical fields: " + ", ".join(canon_fields))
        if source.lower() not in lower:
            raise FieldError(
                f"field '{source}' mapped to '{canon}' does not exist in layer {role}",
                layer=layer, path=path, hint=f"fields that exist: {existing}"
                + _truncation_hint(source, lower),
            )
        mapping[canon] = lower[source.lower()]
    aliases = spec.aliases
    taken = set(mapping.values())
    for canon in canon_fields:
        if canon in mapping:
            continue
        for cand in (canon, *aliases.get(canon, ())):
            src = lower.get(cand.lower())
            if src is not None and src not in taken:
                mapping[canon] = src
                taken.add(src)
                break
    for canon in spec.required:
        if canon not in mapping:
            names = " / ".join((canon, *aliases.get(canon, ())))
            raise FieldError(
                f"required field '{canon}' ({names}) not found in layer {role}",
                layer=layer, path=path,
                hint=f"fields that exist: {existing}; map one in the plan with "
                f'fields = {{ {canon} = "SOURCE_NAME" }}',
            )
    return mapping


def _truncation_hint(source: str, lower: Mapping[str, str]) -> str:
    """Point at a field that is ``source`` cut to 10 bytes (the dBase/Shapefile limit)."""
    cut = source.encode("utf-8")[:10].decode("utf-8", errors="ignore").lower()
    match = lower.get(cut)
    if match is None or len(source.encode("utf-8")) <= 10:
        return ""
    return (f"; did you mean '{match}'? Shapefile field names are cut to 10 bytes, so map "
            f"the field as '{match}'")


def apply_fields(df: pd.DataFrame, mapping: Mapping[str, str], *, role: str | LayerRole,
                 layer: str | None = None, path: object | None = None) -> pd.DataFrame:
    """Rename mapped columns to canonical names, parse their values and order the columns.

    Order: ``feature_id``, canonical fields, other source fields, geometry. Missing optional
    canonical fields are added empty (NaT, NaN, <NA> or None). ``df`` must have ``feature_id``.

    Example
    -------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"feature_id": ["built:0"], "XMDM": [7]})
    >>> apply_fields(df, {"project_id": "XMDM"}, role="built")["project_id"].tolist()
    ['7']
    """
    spec = _role(role)
    role = spec.name
    df = df.copy()
    canon_fields = spec.fields
    sources = set(mapping.values())
    clash = {c: f"{c}_source" for c in df.columns
             if c in canon_fields and c not in sources and c not in mapping}
    if clash:
        log.warning("layer %s: source fields %s clash with canonical names; renamed to %s",
                    role, list(clash), list(clash.values()))
        df = df.rename(columns=clash)
    df = df.rename(columns={src: canon for canon, src in mapping.items()})
    for canon in canon_fields:
        kind = spec.kinds.get(canon, "str")
        if canon in df.columns:
            df[canon] = _parse_column(df, canon, kind, role=role, layer=layer, path=path,
                                      limits=spec.ranges.get(canon))
        else:
            df[canon] = _empty_column(kind, len(df), df.index)
    geom = [c for c in df.columns if c == getattr(df, "_geometry_column_name", None)]
    first = ["feature_id", *canon_fields]
    rest = [c for c in df.columns if c not in first and c not in geom]
    return df[first + rest + geom]


def _empty_column(kind: str, n: int, index: pd.Index) -> pd.Series:
    if kind == "date":
        return pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
    if kind == "number":
        return pd.Series(np.nan, index=index, dtype="float64")
    if kind == "year":
        return pd.Series(pd.NA, index=index, dtype="Int64")
    return pd.Series([None] * n, index=index, dtype="object")


def _parse_column(df: pd.DataFrame, canon: str, kind: str, *, role: str, layer: str | None,
                  path: object | None, limits: tuple[float, float] | None = None
                  ) -> pd.Series:
    values = df[canon]
    ids = df["feature_id"].tolist()
    if kind == "str":
        return _to_text(values, canon, role=role)
    if kind == "construction_type":
        return _construction_column(_to_text(values, canon, role=role), ids, role=role,
                                    layer=layer)
    parse = _PARSERS[kind]
    if limits is not None:
        parse = partial(_number_in_range, limits=limits)
    out = []
    seen: dict[tuple[type, object], object] = {}  # str / int value → its parsed value
    for fid, value in zip(ids, values.tolist(), strict=True):
        key = (type(value), value) if type(value) in (str, int) else None
        if key is not None and key in seen:
            out.append(seen[key])
            continue
        try:
            parsed = parse(value)
        except _OutOfRange as exc:
            raise FieldError(
                f"field '{canon}' of {fid} is out of range: {value!r} ({exc})",
                layer=layer or role, path=path, feature=fid,
                hint=_RANGE_HINTS.get(canon, _HINTS[kind]),
            ) from None
        except ValueError as exc:
            raise FieldError(
                f"field '{canon}' of {fid} has a value that cannot be read: {value!r} ({exc})",
                layer=layer or role, path=path, feature=fid, hint=_HINTS[kind],
            ) from None
        if key is not None:
            seen[key] = parsed
        out.append(parsed)
    return _parsed_column(out, kind, values.index)


def _parsed_column(out: list, kind: str, index: pd.Index) -> pd.Series:
    """Return the parsed values ``out`` of a ``kind`` field as a column of its dtype."""
    if kind == "date":
        return pd.Series(pd.to_datetime(pd.Series(out, dtype="object"), errors="raise"),
                         index=index).astype("datetime64[ns]")
    if kind == "number":
        return pd.Series(out, index=index, dtype="float64")
    if kind == "year":
        return pd.Series(out, index=index, dtype="Int64")
    return pd.Series(out, index=index, dtype="object")


_HINTS = {
    "date": "write dates like 2024-01-05, 2024/1/5, 20240105 or 2024年1月5日",
    "number": "write a plain number in 万元, e.g. 1250.5",
    "year": "write a four-digit year such as 2025",
    "status": "use planned / under_construction / completed (or 规划 / 在建 / 已建)",
}


def _construction_key(text: str) -> str:
    """``text`` compared loosely: half-width, no spaces or separators, lower case."""
    key = unicodedata.normalize("NFKC", text).strip().lower()
    key = re.sub(r"[\s、,，/;；]+", "", key).replace("-", "_")
    for suffix in ("项目", "工程"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
    return key


_CONSTRUCTION_KEYS = {_construction_key(k): v for k, v in CONSTRUCTION_TYPE_VALUES.items()}


def construction_type(value: object) -> tuple[str | None, bool]:
    """Return the official 建设性质 term of a register value, and whether it was recognised.

    A recognised spelling (``"改、扩建"``, ``"新建项目"``, ``"relocation"``) gives its term of
    :data:`CONSTRUCTION_TYPES`; an unrecognised one is kept as given (stripped) with
    ``False``, never mapped to a guess; a missing one gives ``(None, True)``.

    Examples
    --------
    >>> construction_type("改、扩建"), construction_type("扩能"), construction_type(None)
    (('改扩建', True), ('扩能', False), (None, True))
    """
    if _is_missing(value):
        return None, True
    text = str(value).strip()
    term = _CONSTRUCTION_KEYS.get(_construction_key(text))
    return (term, True) if term is not None else (text, False)


def _construction_column(texts: pd.Series, ids: list[str], *, role: str,
                         layer: str | None) -> pd.Series:
    """Normalise a 建设性质 column; unrecognised values are kept and named in a warning."""
    out, unknown = [], {}
    for fid, text in zip(ids, texts.tolist(), strict=True):
        term, known = construction_type(text)
        if not known:
            unknown.setdefault(term, []).append(fid)
        out.append(term)
    for text, fids in unknown.items():
        shown = ", ".join(fids[:5]) + (f" and {len(fids) - 5} more" if len(fids) > 5 else "")
        log.warning("layer %s: construction_type (建设性质) %r is not an official term (%s); "
                    "kept as given for %s", layer or role, text, "/".join(CONSTRUCTION_TYPES),
                    shown)
    return pd.Series(out, index=texts.index, dtype="object")


_RANGE_HINTS = {
    "investment_wan": "write the investment in 万元 (10,000 yuan), from 0 to "
    f"{MAX_INVESTMENT_WAN:.0e} 万元; leave it empty when unknown",
}


class _OutOfRange(ValueError):
    """A value that was read but lies outside its field's range."""


def _number_in_range(value: object, *, limits: tuple[float, float]) -> float:
    """:func:`parse_number`, refusing a value outside ``limits`` (missing stays NaN)."""
    number = parse_number(value)
    low, high = limits
    if number < low:
        raise _OutOfRange(f"below {low:g}" if low else "negative")
    if number > high:
        raise _OutOfRange(f"above {high:.0e}")
    return number


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _to_text(values: pd.Series, canon: str, *, role: str) -> pd.Series:
    numeric = (pd.api.types.is_numeric_dtype(values.dtype)
               and not pd.api.types.is_bool_dtype(values))
    if numeric and canon in _STRING_FIELDS_KEEP_ZEROS:
        log.warning("layer %s: field '%s' is stored as numbers; leading zeros may have "
                    "been lost in the source", role, canon)
    if isinstance(values.dtype, pd.StringDtype):  # text or missing: each distinct text once
        codes, uniques = pd.factorize(values)  # exact on the text; missing → -1
        texts = np.array([_text(v) for v in uniques.tolist()] + [None], dtype=object)
        return pd.Series(texts[codes], index=values.index, dtype="object")
    return pd.Series([_text(v) for v in values.tolist()], index=values.index, dtype="object")


def _text(value: object) -> str | None:
    """One value as stripped text; missing or blank → None, 12.0 → ``"12"``."""
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    return str(value).strip()


_DATE_PATTERNS = (
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T].*)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
    re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?$"),
)


def parse_date(value: object) -> pd.Timestamp:
    """Parse one date from the formats found in Chinese registers; missing → ``NaT``.

    Accepts ``2024-01-05``, ``2024/1/5``, ``2024.1.5``, ``20240105`` (text or integer),
    ``2024年1月5日``, and date / datetime / Timestamp objects.

    Raises
    ------
    ValueError
        If the value is not a date in one of these forms.

    Example
    -------
    >>> parse_date("2024年1月5日")
    Timestamp('2024-01-05 00:00:00')
    """
    if _is_missing(value):
        return pd.NaT
    if isinstance(value, pd.Timestamp | _dt.datetime | _dt.date | np.datetime64):
        return pd.Timestamp(value).normalize()
    if isinstance(value, int | np.integer | float | np.floating):
        if float(value).is_integer():
            value = str(int(value))
        else:
            raise ValueError("not a date")
    text = str(value).strip()
    for pattern in _DATE_PATTERNS:
        m = pattern.match(text)
        if m:
            year, month, day = (int(g) for g in m.groups())
            return pd.Timestamp(_dt.date(year, month, day))
    raise ValueError("not a date")


def parse_number(value: object) -> float:
    """Parse a finite number, removing thousands separators and a trailing 万元/万.

    A missing value (None, blank text, a NaN value) gives NaN.

    Raises
    ------
    ValueError
        If the value is not a number, or not a finite one (``inf``, ``1e999``, and the text
        ``"nan"``, which is no missing value).

    Example
    -------
    >>> parse_number("1,250.5万元")
    1250.5
    """
    if _is_missing(value):
        return float("nan")
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    else:
        text = str(value).strip().replace(",", "").replace("，", "").replace(" ", "")
        for suffix in ("万元", "万"):
            if text.endswith(suffix):
                text = text[: -len(suffix)]
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _parse_year(value: object) -> object:
    if _is_missing(value):
        return pd.NA
    text = str(value).strip().removesuffix("年")
    number = parse_number(text)
    if not number.is_integer() or not 1900 <= number <= 2200:
        raise ValueError("not a year")
    return int(number)


def _parse_status(value: object) -> object:
    if _is_missing(value):
        return None
    key = str(value).strip()
    status = STATUS_VALUES.get(key) or STATUS_VALUES.get(key.lower().replace(" ", "_"))
    if status is None:
        raise ValueError("unknown status")
    return status


#: value parser of each non-text field kind (pure functions of the value: parsed once per
#: distinct str / int value of a column)
_PARSERS = {"date": parse_date, "number": parse_number, "year": _parse_year,
            "status": _parse_status}
