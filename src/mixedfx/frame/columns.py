"""A frame's columns, taken from pandas once per fit.

``data[name]`` builds a new Series on every call (tens of microseconds with
pandas 3), and one fit reads each column it uses several times: the
missing-value check, the formula's learned state, X, each random term's M,
the response and the grouping levels. Inside :func:`reading`, :func:`column`
keeps each column it took from that frame, so the fit takes it once; outside
(or for another frame, such as the rows left after ``missing="drop"``) it is
``data[name]``. The frame is not modified meanwhile: the block is one call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import pandas as pd

_read: ContextVar[tuple[pd.DataFrame, dict[object, pd.Series]] | None] = ContextVar(
    "_read", default=None
)


@contextlib.contextmanager
def reading(data: pd.DataFrame) -> Iterator[None]:
    """Within the block, :func:`column` takes each column of ``data`` once."""
    token = _read.set((data, {}))
    try:
        yield
    finally:
        _read.reset(token)


def column(data: pd.DataFrame, name: str) -> pd.Series:
    """``data[name]``, taken once per :func:`reading` block of ``data``."""
    current = _read.get()
    if current is None or current[0] is not data:
        return data[name]
    taken = current[1]
    if name not in taken:
        taken[name] = data[name]
    return taken[name]
