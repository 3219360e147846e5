"""GLMM input checks, warnings and legal edge cases (separation, all-0 groups)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
import mixedfx.engine.pirls as pirls_mod
from binary_data import grouped_binary


def binary(seed: int = 0) -> pd.DataFrame:
    return grouped_binary(seed=seed)


def test_boolean_and_0_1_responses_fit_alike() -> None:
    df = binary()
    a = mfx.glmm("y ~ x + (1 | g)", df)
    b = mfx.glmm("y ~ x + (1 | g)", df.assign(y=df.y.astype(int)))
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.beta, b.beta)


def with_missing_outcomes(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``df`` with rows 3 and 8 of its boolean ``y`` missing, as users' frames hold them."""
    if kind == "nullable":  # pandas' boolean dtype (convert_dtypes, read_parquet)
        y = pd.array(df.y, dtype="boolean")
        y[[3, 8]] = pd.NA
        return df.assign(y=y)
    if kind == "polars":  # a polars Boolean with nulls
        import polars as pl

        return pl.from_pandas(df).with_columns(
            pl.when(pl.int_range(pl.len()).is_in([3, 8]))
            .then(None)
            .otherwise(pl.col("y"))
            .alias("y")
        )
    return df.assign(y=df.y.astype(object).where(~df.index.isin([3, 8]), None))  # object


@pytest.mark.parametrize("kind", ["nullable", "polars", "object"])
def test_boolean_responses_with_missing_values(kind: str) -> None:
    # A boolean with missing values is still a boolean: missing='drop' fits
    # the other rows, the default names the rows, a given row is refused by
    # row, and a linear model points to the GLMM, however the frame holds it.
    df = binary()
    holey = with_missing_outcomes(df, kind)
    want = mfx.glmm("y ~ x + (1 | g)", df.drop(index=[3, 8]))
    with pytest.warns(mfx.MissingDataWarning, match="dropped 2 of 240"):
        got = mfx.glmm("y ~ x + (1 | g)", holey, missing="drop")
    assert got.objective == want.objective
    with pytest.raises(mfx.DataError, match="'y'"):
        mfx.glmm("y ~ x + (1 | g)", holey)
    given = with_missing_outcomes(df.head(10), kind)
    with pytest.raises(mfx.DataError, match=r"response 'y' has NaN .* rows \[3, 8\]"):
        want.predict(df.head(2), given=given)
    with pytest.raises(mfx.DataError, match=r"boolean.*family='binomial'"):
        with pytest.warns(mfx.MissingDataWarning):  # the rows are dropped first
            mfx.lmm("y ~ x + (1 | g)", holey, missing="drop")


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("y", {3: 1.5}, r"rows \[3\] are outside"),
        ("y", {5: -1.0}, r"rows \[5\] are outside"),
        ("y", {7: 0.5}, r"not whole numbers in rows \[7\]"),
        ("w", {2: -1.0}, r"negative values in rows \[2\]"),
        ("w", {4: np.inf}, r"'w'"),
    ],
)
def test_binomial_support_errors_name_the_rows(column: str, values: dict, message: str) -> None:
    df = binary().assign(y=lambda d: d.y.astype(float), w=1.0)
    for row, value in values.items():
        df.loc[row, column] = value
    with pytest.raises(mfx.DataError, match=message):
        mfx.glmm("y ~ x + (1 | g)", df, weights="w")


@pytest.mark.parametrize(("value", "message"), [(-2.0, "negative"), (1.5, "whole-number")])
def test_poisson_support_errors_name_the_rows(value: float, message: str) -> None:
    df = binary().assign(y=lambda d: d.y.astype(float) * 3)
    df.loc[11, "y"] = value
    with pytest.raises(mfx.DataError, match=rf"{message}.*\[11\]|\[11\].*{message}"):
        mfx.glmm("y ~ x + (1 | g)", df, family="poisson")


def test_row_labels_are_the_frames_index() -> None:
    df = binary().assign(y=lambda d: d.y.astype(float))
    df.index = [f"r{i}" for i in range(len(df))]
    df.loc["r9", "y"] = 2.0
    with pytest.raises(mfx.DataError, match=r"\[r9\]"):
        mfx.glmm("y ~ x + (1 | g)", df)


