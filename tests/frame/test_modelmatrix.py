"""Model matrices: R's column names, order and values (tests/reference/make_model_matrices.R).

R's rules for coding factors (contrasts when the term without the factor is
in the model, indicators otherwise; the first factor without an intercept;
polynomial contrasts for ordered factors), interactions with the first
variable varying fastest, and matrix variables (``poly``) — for 66 formulas
on one small data set, names exactly and values to 1e-12.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.frame import syntax
from mixedfx.frame.evaluate import Evaluator
from mixedfx.frame.modelmatrix import MatrixSpec, contr_poly, contr_poly_names
from mixedfx.frame.terms import expand

R = json.loads((Path(__file__).parents[1] / "reference" / "model_matrices.json").read_text())
CASES = [f for f, v in R["cases"].items() if "columns" in v]


def data() -> pd.DataFrame:
    df = pd.DataFrame(R["data"])
    df["f"] = pd.Categorical(df["f"], categories=R["levels"]["f"])
    df["o"] = pd.Categorical(df["o"], categories=R["levels"]["o"], ordered=True)
    return df


def spec(formula: str, df: pd.DataFrame) -> MatrixSpec:
    """The learned model matrix of a one-sided formula (states learned in rounds)."""
    terms = expand(syntax.parse(formula).operand)
    states: dict = {}
    for _ in range(4):
        record: dict = {}
        ev = Evaluator(df, states, record)
        for v in terms.variables:
            ev.variable(v)
        states |= {k: site.finish(k) for k, site in record.items()}
    return MatrixSpec.build(terms, states)


@pytest.mark.parametrize("formula", CASES)
def test_names_and_values_are_rs(formula: str) -> None:
    df = data()
    s = spec(formula, df)
    assert list(s.names) == R["cases"][formula]["columns"]
    expected = np.array(R["cases"][formula]["matrix"], dtype=float)
    np.testing.assert_allclose(
        s.matrix(df), expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max()
    )


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_contr_poly_is_orthonormal_and_named_as_r(k: int) -> None:
    C = contr_poly(k)
    np.testing.assert_allclose(C.T @ C, np.eye(k - 1), atol=1e-14)
    np.testing.assert_allclose(C.sum(axis=0), 0.0, atol=1e-14)
    assert (np.diff(C[:, 0]) > 0).all()  # .L increases
    assert contr_poly_names(k) == [".L", ".Q", ".C", "^4", "^5"][: k - 1]


def test_spec_is_rebuilt_from_terms_and_states_alone() -> None:
    """No data is needed to lay out the columns again (as a loaded model does)."""
    df = data()
    s = spec("~ f * x + poly(x, 2) + scale(z) + factor(k)", df)
    again = MatrixSpec.build(s.terms, dict(s.states))
    assert again.names == s.names
    np.testing.assert_array_equal(again.matrix(df), s.matrix(df))


def test_missing_values_give_nan_rows_where_they_enter() -> None:
    df = data()
    s = spec("~ f + x", df)
    new = df.head(4).astype({"f": object})
    new.loc[1, "f"] = None
    new.loc[2, "x"] = np.nan
    X = s.matrix(new)
    assert np.isnan(X[1, 1:3]).all() and np.isfinite(X[1, [0, 3]]).all()
    assert np.isnan(X[2, 3]) and np.isfinite(X[2, :3]).all()


def test_a_factor_with_one_level_is_refused() -> None:
    df = data().assign(one="a")
    with pytest.raises(mfx.DataError, match="'one' has only one level"):
        spec("~ x + one", df)


def test_term_columns_of_an_unknown_variable_are_its_name() -> None:
    terms = expand(syntax.parse("~ x + w").operand)
    assert MatrixSpec.build(terms, {}).names == ("(Intercept)", "x", "w")
