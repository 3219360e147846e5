"""Solutions of the mixed-model equations from the blocked factor.

With ``L_M`` the factor without the y row and ``l`` the y row of ``L``, the
penalized least-squares solution ``s = [u; beta]`` solves ``L_M' s = l``
(back substitution through L22, then L11 per level). The random effects are
``b = Lambda u`` and their conditional covariance (parameters at their
estimates, as lme4's ``condVar``) is ``sigma^2 Lambda (L_Z L_Z')^-1 Lambda'``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import smallmat
from .blocks import Blocks
from .cholesky import BlockedCholesky, lambda_rest_sparse, rest_diagonal, scale_both
from .gradient import schur_adjoint
from .grouped import GroupedSchur, level_forms
from .linalg import inverse_from_cholesky, inverse_lower, solve_lower


def split_rest(blocks: Blocks, vec: np.ndarray) -> dict[int, np.ndarray]:
    """Cut a vector over the rest's random effects (at least mr long) into (l_t, q_t) arrays.

    Keyed by each rest term's index in the design's term list.
    """
    return {
        t.term: vec[t.offset : t.offset + t.nlevels * t.q].reshape(t.nlevels, t.q)
        for t in blocks.rest
    }


def modes(f: BlockedCholesky) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Fixed effects and conditional modes.

    Returns
    -------
    beta : ndarray, shape (p,)
    u : list per design term of ndarray, shape (l_t, q_t)
        Spherical random effects.
    b : list per design term of ndarray, shape (l_t, q_t)
        Random effects ``b = T u`` per level.
    """
    bl = f.blocks
    L22 = f.L22
    if L22.shape[0] > 1:
        x2 = solve_lower(L22[:-1, :-1], L22[-1, :-1], transpose=True)
    else:
        x2 = np.zeros(0)
    mr = bl.mr
    beta = x2[mr:]
    rhs = f.L21_transpose_times(np.concatenate([-x2, [1.0]]))  # l - L21m' x2, per level
    Linv = smallmat.inv_lower(f.L11)
    u0 = np.einsum("lji,lj->li", Linv, rhs)  # L11^-T rhs per level
    us = split_rest(bl, x2[:mr])
    us[bl.first] = u0
    u = [us[t] for t in range(len(f.Ts))]
    b = [ut @ T.T for ut, T in zip(u, f.Ts, strict=True)]
    return beta, u, b


def condcov(f: BlockedCholesky, sigma: float) -> list[np.ndarray]:
    """Conditional covariance of each level's random effects.

    With ``M = L_Z L_Z'`` the Z block of the scaled system, split into the
    first term's ``M11 = L11 L11'`` and the rest, ``S = L22z L22z'`` (the
    Schur complement) and ``B = Lr' A21z T0``, block inversion gives::

        (M^-1)_rest = S^-1
        (M^-1)_kk   = M11_k^-1 + M11_k^-1 T0' (a_k' G a_k) T0 M11_k^-1,  G = Lr S^-1 Lr'

    where ``a_k' G a_k`` is the adjoint of the Schur update
    (:func:`~mixedfx.engine.gradient.schur_adjoint`): one inverse of the
    (mr, mr) factor and one pass over the pattern, never a product with
    every column of L21. Levels grouped by their A11
    (:class:`~mixedfx.engine.grouped.GroupedSchur`), whose adjoint holds
    group totals only, take ``(Lr' a_k)' S^-1 (Lr' a_k)`` level by level
    (:func:`~mixedfx.engine.grouped.level_forms`).

    Returns
    -------
    list per design term of ndarray, shape (l_t, q_t, q_t)
        ``sigma^2 T (M^-1)_kk T'``.
    """
    bl = f.blocks
    mr, m = bl.mr, bl.m
    L11inv = smallmat.inv_lower(f.L11)  # (l0, q0, q0)
    Minv = smallmat.matmul(smallmat.transpose(L11inv), L11inv)  # M11_k^-1
    out: dict[int, np.ndarray] = {bl.first: Minv}
    if mr:
        Sinv = np.zeros((m, m))
        Sinv[:mr, :mr] = inverse_from_cholesky(f.L22[:mr, :mr])
        for t in bl.rest:
            rows = slice(t.offset, t.offset + t.nlevels * t.q)
            block = Sinv[rows, rows].reshape(t.nlevels, t.q, t.nlevels, t.q)
            out[t.term] = np.einsum("lalb->lab", block)
        if bl.sparse and isinstance(bl.schur, GroupedSchur):  # q0 = 1
            A, d = bl.schur.columns, rest_diagonal(bl, f.Ts)
            if d is None:  # Lr' A21
                A, d = sp.csc_matrix(lambda_rest_sparse(bl, f.Ts) @ A), np.ones(m)
                A.sort_indices()
            K = level_forms(A, d, f.L22[:mr, :mr], Sinv)[:, None, None]
        else:
            G = scale_both(Sinv, bl, [T.T for T in f.Ts])  # Lr S^-1 Lr'
            K = np.moveaxis(schur_adjoint(bl, G), -1, 0)  # a_k' G a_k, (l0, q0, q0)
        T0 = f.Ts[bl.first]
        MT = smallmat.matmul(Minv, T0.T)
        out[bl.first] = Minv + smallmat.matmul(smallmat.matmul(MT, K), smallmat.transpose(MT))
    mm, tr = smallmat.matmul, smallmat.transpose
    return [sigma**2 * mm(mm(T, out[k]), tr(T)) for k, T in enumerate(f.Ts)]


def vcov_beta(f: BlockedCholesky, sigma: float) -> np.ndarray:
    """Covariance of the fixed effects, ``sigma^2 (L_X L_X')^-1``, shape (p, p)."""
    bl = f.blocks
    LX = f.L22[bl.mr : bl.mr + bl.p, bl.mr : bl.mr + bl.p]
    inv = inverse_lower(LX)
    return sigma**2 * (inv.T @ inv)
