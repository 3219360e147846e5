"""The deviance over (theta, sigma): value, analytic gradient, Hessian, sd/cor scale."""

from __future__ import annotations

import numpy as np
import pytest

import mixedfx as mfx
from conftest import fit_case, quiet_fit
from mixedfx.engine import sdcor, varpar
from mixedfx.engine.objective import Objective


def objective(m: mfx.LinearMixedModel) -> Objective:
    return Objective(m.user_blocks, m.spec.layout, m.reml)  # the coordinates of m.theta


@pytest.fixture(scope="module", params=["sleepstudy_reml", "sleepstudy_ml"])
def model(request: pytest.FixtureRequest) -> mfx.LinearMixedModel:
    return fit_case(request.param)


def test_deviance_is_the_objective_at_the_estimates(model: mfx.LinearMixedModel) -> None:
    dev = varpar.deviance(objective(model), model.theta, model.sigma)
    np.testing.assert_allclose(dev, model.objective, rtol=1e-12)


def test_gradient_against_differences(model: mfx.LinearMixedModel) -> None:
    obj = objective(model)
    x = np.append(model.theta * 1.3 + 0.05, model.sigma * 0.8)
    g = varpar.gradient(obj, x)
    numeric = varpar.jacobian(lambda v: np.array([varpar.deviance(obj, v[:-1], v[-1])]), x)[:, 0]
    np.testing.assert_allclose(g, numeric, rtol=1e-7, atol=1e-7 * np.abs(numeric).max())


def test_gradient_vanishes_at_the_optimum(model: mfx.LinearMixedModel) -> None:
    g = varpar.gradient(objective(model), np.append(model.theta, model.sigma))
    assert np.abs(g).max() < 1e-6


def test_blocked_and_dense_paths_agree(model: mfx.LinearMixedModel) -> None:
    obj = objective(model)
    blocked = Objective(model.user_blocks, model.spec.layout, model.reml)
    blocked.__dict__["dense"] = None  # force the blocked factor
    x = np.append(model.theta * 0.7, model.sigma * 1.1)
    np.testing.assert_allclose(varpar.gradient(blocked, x), varpar.gradient(obj, x), rtol=1e-9)
    H = varpar.hessian(obj, model.theta, model.sigma)
    np.testing.assert_allclose(
        varpar.hessian(blocked, model.theta, model.sigma), H, atol=1e-8 * np.abs(H).max()
    )


def test_hessian_of_theta_block_matches_closed_form(model: mfx.LinearMixedModel) -> None:
    # Along theta with sigma at its profiled value the deviance's gradient is the
    # profiled objective's; their Hessians differ by the sigma coupling:
    # H_prof = H_tt - H_ts H_ss^-1 H_st (the Schur complement).
    obj = objective(model)
    H = varpar.hessian(obj, model.theta, model.sigma)
    schur = H[:-1, :-1] - np.outer(H[:-1, -1], H[-1, :-1]) / H[-1, -1]
    closed = obj.hessian(model.theta)
    np.testing.assert_allclose(schur, closed, rtol=1e-6, atol=1e-6 * np.abs(closed).max())


def test_sdcor_round_trip() -> None:
    m = quiet_fit("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    layout = m.spec.layout
    psi = sdcor.to_sdcor(layout, m.theta, m.sigma)
    np.testing.assert_allclose(psi[-1], m.sigma)
    vc = m.varcorr
    np.testing.assert_allclose(psi[[0, 2]], vc["sd"].to_numpy()[:2], rtol=1e-12)
    np.testing.assert_allclose(psi[1], vc["correlation"].to_numpy()[2], rtol=1e-12)
    back = sdcor.from_sdcor(layout, psi)
    assert back is not None
    np.testing.assert_allclose(back[0], m.theta, rtol=1e-12)


def test_psd_cholesky_zero_variance_and_invalid() -> None:
    S = np.array([[4.0, 0.0], [0.0, 0.0]])
    L = sdcor.psd_cholesky(S)
    assert L is not None
    np.testing.assert_allclose(L @ L.T, S)
    assert sdcor.psd_cholesky(np.array([[1.0, 2.0], [2.0, 1.0]])) is None
