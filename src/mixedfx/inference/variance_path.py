"""Profiles of the sd/cor/sigma parameters, held in the fit's standardized coordinates.

lme4 profiles the ML deviance over ``psi``, the sd/cor vector of the user's
columns and sigma (:mod:`mixedfx.engine.sdcor`): one element held, the
others minimised. Here every deviance is evaluated on the standardized
blocks at the standardized ``(theta_s, sigma_s)``
(:mod:`mixedfx.engine.standard`), where it is the user's up to a constant,
and the free parameters are the standardized ``psi_s``, in which shifted or
rescaled columns do not make the minimisation ill-conditioned (a random
slope on the calendar year puts the user's intercept 2000 slopes away, with
a correlation of -1 + 1e-7). The user's element is held through a chart of
``psi_s``:

* sigma, and an sd or correlation of columns outside a centred term's
  intercept combination (or of a term that is only scaled): the user's
  element is ``f psi_s,i`` (``f = s / d_r`` for an sd, 1 for a correlation,
  ``s`` for sigma; :func:`user_factors`), so ``psi_s,i = v / f`` is held;
* an sd of a centred term's intercept combination: ``psi_s,i`` is held at
  its estimate and all the term's sds are scaled by ``v / sd_user`` (the
  user's sd scales with them; one chart of the whole set, for ``v > 0``);
* a correlation with it: the intercept column's standardized sd is solved
  for (Brent's method over its logarithm). For a term of two columns the
  user's correlation is increasing in it, so that is the whole set; for
  more columns it is unimodal, and the branch through the estimates is
  taken.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import brentq

from ..engine import varpar as engine_varpar
from ..engine.bobyqa import minimize
from ..engine.objective import Objective
from ..engine.sdcor import from_sdcor, to_sdcor

if TYPE_CHECKING:
    from ..model import LinearMixedModel

PENALTY = 1e10  # deviance where a covariance is not positive semidefinite
EDGE = 1.0 - 1e-15  # arctanh is finite within it (a start at a correlation of +/-1)


def user_factors(model: LinearMixedModel) -> np.ndarray:
    """Per sd/cor/sigma element, ``f`` with user ``psi_i = f psi_s,i``; NaN where it is not linear.

    sigma is ``s sigma_s``; in a term that is only scaled, and among the
    columns of a centred term outside its intercept combination (``G_t``'s
    rows ``e_r' / d_r`` there), ``b_r = s b_s,r / d_r``: an sd is ``s / d_r``
    times the standardized one and a correlation the same. An sd or
    correlation that involves a centred term's intercept combination is a
    nonlinear function of the standardized parameters (NaN).
    """
    coords, layout = model.standardized.coords, model.spec.layout
    out = []
    for m, (rows, cols) in zip(coords.terms, layout.index, strict=True):
        inside = np.zeros(len(m.mean), bool) if m.weights is None else m.weights != 0.0
        centred = bool(m.mean.any())
        for r, c in zip(rows, cols, strict=True):
            if centred and (inside[r] or inside[c]):
                out.append(math.nan)
            else:
                out.append(coords.y_scale / m.scale[r] if r == c else 1.0)
    return np.append(np.asarray(out, dtype=float), coords.y_scale)


class VariancePath:
    """The ML deviance with one user sd/cor/sigma element held, minimised over the others.

    See the module docstring; ``profile(i, v, side)`` is the excess deviance
    with the user's element ``i`` at ``v``. The free elements move in units
    of their estimates (an sd's floored at ``1e-3 sigma_s``), correlations
    through ``tanh``.
    """

    def __init__(self, model: LinearMixedModel) -> None:
        self.layout = model.spec.layout
        std = model.standardized
        self.coords = std.coords
        self.obj = Objective(model.blocks, self.layout, reml=False)
        self.dev_hat = engine_varpar.deviance(self.obj, std.theta, std.sigma)
        self.is_cor = ~np.append(self.layout.diagonal, True)
        self.factor = user_factors(model)
        self.hat = to_sdcor(self.layout, std.theta, std.sigma)
        user = to_sdcor(self.layout, model.theta, model.sigma)
        self.user_hat = np.where(self.is_cor, np.clip(user, -1.0, 1.0), user)
        self.scale = np.where(self.is_cor, 1.0, np.maximum(np.abs(self.hat), 1e-3 * std.sigma))
        # the user's floor of an sd: the standardized one mapped (sigma's for the others)
        f = np.where(np.isnan(self.factor), self.coords.y_scale, self.factor)
        self.floor = np.where(self.is_cor, 0.0, 1e-3 * std.sigma * f)
        self.user_scale = np.where(self.is_cor, 1.0, np.maximum(np.abs(self.user_hat), self.floor))
        self.term = np.append(
            np.concatenate([np.full(len(r), t) for t, (r, _) in enumerate(self.layout.index)]), -1
        )
        self.pivots = [self._pivot(i) for i in range(len(self.hat))]
        self.warm: dict[tuple[int, int], list[tuple[float, np.ndarray]]] = {}

    def _pivot(self, i: int) -> int:
        """The element of ``psi_s`` that holding element ``i`` leaves out of the free ones.

        -1 for the user's own chart (lme4's): a correlation with a centred
        term's intercept estimated at +/-1, where the standardized chart's
        is degenerate (every sd gives the same correlation).
        """
        if not (self.is_cor[i] and math.isnan(self.factor[i])):
            return i
        if abs(self.user_hat[i]) >= EDGE:
            return -1
        t = self.term[i]
        m = self.coords.terms[t]
        assert m.weights is not None  # a centred term
        rows, cols = self.layout.index[t]
        r, c = rows[i - self.layout.slices[t].start], cols[i - self.layout.slices[t].start]
        k = r if m.weights[r] != 0.0 else c  # the column of the intercept combination
        sds = np.flatnonzero((rows == k) & (cols == k))
        return int(self.layout.slices[t].start + sds[0])

    def user(self, psi_s: np.ndarray) -> np.ndarray | None:
        """The user's psi from the standardized one (None where not PSD)."""
        back = from_sdcor(self.layout, psi_s)
        if back is None:
            return None
        theta = self.coords.theta(self.layout, back[0])
        return to_sdcor(self.layout, theta, self.coords.y_scale * back[1])

    def _units(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The free elements' indices, estimates and units in the chart of element ``i``."""
        k = self.pivots[i]
        if k < 0:
            rest = np.delete(np.arange(len(self.hat)), i)
            return rest, self.user_hat[rest], self.user_scale[rest]
        rest = np.delete(np.arange(len(self.hat)), k)
        return rest, self.hat[rest], self.scale[rest]

    def _point(self, i: int, v: float, free: np.ndarray) -> tuple[np.ndarray, float] | None:
        """``(theta_s, sigma_s)`` with the user's element i at v (None where there is none)."""
        rest, _, scale = self._units(i)
        psi = np.empty(len(self.hat))
        psi[rest] = np.where(self.is_cor[rest], np.tanh(free), free * scale)
        if self.pivots[i] >= 0:
            full = self._full(i, v, psi)
            return None if full is None else from_sdcor(self.layout, full)
        psi[i] = v
        back = from_sdcor(self.layout, psi)
        if back is None:
            return None
        return self.coords.fit_theta(self.layout, back[0]), back[1] / self.coords.y_scale

    def _full(self, i: int, v: float, psi: np.ndarray) -> np.ndarray | None:
        """``psi_s`` with the user's element i at v, from the free elements of ``psi``."""
        k = self.pivots[i]
        if not math.isnan(self.factor[i]):
            psi[i] = v / self.factor[i]
            return psi
        psi[k] = self.hat[k]
        if k == i:  # an sd of the intercept combination: scale the term's sds
            user = self.user(psi)
            if user is None or not user[i] > 0.0:
                return None
            sds = (self.term == self.term[i]) & ~self.is_cor
            psi[sds] *= v / user[i]
            return psi
        return self._solve(psi, i, k, v)

    def _solve(self, psi: np.ndarray, i: int, k: int, v: float) -> np.ndarray | None:
        """``psi`` with ``psi_k`` (an sd) solved for the user's correlation ``i`` to equal ``v``.

        With the term's other standardized sds and correlations fixed, each
        entry of the user's covariance ``G Sigma_s G'`` is a quadratic in that
        sd ``x`` (``Sigma_s = C + x (e u' + u e') + x^2 e e'``), so the
        correlation is a closed form in ``x``, solved over ``log x``.
        """
        t = int(self.term[i])
        start = self.layout.slices[t].start
        rows, cols = self.layout.index[t]
        q = self.layout.qs[t]
        sd, R = np.zeros(q), np.eye(q)
        for a, b, val in zip(rows, cols, psi[self.layout.slices[t]], strict=True):
            if a == b:
                sd[a] = val
            else:
                R[a, b] = R[b, a] = val
        if q > 2 and np.linalg.eigvalsh(R)[0] < 0.0:
            return None  # not a correlation matrix: no point of the chart
        kc, r, c = rows[k - start], rows[i - start], cols[i - start]
        G = self.coords.terms[t].matrix()
        g = G[:, kc]
        u = R[kc] * sd
        u[kc] = 0.0
        C0 = R * np.outer(sd, sd)
        C0[kc, :] = C0[:, kc] = 0.0
        Gu, C = G @ u, G @ C0 @ G.T

        def entry(x: float, a: int, b: int) -> float:
            return float(x * x * g[a] * g[b] + x * (g[a] * Gu[b] + Gu[a] * g[b]) + C[a, b])

        def gap(log_sd: float) -> float:
            x = math.exp(log_sd)
            den = entry(x, r, r) * entry(x, c, c)
            if not den > 0.0:  # a variance of 0: a correlation of 0 (as to_sdcor)
                return -v
            return min(max(entry(x, r, c) / math.sqrt(den), -1.0), 1.0) - v

        centre = math.log(self.scale[k])
        lo, hi = centre - 40.0, centre + 25.0  # e^25 = 7e10 times the estimate
        g_lo, g_hi = gap(lo), gap(hi)
        if g_lo == 0.0 or g_hi == 0.0:  # v = +/-1: reached as that sd goes to 0 (or infinity)
            psi[k] = math.exp(lo if g_lo == 0.0 else hi)
        elif g_lo * g_hi < 0.0:
            psi[k] = math.exp(brentq(gap, lo, hi, xtol=1e-13))
        else:  # v outside the range (or not PSD): no point of the chart
            return None
        return psi

    def deviance(self, back: tuple[np.ndarray, float] | None) -> float:
        """The deviance at ``(theta_s, sigma_s)``; a penalty for None."""
        if back is None:
            return self.dev_hat + PENALTY
        try:
            return engine_varpar.deviance(self.obj, back[0], back[1])
        except np.linalg.LinAlgError:  # an sd ~1e17 times sigma: I + L'Z'ZL loses its pivots
            return self.dev_hat + PENALTY

    def profile(self, i: int, v: float, side: int) -> float:
        """``dev(v) - dev_hat`` with the user's element ``i`` held at ``v``."""
        rest, hat, scale = self._units(i)
        cor = self.is_cor[rest]
        start = np.where(cor, np.arctanh(np.clip(hat, -EDGE, EDGE)), hat / scale)
        # warm start from the nearest point held between the estimate and v: the path
        # is followed outward (from a point beyond v, at a bound, the way back is lost)
        inner = [
            (abs(v - w), u)
            for w, u in self.warm.get((i, side), [])
            if abs(w - self.user_hat[i]) <= abs(v - self.user_hat[i])
        ]
        if inner:
            start = min(inner, key=lambda pair: pair[0])[1]
        lower = np.where(cor, -np.inf, 0.0)
        opt = minimize(lambda u: self.deviance(self._point(i, v, u)), start, lower, 1e-10, 1e-10)
        if opt.fmin < self.dev_hat + PENALTY / 2:  # a start from no point of the chart is lost
            self.warm.setdefault((i, side), []).append((v, opt.final))
        return opt.fmin - self.dev_hat
