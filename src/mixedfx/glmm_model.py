"""The fitted generalized linear mixed model (create it with :func:`mixedfx.glmm`).

It shares everything about random effects, designs and the mixed-model
equations with the linear model (:class:`~mixedfx.base.MixedModel`); what
differs is the family: the response is binomial or Poisson given the random
effects, ``objective`` is ``-2`` times the Laplace (or adaptive
Gauss-Hermite) log-likelihood, there is no residual variance (``sigma`` is
1), predictions come on the link or the response scale, and ``condition``
runs penalized IRLS for the conditional modes instead of one solve.

The cross-product blocks it keeps (in the fit's standardized coordinates,
as an LMM's) are those of the training rows weighted
by the working weights at the conditional modes, with the working
response (:mod:`mixedfx.engine.pirls`): they give the prediction-error
covariance on the link scale and the training rows' part when
conditioning on given rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import threads as threads_mod
from .base import MixedModel
from .engine.blocks import Blocks
from .engine.bobyqa import OptSummary
from .engine.family import Family
from .engine.standard import Standardized
from .errors import DataError
from .frame.design import DesignSpec
from .frames import backend, in_memory
from .inference.scope import not_for_glmm
from .model import NO_ROWS
from .outcome import OutcomeSpec

TYPES = ("response", "link")
RESIDUALS = ("deviance", "pearson", "response", "working")


@dataclass(frozen=True, eq=False)
class GeneralizedLinearMixedModel(MixedModel):
    """A fitted generalized linear mixed model.

    Attributes
    ----------
    spec : DesignSpec
    outcome : OutcomeSpec
        The family and the weights and offset columns.
    nagq : int
        1 for the Laplace approximation, K > 1 for adaptive Gauss-Hermite
        quadrature with K nodes, 0 for lme4's nAGQ = 0 (beta in the PIRLS).
    theta : ndarray, shape (k,)
    beta : ndarray, shape (p,)
    objective : float
        ``-2 log L`` at the estimates (Laplace or AGQ approximation,
        including the saturated model's part for every ``nagq``; lme4
        reports it without that part when nAGQ > 1).
    b, b_condcov : list per term of ndarray
        Conditional modes of the random effects and their conditional
        covariances (lme4's ``condVar``: the inverse of the penalized
        Hessian at the mode, beta fixed).
    vcov_beta : ndarray, shape (p, p)
        As lme4's ``vcov``: from the finite-difference Hessian of the
        deviance over theta and beta (the mixed-model equations when it is
        not positive definite, and for nAGQ = 0).
    optsummary : OptSummary
        The optimizer over theta and beta (over theta for nAGQ = 0).
    blocks : Blocks
        Working-weighted cross-products of ``[Z X z]`` at the modes, in the
        fit's standardized coordinates (``standardized.coords``).
    fitted_values, response_values, weight_values : ndarray, shape (n,), or None
        Training rows' means, responses and prior weights (None after
        :meth:`condition`, and for models loaded from a file).
    data : DataFrame or None
    nobs_given : int
    sigma : float
        1: binomial and Poisson families have no dispersion parameter.
    standardized : Standardized
        The estimates in the coordinates the fit ran in (X's and the
        correlated terms' columns centred and scaled, the response as it
        is): see :func:`mixedfx.glmm.standardize`.
    """

    spec: DesignSpec
    outcome: OutcomeSpec
    nagq: int
    theta: np.ndarray
    beta: np.ndarray
    objective: float
    b: list[np.ndarray]
    b_condcov: list[np.ndarray]
    vcov_beta: np.ndarray
    optsummary: OptSummary
    blocks: Blocks
    fitted_values: np.ndarray | None = field(repr=False)
    response_values: np.ndarray | None = field(repr=False)
    weight_values: np.ndarray | None = field(repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)
    nobs_given: int = 0
    sigma: float = field(default=1.0, repr=False)
    standardized: Standardized = field(kw_only=True, repr=False)

    @property
    def family(self) -> Family:
        return self.outcome.family

    @property
    def npar(self) -> int:
        """Parameters counted by AIC: beta and theta (no dispersion)."""
        return len(self.beta) + len(self.theta)

    # -- training rows ------------------------------------------------------------
    def fitted(self, type: str = "response") -> np.ndarray:
        """Conditional fitted values of the training rows, shape (n,).

        Parameters
        ----------
        type : {"response", "link"}
            Means (probabilities, expected counts; lme4's ``fitted``) or the
            linear predictor (offset included).

        Raises
        ------
        DataError
            When the model holds no training rows: use ``m.predict(data)``.
        """
        _check_type(type)
        if self.fitted_values is not None:
            mu = self.fitted_values.copy()
            return mu if type == "response" else self.family.link.linkfun(mu)
        if self.data is None:
            raise DataError(NO_ROWS.format(what="fitted values", how="m.predict(data)"))
        return np.asarray(self.predict(type=type))

    def residuals(self, type: str = "deviance") -> np.ndarray:
        """Residuals of the training rows, shape (n,) (lme4's default type is "deviance").

        Parameters
        ----------
        type : {"deviance", "pearson", "response", "working"}
            ``sign(y - mu) sqrt(d_i)``, ``(y - mu) sqrt(w / V(mu))``,
            ``y - mu``, or ``(y - mu) / mu_eta``.
        """
        if type not in RESIDUALS:
            raise ValueError(f"type must be one of {RESIDUALS}, got {type!r}")
        y, w = self._training_outcome()
        mu = self.fitted("response")
        fam = self.family
        if type == "response":
            return y - mu
        if type == "pearson":
            return (y - mu) * np.sqrt(w / fam.variance(mu))
        if type == "working":
            return (y - mu) / fam.link.mu_eta(fam.link.linkfun(mu))
        return np.sign(y - mu) * np.sqrt(np.maximum(fam.dev_resid(y, mu, w), 0.0))

    def _training_outcome(self) -> tuple[np.ndarray, np.ndarray]:
        if self.response_values is not None and self.weight_values is not None:
            return self.response_values, self.weight_values
        if self.data is None:
            raise DataError(NO_ROWS.format(what="residuals", how="the family's residuals"))
        o = self.outcome.outcome(self.spec, self.data)
        return o.y, o.weights

    # -- prediction -----------------------------------------------------------------
    def predict(
        self,
        newdata: Any = None,
        re: str | None = "all",
        new_levels: str = "population",
        given: Any = None,
        interval: str | None = None,
        level: float = 0.95,
        type: str = "response",
        uncertainty: str = "plugin",
        bootstrap: Any = None,
    ) -> np.ndarray | pd.DataFrame:
        """Predict with the random effects, on the response or the link scale.

        Parameters
        ----------
        newdata, re, new_levels, given, level
            As for :meth:`mixedfx.LinearMixedModel.predict`; ``given`` rows
            update the conditional modes by penalized IRLS (:meth:`condition`).
        interval : {None, "confidence", "prediction"}
            See :mod:`mixedfx.glmm_predict` for what each contains.
        type : {"response", "link"}, default "response"
            Means (probabilities, expected counts) or the linear predictor
            (offset included). lme4's ``predict`` defaults to ``"link"``.
        uncertainty, bootstrap
            Only ``"plugin"`` (theta and beta at their estimates) for a GLMM;
            the others raise NotImplementedError.

        Returns
        -------
        ndarray, shape (n,), or DataFrame with columns fit, se, lower, upper
        """
        from .glmm_predict import predict

        if uncertainty != "plugin" or bootstrap is not None:
            raise not_for_glmm(f"predict(uncertainty={uncertainty!r})")
        _check_type(type)
        if given is not None and backend(given) is None:
            given = in_memory(given, "given")
        if newdata is not None and backend(newdata) is None:
            newdata = in_memory(newdata, "newdata")
        with threads_mod.pinned(threads_mod.choose(self.blocks)):  # as the fit (threads.py)
            model = self if given is None else self.condition(given)
            return predict(model, newdata, re, new_levels, interval, level, type, given=given)

    def condition(self, given: Any) -> GeneralizedLinearMixedModel:
        """A model with the same parameters and conditional modes updated by ``given``.

        See :func:`mixedfx.glmm_condition.condition`.
        """
        from .glmm_condition import condition

        with threads_mod.pinned(threads_mod.choose(self.blocks)):
            return condition(self, given)

    # -- inference: the LMM's methods, not (yet) for GLMMs ------------------------------
    def confint(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """Not implemented for GLMMs: raises NotImplementedError (see :mod:`.inference.scope`)."""
        raise not_for_glmm("confint")

    def coef_table(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """Not implemented for GLMMs (``summary()`` has lme4's Wald z tests)."""
        raise not_for_glmm("coef_table")

    def simulate(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """Not implemented for GLMMs: raises NotImplementedError."""
        raise not_for_glmm("simulate")

    def bootstrap(self, *args: Any, **kwargs: Any) -> Any:
        """Not implemented for GLMMs: raises NotImplementedError."""
        raise not_for_glmm("bootstrap")

    def tidy(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """Not implemented for GLMMs: raises NotImplementedError."""
        raise not_for_glmm("tidy")

    def glance(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """Not implemented for GLMMs: raises NotImplementedError."""
        raise not_for_glmm("glance")

    def summary(self) -> str:
        """A printable lme4-style summary."""
        from .summary import render_glmm

        return render_glmm(self)

    def __repr__(self) -> str:
        given = f", conditioned on {self.nobs_given} given rows" if self.conditioned else ""
        return (
            f"<GeneralizedLinearMixedModel {self.spec.formula!r} {self.family}: "
            f"{self.nobs} obs, -2 log L {self.objective:.4f}{given}>"
        )


def _check_type(type: str) -> None:
    if type not in TYPES:
        raise ValueError(f"type must be 'response' or 'link', got {type!r}")
