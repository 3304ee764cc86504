"""Text encoding of a shapefile's ``.dbf`` (private): declared, ``.cpg`` or detected.

:func:`spatialplan.io.read.read_layer` passes pyogrio the encoding chosen here
(:func:`_choose_encoding`): a declared one wins; a ``.cpg`` is honoured when the ``.dbf``
bytes decode with it; otherwise the bytes are detected as UTF-8 (valid UTF-8, pure ASCII
included) or GB18030 (a superset of GBK), preferring the decoding that gives Chinese text.
Formats whose text is UTF-8 by definition (GeoPackage, GeoJSON, FlatGeobuf) are read as UTF-8.
A layer read as GBK/GB18030 is checked for records that are UTF-8 nonetheless (a file edited
with two tools), which would read as mojibake: :func:`_warn_utf8_records` names them.
"""

from __future__ import annotations

import codecs
import logging
import struct
from pathlib import Path

import numpy as np

from spatialplan.errors import DataSourceError

__all__ = ["detect_dbf_encoding"]

#: the reader's logger: encoding choices are part of reading a layer
log = logging.getLogger("spatialplan.io.read")


def _normalise_encoding(name: str) -> str | None:
    text = name.strip().upper().removeprefix("ANSI").strip()
    if text.isdigit():
        text = {"65001": "UTF-8", "936": "GBK", "54936": "GB18030"}.get(text, f"CP{text}")
    try:
        return codecs.lookup(text).name
    except LookupError:
        return None


def detect_dbf_encoding(dbf: str | Path) -> str | None:
    """Detect the encoding of a ``.dbf``'s text (field names and character fields).

    Returns ``"UTF-8"`` if all bytes are valid UTF-8 (including pure ASCII), else ``"GB18030"``
    (a superset of GBK) if they decode as GB18030, else None.

    Example
    -------
    >>> detect_dbf_encoding("townships.dbf")  # doctest: +SKIP
    'GB18030'
    """
    raw = Path(dbf).read_bytes()
    if len(raw) < 32:
        return None
    n_records, header_len, record_len = struct.unpack("<IHH", raw[4:12])
    fields, pos, offset = [], 32, 1
    names = bytearray()
    while pos + 32 <= header_len and raw[pos] != 0x0D:
        desc = raw[pos:pos + 32]
        names += desc[:11].split(b"\x00", 1)[0] + b" "
        ftype, flen = chr(desc[11]), desc[16]
        if ftype in "CM":
            fields.append((offset, flen))
        offset += flen
        pos += 32
    chunks = [bytes(names)]
    for i in range(n_records):
        start = header_len + i * record_len
        rec = raw[start:start + record_len]
        for off, flen in fields:
            chunks.append(rec[off:off + flen].rstrip(b" \x00"))
    sample = b"\n".join(chunks)
    decoded = {}
    for enc in ("utf-8", "gb18030"):
        try:
            decoded[enc] = sample.decode(enc)
        except UnicodeDecodeError:
            continue
    if len(decoded) == 2 and _plausible(decoded["gb18030"]) > _plausible(decoded["utf-8"]):
        # short GBK text can also be valid UTF-8 (一 = D2 BB reads as Cyrillic һ): prefer  # noqa: RUF003 - the Cyrillic letter is the point
        # the decoding that gives Chinese (or pinyin) text; ties stay UTF-8
        return "GB18030"
    if "utf-8" in decoded:
        return "UTF-8"
    return "GB18030" if "gb18030" in decoded else None


def _plausible(text: str) -> int:
    """Count the characters expected in Chinese data.

    These are CJK ideographs, CJK punctuation and full-width forms, and Latin letters with
    diacritics (pinyin with tone marks).
    """
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"
               or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"
               or "\u00c0" <= ch <= "\u024f")


#: codec names (``codecs.lookup(...).name``) of the GB family: GBK text is read with these
_GB_CODECS = ("gb18030", "gbk", "gb2312")
#: rows of the ``.dbf`` scanned at once for non-ASCII bytes by :func:`utf8_records`
_SCAN_ROWS = 65_536


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _common_share(text: str) -> float:
    """Return the share of the non-ASCII characters of ``text`` that are in GB 2312.

    GB 2312 holds the 7,445 common characters of simplified Chinese; 0 without any non-ASCII
    character.
    """
    wide = [ch for ch in text if ord(ch) >= 0x80]
    if not wide:
        return 0.0
    common = 0
    for ch in wide:
        try:
            ch.encode("gb2312")
        except UnicodeEncodeError:
            continue
        common += 1
    return common / len(wide)


