"""GLMM intervals: the link-scale prediction-error variance against a dense computation,
and the response-scale and count intervals built from it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import mixedfx as mfx
from glmm_reference import fit, newdata, training
from oracle import dense_lambda

CASES = ["cbpp_prop_laplace", "bernoulli_slope", "poisson_crossed_offset"]


def dense_variance(m: mfx.GeneralizedLinearMixedModel, name: str) -> np.ndarray:
    """``v' C^-1 v`` with C the working-weighted mixed-model equations at the modes."""
    train, nd = training(name), newdata(name)
    d = m.design(train)
    X, Z = d.X.to_numpy(), d.Z.toarray()
    fam = m.family
    eta = m.fitted("link")
    me = fam.link.mu_eta(eta)
    W = m.weight_values * me * me / fam.variance(m.fitted())
    ZL = Z @ dense_lambda(m, m.theta)
    q = ZL.shape[1]
    A = np.hstack([ZL, X])
    C = (A.T * W) @ A
    C[:q, :q] += np.eye(q)
    dn = m.design(nd)
    V = np.hstack([dn.Z.toarray() @ dense_lambda(m, m.theta), dn.X.to_numpy()])
    return np.einsum("ni,ij,nj->n", V, np.linalg.inv(C), V)


@pytest.mark.parametrize("name", CASES)
def test_link_confidence_variance_matches_dense_mixed_model_equations(name: str) -> None:
    m, nd = fit(name), newdata(name)
    ci = m.predict(nd, interval="confidence", type="link")
    want = dense_variance(m, name)
    # new levels add their prior variance z' Sigma z
    for t, S in zip(m.spec.terms, m.covariances(), strict=True):
        codes, M = t.codes(nd), t.model_matrix(nd)
        want = want + np.where(codes < 0, np.einsum("nq,qr,nr->n", M, S, M), 0.0)
    np.testing.assert_allclose(ci["se"].to_numpy() ** 2, want, rtol=1e-9)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(ci["upper"] - ci["fit"], z * ci["se"], rtol=1e-12)
    np.testing.assert_allclose(ci["fit"], m.predict(nd, type="link"), rtol=1e-14)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("interval", ["confidence", "prediction"])
def test_response_intervals_map_the_link_interval_and_stay_in_the_support(
    name: str, interval: str
) -> None:
    m, nd = fit(name), newdata(name)
    link = m.predict(nd, interval=interval, type="link", level=0.9)
    resp = m.predict(nd, interval=interval, level=0.9)
    inv = m.family.link.linkinv
    np.testing.assert_allclose(resp["fit"], inv(link["fit"].to_numpy()), rtol=1e-14)
    assert (resp["lower"] <= resp["fit"]).all() and (resp["fit"] <= resp["upper"]).all()
    assert (resp["lower"] >= 0).all()
    if m.family.binomial:
        assert (resp["upper"] <= 1).all()
    if interval == "confidence":
        np.testing.assert_allclose(resp["lower"], inv(link["lower"].to_numpy()), rtol=1e-14)
        np.testing.assert_allclose(resp["upper"], inv(link["upper"].to_numpy()), rtol=1e-14)
        me = m.family.link.mu_eta(link["fit"].to_numpy())
        np.testing.assert_allclose(resp["se"], me * link["se"], rtol=1e-14)


def test_count_prediction_interval_is_poisson_quantiles_around_the_mean_interval() -> None:
    name = "poisson_crossed_offset"
    m, nd = fit(name), newdata(name)
    link = m.predict(nd, interval="prediction", type="link", level=0.8)
    pi = m.predict(nd, interval="prediction", level=0.8)
    lo, hi = np.exp(link["lower"].to_numpy()), np.exp(link["upper"].to_numpy())
    np.testing.assert_array_equal(pi["lower"], stats.poisson.ppf(0.1, lo))
    np.testing.assert_array_equal(pi["upper"], stats.poisson.ppf(0.9, hi))
    assert np.all(pi["lower"] == np.floor(pi["lower"])) and np.all(pi["upper"] >= pi["fit"])
    # the link-scale prediction variance adds the omitted effects' variance (re="none")
    conf = m.predict(nd, interval="confidence", type="link", re="none")
    pred = m.predict(nd, interval="prediction", type="link", re="none")
    prior = sum(S[0, 0] for S in m.covariances())
    np.testing.assert_allclose(pred["se"] ** 2 - conf["se"] ** 2, prior, rtol=1e-10)


def test_binomial_prediction_interval_counts_the_trials_of_new_rows() -> None:
    name = "cbpp_prop_laplace"
    m, nd = fit(name), newdata(name)
    link = m.predict(nd, interval="prediction", type="link")
    pi = m.predict(nd, interval="prediction")
    size = nd["size"].to_numpy()
    lo = m.family.link.linkinv(link["lower"].to_numpy())
    np.testing.assert_array_equal(pi["lower"], stats.binom.ppf(0.025, size, lo) / size)
    one = m.predict(nd.drop(columns="size"), interval="prediction")  # no trials: one
    assert set(np.unique(one["lower"])) <= {0.0, 1.0}


def test_new_levels_nan_and_error() -> None:
    m, nd = fit("cbpp_prop_laplace"), newdata("cbpp_prop_laplace")
    unseen = (nd.herd == "99").to_numpy()
    got = m.predict(nd, new_levels="nan")
    assert np.isnan(got[unseen]).all() and np.isfinite(got[~unseen]).all()
    ci = m.predict(nd, new_levels="nan", interval="confidence")
    assert ci.loc[unseen].isna().all().all()
    with pytest.raises(mfx.DataError, match="99"):
        m.predict(nd, new_levels="error")


@pytest.mark.parametrize(
    ("name", "column"), [("poisson_crossed_offset", "exposure"), ("poisson_offset_arg", "logexp")]
)
def test_offset_column_is_needed_in_new_data(name: str, column: str) -> None:
    """offset(log(exposure)) reads exposure, offset="logexp" its column, in new rows too."""
    m, nd = fit(name), newdata(name)
    with pytest.raises(mfx.DataError, match=column):
        m.predict(nd.drop(columns=column))
