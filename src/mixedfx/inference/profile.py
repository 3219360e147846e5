"""Profile-likelihood confidence intervals (lme4's ``confint(method="profile")``).

As lme4, the ML deviance is profiled, also for a REML fit (lme4's
``profile`` refits by ML first), so the intervals are centred on the ML
estimates. For one parameter held at ``v`` the deviance is minimised over
all the others::

    zeta(v) = sign(v - v_hat) sqrt(dev(v) - dev(v_hat))

and the interval's ends are the roots of ``zeta(v) = -/+ z_(1+level)/2``,
found by bracketing outward and Brent's method (lme4 interpolates a spline
through a grid of profile points instead; the two agree to its spline's
accuracy). Variance parameters are on lme4's sd/cor scale
(:mod:`mixedfx.engine.sdcor`; ``sigma`` explicit), each other parameter free
within its bounds (sd >= 0, |cor| <= 1); fixed effects are held through the
response (:func:`mixedfx.engine.profiling.hold_linear`), with theta free and
sigma profiled. Every deviance is evaluated in the fit's standardized
coordinates (:mod:`mixedfx.engine.standard`), and the free parameters are
standardized ones (:mod:`mixedfx.inference.variance_path`), so shifted or
rescaled columns, also in a random slope, neither cancel nor make the
minimisation ill-conditioned. An end that the profile
does not reach before a bound (an sd of 0, a correlation of +/-1) is that
bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from ..engine.bobyqa import minimize
from ..engine.objective import Objective
from ..engine.profiling import hold_linear
from .variance_path import VariancePath
from .varpar import fit_objective, refit

if TYPE_CHECKING:
    from ..model import LinearMixedModel


class FixedPath:
    """The ML deviance with one fixed effect held, minimised over theta (sigma profiled).

    In the fit's standardized coordinates: the user's ``beta = s G_X beta_s
    + c v_X`` (:mod:`mixedfx.engine.standard`), so ``beta_j = v`` is the
    linear constraint ``a' beta_s = (v - c v_j) / s`` with ``a`` row j of
    ``G_X``, held on the standardized blocks
    (:func:`~mixedfx.engine.profiling.hold_linear`). Theta is the
    standardized one; the deviance is the standardized one, the user's less
    a constant.
    """

    def __init__(self, model: LinearMixedModel) -> None:
        std = model.standardized
        self.theta_hat, self.blocks, self.layout = std.theta, model.blocks, model.spec.layout
        self.dev_hat = Objective(model.blocks, self.layout, reml=False)(std.theta)
        coords = std.coords
        v = coords.x_weights
        self.shift = np.zeros(len(model.beta)) if v is None else coords.y_centre * v
        self.G = coords.xy.matrix()[:-1, :-1]
        self.s = coords.y_scale
        self.warm: dict[tuple[int, int], np.ndarray] = {}

    def profile(self, j: int, v: float, side: int) -> float:
        held_at = (v - self.shift[j]) / self.s
        held = Objective(hold_linear(self.blocks, self.G[j], held_at), self.layout, reml=False)
        start = self.warm.get((j, side), self.theta_hat)
        opt = minimize(held, start, held.lower(), 1e-10, 1e-10)
        self.warm[(j, side)] = opt.final
        return opt.fmin - self.dev_hat


def end(
    excess: Callable[[float, int], float],
    hat: float,
    step: float,
    side: int,
    target: float,
    bounds: tuple[float, float],
) -> float:
    """The value on ``side`` (-1 or +1) of ``hat`` where ``sqrt(excess) = target``.

    Steps outward, doubling, until the excess deviance passes ``target^2``
    or a bound is reached (then the bound is the end), then Brent's method.
    """
    level = target * target
    inner, x = hat, hat
    for _ in range(60):
        x = min(max(inner + side * step, bounds[0]), bounds[1])
        if excess(x, side) >= level:
            break
        if x in bounds:
            return x
        inner, step = x, 2.0 * step
    else:
        return math.nan
    scale = max(abs(hat), step)
    return float(brentq(lambda v: excess(v, side) - level, inner, x, xtol=1e-9 * scale))


def first_step(var: VariancePath, i: int, hat: float) -> float:
    """The first step out of ``hat``: a quarter of an sd (floored), 0.1 of a correlation.

    Of a correlation within 0.2 of +/-1, half its distance to the bound
    (an intercept far from the data has one of -1 + 1e-11, where 0.1 is
    far outside the interval and a warm start from there is lost).
    """
    if not var.is_cor[i]:
        return 0.25 * max(abs(hat), float(var.floor[i]))
    gap = 1.0 - abs(hat)
    return 0.1 if gap <= 0.0 else min(0.1, 0.5 * gap)


def profile_intervals(model: LinearMixedModel, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends for the sd/cor/sigma parameters then the fixed effects."""
    fit_objective(model)  # refuses a conditioned model
    ml = refit(model, reml=False)
    target = float(norm.ppf(0.5 + level / 2.0))
    var = VariancePath(ml)
    lows, highs = [], []
    for i, hat in enumerate(var.user_hat):
        bounds = (-1.0, 1.0) if var.is_cor[i] else (0.0, math.inf)
        ends = [
            end(partial(var.profile, i), hat, first_step(var, i, hat), side, target, bounds)
            for side in (-1, 1)
        ]
        lows.append(ends[0])
        highs.append(ends[1])
    fixed = FixedPath(ml)
    se = np.sqrt(np.diag(ml.vcov_beta))
    for j, hat in enumerate(ml.beta):
        free = (-math.inf, math.inf)
        ends = [end(partial(fixed.profile, j), hat, se[j], side, target, free) for side in (-1, 1)]
        lows.append(ends[0])
        highs.append(ends[1])
    return np.asarray(lows), np.asarray(highs)
