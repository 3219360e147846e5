"""Minimise the profiled objective over theta with bounds: the method chosen for the model.

Small models (:mod:`mixedfx.engine.dense`) have the Hessian in closed form,
and Newton's method on it (:mod:`mixedfx.engine.exactnewton`) reaches an
interior optimum in 6 to 10 evaluations (:func:`small`); where a variance
heads for 0, or the method cannot go on, BOBYQA takes over, as lme4 does
(:mod:`mixedfx.engine.bobyqa`). Blocked models, whose evaluations factor a
large matrix, use Fisher scoring on the average information
(:mod:`mixedfx.engine.scoring`) when they have two or more terms
(:func:`scored`), else L-BFGS-B on the analytic gradient
(:mod:`mixedfx.engine.descent`), which also takes over where scoring
cannot go on.

:func:`fit_theta` is the whole sequence: the local method, then a look
at the boundary, then the Newton finish of :mod:`mixedfx.engine.newton`.
BOBYQA stops early at boundary (singular) optima, so from there
:func:`boundary_restarts` runs it from other starts. So does L-BFGS-B
(its first step can put a variance at 0, and it may stop there), so its
results on the boundary are checked by scoring from the same start
(:func:`rescored`), and restarted where L-BFGS-B still has the last word
(:func:`needs_restarts`). Scoring does not restart: on 306 random blocked
designs its boundary optima were never above what the restarts found, and
the restarts cost three to ten times the fit. But where a diagonal of a
covariance block is 0 and rows follow it, the optimum in theta is a ridge
of equivalent points, on part of which the bound holds that diagonal at 0
when the objective would fall off it; :func:`ridge_turns` looks along the
ridge. BOBYQA's optimum is settled
(:func:`~mixedfx.engine.newton.settle`): Newton steps on the analytic
gradient (:mod:`mixedfx.engine.gradient`) locate it to the precision of
the sums, so fits on rows in another order or on Dask partitions give the
same theta to ~1e-10, where BOBYQA alone leaves ~1e-5. Scoring and L-BFGS-B
get there with the polish that follows them
(:func:`~mixedfx.engine.newton.polish`); they are settled only when they
did not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from . import descent as descent_mod
from . import exactnewton
from . import scoring as scoring_mod
from .blocks import Blocks
from .bobyqa import Local, OptSummary, bobyqa
from .descent import HANDOVER, MAXITER, ValueGradient, descend, escape, gain
from .layout import ThetaLayout
from .newton import SETTLE_TOL, Remembered, polish, settle
from .objective import Objective
from .scoring import ValueGradientInformation, score

BOUNDARY = 1e-4  # a diagonal of T below this is on the boundary (lme4's singular test)
SCORED_LEVELS = 1000  # one-term models with up to this many levels are fitted by scoring (scored)


def on_boundary(opt: OptSummary, diagonal: np.ndarray, tol: float = BOUNDARY) -> bool:
    """Whether a diagonal of ``T`` at ``opt.final`` is below ``tol`` (a singular fit)."""
    return bool(np.any(opt.final[diagonal] < tol))


def quasi_newton(
    fungrad: ValueGradient,
    lower: np.ndarray,
    tol: float = 1e-8,
    information: ValueGradientInformation | None = None,
) -> Local:
    """:func:`mixedfx.engine.descent.descend`, then :func:`~mixedfx.engine.newton.polish` on
    its Hessian (always tight), and where that polish does not converge, one more on
    differenced gradients: a BFGS Hessian can be poor enough that five Newton steps
    shrink only linearly (``(x + z | g)``, 103 groups: 1e-7 to 1.5e-8), and the
    probe and settle that then followed cost twice the ``k + 2`` gradients of the
    second polish.

    With ``information`` (the objective, gradient and average information
    of :mod:`mixedfx.engine.information`), Fisher scoring
    (:func:`mixedfx.engine.scoring.score`) takes L-BFGS-B's place and the
    polish uses the average information.

    Where the result sits on a bound that the gradient does not hold it on
    and the objective falls one step off it (a saddle,
    :func:`~mixedfx.engine.descent.escape`), the descent starts again from
    there, as long as each restart ends lower. ``feval`` and
    ``extra["gradient_evals"]`` both count its calls of ``fungrad`` (each an
    objective and a gradient); ``extra["first_order"]`` is 1 where the
    polish converged and the first-order gain
    (:func:`~mixedfx.engine.descent.gain`) is below ``tol * max(1, |f|)``;
    ``extra["escapes"]`` counts the restarts off a saddle.
    """

    def once(start: np.ndarray) -> tuple[OptSummary, np.ndarray]:
        if information is None:
            d = descend(fungrad, start, lower)
        else:
            d = score(information, fungrad, start, lower)
        extra = {"gradient_evals": float(d.evals)}
        out = OptSummary(
            d.method, start.copy(), d.x, lower.copy(), d.f, d.evals, d.status, d.converged,
            HANDOVER, 0.0, MAXITER, extra,
        )  # fmt: skip
        out = polish(fungrad, out, lambda x: d.hessian)
        if not out.extra["newton_converged"]:  # a poor BFGS Hessian or information
            out = polish(fungrad, out)  # on finite differences of the gradient
        f, g = fungrad(out.final)
        met = out.extra["newton_converged"] and gain(g, out.final, lower) <= tol * max(1.0, abs(f))
        out = replace(
            out, converged=d.converged or bool(met), extra={**out.extra, "first_order": float(met)}
        )
        return out, g

    def local(start: np.ndarray, tight: bool) -> OptSummary:
        out, g = once(start)
        feval, gevals, escapes = out.feval, out.extra["gradient_evals"], 0
        for _ in range(len(start)):  # each restart must end lower: a few at most
            point, probes = escape(fungrad, out.final, out.fmin, g, lower, tol)
            feval, gevals = feval + probes, gevals + probes
            if point is None:
                break
            again, g_again = once(point)
            feval, gevals = feval + again.feval, gevals + again.extra["gradient_evals"]
            if not again.fmin < out.fmin:
                break
            out, g, escapes = again, g_again, escapes + 1
        extra = {**out.extra, "gradient_evals": gevals, "escapes": float(escapes)}
        return replace(out, start=start.copy(), feval=feval, extra=extra)

    return local


def _counted(opt: OptSummary, *runs: OptSummary) -> dict[str, float]:
    """``opt.extra`` with the gradient evaluations of ``runs`` added."""
    extra = dict(opt.extra)
    more = sum(r.extra.get("gradient_evals", 0.0) for r in runs)
    if more:
        extra["gradient_evals"] = extra.get("gradient_evals", 0.0) + more
    return extra


def boundary_probe(
    fun: Callable[[np.ndarray], float],
    first: OptSummary,
    diagonal: np.ndarray,
    local: Local | None = None,
) -> OptSummary:
    """From an interior optimum, look at the boundary before trusting it.

    BOBYQA can stop at an interior local minimum while the global minimum is
    on the boundary (a variance of 0; seen with a few singleton groups). We
    evaluate the objective with all of theta at 0 and with each diagonal of T
    at 0 in turn; if one is lower, we minimise again from the lowest with
    ``local`` (BOBYQA by default). Every evaluation counts in ``feval``.
    """
    probes = [np.where(diagonal, 0.0, 0.0)]
    for i in np.flatnonzero(diagonal):
        if diagonal.sum() > 1:
            point = first.final.copy()
            point[i] = 0.0
            probes.append(point)
    values = [float(fun(p)) for p in probes]
    best = int(np.argmin(values))
    total = first.feval + len(probes)
    if not values[best] < first.fmin - 1e-10 * max(1.0, abs(first.fmin)):
        return replace(first, feval=total)
    res = (local or bobyqa(fun, first.lower))(probes[best], False)
    if res.fmin >= first.fmin:
        return replace(first, feval=total + res.feval, extra=_counted(first, res))
    extra = {**_counted(res, first), "boundary_probe": 1.0, "first_fmin": first.fmin}
    return replace(res, start=first.start, feval=total + res.feval, extra=extra)


def boundary_restarts(
    fun: Callable[[np.ndarray], float],
    first: OptSummary,
    diagonal: np.ndarray,
    local: Local,
    tol: float = BOUNDARY,
) -> OptSummary:
    """Re-run from other starts when the optimum is on the boundary; keep the best.

    Boundary (singular) optima are where BOBYQA most often stops at a local
    minimum: a variance collapses to 0 while another direction would have
    reached a lower objective. We restart from identity factors scaled by
    0.5 and 2, for terms with correlations with all off-diagonals at +1
    and -1, and, with two or more diagonals, from the identity with each
    diagonal in turn at 0 (another face of the boundary: a random slope fit
    whose intercept variance went to 0 from every other start had its
    optimum, 0.047 lower, on the face where the slope's own diagonal is 0);
    the lowest objective wins and ``feval`` counts every evaluation.

    The winner, its near-zero diagonals set to 0 where that is no worse, is
    then polished by one more run from there with tight tolerances: at a
    boundary the objective is so flat that lme4's 1e-8 leaves theta uncertain
    in its fourth digit.

    Parameters
    ----------
    fun : callable, theta -> objective
    first : OptSummary
        The result from lme4's start.
    diagonal : bool ndarray, shape (k,)
        Which elements of theta are diagonals of T (bounded at 0).
    local : Local
        The local minimiser for the restarts.
    """
    if not on_boundary(first, diagonal, tol):
        first = boundary_probe(fun, first, diagonal, local)
        if not on_boundary(first, diagonal, tol):
            return first
    starts = [np.where(diagonal, 0.5, 0.0), np.where(diagonal, 2.0, 0.0)]
    if not diagonal.all():
        starts += [np.where(diagonal, 1.0, 1.0), np.where(diagonal, 1.0, -1.0)]
    if diagonal.sum() > 1:  # one start on each face where one diagonal is 0
        for i in np.flatnonzero(diagonal):
            face = np.where(diagonal, 1.0, 0.0)
            face[i] = 0.0
            starts.append(face)
    best, total, runs = first, first.feval, []
    for start in starts:
        res = local(start, False)
        total += res.feval
        runs.append(res)
        if res.fmin < best.fmin - 1e-10 * max(1.0, abs(best.fmin)):
            best = res
    start = best.final
    snapped = np.where(diagonal & (start < tol), 0.0, start)  # BOBYQA stops near, not on, 0
    if float(fun(snapped)) <= best.fmin:
        start = snapped
    polished = local(start, True)
    total += polished.feval + 1
    runs.append(polished)
    if polished.fmin <= best.fmin:
        best = polished
    extra = {
        **_counted(first, *runs),
        "restarts": float(len(starts)),
        "first_fmin": first.extra.get("first_fmin", first.fmin),
        "polished": 1.0,
    }
    if "first_order" in best.extra:
        extra["first_order"] = best.extra["first_order"]
    return replace(best, start=first.start, feval=total, extra=extra)


def rescored(first: OptSummary, scoring: Local, diagonal: np.ndarray) -> OptSummary:
    """L-BFGS-B's result, or scoring's from the same start where L-BFGS-B ended on the boundary.

    L-BFGS-B's first step can put a diagonal of ``T`` at 0, and it may stop
    there at a point that meets the first-order conditions but is not the
    optimum (a term's variance collapsed where another direction falls):
    on random blocked designs it did so on 2 of the first 13, 1.4 and
    10.5 units above the optimum. Scoring never sets a diagonal to 0 in one
    step (:mod:`mixedfx.engine.scoring`) and reached the optimum from the
    same start, where seven to ten restarts from other starts had been
    needed: ``extra["rescored"]`` is 1 where it ran, and its result is kept
    unless L-BFGS-B's is lower (by more than 1e-10 relative).
    """
    if not on_boundary(first, diagonal):
        return first
    again = scoring(first.start, False)
    if again.fmin <= first.fmin + 1e-10 * max(1.0, abs(first.fmin)):  # ties: scoring's
        kept, other, more = again, first, {"first_fmin": first.fmin}
    else:
        kept, other, more = first, again, {}
    extra = {**_counted(kept, other), "rescored": 1.0, **more}
    return replace(kept, feval=first.feval + again.feval, extra=extra)


def ridge_turns(
    fungrad: ValueGradient, opt: OptSummary, layout: ThetaLayout, local: Local
) -> OptSummary:
    """From a boundary optimum on a ridge, the equivalent points from which the objective falls.

    Where a diagonal ``T_jj`` of a block is 0 and rows follow it, the column
    below it, ``c``, and the block's later columns ``R`` can be turned into
    each other: any ``(c', R')`` with ``c' c'' + R' R''  = S = c c' + R R'`` (R'
    lower triangular) gives the same ``T T'``, so the optimum in theta is a
    ridge. The derivative along ``T_jj`` at 0 is ``2 a' c`` for the block's
    ``a = (df/dSigma)[j, j+1:]``: where the bound holds ``T_jj`` at 0 on one
    side of the ridge, on the other side the objective may fall as ``T_jj``
    leaves 0. A local optimizer stops anywhere on the ridge. Scoring from
    lme4's start stopped there 0.02 to 0.04 units above the optimum on 4 of
    700 random one-term designs (3 x 3 covariances, the middle diagonal at 0
    where the optimum had its last at 0), and 1.17 units above on a
    ``(f || g) + (1 | h)`` design (the first of f's diagonals at 0).

    With ``L L' = S`` (semidefinite Cholesky), the points ``c' = +-L e_m``,
    ``R' = L`` without its column m, are on the ridge, and ``a' L e_m`` is 0
    for every m only where ``a`` is (in ``S``'s range): their gradients (2
    per row below ``T_jj``) show whether the objective falls off the ridge
    anywhere. ``local`` runs from each point where it does, and the lowest
    result is kept; ``extra["turns"]`` counts those runs.
    """
    best, total, turned = opt, opt.feval, 0.0
    x = opt.final
    for P in layout.block_positions():
        b = len(P)
        for j in range(b - 1):
            if not x[P[j, j]] < BOUNDARY:
                continue
            T = np.where(P >= 0, x[P], 0.0)
            below = T[j + 1 :, j : j + 1]
            rest = T[j + 1 :, j + 1 :]
            L = _semidefinite_cholesky(below @ below.T + rest @ rest.T)
            for m in range(b - j - 1):
                if not L[m, m] > 0.0:
                    continue
                for sign in (1.0, -1.0):
                    turn = T.copy()
                    turn[j, j] = 0.0
                    turn[j + 1 :, j] = sign * L[:, m]
                    turn[j + 1 :, j + 1 :] = np.where(np.arange(b - j - 1) == m, 0.0, L)
                    point = x.copy()
                    point[P[P >= 0]] = turn[P >= 0]
                    f, g = fungrad(point)
                    total += 1
                    if not (np.isfinite(f) and g[P[j, j]] < 0.0):  # held at 0 here
                        continue
                    res = local(point, False)
                    total += res.feval
                    turned += 1.0
                    if res.fmin < best.fmin - 1e-10 * max(1.0, abs(best.fmin)):
                        best = res
    if best is opt and not turned:
        return replace(opt, feval=total)
    extra = {**_counted(best, *([] if best is opt else [opt])), "turns": turned}
    if best is not opt:
        extra["first_fmin"] = opt.extra.get("first_fmin", opt.fmin)
    return replace(best, start=opt.start, feval=total, extra=extra)


def _semidefinite_cholesky(S: np.ndarray) -> np.ndarray:
    """Lower ``L`` with ``L L' = S`` for a symmetric positive semidefinite ``S`` (k, k).

    A pivot at or below ``1e-14`` of the largest diagonal (rounding of 0) leaves
    its column 0.
    """
    k = len(S)
    L = np.zeros_like(S)
    tiny = 1e-14 * float(np.abs(np.diag(S)).max(initial=0.0))
    for c in range(k):
        pivot = S[c, c] - L[c, :c] @ L[c, :c]
        if pivot > tiny:
            L[c, c] = np.sqrt(pivot)
            L[c + 1 :, c] = (S[c + 1 :, c] - L[c + 1 :, :c] @ L[c, :c]) / L[c, c]
    return L


def needs_restarts(opt: OptSummary, blocks: Blocks) -> bool:
    """Whether a blocked fit's optimum on the boundary is checked by :func:`boundary_restarts`.

    - Where L-BFGS-B's own result was kept (:func:`rescored`): its first
      step can put a variance at 0, and it may stop there.
    - After scoring handed over to L-BFGS-B, with two or more terms: on 158
      random designs with three groupings, 4 such fits ended 2.5e-8 to
      2.1e-4 (relative) above what the restarts found. With one term, none
      of 61 did (rescored one-term designs, seeds 0 to 1000).

    Elsewhere scoring's boundary optimum stands, once :func:`ridge_turns`
    has looked along its ridges: on 315 boundary fits of 700 random one-term
    designs and 318 fits of two multi-term families, seven to ten restarts
    run afterwards never found a lower objective (without the turns, 4 of
    the one-term and 3 of the multi-term fits were above it).
    """
    if opt.optimizer == descent_mod.METHOD:
        return True
    return bool(blocks.rest) and opt.optimizer != scoring_mod.METHOD


def scored(blocks: Blocks) -> bool:
    """Whether :func:`fit_theta` fits a blocked model by Fisher scoring (else by L-BFGS-B).

    With two or more terms an evaluation factors the Schur block of the
    rest's random effects, which dominates it; the average information read
    off that factor adds 2 to 15 % and cuts the evaluations two- to
    eightfold. Measured fits, 1 BLAS thread, L-BFGS-B -> scoring: InstEval
    1.29 -> 0.76 s (23 -> 11 evaluations); (1 | u) + (z | i) on 50,000 rows
    5.6 -> 0.95 s (64 -> 8); (x | u) + (1 | i) 0.95 -> 0.36 s; (1 | a/b)
    0.33 -> 0.19 s. With one term the levels are independent given beta, an
    evaluation is one pass over them, and the information's per-level work
    costs two to five gradients: 125,000 groups of (x | g) took 0.15 s with
    L-BFGS-B (16 evaluations) and 0.31 s scoring (7); 2,000 to 50,000 groups
    of (1 | g), (x | g) and (x + z | g) 0.95 to 1.74 times as long scoring.
    Up to :data:`SCORED_LEVELS` levels, where numpy's per-call cost rather
    than the levels' work sets an evaluation's, scoring's steadier count
    wins: L-BFGS-B took 10 to 51 evaluations on 70 random one-term designs
    (a flat curved valley: 51 for a 2 x 2 covariance), scoring 6 to 24, and
    the fits took 0.87 times as long (geometric mean; 1.25 -> 1.09 s in all).
    """
    return bool(blocks.rest) or blocks.l0 <= SCORED_LEVELS


def small(
    fun: Callable[[np.ndarray], float],
    fungrad: ValueGradient,
    fgh: exactnewton.ValueGradientHessian,
    hess: Callable[[np.ndarray], np.ndarray | None],
    start: np.ndarray,
    diagonal: np.ndarray,
) -> OptSummary:
    """The optimum of a small model: Newton's method, else BOBYQA; boundary restarts; the finish.

    Newton's method on the closed-form Hessian (:mod:`mixedfx.engine.exactnewton`)
    from a start inside the bounds. An interior optimum it converged to is
    probed at the boundary (:func:`boundary_probe`) and kept as it is: its
    last step located it to the precision of the sums. Where a variance
    headed for 0 (:data:`BOUNDARY`), its point is the first of
    :func:`boundary_restarts` (BOBYQA from the other starts); where it could
    not go on (an iteration limit, a flat saddle), BOBYQA runs from ``start``
    as it did before Newton's method was tried. BOBYQA's results are settled
    (:func:`~mixedfx.engine.newton.settle`).
    """
    lower = np.where(diagonal, 0.0, -np.inf)
    local = bobyqa(fun, lower)
    opt = None
    if np.all(start[diagonal] >= BOUNDARY):
        opt = exactnewton.minimize(fgh, fungrad, start, lower, BOUNDARY, SETTLE_TOL)
        if not (opt.converged or opt.status == exactnewton.BOUNDARY):
            opt = None
    if opt is None:
        opt = local(start, False)
    if not on_boundary(opt, diagonal):
        opt = boundary_probe(fun, opt, diagonal, local)
    if opt.status == exactnewton.CONVERGED and opt.extra["first_order"]:
        return opt  # interior (the probe found nothing lower) and located to the sums' precision
    if on_boundary(opt, diagonal):
        opt = boundary_restarts(fun, opt, diagonal, local)
    return settle(fun, fungrad, opt, hess)


def fit_theta(objective: Objective, start: np.ndarray | None = None) -> OptSummary:
    """Minimise ``objective`` over theta: a local method, a look at the boundary, the Newton finish.

    Small models (an evaluator of :mod:`mixedfx.engine.dense`) use Newton's
    method, and BOBYQA with :func:`boundary_restarts` where it ends on the
    boundary or cannot go on (:func:`small`); blocked models
    use Fisher scoring (:func:`quasi_newton` with the objective's average
    information) when they have two or more terms or at most
    :data:`SCORED_LEVELS` levels, else L-BFGS-B (:func:`scored`), checked
    by scoring where it ends on the boundary
    (:func:`rescored`); a boundary optimum gets :func:`boundary_restarts`
    where :func:`needs_restarts` says so, else :func:`ridge_turns`. They are
    settled (and probed for a lower boundary point from an interior one)
    only when they stopped without meeting the first-order conditions.

    The objective's blocks are in standardized coordinates
    (:mod:`mixedfx.engine.standard`), so theta is in units where every
    random-effect column has root mean square 1 and the start (identity
    factors) does not depend on the data's units or offsets.

    Parameters
    ----------
    objective : Objective
    start : ndarray, shape (ntheta,), optional
        A warm start in the objective's (standardized) theta units, e.g. a
        bootstrap refit from the fit's standardized theta; lme4's identity
        start by default.

    Returns
    -------
    OptSummary
        With ``start`` and ``final`` in the objective's theta units.
    """
    fun = objective
    lower, cached, before = (
        objective.lower(),
        Remembered(objective.value_and_gradient),
        objective.nevals,
    )

    def information(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:  # kept as above
        f, g, h = objective.value_gradient_information(x)
        cached.evals += 1
        if np.isfinite(f):
            cached.remember(x, f, g)
        return f, g, h

    def exact(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:  # kept as above
        cached.evals += 1
        try:
            out = objective.second_order(x)
        except np.linalg.LinAlgError:  # not positive definite: the objective is not defined
            out = None
        if out is None:
            return math.inf, np.zeros(len(x)), np.zeros((len(x), len(x)))
        if math.isfinite(out[0]):
            cached.remember(x, out[0], out[1])
        return out

    diagonal = lower == 0.0
    first = objective.start() if start is None else np.asarray(start, dtype=float)
    if objective.dense is not None:
        opt = small(fun, cached, exact, lambda x: exact(x)[2], first, diagonal)
    else:
        scoring = quasi_newton(cached, lower, information=information)
        if scored(objective.blocks):
            local = scoring
            opt = scoring(first, False)
        else:
            local = quasi_newton(cached, lower)
            opt = rescored(local(first, False), scoring, diagonal)
        if on_boundary(opt, diagonal):
            if needs_restarts(opt, objective.blocks):
                opt = boundary_restarts(fun, opt, diagonal, local)
            else:
                opt = ridge_turns(cached, opt, objective.layout, local)
        elif not opt.extra["first_order"]:
            opt = boundary_probe(fun, opt, diagonal, local)
        if not opt.extra["first_order"]:
            opt = settle(fun, cached, opt)
    # the counts of work actually done (remembered values are not counted again)
    extra = {**opt.extra, "gradient_evals": float(cached.evals)}
    feval = objective.nevals - before + cached.evals
    return replace(opt, feval=feval, extra=extra)
