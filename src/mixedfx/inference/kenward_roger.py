"""Kenward-Roger's adjusted covariance of the fixed effects and denominator df (pbkrtest).

The marginal covariance is ``Sigma = sum_r gamma_r G_r`` over the covariance
parameters ``gamma`` (each term's variances and covariances, then sigma^2),
with ``G_r = Z E_r Z'`` (``E_r`` the pattern of gamma_r in every level's
block) and ``G = I`` for sigma^2. pbkrtest forms Sigma (n x n); here every
product is carried in the coefficient space of ``[Z X]``: with
``V = Sigma / sigma^2 = I + Z Lambda Lambda' Z'`` and
``M = Lambda' Z'Z Lambda + I``::

    V^-1 [Z X] S = [Z X] R S,     R = I - J Lambda M^-1 Lambda' Z'[Z X]
    G_r [Z X] S  = [Z X] J E_r Z'[Z X] S

so with ``C = [Z X]'[Z X]`` (from the model's blocks) all of pbkrtest's
quantities are (q + p)-square products::

    P_r  = -X' Sigma^-1 G_r Sigma^-1 X
    Q_rs = X' Sigma^-1 G_r Sigma^-1 G_s Sigma^-1 X
    K_rs = tr(G_r Sigma^-1 G_s Sigma^-1)

then (Kenward and Roger 1997; pbkrtest's ``vcovAdj`` and ``Lb_ddf``)::

    I_rs = K_rs - 2 <Phi, Q_rs> + <Phi P_r, P_s Phi>,   W = 2 I^-1
    U    = sum_rs W_rs (Q_rs - P_r Phi P_s),             Phi_A = Phi + 2 Phi U Phi

with ``Phi`` the REML covariance of beta-hat. Memory is ``(q + p)^2`` per
parameter: fine for thousands of random effects, not for millions.

Everything is computed in the fit's standardized coordinates
(:mod:`mixedfx.engine.standard`: its blocks, theta and sigma), where a
shifted or rescaled column does not cancel, and mapped back: with
``beta = A beta_s + c v_X`` (``A = s G_X``), ``Phi = A Phi_s A'``,
``Phi_A = A Phi_A,s A'`` and ``P_r = A^-T P_r,s A^-1``. The covariance
parameters stay the standardized ones (``gamma`` of ``Sigma / s^2``), a
linear reparameterisation of the user's, which the method does not see:
``W`` and ``P`` only enter through contractions over them, so ``Phi_A`` and
every df are the user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..engine import solve
from ..engine.blocks import Blocks
from ..engine.crossprod import dense_A, lambda_matrix, term_columns
from ..engine.layout import ThetaLayout
from ..engine.objective import Objective
from .varpar import cached, fit_objective

if TYPE_CHECKING:
    from ..model import LinearMixedModel


@dataclass(frozen=True)
class KenwardRoger:
    """The adjusted covariance and the pieces its df need.

    Attributes
    ----------
    phi : ndarray, shape (p, p)
        The unadjusted covariance of beta-hat.
    phi_adj : ndarray, shape (p, p)
    P : list of ndarray, shape (p, p)
        One per covariance parameter (the standardized ones; see the module docstring).
    W : ndarray, shape (g, g)
        Twice the inverse expected information of those covariance parameters.
    """

    phi: np.ndarray
    phi_adj: np.ndarray
    P: list[np.ndarray]
    W: np.ndarray


def patterns(bl: Blocks, layout: ThetaLayout) -> list[sp.csr_matrix]:
    """``E_r`` (q, q) for every variance and covariance of every term, in engine order."""
    q = bl.l0 * bl.q0 + bl.mr
    out = []
    for t, (start, nlev, qt) in term_columns(bl).items():
        rows, cols = layout.index[t]
        for i, j in zip(rows, cols, strict=True):
            small = np.zeros((qt, qt))
            small[i, j] = small[j, i] = 1.0
            block = sp.kron(sp.identity(nlev, format="csr"), sp.csr_matrix(small), format="csr")
            full = sp.lil_matrix((q, q))
            full[start : start + nlev * qt, start : start + nlev * qt] = block
            out.append(full.tocsr())
    return out


def kenward_roger(model: LinearMixedModel) -> KenwardRoger:
    """pbkrtest's ``vcovAdj`` for a REML fit, of the user's beta (cached); see the module doc.

    Raises
    ------
    ValueError
        For an ML fit (as lmerTest: Kenward-Roger's method assumes REML).
    """
    kr, A, A_inv = standardized(model)
    return cached(
        model,
        "kenward_roger",
        lambda: KenwardRoger(
            A @ kr.phi @ A.T, A @ kr.phi_adj @ A.T, [A_inv.T @ P @ A_inv for P in kr.P], kr.W
        ),
    )


def standardized(model: LinearMixedModel) -> tuple[KenwardRoger, np.ndarray, np.ndarray]:
    """:func:`_compute` in the fit's standardized coordinates, ``A`` and ``A^-1`` (cached).

    ``beta = A beta_s + c v_X`` with ``A = s G_X`` (p, p), its inverse in closed form.

    Raises
    ------
    ValueError
        For an ML fit.
    """
    if not model.reml:
        raise ValueError(
            "Kenward-Roger's method is only available for REML fits; fit with reml=True "
            "or use ddf='satterthwaite'"
        )
    fit_objective(model)  # refuses a conditioned model

    def compute() -> tuple[KenwardRoger, np.ndarray, np.ndarray]:
        std, layout = model.standardized, model.spec.layout
        coords = std.coords
        f = Objective(model.blocks, layout, model.reml).factorize(std.theta)
        phi = solve.vcov_beta(f, std.sigma)
        kr = _compute(model.blocks, layout, layout.Ts(std.theta), std.sigma, phi)
        s, xy = coords.y_scale, coords.xy
        return kr, s * xy.matrix()[:-1, :-1], xy.inverse()[:-1, :-1] / s

    return cached(model, "kenward_roger_standardized", compute)


def _compute(
    bl: Blocks, layout: ThetaLayout, Ts: list[np.ndarray], sigma: float, phi: np.ndarray
) -> KenwardRoger:
    """pbkrtest's pieces from the blocks, the factors ``T_t``, sigma and ``Phi`` (one system)."""
    q, p, s2 = bl.l0 * bl.q0 + bl.mr, bl.p, sigma**2
    C = dense_A(bl)[:-1, :-1]
    Lam = lambda_matrix(bl, Ts).toarray()
    CZ = C[:q]
    M = Lam.T @ CZ[:, :q] @ Lam + np.eye(q)
    Minv = np.linalg.inv(M)
    R = np.eye(q + p)
    R[:q] -= Lam @ Minv @ (Lam.T @ CZ)
    Sx = R[:, q:] / s2  # Sigma^-1 X in [Z X] coefficients
    RJ = R[:, :q]
    Qz = CZ @ RJ  # Z' V^-1 Z
    Qz2 = RJ.T @ C @ RJ  # Z' V^-2 Z
    Es = patterns(bl, layout)
    ops: list[sp.csr_matrix | None] = [*Es, None]  # None: sigma^2, G = I

    def apply(E: sp.csr_matrix | None, S: np.ndarray) -> np.ndarray:
        """``G_r [Z X] S`` in coefficients."""
        if E is None:
            return S
        out = np.zeros_like(S)
        out[:q] = E @ (CZ @ S)
        return out

    GS = [apply(E, Sx) for E in ops]  # G_r Sigma^-1 X
    P = [-(g.T @ C @ Sx) for g in GS]
    P = [0.5 * (x + x.T) for x in P]
    ng = len(ops)
    Q = {}
    K = np.empty((ng, ng))
    trB = q - np.trace(Minv)
    trB2 = np.trace((np.eye(q) - Minv) @ (np.eye(q) - Minv))
    for r in range(ng):
        for s in range(r, ng):
            Q[r, s] = GS[r].T @ C @ (R @ GS[s]) / s2
            Er, Es_ = ops[r], ops[s]
            if Er is not None and Es_ is not None:
                k = np.sum((Er @ Qz).T * (Es_ @ Qz))
            elif Er is None and Es_ is None:
                k = bl.n - 2.0 * trB + trB2
            else:
                E = Es_ if Er is None else Er
                assert E is not None
                k = E.multiply(Qz2).sum()
            K[r, s] = K[s, r] = k / (s2 * s2)
    info = np.empty((ng, ng))
    for r in range(ng):
        phiP = phi @ P[r]
        for s in range(r, ng):
            info[r, s] = info[s, r] = (
                K[r, s] - 2.0 * np.sum(phi * Q[r, s]) + np.sum(phiP * (P[s] @ phi))
            )
    small = np.min(np.abs(np.linalg.eigvalsh(info))) <= 1e-10
    W = 2.0 * (np.linalg.pinv(info) if small else np.linalg.inv(info))
    W = 0.5 * (W + W.T)
    U = np.zeros((p, p))
    for r in range(ng):
        for s in range(r + 1, ng):
            U += W[r, s] * (Q[r, s] - P[r] @ phi @ P[s])
    U = U + U.T
    for r in range(ng):
        U += W[r, r] * (Q[r, r] - P[r] @ phi @ P[r])
    return KenwardRoger(phi, phi + 2.0 * phi @ U @ phi, P, W)


def kenward_roger_df(model: LinearMixedModel, L: np.ndarray) -> np.ndarray:
    """Kenward-Roger df of each single-row contrast of ``L`` (pbkrtest's ``Lb_ddf``).

    Parameters
    ----------
    L : ndarray, shape (r, p)

    Returns
    -------
    ndarray, shape (r,)
    """
    kr, A, _ = standardized(model)  # a contrast L of beta is the contrast L A of beta_s
    L_s = np.atleast_2d(np.asarray(L, dtype=float)) @ A
    return np.array([_lb_ddf(np.atleast_2d(row), kr) for row in L_s])


def _lb_ddf(L: np.ndarray, kr: KenwardRoger) -> float:
    """pbkrtest's ``Lb_ddf`` for a contrast matrix ``L`` (q, p)."""
    V0 = kr.phi
    Theta = L.T @ np.linalg.solve(L @ V0 @ L.T, L)
    ThetaV0 = Theta @ V0
    A1 = A2 = 0.0
    ng = len(kr.P)
    for i in range(ng):
        ui = ThetaV0 @ kr.P[i] @ V0
        for j in range(i, ng):
            e = 1.0 if i == j else 2.0
            uj = ThetaV0 @ kr.P[j] @ V0
            A1 += e * kr.W[i, j] * np.trace(ui) * np.trace(uj)
            A2 += e * kr.W[i, j] * np.sum(ui * uj.T)
    q = L.shape[0]
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denom = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
    V0_ = 1.0 + c1 * B
    V1 = 1.0 - c2 * B
    V2 = 1.0 - c3 * B
    V0_ = 0.0 if abs(V0_) < 1e-10 else V0_
    x, y = 1.0 - A2 / q, V1
    ratio = 1.0 if abs(x) < 1e-14 and abs(y) < 1e-14 else x / y
    rho = ratio**2 * V0_ / (q * V2)
    return float(4.0 + (q + 2) / (q * rho - 1.0))
