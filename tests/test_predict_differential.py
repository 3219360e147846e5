"""The engine against a dense, obviously correct implementation (tests/oracle.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from oracle import dense_predict, dense_z, mme_modes, profiled, refit
from strategies import datasets, given_rows
from test_predict_properties import fit

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(datasets())
def test_objective_beta_sigma_at_theta(case: dict) -> None:
    m = fit(case)
    data = case["data"]
    X = m.design(data).X.to_numpy()
    obj, beta, sigma = profiled(
        m.theta, m, X, dense_z(m, data), m.spec.response_vector(data), m.reml
    )
    assert m.objective == np.float64(obj) or abs(m.objective - obj) <= 1e-9 * abs(obj)
    np.testing.assert_allclose(m.beta, beta, rtol=1e-8, atol=1e-10)
    assert abs(m.sigma - sigma) <= 1e-8 * sigma


@SETTINGS
@given(datasets())
def test_no_better_optimum(case: dict) -> None:
    """A generic optimizer on the dense objective finds nothing lower than the engine."""
    m = fit(case)
    best, _ = refit(m, case["data"])
    assert m.objective <= best + 1e-6 * max(1.0, abs(best))


def stacked_b(m) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([b.ravel() for b in m.b])


@SETTINGS
@given(datasets())
def test_blups_equal_dense_mme_solve(case: dict) -> None:
    m = fit(case)
    np.testing.assert_allclose(stacked_b(m), mme_modes(m, case["data"]), rtol=1e-7, atol=1e-8)


def _modes(m, data: pd.DataFrame) -> list[tuple[str, set[tuple[str, str]]]]:  # type: ignore[no-untyped-def]
    every = {(t.group, c) for t in m.spec.terms for c in t.columns}
    intercept_g = {("g", "(Intercept)")}
    return [("all", every), ("none", set()), ("(1 | g)", intercept_g)]


def _new_rows(data: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Known rows, rows of a new g, a new h where there is one, and shuffled x."""
    rng = np.random.default_rng(seed)
    new = data.sample(min(len(data), 12), random_state=seed % 1000).copy()
    new["x"] = rng.normal(size=len(new))
    new.loc[new.index[::3], "g"] = "brand-new"
    if "h" in new:
        new.loc[new.index[1::4], "h"] = 99.0
    return new.reset_index(drop=True)


@SETTINGS
@given(
    datasets(),
    st.sampled_from(["population", "nan"]),
    st.sampled_from([None, "confidence", "prediction"]),
)
def test_every_predict_mode_equals_dense(case: dict, new_levels: str, interval) -> None:  # type: ignore[no-untyped-def]
    m = fit(case)
    data = case["data"]
    new = _new_rows(data, case["seed"])
    for re, included in _modes(m, data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.MixedFXWarning)
            got = m.predict(new, re=re, new_levels=new_levels, interval=interval)
        want_fit, want_se = dense_predict(m, data, new, included, new_levels, interval)
        got_fit = got["fit"].to_numpy() if interval else np.asarray(got)
        np.testing.assert_allclose(got_fit, want_fit, rtol=1e-7, atol=1e-8, err_msg=re)
        if interval:
            se = got["se"].to_numpy()
            np.testing.assert_allclose(se, want_se, rtol=1e-6, atol=1e-9, err_msg=re)


@SETTINGS
@given(datasets(), st.sampled_from([None, "confidence", "prediction"]), st.integers(1, 4))
def test_given_predictions_equal_dense(case: dict, interval, extra: int) -> None:  # type: ignore[no-untyped-def]
    """Predictions after conditioning on given rows (known and new groups) from dense matrices."""
    m = fit(case)
    data = case["data"]
    observed = given_rows(case, extra)
    new = _new_rows(data, case["seed"] + 1)
    new.loc[0, "g"] = "brand-new"  # a group known only from given
    combined = pd.concat([data, observed], ignore_index=True)
    c = m.condition(observed)
    for re, included in _modes(m, data):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.MixedFXWarning)
            got = m.predict(new, re=re, given=observed, interval=interval)
        want_fit, want_se = dense_predict(c, combined, new, included, "population", interval)
        got_fit = got["fit"].to_numpy() if interval else np.asarray(got)
        np.testing.assert_allclose(got_fit, want_fit, rtol=1e-7, atol=1e-8, err_msg=re)
        if interval:
            se = got["se"].to_numpy()
            np.testing.assert_allclose(se, want_se, rtol=1e-6, atol=1e-9, err_msg=re)
