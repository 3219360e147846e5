"""The design: a frozen spec learned from training data and reused on new data.

It holds the parsed formula, its learned state (levels of categorical
variables, constants of ``scale()`` and ``poly()``: :mod:`.state`), the
fixed-effects model matrix (:class:`~mixedfx.frame.modelmatrix.MatrixSpec`,
R's coding), the columns kept after dropping redundant ones, the offsets,
and one :class:`~mixedfx.frame.reterm.ReTerm` per random term. From it, any
data frame with the right columns gives the fixed-effects matrix ``X``
(n x p), the offset (n,) and, per term, level codes (n,) and a model matrix
(n x q). Every expression is computed by the whitelist evaluator
(:mod:`.evaluate`); the spec is immutable, so a call that fails changes
nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..engine.layout import ThetaLayout
from ..engine.linalg import qr_r
from ..errors import DataError, FormulaError, RankDeficiencyWarning
from . import intercept, reterm, syntax
from . import rows as rows_mod
from . import state as state_mod
from . import transforms as tf
from .columns import column
from .evaluate import Evaluator
from .formula import ParsedFormula, parse
from .modelmatrix import MatrixSpec
from .na import Count, is_missing, numbers
from .syntax import Call, Name

RANK_TOL = 1e-7  # lme4's tolerance for dropping columns of X
OFFSET_COLUMN = (
    "(offset)"  # the column lmm(offset=array) adds to the training rows, as lme4's frame
)


@dataclass(frozen=True)
class TrainingArrays:
    """The numbers the engine needs from the training rows (their :class:`~.rows.Rows`).

    ``y`` is the working response, the response minus the offset (what the
    cross-product blocks sum); ``offset`` is None without offsets.
    """

    X: np.ndarray  # (n, p)
    y: np.ndarray  # (n,)
    codes: tuple[np.ndarray, ...]  # per term, (n,)
    M: tuple[np.ndarray, ...]  # per term, (n, q_t)
    offset: np.ndarray | None = None  # (n,)
    observed: np.ndarray | None = None  # (n,): the response itself, when offset is set

    @property
    def response(self) -> np.ndarray:
        """The response as observed, shape (n,)."""
        return self.y if self.observed is None else self.observed


@dataclass(frozen=True)
class DesignSpec:
    """The design learned from training data: everything needed to turn a frame into matrices.

    A specification, not the matrices: :meth:`LinearMixedModel.design` applies
    it to rows and returns ``X`` and ``Z``.

    Attributes
    ----------
    formula : str
    parsed : ParsedFormula
    fixed : MatrixSpec
        The fixed-effects model matrix, every column (before rank checks).
    kept : ndarray of int
        Indices of the fixed-effects columns kept after rank checks.
    fixed_names : tuple of str
        Names of the kept columns, as lme4 names them (``(Intercept)``, ``I(Days^2)``, ``fb``).
    dropped : tuple of str
        Names of columns dropped as linearly dependent on earlier ones.
    terms : tuple of ReTerm
    states : mapping of str to State
        The formula's learned state (see :mod:`.state`).
    offset_column : str or None
        A data column added to the linear predictor (``lmm(offset=...)``),
        besides the formula's ``offset()`` terms.
    """

    formula: str
    parsed: ParsedFormula
    fixed: MatrixSpec
    kept: np.ndarray
    fixed_names: tuple[str, ...]
    dropped: tuple[str, ...]
    terms: tuple[reterm.ReTerm, ...]
    states: Mapping[str, tf.State] = field(default_factory=dict, compare=False, repr=False)
    offset_column: str | None = None

    @property
    def response(self) -> str:
        return self.parsed.response

    @property
    def all_names(self) -> tuple[str, ...]:
        """Names of every fixed-effects column, before dropping."""
        return self.fixed.names

    @functools.cached_property
    def layout(self) -> ThetaLayout:
        """Where each element of theta sits in the terms' relative covariance factors."""
        return ThetaLayout(tuple(t.q for t in self.terms), tuple(t.blocks for t in self.terms))

    def theta_names(self) -> list[str]:
        """lme4's names of theta's elements, e.g. ``Subject.Days.(Intercept)``."""
        return [
            n
            for t, ix in zip(self.terms, self.layout.index, strict=True)
            for n in t.theta_names(ix)
        ]

    def fixed_variables(self) -> list[str]:
        """Data columns the fixed-effects part reads."""
        return self.fixed.data_columns()

    def offset_variables(self) -> list[str]:
        """Data columns the offsets read."""
        cols = [c for node in self.parsed.offsets for c in syntax.names(node)]
        return list(dict.fromkeys([*cols, *([self.offset_column] if self.offset_column else [])]))

    def X(self, data: pd.DataFrame) -> np.ndarray:
        """The fixed-effects matrix for new data, shape (n, p).

        Rows with a missing predictor come out as NaN; an unseen level of a
        categorical predictor is an error naming it.
        """
        check_columns(data, self.fixed_variables(), "fixed-effects")
        X = self.fixed.matrix(data)
        return X if len(self.kept) == X.shape[1] else X[:, self.kept]

    @property
    def has_offset(self) -> bool:
        """Whether the formula has ``offset()`` terms or the model an offset column."""
        return bool(self.parsed.offsets) or self.offset_column is not None

    def offset(self, data: pd.DataFrame) -> np.ndarray:
        """The offset of each row: the formula's ``offset()`` terms and the offset column, summed.

        Shape (n,); zeros without offsets; NaN where a value is missing. The
        GLMM adds it to its linear predictor as the LMM does.

        Raises
        ------
        DataError
            Naming an offset column missing from ``data``.
        """
        out = np.zeros(len(data))
        if not self.has_offset:
            return out
        missing = [c for c in self.offset_variables() if c not in data.columns]
        if missing:
            how = (
                "; the model was fitted with offset= an array: give new rows their offsets "
                f"in a column {OFFSET_COLUMN!r}"
                if self.offset_column == OFFSET_COLUMN
                else ""
            )
            raise DataError(f"offset column(s) {missing} missing from the data{how}")
        ev = Evaluator(data, self.states)
        for node in self.parsed.offsets:
            out = out + np.broadcast_to(ev.numeric(node), (len(data),))
        if self.offset_column is not None:
            out = out + ev.numeric(Name(self.offset_column))
        return out

    def response_values(self, data: pd.DataFrame, binary: bool = False) -> np.ndarray:
        """The response of each row, shape (n,), or (n, 2) for ``cbind(successes, failures)``.

        NaN where missing; a missing or non-numeric column is a DataError, and
        so is a boolean column unless ``binary`` (a GLMM's 0/1 outcome).
        """
        lhs = self.parsed.lhs
        if isinstance(lhs, Name):
            return response(data, lhs.id, binary=binary)
        check_columns(data, syntax.names(lhs), "response")
        ev = Evaluator(data, self.states)
        if self.parsed.two_column:
            assert isinstance(lhs, Call)
            cols = [np.broadcast_to(ev.numeric(a), (len(data),)) for a in lhs.args]
            return np.column_stack(cols).astype(float)
        return np.broadcast_to(ev.numeric(lhs), (len(data),)).astype(float)

    def response_vector(self, data: pd.DataFrame) -> np.ndarray:
        """The response as floats, shape (n,); errors on NaN, inf or non-numbers."""
        if self.parsed.two_column:
            raise FormulaError(two_column_message(self.response))
        y = self.response_values(data)
        check_finite(y, f"response {self.response!r}")
        return y

    def working_response(self, data: pd.DataFrame) -> np.ndarray:
        """The response minus the offset, shape (n,): what the model's ``X beta + Z b`` fits."""
        y = self.response_vector(data)
        if not self.parsed.offsets and self.offset_column is None:
            return y
        offset = self.offset(data)
        check_finite(offset, "the offset")
        return y - offset


