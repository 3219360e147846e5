"""The average information: a positive semidefinite Hessian of the profiled objective.

With ``W(theta) = I + Z Lambda Lambda' Z'`` (the rows' covariance over
``sigma^2``), ``P = W^-1 - W^-1 X (X' W^-1 X)^-1 X' W^-1``, ``e = P y`` (the
penalized residual), ``q = e' W e = r^2`` and ``N = n - p`` (REML) or ``n``
(ML), the profiled objective is ``log|W| (+ log|X' W^-1 X|) + N log q`` plus
constants. Its Hessian has a part that needs traces of products of
``(n, n)`` matrices, ``tr(P W_k P W_l)`` with ``W_k = dW/dtheta_k``. Replacing
every such trace by its value in expectation, ``(N / q) y' P W_k P W_l P y``
(the average-information matrix of AI-REML, Gilmour, Thompson and Cullis
1995, carried to the profiled objective in lme4's theta), leaves::

    H_kl = (N / q) (v_k' P v_l - c_k c_l / q),   v_k = W_k e,   c_k = e' W_k e

where the terms in ``d^2 W / dtheta_k dtheta_l`` cancel. ``H`` is ``N / q``
times a Gram matrix in P's metric with the direction of ``e`` projected out,
so it is positive semidefinite everywhere, where the true Hessian is
indefinite far from the optimum (InstEval at lme4's start: every diagonal
negative). At an interior optimum the replaced traces equal their
expectations' estimates (the first-order conditions), and ``H`` agrees with
the Hessian to O(p / n) for ML and to the sampling noise of ``y' P W_k P W_l
P y``: 0.1 to 3 % on InstEval and sleepstudy. Newton steps on it (Fisher
scoring, :mod:`mixedfx.engine.scoring`) reach the optimum in 6 to 9
factorizations where L-BFGS-B took 16 to 27.

Everything lives in the column space of ``c = [Z X y]``, so it is computed
from the cross-products ``A = c' c`` (:mod:`mixedfx.engine.blocks`) and the
factor: ``e = c eps`` with ``eps = [-b; -beta; 1]``, ``z = Z' e``,
``v_k = Z a_k`` with ``a_k = (Lambda_k Lambda' + Lambda Lambda_k') z = Lambda_k u
+ Lambda Lambda_k' z`` (``u`` the spherical modes, ``Lambda' z = u``), and::

    v_k' P v_l = alpha_k' A alpha_l - s_k' Omega^-1 s_l,   s_k = Lam' (A alpha_k)

with ``alpha_k = [a_k; 0; 0]`` and ``Omega`` the scaled system without its y
row, whose inverse is applied by blocks: the first term's levels by
``M11_k^-1`` and the rest through the Schur factor ``L22``. The cost is one
pass over the cross-products and one triangular solve with ``L22`` for
``k + 1`` right-hand sides.

The terms left out, those in ``d^2 W``, are known exactly from the gradient
(:func:`covariance_curvature`); the optimizer adds their positive part
(:meth:`mixedfx.engine.objective.Objective.value_gradient_information`), so
that a variance heading for 0 keeps the curvature the information lacks.
"""

from __future__ import annotations

import functools

import numpy as np

from . import smallmat
from .blocks import Blocks
from .cholesky import gram_stack, scale_rows
from .layout import ThetaLayout
from .linalg import solve_lower
from .solve import split_rest


def average_information(
    blocks: Blocks, layout: ThetaLayout, Ts: list[np.ndarray], reml: bool, L22: np.ndarray
) -> np.ndarray:
    """The average-information matrix ``H`` at theta (module docstring), shape (k, k).

    Parameters
    ----------
    blocks : Blocks
    layout : ThetaLayout
    Ts : list of ndarray, (q_t, q_t)
        Every design term's relative covariance factor at theta.
    reml : bool
    L22 : ndarray, shape (m, m)
        The Schur factor at theta (:mod:`mixedfx.engine.cholesky`); only its
        lower triangle is read, and it is not changed.
    """
    bl = blocks
    T0 = Ts[bl.first]
    Minv = _first_inverse(bl, T0)  # (l0, q0, q0)
    u, beta = _modes(bl, Ts, T0, Minv, L22)
    b = [ut @ T.T for ut, T in zip(u, Ts, strict=True)]
    e1, e2 = _split(bl, [-x for x in b], -beta, 1.0)
    z1, z2 = _times_A(bl, e1[None], e2[None])
    z = _by_term(bl, z1[0], z2[0])
    a1, a2, c = _directions(bl, layout, Ts, u, z)
    Aa1, Aa2 = _times_A(bl, a1, a2)
    k = len(a1)
    gram = a1.reshape(k, -1) @ Aa1.reshape(k, -1).T + a2 @ Aa2.T  # alpha_k' A alpha_l
    s1 = Aa1 @ T0  # T0' (A alpha)_1, per level
    s2 = np.stack([scale_rows(x[:, None], bl, Ts)[:, 0] for x in Aa2])  # Lr' (A alpha)_2
    s2[:, -1] = 0.0  # Omega has no y row: with 0 there L22's first m - 1 rows solve as L22_M's
    t1 = _per_level(Minv, s1)  # M11^-1 s_1
    first = s1.reshape(k, -1) @ t1.reshape(k, -1).T
    cross = _times_A21(bl, t1 @ T0.T)  # A21 T0 M11^-1 s_1
    rest = s2 - np.stack([scale_rows(x[:, None], bl, Ts)[:, 0] for x in cross])
    rest[:, -1] = 0.0
    y = solve_lower(L22, np.ascontiguousarray(rest.T))[:-1]  # L22_M^-1 rest_M, (m - 1, k)
    inner = gram - first - y.T @ y  # v_k' P v_l
    q = float(L22[-1, -1]) ** 2
    N = bl.n - bl.p if reml else bl.n
    H = (N / q) * (inner - np.outer(c, c) / q)
    return 0.5 * (H + H.T)


