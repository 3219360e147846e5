"""The blocked Cholesky factor L(theta) of the scaled system.

For relative covariance factor Lambda (block diagonal: one ``T_t`` per level
of each term) the matrix factored is::

    Omega = Lam' [Z X y]'[Z X y] Lam + diag(I_Z, 0, 0)     (Lam acts on Z only)

In the blocks of :mod:`mixedfx.engine.blocks`, with ``T0`` the first term's factor::

    L11_k L11_k' = T0' A11_k T0 + I           per level k (q0 x q0)
    L21          = Lr' A21 blockdiag(T0 L11_k^-T)
    L22 L22'     = Lr' A22 Lr + diag(I_mr, 0) - L21 L21'

``Lr`` is the rest's Lambda padded with identity on [X y]. The last diagonal
entry of L22 is r, the root of the penalized residual sum of squares; the
diagonal of L22 over X gives log|L_X|.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from . import levelstack, smallmat
from .blocks import Blocks
from .grouped import GroupedSchur
from .linalg import cholesky
from .schur import gram_update


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
class BlockedCholesky:
    """The blocked factor at one theta (see module docstring)."""

    blocks: Blocks
    Ts: list[np.ndarray]  # per design term, (q_t, q_t)
    L11: np.ndarray  # (l0, q0, q0)
    R: np.ndarray  # (l0, q0, q0): T0 L11^-T
    L22: np.ndarray  # (m, m), lower triangular
    logdet11: float  # log |L11|^2
    known_L21: np.ndarray | None = None  # L21 when read off a dense factor (engine/dense.py)

    @functools.cached_property
    def L21(self) -> Any:
        """``Lr' A21 blockdiag(R_k)``, (m, l0 q0), ndarray or csr_matrix, formed on first use."""
        if self.known_L21 is not None:
            return self.known_L21
        blocks, Ts, R = self.blocks, self.Ts, self.R
        if blocks.sparse:
            Lr = lambda_rest_sparse(blocks, Ts)
            Rs = sp.diags(R.ravel()) if blocks.q0 == 1 else blockdiag_sparse(R)
            return (Lr @ blocks.A21 @ Rs).tocsr()
        A21 = scale_rows(blocks.A21, blocks, Ts) if blocks.rest else blocks.A21
        return lower_times_R(A21, R)

    def L21_transpose_times(self, v: np.ndarray) -> np.ndarray:
        """``L21' v = blockdiag(R_k)' A21' Lr v`` for v (m,), per level: shape (l0, q0).

        Without forming L21: one product with A21 (sparse or dense).
        """
        bl = self.blocks
        Lv = lambda_rest_sparse(bl, self.Ts).T @ v if bl.rest else v  # Lr v
        y = np.asarray(bl.A21.T @ Lv).reshape(bl.l0, bl.q0)
        return np.einsum("lab,la->lb", self.R, y)

    def logdets(self) -> tuple[float, float, float]:
        """``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2`` (the penalized RSS)."""
        return logdets(self.blocks, self.L22, self.logdet11)

    @property
    def r2(self) -> float:
        """Penalized residual sum of squares."""
        return float(self.L22[-1, -1] ** 2)