def two_column_message(response: str) -> str:
    return (
        f"the response {response} is a two-column binomial response (successes, failures); "
        "a linear mixed model needs one column: fit it with mfx.glmm(..., family='binomial')"
    )


def check_finite(values: np.ndarray, what: str) -> None:
    """Raise a DataError when ``values`` has NaN or infinite entries, naming ``what``."""
    check_count(Count.of(~np.isfinite(values)), what)


def check_count(count: Count, what: str) -> None:
    """Raise a DataError when ``count`` counts missing values of ``what`` (the response, ...)."""
    if count.bad:
        raise DataError(
            f"{what} has {count.bad} NaN or infinite values (first at row {count.first}); "
            "drop those rows first"
        )


def refuse_dot(missing: list[str]) -> None:
    """A FormulaError for R's ``.`` among the names a formula uses that the data lacks."""
    if "." in missing:
        raise FormulaError(
            "'.' (R's 'every other column') is not supported in a mixed model formula: "
            "name the predictors"
        )


def check_columns(data: pd.DataFrame, names: list[str], what: str) -> None:
    """Raise a DataError naming every column of ``names`` missing from ``data``."""
    missing = [n for n in names if n not in data.columns]
    refuse_dot(missing)
    if missing:
        raise DataError(
            f"{what} column(s) {missing} missing from the data "
            f"(it has {list(map(str, data.columns))[:20]})"
        )


