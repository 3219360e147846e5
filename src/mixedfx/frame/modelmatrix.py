"""A model matrix: R's ``model.matrix`` of a right-hand side, with its learned states.

Each term of :class:`~mixedfx.frame.terms.Terms` gives a block of columns:
the row-wise product of its variables' columns, the first variable varying
fastest. A numeric variable gives one column (``poly(x, d)`` gives ``d``,
named ``poly(x, d)1``...); a categorical variable gives, by R's rule,

* contrasts (treatment: one indicator per level but the first, named
  ``f`` + level; polynomial ``.L .Q .C ^4...`` for an ordered factor) when
  the term without it is in the model (for a main effect: always), and
* indicators of every level otherwise; without an intercept, the first
  categorical variable of the first term that has one also gets
  indicators.

This is R's ``TermCode`` (Chambers and Hastie, *Statistical Models in S*,
p. 38), so ``y ~ x:f`` gives ``x:fa, x:fb, x:fc`` and ``y ~ x + x:f`` gives
``x, x:fb, x:fc``. The spec holds no data: it is rebuilt from the terms and
the learned states alone (:meth:`MatrixSpec.build`), e.g. when a model is
loaded from a file.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError
from . import transforms as tf
from .evaluate import Coded, Evaluator, width
from .syntax import Node
from .terms import Terms


def contr_poly(k: int) -> np.ndarray:
    """R's ``contr.poly(k)``: orthonormal polynomial contrasts of k levels, shape (k, k - 1)."""
    scores = np.arange(1.0, k + 1) - (k + 1) / 2
    Q, R = np.linalg.qr(np.vander(scores, k, increasing=True))
    Z = Q * np.diag(R)
    return (Z / np.linalg.norm(Z, axis=0))[:, 1:]


def contr_poly_names(k: int) -> list[str]:
    return [".L", ".Q", ".C", *(f"^{j}" for j in range(4, k))][: k - 1]


@dataclass(frozen=True)
class Variable:
    """One variable of a model matrix: its tree and what it holds.

    Attributes
    ----------
    node : Node
    key : str
        R's text of it, e.g. ``"factor(k)"``.
    width : int
        Columns of a numeric variable (``poly``: its degree).
    levels : Levels or None
        Set for a categorical variable.
    """

    node: Node
    key: str
    width: int
    levels: tf.Levels | None

    def suffixes(self, contrasts: bool) -> list[str]:
        """Column names after the key: level names, contrast names or matrix columns."""
        if self.levels is None:
            return [""] if self.width == 1 else [str(j + 1) for j in range(self.width)]
        if not contrasts:
            return list(self.levels.names)
        if self.levels.ordered:
            return contr_poly_names(len(self.levels))
        return list(self.levels.names[1:])

    def basis(self, value: np.ndarray | Coded, contrasts: bool) -> np.ndarray:
        """The variable's columns, shape (n, m); NaN rows where a category is missing."""
        if not isinstance(value, Coded):
            return value.reshape(len(value), self.width)
        k = len(value.levels)
        out = (value.codes[:, None] == np.arange(k)).astype(float)
        out[value.codes < 0] = np.nan
        if not contrasts:
            return out
        if value.levels.ordered:
            return out @ contr_poly(k)
        return out[:, 1:]


def coding(terms: Terms, categorical: set[int]) -> tuple[tuple[bool, ...], ...]:
    """Per term, per variable: True for contrasts, False for indicators (R's rule)."""
    out = []
    for k, term in enumerate(terms.terms):
        codes = []
        for v in term:
            rest = set(term) - {v}
            codes.append(not rest or any(rest <= set(t) for t in terms.terms[:k]))
        out.append(codes)
    if not terms.intercept:
        for k, term in enumerate(terms.terms):
            first = next((j for j, v in enumerate(term) if v in categorical), None)
            if first is not None:
                out[k][first] = False
                break
    return tuple(tuple(c) for c in out)


@dataclass(frozen=True)
class MatrixSpec:
    """A learned right-hand side: terms, variables, coding and the states they read."""

    terms: Terms
    variables: tuple[Variable, ...]
    coding: tuple[tuple[bool, ...], ...]
    states: Mapping[str, tf.State] = field(compare=False, repr=False)

    @classmethod
    def build(cls, terms: Terms, states: Mapping[str, tf.State]) -> MatrixSpec:
        """The spec from the terms and the learned states (no data needed).

        Raises
        ------
        DataError
            For a categorical variable with fewer than two levels.
        """
        variables = []
        for node, key in zip(terms.variables, terms.keys, strict=True):
            state = states.get(key)
            levels = state if isinstance(state, tf.Levels) else None
            if levels is not None and len(levels) < 2:
                raise DataError(
                    f"categorical variable {key!r} has only one level ({list(levels.names)}); "
                    "a factor in a model needs two or more"
                )
            variables.append(Variable(node, key, width(node) if levels is None else 1, levels))
        categorical = {i for i, v in enumerate(variables) if v.levels is not None}
        return cls(terms, tuple(variables), coding(terms, categorical), states)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """Column names as R names them: ``x``, ``fb``, ``x:fb``, ``poly(x, 2)1``."""
        out = ["(Intercept)"] if self.terms.intercept else []
        for term, codes in zip(self.terms.terms, self.coding, strict=True):
            block = [""]
            for i, contrasts in zip(term, codes, strict=True):
                var = self.variables[i]
                cols = [var.key + s for s in var.suffixes(contrasts)]
                block = [f"{a}:{b}" if a else b for b in cols for a in block]
            out += block
        return tuple(out)

    def data_columns(self) -> list[str]:
        """The data columns the variables read, in order."""
        return list(self.terms.columns)  # self.variables are the terms' variables, in order

    def matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The model matrix of the rows of ``data``, shape (n, len(names)), column-major.

        Rows with a missing value of a variable are NaN where it enters.
        Column-major (Fortran order) because what reads it works by column:
        moments, cross-products, standardizing (a (n, k) row-major array with
        few columns made each of those a slow strided loop over the rows).

        Raises
        ------
        DataError
            For a missing column, a category training never saw, or a
            variable whose type differs from training's.
        """
        ev = Evaluator(data, self.states)
        n = len(data)
        values = [ev.variable(v.node) for v in self.variables]
        out = np.empty((n, len(self.names)), order="F")
        start = 0
        if self.terms.intercept:
            out[:, 0] = 1.0
            start = 1
        for term, codes in zip(self.terms.terms, self.coding, strict=True):
            bases = [
                self.variables[i].basis(values[i], c) for i, c in zip(term, codes, strict=True)
            ]
            block = bases[0]
            for B in bases[1:]:
                block = (B[:, :, None] * block[:, None, :]).reshape(n, -1)
            out[:, start : start + block.shape[1]] = block
            start += block.shape[1]
        return out
