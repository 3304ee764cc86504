"""HTML escaping and small HTML builders.

Shared by :mod:`~spatialplan.render.webmap` and :mod:`~spatialplan.render.report`.

Every attribute value and field name that reaches an HTML page goes through
:func:`escape`. It escapes more than :func:`html.escape`: also backticks, ``$``, ``{`` and
``}`` so that escaped text stays inert even if a template engine or a JavaScript template
literal ever sees it, and lone surrogates (from badly decoded files) become U+FFFD so the
page can always be written as UTF-8.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

__all__ = ["escape", "format_value", "html_table", "is_missing", "json_for_script"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: any character :func:`escape` changes (text without one is returned as is)
_SPECIAL = re.compile("[&<>\"'`${}\ud800-\udfff]")
_EXTRA = str.maketrans({"`": "&#96;", "$": "&#36;", "{": "&#123;", "}": "&#125;"})


def is_missing(value: Any) -> bool:
    """Return True for None, NaN, NaT and pandas NA (False for containers and text)."""
    if value is None:
        return True
    if isinstance(value, str | bytes | list | tuple | dict | set):
        return False
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(value: Any, *, digits: int = 2) -> str:
    """Format a cell value as plain (unescaped) text.

    Floats get ``digits`` decimals and thousands separators, dates ISO format,
    missing values an empty string.

    Examples
    --------
    >>> format_value(1234.5678)
    '1,234.57'
    >>> format_value(None)
    ''
    """
    kind = type(value)  # fast paths for the exact built-in types (most cells of a table)
    if kind is str:
        return value
    if kind is float:
        return _format_float(value, digits)
    if kind is int:
        return str(value)
    return _format_other(value, digits)


def _format_float(value: float, digits: int) -> str:
    """Format a float with ``digits`` decimals: "" for NaN, ∞ for infinity."""
    if value != value:
        return ""
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"  # noqa: RUF001 - typographic minus, shown
    return f"{value:,.{digits}f}"


def _format_date(value: date) -> str:
    """Format a date (or a date-time, to the minute unless it is midnight) in ISO format."""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else (
            value.isoformat(sep=" ", timespec="minutes")
        )
    return value.isoformat()


def _format_other(value: Any, digits: int) -> str:
    """Format a value whose type is not exactly ``str``, ``float`` or ``int``."""
    if is_missing(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_float(value, digits)
    if isinstance(value, date):
        return _format_date(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return format_value(value.item(), digits=digits)
        except (ValueError, TypeError):
            pass
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list | tuple | set):
        return "; ".join(format_value(v, digits=digits) for v in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def escape(value: Any, *, digits: int = 2) -> str:
    """Return ``value`` as text that is safe in HTML element content and quoted attributes.

    Parameters
    ----------
    value
        Anything: formatted with :func:`format_value` first (missing values → ``""``).
    digits
        Decimals for floats.

    Examples
    --------
    >>> escape("<img src=x onerror=alert(1)>")
    '&lt;img src=x onerror=alert(1)&gt;'
    >>> escape("`${x}`")
    '&#96;&#36;&#123;x&#125;&#96;'
    """
    text = format_value(value, digits=digits)
    if not _SPECIAL.search(text):
        return text
    text = _LONE_SURROGATE.sub("\ufffd", text)
    return html.escape(text, quote=True).translate(_EXTRA)


def json_for_script(obj: Any, *, compact: bool = False) -> str:
    r"""Serialise ``obj`` as JSON that can be placed inside a ``<script>`` element.

    ``<``, ``>``, ``&``, ``'`` and the JavaScript line separators are written as ``\u``
    escapes, so no string in the data can close the script element. ``compact=True`` leaves
    out the blanks after ``,`` and ``:``.

    Examples
    --------
    >>> json_for_script({"a": "</script>"})
    '{"a": "\\u003c/script\\u003e"}'
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":") if compact else None)
    text = _LONE_SURROGATE.sub("\ufffd", text)
    for char, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027"),
                      ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, esc)
    return text


def html_table(
    rows: Iterable[Mapping[str, Any]] | Any,
    *,
    columns: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
    css_class: str = "data",
    numeric_digits: Mapping[str, int] | None = None,
    cell_class: Any = None,
    empty: str = "—",
) -> str:
    """Build an escaped HTML table.

    Parameters
    ----------
    rows
        A DataFrame or an iterable of mappings.
    columns
        Columns to show, in order (default: all of the frame / the first row's keys).
        Geometry columns are never shown.
    headers
        Display label per column (default: the column name). Both are escaped.
    css_class
        Class of the ``<table>``.
    numeric_digits
        Decimals per column (default 2).
    cell_class
        Optional callable ``(column, value) -> str | None`` giving a CSS class for a cell.
    empty
        Text shown when there are no rows.

    Examples
    --------
    >>> html_table([{"name": "<b>"}])[-50:]
    '<tbody><tr><td>&lt;b&gt;</td></tr></tbody></table>'
    """
    records, cols = _records(rows, columns)
    if not records:
        return f'<p class="empty">{escape(empty)}</p>'
    headers = headers or {}
    digits = [(numeric_digits or {}).get(c, 2) for c in cols]
    head = "".join(f"<th>{escape(headers.get(c, c))}</th>" for c in cols)
    body = []
    for rec in records:
        cells = []
        for c, value, d in zip(cols, rec, digits, strict=True):
            klass = cell_class(c, value) if cell_class else None
            attr = f' class="{escape(klass)}"' if klass else ""
            if isinstance(value, int | float) and not isinstance(value, bool):
                attr = attr or ' class="num"'
            cells.append(f"<td{attr}>{escape(value, digits=d)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="{escape(css_class)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _records(rows: Any, columns: Sequence[str] | None) -> tuple[list[tuple], list[str]]:
    """Turn a DataFrame or iterable of mappings into (row tuples, columns), geometry dropped."""
    if rows is None:
        return [], list(columns or [])
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        geom_cols = {c for c in rows.columns if str(getattr(rows[c], "dtype", "")) == "geometry"}
        cols = [c for c in (columns or list(rows.columns)) if c in rows.columns]
        cols = [c for c in cols if c not in geom_cols]
        return list(rows[cols].itertuples(index=False, name=None)), cols
    dicts = [dict(r) for r in rows]
    cols = list(columns) if columns else (list(dicts[0]) if dicts else [])
    return [tuple(d.get(c) for c in cols) for d in dicts], cols
