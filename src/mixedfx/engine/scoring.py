"""Fisher scoring on the average information: the optimizer for crossed and nested models.

Each iteration solves ``H d = -g`` with the average-information matrix
``H`` (:mod:`mixedfx.engine.information`), read off the same factorization
as the objective and its gradient, and takes the step if the objective
falls; if not, it tries ``(H + mu I) d = -g`` with growing ``mu``
(Levenberg's damping), which shortens the step and turns it towards the
gradient. ``H`` is positive semidefinite everywhere and within a few
percent of the Hessian near an interior optimum, so the iterates converge
almost quadratically from lme4's start: InstEval (three crossed
intercepts) in 9 factorizations where L-BFGS-B took 23.

Bounds. Elements at a bound whose derivative pushes outwards stay there;
a step never sets a positive diagonal of ``T`` to 0, but shrinks it by at
most :data:`SHRINK` per iteration. A first step that lands on 0 can stop
at a saddle: for a scalar term the objective is even in its theta, so the
derivative at 0 is exactly 0 (InstEval: the first full step put
``dept:service`` at 0, 81 units above the optimum). A variance that
belongs at 0 is approached geometrically, and set to 0 once the next step
would leave it within :data:`SNAP` of it (relative): the step that would
cross 0 grows as the diagonal shrinks (its row of the information vanishes
with it), so it would never fall below the stopping rule's.

Stopping. Like :func:`mixedfx.engine.descent.descend`, the iterations stop
once the next step is below ``handover`` (relative) without evaluating it,
and also once the decrease it predicts, ``-g'd``, is below :data:`FLAT`
(relative), what the acceptance test cannot tell from no rise: on a ridge
where the optimum is not unique (a rank-deficient 3 x 3 covariance) steps
along it are long and gain nothing; scoring spent 191 evaluations there
before this rule, 7 with it. The caller finishes with Newton steps on the
last ``H``.

Where scoring cannot go on (no lower point even with the largest damping,
a singular ``H``) or goes on badly (:data:`STUBBORN` damped iterations in a
row: a curved valley, as when a correlation heads for -1 and theta moves
along a circle), L-BFGS-B continues from the lowest point.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .descent import HANDOVER, Descent, ValueGradient, descend, gain
from .linalg import definite_solve

ValueGradientInformation = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]]

SHRINK = 0.1  # a step leaves a positive diagonal at least this fraction of its distance to 0
FLAT = 1e-12  # a predicted decrease below this (relative) ends the iterations
SNAP = 1e-6  # ... unless that leaves it below this (relative): then it goes to 0
MAXITER = 100
METHOD = "scoring"  # the method of a result scoring reached alone (else "scoring, then L-BFGS-B")
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
        return Descent(x, f, g, np.eye(len(x)), evals, False, "objective not finite", METHOD)
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
        new = _moved(x, d, lower, longest, snap)
        if np.all(np.abs(new - x) <= handover * np.maximum(1.0, np.abs(x))):
            status = "near the optimum"
            break
        first = new if damping == 0.0 else None  # the first trial, when undamped
        point, trials, damping = _damped_step(fgh, x, f, g, H, free, lower, damping, first)
        evals += trials
        if point is None:
            status = "no lower point along the scoring direction"
            break
        x, f, g, H = point
        damped = damped + 1 if trials > 1 else 0
        if damped == STUBBORN:
            status = f"{STUBBORN} damped steps in a row"
            break
    if status in ("near the optimum", "every element held at its bound"):
        converged = gain(g, x, lower) <= tol * max(1.0, abs(f))
        return Descent(x, f, g, H, evals, converged, status, METHOD)
    rest = descend(fungrad, x, lower, handover, tol)  # L-BFGS-B from the lowest point
    method = f"{METHOD}, then L-BFGS-B"
    return Descent(rest.x, rest.f, rest.g, rest.hessian, evals + rest.evals, rest.converged,
                   f"{status}; L-BFGS-B: {rest.status}", method)  # fmt: skip


Point = tuple[np.ndarray, float, np.ndarray, np.ndarray]  # x, f, g, H


def _damped_step(
    fgh: ValueGradientInformation,
    x: np.ndarray,
    f: float,
    g: np.ndarray,
    H: np.ndarray,
    free: np.ndarray,
    lower: np.ndarray,
    damping: float,
    first: np.ndarray | None = None,
) -> tuple[Point | None, int, float]:
    """The first lower point along steps of growing damping (Levenberg).

    ``first``, when given, is the first trial point: the step with
    ``damping``, which the caller has already worked out.
    Returns the point (None where no trial was lower), the trials (each an
    evaluation) and the next damping: a failed trial multiplies the damping
    by 10 (from :data:`DAMPING`), a success divides it by 10 (to 0 below
    :data:`DAMPING`).
    """
    trials = 0
    for trial in range(TRIALS):
        new = first
        if trial or new is None:
            d = newton_step(H, g, free, damping)
            if d is None:
                break
            longest, snap = _longest(x, d, lower)
            new = _moved(x, d, lower, longest, snap)
        fn, gn, Hn = fgh(new)
        trials += 1
        decrease = 1e-4 * float(g @ (new - x)) + 1e-12 * max(1.0, abs(f))
        if np.isfinite(fn) and fn <= f + decrease:
            damping = damping / 10.0 if damping > DAMPING else 0.0
            return (new, fn, gn, Hn), trials, damping
        damping = max(10.0 * damping, DAMPING)
    return None, trials, damping


def newton_step(
    H: np.ndarray, g: np.ndarray, free: np.ndarray, damping: float = 0.0
) -> np.ndarray | None:
    """``-(H + mu I)^-1 g`` on the free elements (0 elsewhere); None where that is singular.

    ``mu`` is ``damping`` times the largest diagonal of H's free block. A
    free block that is only semidefinite (a term whose theta is 0 gives a
    zero row) has 1e-10 of its largest diagonal added.
    """
    every = bool(free.all())
    sub = H if every else H[np.ix_(free, free)]
    scale = float(np.abs(sub.diagonal()).max(initial=0.0))
    if not scale > 0.0:
        return None
    for ridge in (damping * scale, (damping + 1e-10) * scale):
        shifted = sub.copy()
        shifted.flat[:: len(sub) + 1] += ridge
        step = definite_solve(shifted, g[free])
        if step is None:
            continue
        if every:
            return -step
        d = np.zeros_like(g)
        d[free] = -step
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
