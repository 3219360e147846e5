"""GLMMs as scikit-learn estimators: ``MixedGLMClassifier`` and ``MixedPoissonRegressor``.

Both name the model as :class:`~mixedfx.MixedLMRegressor` does (an lme4
``formula``, or ``groups=`` with every other column of ``X`` a fixed
effect), predict with the conditional modes of the groups seen in training
(``new_levels`` for the others), and take ``given`` rows that update the
modes of their groups before predicting (penalized IRLS, no refit).

* :class:`MixedGLMClassifier`: binary outcomes (any two labels; ``classes_``
  sorted, the second is the positive class), a binomial GLMM with a logit,
  probit or cloglog link; ``predict_proba``, ``predict``,
  ``decision_function`` (the linear predictor).
* :class:`MixedPoissonRegressor`: counts, a Poisson GLMM with a log link;
  ``predict`` gives expected counts, an ``offset`` column of ``X`` (such as
  log exposure) is added to the linear predictor.

``sample_weight`` weighs each row's log-likelihood (case weights: any
non-negative numbers, not binomial trials); ``given`` rows count with
weight 1. This module imports scikit-learn; ``import mixedfx`` does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from . import family as family_mod
from .estimator import MixedEstimator
from .glmm import check_nagq, fit
from .glmm_model import GeneralizedLinearMixedModel
from .outcome import OutcomeSpec

__all__ = ["MixedGLMClassifier", "MixedPoissonRegressor"]


class _GLMEstimator(MixedEstimator):
    """A GLMM estimator: the family, nAGQ and the fit through :func:`mixedfx.glmm.fit`."""

    nAGQ: int
    offset: str | None = None

    def _family(self) -> family_mod.Family:
        raise NotImplementedError

    def _fit_model(self, formula: str, data: pd.DataFrame, weights: str | None) -> Any:
        spec = OutcomeSpec(self._family(), weights, trials=False)
        return fit(formula, data, spec, check_nagq(self.nAGQ), str(self.missing), self.offset)

    def _offset_columns(self) -> tuple[str, ...]:
        return () if self.offset is None else (self.offset,)

    def _eta(
        self, X: pd.DataFrame, re: str | None, new_levels: str | None, given: Any
    ) -> np.ndarray:
        return np.asarray(self._predict(X, re, new_levels, given, type="link"), dtype=float)


class MixedGLMClassifier(ClassifierMixin, _GLMEstimator):
    """A binomial GLMM that classifies with the random effects.

    Parameters
    ----------
    formula, groups, random, response, new_levels, missing
        As for :class:`~mixedfx.MixedLMRegressor`.
    link : {"logit", "probit", "cloglog"}, default "logit"
    nAGQ : int, default 1
        As for :func:`mixedfx.glmm`.

    Attributes
    ----------
    model_ : GeneralizedLinearMixedModel
        Without the training data frame.
    classes_ : ndarray, shape (2,)
        The two labels, sorted; ``classes_[1]`` is the positive class whose
        probability the model gives.
    formula_, response_, n_features_in_, feature_names_in_
        As for :class:`~mixedfx.MixedLMRegressor`.
    """

    def __init__(
        self,
        formula: str | None = None,
        *,
        groups: str | None = None,
        random: str = "1",
        response: str | None = None,
        link: str = "logit",
        nAGQ: int = 1,
        new_levels: str = "population",
        missing: str = "error",
    ) -> None:
        self.formula = formula
        self.groups = groups
        self.random = random
        self.response = response
        self.link = link
        self.nAGQ = nAGQ
        self.new_levels = new_levels
        self.missing = missing

    def _family(self) -> family_mod.Family:
        return family_mod.binomial(self.link)

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> MixedGLMClassifier:
        """Fit to binary labels ``y`` (two distinct values), matched to ``X`` by position."""
        self._family()  # a bad link fails before any work
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        if len(classes) != 2:
            raise ValueError(
                f"MixedGLMClassifier needs exactly two classes in y, got {len(classes)}: "
                f"{classes[:10].tolist()}"
            )
        self.classes_ = classes
        self.model_: GeneralizedLinearMixedModel = self._fit(X, codes.astype(float), sample_weight)
        return self

    def _given_frame(self, given: Any) -> pd.DataFrame | None:
        """Given rows' labels mapped to 0/1 by ``classes_``."""
        if isinstance(given, tuple) and len(given) == 2:
            given = (given[0], self._codes(given[1]))
        frame = super()._given_frame(given)
        if frame is not None and not isinstance(given, tuple):
            frame = frame.assign(**{self.response_: self._codes(frame[self.response_])})
        return frame

    def _codes(self, labels: Any) -> np.ndarray:
        values = np.asarray(labels)
        unknown = ~np.isin(values, self.classes_)
        if unknown.any():
            raise ValueError(
                f"given labels {np.unique(values[unknown])[:10].tolist()} are not among "
                f"classes_ {self.classes_.tolist()}"
            )
        return (values == self.classes_[1]).astype(float)

    def decision_function(
        self,
        X: pd.DataFrame,
        re: str | None = "all",
        new_levels: str | None = None,
        given: Any = None,
    ) -> np.ndarray:
        """The linear predictor of the positive class, shape (n,)."""
        return self._eta(X, re, new_levels, given)

    def predict_proba(
        self,
        X: pd.DataFrame,
        re: str | None = "all",
        new_levels: str | None = None,
        given: Any = None,
    ) -> np.ndarray:
        """Class probabilities, shape (n, 2): columns in ``classes_`` order.

        ``re``, ``new_levels`` and ``given`` as for
        :meth:`mixedfx.MixedLMRegressor.predict`.
        """
        check_is_fitted(self)
        p = self.model_.family.link.linkinv(self._eta(X, re, new_levels, given))
        return np.column_stack([1.0 - p, p])

    def predict(
        self,
        X: pd.DataFrame,
        re: str | None = "all",
        new_levels: str | None = None,
        given: Any = None,
    ) -> np.ndarray:
        """The more probable class of each row (the positive class at p > 1/2), shape (n,).

        Rows whose probability is NaN (``new_levels="nan"``) raise: use
        :meth:`predict_proba` for them.
        """
        p = self.predict_proba(X, re, new_levels, given)[:, 1]
        if np.isnan(p).any():
            raise ValueError(
                f"{int(np.isnan(p).sum())} row(s) have no probability (new levels with "
                "new_levels='nan', or missing predictors); use predict_proba"
            )
        return self.classes_[(p > 0.5).astype(int)]


