"""The facility catalogue ("8+X" types) and the 用地用海 land-use code table.

Both ship as CSV files in ``layers/catalog/`` (see its ``README.md`` for sources and
editions); a user may pass their own files instead. Everything here is data-driven: which
facilities form the "8", which land-use codes suit them, whether they may sit outside the
urban development boundary and which of the ten kinds of limited activity allowed in the
ecological red line (自然资发〔2022〕142号, ``redline_activities.csv``) they may claim.

Examples
--------
>>> from spatialplan.rules.catalog import read_catalog, resolve_facility, landuse_compatible
>>> cat = read_catalog()
>>> resolve_facility("乡镇卫生院", cat)
'health_center'
>>> landuse_compatible("080403", cat.facilities.loc["school", "landuse_codes"])
True
"""

from __future__ import annotations

import datetime as _dt
import difflib
import functools
import io
import logging
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from spatialplan.core._resources import catalog_path
from spatialplan.errors import RulebookError

__all__ = [
    "CHOICE_COLUMNS",
    "FACILITY_COLUMNS",
    "LANDUSE_COLUMNS",
    "MAX_CATALOG_BYTES",
    "REDLINE_ACTIVITY_COLUMNS",
    "REDLINE_CATEGORY_KINDS",
    "Catalog",
    "eight_codes",
    "landuse_compatible",
    "landuse_unknown",
    "normalize_key",
    "read_catalog",
    "read_landuse_codes",
    "read_redline_activities",
    "resolve_facility",
]

log = logging.getLogger(__name__)

#: columns of ``facility_types.csv``, in order
FACILITY_COLUMNS = (
    "code", "name_zh", "name_en", "group", "landuse_codes", "outside_udb",
    "redline_kind", "aliases", "source", "valid_from",
)
#: columns of ``landuse_codes.csv``, in order
LANDUSE_COLUMNS = ("code", "name_zh", "level", "parent", "edition")

#: largest catalogue or land-use code file read (the bundled ones are a few kB)
MAX_CATALOG_BYTES = 4 * 1024 * 1024

_GROUPS = ("8", "X")
_OUTSIDE_UDB = ("allowed", "review")
#: facility columns that hold one of a fixed set of values; a new such column is one entry
#: (``redline_kind`` is checked against the table of the ten kinds, :func:`read_redline_activities`)
CHOICE_COLUMNS: dict[str, tuple[str, ...]] = {
    "group": _GROUPS,
    "outside_udb": _OUTSIDE_UDB,
}
#: columns of ``redline_activities.csv`` (the ten kinds of 自然资发〔2022〕142号), in order
REDLINE_ACTIVITY_COLUMNS = ("number", "kind", "name_zh", "wording_zh", "source")
#: the old ``redline_category`` values (catalogues before the ten kinds) → their kind
REDLINE_CATEGORY_KINDS = {"none": "none", "linear": "linear_infrastructure",
                          "water": "linear_infrastructure", "tourism": "tourism_education"}
_CODE_RE = re.compile(r"^(\d{2}){1,3}$")
_FACILITY_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Catalog:
    """Facility types and land-use codes, validated.

    Attributes
    ----------
    facilities
        One row per facility type, indexed by ``code``. ``landuse_codes`` and ``aliases`` are
        tuples of str; ``group`` is ``"8"`` or ``"X"``; ``valid_from`` a ``datetime.date``.
    landuse
        The 用地用海 code table indexed by ``code`` (str, leading zeros kept) with
        ``name_zh``, ``level`` (int 1-3), ``parent`` (str, ``""`` for level 1), ``edition``.
    path, landuse_path
        The files the two tables were read from.
    """

    facilities: pd.DataFrame
    landuse: pd.DataFrame
    path: Path
    landuse_path: Path

    def name_of(self, code: str) -> str:
        """Return the Chinese name of a facility code (``"school"`` → ``"学校"``)."""
        return str(self.facilities.loc[code, "name_zh"])


