"""The Schur update ``A22 - A21 W A21'`` for levels grouped by their A11 (q0 = 1).

With one random effect per level of the first term, ``W_k = t^2 / (t^2 a_k
+ 1)`` depends on theta only through ``t = T0`` and on the level only
through ``a_k = A11_k``. For a random intercept ``a_k`` is the level's row
count, which takes few distinct values ``a_c`` however many levels there
are (20,000 users: 57 distinct counts at 1M ratings, 204 at 16M). Grouping
the levels by that value::

    A21 W A21' = sum_c w_c B_c,    B_c = sum_{k: a_k = a_c} a_k a_k',    w_c = t^2 / (t^2 a_c + 1)

The ``D`` matrices ``B_c`` (m x m, symmetric) are formed once and held as
their lower triangles in LAPACK's packed order
(:func:`~mixedfx.engine.linalg.pack_lower`), a (D, m (m + 1) / 2) array. An
evaluation is one pass over it, a product with the few coefficients it
needs (``w_c``; for the gradient also ``dw_c/dt = 2 t / (t^2 a_c + 1)^2``),
whatever the number of rows; everything after that is dense (m, m)
algebra on the unpacked result (:mod:`mixedfx.engine.gradient`).

Each ``B_c`` is formed from its group's columns of A21 by a sparse product,
which costs the pairs of entries within each of the group's columns
(``sum_k n_k (n_k + 1) / 2`` for ``n_k`` entries in column ``k``), or by one
BLAS ``dsyrk`` on the dense columns (``m^2 n_c / 2`` multiply-adds at
BLAS-3 speed), whichever is cheaper: sparse for a few ratings per user and
item, ``dsyrk`` once most users meet a good share of the items.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from .linalg import pack_lower, packed_index, solve_lower, unpack_lower
from .schur import triangle

PAIR_COST = 280.0  # a pair of a column's entries added, in dsyrk multiply-adds
GATHER_COST = 300.0  # an entry of S^-1 gathered, in dtrsm multiply-adds
CHUNK = 4_000_000  # entries of the dense blocks formed at a time
SLICE = 8192  # positions of B combined at a time (D x SLICE doubles stay in cache)


class GroupedSchur:
    """``A22 - A21 W A21'`` from the packed Gram matrices of groups of levels (module docstring).

    Parameters
    ----------
    A21 : sparse matrix, shape (m, l0)
    A22 : ndarray, shape (m, m)
    a11 : ndarray, shape (l0,)
        ``A11_k`` of every level (q0 = 1).

    Attributes
    ----------
    m, l0 : int
    a : ndarray, shape (D,)
        The distinct values of ``a11``, increasing.
    first : ndarray of int, shape (D,)
        The first level of each group.
    base : ndarray, shape (m (m + 1) / 2,)
        A22, packed.
    B : ndarray, shape (D, m (m + 1) / 2)
        ``B_c``, packed, one row per group.
    """

    def __init__(self, A21: sp.spmatrix, A22: np.ndarray, a11: np.ndarray) -> None:
        self.m, self.l0 = A21.shape[0], len(a11)
        self.a, self.first, group = np.unique(a11, return_index=True, return_inverse=True)
        self.base = pack_lower(np.asfortranarray(A22))
        self.B = group_grams(sp.csc_matrix(A21), group.reshape(-1), len(self.a))

    @staticmethod
    def entries(a11: np.ndarray, m: int) -> int:
        """Entries of the packed ``B_c``: ``D m (m + 1) / 2``."""
        return len(np.unique(a11)) * m * (m + 1) // 2

    def coefficients(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Per group ``w_c = t^2 / (t^2 a_c + 1)`` and ``dw_c/dt = 2 t / (t^2 a_c + 1)^2``, (D,).

        ``w_c`` is computed as :func:`mixedfx.engine.cholesky.first_gram` computes ``W_k``.
        """
        s = self.a * (t * t) + 1.0
        return (t * t) / s, (2.0 * t) / (s * s)

    def combine(self, coef: np.ndarray) -> np.ndarray:
        """``sum_c coef[c, j] B_c`` packed, for each column j of coef (D, r): (r, m (m + 1) / 2).

        One pass over ``B``, a slice of positions at a time: every column's
        product with a slice is taken while the slice is in cache (a product
        with several columns at once streams ``B`` more than once).
        """
        coef = np.ascontiguousarray(coef.T)
        out = np.empty((len(coef), self.B.shape[1]))
        for start in range(0, self.B.shape[1], SLICE):
            part = self.B[:, start : start + SLICE]
            for j, c in enumerate(coef):
                np.matmul(c, part, out=out[j, start : start + SLICE])
        return out

    def assemble(self, W: np.ndarray, d: np.ndarray | None = None) -> np.ndarray:
        """The lower triangle of ``D (A22 - A21 W A21') D``, zeros above, Fortran-ordered (m, m).

        Parameters
        ----------
        W : ndarray, shape (1, 1, l0)
            ``W_k`` per level (equal within a group; each group's first is read).
        d : ndarray, shape (m,), optional
            Diagonal scaling D (identity when None).
        """
        C = unpack_lower(self.base - self.combine(W[0, 0, self.first, None])[0], self.m)
        if d is not None:
            C *= d
            C *= d[:, None]
        return C

    def adjoint(self, Ub: np.ndarray) -> np.ndarray:
        """``df/dW`` (1, 1, l0) from the symmetric ``Ub = df/dU`` (m, m), ``U = A21 W A21'``.

        Each group's total ``<B_c, Ub>`` sits on its first level, 0 elsewhere:
        the chain to ``T0`` sums over levels whose ``W_k`` are equal, so the
        total is all it needs.
        """
        v = pack_lower(Ub)
        v *= 2.0
        v[packed_index(np.arange(self.m), np.arange(self.m), self.m)] *= 0.5  # diagonal once
        Wb = np.zeros((1, 1, self.l0))
        Wb[0, 0, self.first] = self.B @ v
        return Wb


