"""GLMM predictions: the linear predictor and the mean, with intervals that respect the support.

The linear predictor of a row is ``eta = offset + x'beta + z'b`` with the
included random effects at their conditional modes (every ``re`` and
``new_levels`` mode of :func:`mixedfx.predict.predict`); ``type="response"``
gives the mean ``mu = g^-1(eta)`` (probability, expected count).

Intervals (``level`` = 1 - alpha):

* ``"confidence"``, an interval for the conditional mean. On the link
  scale ``eta +/- z_(1-alpha/2) se``, where ``se^2`` is the prediction-error
  variance of ``x'beta + z'b`` from the working-weighted mixed-model
  equations at the modes (beta-hat and b-hat - b jointly, the Laplace
  approximation's Gaussian) plus, for a new level, its prior variance
  ``z' Sigma z``. On the response scale its ends go through the inverse
  link (``lower``/``upper`` stay inside (0, 1) or (0, inf)); ``fit`` is
  ``g^-1(eta)``, and ``se`` the delta-method ``mu_eta(eta) se``.
* ``"prediction"``, an interval for a new observation. On the link scale
  the confidence variance plus the variance of the omitted random effects
  (all of them with ``re="none"``, the rest of a new level's): the
  interval of the linear predictor of a new row of that group. On the
  response scale, that interval's mean ends ``mu_lo``, ``mu_hi`` widened by
  the outcome's own variability: ``[Q(alpha/2; mu_lo), Q(1 - alpha/2; mu_hi)]``
  with ``Q`` the Poisson quantile (counts), or the binomial quantile over
  ``m`` trials divided by ``m`` (a proportion; ``m`` from newdata's
  ``cbind(successes, failures)`` columns or weights column when the model
  has them and newdata too, else 1). ``se`` is then
  ``sqrt(mu_eta^2 se_link^2 + V(mu) / m)`` (Poisson: ``m = 1``).

Both intervals hold beta and theta at their estimates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from . import predict as predict_mod
from .errors import DataError
from .frame import syntax
from .frames import backend

if TYPE_CHECKING:
    from .glmm_model import GeneralizedLinearMixedModel


def predict(
    model: GeneralizedLinearMixedModel,
    newdata: pd.DataFrame | None,
    re: str | None,
    new_levels: str,
    interval: str | None,
    level: float,
    type: str,
    given: pd.DataFrame | None = None,
    quiet: bool = False,
) -> np.ndarray | pd.DataFrame:
    """See :meth:`mixedfx.GeneralizedLinearMixedModel.predict`.

    ``model`` is already conditioned on ``given`` (in memory, or None), which
    is passed to check that newdata uses its groups, as for the LMM.
    ``quiet``: no warnings about the rows (a Dask partition's; the client
    warns once for all of them).
    """
    remote = backend(newdata)
    if remote is not None:
        return remote.predict(model, newdata, re, new_levels, interval, level, type)
    if newdata is None:
        if model.data is None:
            raise DataError(
                "this model holds no training data (a model loaded from a file keeps none); "
                "pass newdata"
            )
        newdata = model.data
    if backend(given) is not None:
        given = None  # a Dask given is never collected, so not checked against newdata
    part = predict_mod.predict(  # the linear predictor, offset included
        model, newdata, re, new_levels, interval, level, given=given, quiet=quiet, stacklevel=4
    )
    link = model.family.link
    if interval is None:
        eta = np.asarray(part)
        return eta if type == "link" else link.linkinv(eta)
    assert isinstance(part, pd.DataFrame)
    eta = part["fit"].to_numpy()
    lower = part["lower"].to_numpy()
    upper = part["upper"].to_numpy()
    se = part["se"].to_numpy()
    if type == "link":
        frame = {"fit": eta, "se": se, "lower": lower, "upper": upper}
        return pd.DataFrame(frame, index=part.index)
    mu = link.linkinv(eta)
    se_mu = link.mu_eta(eta) * se
    lo, hi = link.linkinv(lower), link.linkinv(upper)
    if interval == "prediction":
        lo, hi, se_mu = outcome_interval(model, newdata, mu, lo, hi, se_mu, level)
    return pd.DataFrame({"fit": mu, "se": se_mu, "lower": lo, "upper": hi}, index=part.index)


def outcome_interval(
    model: GeneralizedLinearMixedModel,
    newdata: pd.DataFrame,
    mu: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    se_mu: np.ndarray,
    level: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The new observation's interval around the mean interval ``[lo, hi]`` (module docstring)."""
    fam = model.family
    alpha = 1.0 - level
    valid = np.isfinite(lo) & np.isfinite(hi)
    lo_c, hi_c = np.where(valid, lo, 0.5), np.where(valid, hi, 0.5)
    if fam.binomial:
        m = trials(model, newdata)
        lower = stats.binom.ppf(alpha / 2.0, m, lo_c) / m
        upper = stats.binom.ppf(1.0 - alpha / 2.0, m, hi_c) / m
        var = fam.variance(mu) / m
    else:
        lower = stats.poisson.ppf(alpha / 2.0, lo_c)
        upper = stats.poisson.ppf(1.0 - alpha / 2.0, hi_c)
        var = fam.variance(mu)
    se = np.sqrt(se_mu * se_mu + var)
    return np.where(valid, lower, np.nan), np.where(valid, upper, np.nan), se


def trials(model: GeneralizedLinearMixedModel, newdata: pd.DataFrame) -> np.ndarray:
    """Binomial trials of new rows, shape (n,), 1 where newdata does not tell.

    A ``cbind(successes, failures)`` model: their sum, when newdata has
    them; a model with a weights column of trials: that column, when newdata
    has it.
    """
    spec = model.spec
    if spec.parsed.two_column:
        if not all(c in newdata.columns for c in syntax.names(spec.parsed.lhs)):
            return np.ones(len(newdata))
        values = spec.response_values(newdata)
        m = values.sum(axis=1)
        what = f"the trials of {spec.response} (successes + failures)"
    else:
        name = model.outcome.weights if model.outcome.trials else None
        if name is None or name not in newdata.columns:
            return np.ones(len(newdata))
        m = model.outcome.weight_vector(newdata)
        what = f"weights column {name!r}"
    if np.any(~np.isfinite(m) | (m <= 0) | (np.abs(m - np.round(m)) > 1e-9)):
        raise DataError(
            f"{what} of newdata must be whole numbers of trials >= 1 for a binomial "
            "prediction interval"
        )
    return np.round(m)
