"""The Schur-complement update ``A21 W A21'`` with a sparsity pattern found once.

In the blocked factorization the rest's block is updated by
``S = L21 L21' = Lr' A21 W A21' Lr`` with ``W = blockdiag(R_k R_k')`` over the
``l0`` levels of the first term. ``A21`` is fixed; only the small ``W_k``
change with theta. Entry ``(i, j)`` of ``A21 W A21'`` is::

    sum_k sum_{a,b} A21[i, (k,a)] W_k[a,b] A21[j, (k,b)]

so with a sparse ``P`` (one row per structurally non-zero (i, j), i >= j; one
column per (a, b, k), level last) built once, every evaluation is one sparse mat-vec
``P @ vec(W)``: no sparse-sparse product, no re-discovery of the pattern.
The pattern also covers the non-zeros of ``A22`` (in crossed designs mostly
diagonal), so ``A22 - A21 W A21'`` is assembled by one scatter into zeros,
without a pass over the dense (m, m) A22. This is what makes crossed designs
such as InstEval fast.
"""

from __future__ import annotations

import functools

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

    Attributes
    ----------
    m : int
        Rows of A21.
    rows, cols : ndarray of int, shape (nloc,)
        Positions (i >= j) of the structural non-zeros of the product.
    P : csr_matrix, shape (nloc, q0 * q0 * l0)
    base : ndarray, shape (nloc,)
        ``A22`` at those positions.
    q0, l0 : int
        Columns per level and levels of the first term.
    """

    def __init__(
        self, rows: np.ndarray, cols: np.ndarray, P: sp.csr_matrix, base: np.ndarray, shape: tuple
    ) -> None:
        self.m, self.q0, self.l0 = shape
        self.rows, self.cols, self.P, self.base = rows, cols, P, base

    @classmethod
    def build(cls, A21: sp.csr_matrix, A22: np.ndarray, l0: int, q0: int) -> SchurPattern:
        """Find the pattern of ``A22 - A21 W A21'`` for ``A21`` of shape (m, l0 * q0)."""
        m = A21.shape[0]
        csc = sp.csc_matrix(A21)
        csc.sum_duplicates()
        col_of = np.repeat(np.arange(csc.shape[1]), np.diff(csc.indptr))
        level, within = col_of // q0, col_of % q0
        # entries grouped by level: all (a, b) columns of one level share their rows
        order = np.lexsort((csc.indices, level))
        rows_e, vals_e = csc.indices[order], csc.data[order]
        lev_e, a_e = level[order], within[order]
        counts = np.bincount(lev_e, minlength=l0)
        starts = np.concatenate([[0], np.cumsum(counts)])
        locs, weights, wcols = [], [], []
        for c in np.unique(counts[counts > 0]):
            levels = np.flatnonzero(counts == c)
            idx = starts[levels][:, None] + np.arange(c)[None, :]  # (nlev, c) entries
            e1 = np.repeat(idx, c, axis=1)  # every ordered pair of a level's entries
            e2 = np.tile(idx, (1, c))
            use = rows_e[e1] >= rows_e[e2]  # lower triangle only
            locs.append((rows_e[e1] * m + rows_e[e2])[use])
            weights.append((vals_e[e1] * vals_e[e2])[use])
            lev = np.broadcast_to(levels[:, None], e1.shape)
            wcols.append(((a_e[e1] * q0 + a_e[e2]) * l0 + lev)[use])
        r22, c22 = np.nonzero(np.tril(A22))
        loc = np.concatenate([*locs, r22 * m + c22])
        if m * m <= 50_000_000:  # unique positions without sorting: mark and rank
            mark = np.zeros(m * m, dtype=bool)
            mark[loc] = True
            uniq = np.flatnonzero(mark)
            rank = np.cumsum(mark) - 1
            inverse = rank[loc]
        else:
            uniq, inverse = np.unique(loc, return_inverse=True)
        nw = len(loc) - len(r22)
        P = sp.csr_matrix(
            (np.concatenate(weights), (inverse[:nw], np.concatenate(wcols))),
            shape=(len(uniq), l0 * q0 * q0),
        )  # no duplicates: a pair of entries of one level meets one (row, column) only
        rows, cols = uniq // m, uniq % m
        return cls(rows, cols, P, A22[rows, cols], (m, q0, l0))

    def values(self, W: np.ndarray) -> np.ndarray:
        """``A22 - A21 W A21'`` at the positions; ``W`` level last, (q0, q0, l0)."""
        return self.base - self.P @ W.reshape(-1)

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        """``-P' v`` as (q0, q0, l0), symmetrised over the first two axes (W is symmetric)."""
        Wb = (self.P.T @ -v).reshape(self.q0, self.q0, self.l0)
        return 0.5 * (Wb + np.swapaxes(Wb, 0, 1)) if self.q0 > 1 else Wb


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


