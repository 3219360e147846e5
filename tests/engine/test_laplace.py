"""The Laplace and adaptive Gauss-Hermite deviances against dense and quadrature computations."""

from __future__ import annotations

import numpy as np
import pytest

from glmm_oracle import laplace, marginal, synthetic
from mixedfx.engine.family import make
from mixedfx.engine.laplace import Deviance, agq, quadrature
from mixedfx.engine.layout import ThetaLayout

FAMILIES = [make("binomial"), make("poisson"), make("binomial", "probit")]


def layout_of(Ts: list[np.ndarray]) -> ThetaLayout:
    return ThetaLayout(tuple(len(T) for T in Ts), tuple((len(T),) for T in Ts))


@pytest.mark.parametrize("fam", [FAMILIES[0], FAMILIES[1]], ids=str)
@pytest.mark.parametrize(("slope", "crossed"), [(False, False), (True, True)])
def test_laplace_matches_the_dense_formula(fam, slope: bool, crossed: bool) -> None:
    rows, Ts = synthetic(fam, slope=slope, crossed=crossed, seed=2)
    lay = layout_of(Ts)
    beta = np.array([0.15, 0.45])
    dev = Deviance(rows, lay, 1)
    got = dev(lay.theta(Ts), beta)
    assert got == pytest.approx(laplace(rows, Ts, beta), rel=1e-11)


@pytest.mark.parametrize("fam", FAMILIES, ids=str)
def test_gauss_hermite_converges_to_the_integrated_likelihood(fam) -> None:
    rows, Ts = synthetic(fam, slope=False, crossed=False, seed=4, n=60)
    lay = layout_of(Ts)
    beta = np.array([0.1, 0.5])
    exact = marginal(rows, float(Ts[0][0, 0]), beta)
    errors = [abs(Deviance(rows, lay, k)(lay.theta(Ts), beta) - exact) for k in (1, 9, 25)]
    assert errors[2] < 1e-8 * abs(exact)
    assert errors[1] < 1e-2 * errors[0]  # nine nodes far better than Laplace (one node)


def test_one_node_rule_is_the_laplace_approximation() -> None:
    rows, Ts = synthetic(make("poisson"), slope=False, crossed=False, seed=6)
    dev = Deviance(rows, layout_of(Ts), 1)
    m = dev.mode(np.array([Ts[0][0, 0]]), np.array([0.0, 0.3]))
    assert agq(rows, m, float(Ts[0][0, 0]), *quadrature(1)) == pytest.approx(m.laplace(), rel=1e-13)


def test_quadrature_rule_integrates_normal_moments() -> None:
    z, w = quadrature(9)
    assert w.sum() == pytest.approx(1.0, rel=1e-14)
    assert (w * z**2).sum() == pytest.approx(1.0, rel=1e-13)
    assert (w * z**8).sum() == pytest.approx(105.0, rel=1e-12)


@pytest.mark.parametrize("fam", [FAMILIES[0], FAMILIES[1]], ids=str)
def test_deviance_is_smooth_in_the_parameters(fam) -> None:
    """PIRLS is converged tightly enough for finite differences: second differences at
    step 1e-4 follow the curvature, not rounding (lme4's tolPwrss = 1e-7 would not)."""
    rows, Ts = synthetic(fam, seed=8)
    lay = layout_of(Ts)
    dev = Deviance(rows, lay, 1)
    theta, beta = lay.theta(Ts), np.array([0.1, 0.4])
    h = np.array([-2, -1, 0, 1, 2]) * 1e-4
    values = np.array([dev(theta, beta + np.array([0.0, s])) for s in h])
    fit = np.polyval(np.polyfit(h, values, 2), h)
    assert np.abs(values - fit).max() < 1e-9


def test_agq_needs_one_scalar_term() -> None:
    rows, Ts = synthetic(make("binomial"), slope=True, crossed=False)
    with pytest.raises(ValueError, match="single scalar"):
        Deviance(rows, layout_of(Ts), 9)
