"""Read the ministry's land-submission coordinate TXT (部标坐标 TXT) into polygons.

The format has two sections::

    [属性描述]
    坐标系=2000国家大地坐标系
    几度分带=3
    投影类型=高斯克吕格
    计量单位=米
    带号=36
    [地块坐标]
    5,1.5000,1,示例地块,面,,公用设施,1302,@
    J1,1,3070000.000,36461000.000
    ...

Each parcel starts with a header ``点数,面积(公顷),地块号,地块名称,面,图幅号,用途,地类编码,@``
followed by its vertex lines ``点号,圈号,X,Y`` where **X is the northing and Y the easting**
(the easting may carry the zone prefix, ``36461000.000`` = zone 36). Ring (圈号) 1 is the
exterior, higher rings are holes. Only CGCS2000 3-degree Gauss-Krüger is supported; Xian80 and
Beijing54 files are refused because PROJ has no datum shift for them.

Every problem is an error naming the line: a wrong coordinate never becomes a plausible
polygon silently. A declared area that disagrees with the geometry is logged and flagged,
never trusted.
"""

from __future__ import annotations

import codecs
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from spatialplan.core.crs import zone_epsg
from spatialplan.errors import CRSError, DataSourceError, GeometryError, SpatialPlanError

__all__ = ["MISMATCH_TOLERANCE", "bubiao_crs", "read_bubiao_txt"]

log = logging.getLogger(__name__)

#: relative difference between declared and computed area above which a parcel is flagged
MISMATCH_TOLERANCE = 0.01

_HEADER_SECTION = "属性描述"
_COORD_SECTION = "地块坐标"
_REFUSED_DATUMS = ("西安", "北京", "1980", "1954", "xian", "beijing", "bj54", "北京54", "西安80")
_COLUMNS = ["parcel_no", "name", "use", "landuse", "declared_area_m2", "area_m2",
            "area_mismatch", "n_points", "source_line"]
_MIN_ZONE, _MAX_ZONE = 25, 45  # CGCS2000 3-degree zones in EPSG (75°E .. 135°E)


@dataclass
class _Parcel:
    line: int
    n_points: int
    declared_ha: float
    parcel_no: str
    name: str
    use: str
    landuse: str
    vertices: list[tuple[int, int, float, float]] = field(default_factory=list)
    # (line, ring, northing X, easting Y)


def _fail(path: Path, line: int | None, message: str, *, hint: str | None = None,
          feature: str | None = None,
          cls: type[SpatialPlanError] = DataSourceError) -> SpatialPlanError:
    where = f"line {line}: " if line is not None else ""
    return cls(where + message, path=path, feature=feature, hint=hint)


# ----- decoding -------------------------------------------------------------------------------

