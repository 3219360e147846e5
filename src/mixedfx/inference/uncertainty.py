"""Prediction intervals that include the uncertainty of the variance parameters.

Plug-in intervals (:mod:`mixedfx.predict`) hold theta and sigma at their
estimates. Here they vary over draws ``(theta_d, sigma_d)``, ``d = 1..D``:

* ``"bootstrap"``: the parametric bootstrap's refits
  (:mod:`mixedfx.inference.bootstrap`), reflected through the estimates
  (:func:`basic_draws`);
* ``"hessian"``: ``theta_d ~ N(theta_hat, 2 H^-1)`` with ``H`` the Hessian of
  the profiled objective (cheap for large models: no refits), and
  ``sigma_d`` the profiled estimate at ``theta_d``.

Given a draw, beta and the random effects follow from the data as in the
fit: ``beta_hat(theta_d)`` (GLS) and ``b | y`` at ``(theta_d, beta)``, jointly,
through the mixed-model equations: the plug-in prediction at the draw, with
``given`` rows updating the random effects of their groups as in
:meth:`~mixedfx.LinearMixedModel.condition`. Each draw's prediction is
``N(fit_d, se_d^2)`` (beta's uncertainty integrated in closed form rather
than sampled); the interval holds the quantiles of their equal mixture, and
``se`` is the mixture's standard deviation. ``fit`` stays the plug-in
prediction.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import norm

from ..condition import conditioned, given_blocks
from ..engine import solve
from ..engine import varpar as engine_varpar
from ..engine.objective import Objective
from ..engine.standard import Standardized
from ..frame import rows as rows_mod
from ..predict import predict, variance
from .scope import require_unweighted
from .varpar import cached, fit_objective

if TYPE_CHECKING:
    from ..model import LinearMixedModel
    from .bootstrap import BootstrapResult

UNCERTAINTY = ("plugin", "bootstrap", "hessian")
HESSIAN_DRAWS = 1000


def at_parameters(model: LinearMixedModel, theta: np.ndarray, sigma: float) -> LinearMixedModel:
    """The model with theta and sigma set, beta and the random effects solved again.

    ``theta`` and ``sigma`` are in the user's units; they are moved to the
    model's standardized coordinates (:mod:`mixedfx.engine.standard`), where
    its blocks are and predictions start, and the estimates mapped back.
    """
    std = model.standardized
    coords, layout = std.coords, model.spec.layout
    theta_s = coords.fit_theta(layout, np.asarray(theta, dtype=float))
    sigma_s = float(sigma) / coords.y_scale
    f = Objective(model.blocks, layout, model.reml).factorize(theta_s)
    beta_s, _, b_s = solve.modes(f)
    return dataclasses.replace(
        model,
        theta=np.asarray(theta, dtype=float),
        beta=coords.beta(beta_s),
        sigma=float(sigma),
        b=coords.b(b_s),
        b_condcov=coords.condcov(solve.condcov(f, sigma_s)),
        vcov_beta=coords.vcov(solve.vcov_beta(f, sigma_s)),
        fitted_values=None,
        standardized=Standardized(coords, theta_s, beta_s, sigma_s, b_s),
    )


def hessian_draws(model: LinearMixedModel, n: int = HESSIAN_DRAWS, seed: int = 0) -> np.ndarray:
    """``n`` draws of ``(theta, sigma)`` from the profiled objective's curvature, (n, k + 1).

    Drawn in the fit's standardized coordinates (:mod:`mixedfx.engine.standard`),
    ``theta_s ~ N(theta_s_hat, 2 H_s^-1)`` with ``H_s`` the Hessian of the
    objective the optimizer minimised, and mapped to the user's theta. The
    draws, and so the intervals, do not depend on shifts and scales of the
    data, which can make the user's Hessian arbitrarily ill-conditioned (a
    random slope of ``Days + 1e6``). Each draw's sigma is profiled there too.
    """
    fit_objective(model)  # refuses a conditioned model
    std, layout = model.standardized, model.spec.layout
    coords = std.coords
    obj = Objective(model.blocks, layout, model.reml)

    def curvature() -> np.ndarray:
        H = obj.hessian(std.theta)
        if H is None:
            H = engine_varpar.jacobian(obj.gradient, std.theta)
        H = 0.5 * (H + H.T)
        values, vectors = np.linalg.eigh(H)
        keep = values > 1e-8 * max(1.0, float(values.max(initial=0.0)))
        return np.asarray((vectors[:, keep] / values[keep]) @ vectors[:, keep].T * 2.0)

    cov = cached(model, "std_theta_cov", curvature)
    rng = np.random.default_rng(seed)
    thetas = rng.multivariate_normal(std.theta, cov, size=n, method="eigh")
    dof = obj.blocks.n - obj.blocks.p if model.reml else obj.blocks.n
    sigmas = [coords.y_scale * np.sqrt(engine_varpar.parts(obj, th)[2] / dof) for th in thetas]
    users = [coords.theta(layout, th) for th in thetas]
    return np.column_stack([np.array(users).reshape(n, -1), sigmas])


def basic_draws(model: LinearMixedModel, bootstrap: BootstrapResult) -> np.ndarray:
    """The bootstrap's refits reflected through the estimates, (D, ntheta + 1): theta, sigma.

    The basic (pivotal) bootstrap: the error ``x_hat - x`` is distributed as
    ``x* - x_hat``, so draws of the unknown ``x`` are ``2 x_hat - x*``. Refits
    of variance parameters are biased low (with few groups many are at 0);
    reflecting corrects that bias to first order, where the refits
    themselves would narrow the intervals (measured in ``bench/coverage.py``).
    Failed refits are left out.
    """
    ok = ~bootstrap.failed
    hat = np.append(model.theta, model.sigma)
    draws = 2.0 * hat - np.column_stack([bootstrap.theta[ok], bootstrap.sigma[ok]])
    draws[:, -1] = np.abs(draws[:, -1])
    return draws


def mixture_quantile(mean: np.ndarray, sd: np.ndarray, prob: float) -> np.ndarray:
    """The ``prob`` quantile of each row's equal mixture of normals.

    Parameters
    ----------
    mean, sd : ndarray, shape (D, n)

    Returns
    -------
    ndarray, shape (n,): bisection on the mixture's CDF to 1e-10 of its spread.
    """
    z = norm.ppf(prob)
    lo = np.min(mean + z * sd - 10 * sd, axis=0)
    hi = np.max(mean + z * sd + 10 * sd, axis=0)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        below = ndtr((mid - mean) / sd).mean(axis=0) < prob
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def predict_uncertain(
    model: LinearMixedModel,
    newdata: pd.DataFrame | None,
    re: str | None,
    new_levels: str,
    given: pd.DataFrame | None,
    interval: str,
    level: float,
    uncertainty: str,
    bootstrap: BootstrapResult | None,
) -> pd.DataFrame:
    """Intervals over draws of the variance parameters (see module docstring)."""
    require_unweighted(model, "predict(uncertainty=...)")
    if interval not in ("confidence", "prediction"):
        raise ValueError(f"uncertainty={uncertainty!r} needs interval='confidence' or 'prediction'")
    if uncertainty == "bootstrap":
        if bootstrap is None:
            raise ValueError("uncertainty='bootstrap' needs bootstrap=m.bootstrap(...)")
        draws = basic_draws(model, bootstrap)
    else:
        draws = hessian_draws(model)
    return predict_over_draws(model, newdata, re, new_levels, given, interval, level, draws)


def predict_over_draws(
    model: LinearMixedModel,
    newdata: pd.DataFrame | None,
    re: str | None,
    new_levels: str,
    given: pd.DataFrame | None,
    interval: str,
    level: float,
    draws: np.ndarray,
) -> pd.DataFrame:
    """Intervals over the rows of ``draws`` (D, ntheta + 1): theta then sigma."""
    extra = None if given is None else given_blocks(model, given)
    plug = model if extra is None else conditioned(model, *extra)
    base = predict(plug, newdata, re, new_levels, interval, level)
    assert isinstance(base, pd.DataFrame)
    data = newdata if newdata is not None else plug.data
    assert data is not None  # predict() above has checked
    rows = rows_mod.build(plug.spec, data)
    masks = rows_mod.select(plug.spec, re)
    invalid = base["se"].isna().to_numpy()
    fits, ses = [], []
    for row in draws:
        md = at_parameters(model, row[:-1], float(row[-1]))
        if extra is not None:
            md = conditioned(md, *extra)
        fits.append(predict(md, newdata, re, new_levels, rows=rows, quiet=True))
        ses.append(np.sqrt(variance(md, rows, masks, interval, invalid)))
    mean, sd = np.array(fits), np.array(ses)
    alpha = (1.0 - level) / 2.0
    spread = np.sqrt((sd**2).mean(axis=0) + mean.var(axis=0))
    return pd.DataFrame(
        {
            "fit": base["fit"].to_numpy(),
            "se": spread,
            "lower": mixture_quantile(mean, sd, alpha),
            "upper": mixture_quantile(mean, sd, 1.0 - alpha),
        },
        index=base.index,
    )