def covariance_curvature(layout: ThetaLayout, Ts: list[np.ndarray], g: np.ndarray) -> np.ndarray:
    """The Hessian's terms in ``d^2 W / dtheta_k dtheta_l``, exactly, from the gradient (k, k).

    ``W`` is quadratic in theta (``Sigma_t = T_t T_t'`` per term), and these
    terms are the objective's derivative along ``d^2 W``: with ``G_t =
    df/dSigma_t`` (symmetric), ``S_kl = 2 G_t[r_k, r_l]`` where theta_k and
    theta_l sit in one column ``c`` of one diagonal block of ``T_t`` (at rows
    ``r_k``, ``r_l``), else 0. The gradient is ``df/dT_t = 2 G_t T_t``, whose
    lower triangle within a block (the block's theta) determines the
    block's ``G`` when its ``T`` is not singular: a triangular system,
    solved here as a small dense one. A block with a diagonal at 0
    contributes nothing (its theta is held at the bound or leaves it along
    the gradient).

    The average information leaves these terms out: at an interior optimum
    they vanish with the gradient, but where a variance heads for 0 they
    carry the curvature of an objective even in its diagonal (``g_k /
    theta_k`` for a scalar term) that the information lacks.
    """
    S = np.zeros((len(g), len(g)))
    for t, ((rows, cols), sl) in enumerate(zip(layout.index, layout.slices, strict=True)):
        start = 0
        for size in layout.blocks[t]:
            idx = np.flatnonzero((rows >= start) & (rows < start + size))
            at = sl.start + idx
            T = Ts[t][start : start + size, start : start + size]
            if size == 1:  # 2 G t = g: S = 2 G = g / t
                if T[0, 0] != 0.0:
                    S[at, at] = g[at] / T[0, 0]
            elif np.all(np.diag(T) != 0.0):
                r, c = rows[idx] - start, cols[idx] - start
                G = _block_gradient(T, r, c, g[at])
                same = c[:, None] == c[None, :]
                S[np.ix_(at, at)] = np.where(same, 2.0 * G[r[:, None], r[None, :]], 0.0)
            start += size
    return S


@functools.cache
def _symmetric_basis(b: int) -> np.ndarray:
    """The basis ``E_ij + E_ji`` (i >= j, lower triangle in row order) of symmetric (b, b)."""
    iu, ju = np.tril_indices(b)
    basis = np.zeros((len(iu), b, b))
    basis[np.arange(len(iu)), iu, ju] = 1.0
    basis[np.arange(len(iu)), ju, iu] = 1.0
    basis.setflags(write=False)
    return basis


def _block_gradient(
    T: np.ndarray, rows: np.ndarray, cols: np.ndarray, gT: np.ndarray
) -> np.ndarray:
    """Symmetric ``G`` (b, b) with ``(2 G T)[rows, cols] = gT`` over T's lower triangle."""
    basis = _symmetric_basis(len(T))
    system = 2.0 * np.matmul(basis, T)[:, rows, cols].T  # column i: (2 B_i T)[rows, cols]
    vech = np.linalg.solve(system, gT)
    return np.einsum("i,iab->ab", vech, basis)


def _first_inverse(bl: Blocks, T0: np.ndarray) -> np.ndarray:
    """``M11_k^-1 = (T0' A11_k T0 + I)^-1`` per level of the first term, (l0, q0, q0).

    q0 >= 3 by :func:`~mixedfx.engine.cholesky.gram_stack` (level last,
    turned level first); q0 <= 2 by :mod:`~mixedfx.engine.smallmat`'s closed forms.
    """
    if bl.q0 > 2:
        return np.ascontiguousarray(np.moveaxis(gram_stack(bl, T0)[1], -1, 0))
    M = smallmat.matmul(smallmat.matmul(T0.T[None], bl.A11), T0[None])
    M[:, np.arange(bl.q0), np.arange(bl.q0)] += 1.0
    K = smallmat.inv_lower(smallmat.chol(M))
    return smallmat.matmul(smallmat.transpose(K), K)


