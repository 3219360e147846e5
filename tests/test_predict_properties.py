"""Invariants of prediction on random small designs (hypothesis)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.engine.bobyqa import OptSummary
from mixedfx.engine.objective import Objective
from mixedfx.fit import form_blocks, learn_design, make_model
from oracle import henderson_se, mme_modes
from strategies import datasets, given_rows
from tolerance import REORDERED, assert_close

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fit(case: dict) -> mfx.LinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmm(case["formula"], case["data"], reml=case["reml"])


def fit_at(case: dict, theta: np.ndarray) -> mfx.LinearMixedModel:
    """The model fitted to ``case`` with theta held at ``theta`` (no optimizer)."""
    design, arrays = learn_design(case["formula"], case["data"])
    coords, blocks = form_blocks(design, arrays)
    objective = Objective(blocks, design.layout, case["reml"])
    layout = design.layout
    theta_s = layout.theta(coords.fit_Ts(layout.Ts(theta)))  # the blocks' coordinates
    value = objective(theta_s)
    opt = OptSummary("fixed", theta_s, theta_s, objective.lower(), value, 1, "fixed", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_model(design, arrays, coords, blocks, objective, opt, case["data"])


def stacked_b(m: mfx.LinearMixedModel) -> np.ndarray:
    return np.concatenate([b.ravel() for b in m.b])


@SETTINGS
@given(datasets())
def test_training_predictions_equal_fitted(case: dict) -> None:
    m = fit(case)
    np.testing.assert_allclose(m.predict(), m.fitted(), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(m.predict(case["data"]), m.fitted(), rtol=1e-12, atol=1e-10)


@SETTINGS
@given(datasets())
def test_fixed_plus_random_equals_all(case: dict) -> None:
    m = fit(case)
    d = m.design(case["data"])
    random_part = d.Z @ stacked_b(m)
    fixed = m.predict(case["data"], re="none")
    np.testing.assert_allclose(fixed, d.X.to_numpy() @ m.beta, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(fixed + random_part, m.predict(case["data"]), atol=1e-9)


@SETTINGS
@given(datasets(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(case: dict, rnd) -> None:  # type: ignore[no-untyped-def]
    m = fit(case)
    data = case["data"]
    perm = np.array(rnd.sample(range(len(data)), len(data)))
    shuffled = data.iloc[perm]
    # rows in another order meet BLAS in other blocks; predictions near 0 are held to the scale
    assert_close(m.predict(shuffled), m.predict(data)[perm], REORDERED)
    m2 = fit({**case, "data": shuffled.reset_index(drop=True)})
    # BOBYQA alone stops within its tolerance (1e-8 on the objective, as lme4's), which on a
    # flat optimum leaves theta's fourth digit to the order of the sums; the Newton polish on
    # the analytic gradient then finds the same optimum to the sums' precision.
    assert abs(m2.objective - m.objective) <= 1e-11 * abs(m.objective)
    scale = max(1.0, float(np.abs(m.theta).max()))
    np.testing.assert_allclose(m2.theta, m.theta, rtol=1e-8, atol=1e-8 * scale)
    m_at = fit_at(case, m2.theta)
    assert abs(m_at.objective - m2.objective) <= 1e-12 * abs(m2.objective)
    assert_close(m_at.predict(data), m2.predict(data), 1e-9)
    assert_close(m_at.beta, m2.beta, 1e-9)


@SETTINGS
@given(datasets())
def test_empty_given_changes_nothing(case: dict) -> None:
    m = fit(case)
    data = case["data"]
    np.testing.assert_array_equal(m.predict(data, given=data.iloc[:0]), m.predict(data))


@SETTINGS
@given(datasets(), st.integers(1, 4))
def test_given_equals_dense_mme_solve(case: dict, extra: int) -> None:
    """Conditioning on new rows (known and new groups) = dense solve at fixed parameters."""
    m = fit(case)
    data = case["data"]
    new = given_rows(case, extra)
    c = m.condition(new)
    combined = pd.concat([data, new], ignore_index=True)
    np.testing.assert_allclose(stacked_b(c), mme_modes(c, combined), rtol=1e-7, atol=1e-8)
    assert_close(c.predict(new), m.predict(new, given=new), REORDERED)


@SETTINGS
@given(datasets())
def test_confidence_se_equals_dense_henderson(case: dict) -> None:
    m = fit(case)
    data = case["data"]
    out = m.predict(data, interval="confidence")
    np.testing.assert_allclose(
        out["se"].to_numpy(), henderson_se(m, data, data), rtol=1e-6, atol=1e-9
    )
    pred = m.predict(data, interval="prediction")
    np.testing.assert_allclose(pred["se"] ** 2, out["se"] ** 2 + m.sigma**2, rtol=1e-10)