def normalize_key(value: object) -> str:
    r"""Normalise a facility name or code for matching.

    Full-width characters become half-width (NFKC), all whitespace is removed and Latin
    letters are lower-cased.

    Examples
    --------
    >>> normalize_key(" \uff33\uff43hool ")  # full-width "Sc"
    'school'
    >>> normalize_key("乡镇 卫生院")
    '乡镇卫生院'
    """
    text = unicodedata.normalize("NFKC", str(value))
    return "".join(text.split()).lower()


def _read_csv(path: Path, columns: tuple[str, ...], *, what: str) -> pd.DataFrame:
    """Read a catalogue CSV as text (UTF-8, BOM tolerated) and check its columns.

    The file must be a regular file of at most :data:`MAX_CATALOG_BYTES`; anything else
    (missing, a pipe, too large, not UTF-8, not CSV, a missing column) is a
    :class:`~spatialplan.errors.RulebookError` naming the file and the fix.
    """
    from spatialplan.core._inputs import read_small_file

    try:
        raw = read_small_file(path, error=RulebookError, what=f"the {what}",
                              limit=MAX_CATALOG_BYTES)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise RulebookError(f"{what} not found", path=path,
                            hint="give an existing CSV file") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulebookError(
            f"{what} is not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})",
            path=path, hint="save it as CSV in UTF-8 (Excel: CSV UTF-8; GBK is not read)",
        ) from exc
    if "\0" in text:
        raise RulebookError(f"{what} holds NUL characters: not a text CSV", path=path,
                            hint="save it as CSV in UTF-8")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RulebookError(f"{what} is not a readable CSV: {exc}", path=path,
                            hint="save it as CSV in UTF-8 with one header row") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RulebookError(
            f"{what} lacks column(s) {', '.join(missing)}; it has {', '.join(df.columns)}",
            path=path, hint=f"the columns must be: {', '.join(columns)}",
        )
    return df.apply(lambda s: s.str.strip())


