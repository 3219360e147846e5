"""Missing values in training data: an error by default, dropped rows only on request.

``lmm(..., missing="error")`` (the default) refuses NaN, inf or missing labels
in any column the model uses (the response, the fixed-effects predictors, the
grouping columns and the random-slope columns), naming each column and its
count. ``missing="drop"`` drops those rows and says how many with a
:class:`~mixedfx.errors.MissingDataWarning`. A used column with no value at
all is always an error: dropping it would drop every row.

lme4 differs: its default ``na.action = na.omit`` drops such rows silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, MissingDataWarning
from .formula import parse, variable_names

MISSING = ("error", "drop")


def used_columns(formula: str, data: pd.DataFrame, also: Sequence[str] = ()) -> list[str]:
    """Columns of ``data`` that ``formula`` names (and ``also``), in the data's order."""
    parse(formula)  # a malformed formula is a FormulaError before any data check
    names = set(variable_names(formula)) | set(also)
    return [c for c in data.columns if isinstance(c, str) and c in names]


def bad_mask(column: pd.Series) -> np.ndarray:
    """True where a value is missing: NaN, inf or None (numbers), NaN or None (labels)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return np.asarray(column.cat.codes) < 0
    if pd.api.types.is_bool_dtype(column):
        return np.asarray(column.isna())
    if pd.api.types.is_numeric_dtype(column):
        values = np.asarray(column, dtype=float)
        return ~np.isfinite(values)
    out = column.isna().to_numpy(dtype=bool, copy=True)
    if column.dtype == object:  # floats stored among labels, e.g. inf
        out |= np.array([isinstance(v, float) and not np.isfinite(v) for v in column], dtype=bool)
    return out


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
        When a used column is entirely missing, or when values are missing
        and ``missing="error"``.
    """
    if missing not in MISSING:
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    if not isinstance(data, pd.DataFrame) or len(data) == 0:
        return data  # design.learn names these problems
    counts: dict[str, int] = {}
    rows = np.zeros(len(data), dtype=bool)
    for name in used_columns(formula, data, also):
        bad = bad_mask(data[name])
        if bad.all():
            raise DataError(
                f"column {name!r} has no usable values (all {len(bad)} are NaN, inf or "
                "missing); fix or remove it from the formula"
            )
        if bad.any():
            counts[name] = int(bad.sum())
            rows |= bad
    if not counts:
        return data
    described = ", ".join(f"{name!r} ({k})" for name, k in counts.items())
    if missing == "error":
        first = int(np.argmax(rows))
        raise DataError(
            f"{int(rows.sum())} row(s) have NaN, inf or missing values in column(s) "
            f"{described} (first at row {first}); drop them first or pass "
            "missing='drop' to drop them"
        )
    kept = data.iloc[np.flatnonzero(~rows)]
    if len(kept) == 0:
        raise DataError(f"every row has a missing value in column(s) {described}")
    warnings.warn(
        f"dropped {int(rows.sum())} of {len(data)} row(s) with NaN, inf or missing "
        f"values in column(s) {described}; the model uses the other {len(kept)}",
        MissingDataWarning,
        stacklevel=3,
    )
    return kept
