"""Prediction-error variances from the mixed-model equations (Henderson).

With the parameters at their estimates, the joint prediction-error
covariance of ``(beta_hat, u_hat - u)`` (spherical effects, ``b = Lambda u``)
is ``sigma^2 C^-1`` with ``C = L_M L_M'`` the factored mixed-model-equations
matrix. For a row with fixed part ``x`` and random part ``z`` the conditional
mean ``x'beta + z'b`` has prediction-error variance::

    sigma^2 * || L_M^-1 v ||^2,    v = [Lambda'z; x]

which we evaluate blockwise, without any dense inverse of the whole system:
``w0 = L11_k^-1 T0'z0`` for the row's level ``k`` of the first term, and with
``S^-1 = (L22m L22m')^-1`` (size of the rest + p), ``a`` the rest of ``v``
and ``c = L21m_k w0``::

    ||L_M^-1 v||^2 = ||w0||^2 + a'S^-1 a - 2 a'S^-1 c + c'S^-1 c

``a`` has a handful of non-zeros per row (p fixed effects and one level per
rest term), so each row costs O(s^2) for s = p + sum of the rest's q.
"""

from __future__ import annotations

import numpy as np

from . import smallmat
from .cholesky import BlockedCholesky
from .linalg import inverse_lower

CHUNK = 20_000  # rows per vectorised batch


class PredictionError:
    """Precomputed pieces of ``C^-1`` for fast per-row variances.

    Parameters
    ----------
    f : BlockedCholesky
        The factor at the estimates (with X; the y row is ignored).
    """

    def __init__(self, f: BlockedCholesky) -> None:
        bl = f.blocks
        self.f = f
        self.L11inv = smallmat.inv_lower(f.L11)  # (l0, q0, q0)
        L22m = f.L22[:-1, :-1]
        Linv = inverse_lower(L22m)
        self.Sinv = Linv.T @ Linv  # (m-1, m-1)
        L21m = f.L21[:-1]
        if isinstance(L21m, np.ndarray):
            G = self.Sinv @ L21m
            L21d = L21m
        else:
            G = np.asarray((L21m.T @ self.Sinv).T)
            L21d = L21m.toarray()
        self.G = G.reshape(-1, bl.l0, bl.q0)  # S^-1 L21m per level, (m-1, l0, q0)
        self.H = np.einsum("mlq,mlr->lqr", L21d.reshape(-1, bl.l0, bl.q0), self.G)

    def relative_variance(
        self,
        z0: np.ndarray,
        k0: np.ndarray,
        positions: np.ndarray,
        values: np.ndarray,
    ) -> np.ndarray:
        """``||L_M^-1 v||^2`` per row (multiply by sigma^2 for the variance).

        Parameters
        ----------
        z0 : ndarray, shape (n, q0)
            ``T0'z0`` for rows whose first-term level is known and included, else 0.
        k0 : ndarray of int, shape (n,)
            That level (any valid level where z0 is 0).
        positions : ndarray of int, shape (n, s)
            Indices in ``[Zr X]`` of the non-zeros of ``a``.
        values : ndarray, shape (n, s)
            Their values (0 where unused).
        """
        out = np.empty(len(k0))
        for start in range(0, len(k0), CHUNK):
            sl = slice(start, start + CHUNK)
            k, P, V = k0[sl], positions[sl], values[sl]
            w0 = np.einsum("nqr,nr->nq", self.L11inv[k], z0[sl])
            Sg = self.Sinv[P[:, :, None], P[:, None, :]]
            quad_a = np.einsum("ns,nst,nt->n", V, Sg, V)
            Gk = self.G[P, k[:, None], :]  # (n, s, q0)
            cross = np.einsum("ns,nsq,nq->n", V, Gk, w0)
            quad_c = np.einsum("nq,nqr,nr->n", w0, self.H[k], w0)
            out[sl] = (w0 * w0).sum(axis=1) + quad_a - 2.0 * cross + quad_c
        return out