def read_landuse_codes(path: str | Path | None = None) -> pd.DataFrame:
    """Read and validate a 用地用海 land-use code table.

    Parameters
    ----------
    path
        CSV with columns ``code, name_zh, level, parent, edition``; default the bundled
        2023 table.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``code`` (str, leading zeros kept), ``level`` as int.

    Examples
    --------
    >>> read_landuse_codes().loc["080403", "name_zh"]
    '中小学用地'
    """
    path = Path(path) if path is not None else catalog_path("landuse_codes.csv")
    df = _read_csv(path, LANDUSE_COLUMNS, what="land-use code table")
    for i, row in enumerate(df.itertuples(index=False), start=2):
        code, level, parent = row.code, row.level, row.parent
        if not _CODE_RE.match(code):
            raise RulebookError(f"line {i}: land-use code {code!r} is not 2, 4 or 6 digits",
                                path=path, feature=code)
        if level != str(len(code) // 2):
            raise RulebookError(f"line {i}: code {code} has level {level!r}, expected "
                                f"{len(code) // 2}", path=path, feature=code)
        expected_parent = code[:-2]
        if parent != expected_parent:
            raise RulebookError(f"line {i}: code {code} has parent {parent!r}, expected "
                                f"{expected_parent!r}", path=path, feature=code)
    dup = df["code"][df["code"].duplicated()]
    if len(dup):
        raise RulebookError(f"duplicate land-use code(s) {', '.join(dup)}", path=path)
    known = set(df["code"])
    orphans = [c for c in df["code"] if len(c) > 2 and c[:-2] not in known]
    if orphans:
        raise RulebookError(f"land-use code(s) {', '.join(orphans)} have no parent row",
                            path=path, hint="add the parent codes")
    df["level"] = df["level"].astype(int)
    return df.set_index("code", drop=False).rename_axis(None)


@functools.lru_cache(maxsize=1)
def _bundled_activities() -> pd.DataFrame:
    return _read_activities(catalog_path("redline_activities.csv"))


def read_redline_activities(path: str | Path | None = None) -> pd.DataFrame:
    """Read the ten kinds of limited human activity allowed in the ecological red line.

    自然资发〔2022〕142号《关于加强生态保护红线管理的通知（试行）》 lists ten kinds of limited
    human activity that may take place in the 生态保护红线 (outside the core zones of nature
    reserves). The table keeps each kind's number (1-10), a short key (``kind``), a short
    Chinese name, the notice's wording and its ``source`` (which says where the wording is a
    paraphrase that could not be checked against the official text).

    Parameters
    ----------
    path
        CSV with columns ``number, kind, name_zh, wording_zh, source``; default the bundled
        ``redline_activities.csv`` (read once per process).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``kind``, ``number`` as int, in number order.

    Raises
    ------
    RulebookError
        A missing column, a number other than 1-10 or used twice, a key that is not a
        lower-case identifier (or is ``none``) or used twice, an empty name or wording.

    Examples
    --------
    >>> acts = read_redline_activities()
    >>> int(acts.loc["linear_infrastructure", "number"]), len(acts)
    (6, 10)
    """
    if path is None:
        return _bundled_activities().copy()
    return _read_activities(Path(path))


def _read_activities(path: Path) -> pd.DataFrame:
    df = _read_csv(path, REDLINE_ACTIVITY_COLUMNS, what="red-line activity table")
    for line, row in enumerate(df.itertuples(index=False), start=2):
        problem = None
        if row.number not in {str(n) for n in range(1, 11)}:
            problem = f"number {row.number!r} is not 1-10"
        elif not _FACILITY_CODE_RE.match(row.kind) or row.kind == "none":
            problem = f"kind {row.kind!r} is not a lower-case key (e.g. linear_infrastructure)"
        elif not row.name_zh or not row.wording_zh or not row.source:
            problem = "name_zh, wording_zh and source must be filled in"
        if problem:
            raise RulebookError(f"line {line}: {problem}", path=path, feature=row.kind or None,
                                hint="one row per kind of 自然资发〔2022〕142号, numbered 1-10")
    for col in ("number", "kind"):
        dup = df[col][df[col].duplicated()]
        if len(dup):
            raise RulebookError(f"{col} {dup.iloc[0]!r} is used by two rows", path=path,
                                hint=f"every {col} must be unique")
    df["number"] = df["number"].astype(int)
    df = df.sort_values("number", kind="stable")
    return df.set_index("kind", drop=False).rename_axis(None)


def _redline_kinds(df: pd.DataFrame, path: Path, kinds: pd.DataFrame) -> pd.Series:
    """Return the ``redline_kind`` column of a facility table, checked against the ten kinds.

    A catalogue written before the ten kinds has ``redline_category`` (``linear``, ``water``,
    ``tourism``, ``none``) instead: it is mapped to kinds 6, 6, 5 and none, with a warning.
    """
    if "redline_kind" in df.columns:
        column = "redline_kind"
        values = df[column]
    elif "redline_category" in df.columns:
        column = "redline_category"
        values = df[column].map(lambda v: REDLINE_CATEGORY_KINDS.get(v, v))
        log.warning("facility catalogue %s has the old column redline_category: read as "
                    "redline_kind (linear, water → linear_infrastructure; tourism → "
                    "tourism_education); rename the column and its values", path)
    else:
        raise RulebookError(
            f"facility catalogue lacks column redline_kind; it has {', '.join(df.columns)}",
            path=path, hint=f"the columns must be: {', '.join(FACILITY_COLUMNS)}")
    valid = ("none", *kinds.index)
    for line, (given, kind, code) in enumerate(zip(df[column], values, df["code"],
                                                   strict=True), start=2):
        if kind not in valid:
            raise RulebookError(
                f"line {line}: unknown {column} {given!r}", path=path, feature=code or None,
                hint="use none or a kind of 自然资发〔2022〕142号: " + ", ".join(
                    f"{k} ({n})" for k, n in zip(kinds.index, kinds["number"], strict=True)))
    return values


def _split(value: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(";") if p.strip())


def _check_row(row: pd.Series, line: int, landuse: set[str], path: Path) -> None:
    """Validate one facility row; raise RulebookError naming the line and the field."""
    code = row["code"]

    def fail(msg: str, hint: str) -> None:
        raise RulebookError(f"line {line}: {msg}", path=path, feature=code or None, hint=hint)

    if not _FACILITY_CODE_RE.match(code):
        fail(f"facility code {code!r} is not a lower-case identifier",
             "use codes like 'school' or 'health_center'")
    if not row["name_zh"]:
        fail("name_zh is empty", "give the Chinese name")
    for column, choices in CHOICE_COLUMNS.items():
        if row[column] not in choices:
            fail(f"unknown {column} {row[column]!r}",
                 f"{column} must be one of " + ", ".join(choices))
    codes = _split(row["landuse_codes"])
    if not codes:
        fail("landuse_codes is empty", "give ';'-separated 用地用海 codes")
    unknown = [c for c in codes if c not in landuse]
    if unknown:
        fail(f"land-use code(s) {', '.join(unknown)} are not in the land-use code table",
             "use codes of the 2023 用地用海 table with leading zeros, e.g. 080403")
    try:
        _dt.date.fromisoformat(row["valid_from"])
    except ValueError:
        fail(f"valid_from {row['valid_from']!r} is not a date", "write it as YYYY-MM-DD")


def _check_unique_keys(df: pd.DataFrame, path: Path) -> None:
    """Every code, name and alias must resolve to exactly one facility."""
    dup = df["code"][df["code"].duplicated()]
    if len(dup):
        raise RulebookError(f"duplicate facility code(s) {', '.join(dup)}: used by both rows",
                            path=path, feature=dup.iloc[0], hint="every code must be unique")
    owner: dict[str, str] = {}
    for row in df.itertuples(index=False):
        keys = {normalize_key(k) for k in (row.code, row.name_zh, *row.aliases)}
        for key in keys:
            if key in owner and owner[key] != row.code:
                raise RulebookError(
                    f"name or alias {key!r} is used by both {owner[key]!r} and {row.code!r}",
                    path=path, feature=row.code,
                    hint="every code, Chinese name and alias must be unique")
            owner[key] = row.code


def read_catalog(
    path: str | Path | None = None, *, landuse_path: str | Path | None = None
) -> Catalog:
    """Read and validate the facility catalogue and the land-use code table.

    Parameters
    ----------
    path
        Facility CSV (columns ``code, name_zh, name_en, group, landuse_codes, outside_udb,
        redline_kind, aliases, source, valid_from``); default the bundled one. An older
        file with ``redline_category`` (``linear``/``water``/``tourism``/``none``) instead of
        ``redline_kind`` is read with those mapped to kinds 6, 6, 5 and none (a warning is
        logged).
    landuse_path
        Land-use code CSV; default the bundled 2023 用地用海 table.

    Returns
    -------
    Catalog

    Raises
    ------
    RulebookError
        Missing column, unknown group, outside_udb or redline kind (the message lists the
        keys of :func:`read_redline_activities`), a land-use code
        not in the table, a bad date, or a duplicate code, name or alias.

    Examples
    --------
    >>> cat = read_catalog()
    >>> cat.facilities.loc["school", "landuse_codes"]
    ('080403', '080404')
    """
    path = Path(path) if path is not None else catalog_path("facility_types.csv")
    landuse_file = (Path(landuse_path) if landuse_path is not None
                    else catalog_path("landuse_codes.csv"))
    landuse = read_landuse_codes(landuse_file)
    df = _read_csv(path, tuple(c for c in FACILITY_COLUMNS if c != "redline_kind"),
                   what="facility catalogue")
    if df.empty:
        raise RulebookError("facility catalogue has no rows", path=path)
    df["redline_kind"] = _redline_kinds(df, path, read_redline_activities())
    df = df.drop(columns="redline_category", errors="ignore")
    known = set(landuse.index)
    for line, (_, row) in enumerate(df.iterrows(), start=2):
        _check_row(row, line, known, path)
    df["landuse_codes"] = df["landuse_codes"].map(_split)
    df["aliases"] = df["aliases"].map(_split)
    df["valid_from"] = df["valid_from"].map(_dt.date.fromisoformat)
    _check_unique_keys(df, path)
    extra = [c for c in df.columns if c not in FACILITY_COLUMNS]
    facilities = df[list(FACILITY_COLUMNS) + extra].set_index("code", drop=False)
    log.debug("catalogue %s: %d facility types, %d land-use codes", path, len(facilities),
              len(landuse))
    return Catalog(facilities=facilities.rename_axis(None), landuse=landuse, path=path,
                   landuse_path=landuse_file)


def _lookup(catalog: Catalog) -> dict[str, str]:
    table: dict[str, str] = {}
    for row in catalog.facilities.itertuples(index=False):
        for key in (row.code, row.name_zh, row.name_en, *row.aliases):
            table.setdefault(normalize_key(key), row.code)
    return table


def resolve_facility(value: object, catalog: Catalog) -> str:
    """Return the facility code for a code, Chinese name or alias.

    Matching ignores whitespace, full-width/half-width differences and Latin case.

    Parameters
    ----------
    value
        What the project register says, e.g. ``"school"``, ``"学校"``, ``"乡镇卫生院"``.
    catalog
        The catalogue from :func:`read_catalog`.

    Raises
    ------
    RulebookError
        Unknown or empty value; the message lists close matches.

    Examples
    --------
    >>> resolve_facility("　中小学 ", read_catalog())
    'school'
    """
    key = "" if value is None or (isinstance(value, float) and value != value) else (
        normalize_key(value))
    table = _lookup(catalog)
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=5, cutoff=0.5) if key else []
    if not close and key:
        close = [k for k in table if key in k or k in key][:5]
    suggestions = [f"{k} ({table[k]})" for k in close]
    hint = ("did you mean " + ", ".join(suggestions) + "?" if suggestions
            else "use a code of the facility catalogue: " + ", ".join(catalog.facilities.index))
    raise RulebookError(f"unknown facility type {value!r}", path=catalog.path, hint=hint)


