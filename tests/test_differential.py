"""The engine against a dense, obviously correct implementation (tests/oracle.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings

from oracle import dense_z, profiled, refit
from strategies import datasets
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