def group_grams(A: sp.csc_matrix, group: np.ndarray, ngroups: int) -> np.ndarray:
    """Packed ``B_c = A_c A_c'`` for the columns ``A_c`` of each group, shape (ngroups, m (m+1)/2).

    Parameters
    ----------
    A : csc_matrix, shape (m, l), sorted indices
    group : ndarray of int, shape (l,)
        The group of every column, in ``0 .. ngroups - 1``, each present.

    Sparse columns: every pair ``i >= j`` of a column's entries adds
    ``A_ik A_jk`` at its packed position (one ``bincount`` per batch of
    pairs). Dense columns: one ``dsyrk``.
    """
    m = A.shape[0]
    npacked = m * (m + 1) // 2
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(ngroups + 1))
    per_column = np.diff(A.indptr).astype(np.int64)
    start = packed_index(np.zeros(m, dtype=np.int64), np.arange(m), m)  # of each column
    B = np.empty((ngroups, npacked))
    for c in range(ngroups):
        cols = order[bounds[c] : bounds[c + 1]]
        pairs = int((per_column[cols] * (per_column[cols] + 1) // 2).sum())
        if PAIR_COST * pairs < 0.5 * m * m * len(cols):
            B[c] = sparse_gram(A, cols, start)
        else:
            B[c] = pack_lower(blas.dsyrk(1.0, A[:, cols].toarray(order="F"), lower=1))
    return B


def sparse_gram(A: sp.csc_matrix, columns: np.ndarray, start: np.ndarray) -> np.ndarray:
    """``sum_k a_k a_k'`` over the given columns of A (m, l), packed, shape (m (m + 1) / 2,).

    Every pair ``i >= j`` of a column's entries adds ``A_ik A_jk`` at its
    packed position ``start[j] + i``; the pairs are summed by ``bincount``,
    up to ``4 CHUNK`` of them at a time.
    """
    npacked = A.shape[0] * (A.shape[0] + 1) // 2
    parts: list[np.ndarray] = []
    at: list[np.ndarray] = []
    products: list[np.ndarray] = []
    for rows, values in by_count(A, columns, pairs=True):
        r, s = triangle(rows.shape[1])  # entry r >= entry s: row >= row
        at.append((start[rows][:, s] + rows[:, r]).reshape(-1))
        products.append((values[:, r] * values[:, s]).reshape(-1))
        if sum(len(a) for a in at) >= 4 * CHUNK:
            parts.append(np.bincount(np.concatenate(at), np.concatenate(products), npacked))
            at, products = [], []
    if at:
        parts.append(np.bincount(np.concatenate(at), np.concatenate(products), npacked))
    return sum(parts[1:], start=parts[0]) if parts else np.zeros(npacked)


def by_count(
    A: sp.csc_matrix, columns: np.ndarray, pairs: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The entries of the given columns of A, batched by their number ``c`` (> 0).

    Yields
    ------
    rows : ndarray of int64, shape (k, c)
        Row indices of k columns with c entries each (increasing within a
        column for sorted indices).
    values : ndarray, shape (k, c)

    Each batch holds at most :data:`CHUNK` products: ``k c^2`` (or, with
    ``pairs``, ``k c (c + 1) / 2``), at least one column.
    """
    counts = np.diff(A.indptr)[columns]
    for c in np.unique(counts[counts > 0]):
        same = columns[counts == c]
        size = c * (c + 1) // 2 if pairs else c * c
        step = max(1, CHUNK // int(size))
        for k0 in range(0, len(same), step):
            at = A.indptr[same[k0 : k0 + step]][:, None] + np.arange(c)
            yield A.indices[at].astype(np.int64), A.data[at]


def level_forms(A: sp.spmatrix, L: np.ndarray, Sinv: np.ndarray) -> np.ndarray:
    """``a_k' S^-1 a_k`` for every column ``a_k`` of A, ``S = L L'``, shape (l,).

    Parameters
    ----------
    A : sparse matrix, shape (n, l)
    L : ndarray, shape (n, n)
        Lower Cholesky factor of S (lower triangle read).
    Sinv : ndarray, shape (n, n)
        ``S^-1``, symmetric.

    Whichever is cheaper: each column's entries of ``S^-1`` gathered
    (:func:`gathered_forms`, ``sum_k n_k^2`` for ``n_k`` entries in column
    ``k``), or ``||L^-1 a_k||^2`` by triangular solves with the dense columns,
    a few at a time (``n^2 l / 2`` multiply-adds at BLAS-3 speed).
    """
    n, ncols = A.shape
    csc = sp.csc_matrix(A)
    gathered = int((np.diff(csc.indptr).astype(np.int64) ** 2).sum())
    if GATHER_COST * gathered < 0.5 * n * n * ncols:
        return gathered_forms(csc, Sinv)
    out = np.empty(ncols)
    step = max(1, CHUNK // n)
    for k0 in range(0, ncols, step):
        V = solve_lower(L, csc[:, k0 : k0 + step].toarray(order="F"))
        out[k0 : k0 + step] = np.einsum("ij,ij->j", V, V)
    return out


def gathered_forms(A: sp.csc_matrix, G: np.ndarray) -> np.ndarray:
    """``a_k' G a_k`` for every column of a sparse A (n, l) and a dense G (n, n), shape (l,).

    Columns with the same number of entries ``c`` are done together
    (:func:`by_count`): their rows ``I`` (k, c) and values ``V`` (k, c)
    gather ``G[I_k, I_k]`` (k, c, c), and ``q_k = V_k' G[I_k, I_k] V_k`` is
    one batched product.
    """
    n, ncols = G.shape[0], A.shape[1]
    flat = np.ascontiguousarray(G).reshape(-1)
    out = np.zeros(ncols)
    columns = np.arange(ncols)
    counts = np.diff(A.indptr)
    for c in np.unique(counts[counts > 0]):
        same = columns[counts == c]
        for k0 in range(0, len(same), max(1, CHUNK // int(c * c))):
            ks = same[k0 : k0 + max(1, CHUNK // int(c * c))]
            at = A.indptr[ks][:, None] + np.arange(c)
            rows, values = A.indices[at].astype(np.int64), A.data[at]
            sub = np.take(flat, rows[:, :, None] * n + rows[:, None, :])
            out[ks] = np.einsum("kc,kc->k", values, np.matmul(sub, values[:, :, None])[:, :, 0])
    return out