def m11_2x2(
    T0: np.ndarray, a: np.ndarray, c: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries m00, m10, m11 of ``M11_k = T0' A11_k T0 + I`` for q0 = 2, each (l0,).

    ``T0 = [[t0, 0], [t1, t2]]`` and ``A11_k = [[a, c], [c, d]]``; the one
    closed form that both the factor and the objective's path use.
    """
    t0, t1, t2 = T0[0, 0], T0[1, 0], T0[1, 1]
    bc = c * t0 + d * t1
    m00 = a * (t0 * t0) + c * (t0 * t1) + t1 * bc + 1.0
    return m00, t2 * bc, d * (t2 * t2) + 1.0


Entries = tuple[np.ndarray, np.ndarray, np.ndarray]
Gram2 = tuple[np.ndarray, Entries, Entries]  # gram_2x2's det, M11^-1 and W


def gram_2x2(blocks: Blocks, T0: np.ndarray) -> Gram2:
    """For q0 = 2, per level: ``det M11_k``, ``M11_k^-1`` and ``W_k = T0 M11_k^-1 T0'``.

    The two symmetric matrices as their entries (00, 10, 11), each (l0,).
    The gradient reads all three, so it computes them once and passes them
    to :func:`first_gram` and :func:`~mixedfx.engine.gradient.first_term`.
    """
    t0, t1, t2 = T0[0, 0], T0[1, 0], T0[1, 1]
    m00, m10, m11 = m11_2x2(T0, *blocks.a11_entries)
    det = m00 * m11 - m10 * m10
    r = 1.0 / det
    i00, i10, i11 = m11 * r, m10 * -r, m00 * r
    w00 = (t0 * t0) * i00
    w01 = t0 * (t1 * i00 + t2 * i10)
    w11 = (t1 * t1) * i00 + (2.0 * t1 * t2) * i10 + (t2 * t2) * i11
    return det, (i00, i10, i11), (w00, w01, w11)


GramStack = tuple[float, np.ndarray, np.ndarray]  # gram_stack's log-determinant, M11^-1 and W
Gram = Gram2 | GramStack


def gram_stack(blocks: Blocks, T0: np.ndarray) -> GramStack:
    """For q0 >= 3: ``sum_k log|M11_k|``, and per level ``M11_k^-1`` and ``W_k = T0 M11_k^-1 T0'``.

    Both level last, (q0, q0, l0) (:mod:`~mixedfx.engine.levelstack`); as
    :func:`gram_2x2`, the gradient reads all three and computes them once.
    The last result is kept on ``blocks`` for the same ``T0``: the average
    information (:mod:`~mixedfx.engine.information`) reads ``M11^-1`` off the
    evaluation that factored L22 (90 of its 340 us, 400 levels). The arrays
    are shared: callers do not write to them.
    """
    key = T0.tobytes()
    held = blocks.__dict__.get("_gram_stack")
    if held is not None and held[0] == key:
        return held[1]
    M = levelstack.sandwich(T0.T, blocks.a11_stack, T0)
    M[np.arange(blocks.q0), np.arange(blocks.q0)] += 1.0
    Minv, logdet = levelstack.inverse_logdet(M)
    out = (logdet, Minv, levelstack.sandwich(T0, Minv, T0.T))
    blocks.__dict__["_gram_stack"] = (key, out)
    return out


def first_grams(blocks: Blocks, T0: np.ndarray) -> Gram | None:
    """:func:`gram_2x2` (q0 = 2) or :func:`gram_stack` (q0 >= 3) at ``T0``; None for q0 = 1."""
    if blocks.q0 == 2:
        return gram_2x2(blocks, T0)
    return gram_stack(blocks, T0) if blocks.q0 > 2 else None


def _first_block(blocks: Blocks, T0: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """L11 and R = T0 L11^-T per level, each (l0, q0, q0), and log|L11|^2."""
    A11, q0 = blocks.A11, blocks.q0
    if q0 == 1:
        t0 = T0[0, 0]
        M11 = A11 * (t0 * t0) + 1.0
        L11 = np.sqrt(M11)
        return L11, t0 / L11, float(np.log(M11).sum())
    if q0 == 2:
        t0, t1, t2 = T0[0, 0], T0[1, 0], T0[1, 1]
        m00, m10, m11 = m11_2x2(T0, A11[:, 0, 0], A11[:, 1, 0], A11[:, 1, 1])
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
    M11 = smallmat.matmul(smallmat.matmul(T0.T, A11), T0) + np.eye(q0)
    L11 = smallmat.chol(M11)
    logdet = 2.0 * float(np.log(np.diagonal(L11, axis1=1, axis2=2)).sum())
    return L11, smallmat.matmul(T0, smallmat.transpose(smallmat.inv_lower(L11))), logdet


def first_gram(
    blocks: Blocks, T0: np.ndarray, gram: Gram | None = None
) -> tuple[float, np.ndarray]:
    """log|L11|^2 and ``W_k = R_k R_k' = T0 M11_k^-1 T0'``, level last: (q0, q0, l0).

    The objective's path: it needs neither L11 nor R; for q0 <= 2 the
    closed forms work on contiguous per-entry arrays of A11, for q0 >= 3
    :func:`gram_stack`. ``gram``: :func:`gram_2x2` (q0 = 2) or
    :func:`gram_stack` (q0 >= 3) at ``T0`` when the caller has it.
    """
    q0 = blocks.q0
    if q0 == 1:
        t0 = T0[0, 0]
        m = blocks.a11_entries[0] * (t0 * t0) + 1.0
        return float(np.log(m).sum()), ((t0 * t0) / m)[None, None]
    if q0 == 2:
        det, _, (w00, w01, w11) = gram_2x2(blocks, T0) if gram is None else cast(Gram2, gram)
        W = np.empty((2, 2, len(det)))
        W[0, 0], W[0, 1], W[1, 0], W[1, 1] = w00, w01, w01, w11
        return float(np.log(det).sum()), W
    logdet, _, W = gram_stack(blocks, T0) if gram is None else cast(GramStack, gram)
    return logdet, W


def level_last(W: np.ndarray) -> np.ndarray:
    """(l, q, q) -> contiguous (q, q, l)."""
    return np.ascontiguousarray(np.moveaxis(W, 0, -1))


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


def _rest_block(blocks: Blocks, Ts: list[np.ndarray], U: np.ndarray) -> np.ndarray:
    """``Lr' (A22 - U) Lr + diag(I_mr, 0)`` for the unscaled update ``U = A21 W A21'``."""
    if not blocks.rest:
        return blocks.A22 - U
    M22 = scale_both(blocks.A22 - U, blocks, Ts)
    mr = blocks.mr
    M22[np.arange(mr), np.arange(mr)] += 1.0
    return M22


def dense_update(blocks: Blocks, W: np.ndarray) -> np.ndarray:
    """``A21 W A21'`` for dense blocks, shape (m, m); ``W`` level last (q0, q0, l0)."""
    return gram_update(blocks.a21_columns, W)


def lower_times_R(A21: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``A21 blockdiag(R_k)`` for a dense A21 (m, l0*q0) and R (l0, q0, q0)."""
    m = A21.shape[0]
    l0, q0, _ = R.shape
    A3 = A21.reshape(m, l0, q0)
    out = np.empty_like(A3)
    for r in range(q0):
        out[:, :, r] = sum(A3[:, :, a] * R[:, a, r] for a in range(q0))
    return out.reshape(m, l0 * q0)


def rest_matrix(blocks: Blocks, Ts: list[np.ndarray], W: np.ndarray) -> np.ndarray:
    """``M22 = Lr' (A22 - A21 W A21') Lr + diag(I_mr, 0)``, shape (m, m).

    For sparse blocks only the lower triangle is formed (dpotrf reads no
    more); ``W`` is level last, shape (q0, q0, l0).
    """
    if not blocks.sparse:
        return _rest_block(blocks, Ts, dense_update(blocks, W))
    d = rest_diagonal(blocks, Ts)
    schur = blocks.schur
    if isinstance(schur, GroupedSchur):  # a function of T0 (1 x 1) alone
        M22 = schur.assemble(Ts[blocks.first][0, 0], d)
    else:
        M22 = schur.assemble(W, d)
    if d is None:
        M22 = scale_both(M22 + np.tril(M22, -1).T, blocks, Ts)
    M22[np.arange(blocks.mr), np.arange(blocks.mr)] += 1.0
    return M22


def first_update(
    blocks: Blocks, T0: np.ndarray, keep: bool = False
) -> tuple[float, np.ndarray, list[Gram | None]]:
    """``log|L11|^2`` and ``U = A21 W A21'`` (m, m) for a dense A21, summed by level chunks.

    The chunks are :attr:`~mixedfx.engine.blocks.Blocks.level_chunks`. With
    ``keep``, also each chunk's :func:`gram_2x2` (q0 = 2) or
    :func:`gram_stack` (q0 >= 3; None for q0 = 1), which the gradient's
    second pass over the chunks reads.
    """
    logdet, U, grams = 0.0, np.zeros((blocks.m, blocks.m)), []
    for chunk in blocks.level_chunks:
        gram = first_grams(chunk, T0)
        if chunk.q0 == 2:  # W's entries as they are: gram_update reads W[a][b]
            det, _, (w00, w01, w11) = cast(Gram2, gram)
            logdet += sum_log(det)
            U += gram_update(chunk.a21_columns, ((w00, w01), (w01, w11)))
        else:
            part, W = first_gram(chunk, T0, gram)
            logdet += part
            U += dense_update(chunk, W)
        grams.append(gram if keep else None)
    return logdet, U, grams


def sum_log(x: np.ndarray) -> float:
    """``sum(log(x))`` for positive x (n,), as the logs of products of pairs.

    ``log`` costs several times a product, and these are the
    determinants of ``M11_k`` (at least 1, and far from overflow in the
    standardized coordinates); where a product overflows, the logs one by one.
    """
    half = len(x) // 2
    pairs = x[:half] * x[half : 2 * half]
    total = float(np.log(pairs).sum()) + (float(np.log(x[-1])) if len(x) % 2 else 0.0)
    return total if np.isfinite(total) else float(np.log(x).sum())


def objective_parts(blocks: Blocks, Ts: list[np.ndarray]) -> tuple[float, float, float]:
    """``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2``, without forming L11, R or L21.

    Raises
    ------
    numpy.linalg.LinAlgError
        When L22 is not positive definite.
    """
    if not blocks.sparse:
        logdet11, U, _ = first_update(blocks, Ts[blocks.first])
        return logdets(blocks, cholesky(_rest_block(blocks, Ts, U), clean=False), logdet11)
    logdet11, W = first_gram(blocks, Ts[blocks.first])
    return logdets(blocks, cholesky(rest_matrix(blocks, Ts, W), clean=False), logdet11)


def logdets(blocks: Blocks, L22: np.ndarray, logdet11: float) -> tuple[float, float, float]:
    """``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2`` from L22 and ``log|L11|^2``."""
    mr, p = blocks.mr, blocks.p
    logd = 2.0 * np.log(L22.diagonal())
    last = float(L22[-1, -1])
    return logdet11 + float(logd[:mr].sum()), float(logd[mr : mr + p].sum()), last * last


def factorize(blocks: Blocks, Ts: list[np.ndarray]) -> BlockedCholesky:
    """Factor the scaled system at the relative covariance factors ``Ts``.

    Raises
    ------
    numpy.linalg.LinAlgError
        When L22 is not positive definite (an X that is numerically rank
        deficient; the Z part carries + I and is always positive definite).
    """
    L11, R, logdet11 = _first_block(blocks, Ts[blocks.first])
    M22 = rest_matrix(blocks, Ts, level_last(smallmat.gram(R)))
    return BlockedCholesky(blocks, Ts, L11, R, cholesky(M22), logdet11)
