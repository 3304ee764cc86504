"""Overlong text cut for display (web-map popups, layout labels), always with a marker.

The GeoPackage, the CSV files and the report keep every text whole; a map or a printed page
shows the start of a text that would not fit, and says that it was cut.
"""

from __future__ import annotations

import textwrap

__all__ = ["shorten", "wrap_lines"]


def shorten(value: object, limit: int, *, count: bool = True) -> object:
    """``value``, or when it is a text over ``limit`` characters its start and a marker.

    The marker is ``…[N characters in all]``, or ``…`` alone with ``count=False`` (for
    narrow places). Anything that is not a text is returned unchanged.

    Examples
    --------
    >>> shorten("示范镇" * 4, 5)
    '示范镇示范…[12 characters in all]'
    >>> shorten("示范镇", 5), shorten(None, 5), shorten("abcdef", 3, count=False)
    ('示范镇', None, 'abc…')
    """
    if not isinstance(value, str) or len(value) <= limit:
        return value
    return value[:limit] + (f"…[{len(value):,} characters in all]" if count else "…")


def wrap_lines(text: str, width: int, lines: int) -> str:
    r"""``text`` wrapped to at most ``lines`` lines of ``width``; ``…`` ends a cut text.

    Only the start of a long text is wrapped (a megabyte of text is not read to show two
    lines).

    Examples
    --------
    >>> wrap_lines("污水处理厂", 16, 2)
    '污水处理厂'
    >>> wrap_lines("一二三四五六七八九十", 4, 2)
    '一二三四\n五六七…'
    """
    head = text[:2 * width * lines]
    parts = textwrap.wrap(head, width)
    if len(parts) <= lines and len(head) == len(text):
        return "\n".join(parts)
    parts = parts[:lines]
    parts[-1] = parts[-1][:width - 1] + "…"
    return "\n".join(parts)
