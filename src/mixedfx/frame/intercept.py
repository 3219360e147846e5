"""The intercept combination of a model matrix: weights ``v`` with ``W v = 1`` on every row.

A model matrix holds the constant when it has an intercept column, or the
indicator columns of a factor coded with all its levels (``0 + f`` or
``(0 + f | g)``: every row has exactly one of them). Then shifting any other
column by a constant is a reparameterisation, and the fit centres those
columns (:mod:`mixedfx.engine.standard`). The combination is read from the
design alone, so every path (in memory, each Dask partition, new rows) uses
the same one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..engine.standard import Moments


def weights(names: Sequence[str], spec: object | None) -> np.ndarray | None:
    """``v`` for the columns ``names`` of a matrix built by ``spec``, or None.

    Parameters
    ----------
    names : sequence of str
        The matrix's columns, lme4 style (``(Intercept)``).
    spec : formulaic ModelSpec or None
        What built the matrix (None for plain columns).

    Returns
    -------
    ndarray, shape (len(names),), or None
        ``e_j`` for an intercept column ``j``; else the indicator of the
        columns of a term that is one treatment-coded factor (or an
        interaction of such factors) with every level; None when neither.
    """
    names = list(names)
    v = np.zeros(len(names))
    if "(Intercept)" in names:
        v[names.index("(Intercept)")] = 1.0
        return v
    for part in getattr(spec, "structure", None) or ():
        if len(part.scoped_terms) == 1 and _full_indicators(part.scoped_terms[0], spec):
            if not set(part.columns) <= set(names):
                return None
            v[[names.index(c) for c in part.columns]] = 1.0
            return v
    return None


def _full_indicators(scoped: object, spec: object) -> bool:
    """Whether a formulaic scoped term is treatment-coded categorical factors, none reduced."""
    state = getattr(spec, "encoder_state", {}) or {}
    factors = getattr(scoped, "factors", ())
    for sf in factors:
        kind, info = state.get(sf.factor.expr, (None, {}))
        if getattr(kind, "value", kind) != "categorical" or sf.reduced:
            return False
        contrasts = getattr(info.get("contrasts"), "contrasts", None)
        if contrasts is not None and type(contrasts).__name__ != "TreatmentContrasts":
            return False
    return bool(factors)


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


def standardized(W: np.ndarray, names: Sequence[str], spec: object | None) -> np.ndarray:
    """``W``'s columns in the rank check's coordinates (:func:`rank_moments`), shape (n, k)."""
    return rank_moments(Moments.of(W, weights(names, spec))).rows(W)
