"""The intercept combination of a model matrix: weights ``v`` with ``W v = 1`` on every row.

A model matrix holds the constant when it has an intercept column, or the
indicator columns of every level of a factor (``0 + f`` or ``(0 + f | g)``:
every row has exactly one of them), or of an interaction of factors each
coded by indicators (``0 + a:b``). Then shifting any other column by a
constant is a reparameterisation, and the fit centres those columns
(:mod:`mixedfx.engine.standard`). The combination is read from the
:class:`~mixedfx.frame.modelmatrix.MatrixSpec` alone (R's coding, no data),
so every path (in memory, each Dask partition, new rows, a loaded model)
uses the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..engine.standard import Moments
from .modelmatrix import MatrixSpec

if TYPE_CHECKING:
    from .design import DesignSpec


def constant_columns(spec: MatrixSpec) -> tuple[str, ...] | None:
    """Names of the columns of ``spec``'s matrix that sum to 1 on every row, or None.

    ``("(Intercept)",)`` with an intercept; else the columns of the first
    term whose variables are all categorical and all coded by indicators
    of every level (R's rule gives the first factor of a model without an
    intercept its indicators, so ``0 + f`` has one); None when neither.
    """
    if spec.terms.intercept:
        return ("(Intercept)",)
    start = 0
    for term, codes in zip(spec.terms.terms, spec.coding, strict=True):
        variables = [spec.variables[i] for i in term]
        width = int(np.prod([len(v.suffixes(c)) for v, c in zip(variables, codes, strict=True)]))
        if all(v.levels is not None for v in variables) and not any(codes):
            return spec.names[start : start + width]
        start += width
    return None


def weights(names: Sequence[str], spec: MatrixSpec | None) -> np.ndarray | None:
    """``v`` for the columns ``names`` of a matrix built by ``spec``, or None.

    Parameters
    ----------
    names : sequence of str
        The matrix's columns (the kept ones of ``spec``'s), lme4 style
        (``(Intercept)``).
    spec : MatrixSpec or None
        What built the matrix (None for plain columns: no combination).

    Returns
    -------
    ndarray, shape (len(names),), or None
        The indicator of :func:`constant_columns` among ``names``; None
        when there is none or when one of its columns was dropped.
    """
    constant = None if spec is None else constant_columns(spec)
    names = list(names)
    if constant is None or not set(constant) <= set(names):
        return None
    v = np.zeros(len(names))
    v[[names.index(c) for c in constant]] = 1.0
    return v


def design_weights(design: DesignSpec) -> tuple[np.ndarray | None, list[np.ndarray | None]]:
    """The intercept combinations of X (kept columns) and of each term's M (None: only scaled).

    Only a term whose ``T`` is one full lower triangle (one block, q > 1) is
    centred: ``G_t^-1 T`` then stays in the set of its factors. A term of
    several blocks (``(x || g)``, lme4's ``(1 | g) + (0 + x | g)``) keeps a
    diagonal ``G_t``, which maps each block alone, so its ``T`` stays block
    diagonal.
    """
    x = weights(design.fixed_names, design.fixed)
    terms = [
        weights(t.columns, t.parts[0])
        if len(t.blocks) == 1 and t.q > 1 and len(t.parts) == 1
        else None
        for t in design.terms
    ]
    return x, terms


def rank_moments(m: Moments) -> Moments:
    """The coordinates the rank check reads: columns after the constant's centred, all scaled.

    The rank check keeps columns left to right, as lme4's pivoting QR does,
    and drops one whose residual on the earlier ones is below a tolerance
    relative to its norm. Centring a column on the constant changes nothing
    in exact arithmetic when the constant is in the span of the earlier
    columns (every column of the intercept combination comes before it), and
    then makes the tolerance independent of the column's offset (``x + 1e10``
    is no longer mistaken for a multiple of the intercept). Columns before
    the constant's are only scaled, so the same columns as lme4's are dropped.
    """
    if m.weights is None:
        return m
    after = np.arange(len(m.mean)) > np.flatnonzero(m.weights).max()
    rms = np.where(after, m.rms, np.hypot(m.rms, m.mean))
    return Moments(m.n, m.weights, np.where(after, m.mean, 0.0), rms)


def standardized(W: np.ndarray, names: Sequence[str], spec: MatrixSpec | None) -> np.ndarray:
    """``W``'s columns in the rank check's coordinates (:func:`rank_moments`), shape (n, k)."""
    return rank_moments(Moments.of(W, weights(names, spec))).rows(W)