def _modes(
    bl: Blocks, Ts: list[np.ndarray], T0: np.ndarray, Minv: np.ndarray, L22: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Spherical modes ``u`` per design term (l_t, q_t) and ``beta`` (p,) from ``L22``.

    As :func:`mixedfx.engine.solve.modes`: ``L22_M' x2 = l`` by back
    substitution (a 0 appended for the y row keeps ``L22`` whole), then
    ``u0_k = M11_k^-1 T0' a_k' Lr [-x2; 1]``.
    """
    rhs = L22[-1].copy()
    rhs[-1] = 0.0
    x2 = solve_lower(L22, rhs, transpose=True)
    x2[-1] = 1.0
    x2[:-1] *= -1.0
    Lx = scale_rows(x2[:, None], bl, [T.T for T in Ts])[:, 0]  # Lr [-x2; 1]
    y = np.asarray(bl.A21.T @ Lx).reshape(bl.l0, bl.q0)
    u0 = _per_level(Minv, (y @ T0)[None])[0]
    us = split_rest(bl, -x2)
    us[bl.first] = u0
    return [us[t] for t in range(len(Ts))], -x2[bl.mr : bl.mr + bl.p]


def _split(
    bl: Blocks, per_term: list[np.ndarray], beta: np.ndarray, y: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-term level vectors, beta and a y entry as the blocks' two parts, (l0, q0) and (m,)."""
    second = np.zeros(bl.m)
    for t in bl.rest:
        second[t.offset : t.offset + t.nlevels * t.q] = per_term[t.term].reshape(-1)
    second[bl.mr : bl.mr + bl.p] = beta
    second[-1] = y
    return per_term[bl.first], second


def _by_term(bl: Blocks, first: np.ndarray, second: np.ndarray) -> list[np.ndarray]:
    """The random-effect parts of the blocks' two parts, per design term, (l_t, q_t)."""
    out = split_rest(bl, second)
    out[bl.first] = first
    return [out[t] for t in range(len(out))]


def _per_level(M: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``M_l x_kl`` for every level and vector: (l, q, q) and (k, l, q) -> (k, l, q).

    A loop over the q columns of whole-array products (einsum's generic
    loops took 20 times as long over 125,000 levels).
    """
    out = M[None, :, :, 0] * x[:, :, 0, None]
    for b in range(1, M.shape[-1]):
        out += M[None, :, :, b] * x[:, :, b, None]
    return out


def _times_A21(bl: Blocks, x1: np.ndarray) -> np.ndarray:
    """``A21 x`` for k vectors on the first term's levels, (k, l0, q0) -> (k, m)."""
    flat = x1.reshape(len(x1), -1).T
    return np.asarray(bl.A21 @ flat).T


def _times_A(bl: Blocks, x1: np.ndarray, x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A x`` for k vectors in the blocks' two parts: (k, l0, q0), (k, m) -> same shapes."""
    k = len(x1)
    o1 = _per_level(bl.A11, x1)
    o1 += np.asarray(bl.A21.T @ x2.T).T.reshape(k, bl.l0, bl.q0)
    o2 = _times_A21(bl, x1) + x2 @ bl.A22
    return o1, o2


def _directions(
    bl: Blocks, layout: ThetaLayout, Ts: list[np.ndarray], u: list[np.ndarray],
    z: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """``alpha_k`` in the blocks' two parts, (k, l0, q0) and (k, m), and ``c_k = z' a_k``.

    For theta_k at ``T_t[r, c]``, ``a_k`` lives on term t's levels: level
    ``j`` holds ``u_j[c] e_r + z_j[r] T_t[:, c]``.
    """
    k = layout.ntheta
    a1, a2, c = np.zeros((k, bl.l0, bl.q0)), np.zeros((k, bl.m)), np.zeros(k)
    where = {t.term: t for t in bl.rest}
    for t, ((rows, cols), sl) in enumerate(zip(layout.index, layout.slices, strict=True)):
        # all of term t's directions at once: (n_t, levels, q_t)
        a = z[t].T[rows][:, :, None] * Ts[t][:, cols].T[:, None, :]
        a[np.arange(len(rows)), :, rows] += u[t].T[cols]
        c[sl] = np.einsum("lq,klq->k", z[t], a)
        if t == bl.first:
            a1[sl] = a
        else:
            rt = where[t]
            a2[sl, rt.offset : rt.offset + rt.nlevels * rt.q] = a.reshape(len(rows), -1)
    return a1, a2, c


def positive_part(S: np.ndarray) -> np.ndarray:
    """The positive semidefinite part of a symmetric ``S``: negative eigenvalues set to 0."""
    if not S.any():
        return S
    w, V = np.linalg.eigh(0.5 * (S + S.T))
    return (V * np.maximum(w, 0.0)) @ V.T
