"""Data the fit refuses: degenerate data, odd grouping columns, formulas that miss the frame."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import frame
from tolerance import REORDERED, assert_close

FORMULA = "y ~ x + (1 | g)"


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


def test_as_many_random_effects_as_observations():
    """lme4's check.nobs.vs.nRE stops at nlevels * q >= n (not only >): 10 x 2 = 20 rows.

    (In R: ``lmer(y ~ 1 + (x | g), d)`` with 20 rows in 10 groups stops with
    "number of observations (=20) <= number of random effects (=20) for term
    (x | g)"; tests/reference has no fit for it.)
    """
    df = frame(n_groups=10, size=2)
    with pytest.raises(mfx.DataError, match=r"term \(x \| g\) has 20 random effects .* 20 obs"):
        mfx.lmm("y ~ 1 + (x | g)", df)
    assert mfx.lmm("y ~ 1 + (x | g)", pd.concat([df, df.head(1)])).nobs == 21


def test_uncorrelated_terms_count_random_effects_per_column():
    """lme4 splits (x || g) into (1 | g) + (0 + x | g) and checks each: 10 levels < 15 rows.

    In R, the same 15 rows in 10 groups fit ``(x || g)`` and refuse ``(x | g)`` (20 >= 15).
    """
    df = pd.concat([frame(n_groups=10, size=1), frame(n_groups=5, size=1, seed=1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        assert mfx.lmm("y ~ 1 + (x || g)", df).nobs == 15
    with pytest.raises(mfx.DataError, match=r"term \(x \| g\) has 20 random effects"):
        mfx.lmm("y ~ 1 + (x | g)", df)


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


def test_mixed_type_grouping_column_is_compared_exactly():
    """Within one frame 1 and 1.0 are one level (equal numbers), "1" another (a string)."""
    df = frame()
    raw = df["g"].str[1:].astype(int)
    labels: list[object] = []
    for i, k in enumerate(raw):
        if k == 0:
            labels.append("a")
        else:  # level k spelt as int or float by row, and as text for k = 1
            labels.append(str(k) if k == 1 and i % 2 else [int(k), float(k)][i % 2])
    df["g"] = pd.Series(labels, dtype=object)
    with pytest.warns(
        mfx.MixedFXWarning, match="holds numbers and the text that spells them"
    ):  # 1 and "1"
        m = mfx.lmm(FORMULA, df)
    assert m.spec.terms[0].nlevels == 7  # "a", 1, "1", 2, ..., 5
    assert_close(m.predict(df), m.fitted(), REORDERED)
    new = pd.DataFrame({"x": [0.3] * 4, "g": pd.Series([1, 1.0, np.int64(1), "1"], dtype=object)})
    out = m.predict(new)
    assert out[0] == out[1] == out[2] != out[3]  # each label finds its own level
    ranef = m.ranef["g"]["(Intercept)"]
    assert out[0] - out[3] == pytest.approx(ranef.loc[1] - ranef.loc["1"], rel=1e-9)


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
    with pytest.warns(mfx.NewLevelWarning, match="differ from training labels only in case"):
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
