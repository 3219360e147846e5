"""Newton's method on the closed-form Hessian: the local method of small models.

A small model (:mod:`mixedfx.engine.dense`) has its objective, gradient and
Hessian from one factorization (:meth:`~mixedfx.engine.dense.DenseSystem.
second_order`, about seven objectives' cost). From lme4's start Newton's
method reaches an interior optimum in 6 to 9 of them (sleepstudy: 8), where
BOBYQA takes 50 to 60 objectives and then needs the Newton polish of
:func:`mixedfx.engine.newton.settle` anyway; the last Newton step leaves
theta at the optimum to the precision of the sums, so nothing is settled.

The method looks for an interior optimum; what it cannot handle it hands
back to the caller (:func:`mixedfx.engine.optimize.fit_theta`), which then
runs BOBYQA and its boundary restarts:

- Far from the optimum the Hessian can be indefinite (sleepstudy's start:
  eigenvalues -7.9 to 85). Its eigenvalues are then reflected and floored
  at :data:`FLOOR` of the largest (a modified Newton method), which keeps
  the step a descent direction as long along them as the curvature says.
- A step that would take a diagonal of ``T`` past 0 is shortened to leave it
  at least :data:`SHRINK` of its distance; a diagonal that falls below the
  caller's ``boundary`` ends the run (``status`` :data:`BOUNDARY`): the
  optimum may be singular, where small models have several local optima.
- A step is kept when the objective falls by Armijo's rule (a fraction
  1e-4 of the decrease it predicts, less rounding: 1e-12 relative, as
  near the optimum the predicted decrease is below the objective's
  precision), else halved, at most :data:`HALVINGS` times.
- The run has converged where the Hessian is positive definite and the
  step after the next one is below :data:`STEP_TOL` (relative): Newton's
  steps shrink quadratically (sleepstudy: 1.8e-4, 4.8e-8, 4.9e-15), so a
  step ``s`` after a full step ``p`` is followed by one of about
  ``s^3 / p^2``; where that is below :data:`STEP_TOL` and ``s`` below
  :data:`NEAR`, the next step is the last. It is taken with the
  objective and gradient only (a third of the Hessian's cost), where it
  does not raise the objective by more than rounding; the first-order
  test is on that gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .bobyqa import OptSummary
from .descent import ValueGradient, gain
from .linalg import definite_solve, symmetric_eigen

ValueGradientHessian = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]]

METHOD = "Newton"
CONVERGED = "the Newton step is below the sums' precision"
BOUNDARY = "a variance heads for 0"
SHRINK = 0.1  # a step leaves a positive diagonal at least this fraction of its distance to 0
STEP_TOL = 1e-11  # a step below this (relative to max(1, |theta|)) is rounding: converged
NEAR = 1e-6  # a step predicted to be the last is at most this (relative)
FLOOR = 1e-8  # the modified Hessian's eigenvalues are at least this times the largest
HALVINGS = 30
MAXITER = 50


def minimize(
    fgh: ValueGradientHessian,
    fungrad: ValueGradient,
    start: np.ndarray,
    lower: np.ndarray,
    boundary: float,
    tol: float = 1e-8,
) -> OptSummary:
    """Newton's method from ``start`` subject to ``x >= lower``, for an interior optimum.

    Parameters
    ----------
    fgh : callable, x (k,) -> (f, g, H)
        The objective, its gradient (k,) and Hessian (k, k); may raise
        ``numpy.linalg.LinAlgError`` where the objective is not defined.
    fungrad : callable, x (k,) -> (f, g)
        The objective and gradient, for the last step.
    start, lower : ndarray, shape (k,)
        ``start`` strictly inside the bounds.
    boundary : float
        A diagonal (an element with a finite bound) below this ends the run.
    tol : float
        The first-order gain (:func:`~mixedfx.engine.descent.gain`) allowed at
        a converged point, relative to ``max(1, |f|)``.

    Returns
    -------
    OptSummary
        ``converged`` only for an interior optimum (status :data:`CONVERGED`);
        status :data:`BOUNDARY` where a diagonal fell below ``boundary``;
        otherwise not converged, with the reason. ``final`` and ``fmin`` are
        the lowest point reached. ``feval`` counts calls of ``fgh`` and
        ``fungrad``; ``extra["newton_steps"]`` the steps taken;
        ``extra["first_order"]`` is 1 where the gain of the last gradient
        (before the rounding-sized last step) is below ``tol * max(1, |f|)``.
    """
    x = np.asarray(start, dtype=float).copy()
    bounded = np.isfinite(lower)
    evals, steps, status, converged = 0, 0, "iteration limit", False
    f, g = np.inf, np.full(len(x), np.nan)
    try:
        f, g, H = fgh(x)
        evals += 1
        previous = 0.0  # the last full step's size (relative) on a definite H; 0: none
        for _ in range(MAXITER):
            if not math.isfinite(f):
                status = "objective not finite"
                break
            d, definite = _step(H, g)
            size = float((np.abs(d) / np.maximum(1.0, np.abs(x))).max(initial=0.0))
            if size <= STEP_TOL and not definite:
                status = "the Hessian is not positive definite at a stationary point"
                break
            last = size <= STEP_TOL or (size <= NEAR and size**3 <= STEP_TOL * previous**2)
            if definite and last:  # the step after this one would be rounding
                x, f, g, evals = _last(fungrad, x, f, g, np.maximum(x + d, lower), evals)
                status, converged = CONVERGED, True
                break
            new, f_new, g_new, H_new, tries, a = _armijo(fgh, x, f, g, d, lower, bounded)
            evals += tries
            if new is None:
                status = "no lower point along the Newton step"
                break
            full = definite and a == 1.0
            x, f, g, H = new, f_new, g_new, H_new
            steps += 1
            previous = size if full else 0.0
            if (x[bounded] < boundary).any():
                status = BOUNDARY
                break
    except np.linalg.LinAlgError:
        status = "the objective's factorization failed"
    met = bool(np.isfinite(g).all()) and gain(g, x, lower) <= tol * max(1.0, abs(f))
    extra = {"newton_steps": float(steps), "gradient_evals": float(evals)}
    extra["first_order"] = float(met)
    return OptSummary(
        METHOD, np.asarray(start, dtype=float).copy(), x, lower.copy(), float(f), evals,
        status, converged, STEP_TOL, 0.0, MAXITER, extra,
    )  # fmt: skip


def _step(H: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, bool]:
    """The Newton step ``-H^-1 g`` (k,), and whether ``H`` is positive definite.

    Where it is not, the step is on ``V max(|Lambda|, FLOOR * max|Lambda|) V'``.
    """
    d = definite_solve(H, g)
    if d is not None:
        return -d, True
    lam, V = symmetric_eigen(0.5 * (H + H.T))
    top = float(np.abs(lam).max(initial=0.0))
    if not top > 0.0:
        return np.zeros_like(g), False
    return -(V @ ((V.T @ g) / np.maximum(np.abs(lam), FLOOR * top))), False


def _armijo(
    fgh: ValueGradientHessian,
    x: np.ndarray,
    f: float,
    g: np.ndarray,
    d: np.ndarray,
    lower: np.ndarray,
    bounded: np.ndarray,
) -> tuple[np.ndarray | None, float, np.ndarray, np.ndarray, int, float]:
    """The first point along ``d`` (shortened at bounds, then halved) that Armijo's rule keeps.

    Returns the point (None where none was kept), its objective, gradient and
    Hessian, the calls of ``fgh`` and the step's length (1: all of ``d``).
    """
    a = 1.0
    past = bounded & (x + d < lower)
    if past.any():
        a = min(1.0, float(((1.0 - SHRINK) * (x[past] - lower[past]) / -d[past]).min()))
    slope, rounding = float(g @ d), 1e-12 * max(1.0, abs(f))
    for tries in range(1, HALVINGS + 1):
        new = np.maximum(x + a * d, lower)
        f_new, g_new, H_new = fgh(new)
        if f_new <= f + 1e-4 * a * slope + rounding:  # (False for NaN and inf)
            return new, f_new, g_new, H_new, tries, a
        a *= 0.5
    return None, f, g, g, HALVINGS, 0.0


def _last(
    fungrad: ValueGradient,
    x: np.ndarray,
    f: float,
    g: np.ndarray,
    new: np.ndarray,
    evals: int,
) -> tuple[np.ndarray, float, np.ndarray, int]:
    """``new`` where its objective is at most ``f`` plus rounding (1e-12 relative), else ``x``.

    With the objective and gradient at the point kept, and the calls counted.
    """
    if np.array_equal(new, x):
        return x, f, g, evals
    f_new, g_new = fungrad(new)
    if f_new <= f + 1e-12 * max(1.0, abs(f)):
        return new, float(f_new), g_new, evals + 1
    return x, f, g, evals + 1
