"""Missing values in training data: an error by default, dropped rows only on request.

``lmm(..., missing="error")`` (the default) refuses missing values (by the
one rule, :mod:`mixedfx.frame.na`: NaN, inf, None, ``pd.NA``, NaT) in any
column the model uses (the response, the fixed-effects predictors, the
grouping columns and the random-slope columns), naming each column and its
count. ``missing="drop"`` drops those rows and says how many with a
:class:`~mixedfx.errors.MissingDataWarning`. A used column with no value at
all is always an error: dropping it would drop every row. The checks read
:class:`~mixedfx.frame.na.Count` s, so a Dask frame's partitions, counted
apart and added, are checked by the same :func:`check`.

lme4 differs: its default ``na.action = na.omit`` drops such rows silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import pandas as pd

from ..errors import DataError, MissingDataWarning
from .columns import column
from .formula import parse, variable_names
from .na import Count, is_missing

MISSING = ("error", "drop")
DROP_HINT = "drop them first or pass missing='drop' to drop them"


def used_columns(formula: str, data: pd.DataFrame, also: Sequence[str] = ()) -> list[str]:
    """Columns of ``data`` that ``formula`` names (and ``also``), in the data's order."""
    parse(formula)  # a malformed formula is a FormulaError before any data check
    names = set(variable_names(formula)) | set(also)
    columns = data.columns
    if not columns.is_unique:
        return [c for c in columns if isinstance(c, str) and c in names]
    found = [c for c in names if c in columns]
    return sorted(found, key=lambda c: cast(int, columns.get_loc(c)))  # unique: an int


def column_counts(data: pd.DataFrame, names: Sequence[str]) -> tuple[dict[str, Count], np.ndarray]:
    """Per column of ``names``, its missing values counted; and the rows with any, shape (n,)."""
    masks = {name: is_missing(column(data, name)) for name in names}
    counts = {name: Count.of(m) for name, m in masks.items()}
    rows = np.zeros(len(data), dtype=bool)
    if any(c.bad for c in counts.values()):
        rows = np.logical_or.reduce([*masks.values(), rows])
    return counts, rows


def check(columns: Mapping[str, Count], rows: Count, missing: str, hint: str = DROP_HINT) -> bool:
    """The training policy's errors from counts of missing values; True when rows must be dropped.

    Parameters
    ----------
    columns : mapping of str to Count
        Per used column, its missing values (:func:`~mixedfx.frame.na.is_missing`).
    rows : Count
        The rows with a missing value in any of them.
    missing : {"error", "drop"}
    hint : str
        What to do, at the end of the error.

    Raises
    ------
    DataError
        When a used column is entirely missing, or when values are missing
        and ``missing="error"``.
    """
    for name, c in columns.items():
        if c.n and c.bad == c.n:
            raise DataError(
                f"column {name!r} has no usable values (all {c.n} are NaN, inf or "
                "missing); fix or remove it from the formula"
            )
    if not rows.bad:
        return False
    if missing == "error":
        raise DataError(
            f"{rows.bad} row(s) have NaN, inf or missing values in column(s) "
            f"{_described(columns)} (first at row {rows.first}); {hint}"
        )
    return True


def _described(columns: Mapping[str, Count]) -> str:
    return ", ".join(f"{name!r} ({c.bad})" for name, c in columns.items() if c.bad)


def handle(
    formula: str, data: pd.DataFrame, missing: str, also: Sequence[str] = ()
) -> pd.DataFrame:
    """The rows to fit: ``data`` itself, or ``data`` without rows that have missing values.

    Parameters
    ----------
    formula : str
    data : DataFrame
    missing : {"error", "drop"}
    also : sequence of str
        Other used columns (an offset column).

    Returns
    -------
    DataFrame
        ``data`` when nothing is missing; otherwise (``missing="drop"``) the
        kept rows, with their original index.

    Raises
    ------
    DataError
        As :func:`check`, and when every row has a missing value.
    """
    if missing not in MISSING:
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    if not isinstance(data, pd.DataFrame) or len(data) == 0:
        return data  # design.learn names these problems
    counts, rows = column_counts(data, used_columns(formula, data, also))
    if not check(counts, Count.of(rows), missing):
        return data
    kept = data.iloc[np.flatnonzero(~rows)]
    if len(kept) == 0:
        raise DataError(f"every row has a missing value in column(s) {_described(counts)}")
    warnings.warn(
        f"dropped {int(rows.sum())} of {len(data)} row(s) with NaN, inf or missing "
        f"values in column(s) {_described(counts)}; the model uses the other {len(kept)}",
        MissingDataWarning,
        stacklevel=3,
    )
    return kept