class GroupedSchur(Positions):
    """``A22 - A21 W A21'`` for q0 = 1 when A11 takes few distinct values.

    With one random effect per level of the first term, ``W_k`` depends on
    theta and on ``A11_k`` only (``W_k = t^2 / (t^2 A11_k + 1)``); for a
    random intercept ``A11_k`` is the level's row count, which takes few
    distinct values however many levels there are (users with 180 to 220
    ratings each). Grouping the levels by that value::

        A21 W A21' = sum_c w_c B_c,   B_c = sum_{k: A11_k = a_c} a_k a_k'

    with the ``B_c`` (lower triangles, packed) formed once: each evaluation
    is one matrix-vector product of size ``D * m (m + 1) / 2``, whatever the
    number of rows, where the pattern of :class:`SchurPattern` grows with the
    square of the rows per level. The positions are the whole lower triangle.

    Parameters
    ----------
    A21 : csr_matrix, shape (m, l0)
    A22 : ndarray, shape (m, m)
    a11 : ndarray, shape (l0,)
    """

    def __init__(self, A21: sp.csr_matrix, A22: np.ndarray, a11: np.ndarray) -> None:
        m = A21.shape[0]
        values, group = np.unique(a11, return_inverse=True)
        self.m, self.l0 = m, len(a11)
        self.first = np.array([np.flatnonzero(group == c)[0] for c in range(len(values))])
        self.rows, self.cols = np.tril_indices(m)
        self.base = A22[self.rows, self.cols]
        csc = sp.csc_matrix(A21)
        self.B = np.empty((len(values), len(self.rows)))
        for c in range(len(values)):
            Ac = csc[:, np.flatnonzero(group == c)]
            if Ac.nnz > 0.05 * Ac.shape[0] * Ac.shape[1]:  # dense enough for BLAS
                U = blas.dsyrk(1.0, Ac.toarray(), lower=1)
            else:
                U = (Ac @ Ac.T).toarray()
            self.B[c] = U[self.rows, self.cols]

    @staticmethod
    def entries(a11: np.ndarray, m: int) -> int:
        """Entries of the packed ``B_c``: ``D * m (m + 1) / 2``."""
        return len(np.unique(a11)) * m * (m + 1) // 2

    def values(self, W: np.ndarray) -> np.ndarray:
        """``A22 - A21 W A21'`` at the positions; ``W`` has shape (1, 1, l0)."""
        return self.base - W.reshape(-1)[self.first] @ self.B

    def adjoint(self, v: np.ndarray) -> np.ndarray:
        """``df/dW`` (1, 1, l0): each group's total on its first level, 0 elsewhere.

        The chain to ``T0`` sums over levels whose ``W_k`` are equal, so the
        total is all it needs.
        """
        Wb = np.zeros((1, 1, self.l0))
        Wb[0, 0, self.first] = self.B @ -v
        return Wb


def split_columns(A21: np.ndarray, q0: int) -> list[np.ndarray]:
    """A dense A21 (m, l0 * q0) by column within level: q0 contiguous arrays (m, l0)."""
    A3 = np.asarray(A21).reshape(A21.shape[0], -1, q0)
    return [np.ascontiguousarray(A3[:, :, a]) for a in range(q0)]


def gram_update(cols: list[np.ndarray], W: np.ndarray) -> np.ndarray:
    """``A21 W A21'`` for a dense A21, shape (m, m), as ``sum_b (sum_a A_a W_ab) A_b'``.

    ``cols[a]`` (m, l0) is column ``a`` of every level's q0 columns (see
    :func:`split_columns`) and ``W`` the per-level ``W_k = R_k R_k'``, level
    last, shape (q0, q0, l0).
    """
    q0, m = len(cols), cols[0].shape[0]
    U = np.zeros((m, m))
    for b in range(q0):
        V = cols[0] * W[0, b]
        for a in range(1, q0):
            V += cols[a] * W[a, b]
        U += V @ cols[b].T
    return U


def pattern_entries(A21: sp.csr_matrix, l0: int, q0: int) -> int:
    """Number of entries :meth:`SchurPattern.build` would store (an upper bound)."""
    csc = sp.csc_matrix(A21)
    per_level = np.bincount(
        np.repeat(np.arange(csc.shape[1]), np.diff(csc.indptr)) // q0, minlength=l0
    )
    return int((per_level * (per_level + 1) // 2).sum())
