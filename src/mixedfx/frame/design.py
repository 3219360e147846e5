"""The design: a frozen spec learned from training data and reused on new data.

It holds the fixed-effects model spec (formulaic), the columns kept after
dropping redundant ones, and one :class:`~mixedfx.frame.reterm.ReTerm` per random
term. From it, any data frame with the right columns gives the fixed-effects
matrix ``X`` (n x p) and, per term, level codes (n,) and a model matrix
(n x q).
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from formulaic import Formula, ModelSpec
from formulaic.errors import DataMismatchWarning, FormulaicError

from ..engine.layout import ThetaLayout
from ..errors import DataError, FormulaError, RankDeficiencyWarning
from . import intercept, reterm
from .formula import ParsedFormula, parse, variable_names

RANK_TOL = 1e-7  # lme4's tolerance for dropping columns of X


@dataclass(frozen=True)
class TrainingArrays:
    """The numbers the engine needs from the training rows."""

    X: np.ndarray  # (n, p)
    y: np.ndarray  # (n,)
    codes: tuple[np.ndarray, ...]  # per term, (n,)
    M: tuple[np.ndarray, ...]  # per term, (n, q_t)


@dataclass(frozen=True)
class DesignSpec:
    """The design learned from training data: everything needed to turn a frame into matrices.

    A specification, not the matrices: :meth:`LinearMixedModel.design` applies
    it to rows and returns ``X`` and ``Z``.

    Attributes
    ----------
    formula : str
    parsed : ParsedFormula
    fixed_spec : formulaic ModelSpec of the fixed-effects right-hand side
    kept : ndarray of int
        Indices of the fixed-effects spec's columns kept after rank checks.
    fixed_names : tuple of str
        Names of the kept columns (lme4 style: ``(Intercept)``).
    dropped : tuple of str
        Names of columns dropped as linearly dependent on earlier ones.
    terms : tuple of ReTerm
    """

    formula: str
    parsed: ParsedFormula
    fixed_spec: object
    kept: np.ndarray
    fixed_names: tuple[str, ...]
    dropped: tuple[str, ...]
    terms: tuple[reterm.ReTerm, ...]
    all_names: tuple[str, ...] = ()  # formulaic's column names before dropping

    @property
    def response(self) -> str:
        return self.parsed.response

    @functools.cached_property
    def layout(self) -> ThetaLayout:
        """Where each element of theta sits in the terms' relative covariance factors."""
        return ThetaLayout(
            tuple(t.q for t in self.terms), tuple(t.term.correlated for t in self.terms)
        )

    def theta_names(self) -> list[str]:
        """lme4's names of theta's elements, e.g. ``Subject.Days.(Intercept)``."""
        return [
            n
            for t, ix in zip(self.terms, self.layout.index, strict=True)
            for n in t.theta_names(ix)
        ]

    def fixed_variables(self) -> list[str]:
        """Data columns the fixed-effects part reads."""
        return data_columns(self.parsed.fixed, self.fixed_spec.required_variables)  # type: ignore[attr-defined]

    def X(self, data: pd.DataFrame) -> np.ndarray:
        """The fixed-effects matrix for new data, shape (n, p).

        Rows with a missing predictor come out as NaN; an unseen level of a
        categorical predictor is an error naming it.
        """
        absent = np.zeros(len(data), dtype=bool)
        for name in self.fixed_variables():
            if name in data.columns:
                absent |= missing_values(data[name])
        if absent.any():  # build the complete rows; the others are NaN
            out = np.full((len(data), len(self.fixed_names)), np.nan)
            if not absent.all():
                out[~absent] = self.X(data.iloc[np.flatnonzero(~absent)])
            return out
        rhs = _fixed_formula(self.parsed.fixed)
        numeric = _numeric_columns(rhs, data)
        if numeric is not None and self.all_names:
            names = tuple(_numeric_spec(self.parsed.fixed, numeric).column_names)
            if names == self.all_names:  # plain numeric columns, as in training
                return _stack(names, data)[:, self.kept]
        try:
            full, names = build_fixed(self.fixed_spec, data)
        except DataError:
            check_columns(data, self.fixed_variables(), "fixed-effects")  # name the cause
            raise
        if self.all_names and names != self.all_names:
            raise DataError(
                f"the fixed-effects columns of the new data {list(names)} differ "
                f"from training's {list(self.all_names)}"
            )
        return full[:, self.kept]

    def response_vector(self, data: pd.DataFrame) -> np.ndarray:
        """The response column as floats, shape (n,); errors on NaN, inf or non-numbers."""
        return response(data, self.response)


