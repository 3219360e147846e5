"""Issue 5, input checks: every bad input is a clear error or warning naming its column."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from tolerance import REORDERED, assert_close, assert_close_columns

FORMULA = "y ~ x + (1 | g)"


def frame(n_groups: int = 6, size: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    y = 1.0 + 0.5 * x + rng.normal(size=n_groups)[g] + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{k}" for k in g]})


def quiet_fit(formula: str, data: pd.DataFrame, **kw: object) -> mfx.LinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.lmm(formula, data, **kw)  # type: ignore[arg-type]


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
    assert out.returncode == 2 and "missing='drop'" in out.stderr
    out = subprocess.run(
        [*base, "--missing", "drop", "--out", "b.mfx"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "dropped 1 of 60" in out.stderr
    assert mfx.load(tmp_path / "b.mfx").nobs == 59


# -- degenerate data --------------------------------------------------------------------------
def test_constant_response():
    df = frame().assign(y=3.0)
    with pytest.raises(mfx.DataError, match="response 'y' is constant"):
        mfx.lmm(FORMULA, df)


def test_grouping_factor_with_one_level():
    df = frame().assign(g="only")
    with pytest.raises(mfx.DataError, match="grouping factor 'g' has only one level"):
        mfx.lmm(FORMULA, df)


def test_as_many_levels_as_observations():
    df = frame()
    df["g"] = np.arange(len(df))
    with pytest.raises(mfx.DataError, match="'g' has 60 levels for 60 rows"):
        mfx.lmm(FORMULA, df)


def test_more_random_effects_than_observations():
    df = frame(n_groups=20, size=3)  # 20 levels x 4 effects = 80 > 60 rows
    df["z"] = df["x"] ** 2
    df["w"] = np.sin(df["x"])
    with pytest.raises(mfx.DataError, match=r"term \(x \+ z \+ w \| g\) has 80 random effects"):
        mfx.lmm("y ~ x + (x + z + w | g)", df)


# -- grouping columns of odd types ------------------------------------------------------------
def test_float_grouping_labels_are_matched_by_value():
    df = frame()
    codes = df["g"].str[1:].astype(int)
    df["g"] = codes * 0.5 + 0.25  # 0.25, 0.75, ...: not integral
    m = mfx.lmm(FORMULA, df)
    assert m.spec.terms[0].nlevels == 6
    assert_close(m.predict(df), m.fitted(), REORDERED)  # fitted values near 0 among them
    as_text = df.assign(g=df["g"].map(repr))  # "0.25": the same level
    np.testing.assert_array_equal(m.predict(as_text), m.predict(df))
    # the same numbers from another dtype
    as_f32 = df.assign(g=df["g"].astype(np.float32))
    np.testing.assert_array_equal(m.predict(as_f32), m.predict(df))


def test_mixed_type_grouping_column_is_matched_by_canonical_key():
    """1, 1.0, "1" and np.int64(1) are one level; "a" is another; no error, nothing lost."""
    df = frame()
    raw = df["g"].str[1:].astype(int)
    labels: list[object] = []
    for i, k in enumerate(raw):
        if k == 0:
            labels.append("a")
        else:  # level k spelt as int, str or float by row
            labels.append([int(k), str(k), float(k)][i % 3])
    df["g"] = pd.Series(labels, dtype=object)
    m = mfx.lmm(FORMULA, df)
    assert m.spec.terms[0].nlevels == 6
    same = df.assign(g=raw.map(lambda k: "a" if k == 0 else k).astype(object))
    ref = mfx.lmm(FORMULA, same)
    assert m.objective == pytest.approx(ref.objective, rel=1e-12)
    assert_close(m.predict(df), m.fitted(), REORDERED)
    new = pd.DataFrame({"x": [0.3] * 4, "g": pd.Series([1, "1", 1.0, np.int64(1)], dtype=object)})
    out = m.predict(new)
    assert np.all(out == out[0])
    assert out[0] != m.predict(new, re="none")[0]


def test_integer_and_string_labels_match_by_value():
    """Integer labels in new data where training had strings, and the reverse."""
    df = frame()
    df["g"] = df["g"].str[1:]  # "0", "1", ...: strings
    m_str = mfx.lmm(FORMULA, df)
    as_int = df.assign(g=df["g"].astype(int))
    m_int = mfx.lmm(FORMULA, as_int)
    for m in (m_str, m_int):
        for new in (df, as_int, as_int.assign(g=as_int["g"].astype(float))):
            with warnings.catch_warnings():
                warnings.simplefilter("error", mfx.NewLevelWarning)
                np.testing.assert_array_equal(m.predict(new), m.predict(df))
                a = m.predict(new, interval="prediction")
                b = m.predict(df, interval="prediction")
                pd.testing.assert_frame_equal(a, b)
    assert_close(m_int.predict(df), m_str.predict(df), REORDERED)


def test_labels_that_match_nothing_warn():
    m = mfx.lmm(FORMULA, frame())
    new = frame().assign(g=lambda f: f["g"].str.upper())
    with pytest.warns(mfx.NewLevelWarning, match="'g' labels in the new data were seen"):
        m.predict(new)


# -- formulas and frames ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "column"),
    [
        ("y ~ z + (1 | g)", "z"),
        ("y ~ x + (1 | h)", "h"),
        ("y ~ x + (z | g)", "z"),
        ("w ~ x + (1 | g)", "w"),
    ],
)
def test_formula_naming_a_missing_column(formula, column):
    with pytest.raises(mfx.DataError, match=f"'{column}'"):
        mfx.lmm(formula, frame())


@pytest.mark.parametrize(
    "formula",
    ["y ~ x + (g | g)", "y ~ x + (1 + g | g)", "y ~ x + (0 + g | g)", "y ~ x + (x + g || g)"],
)
@pytest.mark.parametrize("numeric", [False, True])
def test_same_variable_on_both_sides_of_the_bar(formula, numeric):
    df = frame()
    if numeric:
        df["g"] = df["g"].str[1:].astype(int)
    with pytest.raises(mfx.FormulaError, match="uses 'g' on both sides of the bar"):
        mfx.lmm(formula, df)


def test_empty_data_frame():
    with pytest.raises(mfx.DataError, match="data has no rows"):
        mfx.lmm(FORMULA, frame().iloc[:0])
    with pytest.raises(mfx.DataError, match="data has no rows"):
        mfx.lmm(FORMULA, frame().iloc[:0], missing="drop")
    with pytest.raises(mfx.DataError, match="must be a pandas DataFrame"):
        mfx.lmm(FORMULA, frame().to_numpy())  # type: ignore[arg-type]


def test_missing_drop_of_every_row():
    df = frame()
    df.loc[::2, "x"] = np.nan
    df.loc[1::2, "y"] = np.nan
    with pytest.raises(mfx.DataError, match="every row has a missing value"):
        mfx.lmm(FORMULA, df, missing="drop")


@pytest.mark.parametrize(
    "values",
    [
        lambda n: np.where(np.arange(n) % 2, "high", "low"),
        lambda n: pd.Categorical(np.where(np.arange(n) % 2, "a", "b")),
        lambda n: pd.Series([str(v) for v in range(n)], dtype=object),
    ],
)
def test_non_numeric_response(values):
    df = frame()
    df["y"] = values(len(df))
    with pytest.raises(mfx.DataError, match="response 'y' is not numeric"):
        mfx.lmm(FORMULA, df)


# -- new data ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> mfx.LinearMixedModel:
    df = frame()
    df["c"] = np.tile(["lo", "mid", "hi"], 20)
    df["z"] = np.random.default_rng(3).normal(size=len(df))
    return quiet_fit("y ~ x + c + (1 + z | g)", df)


def test_new_data_missing_columns(model):
    data = model.data
    for column in ("x", "c", "g", "z"):
        with pytest.raises(mfx.DataError, match=f"'{column}'"):
            model.predict(data.drop(columns=column))
    with pytest.raises(mfx.DataError, match="'g'"):
        model.predict(data.drop(columns="g"), re="none", interval="confidence")


def test_new_data_unseen_level_of_a_fixed_effect(model):
    new = model.data.head(3).copy()
    new.loc[new.index[1], "c"] = "extreme"
    with pytest.raises(mfx.DataError, match=r"column 'c' has level\(s\) \['extreme'\]"):
        model.predict(new)
    with pytest.raises(mfx.DataError, match="'c'.*'extreme'"):
        model.predict(new, re="none", interval="prediction")


def test_new_data_missing_predictor_gives_nan_with_warning(model):
    new = model.data.head(4).copy()
    new.loc[new.index[1], "x"] = np.nan
    new.loc[new.index[2], "c"] = None
    with pytest.warns(mfx.MixedFXWarning, match="2 row"):
        out = model.predict(new)
    assert np.isnan(out[[1, 2]]).all() and np.isfinite(out[[0, 3]]).all()
    # 4 rows through predict against the fit's product over all rows: 1 ulp apart under
    # OpenBLAS's SkylakeX kernel
    assert_close(out[[0, 3]], model.fitted()[[0, 3]], REORDERED)


def test_new_data_nan_in_group_column_follows_new_levels(model):
    new = model.data.head(4).copy()
    new["g"] = new["g"].astype(object)
    new.loc[new.index[2], "g"] = np.nan
    fixed_only = model.predict(new, re="none")
    pop = model.predict(new, new_levels="population")
    assert pop[2] == fixed_only[2]
    assert_close(pop[[0, 1, 3]], model.fitted()[[0, 1, 3]], REORDERED)
    nan = model.predict(new, new_levels="nan")
    assert np.isnan(nan[2]) and np.isfinite(nan[[0, 1, 3]]).all()
    with pytest.raises(mfx.DataError, match="1 row.*missing \\(NaN\\) label of 'g'"):
        model.predict(new, new_levels="error")
    iv = model.predict(new, interval="prediction", new_levels="nan")
    assert iv.loc[new.index[2]].isna().all()
    iv = model.predict(new, interval="prediction")
    assert iv.notna().all().all()
    # a missing label is a new group: its prediction variance holds the prior variance
    assert iv["se"].iloc[2] > iv["se"].iloc[0]


def test_new_data_with_zero_rows(model):
    empty = model.data.iloc[:0]
    out = model.predict(empty)
    assert isinstance(out, np.ndarray) and out.shape == (0,) and out.dtype == float
    for interval in ("confidence", "prediction"):
        iv = model.predict(empty, interval=interval)
        assert isinstance(iv, pd.DataFrame) and iv.shape == (0, 4)
        assert list(iv.columns) == ["fit", "se", "lower", "upper"]
    assert model.predict(empty, re="none").shape == (0,)
    assert model.predict(empty, given=model.data.head(5)).shape == (0,)
    assert model.predict(empty[["x", "c", "g", "z"]]).shape == (0,)


def test_duplicated_rows_give_duplicated_predictions(model):
    data = model.data
    rows = [0, 5, 0, 5, 5, 30]
    new = data.iloc[rows]
    out = model.predict(new)
    assert_close(out, model.fitted()[rows], REORDERED)
    # a duplicate sits elsewhere in the BLAS call (another SIMD lane, or the scalar tail)
    iv = model.predict(new, interval="prediction").to_numpy()
    assert_close_columns(iv[[2, 4]], iv[[0, 1]], REORDERED)
    single = model.predict(data.iloc[[5]], interval="prediction")
    assert_close_columns(iv[[3]], single.to_numpy(), 1e-13)
