"""The packed lower triangle of a Gram matrix ``D D'`` of dense columns, integer rows in float32.

The grouped Schur update (:mod:`mixedfx.engine.grouped`) forms ``B_c = A_c
A_c'`` for each group of levels from the group's columns of A21, made dense
(``m^2 n_c / 2`` multiply-adds; ``m^2 l0 / 2`` over all groups, most of its
set-up). The leading rows of A21 of crossed intercepts are counts of level
pairs: integers, unscaled (a rest term's intercept is not standardized).
Where every partial sum of their products is an integer below ``2^24``
(:func:`exact_rows`), single precision sums them exactly, in any order,
and ``ssyrk`` does so in about half of ``dsyrk``'s time: the same ``B_c``
to the bit. The other rows (the fixed effects' and the response's) stay in
double precision. The triangle is written straight to its packed place,
without an (m, m) double-precision copy.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from .linalg import pack_lower

SINGLE_EXACT = 2.0**24  # integers below this, and every sum of them, are exact in float32
SINGLE_MIN = 256  # leading integer rows below which single precision is not used


def exact_rows(A: sp.csc_matrix) -> int:
    """The leading rows of A whose Gram entries, over any columns, float32 computes exactly.

    Those rows hold integers, and every row's sum of squares is below
    ``2^24``: by Cauchy-Schwarz, every partial sum of products of two such
    rows, ``|sum_k A_ik A_jk| <= sqrt(sum_k A_ik^2 sum_k A_jk^2)``, is an
    integer below ``2^24`` too. 0 when fewer than :data:`SINGLE_MIN` rows
    qualify.
    """
    m = A.shape[0]
    data, rows = A.data, A.indices
    bad = rows[~(np.isfinite(data) & (data == np.rint(data)))]
    k = int(bad.min()) if len(bad) else m
    if k < SINGLE_MIN:
        return 0
    with np.errstate(over="ignore", invalid="ignore"):  # rows from k on are not read
        squares = np.bincount(rows, weights=np.square(data), minlength=m)[:k]
    k = int(np.searchsorted(np.maximum.accumulate(squares) >= SINGLE_EXACT, True))
    return k if k >= SINGLE_MIN else 0


class DenseGram:
    """``D D'`` packed, for dense D (m, n) whose leading ``exact`` rows qualify (module docstring).

    Parameters
    ----------
    m : int
    exact : int
        :func:`exact_rows` of the matrix whose columns D holds (0: all in double).
    """

    def __init__(self, m: int, exact: int) -> None:
        self.m, self.exact = m, exact
        k = exact
        self.full = np.zeros((m, m), order="F") if k == 0 else np.zeros((0, 0))
        self.single = np.zeros((k, k), dtype=np.float32, order="F")
        # start of each column's triangle in the packed order
        self.start = np.concatenate([[0], np.cumsum(np.arange(m, 0, -1))]).astype(np.int64)

    def packed(self, D: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The lower triangle of ``D D'`` in LAPACK's packed order, written to ``out``."""
        m, k = self.m, self.exact
        if k == 0:
            blas.dsyrk(1.0, D, lower=1, c=self.full, overwrite_c=1)
            return pack_lower(self.full, out=out)
        top = np.asfortranarray(D[:k], dtype=np.float32)
        blas.ssyrk(1.0, top, lower=1, c=self.single, overwrite_c=1)
        bottom = np.ascontiguousarray(D[k:])
        cross = bottom @ D[:k].T  # (m - k, k)
        tail = bottom @ bottom.T  # (m - k, m - k)
        start, single = self.start, self.single
        for j in range(k):
            s = start[j]
            out[s : s + k - j] = single[j:, j]
            out[s + k - j : s + m - j] = cross[:, j]
        for j in range(k, m):
            out[start[j] : start[j] + m - j] = tail[j - k :, j - k]
        return out
