"""The outcome of a GLMM's rows: response, prior weights, binomial trials and offset.

This is the one place that reads them from a data frame, for training rows,
for given rows and (the offset) for new rows, and checks them against the
family's support:

* binomial: a 0/1 or boolean response, or a proportion in [0, 1] with
  ``weights`` the number of trials (as in ``glm``/``glmer``); successes
  ``weights * y`` must be whole numbers;
* Poisson: non-negative whole-number counts;
* prior weights: finite and non-negative; the offset: finite.

A value outside the support is a :class:`~mixedfx.errors.DataError` that
names the rows (by index label) and the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .engine.family import Family
from .errors import DataError
from .frame.design import DesignSpec, check_columns, response

INTEGER_TOL = 1e-6  # |count - round(count)| allowed, relative to max(1, trials)


@dataclass(frozen=True)
class Outcome:
    """Response, prior weights, trials and offset of some rows, each shape (n,)."""

    y: np.ndarray
    weights: np.ndarray
    trials: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True)
class OutcomeSpec:
    """Where a GLMM's outcome comes from: the response column and optional columns.

    Attributes
    ----------
    family : Family
    weights : str or None
        Column of prior weights (binomial: trials per row).
    offset : str or None
        Column added to the linear predictor.
    trials : bool, default True
        Binomial weights are numbers of trials, as in ``glm``/``glmer`` (a
        row's response is a proportion of them); False: case weights of 0/1
        rows (scikit-learn's ``sample_weight``: row ``i``'s log-likelihood
        counts ``w_i`` times, with ``w_i`` any non-negative number).
    """

    family: Family
    weights: str | None = None
    offset: str | None = None
    trials: bool = True

    def columns(self) -> list[str]:
        """The data columns besides the formula's that rows need."""
        return [c for c in (self.weights, self.offset) if c is not None]

    def outcome(self, design: DesignSpec, data: pd.DataFrame) -> Outcome:
        """The outcome of ``data``'s rows (training or given rows, with the response).

        Raises
        ------
        DataError
            For a missing column, a missing value, or a value outside the
            family's support (naming the rows).
        """
        y = response(data, design.response)
        w = self.weight_vector(data)
        m = w.copy() if self.trials else np.ones(len(w))
        check_support(self.family, y, m, design.response, data.index)
        return Outcome(y, w, m, self.offset_vector(data))

    def weight_vector(self, data: pd.DataFrame) -> np.ndarray:
        """The prior weights of the rows (ones without a weights column), shape (n,)."""
        if self.weights is None:
            return np.ones(len(data))
        w = numeric_column(data, self.weights, "weights")
        bad = w < 0
        if bad.any():
            raise DataError(
                f"weights column {self.weights!r} has negative values in rows "
                f"{_rows(data.index, bad)}; weights must be >= 0"
            )
        return w

    def offset_vector(self, data: pd.DataFrame) -> np.ndarray:
        """The offset of the rows (zeros without an offset column), shape (n,)."""
        if self.offset is None:
            return np.zeros(len(data))
        return numeric_column(data, self.offset, "offset")


def numeric_column(data: pd.DataFrame, name: str, what: str) -> np.ndarray:
    """A finite numeric column as floats, shape (n,); a DataError naming rows otherwise."""
    check_columns(data, [name], what)
    col = data[name]
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise DataError(f"{what} column {name!r} is not numeric (dtype {col.dtype})")
    values = np.asarray(col, dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"{what} column {name!r} has NaN or infinite values in rows {_rows(data.index, bad)}; "
            "drop those rows first"
        )
    return values


def positive_weights(data: pd.DataFrame, name: str) -> np.ndarray:
    """Positive prior weights of a linear mixed model's rows, shape (n,).

    Raises
    ------
    DataError
        For a missing column or value, or a weight <= 0 (naming the rows).
    """
    w = numeric_column(data, name, "weights")
    bad = w <= 0
    if bad.any():
        raise DataError(
            f"weights column {name!r} must be positive; rows {_rows(data.index, bad)} are not "
            "(drop rows of weight 0 first)"
        )
    return w


def check_support(family: Family, y: np.ndarray, m: np.ndarray, name: str, index: pd.Index) -> None:
    """Raise a DataError naming the rows whose response is outside the family's support.

    ``m`` are the binomial trials per row (successes ``m y`` must be whole numbers).
    """
    if family.binomial:
        outside = (y < 0) | (y > 1)
        if outside.any():
            raise DataError(
                f"response {name!r} of a binomial model must be 0/1 or a proportion in "
                f"[0, 1]; rows {_rows(index, outside)} are outside (for counts of successes "
                "give the proportion and weights=<trials column>)"
            )
        s = m * y
        fractional = np.abs(s - np.round(s)) > INTEGER_TOL * np.maximum(1.0, m)
        if fractional.any():
            raise DataError(
                f"successes (weights x response {name!r}) are not whole numbers in rows "
                f"{_rows(index, fractional)}; a binomial response is a proportion of "
                "weights = trials"
            )
        return
    negative = y < 0
    if negative.any():
        raise DataError(
            f"response {name!r} of a Poisson model must be a count >= 0; rows "
            f"{_rows(index, negative)} are negative"
        )
    fractional = np.abs(y - np.round(y)) > INTEGER_TOL * np.maximum(1.0, y)
    if fractional.any():
        raise DataError(
            f"response {name!r} of a Poisson model must be whole-number counts; rows "
            f"{_rows(index, fractional)} are not"
        )


def _rows(index: pd.Index, bad: np.ndarray, limit: int = 10) -> str:
    """The index labels of the bad rows, at most ``limit`` of them, as text."""
    where = np.flatnonzero(bad)
    labels = [index[i] for i in where[:limit]]
    shown = ", ".join(str(v.item() if isinstance(v, np.generic) else v) for v in labels)
    more = f" and {len(where) - limit} more" if len(where) > limit else ""
    return f"[{shown}]{more}"