class MixedPoissonRegressor(RegressorMixin, _GLMEstimator):
    """A Poisson GLMM (log link) that predicts expected counts with the random effects.

    Parameters
    ----------
    formula, groups, random, response, new_levels, missing
        As for :class:`~mixedfx.MixedLMRegressor`.
    offset : str, optional
        A column of ``X`` added to the linear predictor (e.g. log exposure);
        with ``groups=`` it is not a fixed effect. ``predict`` needs it too.
    nAGQ : int, default 1

    Attributes
    ----------
    model_ : GeneralizedLinearMixedModel
    formula_, response_, n_features_in_, feature_names_in_
    """

    def __init__(
        self,
        formula: str | None = None,
        *,
        groups: str | None = None,
        random: str = "1",
        response: str | None = None,
        offset: str | None = None,
        nAGQ: int = 1,
        new_levels: str = "population",
        missing: str = "error",
    ) -> None:
        self.formula = formula
        self.groups = groups
        self.random = random
        self.response = response
        self.offset = offset
        self.nAGQ = nAGQ
        self.new_levels = new_levels
        self.missing = missing

    def _family(self) -> family_mod.Family:
        return family_mod.poisson()

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> MixedPoissonRegressor:
        """Fit to counts ``y`` (whole numbers >= 0), matched to ``X`` by position."""
        self.model_: GeneralizedLinearMixedModel = self._fit(
            X, y, sample_weight, exclude=self._offset_columns()
        )
        return self

    def predict(
        self,
        X: pd.DataFrame,
        re: str | None = "all",
        new_levels: str | None = None,
        given: Any = None,
    ) -> np.ndarray:
        """Expected counts, shape (n,) (offset included)."""
        check_is_fitted(self)
        return self.model_.family.link.linkinv(self._eta(X, re, new_levels, given))

    def predict_interval(
        self,
        X: pd.DataFrame,
        interval: str = "prediction",
        level: float = 0.95,
        re: str | None = "all",
        new_levels: str | None = None,
        given: Any = None,
    ) -> pd.DataFrame:
        """Expected counts with intervals: ``"prediction"`` for a new count (Poisson
        quantiles), ``"confidence"`` for the mean (see :mod:`mixedfx.glmm_predict`)."""
        if interval not in ("prediction", "confidence"):
            raise ValueError(f"interval must be 'prediction' or 'confidence', got {interval!r}")
        out = self._predict(X, re, new_levels, given, interval=interval, level=level)
        assert isinstance(out, pd.DataFrame)
        return out
