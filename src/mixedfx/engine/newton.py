"""The Newton finish of an optimum: polish on the gradient, snap small variances to 0, settle.

A derivative-free or quasi-Newton optimizer stops where the objective no
longer changes by its tolerance, which leaves theta uncertain in about its
fifth digit; :func:`polish` locates the optimum to the precision of the
sums with Newton steps on the analytic gradient, :func:`snap` sets
variances the data cannot tell from 0 to 0, and :func:`settle` does both
and runs BOBYQA again where the gradient shows the stop was early.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .bobyqa import OptSummary, minimize
from .descent import ValueGradient, gain, projected


class Remembered:
    """``fungrad`` that returns its value again when called at one of its last points.

    Attributes
    ----------
    evals : int
        Calls that computed (not remembered) a value and gradient.
    """

    def __init__(self, fungrad: ValueGradient, size: int = 4) -> None:
        self.fungrad, self.size, self.evals = fungrad, size, 0
        self.last: list[tuple[bytes, float, np.ndarray]] = []

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        key = np.asarray(x, dtype=float).tobytes()
        for k, f, g in self.last:
            if k == key:
                return f, g.copy()
        f, g = self.fungrad(x)
        self.evals += 1
        self.remember(x, f, g)
        return float(f), np.asarray(g, dtype=float).copy()

    def remember(self, x: np.ndarray, f: float, g: np.ndarray) -> None:
        """Keep a value and gradient computed elsewhere (it counts as computed)."""
        key = np.asarray(x, dtype=float).tobytes()
        self.last = [(key, float(f), np.asarray(g, dtype=float)), *self.last[: self.size - 1]]


def polish(
    fungrad: ValueGradient,
    opt: OptSummary,
    hess: Callable[[np.ndarray], np.ndarray | None] | None = None,
    max_steps: int = 5,
    max_move: float = 1e-2,
) -> OptSummary:
    """Newton steps on the free elements of theta until the gradient vanishes.

    BOBYQA stops where the objective no longer changes by ``ftol_abs``; near
    an optimum the objective is flat to second order, so theta is left
    uncertain in about its fifth digit, and two fits of the same model whose
    sums were rounded differently (rows reordered, Dask partitions) stop at
    points that far apart. The gradient locates the optimum to the precision
    of the sums instead. The Hessian is forward differences of the gradient
    (``k`` gradients, step 1e-5 relative); each step solves with it and is
    kept only when the objective rises by at most 1e-10 relative and the
    gradient shrinks. ``hess``, when given and not None at the point, gives
    the Hessian in closed form instead; then (a small model, whose
    evaluations cost microseconds) the last step, below the sums' precision,
    is taken too where it does not raise the objective: a small theta
    (0.0088) located to 1e-11 absolute left its term's BLUPs 1e-9 apart
    (relative) between a Dask fit and an in-memory one. Elements at their
    bound with an outward gradient stay there; a step that would cross a
    bound stops on it. Along flat directions of the Hessian (a ridge of
    optima) the step is the minimum-norm one (:func:`_eigen`). Steps longer
    than ``max_move`` (relative), and steps on a Hessian with a direction of
    descent, are refused: this is a polish of an optimum BOBYQA has found,
    not a search.

    Returns
    -------
    OptSummary
        ``final`` and ``fmin`` of the polished point (or ``opt`` unchanged);
        ``feval`` and ``extra["gradient_evals"]`` count the work;
        ``extra["newton_converged"]`` is 1 where the steps ended because the
        next one was below the sums' precision (or nothing was free to move).
    """
    x, f = opt.final.copy(), opt.fmin
    lower = opt.lower
    nfev, ngev, steps, done = 0, 0, 0, False
    try:
        exact = None if hess is None else hess(x)
        exact_given = exact is not None
        _, g = fungrad(x)
        ngev += 1
        if exact is None:
            exact = np.empty((len(x), len(x)))
            for j in range(len(x)):
                h = 1e-5 * max(1.0, abs(x[j]))
                up = x.copy()
                up[j] += h
                exact[:, j] = (fungrad(up)[1] - g) / h
                ngev += 1
        curvature = 0.5 * (exact + exact.T)
        factors: dict[bytes, Eigen | None] = {}  # per set of free elements: its curvature's
        steepest = np.abs(projected(g, x, lower)).max(initial=0.0)
        for _ in range(max_steps):
            free = ~((x <= lower) & (g >= 0))
            if not free.any():
                done = True
                break
            key = free.tobytes()
            if key not in factors:  # None where the curvature is not positive semidefinite
                factors[key] = _eigen(curvature[np.ix_(free, free)])
            eigen = factors[key]
            if eigen is None:
                break
            lam, V = eigen
            step = np.zeros_like(x)
            step[free] = -(V @ ((V.T @ g[free]) / lam))
            size = np.maximum(1.0, np.abs(x))
            if (np.abs(step) > max_move * size).any():
                break
            new = np.maximum(x + step, lower)
            if (np.abs(new - x) <= 1e-11 * size).all():
                done = True  # converged: a further step is below the sums' precision
                if exact_given and not np.array_equal(new, x):  # cheap: take it as well
                    f_new, g_new = fungrad(new)
                    nfev, ngev = nfev + 1, ngev + 1
                    if f_new <= f + 1e-12 * max(1.0, abs(f)):
                        x, f, g = new, f_new, g_new
                break
            f_new, g_new = fungrad(new)
            nfev, ngev = nfev + 1, ngev + 1
            after = np.abs(projected(g_new, new, lower)).max()
            if not (f_new <= f + 1e-10 * max(1.0, abs(f)) and after < steepest):
                break
            x, f, g, steepest = new, f_new, g_new, after
            steps += 1
    except (np.linalg.LinAlgError, ValueError):  # singular Hessian, non-PD system, NaN: keep
        pass
    extra = {
        **opt.extra,
        "gradient_evals": opt.extra.get("gradient_evals", 0.0) + ngev,
        "newton_steps": opt.extra.get("newton_steps", 0.0) + steps,
        "newton_converged": float(done),
    }
    return replace(opt, final=x, fmin=f, feval=opt.feval + nfev, extra=extra)


Eigen = tuple[np.ndarray, np.ndarray]  # eigenvalues (r,) and eigenvectors (k, r) kept

FLAT_CURVATURE = 1e-6  # eigenvalues within this of the largest (relative) are a flat direction


def _eigen(curvature: np.ndarray) -> Eigen | None:
    """The curvature block's eigenpairs that the Newton step uses; None where it is indefinite.

    A model whose likelihood does not determine theta (``(f || g)``: the
    intercept's variance and a common part of f's are one parameter) has a
    ridge of optima, along which the curvature is 0 up to rounding, of
    either sign (-7e-5 against 388). The step is then the minimum-norm one,
    on the eigenvectors whose eigenvalue exceeds :data:`FLAT_CURVATURE`
    times the largest: it reaches the ridge (the gradient from 1e-4 to 1e-10
    in one step) without sliding along it. An eigenvalue below minus that is
    a direction of descent that a polish must not take.
    """
    if not np.isfinite(curvature).all():
        return None
    lam, V = np.linalg.eigh(curvature)
    top = float(lam[-1])
    if not top > 0.0 or lam[0] < -FLAT_CURVATURE * top:
        return None
    kept = lam > FLAT_CURVATURE * top
    return lam[kept], V[:, kept]


SETTLE_TOL = 1e-8  # a gradient is flat when its gain is below this times max(1, |f|)


def settle(
    fun: Callable[[np.ndarray], float],
    fungrad: ValueGradient,
    opt: OptSummary,
    hess: Callable[[np.ndarray], np.ndarray | None] | None = None,
    tol: float = SETTLE_TOL,
) -> OptSummary:
    """:func:`polish` and :func:`snap`; when the gradient is still not flat, BOBYQA again.

    NLopt's BOBYQA stops when one step changes the objective by less than
    ``ftol_abs``, which on a rare flat stretch happens far from the optimum
    (an unbalanced crossed design: stopped after 22 evaluations, 1.4e-3
    above the optimum; four groups and a random slope: 5e-5 above). Newton
    steps refuse to go that far, but the gradient shows it: when some
    ``|g_i| * max(|theta_i|, 0.1)`` along a free direction exceeds
    ``tol * max(1, |f|)`` after the polish, BOBYQA is run from there with
    tolerances of 1e-12 and the better result is polished again. The
    maximum of ``|g|`` is kept in ``extra["max_abs_gradient"]``. A result
    its optimizer did not call converged (scoring that stopped near a
    boundary with too few Newton steps) is converged once the polish leaves
    the gradient flat by this test (the test of a converged start,
    :func:`mixedfx.fit.check_moved`); its status says so.
    """
    out = polish_and_snap(fun, fungrad, opt, hess)
    f, g = fungrad(out.final)
    g = projected(g, out.final, out.lower)
    out = replace(out, extra={**out.extra, "max_abs_gradient": float(np.abs(g).max(initial=0.0))})
    if gain(g, out.final, out.lower) <= tol * max(1.0, abs(f)):
        if out.converged:
            return out
        return replace(out, converged=True, status=f"{out.status}; settled: the gradient is flat")
    res = minimize(fun, out.final, out.lower, 1e-12, 1e-12, out.maxeval)
    extra = {**out.extra, "settle_restart": 1.0}
    total = out.feval + res.feval
    if not res.fmin < out.fmin:
        return replace(out, feval=total, extra=extra)
    again = replace(out, final=res.final, fmin=res.fmin, feval=total, extra=extra)
    return polish_and_snap(fun, fungrad, again, hess)


def polish_and_snap(
    fun: Callable[[np.ndarray], float],
    fungrad: ValueGradient,
    opt: OptSummary,
    hess: Callable[[np.ndarray], np.ndarray | None] | None = None,
) -> OptSummary:
    """:func:`polish`, then :func:`snap`, then a polish of the rest if anything snapped."""
    out = polish(fungrad, opt, hess)
    snapped = snap(fun, out)
    if np.array_equal(snapped.final, out.final):
        return snapped
    return polish(fungrad, snapped, hess)


def snap(fun: Callable[[np.ndarray], float], opt: OptSummary) -> OptSummary:
    """Small variances set to 0 where that is no worse.

    Along a direction where the objective is flat to fourth order (a
    variance at 0 on a singular fit) the Hessian is singular, so Newton
    steps approach the bound only geometrically or not at all, and BOBYQA
    stops anywhere from theta_i ~ 1e-12 to 3e-3 depending on the order of
    the rows; the derivative there is rounding noise of either sign.
    Diagonal elements below ``1e-2 * max(1, |theta|)`` are set to 0 one at
    a time, smallest first, each kept if the objective does not rise beyond
    rounding (1e-12 relative) from the polished optimum: where it does not,
    the data cannot tell the two apart.
    """
    x, f, nfev = opt.final.copy(), opt.fmin, 0
    small = (opt.lower == 0.0) & (x > 0.0) & (x < 1e-2 * max(1.0, float(np.abs(x).max())))
    if not small.any():
        return opt
    limit = opt.fmin + 1e-12 * max(1.0, abs(opt.fmin))
    for i in sorted(np.flatnonzero(small), key=lambda i: x[i]):
        trial = x.copy()
        trial[i] = 0.0
        value = float(fun(trial))
        nfev += 1
        if value <= limit:
            x, f = trial, value
    return replace(opt, final=x, fmin=f, feval=opt.feval + nfev)
