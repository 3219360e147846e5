"""The Schur-complement update ``A21 W A21'`` with a sparsity pattern found once.

In the blocked factorization the rest's block is updated by
``S = L21 L21' = Lr' A21 W A21' Lr`` with ``W = blockdiag(R_k R_k')`` over the
``l0`` levels of the first term. ``A21`` is fixed; only the small ``W_k``
change with theta. Entry ``(i, j)`` of ``A21 W A21'`` is::

    sum_k sum_{a,b} A21[i, (k,a)] W_k[a,b] A21[j, (k,b)]

so with a sparse ``P`` (one row per structurally non-zero (i, j), i >= j; one
column per pair a >= b and level k, level last) built once, every evaluation is one sparse mat-vec
``P @ vec(W)``: no sparse-sparse product, no re-discovery of the pattern.
The pattern also covers the non-zeros of ``A22`` (in crossed designs mostly
diagonal), so ``A22 - A21 W A21'`` is assembled by one scatter into zeros,
without a pass over the dense (m, m) A22. This is what makes crossed designs
such as InstEval fast.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas


class Positions:
    """Lower-triangle positions ``(rows, cols)`` of an (m, m) matrix, and scatters to them.

    Attributes
    ----------
    m : int
    rows, cols : ndarray of int, shape (nloc,)
        Positions with ``rows >= cols``, each once.
    """

    m: int
    rows: np.ndarray
    cols: np.ndarray

    @functools.cached_property
    def flat(self) -> np.ndarray:
        """``rows * m + cols``: the positions in the raveled (m, m) array."""
        return self.rows * self.m + self.cols

    @functools.cached_property
    def off_diagonal(self) -> np.ndarray:
        """True where ``rows != cols``, shape (nloc,)."""
        return self.rows != self.cols

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """A C-ordered (m, m) array with ``values`` at the positions and zeros elsewhere."""
        M = np.zeros((self.m, self.m))
        M.reshape(-1)[self.flat] = values
        return M

    def symmetric_weights(self, values: np.ndarray) -> np.ndarray:
        """Values of a symmetric matrix at the positions with off-diagonals doubled.

        ``sum_ij U_ij X_ij = sum_pos v_pos X_pos`` for symmetric U and X that
        vanish off the positions.
        """
        return np.where(self.off_diagonal, 2.0 * values, values)

    def assemble(self, W: np.ndarray, d: np.ndarray | None = None) -> np.ndarray:
        """The lower triangle of ``D (A22 - A21 W A21') D``, zeros above, shape (m, m).

        Parameters
        ----------
        W : ndarray, shape (q0, q0, l0)
            Per level, ``R_k R_k'``, level last.
        d : ndarray, shape (m,), optional
            Diagonal scaling D (identity when None).
        """
        values = self.values(W)
        if d is not None:
            values *= d[self.rows] * d[self.cols]
        return self.scatter(values)

    def values(self, W: np.ndarray) -> np.ndarray:
        """``A22 - A21 W A21'`` at the positions, shape (nloc,)."""
        raise NotImplementedError

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        """``df/dW`` (q0, q0, l0) from ``v = df/dvalues`` at the positions."""
        raise NotImplementedError


class SchurPattern(Positions):
    """Precomputed ``P`` for ``A21 W A21'`` (see module docstring).

    ``W_k`` is symmetric, so ``P`` has one column per unordered pair
    ``a >= b`` and level, in the order of :func:`triangle` and level last;
    a pair of a level's entries in one row with ``a != b`` counts twice.

    Attributes
    ----------
    m : int
        Rows of A21.
    rows, cols : ndarray of int, shape (nloc,)
        Positions (i >= j) of the structural non-zeros of the product.
    P : csc_matrix, shape (nloc, q0 (q0 + 1) / 2 * l0)
    base : ndarray, shape (nloc,)
        ``A22`` at those positions.
    q0, l0 : int
        Columns per level and levels of the first term.
    """

    def __init__(
        self, rows: np.ndarray, cols: np.ndarray, P: sp.csc_matrix, base: np.ndarray, shape: tuple
    ) -> None:
        self.m, self.q0, self.l0 = shape
        self.rows, self.cols, self.P, self.base = rows, cols, P, base

    @classmethod
    def build(cls, A21: sp.csr_matrix, A22: np.ndarray, l0: int, q0: int) -> SchurPattern:
        """Find the pattern of ``A22 - A21 W A21'`` for ``A21`` of shape (m, l0 * q0).

        Every pair of one level's entries is generated once, in level order
        (:func:`level_pairs`), so ``P`` is assembled column by column with
        no sort.
        """
        m = A21.shape[0]
        csc = sp.csc_matrix(A21)
        csc.sum_duplicates()
        col_of = np.repeat(np.arange(csc.shape[1]), np.diff(csc.indptr))
        level, within = col_of // q0, col_of % q0
        # entries by level, then row, then column within level (already so for q0 = 1)
        order = np.lexsort((within, csc.indices, level)) if q0 > 1 else slice(None)
        rows_e, vals_e = csc.indices[order].astype(np.int64), csc.data[order]
        a_e = within[order]
        counts = np.bincount(level[order], minlength=l0)
        lev, e1, e2 = level_pairs(counts)
        r1, r2 = rows_e[e1], rows_e[e2]  # r1 >= r2: a level's entries are sorted by row
        weight = vals_e[e1] * vals_e[e2]
        if q0 > 1:  # (a, b) and (b, a) in one row: one pair stands for both
            weight[(r1 == r2) & (e1 != e2)] *= 2.0
            hi, lo = np.maximum(a_e[e1], a_e[e2]), np.minimum(a_e[e1], a_e[e2])
            column = (hi * (hi + 1) // 2 + lo) * l0 + lev
        else:
            column = lev
        r22, c22 = np.nonzero(np.tril(A22))
        uniq, inverse = unique_positions(np.concatenate([r1 * m + r2, r22 * m + c22]), m)
        inverse = inverse[: len(r1)].astype(np.int32)
        npairs = q0 * (q0 + 1) // 2
        if q0 > 1:  # columns ordered by pair of (a, b), then level: a stable sort by pair
            pair_order = np.argsort(column // l0, kind="stable")
            inverse, weight, column = inverse[pair_order], weight[pair_order], column[pair_order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(column, minlength=npairs * l0))])
        P = sp.csc_matrix((weight, inverse, indptr), shape=(len(uniq), npairs * l0))
        rows, cols = uniq // m, uniq % m
        return cls(rows, cols, P, A22[rows, cols], (m, q0, l0))

    def values(self, W: np.ndarray) -> np.ndarray:
        """``A22 - A21 W A21'`` at the positions; ``W`` level last, (q0, q0, l0)."""
        r, c = triangle(self.q0)
        return self.base - self.P @ W[r, c].reshape(-1)

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        """``df/dW`` (q0, q0, l0), symmetric, from ``v = df/dvalues``: ``-P' v`` per pair."""
        q0 = self.q0
        r, c = triangle(q0)
        per_pair = (self.P.T @ -v).reshape(len(r), self.l0)
        Wb = np.empty((q0, q0, self.l0))
        Wb[r, c] = np.where((r == c)[:, None], per_pair, 0.5 * per_pair)
        Wb[c, r] = Wb[r, c]
        return Wb


def triangle(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (a >= b) of a q x q lower triangle, row by row: (0,0), (1,0), (1,1), ..."""
    a = np.repeat(np.arange(q), np.arange(1, q + 1))
    return a, np.arange(len(a)) - a * (a + 1) // 2


def level_pairs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``e1 >= e2`` of entries within each level, level by level.

    Level ``k`` owns entries ``start_k .. start_k + counts[k] - 1``; its pairs
    are its lower triangle in :func:`triangle`'s order. Levels with equal
    counts are done together, each group's pairs written to their levels'
    places.

    Returns
    -------
    level, e1, e2 : ndarray of int, shape (sum counts (counts + 1) / 2,)
    """
    counts = counts.astype(np.int64)
    per_level = counts * (counts + 1) // 2
    offsets = np.concatenate([[0], np.cumsum(per_level)])
    starts = np.concatenate([[0], np.cumsum(counts)])
    level = np.repeat(np.arange(len(counts)), per_level)
    e1, e2 = np.empty_like(level), np.empty_like(level)
    for c in np.unique(counts[counts > 0]):
        levels = np.flatnonzero(counts == c)
        p, q = triangle(int(c))
        dest = (offsets[levels][:, None] + np.arange(len(p))).ravel()
        first = starts[levels][:, None]
        e1[dest] = (first + p).ravel()
        e2[dest] = (first + q).ravel()
    return level, e1, e2


def unique_positions(loc: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values of ``loc`` (in ``[0, m * m)``) and each one's index among them."""
    if m * m <= 50_000_000:  # without sorting: mark and rank
        mark = np.zeros(m * m, dtype=bool)
        mark[loc] = True
        uniq = np.flatnonzero(mark)
        rank = np.cumsum(mark, dtype=np.int32 if m * m < 2**31 else np.int64) - 1
        return uniq, rank[loc]
    return np.unique(loc, return_inverse=True)


class DenseSchur:
    """``A22 - A21 W A21'`` with A21 held dense: for A21 whose levels share most rows.

    When every level of the first term meets many rows of A21 (e.g. users x
    items at millions of ratings), the pattern of :class:`SchurPattern`
    grows with the square of the rows per level while the dense A21 stays
    (m, l0 * q0); the update is then one BLAS product per evaluation.

    Parameters
    ----------
    A21 : ndarray, shape (m, l0 * q0)
    A22 : ndarray, shape (m, m)
    q0 : int
    """

    def __init__(self, A21: np.ndarray, A22: np.ndarray, q0: int) -> None:
        self.A = np.asarray(A21, dtype=float)
        self.A22 = A22
        self.q0 = q0

    def assemble(self, W: np.ndarray, d: np.ndarray | None = None) -> np.ndarray:
        """As :meth:`SchurPattern.assemble`: the lower triangle of ``D (A22 - A21 W A21') D``.

        ``W`` is level last, shape (q0, q0, l0).
        """
        q0 = self.q0
        if q0 == 1:  # W_k = R_k^2 >= 0: a symmetric rank-k update
            B = self.A * np.sqrt(W.reshape(-1))
            U = blas.dsyrk(1.0, B, lower=1)
        else:
            U = gram_update(split_columns(self.A, q0), W)
        M = np.tril(self.A22) - np.tril(U)
        if d is not None:
            M *= np.outer(d, d)
        return M


def split_columns(A21: np.ndarray, q0: int) -> list[np.ndarray]:
    """A dense A21 (m, l0 * q0) by column within level: q0 contiguous arrays (m, l0)."""
    A3 = np.asarray(A21).reshape(A21.shape[0], -1, q0)
    return [np.ascontiguousarray(A3[:, :, a]) for a in range(q0)]


def gram_update(
    cols: list[np.ndarray], W: np.ndarray | Sequence[Sequence[np.ndarray]]
) -> np.ndarray:
    """``A21 W A21'`` for a dense A21, shape (m, m), as ``sum_b (sum_a A_a W_ab) A_b'``.

    ``cols[a]`` (m, l0) is column ``a`` of every level's q0 columns (see
    :func:`split_columns`) and ``W`` the per-level ``W_k = R_k R_k'``, level
    last, shape (q0, q0, l0), or its entries ``W[a][b]`` (l0,) as nested sequences.
    """
    q0, m = len(cols), cols[0].shape[0]
    products: list[list[float]] = [[0.0] * (i + 1) for i in range(m)]
    U = np.zeros((m, m))
    for b in range(q0):
        V = cols[0] * W[0][b]  # sum_a A_a W_ab, (m, l0)
        for a in range(1, q0):
            V += cols[a] * W[a][b]
        if m > DOTS_MAX:
            U += V @ cols[b].T
            continue
        for i in range(m):  # U is symmetric: the entries on and below the diagonal
            for j in range(i + 1):
                products[i][j] += float(V[i] @ cols[b][j])
    if m <= DOTS_MAX:
        for i in range(m):
            for j in range(i + 1):
                U[i, j] = U[j, i] = products[i][j]
    return U


DOTS_MAX = 3  # up to this many rows, BLAS's gemm of (m, l0) by (l0, m) loses to dot products


def pattern_entries(A21: sp.csr_matrix, l0: int, q0: int) -> int:
    """Number of entries :meth:`SchurPattern.build` would store (an upper bound).

    Counts the entries of each level's columns from the column indices
    alone (no conversion of A21).
    """
    indices = sp.csr_matrix(A21).indices
    per_level = np.bincount(indices // q0 if q0 > 1 else indices, minlength=l0).astype(np.int64)
    return int((per_level * (per_level + 1) // 2).sum())
