"""scikit-learn's common checks: all pass, except those that feed NumPy arrays to a formula.

Those are declared (:func:`mixedfx.estimator.expected_failed_checks`), fail for
that reason only, and the properties they check are tested here on DataFrames.
"""

from __future__ import annotations

import pickle
from unittest import SkipTest

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import (  # noqa: E402
    check_estimator,
    parametrize_with_checks,
)

from mixedfx.estimator import MixedLMRegressor, expected_failed_checks  # noqa: E402

ESTIMATORS = [MixedLMRegressor(groups="g"), MixedLMRegressor(groups="g", missing="drop")]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    try:
        check(estimator)
    except SkipTest as exc:  # the array-API check needs SCIPY_ARRAY_API=1 before scipy loads
        assert "SCIPY_ARRAY_API" in str(exc)


def causes(exc: BaseException | None) -> str:
    """The messages of an exception and of the exceptions it was raised from."""
    out = []
    while exc is not None:
        out.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=["error", "drop"])
def test_expected_failures_are_the_dataframe_requirement_only(estimator):
    expected = expected_failed_checks(estimator)
    results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected)
    by_status: dict[str, set[str]] = {}
    for r in results:
        by_status.setdefault(r["status"], set()).add(r["check_name"])
        if r["status"] == "xfail":
            assert "must be a pandas DataFrame" in causes(r["exception"]), r
    assert by_status["xfail"] == set(expected)  # each declared failure does fail, as declared
    assert set(by_status) <= {"passed", "xfail", "skipped"}, by_status
    assert by_status.get("skipped", set()) <= {"check_array_api_input"}
    assert {"check_estimator_sparse_array", "check_estimator_sparse_tag"} <= by_status["passed"]


def test_tags():
    tags = MixedLMRegressor(groups="g").__sklearn_tags__()
    assert tags.input_tags.string and tags.input_tags.categorical
    assert not tags.input_tags.sparse and not tags.input_tags.allow_nan
    assert MixedLMRegressor(groups="g", missing="drop").__sklearn_tags__().input_tags.allow_nan
    assert tags.target_tags.required and tags.estimator_type == "regressor"


# -- the array checks' properties, on DataFrames ------------------------------------------------
@pytest.fixture(scope="module")
def Xy() -> tuple[pd.DataFrame, pd.Series]:
    sleep = mfx.datasets.load("sleepstudy")
    return sleep[["Days", "Subject"]], sleep["Reaction"]


def fitted(Xy: tuple[pd.DataFrame, pd.Series], **kw: object) -> MixedLMRegressor:
    return MixedLMRegressor(groups="Subject", random="1 + Days", **kw).fit(*Xy)  # type: ignore[arg-type]


def test_fit_returns_self_and_is_idempotent(Xy):
    est = MixedLMRegressor(groups="Subject", random="1 + Days")
    assert est.fit(*Xy) is est
    first = est.predict(Xy[0])
    np.testing.assert_array_equal(est.fit(*Xy).predict(Xy[0]), first)
    assert est.n_features_in_ == 2


def test_predict_is_row_order_and_subset_invariant(Xy):
    est = fitted(Xy)
    X = Xy[0]
    full = est.predict(X)
    order = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(est.predict(X.iloc[order]), full[order], rtol=1e-12)
    np.testing.assert_allclose(est.predict(X.iloc[10:20]), full[10:20], rtol=1e-12)


def test_predict_changes_no_attribute_and_pickles(Xy):
    est = fitted(Xy)
    before = dict(vars(est))
    pickled = pickle.dumps(est)
    est.predict(Xy[0])
    assert vars(est).keys() == before.keys()  # check_dict_unchanged
    assert all(vars(est)[k] is v for k, v in before.items())
    np.testing.assert_array_equal(pickle.loads(pickled).predict(Xy[0]), est.predict(Xy[0]))


def test_integer_response(Xy):
    X, y = Xy
    as_int = MixedLMRegressor(groups="Subject").fit(X, y.round().astype(int))
    as_float = MixedLMRegressor(groups="Subject").fit(X, y.round())
    # exact: the estimator converts y to float64 first, and these integers convert exactly,
    # so both fits run the same function on the same floats
    np.testing.assert_array_equal(as_int.predict(X), as_float.predict(X))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_is_an_error_naming_the_column(Xy, bad):
    X, y = Xy
    with pytest.raises(ValueError, match="'Days'"):
        MixedLMRegressor(groups="Subject").fit(X.assign(Days=X["Days"].where(X.index != 3, bad)), y)
    with pytest.raises(ValueError, match="'y'"):
        MixedLMRegressor(groups="Subject").fit(X, y.where(y.index != 3, bad))


def test_empty_data_is_an_error(Xy):
    X, y = Xy
    with pytest.raises(ValueError, match="no rows"):
        MixedLMRegressor(groups="Subject").fit(X.iloc[:0], y.iloc[:0])


# -- the sample-weight checks' properties, on DataFrames ---------------------------------------
def test_sample_weight_as_series_list_or_array_is_one_fit(Xy):
    X, y = Xy
    w = 1.0 + X["Days"].to_numpy() % 3
    fits = [fitted(Xy).fit(X, y, sample_weight=v) for v in (w, list(w), pd.Series(w))]
    for est in fits[1:]:
        np.testing.assert_array_equal(est.predict(X), fits[0].predict(X))


def test_sample_weight_is_not_overwritten_and_its_shape_is_checked(Xy):
    X, y = Xy
    w = 1.0 + X["Days"].to_numpy() % 3
    kept = w.copy()
    fitted(Xy).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(w, kept)
    with pytest.raises(ValueError, match="sample_weight has shape"):
        fitted(Xy).fit(X, y, sample_weight=w[:-1])
    with pytest.raises(ValueError, match="must be positive"):
        fitted(Xy).fit(X, y, sample_weight=np.zeros(len(X)))  # all zero: an error


def test_sample_weights_are_precisions_not_repetitions(Xy):
    """check_sample_weight_equivalence: lmer's weights scale a row's residual precision.

    Weight 2 is not the row twice for an LMM (the rows counted in the REML
    criterion differ); weights 1 are no weights.
    """
    X, y = Xy
    plain = fitted(Xy)
    ones = fitted(Xy).fit(X, y, sample_weight=np.ones(len(X)))
    np.testing.assert_allclose(ones.predict(X), plain.predict(X), rtol=1e-9)
    twice = fitted(Xy).fit(pd.concat([X, X.iloc[:1]]), pd.concat([y, y.iloc[:1]]))
    w = np.ones(len(X))
    w[0] = 2.0
    weighted = fitted(Xy).fit(X, y, sample_weight=w)
    assert not np.allclose(weighted.model_.theta, twice.model_.theta, rtol=1e-6)
