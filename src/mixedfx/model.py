"""The fitted linear mixed model: estimates, random effects and summaries.

A model is read-only after fitting. It holds the design (to rebuild model
matrices for new data), the parameters (theta, beta, sigma), the random
effects and their conditional covariances, and the cross-product blocks of
the training rows (sufficient statistics). It refers to the training data
frame it was fitted on (``data``), but never copies or saves it: a model
loaded from a file or fitted on Dask holds no rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd

from . import threads as threads_mod
from .base import _PREDICTION_ERROR_LOCK, MixedModel, ModelMatrices
from .engine.blocks import Blocks
from .engine.bobyqa import OptSummary
from .engine.standard import Standardized
from .errors import DataError
from .frame.design import DesignSpec
from .frames import backend, in_memory

if TYPE_CHECKING:
    from .inference.bootstrap import BootstrapResult
    from .predict import PredictionInfo

__all__ = ["LinearMixedModel", "ModelMatrices"]

NO_ROWS = (
    "this model holds no training rows (it was fitted on a Dask frame or loaded from a "
    "file), so it has no {what}: compute them from the training data "
    "with {how} (a Dask frame gives a lazy result)"
)


@dataclass(frozen=True, eq=False)
class LinearMixedModel(MixedModel):
    """A fitted linear mixed model (create it with :func:`mixedfx.lmm`).

    Attributes
    ----------
    spec : DesignSpec
    reml : bool
    theta : ndarray, shape (k,)
        lme4's parameterisation: per term the lower triangle (column-major)
        of the relative covariance factor ``T``.
    beta : ndarray, shape (p,)
    sigma : float
    objective : float
        REML criterion or ML deviance.
    b : list of ndarray, shape (l_t, q_t)
        Random effects per term, levels in ``spec.terms[t].labels`` order.
    b_condcov : list of ndarray, shape (l_t, q_t, q_t)
        Conditional covariances of the random effects.
    vcov_beta : ndarray, shape (p, p)
    optsummary : OptSummary
    blocks : Blocks
        Cross-products of the training rows (plus the given rows after
        :meth:`condition`), in the standardized coordinates of
        ``standardized.coords`` (see :mod:`mixedfx.engine.standard`).
    fitted_values, response_values : ndarray, shape (n,), or None
        Of the training rows (None after :meth:`condition`).
    data : DataFrame or None
        The training data frame (a reference, not a copy; never saved): the
        pandas frame itself, or its pandas form when it was another frame
        type or had nullable columns (:func:`mixedfx.frames.in_memory`).
        A conditioned model keeps its model's training data frame.
    nobs_given : int
        Rows that :meth:`condition` added to the random effects (0 for a
        fit). They are not counted in :attr:`nobs`.
    weights : str or None
        The prior-weights column (``lmm(weights=)``); given rows need it too.
    standardized : Standardized
        The estimates in the coordinates the fit ran in (centred and scaled
        columns); ``theta``, ``beta``, ``sigma``, ``b`` and the covariances
        above are their exact maps to the user's coordinates. Predictions,
        intervals and :meth:`condition` start from these.
    """

    spec: DesignSpec
    reml: bool
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    objective: float
    b: list[np.ndarray]
    b_condcov: list[np.ndarray]
    vcov_beta: np.ndarray
    optsummary: OptSummary
    blocks: Blocks
    fitted_values: np.ndarray | None = field(repr=False)
    response_values: np.ndarray | None = field(repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)
    nobs_given: int = 0
    weights: str | None = None
    standardized: Standardized = field(kw_only=True, repr=False)

    def _residual_rows(self) -> list[dict[str, Any]]:
        return [
            dict(
                group="Residual",
                term1=None,
                term2=None,
                variance=self.sigma**2,
                sd=self.sigma,
                correlation=np.nan,
            )
        ]

    @property
    def residual_variance(self) -> float:
        """The variance of a new observation around its conditional mean, ``sigma^2``."""
        return self.sigma**2

    # -- likelihood -------------------------------------------------------------
    @property
    def npar(self) -> int:
        """Parameters counted by AIC: beta, theta and sigma."""
        return len(self.beta) + len(self.theta) + 1

    # -- training rows ------------------------------------------------------------
    def fitted(self) -> np.ndarray:
        """Conditional fitted values ``X beta + Z b`` of the training rows, shape (n,).

        On a conditioned model ``b`` holds the updated random effects (as
        ``predict()`` without newdata).

        Raises
        ------
        DataError
            When the model holds no training rows (fitted on a Dask frame or
            loaded from a file): use ``m.predict(data)``.
        """
        if self.fitted_values is not None:
            return self.fitted_values.copy()
        if self.data is None:
            raise DataError(NO_ROWS.format(what="fitted values", how="m.predict(data)"))
        return np.asarray(self.predict())

    def residuals(self) -> np.ndarray:
        """Response minus conditional fitted values, shape (n,).

        Raises
        ------
        DataError
            When the model holds no training rows (see :meth:`fitted`).
        """
        if self.response_values is None:
            if self.data is None:
                how = "data[response] - m.predict(data)"
                raise DataError(NO_ROWS.format(what="residuals", how=how))
            return self.spec.response_vector(self.data) - self.fitted()
        return self.response_values - self.fitted()

    # -- prediction -------------------------------------------------------------------
    @overload
    def predict(
        self,
        newdata: Any = ...,
        re: str | None = ...,
        new_levels: str = ...,
        given: Any = ...,
        interval: None = ...,
        level: float = ...,
        uncertainty: str = ...,
        bootstrap: BootstrapResult | None = ...,
        return_info: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def predict(
        self,
        newdata: Any = ...,
        re: str | None = ...,
        new_levels: str = ...,
        given: Any = ...,
        *,
        interval: Literal["confidence", "prediction"] | str,
        level: float = ...,
        uncertainty: str = ...,
        bootstrap: BootstrapResult | None = ...,
        return_info: Literal[False] = ...,
    ) -> pd.DataFrame: ...

    @overload
    def predict(
        self,
        newdata: Any = ...,
        re: str | None = ...,
        new_levels: str = ...,
        given: Any = ...,
        interval: str | None = ...,
        level: float = ...,
        uncertainty: str = ...,
        bootstrap: BootstrapResult | None = ...,
        *,
        return_info: Literal[True],
    ) -> tuple[Any, PredictionInfo]: ...

    def predict(
        self,
        newdata: Any = None,
        re: str | None = "all",
        new_levels: str = "population",
        given: Any = None,
        interval: str | None = None,
        level: float = 0.95,
        uncertainty: str = "plugin",
        bootstrap: BootstrapResult | None = None,
        return_info: bool = False,
    ) -> Any:
        """Predict with the random effects.

        Parameters
        ----------
        newdata : DataFrame, optional
            A pandas (any dtypes), polars or Dask DataFrame, a polars
            LazyFrame or a pyarrow Table: rows to predict; None for the
            training rows (``data``; an error when the model holds none,
            e.g. loaded from a file or fitted on Dask). On a conditioned
            model: the training rows, not the given ones, with the updated
            random effects. A Dask frame gives a lazy
            dask Series named ``fit`` (or a dask DataFrame with intervals),
            partitioned like ``newdata``.
        re : str, default "all"
            ``"all"``, ``"none"``, or lme4's ``re.form`` terms such as
            ``"(1 | Subject)"``: the random effects to include.
        new_levels : {"population", "nan", "error"}
            Unseen levels: effect 0 (population level), NaN, or a
            :class:`~mixedfx.DataError` listing them. Nested terms keep the
            levels they know. Labels match training's by value across dtypes
            (``7``, ``7.0`` and ``"7"``; see :mod:`mixedfx.frame.levels`). New
            groups are expected and pass quietly (``return_info`` counts
            them); a :class:`~mixedfx.NewLevelWarning` comes only when the
            labels look mismatched (case, spaces, zero padding, number format,
            or numbers against words).
        given : DataFrame, optional
            Observations with the response (any frame ``newdata`` can be):
            the random effects of their groups are updated from them first
            (see :meth:`condition`; a Dask frame is summed into blocks, never
            collected). For a known group they are additional observations.
            A :class:`~mixedfx.GivenWarning` names given groups that no row
            of ``newdata`` belongs to (both frames in memory), and given rows
            identical to training rows (when the model holds them).
        interval : {None, "confidence", "prediction"}
            None returns an ndarray of shape (n,); otherwise a DataFrame
            with columns ``fit, se, lower, upper`` (see
            :mod:`mixedfx.predict` for the variance parts of each).
        level : float, default 0.95
        uncertainty : {"plugin", "bootstrap", "hessian"}, default "plugin"
            How the interval treats theta and sigma: held at their estimates
            (``"plugin"``), or varied over the draws of ``bootstrap`` or over
            draws from the Hessian of the profiled objective (see
            :mod:`mixedfx.inference.uncertainty`). Needs ``interval``.
        bootstrap : BootstrapResult, optional
            From :meth:`bootstrap`, for ``uncertainty="bootstrap"``.
        return_info : bool, default False
            Also return a :class:`~mixedfx.predict.PredictionInfo`: per
            grouping factor, how many rows had a new or missing level, and
            which rows (in-memory frames and ``uncertainty="plugin"`` only).

        Returns
        -------
        ndarray, shape (n,), or DataFrame
            With ``return_info``: the pair ``(predictions, info)``.
        """
        from .predict import predict

        if given is not None and backend(given) is None:
            given = in_memory(given, "given")
        if newdata is not None and backend(newdata) is None:
            newdata = in_memory(newdata, "newdata")
        if uncertainty != "plugin":
            from .inference.uncertainty import UNCERTAINTY, predict_uncertain

            if uncertainty not in UNCERTAINTY:
                raise ValueError(f"uncertainty must be one of {UNCERTAINTY}, got {uncertainty!r}")
            if return_info:
                raise ValueError("return_info needs uncertainty='plugin'")
            return predict_uncertain(
                self, newdata, re, new_levels, given, str(interval), level, uncertainty, bootstrap
            )
        model = self if given is None else self.condition(given)
        remote = backend(newdata)
        if remote is not None:
            if return_info:
                raise ValueError("return_info needs newdata in memory, not a Dask frame")
            return remote.predict(model, newdata, re, new_levels, interval, level)
        if backend(given) is not None:
            given = None  # a Dask given is never collected, so not checked against newdata
        with threads_mod.pinned(threads_mod.choose(model.blocks)):  # as the fit (threads.py)
            return predict(
                model,
                newdata,
                re,
                new_levels,
                interval,
                level,
                given=given,
                return_info=return_info,
            )

    def condition(self, given: Any) -> LinearMixedModel:
        """A model with the same parameters and BLUPs updated by ``given`` (with response).

        Its ``nobs``, objective, AIC and BIC stay the fit's; ``nobs_given``
        counts the given rows. See :func:`mixedfx.condition.condition`.
        """
        from .condition import condition

        with threads_mod.pinned(threads_mod.choose(self.blocks)):
            return condition(self, given)

    @property
    def user_blocks(self) -> Blocks:
        """:attr:`blocks` moved to the user's coordinates: those of ``theta`` and ``sigma``.

        ``[Z X y_c]'[Z X y_c]`` of the user's columns ``Z`` and ``X`` and the
        working response centred, ``y_c = y - c`` with ``c`` the fit's centre
        of y (0 unless X holds the constant), with the given rows after
        :meth:`condition`; from the standardized blocks by the exact inverse
        maps (:meth:`~mixedfx.engine.standard.Standardization.back`,
        :func:`~mixedfx.engine.blocks.transform`), computed once. Their
        objective at ``theta`` is the model's, with sigma, and their fixed
        effects are ``beta - c v_X`` (``v_X`` the intercept combination,
        ``standardized.coords.x_weights``). The Hessian draws of
        ``uncertainty="hessian"`` read these; Kenward-Roger, Satterthwaite
        and the profiles run in the standardized coordinates. A
        shifted response does not cancel in them, but shifted columns of X or
        Z do, as the raw columns' would; fits and predictions never read them.
        """
        cached = self.__dict__.get("_user_blocks")
        if cached is None:
            with _PREDICTION_ERROR_LOCK:
                cached = self.__dict__.get("_user_blocks")
                if cached is None:
                    from .engine.blocks import transform

                    cached = transform(self.blocks, *self.standardized.coords.back())
                    object.__setattr__(self, "_user_blocks", cached)  # frozen: cache only
        return cached

    # -- inference (mixedfx.inference) -------------------------------------------------
    def confint(
        self, method: str = "profile", level: float = 0.95, bootstrap: BootstrapResult | None = None
    ) -> pd.DataFrame:
        """Confidence intervals for every parameter, as lme4's ``confint(oldNames = FALSE)``.

        Parameters
        ----------
        method : {"profile", "wald", "bootstrap"}
            Profile likelihood (of the ML deviance, also for a REML fit, as
            lme4), Wald (fixed effects only; NaN for the variance
            parameters), or percentiles of ``bootstrap`` (a new
            :meth:`bootstrap` with its defaults when None).
        level : float, default 0.95

        Returns
        -------
        DataFrame
            Rows ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``,
            ..., ``sigma``, then the fixed effects; columns ``lower, upper``.
        """
        from .inference.confint import confint

        return confint(self, method, level, bootstrap)

    def coef_table(self, ddf: str = "satterthwaite") -> pd.DataFrame:
        """Fixed effects with se, df, t and p (lmerTest's coefficient table).

        ``ddf``: ``"satterthwaite"`` (lmerTest's default), ``"kenward-roger"``
        (pbkrtest's adjusted se and df; REML fits only) or ``"none"``
        (normal, df = inf).
        """
        from .inference.coeftable import coef_table

        return coef_table(self, ddf)

    def simulate(
        self,
        nsim: int = 1,
        newdata: pd.DataFrame | None = None,
        ranef: str = "sample",
        seed: int | np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """Simulated responses (lme4's ``simulate``): columns ``sim_1 ... sim_nsim``.

        ``ranef="sample"`` draws new random effects for every group;
        ``"fitted"`` keeps the BLUPs of known groups (new groups are drawn).
        Any rows, with new groups (the training rows by default).
        """
        from .inference.simulate import simulate

        return simulate(self, nsim, newdata, ranef, seed)

    def bootstrap(
        self,
        n: int = 1000,
        seed: int = 0,
        progress: bool = True,
        n_jobs: int = -1,
        ranef: str = "sample",
    ) -> BootstrapResult:
        """Parametric bootstrap (lme4's ``bootMer``): ``n`` refits to simulated responses.

        Refits reuse the design and blocks and start from the fit's theta;
        they run in parallel with joblib (``n_jobs``; on Dask workers when a
        distributed client is active) with a tqdm progress bar. Failed refits
        are counted (``n_failed``), never dropped. Needs the training rows.
        See :mod:`mixedfx.inference.bootstrap`.
        """
        from .inference.bootstrap import bootstrap

        return bootstrap(self, n, seed, progress, n_jobs, ranef)

    def tidy(
        self, conf_int: bool = False, level: float = 0.95, conf_method: str = "wald"
    ) -> pd.DataFrame:
        """One row per parameter, in broom.mixed's spirit (see :mod:`mixedfx.inference.tidy`)."""
        from .inference.tidy import tidy

        return tidy(self, conf_int, level, conf_method)

    def glance(self) -> pd.DataFrame:
        """A one-row summary of the fit (see :mod:`mixedfx.inference.tidy`)."""
        from .inference.tidy import glance

        return glance(self)

    def summary(self) -> str:
        """A printable lme4-style summary."""
        from .summary import render

        return render(self)

    def __repr__(self) -> str:
        kind = "REML" if self.reml else "ML"
        given = f", conditioned on {self.nobs_given} given rows" if self.conditioned else ""
        return (
            f"<LinearMixedModel {self.spec.formula!r} fit by {kind}: "
            f"{self.nobs} obs, objective {self.objective:.4f}{given}>"
        )
