"""design: errors about the fixed-effects columns name the data's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def dotted() -> pd.DataFrame:
    return mfx.datasets.load("sleepstudy").rename(columns={"Days": "Day.s"})


def test_dotted_column_fits(dotted: pd.DataFrame) -> None:
    m = mfx.lmm("Reaction ~ Day.s + (1 | Subject)", dotted)
    assert list(m.fixef.index) == ["(Intercept)", "Day.s"]


@pytest.mark.parametrize("fixed", ["Day.s", "log1p(Day.s)", "I(Day.s^2):Days"])
def test_missing_dotted_column_is_named(fixed: str) -> None:
    sleep = mfx.datasets.load("sleepstudy")  # has Days, not Day.s
    with pytest.raises(mfx.DataError, match=r"column\(s\) \['Day\.s'\] missing"):
        mfx.lmm(f"Reaction ~ {fixed} + (1 | Subject)", sleep)


def test_missing_dotted_column_in_new_data_is_named(dotted: pd.DataFrame) -> None:
    m = mfx.lmm("Reaction ~ Day.s + (1 | Subject)", dotted)
    with pytest.raises(mfx.DataError, match=r"column\(s\) \['Day\.s'\] missing"):
        m.predict(dotted.drop(columns="Day.s"))


def test_nan_in_dotted_column_is_named(dotted: pd.DataFrame) -> None:
    bad = dotted.copy()
    bad.loc[3, "Day.s"] = np.nan
    with pytest.raises(mfx.DataError, match=r"column\(s\) 'Day\.s' \(1\)"):
        mfx.lmm("Reaction ~ Day.s + (1 | Subject)", bad)


@pytest.mark.parametrize(
    "formula",
    ["Reaction ~ . + (1 | Subject)", "Reaction ~ Days + (. | Subject)", ". ~ Days + (1 | Subject)"],
)
def test_r_dot_for_every_other_column_is_a_formula_error(formula: str) -> None:
    with pytest.raises(mfx.FormulaError, match=r"'\.' \(R's 'every other column'\)"):
        mfx.lmm(formula, mfx.datasets.load("sleepstudy"))


def test_a_column_named_dot_is_a_column() -> None:
    data = mfx.datasets.load("sleepstudy").rename(columns={"Days": "."})
    m = mfx.lmm("Reaction ~ `.` + (1 | Subject)", data)
    assert list(m.fixef.index) == ["(Intercept)", "."]
