"""Penalized IRLS against a dense trust-region Newton minimisation of the penalized deviance."""

from __future__ import annotations

import numpy as np
import pytest

from glmm_oracle import dense, mode, synthetic
from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine.family import make
from mixedfx.engine.pirls import GlmRows, pirls, prior_ss

FAMILIES = [make("binomial"), make("poisson")]


@pytest.mark.parametrize("fam", FAMILIES, ids=str)
@pytest.mark.parametrize(("slope", "crossed"), [(False, False), (True, False), (True, True)])
def test_mode_with_beta_fixed_matches_dense_newton(fam, slope: bool, crossed: bool) -> None:
    rows, Ts = synthetic(fam, slope=slope, crossed=crossed, seed=3)
    beta = np.array([0.1, 0.4])
    m = pirls(rows, Ts, beta=beta)
    assert m.converged
    want = mode(rows, Ts, beta)
    got = np.concatenate([u.ravel() for u in m.u])
    np.testing.assert_allclose(got, want, atol=1e-9 * max(1.0, np.abs(want).max()))
    Z, L = dense(rows, Ts)
    np.testing.assert_allclose(m.eta, rows.offset + rows.X @ beta + Z @ L @ got, atol=1e-9)


@pytest.mark.parametrize("fam", FAMILIES, ids=str)
def test_joint_mode_minimises_over_beta_too(fam) -> None:
    rows, Ts = synthetic(fam, seed=5)
    m = pirls(rows, Ts)
    assert m.converged
    # at the joint optimum, beta is where the u-only mode's pdev is least
    u_only = pirls(rows, Ts, beta=m.beta)
    assert u_only.pdev == pytest.approx(m.pdev, rel=1e-12)
    for step in (1e-3, -1e-3):
        other = pirls(rows, Ts, beta=m.beta + step)
        assert other.pdev > m.pdev


def test_step_halving_recovers_from_a_wild_start() -> None:
    rows, Ts = synthetic(make("poisson"), seed=7)
    beta = np.array([0.1, 0.4])
    start = [np.full_like(u, 8.0) for u in pirls(rows, Ts, beta=beta).u]
    m = pirls(rows, Ts, beta=beta, u0=start)
    assert m.converged
    ref = pirls(rows, Ts, beta=beta)
    np.testing.assert_allclose(m.eta, ref.eta, atol=1e-9)


def test_prior_blocks_add_the_training_rows_quadratic() -> None:
    """With prior blocks of [Z, r], the mode minimises drsum + ||u||^2 + ||r - Z b||^2."""
    fam = make("binomial")
    rows, Ts = synthetic(fam, slope=False, crossed=True, seed=11)
    rng = np.random.default_rng(0)
    beta = np.array([0.0, 0.3])
    # a Gaussian pseudo-response on other rows of the same layout
    n2 = 60
    codes = (rng.integers(0, 8, size=n2), rng.integers(0, 5, size=n2))
    Ms = (np.ones((n2, 1)) * rng.uniform(0.5, 2, size=(n2, 1)), np.ones((n2, 1)))
    r = rng.normal(size=n2)
    prior = blocks_mod.form(np.empty((n2, 0)), r, codes, Ms, [8, 5], first=rows.first)
    m = pirls(rows, Ts, beta=beta, prior=prior)
    assert m.converged
    # the same problem as one GLM part and one Gaussian part, densely: the gradient vanishes
    Z, L = dense(rows, Ts)
    pseudo = GlmRows(
        np.empty((n2, 0)),
        codes,
        Ms,
        (8, 5),
        r,
        np.ones(n2),
        np.ones(n2),
        np.zeros(n2),
        fam,
        rows.first,
    )
    Z2, _ = dense(pseudo, Ts)
    u = np.concatenate([v.ravel() for v in m.u])
    mu = fam.linkinv(m.eta)
    grad = -2 * (Z @ L).T @ (rows.weights * (rows.y - mu)) + 2 * u
    grad += -2 * (Z2 @ L).T @ (r - Z2 @ L @ u)
    assert np.abs(grad).max() < 1e-8
    assert m.prior_ss == pytest.approx(float(np.sum((r - Z2 @ L @ u) ** 2)), rel=1e-12)
    assert prior_ss(prior, m.b) == m.prior_ss
