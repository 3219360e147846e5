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
response (:func:`mixedfx.engine.profiling.hold_fixed`), with theta free and
sigma profiled. An end that the profile does not reach before a bound
(an sd of 0, a correlation of +/-1) is that bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from ..engine import varpar as engine_varpar
from ..engine.objective import Objective
from ..engine.optimize import minimize
from ..engine.profiling import hold_fixed
from ..engine.sdcor import from_sdcor, to_sdcor
from .varpar import fit_objective, refit

if TYPE_CHECKING:
    from ..model import LinearMixedModel

PENALTY = 1e10  # deviance where a covariance is not positive semidefinite


class VariancePath:
    """The ML deviance with one sd/cor/sigma parameter held, minimised over the others."""

    def __init__(self, model: LinearMixedModel, obj: Objective) -> None:
        self.obj, self.layout = obj, model.spec.layout
        self.psi_hat = to_sdcor(self.layout, model.theta, model.sigma)
        self.dev_hat = engine_varpar.deviance(obj, model.theta, model.sigma)
        self.scale = np.maximum(np.abs(self.psi_hat), 1e-3 * model.sigma)
        diag = np.append(self.layout.diagonal, True)
        self.is_cor = ~diag
        self.warm: dict[tuple[int, int], np.ndarray] = {}

    def deviance(self, psi: np.ndarray) -> float:
        back = from_sdcor(self.layout, psi)
        if back is None:
            return self.dev_hat + PENALTY
        return engine_varpar.deviance(self.obj, back[0], back[1])

    def _full(self, i: int, v: float, free: np.ndarray) -> np.ndarray:
        """psi with element i at v and the others from optimizer units (cor through tanh)."""
        rest = np.delete(np.arange(len(self.psi_hat)), i)
        psi = np.empty(len(self.psi_hat))
        psi[i] = v
        cor = self.is_cor[rest]
        psi[rest] = np.where(cor, np.tanh(free), free * self.scale[rest])
        return psi

    def profile(self, i: int, v: float, side: int) -> float:
        """``dev(v) - dev_hat`` with element ``i`` held at ``v``."""
        rest = np.delete(np.arange(len(self.psi_hat)), i)
        cor = self.is_cor[rest]
        start = self.warm.get((i, side))
        if start is None:
            hat = self.psi_hat[rest]
            start = np.where(cor, np.arctanh(np.clip(hat, -0.999, 0.999)), hat / self.scale[rest])
        lower = np.where(cor, -np.inf, 0.0)
        opt = minimize(lambda u: self.deviance(self._full(i, v, u)), start, lower, 1e-10, 1e-10)
        self.warm[(i, side)] = opt.final
        return opt.fmin - self.dev_hat


class FixedPath:
    """The ML deviance with one fixed effect held, minimised over theta (sigma profiled).

    ``obj`` is over the user blocks, whose response is centred on ``c``:
    their fixed effects are ``beta - c v_X`` (see
    :attr:`~mixedfx.LinearMixedModel.user_blocks`), so ``beta_j = v`` is
    held there at ``v - c v_j``.
    """

    def __init__(self, model: LinearMixedModel, obj: Objective) -> None:
        self.model, self.obj = model, obj
        self.dev_hat = model.objective
        coords = model.standardized.coords
        v = coords.x_weights
        self.shift = np.zeros(len(model.beta)) if v is None else coords.y_centre * v
        self.warm: dict[tuple[int, int], np.ndarray] = {}

    def profile(self, j: int, v: float, side: int) -> float:
        held_at = v - self.shift[j]
        held = Objective(hold_fixed(self.obj.blocks, j, held_at), self.obj.layout, reml=False)
        start = self.warm.get((j, side), self.model.theta)
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


def profile_intervals(model: LinearMixedModel, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper ends for the sd/cor/sigma parameters then the fixed effects."""
    ml = refit(model, reml=False)
    obj = fit_objective(ml)
    target = float(norm.ppf(0.5 + level / 2.0))
    var = VariancePath(ml, obj)
    lows, highs = [], []
    n_var = len(var.psi_hat)
    for i in range(n_var):
        hat = var.psi_hat[i]
        bounds = (-1.0, 1.0) if var.is_cor[i] else (0.0, math.inf)
        step = 0.1 if var.is_cor[i] else 0.25 * max(abs(hat), 1e-3 * ml.sigma)
        ends = [end(partial(var.profile, i), hat, step, side, target, bounds) for side in (-1, 1)]
        lows.append(ends[0])
        highs.append(ends[1])
    fixed = FixedPath(ml, obj)
    se = np.sqrt(np.diag(ml.vcov_beta))
    for j, hat in enumerate(ml.beta):
        free = (-math.inf, math.inf)
        ends = [end(partial(fixed.profile, j), hat, se[j], side, target, free) for side in (-1, 1)]
        lows.append(ends[0])
        highs.append(ends[1])
    return np.asarray(lows), np.asarray(highs)