def utf8_records(dbf: str | Path, *, chinese_only: bool = True) -> list[int]:
    """Find the ``.dbf`` records whose bytes are UTF-8 text with non-ASCII characters.

    Return their feature positions (0-based, deleted records skipped).

    With ``chinese_only`` (for a layer read as GBK/GB18030) a record counts only when its
    UTF-8 reading holds a CJK ideograph and more of its characters are common ones (GB 2312)
    than in its GB18030 reading: UTF-8 Chinese read as GBK is mojibake of rare characters
    (中文 → 涓枃), while GBK text that happens to be valid UTF-8 (一 = D2 BB → Cyrillic shha,
    U+04BB) reads as nothing common. Only records with a byte ≥ 0x80 are decoded.

    Example
    -------
    >>> utf8_records("townships.dbf")  # doctest: +SKIP
    [1]
    """
    raw = Path(dbf).read_bytes()
    if len(raw) < 32:
        return []
    n_records, header_len, record_len = struct.unpack("<IHH", raw[4:12])
    fields = _character_fields(raw, header_len)
    if record_len == 0 or header_len >= len(raw) or not fields:
        return []
    n = min(n_records, (len(raw) - header_len) // record_len)
    body = np.frombuffer(raw, dtype=np.uint8, count=n * record_len,
                         offset=header_len).reshape(n, record_len)
    found: list[int] = []
    position = 0
    for r0 in range(0, n, _SCAN_ROWS):
        rows = body[r0:r0 + _SCAN_ROWS]
        live = rows[:, 0] != 0x2A  # "*" marks a deleted record: GDAL skips it
        positions = position + np.cumsum(live) - 1
        position += int(live.sum())
        maybe = np.zeros(len(rows), dtype=bool)
        for off, width in fields:
            maybe |= _maybe_utf8(rows[:, off:off + width])
        for i in np.flatnonzero(live & maybe).tolist():
            record = rows[i].tobytes()
            if any(_utf8_text(record[off:off + width].rstrip(b" \x00"),
                              chinese_only=chinese_only) for off, width in fields):
                found.append(int(positions[i]))
    return found


def _maybe_utf8(field: np.ndarray) -> np.ndarray:
    """Find the rows of one field's bytes that may be UTF-8 with non-ASCII text.

    Some byte is ≥ 0x80, and every lead byte (≥ 0xC0) is followed by a continuation byte
    (0x80-0xBF). Most GBK text fails the second test, so only few records are decoded one by one.
    """
    wide = (field >= 0x80).any(axis=1)
    lead = field[:, :-1] >= 0xC0
    broken = (lead & ((field[:, 1:] & 0xC0) != 0x80)).any(axis=1) | (field[:, -1] >= 0xC0)
    return wide & ~broken


def _character_fields(raw: bytes, header_len: int) -> list[tuple[int, int]]:
    """(offset in the record, width) of each character (C, M) field of a ``.dbf``."""
    fields, pos, offset = [], 32, 1
    while pos + 32 <= header_len and raw[pos] != 0x0D:
        if chr(raw[pos + 11]) in "CM":
            fields.append((offset, raw[pos + 16]))
        offset += raw[pos + 16]
        pos += 32
    return fields


def _utf8_text(value: bytes, *, chinese_only: bool) -> bool:
    """Tell whether ``value`` (one field) is UTF-8 text with non-ASCII characters.

    With ``chinese_only``, only Chinese that its GB18030 reading turns into rarer characters counts
    (see :func:`utf8_records`).
    """
    if value.isascii():
        return False
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if not chinese_only:
        return True
    return any(_is_cjk(ch) for ch in text) and \
        _common_share(text) > _common_share(value.decode("gb18030", "replace"))


def _feature_list(role: str, positions: list[int], *, n: int = 5) -> str:
    """``"role:1, role:7, ... (12 records)"``: the first ``n`` feature ids and the count."""
    ids = ", ".join(f"{role}:{i}" for i in positions[:n])
    return ids + (f", … ({len(positions)} records)" if len(positions) > n else "")


def _warn_utf8_records(path: Path | str, info: dict, encoding: str | None, *,
                       role: str) -> list[int]:
    """Warn, naming the features, when a shapefile read as GBK/GB18030 holds UTF-8 records.

    See :func:`utf8_records`; returns their positions.
    """
    if info.get("driver") != "ESRI Shapefile" or not isinstance(path, Path) or not encoding:
        return []
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        return []
    dbf = _sidecar(path, ".dbf")
    if codec not in _GB_CODECS or dbf is None:
        return []
    found = utf8_records(dbf)
    if found:
        log.warning("layer %s: %d record(s) of the .dbf, read as %s, hold UTF-8 text and read "
                    "as mojibake: %s. Re-save them in %s (or, if most of the text is UTF-8, "
                    "declare encoding = \"UTF-8\" under [layers.%s] and fix the others)",
                    role, len(found), encoding, _feature_list(role, found), encoding, role)
    return found


def _choose_encoding(path: Path | str, info: dict, *, encoding: str | None,
                     role: str) -> tuple[str | None, str]:
    """Return (encoding to pass to pyogrio, how it was chosen)."""
    if info.get("driver") != "ESRI Shapefile":
        if encoding:
            log.warning("layer %s: encoding %r ignored: %s text is UTF-8 by format", role,
                        encoding, info.get("driver"))
        return "UTF-8", "format"
    if encoding:
        return encoding, "declared"
    if not isinstance(path, Path):
        return None, "driver default (remote source)"
    dbf = _sidecar(path, ".dbf")
    cpg = _sidecar(path, ".cpg")
    detected = detect_dbf_encoding(dbf) if dbf is not None else "UTF-8"
    if cpg is not None:
        text = cpg.read_text(encoding="ascii", errors="replace").strip()
        declared = _normalise_encoding(text)
        if declared is not None and _single_byte(declared) and detected not in (None, "UTF-8") \
                and _has_multibyte_text(dbf):
            raise DataSourceError(
                f".cpg says {text!r} (a single-byte encoding) but the text reads as multi-byte "
                f"{detected} (Chinese); reading it as {text} would give mojibake", path=cpg,
                layer=role, hint=f'declare the encoding under [layers.{role}]: encoding = '
                f'"{detected}" (or "{text}" if the .cpg is right), or fix the .cpg')
        if declared is not None and _fits(dbf, declared):
            return declared.upper() if declared == "utf-8" else declared, "cpg"
        log.warning("layer %s: .cpg says %r but the .dbf text does not decode with it; "
                    "using detected %s", role, text, detected)
        if detected is None:
            raise DataSourceError(
                f".cpg says {text!r} but the text does not decode with it", path=cpg,
                layer=role, hint=f'declare the encoding under [layers.{role}], e.g. '
                'encoding = "GB18030"')
        return detected, f"detected (.cpg {text!r} does not fit)"
    if detected is None:
        mixed = utf8_records(dbf, chinese_only=False) if dbf is not None else []
        raise DataSourceError(
            "shapefile has no .cpg and its text is neither UTF-8 nor GBK/GB18030"
            + (f"; it mixes encodings: records in UTF-8 are {_feature_list(role, mixed)}"
               if mixed else ""), path=path,
            layer=role, hint=f'declare the encoding under [layers.{role}], e.g. '
            'encoding = "GBK"' + (", and re-save the UTF-8 records in it" if mixed else ""))
    return detected, "detected"


def _valid_utf8(dbf: Path) -> bool:
    raw = Path(dbf).read_bytes()
    header_len = struct.unpack("<H", raw[8:10])[0] if len(raw) >= 10 else 0
    try:
        raw[header_len:].rstrip(b"\x1a").decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _single_byte(encoding: str) -> bool:
    """Tell whether ``encoding`` is a single-byte code page (cp1252, latin-1, ...)."""
    return codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig", "gb18030", "gbk",
                                                "gb2312", "big5", "cp936", "cp950",
                                                "utf-16", "shift_jis", "euc_kr")


def _has_multibyte_text(dbf: Path | None) -> bool:
    """Tell whether the .dbf's text holds non-ASCII bytes."""
    if dbf is None:
        return False
    raw = Path(dbf).read_bytes()
    header_len = struct.unpack("<H", raw[8:10])[0] if len(raw) >= 10 else 0
    return any(b >= 0x80 for b in raw[32:header_len]) or any(
        b >= 0x80 for b in raw[header_len:])


def _fits(dbf: Path | None, encoding: str) -> bool:
    if dbf is None:
        return True
    if codecs.lookup(encoding).name in ("utf-8", "gb18030", "gbk", "gb2312", "big5"):
        detected = detect_dbf_encoding(dbf)
        if encoding == "utf-8":  # a .cpg saying UTF-8 is right when the text is valid UTF-8
            return detected == "UTF-8" or _valid_utf8(dbf)
        return detected is not None
    return True  # single-byte encodings decode anything


def _sidecar(path: Path, suffix: str) -> Path | None:
    for cand in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if cand.exists():
            return cand
    return None
