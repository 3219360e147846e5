"""What every fitted mixed model has: random effects, their covariances, the design.

:class:`MixedModel` holds the methods that the linear and the generalized
linear mixed model share (:class:`~mixedfx.LinearMixedModel`,
:class:`~mixedfx.GeneralizedLinearMixedModel`): the relative covariance
factors and the covariances they give, the boundary flag, fixed effects and
their covariance, the conditional modes by grouping factor (``ranef``,
``ranef_condvar``, ``coef``), ``varcorr``, the model matrices of rows, the
factored mixed-model equations behind intervals, and saving. The concrete
models are frozen dataclasses that provide the attributes listed below.
"""

from __future__ import annotations

import os
import threading
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .engine.blocks import Blocks
from .engine.bobyqa import OptSummary
from .engine.cholesky import factorize
from .engine.intervals import PredictionError
from .engine.standard import Standardized
from .errors import DataError
from .frame.design import DesignSpec
from .frame.levels import as_array
from .frame.reterm import ReTerm
from .frames import in_memory

_PREDICTION_ERROR_LOCK = threading.Lock()
SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on the diagonal of T


class ModelMatrices(NamedTuple):
    """X and Z of some rows (see :meth:`MixedModel.design`)."""

    X: pd.DataFrame
    Z: Any  # scipy.sparse.csr_matrix, shape (n, sum_t l_t q_t)
    z_names: list[str]


def level_index(t: ReTerm) -> pd.Index:
    """A term's levels as an index: its labels, or a MultiIndex for an interaction."""
    if len(t.term.factors) == 1:
        return pd.Index(as_array(t.keys), name=t.group, dtype=object).infer_objects()
    return pd.MultiIndex.from_tuples(list(t.keys), names=list(t.term.factors))


class MixedModel:
    """Shared behaviour of fitted mixed models (see module docstring).

    Attributes provided by the concrete models
    ------------------------------------------
    spec : DesignSpec
    theta : ndarray, shape (k,)
    beta : ndarray, shape (p,)
    sigma : float
        Residual standard deviation (1 for families without a dispersion).
    objective : float
        The minimised criterion: ``-2`` times the (REML) log-likelihood.
    npar : int
        Parameters counted by AIC and BIC.
    b, b_condcov : list per term of ndarray, (l_t, q_t) and (l_t, q_t, q_t)
    vcov_beta : ndarray, shape (p, p)
    optsummary : OptSummary
    blocks : Blocks
        Cross-products of the (working-weighted) training rows, in the
        coordinates of ``standardized.coords``.
    standardized : Standardized
        The estimates in the blocks' coordinates (the LMM's centred and
        scaled columns; a GLMM's own: the identity map), which predictions,
        intervals and conditioning start from.
    data : DataFrame or None
    nobs_given : int
    """

    spec: DesignSpec
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    objective: float
    b: list[np.ndarray]
    b_condcov: list[np.ndarray]
    vcov_beta: np.ndarray
    optsummary: OptSummary
    blocks: Blocks
    data: pd.DataFrame | None
    nobs_given: int
    standardized: Standardized

    # -- sizes and parameters ---------------------------------------------------
    @property
    def nobs(self) -> int:
        """Observations of the fit, as in lme4; given rows of :meth:`condition` not counted.

        The parameters, ``objective``, ``loglik``, ``aic`` and ``bic`` are the
        fit's, on these rows.
        """
        return self.blocks.n - self.nobs_given

    @property
    def conditioned(self) -> bool:
        """True for a model from ``condition``: its random effects also use given rows."""
        return self.nobs_given > 0

    @property
    def converged(self) -> bool:
        return self.optsummary.converged

    @property
    def npar(self) -> int:
        raise NotImplementedError

    @property
    def loglik(self) -> float:
        """Log-likelihood (REML log-likelihood for a REML fit), as lme4's logLik."""
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        return self.objective + 2 * self.npar

    @property
    def bic(self) -> float:
        return self.objective + np.log(self.nobs) * self.npar

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
            diagonal = np.abs(np.diag(T))
            if t.scales is not None:
                diagonal *= t.scales
            if (diagonal < SINGULAR_TOL).any():
                return True
        return False

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=list(self.spec.fixed_names), name="fixef")

    @property
    def vcov(self) -> pd.DataFrame:
        names = list(self.spec.fixed_names)
        return pd.DataFrame(self.vcov_beta, index=names, columns=names)

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
        """Conditional modes (BLUPs): grouping factor -> DataFrame (levels x terms).

        Indexed by the training labels as found (``"07"`` and ``7`` stay
        themselves); an interaction or nested factor (``cask:batch``) has a
        MultiIndex with one level per grouping column.
        """
        return self._by_group(self.b)

    @property
    def ranef_condvar(self) -> dict[str, pd.DataFrame]:
        """Conditional variances of the random effects, the shape of :attr:`ranef`."""
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

    def _residual_rows(self) -> list[dict[str, Any]]:
        """The ``Residual`` rows of :attr:`varcorr` (none for a family without a dispersion)."""
        return []

    @property
    def residual_variance(self) -> float:
        """Variance of a new observation around its conditional mean on the linear scale.

        ``sigma^2`` for a linear mixed model; 0 for a GLMM, whose
        observation-level variability is not on the link scale (its
        intervals add it on the response scale).
        """
        return 0.0

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
        return pd.DataFrame(rows + self._residual_rows())

    # -- rows ----------------------------------------------------------------------
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
                    Ts = self.spec.layout.Ts(self.standardized.theta)  # the blocks' coordinates
                    cached = PredictionError(factorize(self.blocks, Ts))
                    object.__setattr__(self, "_prediction_error", cached)  # frozen: cache only
        return cached