def response(data: pd.DataFrame, name: str, binary: bool = False) -> np.ndarray:
    """A response column as a float vector, shape (n,), NaN where missing.

    A column that is not numeric is refused, and so is a boolean one unless
    ``binary`` (a GLMM's outcome: True is 1); a linear model of binary data
    is a mistake.
    """
    check_columns(data, [name], "response")
    col = column(data, name)
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "iuf":  # passes every check below
        return numbers(col)
    boolean = pd.api.types.is_bool_dtype(col.dtype) or _booleans(col)
    if boolean and not binary:
        raise DataError(
            f"response {name!r} is boolean: a linear mixed model would treat it as a "
            "number; fit binary outcomes with mfx.glmm(formula, data, family='binomial')"
        )
    if boolean:  # True is 1; a missing value (None, pd.NA, NaN) is NaN
        gone = is_missing(col)
        return np.where(gone, np.nan, np.where(gone, False, col.to_numpy()).astype(float))
    if not pd.api.types.is_numeric_dtype(col.dtype) or isinstance(col.dtype, pd.CategoricalDtype):
        raise DataError(f"response {name!r} is not numeric (dtype {col.dtype}); convert it first")
    return numbers(col)


def _booleans(col: pd.Series) -> bool:
    """An object column whose present values are all booleans (a boolean with missing values)."""
    if not pd.api.types.is_object_dtype(col.dtype):
        return False
    values = col.to_numpy()[~is_missing(col)]
    return len(values) > 0 and all(isinstance(v, bool | np.bool_) for v in values)


def check_training(tally: rows_mod.Tally, design: DesignSpec) -> None:
    """The errors on missing values in training rows, from their :class:`~.rows.Tally`.

    Training rows must be complete: the response, the fixed-effects matrix,
    each random term's columns (in formula order) and the offset. The same
    check reads the tally of the whole frame in memory and the sum of the
    partitions' tallies on Dask. (Missing values of the used columns
    themselves are :mod:`.missing`'s, before; these are what the formula's
    expressions make of the rest, e.g. ``log(0)``.)
    """
    check_count(tally.y, f"response {design.response!r}")
    if tally.x.bad:
        column = design.fixed_names[int(np.argmax(tally.x_columns))]
        raise DataError(
            f"the fixed-effects matrix has NaN or infinite values in {tally.x.bad} row(s) "
            f"(first at row {tally.x.first}, column {column!r}); check the predictors"
        )
    if any(c.bad for c in tally.effects):
        for term in design.parsed.random:  # formula order
            k = next(k for k, t in enumerate(design.terms) if t.term == term)
            if tally.effects[k].bad:
                raise DataError(f"random term {term} has NaN or infinite values in its columns")
    check_count(tally.offset, "the offset")


