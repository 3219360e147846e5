"""The outcome of a GLMM's rows: response, prior weights, binomial trials and offset.

The response and the offset come from the rows' one path
(:func:`mixedfx.frame.rows.build`); the weights column is read here. This
is the one place that checks them against the family's support, for
training rows and for given rows alike:

* binomial: a 0/1 or boolean response, or a proportion in [0, 1] with
  ``weights`` the number of trials (as in ``glm``/``glmer``), or a
  two-column ``cbind(successes, failures)`` response (lme4's spelling: the
  proportion ``s / (s + f)`` with ``s + f`` trials, times any prior
  weights; a row of 0 trials has proportion 0 and weight 0); successes must
  be whole numbers;
* Poisson: non-negative whole-number counts;
* prior weights: finite and non-negative.

The offset is the design's (:meth:`~mixedfx.frame.design.DesignSpec.offset`:
the formula's ``offset()`` terms plus the ``offset=`` column), the same for
linear and generalized linear models. A value outside the support is a
:class:`~mixedfx.errors.DataError` that names the rows (by index label) and
the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .engine.family import Family
from .errors import DataError
from .frame.design import DesignSpec, check_columns
from .frame.rows import Rows, build

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
    """Where a GLMM's outcome comes from besides its formula: the family and the weights.

    Attributes
    ----------
    family : Family
    weights : str or None
        Column of prior weights (binomial with a proportion response: trials
        per row).
    trials : bool, default True
        Binomial weights are numbers of trials, as in ``glm``/``glmer`` (a
        row's response is a proportion of them); False: case weights of 0/1
        rows (scikit-learn's ``sample_weight``: row ``i``'s log-likelihood
        counts ``w_i`` times, with ``w_i`` any non-negative number).
    """

    family: Family
    weights: str | None = None
    trials: bool = True

    def columns(self) -> list[str]:
        """The data columns besides the formula's and the offset's that rows need."""
        return [] if self.weights is None else [self.weights]

    def outcome(self, design: DesignSpec, data: pd.DataFrame, rows: Rows | None = None) -> Outcome:
        """The outcome of ``data``'s rows (training or given rows, with the response).

        Parameters
        ----------
        design : DesignSpec
        data : DataFrame, shape (n, ...)
        rows : Rows, optional
            ``data``'s rows with the response, when built already
            (``build(design, data, response=True, binary=True)``).

        Raises
        ------
        DataError
            For a missing column, a missing value, or a value outside the
            family's support (naming the rows).
        """
        if rows is None or rows.y is None:
            rows = build(design, data, response=True, binary=True)
        assert rows.y is not None
        values, offset = rows.y, rows.offset
        name = design.response
        bad = rows.missing_y
        if bad.any():
            raise DataError(
                f"response {name!r} has NaN or infinite values in rows {_rows(data.index, bad)}; "
                "drop those rows first"
            )
        w = self.weight_vector(data)
        if values.ndim == 2:
            y, w, m = self.two_column(values, w, name, data.index)
        else:
            y, m = values, (w.copy() if self.trials else np.ones(len(w)))
        check_support(self.family, y, m, name, data.index)
        bad = rows.missing_offset
        if bad.any():
            raise DataError(
                f"the offset has NaN or infinite values in rows {_rows(data.index, bad)}; "
                "drop those rows first"
            )
        return Outcome(y, w, m, offset)

    def two_column(
        self, values: np.ndarray, w: np.ndarray, name: str, index: pd.Index
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Proportion, prior weights and trials of a ``cbind(s, f)`` response, as lme4's binomial.

        ``y = s / (s + f)`` (0 where ``s + f = 0``), weights ``w (s + f)``,
        trials ``s + f``.
        """
        if not self.family.binomial:
            raise DataError(
                f"the two-column response {name} is a binomial response (successes, failures); "
                f"a {self.family.name} model needs one column"
            )
        if not self.trials:
            raise DataError(
                f"the two-column response {name} gives trials itself; it cannot take case weights"
            )
        s, f = values[:, 0], values[:, 1]
        negative = (s < 0) | (f < 0)
        if negative.any():
            raise DataError(
                f"response {name} has negative successes or failures in rows "
                f"{_rows(index, negative)}"
            )
        n = s + f
        y = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
        return y, w * n, n

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
                "write cbind(successes, failures) ~ ..., or give the proportion and "
                "weights=<trials column>)"
            )
        s = m * y
        fractional = np.abs(s - np.round(s)) > INTEGER_TOL * np.maximum(1.0, m)
        if fractional.any():
            raise DataError(
                f"successes (trials x response {name!r}) are not whole numbers in rows "
                f"{_rows(index, fractional)}; a binomial response is a proportion of "
                "weights = trials, or cbind(successes, failures)"
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
