"""The missing-value policy: NaN, inf and missing labels are an error unless missing="drop"."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import frame, quiet_fit
from tolerance import REORDERED, assert_close

FORMULA = "y ~ x + (1 | g)"


# -- NaN and inf in training: an error unless missing="drop" -------------------------------
@pytest.mark.parametrize("column", ["y", "x", "g"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, None])
def test_missing_values_are_an_error_naming_column_and_count(column, value):
    df = frame()
    if column == "g" and value in (np.inf, -np.inf):
        value = np.nan  # a label column holds NaN, not inf
    df[column] = df[column].astype(object)
    df.loc[[4, 17], column] = value
    if column != "g":
        df[column] = pd.to_numeric(df[column])
    with pytest.raises(mfx.DataError) as err:
        mfx.lmm(FORMULA, df)
    msg = str(err.value)
    assert f"'{column}' (2)" in msg  # the column and its count
    assert "missing='drop'" in msg  # and what to do
    assert "first at row 4" in msg


def test_missing_in_random_slope_column_is_checked():
    df = frame()
    df["z"] = np.random.default_rng(1).normal(size=len(df))
    df.loc[3, "z"] = np.nan
    with pytest.raises(mfx.DataError, match=r"'z' \(1\)"):
        mfx.lmm("y ~ 1 + (z | g)", df)
    with pytest.warns(mfx.MissingDataWarning, match="dropped 1 of 60"):
        m = quiet_fit("y ~ 1 + (z | g)", df, missing="drop")
    assert m.nobs == 59


def test_missing_drop_fits_the_kept_rows_and_reports_the_count():
    df = frame()
    df.loc[3, "x"] = np.nan
    df.loc[8, "y"] = np.inf
    df.loc[8, "x"] = np.nan  # two columns, one row
    df.loc[20, "g"] = None
    df["unused"] = np.nan  # a column the model does not use is never checked
    with pytest.warns(mfx.MissingDataWarning) as rec:
        m = mfx.lmm(FORMULA, df, missing="drop")
    msg = str(rec[0].message)
    assert "dropped 3 of 60" in msg and "'x' (2)" in msg and "'y' (1)" in msg
    assert "'g' (1)" in msg and "unused" not in msg
    kept = df.drop(index=[3, 8, 20])
    ref = mfx.lmm(FORMULA, kept)
    assert m.nobs == ref.nobs == 57
    assert m.objective == ref.objective
    np.testing.assert_array_equal(m.theta, ref.theta)
    np.testing.assert_array_equal(m.beta, ref.beta)
    # the model's data and fitted values refer to the kept rows, with their index
    assert m.data is not None and list(m.data.index) == list(kept.index)
    np.testing.assert_array_equal(m.fitted(), ref.fitted())
    np.testing.assert_array_equal(m.residuals(), kept["y"].to_numpy() - ref.fitted())
    pred = m.predict(interval="confidence")
    assert list(pred.index) == list(kept.index)
    # predict recomputes X beta + Z b for the rows; fitted() kept the fit's own product
    assert_close(pred["fit"].to_numpy(), m.fitted(), REORDERED)


def test_missing_drop_without_missing_values_changes_nothing():
    df = frame()
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.MissingDataWarning)
        m = mfx.lmm(FORMULA, df, missing="drop")
    assert m.data is df and m.objective == mfx.lmm(FORMULA, df).objective


@pytest.mark.parametrize("column", ["y", "x", "g"])
@pytest.mark.parametrize("missing", ["error", "drop"])
def test_all_missing_column_is_always_an_error(column, missing):
    df = frame()
    df[column] = np.nan
    with pytest.raises(mfx.DataError, match=f"column '{column}' has no usable values"):
        mfx.lmm(FORMULA, df, missing=missing)


def test_missing_argument_is_checked():
    with pytest.raises(ValueError, match="missing must be 'error' or 'drop'"):
        mfx.lmm(FORMULA, frame(), missing="omit")


def test_estimator_passes_missing_through():
    from mixedfx import MixedLMRegressor

    df = frame()
    df.loc[5, "x"] = np.nan
    X, y = df[["x", "g"]], df["y"]
    with pytest.raises(mfx.DataError, match="missing='drop'"):
        MixedLMRegressor(groups="g").fit(X, y)
    with pytest.warns(mfx.MissingDataWarning, match="dropped 1"):
        est = MixedLMRegressor(groups="g", missing="drop").fit(X, y)
    assert est.model_.nobs == 59
    with pytest.raises(ValueError, match="missing must be one of"):
        MixedLMRegressor(groups="g", missing="zap").fit(X, y)


def test_cli_fit_missing_drop(tmp_path):
    df = frame()
    df.loc[5, "x"] = np.nan
    df.to_csv(tmp_path / "d.csv", index=False)
    base = [sys.executable, "-m", "mixedfx.cli", "fit", "d.csv", "--formula", FORMULA]
    out = subprocess.run([*base, "--out", "a.mfx"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and "pass --missing drop" in out.stderr  # the flag, not Python
    out = subprocess.run(
        [*base, "--missing", "drop", "--out", "b.mfx"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "dropped 1 of 60" in out.stderr
    assert mfx.load(tmp_path / "b.mfx").nobs == 59
