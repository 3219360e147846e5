"""Pass 2 and the fit: blocks per partition, summed in a tree, then the in-memory optimizer.

Each partition's rows are standardized with their own moments and become the
blocks of ``A = [Z X y]'[Z X y]`` in those coordinates
(:func:`mixedfx.fit.standard_blocks`, with the learned design and every
column of X), with the R factor of a QR decomposition of its standardized X.
Adjacent partials are moved to the coordinates of their merged moments
(:mod:`mixedfx.engine.standard`: exact pairwise updates, no sums of squares
that cancel) and added (:func:`mixedfx.engine.blocks.add`, sparse A21 stays
sparse), their R factors moved alike, stacked and re-factored (TSQR). The
client receives one set of blocks and one p x p R in the coordinates of the
whole frame's moments, the ones the in-memory fit uses. ``R'R = X_s'X_s``
with QR's accuracy; moved to the rank check's coordinates
(:func:`mixedfx.frame.intercept.rank_moments`), the check of
:func:`mixedfx.frame.design.independent_columns` on R drops the same columns
as in memory; the blocks then keep only those columns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd

from ..engine import blocks as blocks_mod
from ..engine.standard import Standardization
from ..errors import DataError
from ..fit import check_counts, check_range, fit_model, standard_blocks
from ..frame import design as design_mod
from ..frame import intercept
from ..model import LinearMixedModel
from .learn import BadCount, learn, memory_dtypes
from .run import fold, per_partition


@dataclass
class Partial:
    """Pass 2's result for a run of adjacent partitions.

    Attributes
    ----------
    coords : Standardization or None
        The coordinates of their blocks and R: their own moments.
    blocks : Blocks or None
        Their cross-product blocks (None when a row is bad or there are no rows).
    R : ndarray, shape (<= p, p), or None
        Upper-triangular factor with ``R'R = X_s'X_s``.
    x_bad : BadCount
        Rows whose fixed-effects row is not finite.
    m_bad : tuple of bool
        Per design term: a non-finite value in its model matrix.
    """

    coords: Standardization | None
    blocks: blocks_mod.Blocks | None
    R: np.ndarray | None
    x_bad: BadCount
    m_bad: tuple[bool, ...]


def _qr_r(X: np.ndarray) -> np.ndarray:
    """The R factor of a QR decomposition, shape (min(n, p), p)."""
    return np.asarray(np.linalg.qr(X, mode="r"))


def partial(part: pd.DataFrame, design: design_mod.DesignSpec) -> Partial:
    """The blocks and QR factor of one partition's rows, in its own coordinates."""
    nterms = len(design.terms)
    part = memory_dtypes(part)
    if len(part) == 0:
        return Partial(None, None, None, BadCount(0), (False,) * nterms)
    X = design.X(part)
    y = design.response_values(part) - design.offset(part)  # checked in pass 1
    codes = tuple(t.codes(part) for t in design.terms)
    Ms = tuple(t.model_matrix(part) for t in design.terms)
    x_bad = BadCount.of(~np.isfinite(X).all(axis=1))
    m_bad = tuple(not bool(np.isfinite(M).all()) for M in Ms)
    if x_bad.bad or any(m_bad):
        return Partial(None, None, None, x_bad, m_bad)
    coords, bl = standard_blocks(design, X, y, codes, Ms)
    return Partial(coords, bl, _qr_r(coords.x_rows(X)), x_bad, m_bad)


def _moved(p: Partial, coords: Standardization) -> tuple[blocks_mod.Blocks, np.ndarray]:
    """A partial's blocks and R in the coordinates ``coords``."""
    assert p.coords is not None and p.blocks is not None and p.R is not None
    maps, xy = p.coords.to(coords)
    return blocks_mod.transform(p.blocks, maps, xy), p.R @ xy[:-1, :-1]


def combine(a: Partial, b: Partial) -> Partial:
    """The partial of ``a``'s rows followed by ``b``'s, in their merged coordinates."""
    x_bad = a.x_bad.then(b.x_bad)
    m_bad = tuple(i or j for i, j in zip(a.m_bad, b.m_bad, strict=True))
    if x_bad.bad or any(m_bad):
        return Partial(None, None, None, x_bad, m_bad)
    if a.coords is None or b.coords is None:
        keep = b if a.coords is None else a
        return Partial(keep.coords, keep.blocks, keep.R, x_bad, m_bad)
    coords = a.coords.merge(b.coords)
    (ba, Ra), (bb, Rb) = _moved(a, coords), _moved(b, coords)
    R = _qr_r(np.vstack([Ra, Rb]))
    return Partial(coords, blocks_mod.add(ba, bb), R, x_bad, m_bad)


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
    assert total.coords is not None and total.blocks is not None and total.R is not None
    to_rank = total.coords.xy.to(intercept.rank_moments(total.coords.xy))[:-1, :-1]
    design, kept = _drop_dependent(design, learned.names, total.R @ to_rank)
    coords, blocks = total.coords.for_fixed(kept), total.blocks
    if coords is not total.coords:  # a column of the intercept combination was dropped
        blocks = blocks_mod.transform(blocks, *total.coords.to(coords))
    blocks = blocks_mod.select_fixed(blocks, kept)
    coords = coords.take_fixed(kept)
    check_range(design, coords)
    return fit_model(design, None, coords, blocks, reml, None, stacklevel=6)
