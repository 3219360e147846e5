"""A GLMM's response and offset spellings: cbind(successes, failures), proportions, offsets.

lme4's binomial family reads ``cbind(s, f)`` as the proportion ``s / (s + f)``
with ``s + f`` trials (times any prior weights; a row of 0 trials has weight
0); a proportion with ``weights=`` the trials is the same model. An offset is
``offset(expr)`` in the formula or ``offset=`` a column or an array, as for
``lmm``. Each spelling is compared with another on the same data: the
objective to rounding of the sums (1e-10 relative), estimates to the
optimizer's tolerance (1e-6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.frame.design import OFFSET_COLUMN
from tolerance import assert_close

CBIND = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    return mfx.datasets.load("cbpp")


@pytest.fixture(scope="module")
def by_cbind(cbpp: pd.DataFrame) -> mfx.GeneralizedLinearMixedModel:
    return mfx.glmm(CBIND, cbpp, family="binomial")


def same_fit(a: mfx.GeneralizedLinearMixedModel, b: mfx.GeneralizedLinearMixedModel) -> None:
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert_close(a.theta, b.theta, rtol=1e-6)  # two optimizer runs: their tolerance
    assert_close(a.beta, b.beta, rtol=1e-6)


def test_cbind_is_a_proportion_with_its_trials_as_weights(cbpp, by_cbind) -> None:
    by_expr = mfx.glmm("incidence/size ~ period + (1 | herd)", cbpp, "binomial", weights="size")
    by_column = mfx.glmm(
        "prop ~ period + (1 | herd)",
        cbpp.assign(prop=cbpp.incidence / cbpp["size"]),
        "binomial",
        weights="size",
    )
    same_fit(by_expr, by_cbind)
    same_fit(by_column, by_cbind)
    assert_close(by_cbind.response_values, by_column.response_values, rtol=1e-15)


def test_rows_of_zero_trials_count_for_nothing(cbpp, by_cbind) -> None:
    """lme4: y = 0 and weight 0 where s + f = 0; the fit is that of the other rows."""
    empty = cbpp.head(3).assign(incidence=0, size=0, herd=cbpp.herd.iloc[:3].to_numpy())
    padded = mfx.glmm(CBIND, pd.concat([cbpp, empty], ignore_index=True), family="binomial")
    same_fit(padded, by_cbind)
    assert padded.nobs == by_cbind.nobs + 3


def test_prior_weights_multiply_the_trials_of_cbind(cbpp, by_cbind) -> None:
    """weights 2 on every row: each row's log-likelihood twice, as the rows twice."""
    doubled = mfx.glmm(CBIND, cbpp.assign(w=2.0), family="binomial", weights="w")
    twice = mfx.glmm(CBIND, pd.concat([cbpp, cbpp], ignore_index=True), family="binomial")
    same_fit(doubled, twice)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"incidence": -1}, "negative successes or failures in rows \\[0\\]"),
        ({"size": 0}, "negative successes or failures in rows \\[0\\]"),  # failures -2
        ({"incidence": 0.5}, "not whole numbers in rows \\[0\\]"),
        ({"incidence": np.nan}, "missing values in column\\(s\\) .incidence. \\(1\\)"),
    ],
)
def test_bad_cbind_rows_are_named(cbpp, change: dict, message: str) -> None:
    bad = cbpp.copy()
    for col, value in change.items():
        bad[col] = bad[col].astype(float)
        bad.loc[0, col] = value
    with pytest.raises(mfx.DataError, match=message):
        mfx.glmm(CBIND, bad, family="binomial")


def test_cbind_is_binomial_only(cbpp) -> None:
    with pytest.raises(mfx.DataError, match="poisson model needs one column"):
        mfx.glmm(CBIND, cbpp, family="poisson")


@pytest.fixture(scope="module")
def visits() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    site = np.repeat(np.arange(12), 10)
    exposure = rng.uniform(0.5, 3.0, size=site.size)
    count = rng.poisson(exposure * np.exp(0.3 + rng.normal(0, 0.6, 12)[site]))
    return pd.DataFrame({"site": site.astype(str), "exposure": exposure, "count": count})


def test_offset_spellings_are_one_model(visits) -> None:
    """offset(log(exposure)), offset="col" and offset=array: the same fit and predictions."""
    formula = "count ~ 1 + (1 | site)"
    by_term = mfx.glmm("count ~ 1 + offset(log(exposure)) + (1 | site)", visits, "poisson")
    logs = np.log(visits["exposure"].to_numpy())
    by_column = mfx.glmm(formula, visits.assign(logexp=logs), "poisson", offset="logexp")
    by_array = mfx.glmm(formula, visits, "poisson", offset=logs)
    same_fit(by_column, by_term)
    same_fit(by_array, by_term)
    assert by_array.spec.offset_column == OFFSET_COLUMN
    new = pd.DataFrame({"site": ["0", "99"], "exposure": [2.0, 2.0]})
    want = by_term.predict(new)
    # the same model: predictions agree to the estimates' tolerance (1e-6 relative)
    assert_close(by_column.predict(new.assign(logexp=np.log(2.0))), want, rtol=1e-6)
    assert_close(by_array.predict(new.assign(**{OFFSET_COLUMN: np.log(2.0)})), want, rtol=1e-6)
    with pytest.raises(mfx.DataError, match=r"offset= an array.*'\(offset\)'"):
        by_array.predict(new)


def test_offset_and_formula_offset_add_up(visits) -> None:
    """Both at once are summed, as lme4 sums them."""
    half = np.log(visits["exposure"].to_numpy()) / 2
    both = mfx.glmm(
        "count ~ 1 + offset(log(exposure) / 2) + (1 | site)",
        visits.assign(half=half),
        "poisson",
        offset="half",
    )
    one = mfx.glmm("count ~ 1 + offset(log(exposure)) + (1 | site)", visits, "poisson")
    same_fit(both, one)


def test_missing_drop_covers_the_offset_and_weights(visits) -> None:
    holes = visits.assign(w=1.0)
    holes.loc[[2, 5], "exposure"] = np.nan
    holes.loc[7, "w"] = np.nan
    with pytest.warns(mfx.MissingDataWarning, match="dropped 3"):
        m = mfx.glmm(
            "count ~ 1 + offset(log(exposure)) + (1 | site)",
            holes,
            "poisson",
            weights="w",
            missing="drop",
        )
    assert m.nobs == len(visits) - 3
    with pytest.raises(mfx.DataError, match="missing='drop'"):
        mfx.glmm("count ~ 1 + offset(log(exposure)) + (1 | site)", holes, "poisson", weights="w")


def test_polars_frames_fit_and_predict_as_pandas(cbpp) -> None:
    """The frame boundary (frames.in_memory) for GLMMs: training, new and given rows.

    The same rows in pandas and polars are the same inputs: equal numbers.
    """
    pl = pytest.importorskip("polars")
    text = cbpp.astype({"herd": str, "period": str})
    by_pandas = mfx.glmm(CBIND, text, family="binomial")
    by_polars = mfx.glmm(CBIND, pl.from_pandas(text), family="binomial")
    assert by_polars.objective == by_pandas.objective
    new = pd.DataFrame({"herd": ["1", "new"], "period": ["2", "1"]})
    given = pd.DataFrame({"herd": ["new"], "period": ["1"], "incidence": [3], "size": [10]})
    want = by_pandas.predict(new, given=given)
    got = by_pandas.predict(pl.from_pandas(new), given=pl.from_pandas(given))
    np.testing.assert_array_equal(got, want)