def missing_values(column: pd.Series) -> np.ndarray:
    """True where a value is NaN, inf or None, shape (n,)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return ~np.isfinite(np.asarray(column, dtype=float))
    return column.isna().to_numpy(dtype=bool, copy=True)


def data_columns(text: str, variables: set[str]) -> list[str]:
    """formulaic's required variables as the data columns a formula names.

    formulaic reads a dotted name such as ``Day.s`` as the variable ``Day``
    (attribute ``s``), yet evaluates it from a column ``Day.s``: a dotted
    name written in ``text`` that starts with a variable is that column.

    Parameters
    ----------
    text : str
        The formula (or its fixed part) as written.
    variables : set of str
        formulaic's ``required_variables`` of it.

    Returns
    -------
    list of str
        Sorted column names, e.g. ``["Day.s"]`` for ``"Day.s"``.
    """
    out: set[str] = set()
    for v in variables:
        head = r"(?<![\w.])" + re.escape(v)
        dotted = set(re.findall(head + r"(?:\.\w+)+", text))
        alone = re.search(head + r"(?![\w.])", text) is not None
        out |= dotted | ({v} if alone or not dotted else set())
    return sorted(out)


def check_columns(data: pd.DataFrame, names: list[str], what: str) -> None:
    """Raise a DataError naming every column of ``names`` missing from ``data``."""
    missing = [n for n in names if n not in data.columns]
    if missing:
        raise DataError(
            f"{what} column(s) {missing} missing from the data "
            f"(it has {list(map(str, data.columns))[:20]})"
        )


# formulaic encodes an unseen categorical level as the baseline (zeros) and only
# warns; we turn that warning into an error. Warning filters are process-global,
# so the switch is made under a lock: concurrent predictions must not restore
# each other's filters halfway (which could let one of them through silently).
_FILTER_LOCK = threading.Lock()


def build_fixed(spec: object, data: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """Apply a learned formulaic spec; unseen categorical levels are errors.

    Levels are checked before formulaic runs (:func:`unseen_levels`, naming the
    column); formulaic's own DataMismatchWarning is a second line of defence.
    """
    unseen_levels(spec, data)
    with _FILTER_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", category=DataMismatchWarning)
        try:
            mm = spec.get_model_matrix(data, output="numpy", na_action="ignore")  # type: ignore[attr-defined]
        except DataMismatchWarning as exc:  # unseen levels check_levels could not see
            raise DataError(f"new data does not fit the fixed effects: {exc}") from exc
        except FormulaicError as exc:
            raise DataError(f"cannot build the fixed effects from the data: {exc}") from exc
    return np.asarray(mm, dtype=float), tuple(mm.model_spec.column_names)


def unseen_levels(spec: object, data: pd.DataFrame) -> None:
    """Raise a DataError naming a categorical predictor with levels training never saw.

    formulaic's learned state lists each categorical factor (``c`` or an
    expression such as ``C(k)``) with its training levels; the data column is
    the factor itself or the one column its expression names.
    """
    state = getattr(spec, "encoder_state", {}) or {}
    for factor, (kind, info) in state.items():
        if getattr(kind, "value", kind) != "categorical" or not isinstance(info, dict):
            continue
        if factor in data.columns:
            name = factor
        else:
            cols = [c for c in variable_names(str(factor)) if c in data.columns]
            if len(cols) != 1:
                continue
            name = cols[0]
        known = list(info.get("categories", []))
        values = pd.unique(data[name].dropna())
        unseen = [v for v in values if v not in known]
        if unseen:
            shown = [str(v) for v in unseen[:10]]
            raise DataError(
                f"fixed-effect column {name!r} has level(s) {shown} that training never "
                f"saw (training levels: {[str(k) for k in known[:20]]}); the fixed "
                "effects have no coefficient for them"
            )


def response(data: pd.DataFrame, name: str) -> np.ndarray:
    """The response as a float vector, shape (n,)."""
    check_columns(data, [name], "response")
    col = data[name]
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise DataError(f"response {name!r} is not numeric (dtype {col.dtype}); convert it first")
    y = np.asarray(col, dtype=float)
    bad = ~np.isfinite(y)
    if bad.any():
        raise DataError(
            f"response {name!r} has {bad.sum()} NaN or infinite values (first at row "
            f"{int(np.argmax(bad))}); drop those rows first"
        )
    return y


def _check_finite_inputs(data: pd.DataFrame, names: list[str]) -> None:
    for name in names:
        col = data[name]
        if pd.api.types.is_numeric_dtype(col):
            values = np.asarray(col, dtype=float)
            bad = ~np.isfinite(values)
        else:
            bad = np.asarray(col.isna())
        if bad.all() and len(bad):
            raise DataError(f"column {name!r} is entirely missing")
        if bad.any():
            raise DataError(
                f"column {name!r} has {bad.sum()} NaN or infinite values (first at row "
                f"{int(np.argmax(bad))}); drop those rows first"
            )


def independent_columns(X: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Indices of columns of ``X`` that are not combinations of earlier ones.

    Columns are taken left to right (as lme4's pivoting QR does); a column
    whose residual after projecting on the kept ones is below ``tol`` times
    its norm (or is zero) is dropped.
    """
    kept: list[int] = []
    Q = np.zeros((X.shape[0], 0))
    for j in range(X.shape[1]):
        col = X[:, j]
        norm = np.linalg.norm(col)
        if norm == 0.0:
            continue
        resid = col - Q @ (Q.T @ col)
        resid = resid - Q @ (Q.T @ resid)  # second pass for stability
        rnorm = np.linalg.norm(resid)
        if rnorm > tol * norm:
            kept.append(j)
            Q = np.column_stack([Q, resid / rnorm])
    return np.array(kept, dtype=np.int64)


