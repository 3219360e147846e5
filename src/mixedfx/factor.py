"""The blocked Cholesky factor L(theta) of the scaled system.

For relative covariance factor Lambda (block diagonal: one ``T_t`` per level
of each term) the matrix factored is::

    Omega = Lam' [Z X y]'[Z X y] Lam + diag(I_Z, 0, 0)     (Lam acts on Z only)

In the blocks of :mod:`mixedfx.blocks`, with ``T0`` the first term's factor::

    L11_k L11_k' = T0' A11_k T0 + I           per level k (q0 x q0)
    L21          = Lr' A21 blockdiag(T0 L11_k^-T)
    L22 L22'     = Lr' A22 Lr + diag(I_mr, 0) - L21 L21'

``Lr`` is the rest's Lambda padded with identity on [X y]. The last diagonal
entry of L22 is r, the root of the penalized residual sum of squares; the
diagonal of L22 over X gives log|L_X|.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from .blocks import Blocks


def chol_small(A: np.ndarray) -> np.ndarray:
    """Cholesky factors of a stack of small SPD matrices, shape (l, q, q) -> (l, q, q)."""
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


def inv_lower_small(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of small lower-triangular matrices, shape (l, q, q)."""
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


def scale_rows(A: np.ndarray, blocks: Blocks, Ts: list[np.ndarray]) -> np.ndarray:
    """``Lr' A`` for a dense A with m rows (rows of the rest's terms scaled by T')."""
    out = A.copy()
    for t in blocks.rest:
        T = Ts[t.term]
        rows = slice(t.offset, t.offset + t.nlevels * t.q)
        if t.q == 1:
            out[rows] *= T[0, 0]
        else:
            part = A[rows].reshape(t.nlevels, t.q, -1)
            out[rows] = np.einsum("ji,ljc->lic", T, part).reshape(t.nlevels * t.q, -1)
    return out


def lambda_rest_sparse(blocks: Blocks, Ts: list[np.ndarray]) -> sp.csr_matrix:
    """``Lr'`` as a sparse block-diagonal matrix, shape (m, m)."""
    parts = []
    for t in blocks.rest:
        parts.append(sp.kron(sp.identity(t.nlevels, format="csr"), sp.csr_matrix(Ts[t.term].T)))
    parts.append(sp.identity(blocks.p + 1, format="csr"))
    return sp.block_diag(parts, format="csr")


def blockdiag_sparse(R: np.ndarray) -> sp.csr_matrix:
    """A stack of q x q blocks, shape (l, q, q), as a sparse block-diagonal matrix."""
    l0, q, _ = R.shape
    rows = np.repeat(np.arange(l0 * q), q)
    cols = (np.arange(l0)[:, None, None] * q + np.arange(q)[None, None, :]).repeat(q, axis=1)
    return sp.csr_matrix((R.ravel(), (rows, cols.ravel())), shape=(l0 * q, l0 * q))


@dataclass(frozen=True)
class Factor:
    """The blocked factor at one theta (see module docstring)."""

    blocks: Blocks
    Ts: list[np.ndarray]  # per design term, (q_t, q_t)
    L11: np.ndarray  # (l0, q0, q0)
    R: np.ndarray  # (l0, q0, q0): T0 L11^-T
    L21: Any  # (m, l0*q0) ndarray or csr_matrix; None when not formed
    L22: np.ndarray  # (m, m), lower triangular
    logdet11: float  # log |L11|^2

    def logdets(self) -> tuple[float, float, float]:
        """``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2`` (the penalized RSS)."""
        mr, p = self.blocks.mr, self.blocks.p
        logd = 2.0 * np.log(self.L22.diagonal())
        last = float(self.L22[-1, -1])
        return self.logdet11 + float(logd[:mr].sum()), float(logd[mr : mr + p].sum()), last * last

    @property
    def r2(self) -> float:
        """Penalized residual sum of squares."""
        return float(self.L22[-1, -1] ** 2)


