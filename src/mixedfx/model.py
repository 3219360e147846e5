"""The fitted linear mixed model: estimates, random effects and summaries.

A model is read-only after fitting. It holds the design (to rebuild model
matrices for new data), the parameters (theta, beta, sigma), the random
effects and their conditional covariances, and the cross-product blocks of
the training rows (sufficient statistics). It refers to the training data
frame it was fitted on (``data``), but never copies or saves it: a model
loaded from a file or fitted on Dask holds no rows.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, overload

import numpy as np
import pandas as pd

from . import threads as threads_mod
from .engine.blocks import Blocks
from .engine.intervals import PredictionError
from .engine.optimize import OptSummary
from .engine.standard import Standardized
from .errors import DataError
from .frame.design import DesignSpec
from .frame.levels import as_array
from .frame.reterm import ReTerm
from .frames import backend, in_memory

if TYPE_CHECKING:
    from .inference.bootstrap import BootstrapResult
    from .predict import PredictionInfo

_PREDICTION_ERROR_LOCK = threading.Lock()
SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on the diagonal of T
NO_ROWS = (
    "this model holds no training rows (it was fitted on a Dask frame or loaded from a "
    "file), so it has no {what}: compute them from the training data "
    "with {how} (a Dask frame gives a lazy result)"
)


class ModelMatrices(NamedTuple):
    """X and Z of some rows (see :meth:`LinearMixedModel.design`)."""

    X: pd.DataFrame
    Z: Any  # scipy.sparse.csr_matrix, shape (n, sum_t l_t q_t)
    z_names: list[str]


def level_index(t: ReTerm) -> pd.Index:
    """A term's levels as an index: its labels, or a MultiIndex for an interaction."""
    if len(t.term.factors) == 1:
        return pd.Index(as_array(t.keys), name=t.group, dtype=object).infer_objects()
    return pd.MultiIndex.from_tuples(list(t.keys), names=list(t.term.factors))