def drop_dependent(
    X: np.ndarray, names: list[str], stacklevel: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Indices of X's independent columns and names of the others, with a warning naming them.

    ``X`` may be the model matrix or any matrix with the same column space
    relations, such as the R factor of its QR decomposition (the Dask path).
    """
    kept = independent_columns(X)
    dropped = tuple(names[j] for j in range(len(names)) if j not in set(kept.tolist()))
    if dropped:
        warnings.warn(
            f"fixed-effect model matrix is rank deficient: dropping {len(dropped)} column(s) "
            f"{list(dropped)}",
            RankDeficiencyWarning,
            stacklevel=stacklevel + 1,
        )
    return kept, dropped


@functools.lru_cache(maxsize=128)
def _fixed_formula(rhs: str) -> Formula:
    """The parsed fixed-effects formula (formulaic parsing is slow; formulas are immutable)."""
    try:
        return Formula(rhs)
    except FormulaicError as exc:
        raise FormulaError(f"cannot read the fixed part {rhs!r}: {exc}") from exc


def _numeric_columns(rhs: Formula, data: pd.DataFrame) -> tuple[tuple[str, str], ...] | None:
    """(name, dtype) of each column when every term is the intercept or a numeric column.

    None when any term needs formulaic (a transform, an interaction, a
    categorical or boolean column, a missing column).
    """
    out = []
    for term in rhs:
        factors = term.factors
        if len(factors) != 1:
            return None
        method = factors[0].eval_method.value
        name = factors[0].expr
        if method == "literal" and name == "1":
            continue
        if method != "lookup" or name not in data.columns or name == "Intercept":
            return None  # ("Intercept" would collide with formulaic's intercept column)
        dtype = data[name].dtype
        if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":
            return None
        out.append((name, dtype.str))
    return tuple(out)


@functools.lru_cache(maxsize=128)
def _numeric_spec(rhs: str, columns: tuple[tuple[str, str], ...]) -> ModelSpec:
    """formulaic's spec for a fixed part of numeric columns only (it holds no data state)."""
    sample = pd.DataFrame({name: np.zeros(2, dtype=np.dtype(dt)) for name, dt in columns})
    spec: ModelSpec = _fixed_formula(rhs).get_model_matrix(sample, output="numpy").model_spec
    return spec


def _stack(names: Sequence[str], data: pd.DataFrame) -> np.ndarray:
    """X stacked from plain numeric columns ("Intercept" is ones), shape (n, len(names)).

    No formulaic materializer: faster, and it leaves no reference cycles
    holding ``data`` (which kept Dask partitions alive in worker memory).
    """
    n = len(data)
    columns = [np.ones(n) if c == "Intercept" else np.asarray(data[c], dtype=float) for c in names]
    return np.column_stack(columns) if columns else np.empty((n, 0))


def _fixed_matrix(
    rhs_text: str, data: pd.DataFrame, fixed_vars: list[str]
) -> tuple[np.ndarray, ModelSpec]:
    """The fixed-effects matrix and its formulaic spec, shape (n, p).

    A fixed part of plain numeric columns (``1 + x + z``) skips formulaic's
    materializer: the spec, which then holds no state learned from data, is
    cached per formula and column dtypes, and X is stacked from the columns.
    """
    rhs = _fixed_formula(rhs_text)
    numeric = _numeric_columns(rhs, data)
    if numeric is not None:
        spec = _numeric_spec(rhs_text, numeric)
        return _stack(spec.column_names, data), spec
    try:
        mm = rhs.get_model_matrix(data, output="numpy", na_action="ignore")
    except FormulaicError as exc:
        check_columns(data, fixed_vars, "fixed-effects")  # the usual cause: name it
        raise FormulaError(f"cannot build the fixed effects {rhs_text!r}: {exc}") from exc
    learned: ModelSpec = mm.model_spec
    return np.asarray(mm, dtype=float), learned


def learn(formula: str, data: pd.DataFrame) -> tuple[DesignSpec, TrainingArrays]:
    """Learn the design from training data and build its arrays.

    Parameters
    ----------
    formula : str
        An lme4 formula.
    data : DataFrame, shape (n, ...)

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
    y = response(data, parsed.response)
    rhs = _fixed_formula(parsed.fixed)
    fixed_vars = data_columns(parsed.fixed, rhs.required_variables)
    _check_finite_inputs(data, [v for v in fixed_vars if v in data.columns])
    full, spec = _fixed_matrix(parsed.fixed, data, fixed_vars)
    if not np.isfinite(full).all():
        rows = np.flatnonzero(~np.isfinite(full).all(axis=1))
        raise DataError(
            f"the fixed-effects matrix has NaN or infinite values in {len(rows)} "
            f"row(s) (first at row {rows[0]}); check the predictors"
        )
    names = reterm.rename_intercept(list(spec.column_names))
    kept, dropped = drop_dependent(intercept.standardized(full, names, spec), names, stacklevel=4)
    terms, codes, Ms = [], [], []
    for term in parsed.random:
        rt, c, M = reterm.learn(term, data)
        if not np.isfinite(M).all():
            raise DataError(f"random term {term} has NaN or infinite values in its columns")
        terms.append(rt)
        codes.append(c)
        Ms.append(M)
    order = sorted(range(len(terms)), key=lambda t: -terms[t].nlevels)  # lme4's term order
    terms, codes, Ms = [terms[t] for t in order], [codes[t] for t in order], [Ms[t] for t in order]
    design = DesignSpec(
        formula,
        parsed,
        spec,
        kept,
        tuple(names[j] for j in kept),
        dropped,
        tuple(terms),
        tuple(spec.column_names),
    )
    return design, TrainingArrays(full[:, kept], y, tuple(codes), tuple(Ms))
