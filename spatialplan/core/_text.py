r"""Text shown on a terminal: control characters made visible, never sent raw.

A plan name, a project id, a file name or a GDAL message can carry escape sequences (ESC
``\x1b``, OSC ``\x1b]0;title\x07``, the 8-bit CSI ``\x9b``) or bidirectional overrides
(U+202E) that a terminal would act on: change the window title, clear the screen, reorder a
line. :func:`visible` replaces each such character with its Python escape, so the text stays
readable and the terminal receives only printable characters. The CLI passes every log line,
error line and value it prints through it.

Example
-------
>>> visible("plan\x1b]0;pwned\x07")
'plan\\x1b]0;pwned\\x07'
>>> visible("a\u202eb")
'a\\u202eb'
"""

from __future__ import annotations

import re

__all__ = ["CONTROL", "visible"]

#: C0 controls, DEL, C1 controls, and the Unicode bidirectional marks, embeddings, overrides
#: and isolates (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069), also line/paragraph
#: separators (U+2028-U+2029) that some terminals treat as line breaks
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                     "\u2066-\u2069]")
_KEEP_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
                            "\u202a-\u202e\u2066-\u2069]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: object, *, keep_newlines: bool = False) -> str:
    r"""``str(text)`` with every control character written as its escape (``\x1b``, ``\u202e``).

    Parameters
    ----------
    text
        Anything; converted with ``str``.
    keep_newlines
        Leave ``\n`` as a line break (for multi-line blocks such as a table); every other
        control character, ``\r`` and ``\t`` included, is still escaped.

    Example
    -------
    >>> visible("a\nb"), visible("a\nb", keep_newlines=True)
    ('a\\nb', 'a\nb')
    """
    pattern = _KEEP_NEWLINES if keep_newlines else CONTROL
    return pattern.sub(_escape, str(text))
