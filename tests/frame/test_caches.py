"""Caches of formula structures: keyed on the formula's text, never carrying one fit's data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.frame.formula import RandomTerm, _parts, parse
from mixedfx.frame.terms import expand
from mixedfx.frames import _dtypes

FORMULA = "y ~ x + (x | g)"


def frame(x: np.ndarray, g: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"y": rng.normal(size=len(x)), "x": x, "g": g})


@pytest.mark.filterwarnings("ignore::mixedfx.SingularFitWarning")
def test_same_formula_other_data_gives_its_own_design() -> None:
    numeric = frame(np.tile(np.arange(6.0), 10), np.repeat(list("abcdef"), 10))
    text = numeric.assign(x=numeric["x"].map(lambda v: "lvl" + str(int(v) % 3)))
    other_levels = numeric.assign(g=np.repeat(list("uvwxyz"), 10), x=numeric["x"] * 10.0)
    for first, second in [(numeric, text), (text, numeric), (numeric, other_levels)]:
        mfx.lmm(FORMULA, first)  # fills every cache with this formula, read on this frame
        again = mfx.lmm(FORMULA, second)
        _parts.cache_clear()  # a fit with nothing cached: what the second fit must equal
        fresh = mfx.lmm(FORMULA, second)
        assert again.spec.fixed_names == fresh.spec.fixed_names
        assert [t.columns for t in again.spec.terms] == [t.columns for t in fresh.spec.terms]
        assert list(again.ranef["g"].index) == list(fresh.ranef["g"].index)
        for a, b in [(again.beta, fresh.beta), (again.theta, fresh.theta)]:
            assert np.array_equal(a, b)
        assert np.array_equal(again.fitted_values, fresh.fitted_values)
    assert mfx.lmm(FORMULA, numeric).spec.fixed_names == ("(Intercept)", "x")
    assert mfx.lmm(FORMULA, text).spec.fixed_names == ("(Intercept)", "xlvl1", "xlvl2")
    assert list(mfx.lmm(FORMULA, other_levels).ranef["g"].index) == list("uvwxyz")


def test_cached_parts_equal_a_fresh_expansion() -> None:
    for text in ["(x | g)", "(x || g)", "(1 + x + z || g)", "(0 + f | g)"]:
        for term in parse(f"y ~ 1 + {text}").random:
            expanded = expand(term.lhs)
            assert term.parts() is term.parts()  # one immutable value per term
            if term.correlated:
                assert term.parts() == (expanded,)
    assert RandomTerm("x", ("g",), False).parts() != RandomTerm("x", ("g",), True).parts()


def test_dtypes_are_the_frames() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["u", "v"], "c": [1.5, None]})
    frames = [
        df,
        df.convert_dtypes(),
        df.astype({"b": "category"}),
        pd.concat([df, df], axis=1),  # repeated names
        df.iloc[:0],
        pd.DataFrame(index=range(3)),
    ]
    for f in frames:
        assert list(_dtypes(f)) == list(f.dtypes)


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (x | g)",
        "y ~ log(x + 1) * f + I(x^2) + poly(z, 2) + offset(w) + (1 + x || g)",
        "y ~ 0 + f:x + scale(x) + factor(k) + `odd name` + (0 + f | g) + (1 | a/b)",
    ],
)
def test_cached_terms_columns_and_keys_equal_a_fresh_reading(formula: str) -> None:
    """Terms.columns and Terms.keys, kept on the (cached) terms, are what the variables give."""
    from mixedfx.frame import syntax
    from mixedfx.frame.modelmatrix import MatrixSpec

    parsed = parse(formula)
    for terms in [parsed.fixed_terms, *(p for t in parsed.random for p in t.parts())]:
        fresh = [c for v in terms.variables for c in syntax.names(v)]
        assert terms.columns == tuple(dict.fromkeys(fresh))
        assert terms.keys == tuple(syntax.deparse(v) for v in terms.variables)
        assert parse(formula) is parsed and terms.columns is terms.columns
        assert MatrixSpec.build(terms, {}).data_columns() == list(terms.columns)
    assert syntax.deparse_name("odd name") == "`odd name`" == syntax.deparse_name("odd name")