@dataclass(frozen=True, eq=False)
class LinearMixedModel:
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
    standardized: Standardized = field(kw_only=True, repr=False)

    # -- sizes and parameters ---------------------------------------------------
    @property
    def nobs(self) -> int:
        """Observations of the fit, as in lme4; given rows of :meth:`condition` not counted.

        The parameters, :attr:`objective`, :attr:`loglik`, :attr:`aic` and
        :attr:`bic` are the fit's, on these rows.
        """
        return self.blocks.n - self.nobs_given

    @property
    def conditioned(self) -> bool:
        """True for a model from :meth:`condition`: its random effects also use given rows."""
        return self.nobs_given > 0

    @property
    def converged(self) -> bool:
        return self.optsummary.converged

    def Ts(self) -> list[np.ndarray]:
        """Per term, the relative covariance factor ``T_t``, shape (q_t, q_t)."""
        return self.spec.layout.Ts(self.theta)

    def covariances(self) -> list[np.ndarray]:
        """Per term, the covariance of one level's random effects ``sigma^2 T T'``."""
        return [self.sigma**2 * T @ T.T for T in self.Ts()]

    @property
    def singular(self) -> bool:
        """True when some diagonal of T is (near) zero: a boundary fit.

        A diagonal is compared with lme4's tolerance after scaling by its
        column's scale (1 unless the column's size was extreme; see
        :func:`mixedfx.fit.column_scales`), so the flag does not change when
        a random-slope variable changes units.
        """
        for t, T in zip(self.spec.terms, self.Ts(), strict=True):
            scales = np.ones(t.q) if t.scales is None else t.scales
            if np.any(np.abs(np.diag(T)) * scales < SINGULAR_TOL):
                return True
        return False

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=list(self.spec.fixed_names), name="fixef")

    @property
    def vcov(self) -> pd.DataFrame:
        names = list(self.spec.fixed_names)
        return pd.DataFrame(self.vcov_beta, index=names, columns=names)

    # -- likelihood -------------------------------------------------------------
    @property
    def npar(self) -> int:
        """Parameters counted by AIC: beta, theta and sigma."""
        return len(self.beta) + len(self.theta) + 1

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood when ``reml``), as lme4's logLik."""
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        return self.objective + 2 * self.npar

    @property
    def bic(self) -> float:
        return self.objective + np.log(self.nobs) * self.npar

    # -- random effects -----------------------------------------------------------
    def _by_group(self, values: list[np.ndarray]) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, v in zip(self.spec.terms, values, strict=True):
            frame = pd.DataFrame(v, index=level_index(t), columns=t.columns)
            if t.group in out:  # (1 | g) + (0 + x | g): one frame per factor
                frame = out[t.group].join(frame, rsuffix=".1")
            out[t.group] = frame
        return out

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """BLUPs: grouping factor -> DataFrame (levels x terms).

        Indexed by the training labels as found (``"07"`` and ``7`` stay
        themselves); an interaction or nested factor (``cask:batch``) has a
        MultiIndex with one level per grouping column.
        """
        return self._by_group(self.b)

    @property
    def ranef_condvar(self) -> dict[str, pd.DataFrame]:
        """Conditional variances of the BLUPs, the shape of :attr:`ranef`."""
        return self._by_group([np.diagonal(c, axis1=1, axis2=2) for c in self.b_condcov])

    @property
    def coef(self) -> dict[str, pd.DataFrame]:
        """Per grouping factor: fixed effects plus that level's random effects."""
        fe = self.fixef
        out = {}
        for group, re in self.ranef.items():
            frame = pd.DataFrame(
                np.tile(fe.to_numpy(), (len(re), 1)), index=re.index, columns=fe.index
            )
            for col in re.columns:
                frame[col] = frame[col] + re[col] if col in frame else re[col]
            out[group] = frame
        return out

    @property
    def varcorr(self) -> pd.DataFrame:
        """Variance components: group, term1, term2, variance, sd, correlation.

        Rows with ``term2`` empty give a variance and its sd; rows with
        ``term2`` set give a covariance (in ``variance``) and the correlation.
        """
        rows: list[dict[str, Any]] = []
        for t, S in zip(self.spec.terms, self.covariances(), strict=True):
            sd = np.sqrt(np.diag(S))
            for i, name in enumerate(t.columns):
                rows.append(
                    dict(
                        group=t.group,
                        term1=name,
                        term2=None,
                        variance=S[i, i],
                        sd=sd[i],
                        correlation=np.nan,
                    )
                )
            block = np.repeat(np.arange(len(t.blocks)), t.blocks)  # correlations within blocks
            for j in range(t.q):
                for i in range(j + 1, t.q):
                    if block[i] == block[j]:
                        corr = S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                        rows.append(
                            dict(
                                group=t.group,
                                term1=t.columns[j],
                                term2=t.columns[i],
                                variance=S[i, j],
                                sd=np.nan,
                                correlation=corr,
                            )
                        )
        rows.append(
            dict(
                group="Residual",
                term1=None,
                term2=None,
                variance=self.sigma**2,
                sd=self.sigma,
                correlation=np.nan,
            )
        )
        return pd.DataFrame(rows)

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

    def design(self, newdata: Any = None) -> ModelMatrices:
        """The fixed-effects matrix X and the sparse random-effects matrix Z of rows.

        Returns
        -------
        ModelMatrices
            ``X`` (DataFrame, n x p), ``Z`` (scipy.sparse CSR, n x sum l_t q_t)
            and ``z_names``, one ``"group[level]:column"`` per column of Z.
        """
        from .frame import rows

        data = self.data if newdata is None else in_memory(newdata, "newdata")
        if data is None:
            raise DataError("this model holds no training data; pass newdata")
        r = rows.build(self.spec, data)
        Z, names = rows.z_matrix(self.spec, r)
        X = pd.DataFrame(r.X, index=data.index, columns=list(self.spec.fixed_names))
        return ModelMatrices(X, Z, names)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save to a ``.mfx`` file: JSON and arrays in a zip, no pickle, no training rows."""
        from .modelfile import save

        save(self, path)

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

    def prediction_error(self) -> PredictionError:
        """The factored mixed-model equations at the estimates (computed once).

        Thread-safe: the first caller computes it under a lock, and every
        thread gets the same object (a model is read-only after fitting, so
        many threads may predict from one model at once).
        """
        cached = self.__dict__.get("_prediction_error")
        if cached is None:
            with _PREDICTION_ERROR_LOCK:
                cached = self.__dict__.get("_prediction_error")
                if cached is None:
                    from .engine.objective import Objective

                    objective = Objective(self.blocks, self.spec.layout, self.reml)
                    f = objective.factorize(self.standardized.theta)
                    cached = PredictionError(f)
                    object.__setattr__(self, "_prediction_error", cached)  # frozen: cache only
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
