"""A conditioned GLMM: penalized IRLS on the given rows plus what training knows.

Checked against dense Newton on the stacked data (the training rows as their
working-weighted Gaussian pseudo-rows at the fitted modes, the given rows as
binomial or Poisson rows), for a single factor, crossed and nested terms, and
for a new group of a single factor against the mode from its given rows alone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from glmm_oracle import stacked_mode
from glmm_reference import fit, training
from oracle import dense_lambda

GIVEN = {
    "cbpp_prop_laplace": pd.DataFrame(
        {
            "herd": ["1", "1", "new", "new", "new"],
            "period": ["3", "4", "1", "2", "4"],
            "size": [10.0, 12.0, 20.0, 15.0, 8.0],
            "incidence": [4.0, 3.0, 9.0, 2.0, 1.0],
        }
    ),
    "poisson_crossed_offset": pd.DataFrame(
        {
            "site": ["S01", "S01", "S99", "S99"],
            "month": [13, 13, 3, 4],
            "z": [0.5, -1.0, 0.0, 1.2],
            "count": [7.0, 1.0, 12.0, 20.0],
            "exposure": [2.0, 1.0, 3.0, 2.5],
        }
    ),
    "grouseticks": pd.DataFrame(
        {
            "INDEX": ["n1", "n2", "n3"],
            "BROOD": ["501", "nb", "nb"],
            "LOCATION": ["32", "1", "1"],
            "YEAR": ["95", "96", "96"],
            "HEIGHT": [465.0, 480.0, 480.0],
            "TICKS": [3.0, 0.0, 25.0],
        }
    ),
}
GIVEN["cbpp_cbind_laplace"] = GIVEN["cbpp_prop_laplace"]  # cbind(incidence, size - incidence)
GIVEN["poisson_offset_arg"] = GIVEN["poisson_crossed_offset"].assign(
    logexp=lambda d: np.log(d.exposure)  # the offset= column
)


def stacked(m: mfx.GeneralizedLinearMixedModel, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The conditioned model's effects and the dense stacked computation's, in Z's order."""
    given = GIVEN[name]
    train = training(name)
    c = m.condition(given)
    fam = m.family
    eta = m.fitted("link")
    mu = m.fitted()
    y, w = m.response_values, m.weight_values
    me = fam.link.mu_eta(eta)
    offset = m.spec.offset(train)
    r = eta - offset + (y - mu) / me - m.design(train).X.to_numpy() @ m.beta
    Wt = w * me * me / fam.variance(mu)
    Zt = c.design(train).Z.toarray()
    dg = c.design(given)
    out = m.outcome.outcome(m.spec, given)
    base = out.offset + dg.X.to_numpy() @ m.beta
    L = dense_lambda(c, c.theta)
    u = stacked_mode(L, (Zt, Wt, r), (dg.Z.toarray(), base, out.y, out.weights), fam)
    got = np.concatenate([b.ravel() for b in c.b])
    return got, L @ u


@pytest.mark.parametrize("name", list(GIVEN))
def test_conditional_modes_match_dense_newton_on_the_stacked_data(name: str) -> None:
    got, want = stacked(fit(name), name)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8 * max(1.0, np.abs(want).max()))


def test_a_new_group_of_one_factor_gets_the_mode_of_its_own_rows() -> None:
    """Nothing in training touches a new herd: its mode is that of its given rows alone."""
    m = fit("cbpp_prop_laplace")
    given = GIVEN["cbpp_prop_laplace"]
    new = given[given.herd == "new"]
    c = m.condition(given)
    alone = m.condition(new)
    t = float(m.theta[0])
    d = m.design(new.assign(herd="1"))  # X of the new rows
    base = d.X.to_numpy() @ m.beta
    out = m.outcome.outcome(m.spec, new)
    u = stacked_mode(
        np.array([[t]]),
        (np.zeros((0, 1)), np.zeros(0), np.zeros(0)),
        (np.ones((len(new), 1)), base, out.y, out.weights),
        m.family,
    )
    assert c.ranef["herd"].loc["new", "(Intercept)"] == pytest.approx(t * u[0], rel=1e-10)
    assert alone.ranef["herd"].loc["new", "(Intercept)"] == pytest.approx(t * u[0], rel=1e-10)


def test_known_groups_keep_their_modes_without_given_rows() -> None:
    m = fit("cbpp_prop_laplace")
    c = m.condition(GIVEN["cbpp_prop_laplace"])
    before, after = m.ranef["herd"], c.ranef["herd"]
    others = [h for h in before.index if h != "1"]
    np.testing.assert_allclose(after.loc[others], before.loc[others], rtol=1e-10)
    assert abs(after.loc["1"].iloc[0] - before.loc["1"].iloc[0]) > 1e-3


def test_conditioned_model_keeps_the_fit_and_counts_given_rows() -> None:
    m = fit("cbpp_prop_laplace")
    given = GIVEN["cbpp_prop_laplace"]
    c = m.condition(given)
    assert (c.objective, c.aic, c.bic, c.nobs) == (m.objective, m.aic, m.bic, m.nobs)
    assert c.nobs_given == 5 and c.conditioned
    np.testing.assert_array_equal(c.theta, m.theta)
    np.testing.assert_array_equal(c.beta, m.beta)
    assert c.condition(given.head(2)).nobs_given == 7
    assert m.condition(given.head(0)) is m
    nd = pd.DataFrame({"herd": ["new", "1"], "period": ["1", "2"], "size": [5.0, 5.0]})
    np.testing.assert_array_equal(m.predict(nd, given=given), c.predict(nd))
    # predict() without newdata: the training rows with the updated modes
    np.testing.assert_array_equal(c.predict(), c.predict(training("cbpp_prop_laplace")))
    np.testing.assert_array_equal(c.fitted(), c.predict())
    assert "conditioned on 5 given rows" in c.summary()


def test_given_rows_outside_the_support_name_the_rows() -> None:
    m = fit("poisson_crossed_offset")
    bad = GIVEN["poisson_crossed_offset"].assign(count=[1.0, -2.0, 3.0, 0.5])
    with pytest.raises(mfx.DataError, match=r"rows \[1\]"):
        m.condition(bad)


@pytest.mark.parametrize("name", ["cbpp_prop_laplace", "poisson_crossed_offset"])
def test_given_copies_of_training_rows_warn_that_they_count_twice(name: str) -> None:
    """As for an LMM: rows the model holds already would count twice."""
    m = fit(name)
    rows = training(name)
    copies = rows.head(3)
    with pytest.warns(mfx.GivenWarning, match=r"3 row\(s\) identical to training rows"):
        m.condition(copies)
    response = m.spec.response if name.startswith("poisson") else "incidence"
    later = copies.assign(**{response: copies[response] + 1})  # new observations
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.GivenWarning)
        m.condition(later)
