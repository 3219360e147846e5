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
from ..engine.linalg import qr_r
from ..engine.standard import Standardization
from ..fit import check_counts, check_range, fit_model, standard_blocks
from ..frame import design as design_mod
from ..frame import intercept
from ..frame import rows as rows_mod
from ..model import LinearMixedModel
from .learn import learn, memory_dtypes
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
    tally : Tally
        Their missing values, as the in-memory check reads them.
    """

    coords: Standardization | None
    blocks: blocks_mod.Blocks | None
    R: np.ndarray | None
    tally: rows_mod.Tally


def partial(part: pd.DataFrame, design: design_mod.DesignSpec) -> Partial:
    """The blocks and QR factor of one partition's rows, in its own coordinates.

    The rows are :func:`mixedfx.frame.rows.build`'s, as in memory.
    """
    r = rows_mod.build(design, memory_dtypes(part), response=True)
    tally = rows_mod.Tally.of(r)
    if r.n == 0 or not tally.clean:
        return Partial(None, None, None, tally)
    coords, bl = standard_blocks(design, r.X, r.working, r.codes, r.M)
    return Partial(coords, bl, qr_r(coords.x_rows(r.X)), tally)


def _moved(p: Partial, coords: Standardization) -> tuple[blocks_mod.Blocks, np.ndarray]:
    """A partial's blocks and R in the coordinates ``coords``."""
    assert p.coords is not None and p.blocks is not None and p.R is not None
    maps, xy = p.coords.to(coords)
    return blocks_mod.transform(p.blocks, maps, xy), p.R @ xy[:-1, :-1]


def combine(a: Partial, b: Partial) -> Partial:
    """The partial of ``a``'s rows followed by ``b``'s, in their merged coordinates."""
    tally = a.tally.then(b.tally)
    if not tally.clean:
        return Partial(None, None, None, tally)
    if a.coords is None or b.coords is None:
        keep = b if a.coords is None else a
        return Partial(keep.coords, keep.blocks, keep.R, tally)
    coords = a.coords.merge(b.coords)
    (ba, Ra), (bb, Rb) = _moved(a, coords), _moved(b, coords)
    R = qr_r(np.vstack([Ra, Rb]))
    return Partial(coords, blocks_mod.add(ba, bb), R, tally)


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
