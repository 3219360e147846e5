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
from ..fit import check_counts, fit_model
from ..frame import design as design_mod
from ..frame import rows as rows_mod
from ..model import LinearMixedModel
from .learn import learn, memory_dtypes
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
    tally : Tally
        Their missing values, as the in-memory check reads them.
    """

    blocks: blocks_mod.Blocks | None
    R: np.ndarray | None
    tally: rows_mod.Tally


def _qr_r(X: np.ndarray) -> np.ndarray:
    """The R factor of a QR decomposition, shape (min(n, p), p)."""
    return np.asarray(np.linalg.qr(X, mode="r"))


def partial(part: pd.DataFrame, design: design_mod.DesignSpec) -> Partial:
    """The blocks and QR factor of one partition's rows (:func:`mixedfx.frame.rows.build`)."""
    r = rows_mod.build(design, memory_dtypes(part), response=True)
    tally = rows_mod.Tally.of(r)
    if r.n == 0 or not tally.clean:
        return Partial(None, None, tally)
    nlevels = [t.nlevels for t in design.terms]
    bl = blocks_mod.form(r.X, r.working, r.codes, r.M, nlevels)
    return Partial(bl, _qr_r(r.X), tally)


def combine(a: Partial, b: Partial) -> Partial:
    """The partial of ``a``'s rows followed by ``b``'s."""
    tally = a.tally.then(b.tally)
    if not tally.clean:
        return Partial(None, None, tally)
    if a.blocks is None or b.blocks is None:
        keep = b if a.blocks is None else a
        return Partial(keep.blocks, keep.R, tally)
    assert a.R is not None and b.R is not None
    R = _qr_r(np.vstack([a.R, b.R]))
    return Partial(blocks_mod.add(a.blocks, b.blocks), R, tally)


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
    design_mod.check_training(total.tally, design)  # the in-memory errors, in its order
    assert total.blocks is not None and total.R is not None
    design, kept = _drop_dependent(design, learned.names, total.R)
    blocks = blocks_mod.select_fixed(total.blocks, kept)
    return fit_model(design, None, blocks, reml, None, stacklevel=6)