def cholesky(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a dense SPD matrix (LAPACK dpotrf, no checks)."""
    L, info = lapack.dpotrf(A, lower=1, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"matrix is not positive definite (dpotrf info {info})")
    return L


def _first_block(blocks: Blocks, T0: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """L11 and R = T0 L11^-T per level, each (l0, q0, q0), and log|L11|^2."""
    A11, q0 = blocks.A11, blocks.q0
    if q0 == 1:
        t0 = T0[0, 0]
        M11 = A11 * (t0 * t0) + 1.0
        L11 = np.sqrt(M11)
        return L11, t0 / L11, float(np.log(M11).sum())
    if q0 == 2:  # closed forms: T0 = [[t0, 0], [t1, t2]], A11_k = [[a, c], [c, d]]
        t0, t1, t2 = T0[0, 0], T0[1, 0], T0[1, 1]
        a, c, d = A11[:, 0, 0], A11[:, 1, 0], A11[:, 1, 1]
        bc = c * t0 + d * t1
        m00 = t0 * (a * t0 + c * t1) + t1 * bc + 1.0
        m10 = t2 * bc
        m11 = d * (t2 * t2) + 1.0
        L11 = np.empty_like(A11)
        l00 = np.sqrt(m00)
        l10 = m10 / l00
        l11 = np.sqrt(m11 - l10 * l10)
        L11[:, 0, 0], L11[:, 0, 1], L11[:, 1, 0], L11[:, 1, 1] = l00, 0.0, l10, l11
        # R = T0 L11^-T; L11^-T = [[1/l00, -l10/(l00 l11)], [0, 1/l11]]
        i00, i01, i11 = 1.0 / l00, -l10 / (l00 * l11), 1.0 / l11
        R = np.empty_like(A11)
        R[:, 0, 0], R[:, 0, 1] = t0 * i00, t0 * i01
        R[:, 1, 0], R[:, 1, 1] = t1 * i00, t1 * i01 + t2 * i11
        return L11, R, float(np.log(m00 * m11 - m10 * m10).sum())
    M11 = T0.T[None] @ A11 @ T0[None] + np.eye(q0)[None]
    L11 = chol_small(M11)
    logdet = 2.0 * float(np.log(np.diagonal(L11, axis1=1, axis2=2)).sum())
    return L11, T0[None] @ np.transpose(inv_lower_small(L11), (0, 2, 1)), logdet


def rest_diagonal(blocks: Blocks, Ts: list[np.ndarray]) -> np.ndarray | None:
    """``Lr`` as a vector when it is diagonal (every rest term has q = 1), else None."""
    if not all(t.q == 1 for t in blocks.rest):
        return None
    d = np.ones(blocks.m)
    for t in blocks.rest:
        d[t.offset : t.offset + t.nlevels] = Ts[t.term][0, 0]
    return d


def scale_both(A: np.ndarray, blocks: Blocks, Ts: list[np.ndarray]) -> np.ndarray:
    """``Lr' A Lr`` for a dense symmetric A, shape (m, m)."""
    d = rest_diagonal(blocks, Ts)
    if d is not None:
        return A * np.outer(d, d)
    return scale_rows(scale_rows(A, blocks, Ts).T.copy(), blocks, Ts)


def _rest_block(blocks: Blocks, Ts: list[np.ndarray], S: np.ndarray) -> np.ndarray:
    """``Lr' A22 Lr + diag(I_mr, 0) - S`` with S already scaled."""
    if not blocks.rest:
        return blocks.A22 - S
    M22 = scale_both(blocks.A22, blocks, Ts) - S
    mr = blocks.mr
    M22[np.arange(mr), np.arange(mr)] += 1.0
    return M22


def factor(blocks: Blocks, Ts: list[np.ndarray], full: bool = True) -> Factor:
    """Factor the scaled system at the relative covariance factors ``Ts``.

    With ``full=False`` and sparse blocks, L21 is not formed (the objective
    does not need it): the Schur update comes from the precomputed pattern.

    Raises
    ------
    numpy.linalg.LinAlgError
        When L22 is not positive definite (an X that is numerically rank
        deficient; the Z part carries + I and is always positive definite).
    """
    l0, q0 = blocks.l0, blocks.q0
    L11, R, logdet11 = _first_block(blocks, Ts[blocks.first])
    L21: np.ndarray | sp.csr_matrix | None
    if blocks.sparse:
        W = R * R if q0 == 1 else R @ np.transpose(R, (0, 2, 1))
        d = rest_diagonal(blocks, Ts)
        if d is not None:  # only the lower triangle: dpotrf reads no more
            M22 = blocks.schur.assemble(W, d)
        else:
            M22 = blocks.schur.assemble(W)
            M22 = scale_both(M22 + np.tril(M22, -1).T, blocks, Ts)
        M22[np.arange(blocks.mr), np.arange(blocks.mr)] += 1.0
        L21 = None
        if full:
            Lr = lambda_rest_sparse(blocks, Ts)
            Rs = sp.diags(R.ravel()) if q0 == 1 else blockdiag_sparse(R)
            L21 = (Lr @ blocks.A21 @ Rs).tocsr()
        return Factor(blocks, Ts, L11, R, L21, cholesky(M22), logdet11)
    else:
        A21 = scale_rows(blocks.A21, blocks, Ts) if blocks.rest else blocks.A21
        if q0 == 1:
            L21 = A21 * R.reshape(1, l0)
        else:
            L21 = np.einsum("mlq,lqr->mlr", A21.reshape(-1, l0, q0), R).reshape(-1, l0 * q0)
        S = L21 @ L21.T
    return Factor(blocks, Ts, L11, R, L21, cholesky(_rest_block(blocks, Ts, S)), logdet11)
