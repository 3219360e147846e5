"""Fisher scoring on the average information: the optimizer for blocked models.

Each iteration solves ``H d = -g`` with the average-information matrix
``H`` (:mod:`mixedfx.engine.information`), read off the same factorization
as the objective and its gradient, and moves along ``d`` with a
backtracking line search. ``H`` is positive semidefinite everywhere and
within a few percent of the Hessian near the optimum, so the iterates
converge almost quadratically from lme4's start: InstEval (three crossed
intercepts) in 9 factorizations where L-BFGS-B took 23, 125,000 groups of
``(x | g)`` in 7 where it took 16.

Bounds. Elements at a bound whose derivative pushes outwards stay there;
a step never sets a positive diagonal of ``T`` to 0, but shrinks it by at
most :data:`SHRINK` per iteration. A first step that lands on 0 can stop
at a saddle: for a scalar term the objective is even in its theta, so the
derivative at 0 is exactly 0 (InstEval: the first full step put
``dept:service`` at 0, 81 units above the optimum). A variance that
belongs at 0 is approached geometrically, and set to 0 once the next
step would leave it within :data:`SNAP` of it (relative): there the step that would cross 0 is the
full Newton step, whose length grows as the diagonal shrinks (its row of
the information vanishes with it), so it would never fall below the
stopping rule's.

Like :func:`mixedfx.engine.descent.descend`, the iterations stop once the
next step is below ``handover`` (relative) without evaluating it, and
also once the decrease it predicts, ``-g'd``, is below :data:`FLAT`
(relative), the size of what the line search accepts as no rise: on a
ridge where the optimum is not unique (a rank-deficient 3 x 3 covariance)
the steps along it are long and gain nothing, and scoring spent 191
evaluations there where it now stops after 7. The caller finishes with
Newton steps on the last ``H``. Where scoring cannot
go on (no lower point along ``d``, a singular ``H``), L-BFGS-B continues
from the lowest point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .descent import HANDOVER, Descent, ValueGradient, descend, gain

ValueGradientInformation = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]]

SHRINK = 0.1  # a step leaves a positive diagonal at least this fraction of its distance to 0
FLAT = 1e-12  # a predicted decrease below this (relative) ends the iterations
SNAP = 1e-6  # ... unless that leaves it below this (relative): then it goes to 0
MAXITER = 100
DAMPING = 1e-3  # the first damping after a failed step, relative to H's largest diagonal
TRIALS = 15  # damped steps tried (to 1e11 of H's diagonal) before scoring gives up
STUBBORN = 3  # iterations in a row whose full step was refused hand over to L-BFGS-B


def score(
    fgh: ValueGradientInformation,
    fungrad: ValueGradient,
    start: np.ndarray,
    lower: np.ndarray,
    handover: float = HANDOVER,
    tol: float = 1e-8,
) -> Descent:
    """Minimise from ``start`` subject to ``x >= lower`` by Fisher scoring.

    Parameters
    ----------
    fgh : callable, x (k,) -> (f, g, H)
        The objective, its gradient (k,) and the average information (k, k);
        ``f`` is ``inf`` where the objective is not defined.
    fungrad : callable, x (k,) -> (f, g)
        For L-BFGS-B where scoring cannot go on.
    start, lower : ndarray, shape (k,)
    handover : float
        Stop once the next step is below ``handover * max(1, |x|)`` in every element.
    tol : float
        The first-order gain (:func:`~mixedfx.engine.descent.gain`) allowed at
        a converged point, relative to ``max(1, |f|)``.

    Returns
    -------
    Descent
        ``hessian`` is the average information at ``x``; ``evals`` counts
        calls of ``fgh`` and ``fungrad``.
    """
    x = np.asarray(start, dtype=float).copy()
    f, g, H = fgh(x)
    evals = 1
    if not np.isfinite(f):
        return Descent(x, f, g, np.eye(len(x)), evals, False, "objective not finite", "scoring")
    status, damping, damped = "iteration limit", 0.0, 0
    for _ in range(MAXITER):
        free = ~((x <= lower) & (g >= 0))
        if not free.any():
            status = "every element held at its bound"
            break
        d = newton_step(H, g, free)
        if d is None:
            status = "average information singular"
            break
        if -float(g @ d) <= FLAT * max(1.0, abs(f)):
            status = "near the optimum"  # no decrease left that an evaluation could confirm
            break
        longest, snap = _longest(x, d, lower)
        step = _moved(x, d, lower, longest, snap) - x
        if np.all(np.abs(step) <= handover * np.maximum(1.0, np.abs(x))):
            status = "near the optimum"
            break
        moved, damping = _damped_step(fgh, x, f, g, H, free, lower, damping)
        evals += moved[-1]
        if moved[0] is None:
            status = "no lower point along the scoring direction"
            break
        damped = damped + 1 if moved[-1] > 1 else 0
        if damped == STUBBORN:
            status = f"{STUBBORN} damped steps in a row"
            x, f, g, H = moved[0], moved[1], moved[2], moved[3]
            break
        x, f, g, H = moved[0], moved[1], moved[2], moved[3]
    if status in ("near the optimum", "every element held at its bound"):
        converged = gain(g, x, lower) <= tol * max(1.0, abs(f))
        return Descent(x, f, g, H, evals, converged, status, "scoring")
    rest = descend(fungrad, x, lower, handover, tol)  # L-BFGS-B from the lowest point
    method = "scoring, then L-BFGS-B"
    return Descent(rest.x, rest.f, rest.g, rest.hessian, evals + rest.evals, rest.converged,
                   f"{status}; L-BFGS-B: {rest.status}", method)  # fmt: skip


def _damped_step(
    fgh: ValueGradientInformation,
    x: np.ndarray,
    f: float,
    g: np.ndarray,
    H: np.ndarray,
    free: np.ndarray,
    lower: np.ndarray,
    damping: float,
) -> tuple[tuple, float]:
    """The first lower point along steps of growing damping (Levenberg), and the next damping.

    Returns ``((x, f, g, H, evals), damping)`` with ``x`` None where no trial
    was lower. A failed trial multiplies the damping by 10 (from
    :data:`DAMPING`), a success divides it by 10 (to 0 below :data:`DAMPING`).
    """
    evals = 0
    for _ in range(TRIALS):
        d = newton_step(H, g, free, damping)
        if d is None:
            break
        longest, snap = _longest(x, d, lower)
        new = _moved(x, d, lower, longest, snap)
        fn, gn, Hn = fgh(new)
        evals += 1
        decrease = 1e-4 * float(g @ (new - x)) + 1e-12 * max(1.0, abs(f))
        if np.isfinite(fn) and fn <= f + decrease:
            damping = damping / 10.0 if damping > DAMPING else 0.0
            return (new, fn, gn, Hn, evals), damping
        damping = max(10.0 * damping, DAMPING)
    return (None, f, g, H, evals), damping


def newton_step(
    H: np.ndarray, g: np.ndarray, free: np.ndarray, damping: float = 0.0
) -> np.ndarray | None:
    """``-(H + mu I)^-1 g`` on the free elements (0 elsewhere); None where that is singular.

    ``mu`` is ``damping`` times the largest diagonal of H's free block. A
    free block that is only semidefinite (a term whose theta is 0 gives a
    zero row) has 1e-10 of its largest diagonal added.
    """
    sub = H[np.ix_(free, free)]
    scale = float(np.abs(np.diag(sub)).max(initial=0.0))
    if not scale > 0.0:
        return None
    sub = sub + (damping * scale) * np.eye(len(sub))
    for ridge in (0.0, 1e-10 * scale):
        try:
            L = np.linalg.cholesky(sub + ridge * np.eye(len(sub)))
        except np.linalg.LinAlgError:
            continue
        d = np.zeros_like(g)
        d[free] = -np.linalg.solve(L.T, np.linalg.solve(L, g[free]))
        return d
    return None


def _longest(x: np.ndarray, d: np.ndarray, lower: np.ndarray) -> tuple[float, np.ndarray]:
    """The longest step allowed along ``d`` (at most 1), and what snaps to its bound.

    The longest keeps every element with a finite bound that the full step
    would take past it at least :data:`SHRINK` of its distance to the
    bound, unless that fraction is below :data:`SNAP` (relative to
    ``max(1, |x|)``): such elements go to the bound (``snap``, a bool mask),
    and the others set the length.
    """
    scale = max(1.0, float(np.abs(x).max(initial=0.0)))
    past = np.isfinite(lower) & (x > lower) & (x + d < lower)
    snap = past & (SHRINK * (x - lower) < SNAP * scale)
    room = past & ~snap
    longest = 1.0
    if room.any():
        longest = min(1.0, float(((1.0 - SHRINK) * (x[room] - lower[room]) / -d[room]).min()))
    return longest, snap


def _moved(
    x: np.ndarray, d: np.ndarray, lower: np.ndarray, a: float, snap: np.ndarray
) -> np.ndarray:
    """``x + a d`` kept above ``lower``, with the ``snap`` elements on their bounds."""
    return np.where(snap, lower, np.maximum(x + a * d, lower))