def _clean_code(code: object) -> str:
    if code is None or (isinstance(code, float) and code != code):
        return ""
    text = normalize_key(code)
    if text.isdigit() and len(text) % 2:
        text = "0" + text  # a code read as a number lost its leading zero
    return text


def landuse_compatible(
    code: object, allowed: str | Iterable[str], *, parent_counts: bool = False
) -> bool:
    """Whether a parcel's 用地用海 code suits a facility allowing ``allowed`` codes.

    A parcel code equal to an allowed code or below it in the hierarchy is compatible
    (allowed ``0804`` covers ``080403``). A parcel coded with an ancestor of an allowed
    code (``0804`` for an allowed ``080403``) is compatible only if ``parent_counts``.

    Parameters
    ----------
    code
        The parcel's code (str; an odd-length digit string gets its lost leading zero back).
        Missing → ``False``.
    allowed
        Allowed codes, as an iterable or a ``";"``-separated string.
    parent_counts
        Accept a parcel coded with a coarser (ancestor) code.

    Examples
    --------
    >>> landuse_compatible("080403", ["0804"])
    True
    >>> landuse_compatible("0804", "080403;080404")
    False
    >>> landuse_compatible("0804", "080403;080404", parent_counts=True)
    True
    """
    parcel = _clean_code(code)
    if not parcel:
        return False
    codes = _split(allowed) if isinstance(allowed, str) else tuple(allowed)
    for a in (_clean_code(c) for c in codes):
        if not a:
            continue
        if parcel.startswith(a):
            return True
        if parent_counts and a.startswith(parcel):
            return True
    return False


def landuse_unknown(code: object, known: Collection[str]) -> str | None:
    """Return a parcel's code when it is given but not in the land-use code table.

    Parameters
    ----------
    code
        The parcel's code, cleaned as in :func:`landuse_compatible` (a digit string of odd
        length gets its lost leading zero back).
    known
        The codes of the table (``Catalog.landuse.index``).

    Returns
    -------
    str or None
        The cleaned code if it is unknown; ``None`` for a known or a missing code.

    Examples
    --------
    >>> known = read_landuse_codes().index
    >>> landuse_unknown("0899", known), landuse_unknown("899", known)
    ('0899', '0899')
    >>> landuse_unknown("080403", known) is None, landuse_unknown(None, known) is None
    (True, True)
    """
    parcel = _clean_code(code)
    return parcel if parcel and parcel not in known else None


def eight_codes(catalog: Catalog) -> list[str]:
    """Return the codes of the "8" facility types, in catalogue order.

    Examples
    --------
    >>> eight_codes(read_catalog())[:3]
    ['road', 'health_center', 'school']
    """
    fac = catalog.facilities
    return [str(c) for c in fac.index[fac["group"] == "8"]]
