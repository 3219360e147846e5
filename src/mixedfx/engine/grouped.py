"""The Schur update ``A22 - A21 W A21'`` for levels grouped by their A11 (q0 = 1).

With one random effect per level of the first term, ``W_k = t^2 / (t^2 a_k
+ 1)`` depends on theta only through ``t = T0`` and on the level only
through ``a_k = A11_k``. For a random intercept ``a_k`` is the level's row
count, which takes few distinct values ``a_c`` however many levels there
are (20,000 users: 57 distinct counts at 1M ratings, 204 at 16M). Grouping
the levels by that value::

    U(t) = A21 W A21' = sum_c w_c(t) B_c,    B_c = sum_{k: a_k = a_c} a_k a_k'

The ``w_c(t)`` go through ``r <= D`` basis functions
(:mod:`mixedfx.engine.coefficients`: Chebyshev interpolation in
``1 / (1 + t^2 a_ref)``, 16 to 24 of them where ``D`` is 57 to 204), so
``U(t) = sum_j alpha_j(t) C_j`` with ``C_j = sum_c weights[c, j] B_c``
formed once and held as lower triangles in LAPACK's packed order
(:func:`~mixedfx.engine.linalg.pack_lower`), an (r, m (m + 1) / 2) array.
An evaluation combines them with the coefficients of ``U`` and, for the
gradient, of ``dU/dt``, whatever the number of rows; everything after
that is dense (m, m) algebra (:mod:`mixedfx.engine.gradient`).

Each ``B_c`` is formed from its group's columns of A21 by summing the
pairs of entries within each column (``sum_k n_k (n_k + 1) / 2`` for
``n_k`` entries in column ``k``), or by one BLAS ``dsyrk`` on the dense
columns (``m^2 n_c / 2`` multiply-adds at BLAS-3 speed), whichever is
cheaper: pairs for a few ratings per user and item, ``dsyrk`` once most
users meet a good share of the items. A few groups at a time, their
``B_c`` are then folded into the ``C_j`` by one matrix product.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from scipy.linalg import blas

from .coefficients import Coefficients
from .densegram import DenseGram, exact_rows
from .linalg import pack_lower, packed_index, solve_lower, unpack_lower
from .schur import triangle

PAIR_COST = 280.0  # a pair of a column's entries added, in dsyrk multiply-adds
GATHER_COST = 300.0  # an entry of S^-1 gathered, in dtrsm multiply-adds
CHUNK = 4_000_000  # entries of the dense blocks formed at a time
FOLD = 2**29  # bytes of B_c formed before they are folded into the C_j
SLICE = 32768  # positions of C combined at a time (r x SLICE doubles stay in cache)


class GroupedSchur:
    """``A22 - U(t)`` from the packed ``C_j`` of groups of levels (module docstring).

    Parameters
    ----------
    A21 : sparse matrix, shape (m, l0)
    A22 : ndarray, shape (m, m)
    a11 : ndarray, shape (l0,)
        ``A11_k`` of every level (q0 = 1).
    coefficients : Coefficients, optional
        ``Coefficients.fit`` of the distinct values of ``a11``, when known.

    Attributes
    ----------
    m, l0 : int
    coefficients : Coefficients
        The groups' values ``a_c`` (D,) and the basis of their ``w_c(t)``.
    base : ndarray, shape (m (m + 1) / 2,)
        A22, packed.
    C : ndarray, shape (r, m (m + 1) / 2)
        ``C_j``, packed, one row per basis function.
    columns : csc_matrix, shape (m, l0)
        A21 by columns, sorted (for :func:`level_forms`).
    """

    def __init__(
        self,
        A21: sp.spmatrix,
        A22: np.ndarray,
        a11: np.ndarray,
        coefficients: Coefficients | None = None,
    ) -> None:
        self.m, self.l0 = A21.shape[0], len(a11)
        a, group = np.unique(a11, return_inverse=True)
        self.coefficients = Coefficients.fit(a) if coefficients is None else coefficients
        self.base = pack_lower(np.asfortranarray(A22))
        self.columns = sp.csc_matrix(A21)
        self.columns.sort_indices()
        self.C = group_grams(self.columns, group.reshape(-1), self.coefficients.weights)

    def update(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``U(t)`` and ``dU/dt``, packed, each (m (m + 1) / 2,)."""
        alpha, dalpha = self.coefficients.at(t)
        U, dU = self.combine(np.column_stack([alpha, dalpha]))
        return U, dU

    def combine(self, coef: np.ndarray) -> np.ndarray:
        """``sum_j coef[j, i] C_j`` packed, for each column i of coef (r, k): (k, m (m + 1) / 2).

        One pass over ``C``, a slice of positions at a time: every column's
        product with a slice is taken while the slice is in cache (a product
        with several columns at once streams ``C`` more than once).
        """
        coef = np.ascontiguousarray(coef.T)
        out = np.empty((len(coef), self.C.shape[1]))
        for start in range(0, self.C.shape[1], SLICE):
            part = self.C[:, start : start + SLICE]
            for i, c in enumerate(coef):
                np.matmul(c, part, out=out[i, start : start + SLICE])
        return out

    def assemble(self, t: float, d: np.ndarray | None = None) -> np.ndarray:
        """The lower triangle of ``D (A22 - U(t)) D``, zeros above, Fortran-ordered (m, m).

        Parameters
        ----------
        t : float
            ``T0`` (1 x 1).
        d : ndarray, shape (m,), optional
            Diagonal scaling D (identity when None).
        """
        alpha, _ = self.coefficients.at(t)
        M = unpack_lower(self.base - self.combine(alpha[:, None])[0], self.m)
        if d is not None:
            M *= d
            M *= d[:, None]
        return M

    def slope(self, t: float, Ub: np.ndarray) -> float:
        """``<dU/dt, Ub> = sum_ij (dU/dt)_ij Ub_ij`` for a symmetric ``Ub`` (m, m)."""
        v = pack_lower(Ub)
        v *= 2.0
        v[packed_index(np.arange(self.m), np.arange(self.m), self.m)] *= 0.5  # diagonal once
        return float(self.coefficients.at(t)[1] @ (self.C @ v))


