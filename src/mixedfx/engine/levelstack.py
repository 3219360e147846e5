"""Stacks of small q x q matrices held level last, shape (q, q, l): one per grouping level.

The first term's per-level algebra for q >= 3 (q <= 2 have closed forms in
:mod:`mixedfx.engine.cholesky`). Each operation is one product with a
(q^2, q^2) Kronecker matrix or a handful of whole-array operations on the
(l,) rows of the stack, so that its cost is a few numpy calls whatever the
number of levels: with row-major ``vec``::

    vec(A X_k B) = (A kron B') vec(X_k)        (congruence)

and the inverse of an SPD ``M_k`` comes from its Cholesky factor computed
entry by entry (:func:`inverse_logdet`). numpy's batched ``linalg`` loops
over the levels with a per-matrix cost (28 us for the inverses of 103 3 x 3
matrices against 11 us here).
"""

from __future__ import annotations

import numpy as np


def sandwich(A: np.ndarray, X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A X_k B`` for every level, one product: shapes (q, q), (q, q, l), (q, q) -> (q, q, l)."""
    q = X.shape[0]
    kron = (A[:, None, :, None] * B.T[None, :, None, :]).reshape(q * q, q * q)  # np.kron: 20 us
    return (kron @ X.reshape(q * q, -1)).reshape(X.shape)


def product(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``X_k Y_k`` for every level, shape (q, q, l)."""
    return np.einsum("icl,cjl->ijl", X, Y)


def trace_sum(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """``sum_k X_k Y_k`` over the levels, shape (q, q)."""
    return np.asarray(np.einsum("icl,cjl->ij", X, Y))


def inverse_logdet(M: np.ndarray) -> tuple[np.ndarray, float]:
    """``M_k^-1`` (q, q, l) and ``sum_k log|M_k|`` for symmetric positive definite ``M_k``.

    Only the lower triangle of each ``M_k`` is read. With ``L_k L_k' = M_k``
    and ``K_k = L_k^-1``, entry by entry over the levels::

        L_jj = sqrt(M_jj - sum_{c<j} L_jc^2)
        L_ij = (M_ij - sum_{c<j} L_ic L_jc) / L_jj                 (i > j)
        K_ij = -(sum_{c=j}^{i-1} L_ic K_cj) / L_ii                 (i > j)
        (M^-1)_ij = sum_{c >= max(i, j)} K_ci K_cj

    and ``log|M_k| = 2 sum_j log L_jj``, summed as the logs of the products
    of each level's diagonal (:func:`~mixedfx.engine.cholesky.sum_log`'s
    device: a log costs several products), one by one where that overflows.

    Raises
    ------
    numpy.linalg.LinAlgError
        Where some ``M_k`` is not positive definite.
    """
    q = M.shape[0]
    L: list[list[np.ndarray]] = [[] for _ in range(q)]  # L[i][c], c <= i
    recip: list[np.ndarray] = []  # 1 / L_jj
    for j in range(q):
        s = M[j, j].copy()
        for c in range(j):
            s -= L[j][c] * L[j][c]
        if not s.min(initial=np.inf) > 0.0:
            raise np.linalg.LinAlgError("a level's block is not positive definite")
        d = np.sqrt(s, out=s)
        L[j].append(d)
        recip.append(1.0 / d)
        for i in range(j + 1, q):
            x = M[i, j].copy()
            for c in range(j):
                x -= L[i][c] * L[j][c]
            x *= recip[j]
            L[i].append(x)
    K: list[list[np.ndarray]] = [[] for _ in range(q)]  # K[i][j], j <= i
    for i in range(q):
        for j in range(i):
            acc = L[i][j] * K[j][j]
            for c in range(j + 1, i):
                acc += L[i][c] * K[c][j]
            acc *= -recip[i]
            K[i].append(acc)
        K[i].append(recip[i])
    out = np.empty_like(M)
    for i in range(q):
        for j in range(i + 1):
            acc = K[i][i] * K[i][j]
            for c in range(i + 1, q):
                acc += K[c][i] * K[c][j]
            out[i, j] = acc
            if i != j:
                out[j, i] = acc
    diag = L[0][0].copy()
    for j in range(1, q):
        diag *= L[j][j]
    logdet = 2.0 * float(np.log(diag).sum())
    if not np.isfinite(logdet):  # a product overflowed: the logs one by one
        logdet = 2.0 * sum(float(np.log(L[j][j]).sum()) for j in range(q))
    return out, logdet
