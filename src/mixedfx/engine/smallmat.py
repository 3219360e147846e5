"""Stacks of small q x q matrices, shape (l, q, q): one per grouping level.

numpy's batched ``@`` and ``einsum`` loop over the stack with a per-matrix
cost that dominates for q = 1 or 2 and hundreds of thousands of levels;
here products are sums of q broadcast multiplications of whole (l, q, q)
arrays, and q <= 2 have closed forms.
"""

from __future__ import annotations

import numpy as np

BROADCAST_MAX = 128  # levels up to which q = 2 products broadcast (a few calls beat eight)


def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A_k B_k`` per level; either may be a single (q, q) matrix, shape (l, q, q).

    For q = 2 and more than :data:`BROADCAST_MAX` levels entry by entry,
    ``a_i0 b_0j + a_i1 b_1j`` on (l,) arrays (numpy's broadcasting over axes of
    length 2 costs several times that); fewer levels take the broadcast sums
    below, whose per-call cost is then what counts. Both add the same products
    in the same order, so they agree to the bit.
    """
    q = A.shape[-1]
    if q > 4:
        return A @ B
    if q == 2 and max(A.size, B.size) > 4 * BROADCAST_MAX:
        entries = [
            [A[..., i, 0] * B[..., 0, j] + A[..., i, 1] * B[..., 1, j] for j in range(2)]
            for i in range(2)
        ]
        out = np.empty((*np.shape(entries[0][0]), 2, 2))  # the broadcast shape, found free
        for i in range(2):
            for j in range(2):
                out[..., i, j] = entries[i][j]
        return out
    out = A[..., :, 0, None] * B[..., None, 0, :]
    for k in range(1, q):
        out = out + A[..., :, k, None] * B[..., None, k, :]
    return out


def transpose(A: np.ndarray) -> np.ndarray:
    """``A_k'`` per level (a view)."""
    return np.swapaxes(A, -1, -2)


def gram(R: np.ndarray) -> np.ndarray:
    """``R_k R_k'`` per level, shape (l, q, q) -> (l, q, q)."""
    q = R.shape[-1]
    if q == 1:
        return R * R
    if q == 2:
        r00, r01, r10, r11 = R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1]
        W = np.empty_like(R)
        W[:, 0, 0] = r00 * r00 + r01 * r01
        W[:, 1, 1] = r10 * r10 + r11 * r11
        W[:, 0, 1] = W[:, 1, 0] = r00 * r10 + r01 * r11
        return W
    return matmul(R, transpose(R))


def chol(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of SPD matrices, shape (l, q, q) -> (l, q, q)."""
    q = A.shape[-1]
    if q == 1:
        return np.sqrt(A)
    if q == 2:
        L = np.zeros_like(A)
        a = np.sqrt(A[:, 0, 0])
        b = A[:, 1, 0] / a
        L[:, 0, 0] = a
        L[:, 1, 0] = b
        L[:, 1, 1] = np.sqrt(A[:, 1, 1] - b * b)
        return L
    return np.linalg.cholesky(A)


def inv_lower(L: np.ndarray) -> np.ndarray:
    """Inverses of lower-triangular matrices, shape (l, q, q) -> (l, q, q)."""
    q = L.shape[-1]
    if q == 1:
        return 1.0 / L
    if q == 2:
        out = np.zeros_like(L)
        out[:, 0, 0] = 1.0 / L[:, 0, 0]
        out[:, 1, 1] = 1.0 / L[:, 1, 1]
        out[:, 1, 0] = -L[:, 1, 0] * out[:, 0, 0] * out[:, 1, 1]
        return out
    eye = np.broadcast_to(np.eye(q), L.shape)
    return np.linalg.solve(L, eye)
