"""Minimise the GLMM deviance over theta and beta in two stages, as lme4's ``glmer``.

1. **nAGQ = 0 stage.** From the family's starting means, joint PIRLS at
   lme4's starting theta gives a starting linear predictor; theta is then
   optimised with beta profiled into the mode (the joint objective of
   :class:`~mixedfx.engine.laplace.Deviance`), by BOBYQA.
2. **Laplace (or AGQ) stage.** ``(theta, beta)`` together minimise the
   Laplace (or adaptive Gauss-Hermite) deviance, each evaluation a PIRLS
   for ``u`` at fixed beta, started from the first stage's modes.

lme4 runs Nelder-Mead in the second stage with beta scaled by its standard
errors. Here BOBYQA works in whitened coordinates: ``beta = beta1 + R v``
with ``R R' `` the first stage's covariance of beta, so a unit step in ``v``
is a standard error in every direction of beta (a badly scaled or
collinear X, such as an intercept far from the data, costs nothing), and
the tolerances are tight (1e-10, or 1e-14 relative for deviances of large
data, whose sums round above 1e-10): the deviance is smooth to rounding
because PIRLS converges to 1e-10 in the linear predictor. Diagonals of theta within
1e-2 of 0 are then tried at 0 and kept there when the deviance is no worse
(:func:`~mixedfx.engine.newton.snap`; lme4's ``check.boundary`` does the
same within 1e-5).

The Hessian of the deviance at BOBYQA's optimum, by central differences in
the optimizer's coordinates (:func:`derivatives`), gives one Newton step to
the optimum; the Hessian there (again by differences, when the step moved)
gives the covariance of beta as lme4's ``vcov`` (two times the beta block
of its inverse), over the parameters that are not at a bound. Taken at
BOBYQA's point instead, which is as uncertain as the deviance is flat, the
covariance of an ill-conditioned fit (grouseticks' raw HEIGHT next to the
intercept) moved by 2e-5 between BLAS kernels; at the Newton point, by 2e-6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .bobyqa import OptSummary, minimize
from .laplace import Deviance
from .newton import snap
from .pirls import Mode
from .solve import vcov_beta

STAGE2_TOL = 1e-8
STAGE2_RTOL = 1e-12
HESSIAN_STEP = 1e-3  # in whitened units (standard errors) and scaled theta


@dataclass(frozen=True)
class GlmmOptimum:
    """The result of :func:`fit_glmm`.

    Attributes
    ----------
    theta : ndarray, shape (k,)
    beta : ndarray, shape (p,)
    fmin : float
        ``-2 log L`` at the optimum (Laplace or AGQ, with the saturated part).
    mode : Mode
        The conditional mode at the optimum (u only, beta fixed).
    stage1, opt : OptSummary
        The first stage (over theta) and the second (over theta and beta,
        ``start``/``final``/``lower`` in natural units; None for nAGQ = 0).
    vcov_beta : ndarray, shape (p, p) or None
        From the Hessian of the deviance (None when it is not positive
        definite or for nAGQ = 0: then use the mode's factor).
    """

    theta: np.ndarray
    beta: np.ndarray
    fmin: float
    mode: Mode
    stage1: OptSummary
    opt: OptSummary | None
    vcov_beta: np.ndarray | None


def stage_one(dev: Deviance, w: np.ndarray) -> tuple[OptSummary, Mode]:
    """Optimise theta with beta in the mode; the summary and the mode at its optimum.

    ``w`` are the optimizer's units of theta (``theta = s * w``). Each
    evaluation's joint PIRLS starts from the last joint mode found. The
    tolerances stay tight even when a second stage follows: its whitening
    comes from this stage's mode, and a loosely placed first optimum (1e-4
    in theta) made the Hessian-based vcov of a rescaled predictor differ
    from the exact transform by 2e-5.
    """
    rows, layout = dev.rows, dev.layout
    fam = rows.family
    eta_start = fam.link.linkfun(fam.mustart(rows.y, rows.weights))
    dev.joint(layout.start(), eta_start)

    def fun(s: np.ndarray) -> float:
        try:
            value = dev.joint(s * w)[0]
        except np.linalg.LinAlgError:
            return np.inf
        return value if np.isfinite(value) else np.inf

    opt = minimize(fun, layout.start() / w, layout.lower())
    opt = snap(fun, opt)
    theta = opt.final * w
    _, mode = dev.joint(theta)
    return replace(opt, start=opt.start * w, final=theta), mode


def fit_glmm(dev: Deviance, w: np.ndarray, nagq: int) -> GlmmOptimum:
    """Both stages (see module docstring); ``nagq = 0`` stops after the first.

    Parameters
    ----------
    dev : Deviance
    w : ndarray, shape (k,)
        Units of theta for the optimizer (``theta = s * w``).
    nagq : int
    """
    stage1, mode1 = stage_one(dev, w)
    if nagq == 0:
        fmin = mode1.laplace() + dev.saturated
        return GlmmOptimum(stage1.final, mode1.beta, fmin, mode1, stage1, None, None)
    theta1, beta1 = stage1.final, mode1.beta
    k, p = len(theta1), len(beta1)
    R = whitening(mode1)
    dev.start_u = mode1.u

    def unpack(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return s[:k] * w, beta1 + R @ s[k:]

    def fun(s: np.ndarray) -> float:
        return dev(*unpack(s))

    start = np.concatenate([theta1 / w, np.zeros(p)])
    lower = np.concatenate([dev.layout.lower(), np.full(p, -np.inf)])
    step = np.concatenate([np.full(k, 0.1), np.full(p, 0.5)])
    opt = minimize(fun, start, lower, STAGE2_TOL, STAGE2_TOL, step=step, ftol_rel=STAGE2_RTOL)
    opt = snap(fun, opt)
    f0, g, H = derivatives(fun, opt.final, lower)
    opt = newton_step(fun, opt, f0, g, H)
    if opt.extra.get("newton_step"):  # the covariance at the optimum the step found
        _, _, H = derivatives(fun, opt.final, lower)
        evals = 2.0 * opt.extra["hessian_evals"]
        opt = replace(opt, extra={**opt.extra, "hessian_evals": evals})
    theta, beta = unpack(opt.final)
    mode = dev.mode(theta, beta)
    fmin = dev.value(mode, theta)
    vcov = None if H is None else beta_covariance(H, R, k)
    natural = np.concatenate([theta, beta])
    summary = replace(opt, start=np.concatenate([theta1, beta1]), final=natural, fmin=fmin)
    return GlmmOptimum(theta, beta, fmin, mode, stage1, summary, vcov)


def whitening(mode: Mode) -> np.ndarray:
    """``R`` with ``R R'`` the covariance of beta from a joint mode's factor, shape (p, p)."""
    V = vcov_beta(mode.factor, 1.0)
    try:
        return np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return np.diag(np.sqrt(np.maximum(np.diag(V), 1e-12)))


def derivatives(
    fun: Callable[[np.ndarray], float], x: np.ndarray, lower: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """The value, gradient and Hessian of ``fun`` at ``x`` by central differences.

    Over the coordinates not at a bound (the others get a zero gradient and a
    unit row and column in H, so they drop out of its inverse's other
    blocks). With step ``h`` and ``f_(+-i)`` the values at ``x +- h e_i``::

        g_i  = (f_(+i) - f_(-i)) / 2h
        H_ii = (f_(+i) - 2 f + f_(-i)) / h^2
        H_ij = (f_(+i+j) + f_(-i-j) - f_(+i) - f_(-i) - f_(+j) - f_(-j) + 2 f) / 2h^2

    all exact for quadratics and O(h^2) otherwise: ``1 + 2k + k(k - 1)``
    evaluations for ``k`` free coordinates. H is None when it is not
    positive definite.
    """
    k = len(x)
    idx = [int(i) for i in np.flatnonzero(~(x <= lower))]
    h = HESSIAN_STEP
    f0 = fun(x)

    def at(*moves: tuple[int, float]) -> float:
        y = x.copy()
        for i, sign in moves:
            y[i] += sign * h
        return fun(y)

    plus = {i: at((i, 1.0)) for i in idx}
    minus = {i: at((i, -1.0)) for i in idx}
    g = np.zeros(k)
    H = np.eye(k)
    for a, i in enumerate(idx):
        g[i] = (plus[i] - minus[i]) / (2.0 * h)
        H[i, i] = (plus[i] - 2.0 * f0 + minus[i]) / (h * h)
        for j in idx[:a]:
            both = at((i, 1.0), (j, 1.0)) + at((i, -1.0), (j, -1.0))
            ones = plus[i] + minus[i] + plus[j] + minus[j]
            H[i, j] = H[j, i] = (both - ones + 2.0 * f0) / (2.0 * h * h)
    sub = H[np.ix_(idx, idx)]
    if not np.all(np.isfinite(sub)) or np.any(np.linalg.eigvalsh(sub) <= 0):
        return f0, g, None
    return f0, g, H


def newton_step(
    fun: Callable[[np.ndarray], float],
    opt: OptSummary,
    f0: float,
    g: np.ndarray,
    H: np.ndarray | None,
) -> OptSummary:
    """One Newton step from BOBYQA's optimum with the finite-difference derivatives.

    BOBYQA leaves the optimum uncertain where the deviance is flat to second
    order; the Newton step removes that error (to ~1e-8 in whitened units).
    Coordinates at a bound stay there; a step crossing a bound stops on it;
    the step is kept only when the deviance falls.
    """
    extra = {**opt.extra, "hessian_evals": float(1 + 2 * len(g) + len(g) * (len(g) - 1))}
    if H is None:
        return replace(opt, extra=extra)
    x = opt.final
    step = -np.linalg.solve(H, g)
    new = np.maximum(x + step, opt.lower)
    value = fun(new)
    extra["newton_step"] = float(value < f0)
    if value < f0:
        return replace(opt, final=new, fmin=value, feval=opt.feval + 1, extra=extra)
    return replace(opt, feval=opt.feval + 1, extra=extra)


def beta_covariance(H: np.ndarray, R: np.ndarray, k: int) -> np.ndarray:
    """Covariance of beta, ``R [2 H^-1]_vv R'``, from the Hessian in the optimizer's units."""
    Hi = np.linalg.inv(H)
    Vv = Hi[k:, k:] + Hi[k:, k:].T  # two times the block, symmetrised
    return R @ Vv @ R.T