def test_proportions_with_trials_fit_as_expanded_bernoulli_rows() -> None:
    """k successes in m trials is the same likelihood as m 0/1 rows (up to a constant)."""
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(10), 4)
    m = rng.integers(1, 6, size=len(g)).astype(float)
    x = rng.normal(size=len(g))
    p = 1 / (1 + np.exp(-(x + 1.5 * rng.normal(size=10)[g])))
    k = rng.binomial(m.astype(int), p).astype(float)
    agg = pd.DataFrame({"p": k / m, "m": m, "x": x, "g": g.astype(str)})
    rows = []
    for i in range(len(g)):
        rows += [(1.0, x[i], str(g[i]))] * int(k[i]) + [(0.0, x[i], str(g[i]))] * int(m[i] - k[i])
    long = pd.DataFrame(rows, columns=["p", "x", "g"])
    a = mfx.glmm("p ~ x + (1 | g)", agg, weights="m")
    b = mfx.glmm("p ~ x + (1 | g)", long)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-6)


def test_a_group_of_all_zeros_is_legal_and_quiet() -> None:
    df = binary()
    df.loc[df.g == "g3", "y"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = mfx.glmm("y ~ x + (1 | g)", df)
    assert m.ranef["g"].loc["g3", "(Intercept)"] < m.ranef["g"]["(Intercept)"].median()


def test_complete_separation_fits_and_predicts() -> None:
    df = binary(seed=3)
    df["y"] = df.x > 0  # x separates y completely
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.MixedFXWarning)
        m = mfx.glmm("y ~ x + (1 | g)", df)
    assert m.beta[1] > 5
    p = m.predict(df)
    assert np.all((p >= 0) & (p <= 1)) and np.all((p > 0.5) == df.y.to_numpy())


def test_pirls_that_does_not_converge_warns_with_the_iteration_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    df = binary()
    monkeypatch.setattr(pirls_mod, "MAXIT", 1)
    monkeypatch.setattr(pirls_mod.pirls, "__defaults__", (None, None, None, None, 1, None))
    with pytest.warns(mfx.ConvergenceWarning, match="after 1 iterations"):
        mfx.glmm("y ~ x + (1 | g)", df)


def test_family_spellings() -> None:
    df = binary()
    a = mfx.glmm("y ~ x + (1 | g)", df, family="binomial(link = 'probit')")
    b = mfx.glmm("y ~ x + (1 | g)", df, family=mfx.family.binomial("probit"))
    assert a.objective == b.objective and str(a.family) == "binomial(probit)"
    for bad, message in [
        ("gamma", "unknown family"),
        ("poisson(link='logit')", "links"),
        ("gaussian", "unknown family 'gaussian'.*for a Gaussian response use mixedfx.lmm"),
    ]:
        with pytest.raises(ValueError, match=message):
            mfx.glmm("y ~ x + (1 | g)", df, family=bad)
    with pytest.raises(ValueError, match="nAGQ"):
        mfx.glmm("y ~ x + (1 | g)", df, nAGQ=-1)
    with pytest.raises(ValueError, match="single scalar"):
        mfx.glmm("y ~ x + (x | g)", df, nAGQ=5)


def test_missing_weights_are_errors_or_dropped() -> None:
    df = binary().assign(w=1.0)
    df.loc[[2, 5], "w"] = np.nan
    with pytest.raises(mfx.DataError, match="'w'"):
        mfx.glmm("y ~ x + (1 | g)", df, weights="w")
    with pytest.warns(mfx.MissingDataWarning, match="dropped 2"):
        m = mfx.glmm("y ~ x + (1 | g)", df, weights="w", missing="drop")
    assert m.nobs == len(df) - 2


def test_nagq_zero_is_lme4s_fast_first_stage() -> None:
    df = binary()
    fast = mfx.glmm("y ~ x + (1 | g)", df, nAGQ=0)
    full = mfx.glmm("y ~ x + (1 | g)", df)
    assert fast.nagq == 0 and "nAGQ = 0" in fast.summary()
    assert full.objective <= fast.objective
    np.testing.assert_allclose(fast.beta, full.beta, atol=0.05)


def test_residuals_and_fitted() -> None:
    df = binary()
    m = mfx.glmm("y ~ x + (1 | g)", df)
    y = df.y.to_numpy(dtype=float)
    np.testing.assert_allclose(m.residuals("response"), y - m.fitted())
    dev = m.residuals()
    assert np.all(np.sign(dev) == np.sign(y - m.fitted()))
    mu = m.fitted()
    want = -2 * (y * np.log(mu) + (1 - y) * np.log(1 - mu))
    np.testing.assert_allclose(dev**2, want, rtol=1e-10)
    np.testing.assert_allclose(m.residuals("pearson"), (y - mu) / np.sqrt(mu * (1 - mu)))
    with pytest.raises(ValueError, match="type"):
        m.residuals("raw")
