"""A GLMM's fit does not depend on the units or the origin of a random-slope predictor.

``(x | g)`` with a full covariance is the same model for ``x * s + c``: the
linear predictor, the deviance and the predictions are unchanged, and the
estimates move by the exact linear map. In the user's coordinates
``x + 1000`` makes the intercept's and the slope's effects nearly collinear;
fitted there, the deviance came out 2.3 above the optimum and predicted
probabilities moved by up to 0.25. Tolerances: the second stage stops at
1e-12 relative in the deviance and a Newton step places the optimum to about
1e-8 standard errors, so predictions agree to well below 1e-7.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


def slopes(family: str, seed: int = 4, groups: int = 40, size: int = 25) -> pd.DataFrame:
    """``y ~ x + (x | g)`` with a real random slope: not a boundary fit."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), size)
    x = rng.normal(size=len(g))
    u = rng.normal(size=(groups, 2)) * [0.8, 0.6]
    eta = -0.2 + 0.7 * x + u[g, 0] + u[g, 1] * x
    if family == "binomial":
        y = (rng.random(len(g)) < 1 / (1 + np.exp(-eta))).astype(float)
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})


def fit(data: pd.DataFrame, family: str) -> mfx.GeneralizedLinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a boundary or unconverged fit would prove nothing
        return mfx.glmm("y ~ x + (x | g)", data, family=family)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
@pytest.mark.parametrize(("shift", "scale"), [(1e3, 1.0), (1e5, 1.0), (0.0, 1e4), (1e4, 1e-3)])
def test_shifted_and_scaled_slope_gives_the_same_fit(family, shift, scale) -> None:
    data = slopes(family)
    base = fit(data, family)
    moved_data = data.assign(x=data["x"] * scale + shift)
    moved = fit(moved_data, family)
    assert moved.objective == pytest.approx(base.objective, rel=1e-10)
    for kind in ("response", "link"):
        np.testing.assert_allclose(
            moved.predict(moved_data, type=kind), base.predict(data, type=kind), rtol=0, atol=1e-7
        )
    # beta_moved = J^-1 beta: x = (x' - c) / s
    J = np.array([[1.0, -shift / scale], [0.0, 1.0 / scale]])
    np.testing.assert_allclose(moved.beta, J @ base.beta, rtol=1e-6)
    # the covariance, compared on the scale of its standard errors: both come from
    # finite-difference Hessians (steps of 1e-3 standard errors, O(h^2) error). Mapped
    # forward: the inverse map would cancel (an intercept's variance at x' = 0 is
    # c^2 / s^2 times the slope's)
    got, want = moved.vcov.to_numpy(), J @ base.vcov.to_numpy() @ J.T
    se = np.sqrt(np.diag(want))
    np.testing.assert_allclose(got / np.outer(se, se), want / np.outer(se, se), atol=1e-5)
    # the random effects: (b0, b1) -> (b0 - c b1 / s, b1 / s)
    b, bm = base.ranef["g"].to_numpy(), moved.ranef["g"].to_numpy()
    np.testing.assert_allclose(bm, b @ J.T, rtol=0, atol=1e-6 * np.abs(b @ J.T).max())


@pytest.mark.parametrize(("shift", "scale"), [(1e4, 1.0), (1e5, 1.0), (1e4, 1e-3)])
def test_intervals_and_given_rows_do_not_depend_on_the_origin(shift, scale) -> None:
    """Intervals, ``given`` rows and ``condition`` run in the fit's coordinates.

    From the user's coordinates, ``x + 1e4`` moved confidence limits by 2.5e-3
    and ``x + 1e5`` made the working-weighted system not positive definite.
    """
    data = slopes("binomial")
    train, new = data[data["g"] != "g0"], data[data["g"] == "g0"]
    given, score = new.iloc[:5], new.iloc[5:]
    base = fit(train, "binomial")

    def move(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(x=df["x"] * scale + shift)

    moved = fit(move(train), "binomial")
    for rows in (train.head(40), score):  # known groups; a new group (its prior)
        for interval in ("confidence", "prediction"):
            want = base.predict(rows, interval=interval, level=0.9)
            got = moved.predict(move(rows), interval=interval, level=0.9)
            np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-7)
    want = base.predict(score, given=given, interval="confidence", level=0.9)
    got = moved.predict(move(score), given=move(given), interval="confidence", level=0.9)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-7)
    b, bm = base.condition(given).ranef["g"], moved.condition(move(given)).ranef["g"]
    J = np.array([[1.0, -shift / scale], [0.0, 1.0 / scale]])
    expected = b.to_numpy() @ J.T
    np.testing.assert_allclose(bm.to_numpy(), expected, rtol=0, atol=1e-6 * np.abs(expected).max())