def group_grams(A: sp.csc_matrix, group: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``C_j = sum_c weights[c, j] B_c``, ``B_c = A_c A_c'`` over each group's columns, packed.

    Parameters
    ----------
    A : csc_matrix, shape (m, l), sorted indices
    group : ndarray of int, shape (l,)
        The group of every column, in ``0 .. D - 1``, each present.
    weights : ndarray, shape (D, r)
        The identity gives the ``B_c`` themselves.

    Returns
    -------
    ndarray, shape (r, m (m + 1) / 2)

    Sparse columns: every pair ``i >= j`` of a column's entries adds
    ``A_ik A_jk`` at its packed position (:func:`sparse_gram`). Dense
    columns: one ``dsyrk`` (``ssyrk`` for rows of counts,
    :mod:`~mixedfx.engine.densegram`). Groups are formed a few at a time (``FOLD``
    bytes) and folded into the ``C_j`` by one product with their weights.
    """
    m = A.shape[0]
    ngroups, npacked = weights.shape[0], m * (m + 1) // 2
    identity = weights.shape[1] == ngroups and np.array_equal(weights, np.eye(ngroups))
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(ngroups + 1))
    per_column = np.diff(A.indptr).astype(np.int64)
    start = packed_index(np.zeros(m, dtype=np.int64), np.arange(m), m)  # of each column
    step = ngroups if identity else min(ngroups, max(1, FOLD // (8 * npacked)))
    out = np.empty((ngroups, npacked)) if identity else np.zeros((weights.shape[1], npacked))
    buffer = np.empty((step, npacked)) if not identity else out
    gram: DenseGram | None = None  # dense columns' B_c, made on first use
    for c0 in range(0, ngroups, step):
        groups = range(c0, min(c0 + step, ngroups))
        for i, c in enumerate(groups):
            row = c if identity else i
            cols = order[bounds[c] : bounds[c + 1]]
            pairs = int((per_column[cols] * (per_column[cols] + 1) // 2).sum())
            if PAIR_COST * pairs < 0.5 * m * m * len(cols):
                buffer[row] = sparse_gram(A, cols, start)
            else:
                gram = gram if gram is not None else DenseGram(m, exact_rows(A))
                gram.packed(A[:, cols].toarray(order="F"), buffer[row])
        if not identity:  # out' += buffer' weights, in place
            blas.dgemm(
                1.0, buffer[: len(groups)].T, weights[groups.start : groups.stop],
                beta=1.0, c=out.T, overwrite_c=1,
            )  # fmt: skip
    return out


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


def level_forms(A: sp.csc_matrix, scale: np.ndarray, L: np.ndarray, G: np.ndarray) -> np.ndarray:
    """``x_k' S^-1 x_k`` for ``x_k = scale o a_k`` and every column ``a_k`` of A, shape (l,).

    Parameters
    ----------
    A : csc_matrix, shape (m, l), sorted indices
    scale : ndarray, shape (m,)
        Row scaling (``Lr'`` when it is diagonal; ones otherwise).
    L : ndarray, shape (n, n), n <= m
        Lower Cholesky factor of S (lower triangle read).
    G : ndarray, shape (m, m)
        ``S^-1`` in its leading (n, n) block, zeros elsewhere: rows of A
        beyond the first n do not count.

    Whichever is cheaper: each column's entries of ``G`` gathered
    (:func:`gathered_forms`, ``sum_k n_k^2`` for ``n_k`` entries in column
    ``k``), or ``||L^-1 x_k||^2`` by triangular solves with the dense columns,
    a few at a time (``n^2 l / 2`` multiply-adds at BLAS-3 speed).
    """
    n, ncols = L.shape[0], A.shape[1]
    gathered = int((np.diff(A.indptr).astype(np.int64) ** 2).sum())
    if GATHER_COST * gathered < 0.5 * n * n * ncols:
        return gathered_forms(A, scale, G)
    out = np.empty(ncols)
    step = max(1, CHUNK // n)
    for k0 in range(0, ncols, step):
        k1 = min(k0 + step, ncols)
        a, b = A.indptr[k0], A.indptr[k1]
        rows = A.indices[a:b]
        part = sp.csc_matrix(
            (A.data[a:b] * scale[rows], rows, A.indptr[k0 : k1 + 1] - a),
            shape=(A.shape[0], k1 - k0),
        )
        V = solve_lower(L, np.asfortranarray(part.toarray(order="F")[:n]))
        out[k0:k1] = np.einsum("ij,ij->j", V, V)
    return out


def gathered_forms(A: sp.csc_matrix, scale: np.ndarray, G: np.ndarray) -> np.ndarray:
    """``x_k' G x_k``, ``x_k = scale o a_k``, for every column of a sparse A (n, l), shape (l,).

    ``G`` is dense (n, n). Columns with the same number of entries ``c``
    are done together: their rows ``I`` (k, c) and values ``V`` (k, c)
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
            rows = A.indices[at].astype(np.int64)
            values = A.data[at] * scale[rows]
            sub = np.take(flat, rows[:, :, None] * n + rows[:, None, :])
            out[ks] = np.einsum("kc,kc->k", values, np.matmul(sub, values[:, :, None])[:, :, 0])
    return out
