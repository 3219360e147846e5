"""L-BFGS-B on the analytic gradient: the optimizer for models whose evaluations are costly.

For blocked models an evaluation factors a dense or sparse (m, m) matrix
and the gradient (:mod:`mixedfx.engine.gradient`) costs about 2.5 of them,
so a quasi-Newton method that uses it needs far fewer factorizations than
BOBYQA's derivative-free search (InstEval: 23 gradients and no further
evaluations where BOBYQA took 122 evaluations and the settle step 6
gradients). BOBYQA stays the method where an evaluation costs microseconds
(:mod:`mixedfx.engine.dense`).

Near the optimum the objective's rounding noise (~1e-15 relative) makes a
line search refuse good steps: L-BFGS-B stalled 1e-8 from the optimum of
a nested model, after a dozen wasted evaluations. So the descent stops as
soon as the quasi-Newton step it predicts is below ``HANDOVER`` (1e-7,
relative), and the caller finishes with Newton steps on that quasi-Newton
Hessian (:attr:`Descent.hessian`), accepted on the gradient, not on the
objective (:func:`mixedfx.engine.newton.polish`).

A diagonal of ``T`` at its bound 0 can hold the descent at a saddle. Where
the rest of the diagonal's column of ``T`` is 0 (the last column of a
block, every column of a ``||`` term's 1 x 1 blocks), flipping the
column's sign leaves ``T T'`` unchanged, so the objective is even in that
diagonal and its derivative at 0 is exactly 0, whatever the curvature. A
first step that overshoots onto the bound (the 2 x 2 ``(age | Subject)``
of Orthodont: from the identity to 0, where the optimum is at 0.17) then
ends at a point that meets the first-order conditions but where the
objective falls away from the bound. :func:`escape` looks one step off
such diagonals, and the caller descends again from a lower point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeResult, minimize

ValueGradient = Callable[[np.ndarray], tuple[float, np.ndarray]]

METHOD = "L-BFGS-B"  # the method of a result the descent reached
HANDOVER = 1e-7  # predicted relative step below which the descent hands over to Newton
MAXITER = 1000


def projected(g: np.ndarray, x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The gradient with components that push out of the feasible set at a bound set to 0."""
    return np.where((x <= lower) & (g > 0), 0.0, g)


def gain(g: np.ndarray, x: np.ndarray, lower: np.ndarray) -> float:
    """The largest first-order decrease ``|g_i| * max(|x_i|, 0.1)`` along a free direction."""
    return float((np.abs(projected(g, x, lower)) * np.maximum(np.abs(x), 0.1)).max(initial=0.0))


@dataclass(frozen=True)
class Descent:
    """The result of :func:`descend`.

    Attributes
    ----------
    x : ndarray, shape (k,)
        The lowest point evaluated.
    f : float
        The objective there.
    g : ndarray, shape (k,)
        The gradient there.
    hessian : ndarray, shape (k, k)
        L-BFGS-B's quasi-Newton approximation of the Hessian at the end.
    evals : int
        Calls of ``fungrad`` (each one objective and one gradient).
    converged : bool
        The method ended by the step rule, its own tests or a line search that
        found no lower point (not by the iteration limit), met no point
        where the objective was not finite, and the first-order gain
        (:func:`gain`) is below ``tol * max(1, |f|)``.
    status : str
    """

    x: np.ndarray
    f: float
    g: np.ndarray
    hessian: np.ndarray
    evals: int
    converged: bool
    status: str
    method: str = METHOD


