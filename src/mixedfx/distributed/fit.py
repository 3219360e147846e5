"""Pass 2 and the fit: blocks per partition, summed in a tree, then the in-memory optimizer.

Each partition's rows become the blocks of ``A = [Z X y]'[Z X y]``
(:func:`mixedfx.engine.blocks.form` with the learned design, every column of X)
and the R factor of a QR decomposition of its X. Adjacent partials are
added (:func:`mixedfx.engine.blocks.add`, sparse A21 stays sparse) and their R
factors stacked and re-factored (TSQR), so the client receives one set of
blocks and one p x p R. ``R'R = X'X`` with QR's accuracy, so the rank check
of :func:`mixedfx.frame.design.independent_columns` on R drops the same columns
as on X; the blocks then keep only those columns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd

from ..engine import blocks as blocks_mod
from ..errors import DataError
from ..fit import check_counts, fit_model
from ..frame import design as design_mod
from ..model import LinearMixedModel
from .learn import BadCount, learn, memory_dtypes
from .run import fold, per_partition


@dataclass
class Partial:
    """Pass 2's result for a run of adjacent partitions.

    Attributes
    ----------
    blocks : Blocks or None
        Their cross-product blocks (None when a row is bad or there are no rows).
    R : ndarray, shape (<= p, p), or None
        Upper-triangular factor with ``R'R = X'X``.
    x_bad : BadCount
        Rows whose fixed-effects row is not finite.
    m_bad : tuple of bool
        Per design term: a non-finite value in its model matrix.
    """

    blocks: blocks_mod.Blocks | None
    R: np.ndarray | None
    x_bad: BadCount
    m_bad: tuple[bool, ...]


def _qr_r(X: np.ndarray) -> np.ndarray:
    """The R factor of a QR decomposition, shape (min(n, p), p)."""
    return np.asarray(np.linalg.qr(X, mode="r"))


def partial(part: pd.DataFrame, design: design_mod.DesignSpec) -> Partial:
    """The blocks and QR factor of one partition's rows."""
    nterms = len(design.terms)
    part = memory_dtypes(part)
    if len(part) == 0:
        return Partial(None, None, BadCount(0), (False,) * nterms)
    X = design.X(part)
    y = design.response_values(part) - design.offset(part)  # checked in pass 1
    codes = tuple(t.codes(part) for t in design.terms)
    Ms = tuple(t.model_matrix(part) for t in design.terms)
    x_bad = BadCount.of(~np.isfinite(X).all(axis=1))
    m_bad = tuple(not bool(np.isfinite(M).all()) for M in Ms)
    if x_bad.bad or any(m_bad):
        return Partial(None, None, x_bad, m_bad)
    nlevels = [t.nlevels for t in design.terms]
    bl = blocks_mod.form(X, y, codes, Ms, nlevels)
    return Partial(bl, _qr_r(X), x_bad, m_bad)


def combine(a: Partial, b: Partial) -> Partial:
    """The partial of ``a``'s rows followed by ``b``'s."""
    x_bad = a.x_bad.then(b.x_bad)
    m_bad = tuple(i or j for i, j in zip(a.m_bad, b.m_bad, strict=True))
    if x_bad.bad or any(m_bad):
        return Partial(None, None, x_bad, m_bad)
    if a.blocks is None or b.blocks is None:
        keep = b if a.blocks is None else a
        return Partial(keep.blocks, keep.R, x_bad, m_bad)
    assert a.R is not None and b.R is not None
    R = _qr_r(np.vstack([a.R, b.R]))
    return Partial(blocks_mod.add(a.blocks, b.blocks), R, x_bad, m_bad)


def _check(p: Partial, design: design_mod.DesignSpec) -> None:
    """The in-memory path's errors on non-finite model matrices, in its order."""
    if p.x_bad.bad:
        raise DataError(
            f"the fixed-effects matrix has NaN or infinite values in {p.x_bad.bad} "
            f"row(s) (first at row {p.x_bad.first}); check the predictors"
        )
    for term in design.parsed.random:  # formula order, as the in-memory path
        k = next(k for k, t in enumerate(design.terms) if t.term == term)
        if p.m_bad[k]:
            raise DataError(f"random term {term} has NaN or infinite values in its columns")


def _drop_dependent(
    design: design_mod.DesignSpec, names: list[str], R: np.ndarray
) -> tuple[design_mod.DesignSpec, np.ndarray]:
    """The design without fixed-effects columns that depend on earlier ones."""
    kept, dropped = design_mod.drop_dependent(R, names, stacklevel=6)
    fixed_names = tuple(names[j] for j in kept)
    return dataclasses.replace(design, kept=kept, fixed_names=fixed_names, dropped=dropped), kept


def lmm(
    formula: str, ddf: Any, reml: bool = True, progress: bool = False, offset: str | None = None
) -> LinearMixedModel:
    """Fit a linear mixed model to a Dask frame (see :func:`mixedfx.lmm`).

    Two passes over the partitions (the design, then the blocks); the model
    holds no training rows: ``fitted()`` and ``residuals()`` raise, and
    ``m.predict(ddf)`` gives the fitted values.
    """
    learned = learn(formula, ddf, progress, offset)
    design = learned.design
    check_counts(design, learned.n, learned.y_range)
    design_d = dask.delayed(design, traverse=False)
    parts = per_partition(ddf, partial, design_d)
    total: Partial = fold(parts, combine, progress)
    _check(total, design)
    assert total.blocks is not None and total.R is not None
    design, kept = _drop_dependent(design, learned.names, total.R)
    blocks = blocks_mod.select_fixed(total.blocks, kept)
    return fit_model(design, None, blocks, reml, None, stacklevel=6)