def independent_columns(X: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Indices of columns of ``X`` that are not combinations of earlier ones.

    Columns are taken left to right (as lme4's pivoting QR does); a column
    whose residual after projecting on the kept ones is below ``tol`` times
    its norm (or is zero) is dropped.
    """
    kept: list[int] = []
    basis: list[np.ndarray] = []  # orthonormal columns spanning the kept ones
    for j in range(X.shape[1]):
        col = np.ascontiguousarray(X[:, j])
        norm = math.sqrt(col @ col)  # np.linalg.norm's sum of squares
        if norm == 0.0:
            continue
        resid = col
        if basis:
            Q = np.stack(basis, axis=1)
            resid = col - Q @ (Q.T @ col)
            resid = resid - Q @ (Q.T @ resid)  # second pass for stability
        rnorm = math.sqrt(resid @ resid)
        if rnorm > tol * norm:
            kept.append(j)
            basis.append(resid / rnorm)
    return np.array(kept, dtype=np.int64)


def drop_dependent(
    X: np.ndarray, names: list[str], stacklevel: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Indices of X's independent columns and names of the others, with a warning naming them.

    ``X`` may be the model matrix or any matrix with the same column space
    relations, such as the R factor of its QR decomposition (the Dask path).
    """
    kept = independent_columns(X)
    independent = set(kept.tolist())
    dropped = tuple(names[j] for j in range(len(names)) if j not in independent)
    if dropped:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient: dropping {len(dropped)} column(s) "
            f"{list(dropped)}",
            RankDeficiencyWarning,
            stacklevel=stacklevel + 1,
        )
    return kept, dropped


def learn(
    formula: str,
    data: pd.DataFrame,
    offset: str | None = None,
    two_column: bool = False,
) -> tuple[DesignSpec, TrainingArrays]:
    """Learn the design from training data and build its arrays.

    Parameters
    ----------
    formula : str
        An lme4 formula.
    data : DataFrame, shape (n, ...)
    offset : str, optional
        A column of ``data`` added to the linear predictor.
    two_column : bool, default False
        Accept a ``cbind(successes, failures)`` response and a boolean one
        (GLMMs): the arrays' ``y`` then has shape (n, 2) for ``cbind`` and
        holds the response itself.

    Returns
    -------
    design : DesignSpec
    arrays : TrainingArrays
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError("data has no rows")
    parsed = parse(formula)
    if parsed.two_column and not two_column:
        raise FormulaError(two_column_message(parsed.response))
    check_columns(data, syntax.names(parsed.lhs), "response")
    check_columns(data, list(parsed.fixed_terms.columns), "fixed-effects")
    for term in parsed.random:
        absent = [c for c in syntax.names(term.lhs) if c not in data.columns]
        refuse_dot(absent)
        if absent:
            raise DataError(f"column(s) {absent} of random term {term} missing from the data")
    offsets = [c for node in parsed.offsets for c in syntax.names(node)]
    check_columns(data, offsets + ([offset] if offset is not None else []), "offset")
    states = state_mod.learn(parsed, data)
    fixed = MatrixSpec.build(parsed.fixed_terms, states)
    names_ = list(fixed.names)
    learned = [reterm.learn(term, data, states) for term in parsed.random]
    terms, codes, _ = reterm.lme4_order([t for t, _ in learned], [c for _, c in learned])
    everything = np.arange(len(names_), dtype=np.int64)
    design = DesignSpec(
        formula, parsed, fixed, everything, tuple(names_), (), tuple(terms), states, offset
    )
    rows = rows_mod.build(design, data, response=True, binary=two_column, codes=tuple(codes))
    check_training(rows_mod.Tally.of(rows), design)
    # the R factor of X's QR (in the rank check's coordinates) has X's column relations
    # in a (p, p) matrix, as on Dask: the check then never walks the rows
    R = qr_r(intercept.standardized(rows.X, names_, fixed))
    kept, dropped = drop_dependent(R, names_, stacklevel=4)
    design = dataclasses.replace(
        design, kept=kept, fixed_names=tuple(names_[j] for j in kept), dropped=dropped
    )
    X, y = (rows.X if len(kept) == len(names_) else rows.X[:, kept]), rows.y
    assert y is not None
    off = rows.offset if parsed.offsets or offset is not None else None
    if off is None or two_column:
        return design, TrainingArrays(X, y, rows.codes, rows.M, off)
    return design, TrainingArrays(X, y - off, rows.codes, rows.M, off, y)
