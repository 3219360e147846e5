"""One random-effects term ``(expr | group)``: its levels, model matrix and Lambda.

For a term with ``q`` columns and ``l`` levels, the rows' random-effects
model matrix ``M`` has shape (n, q) and the term's block of ``Z`` is the
row-wise Khatri-Rao product of the level indicators with ``M``: row ``i``
holds ``M[i]`` in the columns of level ``codes[i]``. The relative covariance
factor of one level, ``T`` (q x q, lower triangular), comes from ``theta``:
its lower triangle in column-major order (correlated terms) or its diagonal
(``||`` terms). The term's block of ``Lambda`` is ``kron(I_l, T)``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import levels as lv
from .formula import RandomTerm, variable_names

_SIMPLE = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


def _simple_columns(expr: str, data: pd.DataFrame) -> list[str] | None:
    """Column list for expressions like ``1 + x`` or ``0 + x`` of numeric columns."""
    pieces = [p.strip() for p in expr.replace("-", "+-").split("+") if p.strip()]
    intercept = True
    cols: list[str] = []
    for piece in pieces:
        if piece == "1":
            intercept = True
        elif piece in ("0", "-1"):
            intercept = False
        elif _SIMPLE.match(piece) and piece in data and data[piece].dtype.kind in "iuf":
            cols.append(piece)
        else:
            return None
    return (["(Intercept)"] if intercept else []) + cols


def rename_intercept(names: list[str]) -> list[str]:
    """formulaic's ``Intercept`` is lme4's ``(Intercept)``."""
    return ["(Intercept)" if n == "Intercept" else n for n in names]


@dataclass(frozen=True)
class ReTerm:
    """A random-effects term learned from training data.

    Attributes
    ----------
    term : RandomTerm
        The parsed term.
    columns : tuple of str
        Names of the term's ``q`` model-matrix columns.
    keys, labels : ndarray of object, shape (l,)
        Canonical keys and display labels of the grouping levels.
    factor_keys : tuple of ndarray
        For an interaction ``a:b``, the keys of each factor (for new data).
    spec : object or None
        A formulaic ModelSpec for non-simple expressions, else None.
    scales : ndarray, shape (q,), or None
        Column scales the optimizer worked in (see :func:`mixedfx.fit.column_scales`);
        None means all 1. The boundary check of :attr:`LinearMixedModel.singular`
        uses ``|T_jj| * scales[j]``, so it does not depend on the units of a
        random-slope column.
    """

    term: RandomTerm
    columns: tuple[str, ...]
    keys: np.ndarray
    labels: np.ndarray
    factor_keys: tuple[np.ndarray, ...]
    spec: object | None = field(default=None, compare=False)
    scales: np.ndarray | None = field(default=None, compare=False)

    # -- sizes --------------------------------------------------------------
    @property
    def group(self) -> str:
        return self.term.group

    @property
    def q(self) -> int:
        """Number of random effects per level."""
        return len(self.columns)

    @property
    def nlevels(self) -> int:
        return len(self.keys)

    def theta_names(self, index: tuple[np.ndarray, np.ndarray]) -> list[str]:
        """lme4-style names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``.

        ``index`` is the term's (rows, cols) in the design's
        :class:`~mixedfx.engine.layout.ThetaLayout`.
        """
        cols = self.columns
        return [
            f"{self.group}.{cols[i]}" if i == j else f"{self.group}.{cols[i]}.{cols[j]}"
            for i, j in zip(*index, strict=True)
        ]

    # -- data -> codes and model matrix ---------------------------------------
    @functools.cached_property
    def key_index(self) -> lv.KeyIndex:
        """The keys' hash index for :meth:`codes`, built on first use."""
        return lv.KeyIndex(self.keys)

    def model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The term's per-row model matrix ``M``, shape (n, q)."""
        if self.spec is None:
            out = np.empty((len(data), self.q))
            for k, name in enumerate(self.columns):
                out[:, k] = 1.0 if name == "(Intercept)" else _numeric(data, name)
            return out
        mm = self.spec.get_model_matrix(data, output="numpy")  # type: ignore[attr-defined]
        return np.asarray(mm, dtype=float)

    def codes(self, data: pd.DataFrame) -> np.ndarray:
        """Level codes of new rows, shape (n,); ``-1`` for unseen or missing labels."""
        if len(self.term.factors) == 1:
            return lv.lookup(_column(data, self.term.factors[0]), self.key_index)
        parts = [
            (lv.lookup(_column(data, f), fk), fk)
            for f, fk in zip(self.term.factors, self.factor_keys, strict=True)
        ]
        return lv.interaction_lookup(parts, self.keys)

    def new_keys(self, data: pd.DataFrame) -> np.ndarray:
        """Canonical keys of the rows' levels (seen or not), shape (n,), None where missing."""
        pieces = []
        for f in self.term.factors:
            col = _column(data, f)
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            keys = lv.canonical_keys(uniques) if len(uniques) else np.array([], dtype=object)
            piece = np.full(len(col), None, dtype=object)
            piece[codes >= 0] = keys[codes[codes >= 0]]
            pieces.append(piece)
        out: np.ndarray = pieces[0]
        for piece in pieces[1:]:
            ok = ~(pd.isna(out) | pd.isna(piece))
            out = out.copy()
            out[ok] = out[ok] + ":" + piece[ok]
            out[~ok] = None
        return out


