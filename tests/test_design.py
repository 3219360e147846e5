"""design: errors about the fixed-effects columns name the data's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.design import data_columns


@pytest.fixture(scope="module")
def dotted() -> pd.DataFrame:
    return mfx.datasets.load("sleepstudy").rename(columns={"Days": "Day.s"})


@pytest.mark.parametrize(
    ("text", "variables", "columns"),
    [
        ("Day.s", {"Day"}, ["Day.s"]),
        ("np.log1p(Day.s) + x", {"Day", "x"}, ["Day.s", "x"]),
        ("Day + Day.s", {"Day"}, ["Day", "Day.s"]),
        ("`Day.s`:g", {"Day", "g"}, ["Day.s", "g"]),
        ("Days + exp(x)", {"Days", "x"}, ["Days", "x"]),
    ],
)
def test_data_columns(text: str, variables: set[str], columns: list[str]) -> None:
    assert data_columns(text, variables) == columns


def test_dotted_column_fits(dotted: pd.DataFrame) -> None:
    m = mfx.lmm("Reaction ~ Day.s + (1 | Subject)", dotted)
    assert list(m.fixef.index) == ["(Intercept)", "Day.s"]


@pytest.mark.parametrize("fixed", ["Day.s", "np.log1p(Day.s)"])
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


def test_numeric_fast_path_equals_formulaic() -> None:
    """A fixed part of plain numeric columns skips formulaic's materializer: same X, same spec."""
    from formulaic import Formula

    from mixedfx import design

    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "y": rng.normal(size=30),
            "a": rng.normal(size=30),
            "b": rng.integers(0, 5, 30),
            "g": np.repeat(np.arange(6), 5),
        }
    )
    for rhs in ("a + b", "0 + b + a", "1", "b - 1 + a"):
        X, spec = design._fixed_matrix(rhs, data, ["a", "b"])
        mm = Formula(rhs).get_model_matrix(data, output="numpy", na_action="ignore")
        np.testing.assert_array_equal(X, np.asarray(mm, dtype=float))
        assert tuple(spec.column_names) == tuple(mm.model_spec.column_names)
        m = mfx.lmm(f"y ~ {rhs} + (1 | g)", data)
        new = data.assign(a=data["a"] + 1.0)
        np.testing.assert_array_equal(
            m.design(new).X.to_numpy(),
            np.asarray(Formula(rhs).get_model_matrix(new, output="numpy"), dtype=float)[
                :, m.spec.kept
            ],
        )
    # not eligible: a categorical, a transform, an interaction
    cat = data.assign(c=pd.Categorical(data["b"].astype(str)))
    assert design._numeric_columns(Formula("a + c"), cat) is None
    assert design._numeric_columns(Formula("np.log1p(b)"), data) is None
    assert design._numeric_columns(Formula("a:b"), data) is None
