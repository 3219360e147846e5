"""``MixedLMRegressor``: a linear mixed model as a scikit-learn estimator.

The machinery every mixedfx estimator shares (naming the model by a formula
or by ``groups=``, the response and sample weights put into a copy of ``X``,
``given`` rows, prediction modes) is :class:`MixedEstimator`; the GLMM
estimators (:mod:`mixedfx.glm_estimator`) build on it.

Two ways to name the model:

* ``MixedLMRegressor("y ~ x + (x | g)")``: an lme4 formula. ``X`` is a
  DataFrame with the predictor and grouping columns; ``y`` is the response,
  given the formula's response name.
* ``MixedLMRegressor(groups="g", random="1 + x")``: every column of ``X``
  other than ``groups`` is a fixed effect (with an intercept), and the random
  part is ``(random | groups)``. The response is called ``response`` (default
  ``"y"``), so the formula reads ``y ~ x + z + (1 + x | g)``.

Prediction uses the random effects of the groups seen in training (their
BLUPs); rows of groups never seen get the population-level prediction (or NaN,
or an error; see ``new_levels``). ``given`` rows update the random effects of
their groups before predicting, without refitting.

This module imports scikit-learn; ``import mixedfx`` does not (the class is
exported lazily). Install it with ``pip install 'mixedfx[sklearn]'``.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import issparse

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils.validation import check_is_fitted
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mixedfx.MixedLMRegressor needs scikit-learn; install it with "
        "pip install 'mixedfx[sklearn]'"
    ) from exc

from .errors import DataError
from .fit import lmm
from .frame.formula import parse
from .frame.missing import MISSING
from .frame.syntax import Name, deparse_name
from .frames import in_memory
from .model import LinearMixedModel
from .predict import NEW_LEVELS

__all__ = ["MixedEstimator", "MixedLMRegressor", "expected_failed_checks"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_RESPONSE = "y"
WEIGHT_COLUMN = "__sample_weight__"  # sample weights travel as this column of a copy of X


def quote(name: str) -> str:
    """A column name as a formula term: bare when an identifier, else in backticks.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
        ``name`` or ```name```, as mixedfx's formula parser (R's syntax) expects.

    Raises
    ------
    ValueError
        For a name holding a backtick, which a formula cannot quote.
    """
    if _IDENTIFIER.match(name) and not keyword.iskeyword(name) and deparse_name(name) == name:
        return name  # an R name (no leading "_", not an R reserved word)
    if "`" in name:
        raise ValueError(f"column name {name!r} contains a backtick; rename the column")
    return f"`{name}`"


def _as_frame(X: Any, what: str) -> pd.DataFrame:
    """``X`` as a pandas DataFrame (from pandas, polars or pyarrow) with string column names."""
    if issparse(X):
        raise TypeError(
            f"{what} is a sparse matrix, and sparse input is not supported: {what} must be "
            "a pandas DataFrame (columns are named in the model)"
        )
    try:
        X = in_memory(X, what)
    except DataError as exc:  # columns are named in the model: an array will not do
        raise TypeError(f"{exc}; in a Pipeline use set_output(transform='pandas')") from exc
    bad = [c for c in X.columns if not isinstance(c, str)]
    if bad:
        raise ValueError(
            f"{what} must be a pandas DataFrame with string column names (a formula names "
            f"them); it has column names that are not strings: {bad[:10]}"
        )
    return X


def _with_response(X: pd.DataFrame, y: Any, response: str, what: str) -> pd.DataFrame:
    """A copy of ``X`` with ``y`` (matched by position) in the column ``response``."""
    if response in X.columns:
        raise ValueError(
            f"{what} already has a column {response!r}, the name of the response; "
            "pass the response as y only (or, with groups=, choose another name "
            "with the response parameter)"
        )
    values = np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {values.shape}")
    if len(values) != len(X):
        raise ValueError(f"y has {len(values)} values for {len(X)} rows of {what}")
    data = X.copy()
    data[response] = values
    return data


class MixedEstimator(BaseEstimator):
    """What the mixedfx estimators share (see :class:`MixedLMRegressor` for the parameters).

    Subclasses give ``_fit_model(formula, data, weights)``: the model fitted
    on ``data`` (a copy of ``X`` with the response, and the sample weights in
    the column ``weights`` when given).
    """

    formula: str | None
    groups: str | None
    random: str
    response: str | None
    new_levels: str
    missing: str

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's tags: X is a DataFrame whose columns may hold strings and categories.

        scikit-learn's common checks pass NumPy arrays, which a formula cannot
        name; :func:`expected_failed_checks` lists the checks that fail for
        that reason alone.
        """
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True  # grouping labels
        tags.input_tags.categorical = True
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = self.missing == "drop"
        tags.target_tags.required = True
        return tags

    # -- the model formula ----------------------------------------------------------
    def _check_params(self) -> None:
        _check_naming(self)
        if self.new_levels not in NEW_LEVELS:
            raise ValueError(f"new_levels must be one of {NEW_LEVELS}, got {self.new_levels!r}")
        if self.missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}, got {self.missing!r}")

    def _model_formula(self, X: pd.DataFrame, exclude: tuple[str, ...] = ()) -> tuple[str, str]:
        """The formula to fit and its response name (parameters already checked).

        ``exclude`` columns of ``X`` are not fixed effects in ``groups=`` mode.
        """
        if self.formula is not None:
            parsed = parse(self.formula)
            if not isinstance(parsed.lhs, Name):
                raise ValueError(
                    f"the formula's response {parsed.response} is an expression, but y is the "
                    "response itself: predict and score would then be on another scale than "
                    "y. Name the response (e.g. 'y ~ ...') and transform y yourself, or wrap "
                    "the estimator in sklearn.compose.TransformedTargetRegressor(func=np.log, "
                    "inverse_func=np.exp)"
                )
            return self.formula, parsed.response
        groups = str(self.groups)
        response = DEFAULT_RESPONSE if self.response is None else self.response
        if groups not in X.columns:
            raise ValueError(
                f"groups column {groups!r} is not in X (it has {list(X.columns)[:20]})"
            )
        fixed = [quote(c) for c in X.columns if c != groups and c not in exclude]
        rhs = " + ".join(fixed) if fixed else "1"
        return f"{response} ~ {rhs} + ({self.random} | {quote(groups)})", response

    def _fit_model(self, formula: str, data: pd.DataFrame, weights: str | None) -> Any:
        raise NotImplementedError

    def _fit(
        self, X: pd.DataFrame, y: Any, sample_weight: Any = None, exclude: tuple[str, ...] = ()
    ) -> Any:
        """Check, build the formula and the data, fit; set the fitted attributes."""
        self._check_params()
        X = _as_frame(X, "X")
        formula, response = self._model_formula(X, exclude)
        data = _with_response(X, y, response, "X")
        weights = None
        if sample_weight is not None:
            data[WEIGHT_COLUMN] = _sample_weight(sample_weight, len(X))
            weights = WEIGHT_COLUMN
        # the model would keep a reference to ``data``, a copy of the training rows
        # that nothing here needs: drop it, so pickles do not carry it
        model = dataclasses.replace(self._fit_model(formula, data, weights), data=None)
        self.model_ = model
        self.formula_ = formula
        self.response_ = response
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return model

    def _given_frame(self, given: Any) -> pd.DataFrame | None:
        """``given`` as a DataFrame holding the response (and unit weights), or None."""
        if given is None:
            return None
        if isinstance(given, tuple):
            if len(given) != 2:
                raise ValueError("given must be a DataFrame or a pair (X_given, y_given)")
            frame = _with_response(
                _as_frame(given[0], "given X"), given[1], self.response_, "given X"
            )
        else:
            frame = _as_frame(given, "given")
            if self.response_ not in frame.columns:
                raise ValueError(
                    f"given must hold the observed response in a column {self.response_!r} "
                    "(the model's response name), or be a pair (X_given, y_given)"
                )
        return self._weighted_given(frame)

    def _weighted_given(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Given rows of a model fitted with sample weights count with weight 1."""
        uses = WEIGHT_COLUMN in (getattr(self.model_, "weights", None), _outcome_weights(self))
        if uses and WEIGHT_COLUMN not in frame.columns:
            frame = frame.assign(**{WEIGHT_COLUMN: 1.0})
        return frame

    def _predict(
        self, X: pd.DataFrame, re: str | None, new_levels: str | None, given: Any, **kw: Any
    ) -> Any:
        """``model_.predict`` with the estimator's defaults."""
        check_is_fitted(self)
        X = _as_frame(X, "X")
        levels = self.new_levels if new_levels is None else new_levels
        return self.model_.predict(
            X, re=re, new_levels=levels, given=self._given_frame(given), **kw
        )


def _outcome_weights(est: MixedEstimator) -> str | None:
    outcome = getattr(est.model_, "outcome", None)
    return None if outcome is None else outcome.weights


def _sample_weight(sample_weight: Any, n: int) -> np.ndarray:
    """Sample weights as floats, shape (n,)."""
    w = np.asarray(sample_weight, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"sample_weight has shape {w.shape} for {n} rows of X")
    return w


def _check_naming(est: MixedEstimator) -> None:
    """Exactly one of formula= and groups=, and their companions, well formed."""
    if (est.formula is None) == (est.groups is None):
        raise ValueError(
            "give exactly one of formula= (an lme4 formula such as 'y ~ x + (x | g)') "
            "and groups= (the grouping column; the other columns are fixed effects)"
            + ("; both were given" if est.formula is not None else "; neither was given")
        )
    if est.formula is not None:
        if not isinstance(est.formula, str):
            raise ValueError(f"formula must be a string, got {est.formula!r}")
        if est.response is not None:
            raise ValueError(
                "response= is for groups= mode; with formula= the formula's left-hand "
                f"side names the response (got response={est.response!r})"
            )
        if est.random != "1":
            raise ValueError(
                "random= is for groups= mode; with formula= write the random terms "
                f"in the formula (got random={est.random!r})"
            )
        return
    if not isinstance(est.groups, str):
        raise ValueError(
            f"groups must be the name of one column of X, got {est.groups!r}; "
            "for several grouping factors use formula="
        )
    if not isinstance(est.random, str) or not est.random.strip():
        raise ValueError(f"random must be a string such as '1' or '1 + x', got {est.random!r}")
    if "|" in est.random or "~" in est.random:
        raise ValueError(
            f"random={est.random!r} should be only the left side of the bar, "
            "e.g. '1 + x'; for anything more use formula="
        )
    response = DEFAULT_RESPONSE if est.response is None else est.response
    if not isinstance(response, str) or not response.strip() or "~" in response:
        raise ValueError(f"response must be a column name, got {response!r}")


class MixedLMRegressor(RegressorMixin, MixedEstimator):
    """A linear mixed model that predicts with the random effects.

    Give exactly one of ``formula`` and ``groups``.

    Parameters
    ----------
    formula : str, optional
        An lme4 formula such as ``"Reaction ~ Days + (Days | Subject)"``.
        ``fit`` puts ``y`` into a copy of ``X`` under the formula's response
        name, which ``X`` must not already have.
    groups : str, optional
        The grouping column of ``X``. Every other column of ``X`` is a fixed
        effect (object and categorical columns as factors), with an intercept,
        and the formula is ``response ~ c1 + c2 + ... + (random | groups)``.
    random : str, default "1"
        With ``groups``: the left side of the random-effects bar, e.g.
        ``"1"`` (random intercepts), ``"1 + x"`` or ``"0 + x"``.
    response : str, optional
        With ``groups``: the response's name in the formula (default ``"y"``),
        and so the column that ``given`` frames must hold the response in.
        With ``formula`` leave it unset: the formula names the response.
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    new_levels : {"population", "nan", "error"}, default "population"
        Default for :meth:`predict`: groups not seen in training get the
        population-level prediction (random effects 0), NaN, or an error.
    missing : {"error", "drop"}, default "error"
        Training rows with NaN, inf or a missing label in a column the model
        uses: an error naming the columns, or (``"drop"``) fit without them
        and report how many with a :class:`mixedfx.MissingDataWarning`
        (see :func:`mixedfx.lmm`).

    Attributes
    ----------
    model_ : LinearMixedModel
        The fitted model (``model_.fixef``, ``model_.ranef``, ...), without
        the training data frame (``model_.data`` is None), so that a pickled
        estimator does not carry the training rows: pass rows explicitly to
        ``model_.predict`` and ``model_.design``. ``model_.fitted()`` and
        ``model_.residuals()`` still work (the model keeps those two vectors).
    formula_ : str
        The formula fitted.
    response_ : str
        The response's name in ``formula_``.
    n_features_in_ : int
        Number of columns of ``X`` in ``fit``.
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Column names of ``X`` in ``fit``.

    Examples
    --------
    >>> import mixedfx as mfx
    >>> df = mfx.datasets.load("sleepstudy")
    >>> X, y = df[["Days", "Subject"]], df["Reaction"]
    >>> est = mfx.MixedLMRegressor(groups="Subject", random="1 + Days").fit(X, y)
    >>> est.formula_
    'y ~ Days + (1 + Days | Subject)'
    >>> est.predict(X.head(2)).round(2)
    array([253.66, 273.33])
    """

    def __init__(
        self,
        formula: str | None = None,
        *,
        groups: str | None = None,
        random: str = "1",
        response: str | None = None,
        reml: bool = True,
        new_levels: str = "population",
        missing: str = "error",
    ) -> None:
        self.formula = formula
        self.groups = groups
        self.random = random
        self.response = response
        self.reml = reml
        self.new_levels = new_levels
        self.missing = missing

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.reml, bool | np.bool_):
            raise ValueError(f"reml must be True or False, got {self.reml!r}")

    def _fit_model(self, formula: str, data: pd.DataFrame, weights: str | None) -> Any:
        return lmm(formula, data, reml=bool(self.reml), missing=str(self.missing), weights=weights)

    # -- scikit-learn API -----------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> MixedLMRegressor:
        """Fit the model.

        Parameters
        ----------
        X : DataFrame, shape (n, k)
            Predictor and grouping columns (not the response).
        y : array-like, shape (n,)
            The response, matched to the rows of ``X`` by position.
        sample_weight : array-like, shape (n,), optional
            Positive prior weights (``lmm(weights=)``, as ``lmer``): row
            ``i``'s residual variance is ``sigma^2 / w_i``. ``given`` rows
            count with weight 1.

        Returns
        -------
        MixedLMRegressor
            ``self``, fitted.

        Raises
        ------
        ValueError
            For bad parameters, a response column already in ``X``, or data
            that cannot be fitted (:class:`mixedfx.DataError`,
            :class:`mixedfx.FormulaError`).
        """
        self.model_: LinearMixedModel = self._fit(X, y, sample_weight)
        return self

    def predict(
        self,
        X: pd.DataFrame,
        re: str | None = "all",
        new_levels: str | None = None,
        given: pd.DataFrame | tuple[pd.DataFrame, Any] | None = None,
    ) -> np.ndarray:
        """Predict with the random effects.

        Parameters
        ----------
        X : DataFrame, shape (n, k)
            Rows to predict, with the columns used in ``fit``.
        re : str, default "all"
            ``"all"``, ``"none"`` (population level), or lme4 ``re.form``
            terms such as ``"(1 | g)"``.
        new_levels : {"population", "nan", "error"}, optional
            Groups not seen in training; defaults to the constructor's.
        given : DataFrame or (DataFrame, array-like), optional
            Observed rows whose responses update the random effects of their
            groups before predicting (no refit): a DataFrame holding the
            response in the column ``response_`` (the formula's response, or
            the ``response`` parameter with ``groups=``; ``"y"`` by default),
            or a pair ``(X_given, y_given)`` like the arguments of ``fit``.

        Returns
        -------
        ndarray, shape (n,)
        """
        return np.asarray(self._predict(X, re, new_levels, given), dtype=float)

    def predict_interval(
        self,
        X: pd.DataFrame,
        interval: str = "prediction",
        level: float = 0.95,
        re: str | None = "all",
        new_levels: str | None = None,
        given: pd.DataFrame | tuple[pd.DataFrame, Any] | None = None,
    ) -> pd.DataFrame:
        """Predictions with intervals.

        Parameters
        ----------
        X : DataFrame, shape (n, k)
        interval : {"prediction", "confidence"}, default "prediction"
            For a new observation (includes the residual variance) or for the
            conditional mean.
        level : float, default 0.95
        re, new_levels, given
            As in :meth:`predict`.

        Returns
        -------
        DataFrame, shape (n, 4)
            Columns ``fit, se, lower, upper``, indexed like ``X``.
        """
        if interval not in ("prediction", "confidence"):
            raise ValueError(f"interval must be 'prediction' or 'confidence', got {interval!r}")
        out = self._predict(X, re, new_levels, given, interval=interval, level=level)
        assert isinstance(out, pd.DataFrame)
        return out


