"""Progress reporting: the library reports, the CLI decides whether a bar is shown."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress", "show_progress"]

T = TypeVar("T")

_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("spatialplan_progress",
                                                                default=False)


def show_progress(enabled: bool) -> contextvars.Token:
    """Turn progress bars on or off (the CLI calls this; the library default is off)."""
    return _enabled.set(bool(enabled))


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when progress is enabled, else pass through."""
    if not _enabled.get():
        yield from iterable
        return
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional
        yield from iterable
        return
    yield from tqdm(iterable, total=total, desc=desc, leave=False, unit="it")