def _decode(data: bytes, encoding: str | None, path: Path) -> tuple[str, str, str]:
    """Decode the file; return (text, encoding, how it was chosen)."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise DataSourceError(f"unknown encoding {encoding!r}", path=path,
                                  hint="use e.g. GBK, GB18030 or UTF-8") from exc
        try:
            return data.decode(encoding), encoding, "given"
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise _fail(path, line, f"cannot be decoded as {encoding}",
                        hint="check the encoding (部标 TXT files are usually GBK)") from exc
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict"), "UTF-8", "BOM"
    try:
        return data.decode("utf-8"), "UTF-8", "detected"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "GB18030", "detected: not valid UTF-8"
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _fail(path, line, "is neither UTF-8 nor GBK/GB18030 text",
                    hint="pass the encoding explicitly (--encoding)") from exc


# ----- sections -------------------------------------------------------------------------------

def _section_name(text: str) -> str | None:
    s = text.strip()
    if len(s) >= 2 and s[0] in "[【［" and s[-1] in "]】］":  # noqa: RUF001 - full-width input is parsed
        return s[1:-1].strip()
    return None


def _split_sections(lines: list[str], path: Path) -> dict[str, list[tuple[int, str]]]:
    sections: dict[str, list[tuple[int, str]]] = {}
    current: str | None = None
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        name = _section_name(text)
        if name is not None:
            if name in sections:
                raise _fail(path, number, f"section [{name}] appears twice")
            current = name
            sections[name] = []
            continue
        if current is None:
            raise _fail(path, number, f"text before the first section: {text[:40]!r}",
                        hint="a 部标 TXT starts with [属性描述]")
        sections[current].append((number, text))
    for name in (_HEADER_SECTION, _COORD_SECTION):
        if name not in sections:
            raise _fail(path, len(lines), f"missing section [{name}] (end of file reached)",
                        hint="a 部标 TXT has the sections [属性描述] and [地块坐标]")
    return sections


def _parse_header(items: list[tuple[int, str]], path: Path) -> dict[str, tuple[str, int]]:
    header: dict[str, tuple[str, int]] = {}
    for number, text in items:
        key, sep, value = text.partition("=")
        if not sep:
            key, sep, value = text.partition("＝")  # noqa: RUF001 - full-width input is parsed
        if not sep or not key.strip():
            raise _fail(path, number, f"expected key=value in [属性描述], got {text[:40]!r}")
        header[key.strip()] = (value.strip(), number)
    return header


# ----- parcels --------------------------------------------------------------------------------

def _number(text: str, path: Path, line: int, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _fail(path, line, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):  # "nan", "inf", "1e999"
        raise _fail(path, line, f"{what} {text!r} is not a finite number (NaN or infinity)")
    return value


def _integer(text: str, path: Path, line: int | None, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _fail(path, line, f"{what} {text!r} is not an integer") from None


def _parse_parcel_header(fields: list[str], path: Path, line: int) -> _Parcel:
    if len(fields) not in (8, 9):
        raise _fail(path, line, f"parcel header has {len(fields)} fields, expected 9: "
                    "点数,面积(公顷),地块号,地块名称,面,图幅号,用途,地类编码,@")
    n_points = _integer(fields[0], path, line, "point count (点数)")
    area = fields[1].strip()
    declared = math.nan if not area else _number(area, path, line, "area (面积)")
    if declared < 0:
        raise _fail(path, line, f"negative area {area!r}")
    return _Parcel(line=line, n_points=n_points, declared_ha=declared,
                   parcel_no=fields[2].strip(), name=fields[3].strip(), use=fields[6].strip(),
                   landuse=fields[7].strip() if len(fields) == 9 else "")


def _parse_parcels(items: list[tuple[int, str]], path: Path) -> list[_Parcel]:
    parcels: list[_Parcel] = []
    for number, text in items:
        fields = [f.strip() for f in text.replace("，", ",").split(",")]
        if fields[-1] == "@":
            parcels.append(_parse_parcel_header(fields, path, number))
            continue
        if not parcels:
            raise _fail(path, number, "vertex line before the first parcel header",
                        hint="each parcel starts with a line ending in ',@'")
        if len(fields) != 4:
            raise _fail(path, number, f"vertex line has {len(fields)} fields, expected 4: "
                        "点号,圈号,X(北),Y(东)")
        ring = _integer(fields[1], path, number, "ring number (圈号)")
        if ring < 1:
            raise _fail(path, number, f"ring number {ring} must be 1 or more")
        x = _number(fields[2], path, number, "X (northing)")
        y = _number(fields[3], path, number, "Y (easting)")
        parcels[-1].vertices.append((number, ring, x, y))
    if not parcels:
        line = items[0][0] if items else None
        raise _fail(path, line, "section [地块坐标] holds no parcel")
    for p in parcels:
        if p.n_points != len(p.vertices):
            raise _fail(path, p.line, f"parcel {p.parcel_no} header says {p.n_points} points "
                        f"but {len(p.vertices)} vertex lines follow", feature=p.parcel_no)
    return parcels


# ----- CRS ------------------------------------------------------------------------------------

def _zone_from_prefix(parcels: list[_Parcel], path: Path) -> tuple[int | None, int]:
    """Return (zone from the easting prefix or None, line of the first vertex)."""
    first_line, first_zone = None, None
    for p in parcels:
        for line, _ring, _x, y in p.vertices:
            zone = int(y // 1_000_000) if y >= 1_000_000 else None
            if first_line is None:
                first_line, first_zone = line, zone
            elif zone != first_zone:
                raise _fail(path, line, "inconsistent zone prefix: easting "
                            f"{y:.3f} (zone {zone or 'none'}) vs line {first_line} "
                            f"(zone {first_zone or 'none'})",
                            hint="all eastings must carry the same zone prefix or none")
    return first_zone, first_line or 0


def _check_header_crs(header: dict[str, tuple[str, int]], path: Path) -> None:
    value, line = header.get("坐标系", ("", None))
    low = value.lower().replace(" ", "")
    if not value:
        raise CRSError("the [属性描述] section does not name its 坐标系", path=path,
                       hint="add 坐标系=2000国家大地坐标系 if the coordinates are CGCS2000")
    if any(word in low for word in _REFUSED_DATUMS):
        raise _fail(path, line, f"coordinate system {value!r} refused: no datum "
                    "transformation to CGCS2000 is available (PROJ would only apply a "
                    "'ballpark' no-datum-shift path)", cls=CRSError,
                    hint="convert the coordinates to CGCS2000 with official parameters first")
    if "2000" not in low and "cgcs" not in low:
        raise _fail(path, line, f"unsupported coordinate system {value!r}", cls=CRSError,
                    hint="only 2000国家大地坐标系 (CGCS2000) 3-degree zones are supported")
    width, wline = header.get("几度分带", ("3", None))
    if width not in ("3", "3度", "三度"):
        raise _fail(path, wline, f"几度分带={width!r}: only 3-degree zones are supported",
                    cls=CRSError)
    proj, pline = header.get("投影类型", ("", None))
    if proj and "高斯" not in proj and "gauss" not in proj.lower():
        raise _fail(path, pline, f"投影类型={proj!r}: only Gauss-Krüger is supported",
                    cls=CRSError)
    unit, uline = header.get("计量单位", ("", None))
    if unit and unit.lower() not in ("米", "m", "metre", "meter"):
        raise _fail(path, uline, f"计量单位={unit!r}: coordinates must be in metres",
                    cls=CRSError)


def bubiao_crs(zone: int, *, prefixed: bool) -> str:
    """Return the EPSG code of a CGCS2000 3-degree Gauss-Krüger zone.

    Parameters
    ----------
    zone
        The 3-degree zone number (25-45; Guizhou lies in 35, 36 and 37).
    prefixed
        Whether eastings carry the zone prefix (EPSG:4513-4533) or not (EPSG:4534-4554).

    Examples
    --------
    >>> bubiao_crs(36, prefixed=True)
    'EPSG:4524'
    >>> bubiao_crs(36, prefixed=False)
    'EPSG:4545'
    """
    return f"EPSG:{zone_epsg(zone, prefixed=prefixed)}"


def _resolve_crs(header: dict[str, tuple[str, int]], parcels: list[_Parcel],
                 path: Path) -> tuple[str, str]:
    _check_header_crs(header, path)
    zone_text, zline = header.get("带号", ("", None))
    header_zone = _integer(zone_text, path, zline, "带号") if zone_text else None
    prefix_zone, vline = _zone_from_prefix(parcels, path)
    if prefix_zone is not None and not _MIN_ZONE <= prefix_zone <= _MAX_ZONE:
        raise _fail(path, vline, f"the easting's zone prefix {prefix_zone} is not a CGCS2000 "
                    "3-degree zone of China (25-45)", cls=CRSError,
                    hint="X is the northing, Y the easting; are they swapped?")
    if prefix_zone is not None:
        if header_zone is not None and header_zone != prefix_zone:
            raise _fail(path, zline, f"带号={header_zone} disagrees with the easting prefix "
                        f"{prefix_zone} (line {vline})", cls=CRSError,
                        hint="correct 带号 or the eastings")
        zone, reason = prefix_zone, f"zone {prefix_zone} from the easting prefix"
        if header_zone is not None:
            reason += f" (header 带号={header_zone} agrees)"
    elif header_zone is not None:
        zone, reason = header_zone, f"zone {header_zone} from header 带号 (eastings unprefixed)"
    else:
        raise _fail(path, vline, "eastings carry no zone prefix and the header has no 带号",
                    cls=CRSError, hint="add 带号=<zone> to [属性描述] (Guizhou: 35, 36 or 37)")
    line = zline if prefix_zone is None else vline
    try:
        epsg = bubiao_crs(zone, prefixed=prefix_zone is not None)
    except CRSError as exc:
        raise _fail(path, line, exc.message, cls=CRSError) from None
    _check_ranges(parcels, path, prefix=zone * 1_000_000 if prefix_zone is not None else 0)
    kind = "zone-prefixed" if prefix_zone is not None else "unprefixed"
    return epsg, f"CGCS2000 3-degree Gauss-Krüger zone {zone}, {kind} eastings: {reason}"


def _check_ranges(parcels: list[_Parcel], path: Path, *, prefix: int) -> None:
    """Northing and easting must be plausible for China (catches swapped X/Y)."""
    for p in parcels:
        for line, _ring, x, y in p.vertices:
            if not 200_000 <= x <= 6_200_000:
                raise _fail(path, line, f"northing X={x:.3f} is outside China "
                            "(expected 200,000-6,200,000 m)",
                            hint="X is the northing, Y the easting; are they swapped?")
            if not 100_000 <= y - prefix <= 900_000:
                raise _fail(path, line, f"easting Y={y:.3f} is not a Gauss-Krüger easting "
                            "(expected 100,000-900,000 m after the zone prefix)",
                            hint="X is the northing, Y the easting; are they swapped?")


# ----- geometry -------------------------------------------------------------------------------

def _rings(p: _Parcel, path: Path) -> list[tuple[int, int, list[tuple[float, float]]]]:
    """Group vertices into rings: list of (ring number, first line, [(easting, northing)])."""
    rings: list[tuple[int, int, list[tuple[float, float]]]] = []
    seen: set[int] = set()
    for line, ring, x, y in p.vertices:
        if not rings or rings[-1][0] != ring:
            if ring in seen:
                raise _fail(path, line, f"parcel {p.parcel_no}: ring {ring} resumes after "
                            "another ring", feature=p.parcel_no,
                            hint="list the vertices of each ring together")
            if not rings and ring != 1:
                raise _fail(path, line, f"parcel {p.parcel_no}: the first ring is {ring}, "
                            "expected the exterior ring 1", feature=p.parcel_no)
            seen.add(ring)
            rings.append((ring, line, []))
        rings[-1][2].append((y, x))
    for ring, line, coords in rings:
        if len(set(coords)) < 3:
            raise _fail(path, line, f"parcel {p.parcel_no}: ring {ring} has fewer than 3 "
                        "distinct points", feature=p.parcel_no, cls=GeometryError)
        if coords[0] != coords[-1]:
            coords.append(coords[0])
    return rings


def _polygon(p: _Parcel, path: Path) -> Polygon:
    rings = _rings(p, path)
    shell = Polygon(rings[0][2])
    for ring, line, coords in rings[1:]:
        if not shell.contains(Polygon(coords)):
            raise _fail(path, line, f"parcel {p.parcel_no}: ring {ring} is not inside the "
                        "exterior ring 1", feature=p.parcel_no, cls=GeometryError,
                        hint="rings after 1 are holes; a separate part needs its own parcel")
    poly = Polygon(rings[0][2], [coords for _r, _l, coords in rings[1:]])
    if not poly.is_valid:
        raise _fail(path, p.line, f"parcel {p.parcel_no} is not a valid polygon: "
                    f"{shapely.is_valid_reason(poly)}", feature=p.parcel_no,
                    cls=GeometryError, hint="fix the vertex order; no automatic repair is made")
    return orient(poly, sign=1.0)


def _row(p: _Parcel, poly: Polygon, path: Path) -> dict[str, object]:
    area = float(poly.area)
    declared = p.declared_ha * 10_000.0
    mismatch = bool(math.isfinite(declared) and abs(declared - area) > MISMATCH_TOLERANCE * area)
    if mismatch:
        log.warning("%s line %d: parcel %s declares %.1f m² (%.4f 公顷) but its geometry "
                    "measures %.1f m² (%+.1f%%); the computed area is used",
                    path.name, p.line, p.parcel_no, declared, p.declared_ha, area,
                    100.0 * (declared - area) / area)
    return {"parcel_no": p.parcel_no, "name": p.name, "use": p.use, "landuse": p.landuse,
            "declared_area_m2": declared, "area_m2": area, "area_mismatch": mismatch,
            "n_points": p.n_points, "source_line": p.line, "geometry": poly}


def read_bubiao_txt(path: str | os.PathLike, *, encoding: str | None = None
                    ) -> gpd.GeoDataFrame:
    r"""Read a 部标坐标 TXT file into one polygon per parcel.

    Parameters
    ----------
    path
        The TXT file.
    encoding
        Text encoding; by default UTF-8 (with or without BOM) or GBK/GB18030 is detected.
        A given encoding wins.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``parcel_no``, ``name``, ``use``, ``landuse`` (地类编码, text),
        ``declared_area_m2`` (header 公顷 x 10,000), ``area_m2`` (planar area in the GK zone),
        ``area_mismatch`` (declared and computed differ by more than 1 %), ``n_points``,
        ``source_line`` (line of the parcel header) and the geometry, in the CGCS2000
        3-degree Gauss-Krüger CRS of the file (EPSG:4513-4533 with zone-prefixed eastings,
        EPSG:4534-4554 without). ``attrs`` holds ``header`` (the [属性描述] key/values),
        ``encoding``, ``encoding_reason`` and ``crs_reason``.

    Raises
    ------
    DataSourceError
        Unreadable or malformed file (missing section, bad number, point count mismatch,
        inconsistent zone prefixes); the message gives the line.
    CRSError
        Not CGCS2000 3-degree GK (Xian80/Beijing54 are refused), or no zone can be found.
    GeometryError
        A ring with fewer than 3 distinct points, a hole outside its exterior ring, or an
        invalid polygon (never repaired silently).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> txt = pathlib.Path(tempfile.mkdtemp()) / "site.txt"
    >>> _ = txt.write_text("[属性描述]\n坐标系=2000国家大地坐标系\n带号=36\n[地块坐标]\n"
    ...     "4,1.0,1,站,面,,公用设施,1309,@\nJ1,1,3070000,36461000\n"
    ...     "J2,1,3070000,36461100\nJ3,1,3070100,36461100\nJ4,1,3070100,36461000\n",
    ...     encoding="utf-8")
    >>> sites = read_bubiao_txt(txt)
    >>> sites.crs.to_epsg(), float(sites.area_m2.iloc[0])
    (4524, 10000.0)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataSourceError(f"cannot read the TXT file: {exc.strerror or exc}", path=path,
                              hint="check the path") from exc
    text, used, how = _decode(data, encoding, path)
    sections = _split_sections(text.splitlines(), path)
    header = _parse_header(sections[_HEADER_SECTION], path)
    parcels = _parse_parcels(sections[_COORD_SECTION], path)
    epsg, crs_reason = _resolve_crs(header, parcels, path)
    numbers = [p.parcel_no for p in parcels]
    dups = sorted({n for n in numbers if numbers.count(n) > 1})
    if dups:
        log.warning("%s: parcel number(s) %s appear more than once", path.name, ", ".join(dups))
    rows = [_row(p, _polygon(p, path), path) for p in parcels]
    frame = pd.DataFrame(rows, columns=[*_COLUMNS, "geometry"])
    frame = frame.astype({"n_points": "int64", "source_line": "int64", "area_mismatch": bool})
    gdf = gpd.GeoDataFrame(frame, geometry="geometry", crs=epsg)
    gdf.attrs.update(header={k: v for k, (v, _line) in header.items()}, encoding=used,
                     encoding_reason=how, crs_reason=crs_reason, path=str(path))
    log.info("%s: %d parcel(s), %s, encoding %s (%s)", path.name, len(gdf), crs_reason, used,
             how)
    return gdf