_NAMED_COLUMNS = (
    "X must be a pandas DataFrame with named columns (a formula names them); the check "
    "passes a NumPy array"
)
_ARRAY_CHECKS = (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_complex_data",
    "check_dtype_object",
    "check_estimators_empty_data_messages",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_regressors_train",
    "check_regressor_data_not_an_array",
    "check_regressors_no_decision_function",
    "check_supervised_y_2d",
    "check_supervised_y_no_nan",
    "check_regressors_int",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit1d",
    "check_fit2d_predict1d",
    "check_requires_y_none",
    "check_sample_weights_pandas_series",
    "check_sample_weights_not_an_array",
    "check_sample_weights_list",
    "check_all_zero_sample_weights_error",
    "check_sample_weights_shape",
    "check_sample_weights_not_overwritten",
    "check_sample_weight_equivalence_on_dense_data",
)


def expected_failed_checks(estimator: MixedLMRegressor | None = None) -> dict[str, str]:
    """scikit-learn's common checks that fail because X must be a DataFrame, with that reason.

    For ``check_estimator(est, expected_failed_checks=expected_failed_checks())``
    or ``parametrize_with_checks([est], expected_failed_checks=expected_failed_checks)``
    (scikit-learn >= 1.6). Every other check passes. The test suite runs the
    same properties (fit returns self, pickling, idempotent fits, order and
    subset invariance, NaN and empty-data errors, ...) on DataFrames.

    Returns
    -------
    dict
        Check name -> reason.
    """
    checks = (
        _ARRAY_CHECKS
        if estimator is None or estimator.missing != "drop"
        else [c for c in _ARRAY_CHECKS if c != "check_estimators_nan_inf"]
    )
    return {name: _NAMED_COLUMNS for name in checks}