def _column(data: pd.DataFrame, name: str) -> pd.Series:
    if name not in data:
        raise DataError(f"grouping column {name!r} is missing from the data")
    return data[name]


def _numeric(data: pd.DataFrame, name: str) -> np.ndarray:
    if name not in data:
        raise DataError(f"column {name!r} of a random-effects term is missing from the data")
    return np.asarray(data[name], dtype=float)


def learn(term: RandomTerm, data: pd.DataFrame) -> tuple[ReTerm, np.ndarray, np.ndarray]:
    """Learn a term from training data.

    Returns
    -------
    reterm : ReTerm
    codes : ndarray of int64, shape (n,)
    M : ndarray, shape (n, q)
        The term's per-row model matrix.
    """
    for f in term.factors:
        if f not in data:
            raise DataError(f"grouping column {f!r} of random term {term} is missing from the data")
    simple = _simple_columns(term.expr, data)
    spec = None
    if simple is None:
        from formulaic import model_matrix

        try:
            mm = model_matrix(term.expr, data, output="numpy", na_action="ignore")
        except Exception as exc:  # formulaic raises many types; name the term
            absent = sorted(set(variable_names(term.expr)) - set(map(str, data.columns)))
            if absent:
                raise DataError(
                    f"column(s) {absent} of random term {term} missing from the data"
                ) from exc
            raise FormulaError(f"cannot build the model matrix of term {term}: {exc}") from exc
        spec = mm.model_spec
    reterm, codes = from_levels(term, term_columns(term, simple, spec), spec, data)
    return reterm, codes, reterm.model_matrix(data)


def term_columns(
    term: RandomTerm, simple: list[str] | None, spec: object | None
) -> tuple[str, ...]:
    """The term's column names (from the simple parse or the formulaic spec), checked."""
    if simple is None:
        names = list(getattr(spec, "column_names", ()))
        columns = tuple(rename_intercept(names))
    else:
        columns = tuple(simple)
    if not columns:
        raise FormulaError(f"random term {term} has no columns")
    named = set(variable_names(term.expr))
    for f in term.factors:
        if f == term.expr.strip() or f in columns or f in named:
            raise FormulaError(
                f"random term {term} uses {f!r} on both sides of the bar; "
                "a grouping factor cannot also be its own random slope"
            )
    return columns


def from_levels(
    term: RandomTerm, columns: tuple[str, ...], spec: object | None, data: pd.DataFrame
) -> tuple[ReTerm, np.ndarray]:
    """The term with the grouping levels found in ``data``, and the rows' level codes.

    Only the grouping columns of ``data`` are read, so the distinct rows of
    those columns (in order of first appearance) give the same levels as the
    full data.
    """
    if len(term.factors) == 1:
        codes, keys, labels = lv.encode(data[term.factors[0]], term.factors[0])
        factor_keys: tuple[np.ndarray, ...] = (keys,)
    else:
        parts = [lv.encode(data[f], f) for f in term.factors]
        inter = lv.combine([(c, k) for c, k, _ in parts])
        codes, keys, labels = inter.codes, inter.keys, inter.labels
        factor_keys = tuple(k for _, k, _ in parts)
    return ReTerm(term, columns, keys, labels, factor_keys, spec), codes
