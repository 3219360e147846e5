"""Families and links: derivatives, inverses, deviance residuals and log-likelihoods."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mixedfx.engine.family import EPS, FAMILIES, make

LINKS = [(f, link) for f, links in FAMILIES.items() for link in links]


@pytest.mark.parametrize(("name", "link"), LINKS)
def test_mu_eta_is_the_derivative_of_the_inverse_link(name: str, link: str) -> None:
    fam = make(name, link)
    eta = np.linspace(-3.0, 3.0, 13)
    h = 1e-6
    numeric = (fam.link.linkinv(eta + h) - fam.link.linkinv(eta - h)) / (2 * h)
    # central differences: O(h^2) plus rounding of mu (<= 1e-16 * max mu) over h
    atol = 1e-16 * float(fam.link.linkinv(eta).max()) / h
    np.testing.assert_allclose(fam.link.mu_eta(eta), numeric, rtol=1e-7, atol=atol)


@pytest.mark.parametrize(("name", "link"), LINKS)
def test_link_inverts_the_inverse_link(name: str, link: str) -> None:
    fam = make(name, link)
    eta = np.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose(fam.link.linkfun(fam.link.linkinv(eta)), eta, atol=1e-12)


@pytest.mark.parametrize(("name", "link"), LINKS)
def test_means_stay_inside_the_support_at_extreme_eta(name: str, link: str) -> None:
    mu = make(name, link).link.linkinv(np.array([-800.0, -40.0, 40.0, 800.0]))
    assert np.all(np.isfinite(mu)) and np.all(mu >= 0)
    if name == "binomial":
        assert np.all(mu <= 1.0 - EPS)


def test_deviance_residuals_are_twice_the_log_likelihood_ratio_to_the_saturated_model() -> None:
    rng = np.random.default_rng(1)
    m = rng.integers(1, 9, size=40).astype(float)
    y = rng.binomial(m.astype(int), 0.3) / m
    mu = rng.uniform(0.05, 0.95, size=40)
    fam = make("binomial")
    d = fam.dev_resid(y, mu, m)
    for i in range(40):
        ratio = fam.loglik(y[i : i + 1], y[i : i + 1], m[i : i + 1], m[i : i + 1]) - fam.loglik(
            y[i : i + 1], mu[i : i + 1], m[i : i + 1], m[i : i + 1]
        )
        assert d[i] == pytest.approx(2 * ratio, rel=1e-10, abs=1e-12)
    counts = rng.poisson(3.0, size=40).astype(float)
    pois = make("poisson")
    w = np.ones(40)
    assert pois.dev_resid(counts, mu * 5, w).sum() == pytest.approx(
        2 * (pois.loglik(counts, counts, w, w) - pois.loglik(counts, mu * 5, w, w)), rel=1e-12
    )


def test_binomial_log_likelihood_is_dbinom_of_successes_in_trials() -> None:
    m = np.array([1.0, 4.0, 10.0])
    y = np.array([1.0, 0.25, 0.7])
    mu = np.array([0.4, 0.3, 0.6])
    want = stats.binom.logpmf([1, 1, 7], [1, 4, 10], mu).sum()
    assert make("binomial").loglik(y, mu, m, m) == pytest.approx(want, rel=1e-14)


def test_unknown_links_and_families_are_refused() -> None:
    with pytest.raises(ValueError, match="links"):
        make("poisson", "logit")
    with pytest.raises(ValueError, match="unknown family"):
        make("gamma")