class _Run:
    """One descent's state: evaluations, accepted iterates, their BFGS curvature.

    L-BFGS-B keeps its curvature pairs to itself; this keeps a dense BFGS
    matrix from the same accepted iterates, for the stopping rule (the
    quasi-Newton step it predicts) and for the caller's Newton polish.
    """

    def __init__(self, fungrad: ValueGradient, start: np.ndarray, lower: np.ndarray) -> None:
        self.fungrad, self.lower = fungrad, lower
        self.seen: dict[bytes, tuple[float, np.ndarray]] = {}
        self.evals, self.infinite = 0, False
        self.x = np.asarray(start, dtype=float).copy()
        self.f, self.g = self.value(self.x)
        self.B: np.ndarray | None = None

    def value(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """``fungrad`` for L-BFGS-B: ``inf`` and a zero gradient where it is not finite.

        A factorization that fails (:class:`numpy.linalg.LinAlgError`: the
        Schur block not positive definite, as when rounding takes ``r^2``
        below 0 at a start far from the optimum) is such a point too.
        """
        try:
            f, g = self.fungrad(x)
        except np.linalg.LinAlgError:
            f, g = np.inf, np.zeros_like(x)
        self.evals += 1
        if not np.isfinite(f):
            self.infinite = True
            f, g = np.inf, np.zeros_like(x)
        g = np.asarray(g, dtype=float)
        self.seen[np.asarray(x, dtype=float).tobytes()] = (float(f), g.copy())
        return float(f), g

    def accept(self, x: np.ndarray) -> np.ndarray:
        """Move to the accepted iterate ``x``, update B; return the step it predicts next.

        ``x`` is a point evaluated since the last accepted one, or that one
        itself (an iteration whose line search found no lower point reports
        the point it started from); the points evaluated on the way are
        then forgotten. (A cache of the last 16 points, cleared when full,
        had lost the current point after 24 evaluations under OpenBLAS's
        SandyBridge kernels: a KeyError out of the fit.)
        """
        key = x.tobytes()
        if key == self.x.tobytes():
            f, g = self.f, self.g
        elif key in self.seen:
            f, g = self.seen[key]
        else:  # not a point it asked for: evaluate it (it never was, so far)
            f, g = self.value(x)
        self.seen.clear()
        s, y = x - self.x, g - self.g
        sy = float(s @ y)
        if sy > 1e-12 * float(np.linalg.norm(s) * np.linalg.norm(y)):
            if self.B is None:
                self.B = (float(y @ y) / sy) * np.eye(len(x))
            Bs = self.B @ s
            self.B = self.B - np.outer(Bs, Bs) / float(s @ Bs) + np.outer(y, y) / sy
        self.x, self.f, self.g = x.copy(), f, g
        if self.B is None:
            return np.abs(s)
        free = ~((x <= self.lower) & (g >= 0))
        step = np.zeros_like(x)
        step[free] = np.linalg.solve(self.B[np.ix_(free, free)], g[free])
        return np.abs(step)


def descend(
    fungrad: ValueGradient,
    start: np.ndarray,
    lower: np.ndarray,
    handover: float = HANDOVER,
    tol: float = 1e-8,
    maxiter: int = MAXITER,
) -> Descent:
    """Minimise from ``start`` subject to ``x >= lower`` with L-BFGS-B.

    Parameters
    ----------
    fungrad : callable, x (k,) -> (f, g)
        Returns ``inf`` (any gradient) where the objective is not defined.
    start, lower : ndarray, shape (k,)
    handover : float
        Stop once the quasi-Newton step predicted from an accepted iterate
        is below ``handover * max(1, |x|)`` in every element.
    tol : float
        The first-order gain (:func:`gain`) allowed at a converged point,
        relative to ``max(1, |f|)``.
    """
    run = _Run(fungrad, start, lower)

    def stop_when_near(intermediate_result: OptimizeResult) -> None:
        x = np.array(intermediate_result.x, dtype=float)
        if np.all(run.accept(x) <= handover * np.maximum(1.0, np.abs(x))):
            raise StopIteration

    res = minimize(
        lambda x: run.value(x) if x.tobytes() != run.x.tobytes() else (run.f, run.g),
        run.x,
        jac=True,
        method="L-BFGS-B",
        bounds=[(lo if np.isfinite(lo) else None, None) for lo in lower],
        callback=stop_when_near,
        options={"ftol": 0.0, "gtol": 0.0, "maxiter": maxiter, "maxfun": 10 * maxiter},
    )
    x, f, g = run.x, run.f, run.g
    if not np.isfinite(f):  # not even the start was finite
        return Descent(x, f, g, np.eye(len(x)), run.evals, False, "objective not finite")
    stopped = res.status in (0, 2, 99) and not run.infinite  # 2: the line search ended it
    converged = stopped and gain(g, x, lower) <= tol * max(1.0, abs(f))
    status = "near the optimum" if res.status == 99 else str(res.message)
    B = run.B if run.B is not None else np.linalg.inv(res.hess_inv.todense())
    return Descent(x, f, g, 0.5 * (B + B.T), run.evals, converged, status)


ESCAPE_STEP = 1e-2  # how far off the bound escape() looks, relative to max(1, |x|)


def escape(
    fungrad: ValueGradient,
    x: np.ndarray,
    f: float,
    g: np.ndarray,
    lower: np.ndarray,
    tol: float = 1e-8,
    step: float = ESCAPE_STEP,
) -> tuple[np.ndarray | None, int]:
    """A lower point one step off a bound that the gradient does not hold ``x`` on.

    For every element at a finite bound whose derivative does not push
    outwards by more than the first-order tolerance (``g_i * 0.1 <= tol *
    max(1, |f|)``, :func:`gain`'s scale at 0), the objective is evaluated
    with that element at ``lower_i + step * max(1, max|x|)``; an objective
    even in the element is there ``f + f'' step^2 / 2`` to third order, so
    a fall beyond rounding (1e-12 relative) shows a saddle. A genuine
    boundary optimum (a variance the data put at 0) rises or stays flat.

    Returns
    -------
    point : ndarray, shape (k,), or None
        The lowest such point where the objective is lower than ``f``; None
        when there is none (``x`` is a minimum along every bound direction).
    evals : int
        Calls of ``fungrad``.
    """
    at_bound = (x <= lower) & np.isfinite(lower)
    loose = np.maximum(g, 0.0) * 0.1 <= tol * max(1.0, abs(f))
    delta = step * max(1.0, float(np.abs(x).max(initial=0.0)))
    best, best_f, evals = None, f - 1e-12 * max(1.0, abs(f)), 0
    for i in np.flatnonzero(at_bound & loose):
        point = x.copy()
        point[i] = lower[i] + delta
        value = float(fungrad(point)[0])
        evals += 1
        if value < best_f:
            best, best_f = point, value
    return best, evals
