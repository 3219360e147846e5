"""The GLMM deviance ``-2 log L(theta, beta)``: Laplace and adaptive Gauss-Hermite.

With ``u*`` the conditional mode at ``(theta, beta)`` (:mod:`mixedfx.engine.pirls`)
and ``L_Z`` the Cholesky factor of ``Lambda'Z'W Z Lambda + I`` at the mode's
working weights ``W``, the Laplace approximation of the marginal deviance is
(lme4's ``glmerLaplace``)::

    -2 log L ~ sum_i d_i(mu*) + ||u*||^2 + log|L_Z|^2 + D_sat

where ``d_i`` are the deviance residuals and ``D_sat`` is ``-2`` times the
saturated model's log-likelihood (a constant; with it, the first term
and ``D_sat`` make ``-2 log p(y | u*)``). For a single scalar random-effects
term the integral factors over the levels ``k``, and adaptive Gauss-Hermite
quadrature with ``K`` nodes ``z_j`` and weights ``w_j`` of the standard
normal, centred at the mode with scale ``s_k = 1 / L_kk`` (lme4's
``glmerAGQ``), gives::

    -2 log L ~ sum_k [ c_k(u*_k) - 2 log s_k - 2 log A_k ] + D_sat,
    A_k = sum_j w_j exp(z_j^2 / 2 - (c_k(u*_k + z_j s_k) - c_k(u*_k)) / 2)

with ``c_k(u) = u^2 + sum of the level's deviance residuals at u``. K = 1 is
the Laplace approximation. lme4 reports the AGQ value without ``D_sat``;
here every deviance includes it, so values for different K are comparable.

The joint objective of lme4's first stage (nAGQ = 0) profiles beta into the
mode instead: ``pdev(u*, beta*) + log|L_Z|^2 + D_sat`` with ``(u*, beta*)``
from joint PIRLS, a function of theta alone.
"""

from __future__ import annotations

import math

import numpy as np

from .layout import ThetaLayout
from .pirls import GlmRows, Mode, pirls


def quadrature(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density, each shape (k,).

    ``sum_j w_j f(z_j) ~ E f(Z)`` for ``Z ~ N(0, 1)``; the weights sum to 1
    (lme4's ``GHrule``).
    """
    z, w = np.polynomial.hermite_e.hermegauss(k)
    return z, w / math.sqrt(2.0 * math.pi)


class Deviance:
    """``-2 log L`` as a function of the parameters, with PIRLS inside.

    Parameters
    ----------
    rows : GlmRows
    layout
        The design's theta layout (``Ts(theta)`` gives the factors).
    nagq : int
        1 for the Laplace approximation; K > 1 for adaptive Gauss-Hermite
        with K nodes (a single scalar random-effects term only).
    """

    def __init__(self, rows: GlmRows, layout: ThetaLayout, nagq: int = 1) -> None:
        if nagq < 1:
            raise ValueError(f"nAGQ must be at least 1, got {nagq}")
        if nagq > 1 and (len(rows.M) != 1 or rows.M[0].shape[1] != 1):
            raise ValueError(
                "nAGQ > 1 needs a single scalar random-effects term such as (1 | g); "
                "use nAGQ=1 (Laplace) for this model"
            )
        self.rows = rows
        self.layout = layout
        self.nagq = nagq
        self.saturated = rows.family.saturated(rows.y, rows.weights, rows.trials)
        self.nodes = quadrature(nagq) if nagq > 1 else None
        self.start_u: list[np.ndarray] | None = None
        self.joint_start: Mode | None = None
        self.joint_eta0: np.ndarray | None = None
        self.nevals = 0

    def mode(self, theta: np.ndarray, beta: np.ndarray) -> Mode:
        """The conditional mode at ``(theta, beta)``, from the last mode found (warm start).

        PIRLS converges to 1e-10 in the linear predictor from any start, so
        the deviance does not depend on the order of evaluations beyond
        rounding (~1e-12).
        """
        m = pirls(self.rows, self.layout.Ts(theta), beta=beta, u0=self.start_u)
        if m.converged:
            self.start_u = m.u
        return m

    def __call__(self, theta: np.ndarray, beta: np.ndarray) -> float:
        """``-2 log L`` at ``(theta, beta)``; inf where PIRLS breaks down."""
        self.nevals += 1
        try:
            m = self.mode(np.asarray(theta, dtype=float), np.asarray(beta, dtype=float))
        except np.linalg.LinAlgError:
            return math.inf
        value = self.value(m, theta)
        return value if np.isfinite(value) else math.inf

    def value(self, m: Mode, theta: np.ndarray) -> float:
        """``-2 log L`` from a mode (Laplace, or AGQ when ``nagq > 1``)."""
        if self.nodes is None:
            return m.laplace() + self.saturated
        return agq(self.rows, m, float(self.layout.Ts(theta)[0][0, 0]), *self.nodes) + (
            self.saturated
        )

    def joint(self, theta: np.ndarray, eta0: np.ndarray | None = None) -> tuple[float, Mode]:
        """The first stage's objective of theta (beta in the mode) and its mode.

        From the linear predictor ``eta0`` when given (it is kept for later
        calls while no joint mode has converged), else from the last joint
        mode found (warm start, as :meth:`mode`).
        """
        self.nevals += 1
        Ts = self.layout.Ts(np.asarray(theta, dtype=float))
        if eta0 is not None:
            self.joint_eta0 = eta0
        if eta0 is not None or self.joint_start is None:
            m = pirls(self.rows, Ts, eta0=self.joint_eta0)
        else:
            m = pirls(self.rows, Ts, u0=self.joint_start.u, beta0=self.joint_start.beta)
        if m.converged:
            self.joint_start = m
        return m.laplace() + self.saturated, m


def agq(rows: GlmRows, m: Mode, t: float, z: np.ndarray, w: np.ndarray) -> float:
    """Adaptive Gauss-Hermite ``-2 log L`` without ``D_sat`` (see module docstring).

    Parameters
    ----------
    rows : GlmRows
        With one scalar term.
    m : Mode
        The mode at the parameters (u only).
    t : float
        The term's relative standard deviation (``T`` is 1 x 1).
    z, w : ndarray, shape (K,)
        Nodes and weights of :func:`quadrature`.
    """
    codes, x = rows.codes[0], rows.M[0][:, 0]
    nl = rows.nlevels[0]
    u0 = m.u[0][:, 0]
    sd = 1.0 / m.factor.L11[:, 0, 0]
    fam = rows.family

    def per_level(eta: np.ndarray) -> np.ndarray:
        d = fam.dev_resid(rows.y, fam.linkinv(eta), rows.weights)
        return np.bincount(codes, weights=d, minlength=nl)

    c0 = u0 * u0 + per_level(m.eta)
    total = np.zeros(nl)
    for zj, wj in zip(z, w, strict=True):
        if zj == 0.0:
            total += wj
            continue
        shift = zj * sd
        c = (u0 + shift) ** 2 + per_level(m.eta + t * x * shift[codes])
        total += wj * np.exp(0.5 * zj * zj - 0.5 * (c - c0))
    return float(c0.sum() - 2.0 * np.log(sd).sum() - 2.0 * np.log(total).sum())
