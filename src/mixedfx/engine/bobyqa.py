"""BOBYQA, lme4's optimizer, and the summary every optimizer of theta returns.

NLopt's ``LN_BOBYQA`` (lme4's ``nloptwrap``) from identity relative
covariance factors, absolute tolerances 1e-8 on theta and on the objective,
so evaluation counts compare with lme4's ``optinfo$feval``. It minimises
the small models' objective (:mod:`mixedfx.engine.optimize`), the
profiles of :mod:`mixedfx.inference`, and the GLMM's Laplace deviance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import nlopt
import numpy as np

_STATUS = {
    nlopt.SUCCESS: "success",
    nlopt.STOPVAL_REACHED: "stopval reached",
    nlopt.FTOL_REACHED: "ftol reached",
    nlopt.XTOL_REACHED: "xtol reached",
    nlopt.MAXEVAL_REACHED: "maximum evaluations reached",
    nlopt.MAXTIME_REACHED: "maximum time reached",
}


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer did.

    Attributes
    ----------
    optimizer : str
    start, final : ndarray, shape (ntheta,)
    lower : ndarray, shape (ntheta,)
    fmin : float
        The objective at ``final``.
    feval : int
        Number of objective evaluations.
    status : str
    converged : bool
    xtol_abs, ftol_abs : float
    maxeval : int
    """

    optimizer: str
    start: np.ndarray
    final: np.ndarray
    lower: np.ndarray
    fmin: float
    feval: int
    status: str
    converged: bool
    xtol_abs: float = 1e-8
    ftol_abs: float = 1e-8
    maxeval: int = 100_000
    extra: dict[str, float] = field(default_factory=dict)


NEAR_BOUND = 1e-6  # a start this close to its bound (relative) starts on it


def minimize(
    fun: Callable[[np.ndarray], float],
    start: np.ndarray,
    lower: np.ndarray,
    xtol_abs: float = 1e-8,
    ftol_abs: float = 1e-8,
    maxeval: int = 100_000,
    step: np.ndarray | None = None,
    ftol_rel: float = 0.0,
) -> OptSummary:
    """Minimise ``fun`` from ``start`` subject to ``theta >= lower``.

    NLopt's default initial step of an element is three quarters of its
    distance to a finite bound, and BOBYQA's first trust region is the
    smallest step: from a start a hair above a bound (a variance of 3e-18
    left by an earlier optimum, a profile's warm start) it began and, at
    ``xtol_abs``, ended within 1e-18 of the start. Elements closer to their
    bound than :data:`NEAR_BOUND` (relative to ``max(1, |start|)``) start on
    it instead, where NLopt's step is 1, as from lme4's start at 0.

    Parameters
    ----------
    fun : callable, theta (k,) -> float
    start, lower : ndarray, shape (k,)
    step : ndarray, shape (k,), optional
        BOBYQA's initial step per coordinate (NLopt's default otherwise).
    ftol_rel : float
        NLopt's relative tolerance on the objective (0: none).
    """
    k = len(start)
    scale = max(1.0, float(np.abs(start).max(initial=0.0)))
    begin = np.where((start > lower) & (start - lower < NEAR_BOUND * scale), lower, start)
    best_x, best_f, count = [start.copy()], [np.inf], [0]

    def wrapped(x: np.ndarray, grad: np.ndarray) -> float:
        value = float(fun(x))
        count[0] += 1
        if value < best_f[0]:
            best_x[0], best_f[0] = x.copy(), value
        return value

    opt = nlopt.opt(nlopt.LN_BOBYQA, k)
    opt.set_min_objective(wrapped)
    opt.set_lower_bounds(lower.tolist())
    opt.set_xtol_abs(xtol_abs)
    opt.set_ftol_abs(ftol_abs)
    opt.set_ftol_rel(ftol_rel)
    opt.set_maxeval(maxeval)
    if step is not None:
        opt.set_initial_step(np.asarray(step, dtype=float).tolist())
    try:
        opt.optimize(begin.astype(float))
        code = opt.last_optimize_result()
    except nlopt.RoundoffLimited:
        code = nlopt.FTOL_REACHED
    status = _STATUS.get(code, f"nlopt code {code}")
    converged = code in (nlopt.SUCCESS, nlopt.FTOL_REACHED, nlopt.XTOL_REACHED)
    return OptSummary(
        "NLOPT_LN_BOBYQA",
        start.copy(),
        np.asarray(best_x[0], dtype=float),
        lower.copy(),
        float(best_f[0]),
        count[0],
        status,
        converged,
        xtol_abs,
        ftol_abs,
        maxeval,
    )


Local = Callable[[np.ndarray, bool], OptSummary]
"""A local minimiser: (start, tight) -> result; ``tight`` asks for a polish's tolerances."""


def bobyqa(
    fun: Callable[[np.ndarray], float], lower: np.ndarray, polish_tol: float = 1e-12
) -> Local:
    """:func:`minimize` as a :data:`Local`: lme4's tolerances, or ``polish_tol`` when tight."""

    def local(start: np.ndarray, tight: bool) -> OptSummary:
        tol = polish_tol if tight else 1e-8
        res = minimize(fun, start, lower, tol, tol)
        return replace(res, xtol_abs=1e-8, ftol_abs=1e-8) if tight else res

    return local
