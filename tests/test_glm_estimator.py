"""MixedGLMClassifier and MixedPoissonRegressor against the direct API; sample_weight everywhere."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import GroupKFold, cross_val_score  # noqa: E402

from binary_data import grouped_binary  # noqa: E402
from glmm_reference import fit, training  # noqa: E402


def churn(seed: int = 0, groups: int = 15, size: int = 16) -> tuple[pd.DataFrame, np.ndarray]:
    df = grouped_binary(groups, size, seed, beta=(-0.3, 0.9), label="c{}")
    return df[["x", "g"]].rename(columns={"g": "customer"}), np.where(df.y, "left", "stayed")


def test_classifier_matches_glmm_and_knows_its_classes() -> None:
    X, y = churn()
    est = mfx.MixedGLMClassifier(groups="customer").fit(X, y)
    assert list(est.classes_) == ["left", "stayed"]
    direct = mfx.glmm("y ~ x + (1 | customer)", X.assign(y=(y == "stayed").astype(float)))
    np.testing.assert_array_equal(est.model_.beta, direct.beta)
    proba = est.predict_proba(X)
    np.testing.assert_array_equal(proba[:, 1], direct.predict(X))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(est.predict(X), est.classes_[(proba[:, 1] > 0.5).astype(int)])
    np.testing.assert_array_equal(est.decision_function(X), direct.predict(X, type="link"))
    assert est.score(X, y) == pytest.approx(np.mean(est.predict(X) == y))
    assert est.model_.data is None
    assert pickle.loads(pickle.dumps(est)).predict_proba(X)[3, 1] == proba[3, 1]


@pytest.mark.filterwarnings("ignore::mixedfx.NewLevelWarning")
def test_classifier_given_rows_take_labels() -> None:
    X, y = churn()
    est = mfx.MixedGLMClassifier(formula="left ~ x + (1 | customer)").fit(X, y)
    new = pd.DataFrame({"x": [0.0, 0.5, -0.2], "customer": ["zz"] * 3})
    labels = np.array(["stayed", "stayed", "stayed"])
    by_pair = est.predict_proba(new.head(1), given=(new, labels))
    by_frame = est.predict_proba(new.head(1), given=new.assign(left=labels))
    direct = est.model_.predict(new.head(1), given=new.assign(left=1.0))
    np.testing.assert_array_equal(by_pair[:, 1], direct)
    np.testing.assert_array_equal(by_frame, by_pair)
    assert by_pair[0, 1] > est.predict_proba(new.head(1))[0, 1]
    with pytest.raises(ValueError, match="not among classes_"):
        est.predict_proba(new.head(1), given=(new, ["gone", "stayed", "left"]))


def test_classifier_sample_weight_is_a_case_weight() -> None:
    """Integer sample weights equal repeating rows (the likelihood counts each row w times)."""
    X, y = churn(seed=3, groups=10, size=12)
    w = np.random.default_rng(0).integers(1, 4, size=len(y))
    weighted = mfx.MixedGLMClassifier(groups="customer").fit(X, y, sample_weight=w)
    rep = np.repeat(np.arange(len(y)), w)
    repeated = mfx.MixedGLMClassifier(groups="customer").fit(X.iloc[rep], y[rep])
    np.testing.assert_allclose(weighted.model_.theta, repeated.model_.theta, rtol=1e-6)
    np.testing.assert_allclose(weighted.model_.beta, repeated.model_.beta, rtol=1e-6)
    frac = mfx.MixedGLMClassifier(groups="customer").fit(X, y, sample_weight=w * 0.37)
    assert np.isfinite(frac.model_.objective)


def test_classifier_refuses_other_than_two_classes_and_bad_links() -> None:
    X, y = churn()
    with pytest.raises(ValueError, match="exactly two classes"):
        mfx.MixedGLMClassifier(groups="customer").fit(X, np.where(X.x > 1, "a", y))
    with pytest.raises(ValueError, match="links"):
        mfx.MixedGLMClassifier(groups="customer", link="log").fit(X, y)


@pytest.mark.filterwarnings("ignore::mixedfx.NewLevelWarning")
def test_classifier_in_cross_validation() -> None:
    X, y = churn(seed=5)
    est = mfx.MixedGLMClassifier(groups="customer")
    scores = cross_val_score(est, X, y, groups=X.customer, cv=GroupKFold(3), scoring="neg_log_loss")
    assert np.all(np.isfinite(scores))
    assert clone(est).get_params() == est.get_params()
    est.fit(X, y)
    assert log_loss(y, est.predict_proba(X), labels=est.classes_) < log_loss(
        y, np.full((len(y), 2), 0.5)
    )


def test_poisson_regressor_matches_glmm_with_an_offset() -> None:
    name = "poisson_crossed_offset"
    df = training(name)
    X = df[["z", "site", "month", "logexp"]]
    est = mfx.MixedPoissonRegressor(
        formula="count ~ z + (1 | site) + (1 | month)", offset="logexp"
    ).fit(X, df["count"])
    direct = fit(name)
    np.testing.assert_allclose(est.model_.beta, direct.beta, rtol=1e-6)
    np.testing.assert_allclose(est.predict(X), direct.fitted(), rtol=1e-6)
    pi = est.predict_interval(X.head(4), level=0.9)
    assert list(pi.columns) == ["fit", "se", "lower", "upper"]
    assert np.all(pi.lower <= pi.upper)
    by_groups = mfx.MixedPoissonRegressor(groups="site", offset="logexp").fit(
        X.drop(columns="month"), df["count"]
    )
    assert by_groups.formula_ == "y ~ z + (1 | site)"


def test_lm_regressor_sample_weight_is_lmm_weights() -> None:
    sleep = mfx.datasets.load("sleepstudy")
    w = 1.0 + sleep.Days % 3
    est = mfx.MixedLMRegressor(formula="Reaction ~ Days + (Days | Subject)")
    est.fit(sleep[["Days", "Subject"]], sleep.Reaction, sample_weight=w)
    direct = mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep.assign(w=w), weights="w")
    assert est.model_.objective == direct.objective
    given = sleep[sleep.Subject == "308"].head(3).assign(Subject="new")
    np.testing.assert_allclose(
        est.predict(given, given=given),
        direct.predict(given, given=given.assign(w=1.0)),
    )
    with pytest.raises(ValueError, match="sample_weight has shape"):
        est.fit(sleep[["Days", "Subject"]], sleep.Reaction, sample_weight=w[:5])
