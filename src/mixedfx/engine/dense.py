"""The whole scaled system as one dense matrix: the objective for small models.

With ``A = [Z X y]'[Z X y]`` of shape (N, N), ``N = q + p + 1`` (``q`` random
effects), and ``Lambda = blockdiag(Lambda_theta, I_{p+1})``::

    M(theta) = Lambda' A Lambda + diag(1_q, 0_{p+1}) = L L'

is the same system the blocked factorization (:mod:`mixedfx.engine.cholesky`) solves,
so ``L``'s diagonal gives ``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2`` alike. For
small N one LAPACK Cholesky and one matrix-vector product cost less than the
blocked method's many small array operations, which is what the optimizer's
few dozen evaluations of a model such as sleepstudy's spend their time on.
The blocked factor is still used for everything after the optimum.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import smallmat
from .blocks import Blocks
from .cholesky import BlockedCholesky
from .crossprod import dense_A, term_columns
from .gradient import inverse_weighted
from .linalg import cholesky, inverse_lower, tril

_ONE = np.ones(1)  # the last element of t = (theta, 1)
# Largest N for which the dense system is used. Measured (whole fits, 1 BLAS thread, dense
# over blocked): N 53-93 1.1-2.9x faster ((1|g), (x|g), (x + z|g), (x|g) + (1|h),
# (1|g) + (1|h)); N 103-123 0.84-0.96x; N 163-243 0.36-0.55x.
DENSE_MAX = 96
DENSE_MAX_THETA = 10  # and largest number of theta elements: G has (k + 1)^2 rows


@dataclass(frozen=True)
class DenseSystem:
    """``M(theta)`` as a quadratic form in theta, precomputed (see module docstring).

    ``Lambda = sum_i t_i E_i`` over ``t = (theta, 1)``, with ``E_i`` the 0/1
    pattern of theta_i in Lambda and ``E_k`` the identity on the X and y
    columns, so ``M = sum_ij t_i t_j E_i' A E_j + diag(1_q, 0)``: one
    matrix-vector product per evaluation.

    Only the ``u`` positions of ``M`` where some ``G_ij`` is not 0 are kept
    (:attr:`used`): a few hundred of ``N * N`` for the block-diagonal ``Z'Z``
    of one term.

    Attributes
    ----------
    G : ndarray, shape ((k + 1)^2, u)
        Row ``i * (k + 1) + j`` is ``E_i' A E_j`` at the positions :attr:`used`,
        the identity on the random effects added to the last row.
    N, q, p : int
        Size of A, random and fixed effects.
    used : ndarray of int, shape (u,)
        The raveled positions (``a * N + b``) where some ``G_ij`` is not 0, increasing.
    upper : ndarray of int, shape (v,)
        Those of the upper triangle: all of M(theta) that the factorization
        reads (M is symmetric).
    G_upper : ndarray, shape ((k + 1)^2, v)
        ``G`` at :attr:`upper`: each evaluation forms only those entries.
    G_by_second : ndarray, shape (k + 1, k * u)
        ``G_il`` for ``i < k``, row ``l``: ``t @ G_by_second`` holds every
        ``sum_l t_l G_il`` (the Hessian's ``D_i``) at :attr:`used`.
    later : ndarray of int, shape (N * N,)
        ``max(a, b)`` at the raveled position of ``(a, b)``: the Hessian's
        weights ``w_max(a,b)`` are ``w[later]``.
    diagonal : ndarray of int, shape (N,)
        The raveled positions of the diagonal.
    cuts : ndarray of int
        Where the sums of :meth:`logdets` start: ``[0, q]`` (the random
        effects, the fixed ones), or ``[0]`` without fixed effects.
    """

    G: np.ndarray
    N: int
    q: int
    p: int
    used: np.ndarray
    upper: np.ndarray
    G_upper: np.ndarray
    G_by_second: np.ndarray
    later: np.ndarray
    diagonal: np.ndarray
    cuts: np.ndarray

    @classmethod
    def build(
        cls, blocks: Blocks, theta_index: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> DenseSystem:
        """Assemble from the blocks; ``theta_index[t]`` = (T rows, T cols, theta indices)."""
        A = dense_A(blocks)
        N = len(A)
        q = blocks.l0 * blocks.q0 + blocks.mr
        terms = tuple(
            (base, nlevels, qt, *(tuple(a.tolist()) for a in theta_index[term]))
            for term, (base, nlevels, qt) in term_columns(blocks).items()
        )
        pat = _pattern(N, q, terms)
        k = pat.k
        values = A[pat.rows[:, None], pat.rows[None, :]].ravel()
        nonzero = values != 0.0
        is_used = np.zeros(N * N, dtype=bool)
        is_used[pat.at[nonzero]] = is_used[pat.random_diagonal] = True
        used = np.flatnonzero(is_used)
        column = np.zeros(N * N, dtype=np.int64)  # the column of G of each used position
        column[used] = np.arange(len(used))
        G = np.zeros(((k + 1) ** 2, len(used)))  # row i * (k + 1) + j: E_i' A E_j at used
        G[pat.pair[nonzero], column[pat.at[nonzero]]] = values[nonzero]
        G[-1, column[pat.random_diagonal]] += 1.0
        by_second = np.ascontiguousarray(
            G.reshape(k + 1, k + 1, -1)[:k].transpose(1, 0, 2).reshape(k + 1, -1)
        )
        a, b = np.divmod(used, N)  # row and column of each used position
        in_upper = np.flatnonzero(a <= b)
        G_upper = np.ascontiguousarray(G[:, in_upper])
        cuts = np.array([0, q] if blocks.p else [0])
        return cls(
            G, N, q, blocks.p, used, used[in_upper], G_upper, by_second, pat.later,
            pat.diagonal, cuts,
        )  # fmt: skip

    def factor(self, theta: np.ndarray, clean: bool = False) -> np.ndarray:
        """The lower Cholesky factor of M(theta), shape (N, N) (upper triangle 0 if ``clean``).

        Only the entries of :attr:`upper` are formed, in a C-ordered array
        whose transpose (Fortran-ordered, lower triangle filled) is factored
        in place.

        Raises
        ------
        numpy.linalg.LinAlgError
            When M(theta) is not numerically positive definite.
        """
        t = np.concatenate((theta, _ONE))
        M = np.zeros(self.N * self.N)
        M[self.upper] = (t[:, None] * t).reshape(-1) @ self.G_upper
        return cholesky(M.reshape(self.N, self.N).T, clean=clean)

    def gradient(
        self, theta: np.ndarray, w: np.ndarray
    ) -> tuple[tuple[float, float, float], np.ndarray]:
        """:meth:`logdets` and the gradient of ``sum_i w_i log L_ii^2`` over theta, (k,).

        With ``H = L^-T diag(w) L^-1`` (:func:`mixedfx.engine.gradient.inverse_weighted`)
        and ``M = sum_ij t_i t_j G_ij``, the derivative along ``t_i`` is
        ``<H, dM/dt_i> = 2 sum_j t_j <H, G_ij>``: one more matrix-vector product.

        Parameters
        ----------
        theta : ndarray, shape (k,)
        w : ndarray, shape (N,)
            The objective's weights of the log squared diagonals.
        """
        t = np.concatenate((theta, _ONE))
        L = self.factor(theta)
        H = inverse_weighted(L, w)
        g = (self.G @ H.reshape(-1)[self.used]).reshape(len(t), len(t))
        return self._logdets(L), np.asarray(2.0 * (g @ t)[:-1])

    def second_order(
        self, theta: np.ndarray, w: np.ndarray
    ) -> tuple[tuple[float, float, float], np.ndarray, np.ndarray]:
        """:meth:`logdets`, and the gradient (k,) and Hessian (k, k) of ``sum_i w_i log L_ii^2``.

        One factorization for all three (the gradient as in :meth:`gradient`).

        The sum is ``sum_s c_s log|M_s|`` over nested leading blocks ``M_s``
        (``w_i = sum_{s > i} c_s``), and for each block::

            d2 log|M_s| / dt_i dt_j = tr(M_s^-1 d2M) - tr(M_s^-1 D_i M_s^-1 D_j)

        with ``D_i = dM/dt_i = sum_l t_l (G_il + G_li)`` and ``d2M = G_ij + G_ji``.
        With ``E_i = K D_i K'`` (``K = L^-1``), the leading block of ``E_i`` is
        ``K_s D_i K_s'``, so the second trace is ``<E_i, E_j>`` over the block and
        the weighted sum is ``sum_ab w_max(a,b) (E_i)_ab (E_j)_ab``.
        """
        k, N = len(theta), self.N
        t = np.concatenate((theta, _ONE))
        L = self.factor(theta, clean=True)
        K = inverse_lower(L, clean=True)
        H = K.T @ (w[:, None] * K)
        g = (self.G @ H.reshape(-1)[self.used]).reshape(k + 1, k + 1)
        D_used = np.zeros((k, N * N))
        D_used[:, self.used] = (t @ self.G_by_second).reshape(k, -1)
        D = D_used.reshape(k, N, N)
        D = D + np.swapaxes(D, 1, 2)  # D_i, i < k
        DK = (D.reshape(k * N, N) @ K.T).reshape(k, N, N)  # D_i K', stacked
        E = np.matmul(K, DK).reshape(k, -1)  # K D_i K', (k, N * N)
        second = (E * w[self.later]) @ E.T
        gradient = 2.0 * (g @ t)[:-1]
        return self._logdets(L), gradient, np.asarray(2.0 * g[:-1, :-1] - second)

    def blocked(self, theta: np.ndarray, blocks: Blocks, Ts: list[np.ndarray]) -> BlockedCholesky:
        """The blocked factor of :mod:`mixedfx.engine.cholesky` at theta, read off :meth:`factor`.

        Both factor the same system in the same order, so the dense ``L``
        holds the blocked pieces: ``L11`` in the first term's diagonal blocks,
        ``L21`` below them and ``L22`` in the corner; ``R_k = T0 L11_k^-T``.
        ``Ts`` are the terms' factors at theta (dense blocks only).
        """
        L = self.factor(theta)
        l0, q0 = blocks.l0, blocks.q0
        n0 = l0 * q0
        first = (np.arange(l0) * q0)[:, None, None]
        L11 = L[first + np.arange(q0)[:, None], first + np.arange(q0)]
        for a in range(q0 - 1):  # the factor's upper triangle is not cleaned
            L11[:, a, a + 1 :] = 0.0
        R = smallmat.matmul(Ts[blocks.first], smallmat.transpose(smallmat.inv_lower(L11)))
        logdet11 = 2.0 * float(np.add.reduce(np.log(L.diagonal()[:n0])))
        L21, L22 = L[n0:, :n0].copy(), tril(L[n0:, n0:])
        return BlockedCholesky(blocks, Ts, L11, R, L22, logdet11, known_L21=L21)

    def logdets(self, theta: np.ndarray) -> tuple[float, float, float]:
        """``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2`` at theta.

        The optimizer's evaluation (BOBYQA calls it a few dozen times for a
        model such as sleepstudy's, 12 us each), so it reads the factor off
        its raveled memory: the diagonal at :attr:`diagonal`, both sums of
        logs in one ``reduceat``.

        Raises
        ------
        numpy.linalg.LinAlgError
            When M(theta) is not numerically positive definite.
        """
        M = self.factor(theta).T.reshape(-1)  # C-ordered: a view of the factored buffer
        sums = np.add.reduceat(np.log(M[self.diagonal[:-1]]), self.cuts)
        last = M[-1]
        return 2.0 * float(sums[0]), 2.0 * float(sums[1]) if self.p else 0.0, float(last * last)

    def _logdets(self, L: np.ndarray) -> tuple[float, float, float]:
        log_diagonal = np.log(L.diagonal())  # summed, then doubled: exactly the sums of 2 log
        last, q = L[-1, -1], self.q
        ldz, ldx = np.add.reduce(log_diagonal[:q]), np.add.reduce(log_diagonal[q:-1])
        return 2.0 * float(ldz), 2.0 * float(ldx), float(last * last)


@dataclass(frozen=True)
class _Pattern:
    """Where theta's elements sit in ``Lambda`` and what that makes of ``M``'s positions.

    Read-only arrays, of the model's structure only (sizes and the theta
    layout), so kept per structure (:func:`_pattern`): refits, bootstrap
    replicates and profiles of one model share it.

    Attributes
    ----------
    k : int
        Elements of theta.
    rows, cols : ndarray of int, shape (r,)
        Row and column in ``Lambda`` of each position of each ``E_i``, by ``i``
        (the last, ``E_k``, the identity on the X and y columns).
    at : ndarray of int, shape (r * r,)
        The raveled position ``c * N + c'`` in ``M`` of each pair of positions.
    pair : ndarray of int, shape (r * r,)
        The row ``i * (k + 1) + j`` of ``G`` of each pair.
    random_diagonal : ndarray of int, shape (q,)
        The raveled diagonal of the random effects (where ``M`` adds 1).
    later, diagonal : ndarray of int
        As :class:`DenseSystem`'s.
    """

    k: int
    rows: np.ndarray
    cols: np.ndarray
    at: np.ndarray
    pair: np.ndarray
    random_diagonal: np.ndarray
    later: np.ndarray
    diagonal: np.ndarray


Terms = tuple[tuple[int, int, int, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]


@functools.lru_cache(maxsize=32)
def _pattern(N: int, q: int, terms: Terms) -> _Pattern:
    """The pattern of a system of size N with q random effects.

    ``terms``: per term (first column in Z, levels, q_t, and the rows, columns
    and theta indices of its ``T``'s elements).
    """
    k = 1 + max(max(index) for *_, index in terms)
    where: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []) for _ in range(k)]
    where.append(([np.arange(q, N)], [np.arange(q, N)]))
    # E_i holds a 1 at each of its positions (r, c), one per column c, so E_i' A E_j
    # holds A[r, r'] at (c, c') for each position (r, c) of i and (r', c') of j
    for base, nlevels, qt, rows_t, cols_t, index in terms:
        first = base + np.arange(nlevels) * qt
        for r, c, i in zip(rows_t, cols_t, index, strict=True):
            where[i][0].append(first + r)
            where[i][1].append(first + c)
    pos = [(np.concatenate(r), np.concatenate(c)) for r, c in where]
    rows, cols = np.concatenate([r for r, _ in pos]), np.concatenate([c for _, c in pos])
    owner = np.repeat(np.arange(k + 1), [len(r) for r, _ in pos])
    idx = np.arange(N)
    arrays = (
        rows,
        cols,
        (cols[:, None] * N + cols[None, :]).ravel(),
        (owner[:, None] * (k + 1) + owner[None, :]).ravel(),
        np.arange(q) * (N + 1),
        np.maximum(idx[:, None], idx[None, :]).reshape(-1),
        idx * (N + 1),
    )
    for a in arrays:
        a.flags.writeable = False
    return _Pattern(k, *arrays)
