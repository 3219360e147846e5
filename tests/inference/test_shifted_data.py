"""Inference on shifted data: the same tables, intervals and draws as without the shift.

The fit runs in standardized coordinates; inference reads the blocks moved back
to the user's columns with the response left centred (``LinearMixedModel.user_blocks``),
and refits (ML for profiles, bootstrap replicates) run in the fit's coordinates.
So ``Reaction + c`` gives what ``Reaction`` gives, for ``c`` up to 1e10 sd: each
fit of the shifted data is compared with the fit of the same numbers shifted back
(the data's rounding is not counted), to the brief's 1e-8.

Kenward-Roger and Satterthwaite are computed in the standardized coordinates
themselves and mapped back exactly (a linear map of beta; for Satterthwaite,
the user's Hessian of the variance parameters by the chain rule), so shifted
and rescaled predictors and random slopes leave them unchanged too. So do the
profiles, whose deviances and free parameters are the standardized ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import quiet_fit
from mixedfx.inference.confint import estimates
from mixedfx.inference.kenward_roger import kenward_roger
from mixedfx.inference.varpar import refit

RTOL = 1e-8  # the fits agree to ~1e-10 in theta; Hessians are differenced to ~1e-10
FORMULA = "Reaction ~ Days + (Days | Subject)"
SLEEP = mfx.datasets.load("sleepstudy")
SHIFTS = [1e6, 1e10 * float(SLEEP["Reaction"].std())]


@pytest.fixture(scope="module", params=SHIFTS)
def pair(
    request: pytest.FixtureRequest,
) -> tuple[mfx.LinearMixedModel, mfx.LinearMixedModel, float]:
    c = request.param
    shifted = SLEEP.assign(Reaction=SLEEP["Reaction"] + c)
    back = shifted.assign(Reaction=shifted["Reaction"] - c)  # the same numbers, exactly
    return quiet_fit(FORMULA, shifted), quiet_fit(FORMULA, back), c


def close(got: object, want: object, rtol: float = RTOL, near: float = 0.0) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=near)


def test_coefficient_tables(pair) -> None:
    m, ref, c = pair
    for ddf in ("satterthwaite", "kenward-roger"):
        a, b = m.coef_table(ddf), ref.coef_table(ddf)
        close(a["df"], b["df"])
        close(a["se"], b["se"])
        close(a["t"].iloc[1:], b["t"].iloc[1:])
        close(a["p"].iloc[1:], b["p"].iloc[1:], rtol=10 * RTOL)


def test_profile_intervals(pair) -> None:
    m, ref, c = pair
    a, b = m.confint("profile"), ref.confint("profile")
    rest = [k for k in b.index if k != "(Intercept)"]
    close(a.loc[rest], b.loc[rest])
    # the ends are located to 1e-9 of |estimate| (the root finder's tolerance): for the
    # intercept, near c, that is 1e-9 c
    close(a.loc["(Intercept)"] - c, b.loc["(Intercept)"], near=1e-9 * c)


def test_bootstrap_refits(pair) -> None:
    m, ref, c = pair
    a = m.bootstrap(4, seed=2, progress=False, n_jobs=1)
    b = ref.bootstrap(4, seed=2, progress=False, n_jobs=1)
    close(a.theta, b.theta)
    close(a.sigma, b.sigma)
    close(a.beta[:, 1], b.beta[:, 1])
    close(a.beta[:, 0] - c, b.beta[:, 0], near=4 * float(np.spacing(c)))
    rows = SLEEP.head(3)
    for unc in ("hessian", "bootstrap"):
        kw = {"interval": "prediction", "uncertainty": unc}
        got = m.predict(rows.assign(Reaction=rows["Reaction"] + c), bootstrap=a, **kw)
        want = ref.predict(rows, bootstrap=b, **kw)
        assert isinstance(got, pd.DataFrame) and isinstance(want, pd.DataFrame)
        # the draws' predictions sit near c: each is no better than a few ulps of c
        near = 4 * float(np.spacing(c))
        close(got["se"], want["se"], near=near)
        close(got["upper"] - c, want["upper"], near=near)


@pytest.mark.parametrize(("s", "c"), [(1.0, 1e3), (1.0, 1e6), (1e4, 0.0), (1e-4, 0.0)])
def test_kenward_roger_with_a_shifted_random_slope(s: float, c: float) -> None:
    """``Days * s + c`` in the fixed part and the random slope: beta maps by ``B``."""
    data = SLEEP.assign(Days=SLEEP["Days"] * s + c)
    back = data.assign(Days=(data["Days"] - c) / s)
    m, ref = quiet_fit(FORMULA, data), quiet_fit(FORMULA, back)
    B = np.array([[1.0, -c / s], [0.0, 1.0 / s]])  # beta_new = B beta_days
    a, b = m.coef_table("kenward-roger"), ref.coef_table("kenward-roger")
    close(a["df"], b["df"])
    close(a["se"].iloc[1], b["se"].iloc[1] / s)
    want = B @ kenward_roger(ref).phi_adj @ B.T
    # relative to the array's scale (the intercept's variance, up to 1e12 times the
    # slope's when c = 1e6); the slope's own se is compared above
    got = kenward_roger(m).phi_adj
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * abs(want).max())


SLOPES = [(1.0, 1e3), (1.0, 1e6), (1e4, 0.0), (1e-4, 0.0)]


@pytest.mark.parametrize(("s", "c"), SLOPES)
def test_satterthwaite_with_a_shifted_random_slope(s: float, c: float) -> None:
    """``Days * s + c`` in the fixed part and the random slope: the same df and t.

    The df is a function of the standardized fit alone (the same numbers up to
    the data's rounding, ~1e-10 in theta) and of ``L A``, which for the unit
    contrasts is the same up to the map's rounding: 1e-8 relative (seen: 1e-10).
    """
    data = SLEEP.assign(Days=SLEEP["Days"] * s + c)
    back = data.assign(Days=(data["Days"] - c) / s)
    a = quiet_fit(FORMULA, data).coef_table("satterthwaite")
    b = quiet_fit(FORMULA, back).coef_table("satterthwaite")
    close(a["df"], b["df"])
    close(a["t"].iloc[1], b["t"].iloc[1])
    close(a["se"].iloc[1], b["se"].iloc[1] / s)


@pytest.mark.parametrize(("s", "c"), SLOPES)
def test_profile_intervals_with_a_shifted_random_slope(s: float, c: float) -> None:
    """``Days * s + c`` in a random slope: the profiles run in the standardized coordinates.

    The slope's sd and fixed effect map by ``1 / s``, sigma is unchanged; the
    intercept's sd and correlation are those of the intercept at ``Days = -c``
    (equal for a scale alone). The ends are located to 1e-9 of the estimate and
    each profile point minimised to 1e-10 in the deviance: 1e-8 relative (seen:
    1.5e-10).
    """
    data = SLEEP.assign(Days=SLEEP["Days"] * s + c)
    back = data.assign(Days=(data["Days"] - c) / s)
    m = quiet_fit(FORMULA, data)
    a, b = m.confint("profile"), quiet_fit(FORMULA, back).confint("profile")
    close(a.loc["sd_Days|Subject"], b.loc["sd_Days|Subject"] / s)
    close(a.loc["Days"], b.loc["Days"] / s)
    close(a.loc["sigma"], b.loc["sigma"])
    rows = ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "(Intercept)"]
    if c == 0.0:
        close(a.loc[rows], b.loc[rows])
    else:  # the intercept far from the data: an interval about the ML estimate
        hat = pd.Series(estimates(refit(m, reml=False)), index=a.index)
        for row in rows:
            assert a.loc[row, "lower"] <= hat[row] <= a.loc[row, "upper"]
        assert -1.0 <= a.loc[rows[1], "lower"] and a.loc[rows[1], "upper"] < 0.0


@pytest.mark.parametrize(("s", "c"), SLOPES)
def test_hessian_intervals_with_a_shifted_random_slope(s: float, c: float) -> None:
    """``Days * s + c`` in a random slope: the same Hessian-draw intervals.

    The draws are made in the fit's standardized coordinates, where the two
    fits are the same numbers up to the data's rounding (~1e-10 in theta), and
    their quantiles are bisected to 1e-10 of their spread: 1e-8 relative
    (seen: 3e-12). Drawn in the user's theta, the Hessian of ``Days + 1e3``
    differed and the interval's se moved by 0.6 %.
    """
    data = SLEEP.assign(Days=SLEEP["Days"] * s + c)
    back = data.assign(Days=(data["Days"] - c) / s)
    rows = pd.DataFrame({"Days": [2.0, 7.0, 0.0], "Subject": ["308", "new", "309"]})
    kw = {"interval": "prediction", "uncertainty": "hessian"}
    got = quiet_fit(FORMULA, data).predict(rows.assign(Days=rows["Days"] * s + c), **kw)
    want = quiet_fit(FORMULA, back).predict(rows, **kw)
    assert isinstance(got, pd.DataFrame) and isinstance(want, pd.DataFrame)
    close(got.to_numpy(), want.to_numpy())
