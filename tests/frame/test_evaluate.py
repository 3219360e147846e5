"""The whitelist evaluator: R's arithmetic and functions, stateful transforms learned once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.frame import syntax
from mixedfx.frame import transforms as tf
from mixedfx.frame.evaluate import FUNCTIONS, PENDING, Coded, Evaluator, Site, width

RNG = np.random.default_rng(3)
DATA = pd.DataFrame(
    {
        "x": RNG.uniform(1, 10, 40),
        "z": RNG.normal(size=40),
        "k": RNG.integers(0, 4, 40),
        "s": RNG.choice(["lo", "mid", "hi"], 40),
        "b": RNG.random(40) > 0.5,
    }
)


def learn(text: str, data: pd.DataFrame = DATA) -> dict[str, tf.State]:
    """The states of the variable ``text``, learned in rounds as the design does."""
    states: dict[str, tf.State] = {}
    for _ in range(4):
        record: dict[str, Site] = {}
        Evaluator(data, states, record).variable(syntax.parse(text))
        if not record:
            return states
        states |= {k: s.finish(k) for k, s in record.items()}
    raise AssertionError("not learned")


def value(text: str, data: pd.DataFrame = DATA, states: dict | None = None):
    node = syntax.parse(text)
    return Evaluator(data, learn(text) if states is None else states).variable(node)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x + z * 2", DATA.x + DATA.z * 2),
        ("I(x^2)", DATA.x**2),
        ("I(x**2)", DATA.x**2),
        ("I(-x^2)", -(DATA.x**2)),  # ^ binds tighter than the sign
        ("I(2^-1 * x)", 0.5 * DATA.x),
        ("log(x + 1)", np.log(DATA.x + 1)),
        ("log(x, 2)", np.log2(DATA.x)),
        ("log(x, base = 10)", np.log10(DATA.x)),
        ("log1p(x)", np.log1p(DATA.x)),
        ("log2(x) + log10(x)", np.log2(DATA.x) + np.log10(DATA.x)),
        ("exp(z/10)", np.exp(DATA.z / 10)),
        ("sqrt(x)", np.sqrt(DATA.x)),
        ("abs(z - 0.5)", np.abs(DATA.z - 0.5)),
        ("I(x %% 3)", np.mod(DATA.x, 3)),  # R's %%: the sign of the divisor
        ("I(z %% -1)", np.mod(DATA.z, -1)),
        ("I(x %/% 3)", np.floor_divide(DATA.x, 3)),
        ("I((x > 5) + 1)", (DATA.x > 5) + 1.0),  # a logical is 1/0 in arithmetic
        ("I(b * x)", DATA.b * DATA.x),  # a boolean column too
        ("I(TRUE + x)", DATA.x + 1),
        ("offset(x)", DATA.x),
    ],
)
def test_arithmetic_and_functions(text: str, expected: pd.Series) -> None:
    np.testing.assert_allclose(value(text), np.asarray(expected, dtype=float), rtol=1e-15)


def test_domain_errors_give_nan_without_warnings() -> None:
    with np.errstate(all="raise"):  # the evaluator sets its own, thread-local, error state
        out = value("log(z)")
    assert np.isnan(out[DATA.z < 0]).all()


def test_scale_is_learned_on_training_rows_and_reused() -> None:
    states = learn("scale(x)")
    s = states["scale(x)"]
    assert s.center == pytest.approx(DATA.x.mean(), rel=1e-14)
    assert s.scale == pytest.approx(DATA.x.std(ddof=1), rel=1e-14)
    new = pd.DataFrame({"x": [0.0, 5.0, 100.0]})
    np.testing.assert_allclose(value("scale(x)", new, states), (new.x - s.center) / s.scale)


@pytest.mark.parametrize(
    ("text", "center", "scale"),
    [
        ("scale(x, scale = FALSE)", DATA.x.mean(), None),
        ("scale(x, center = FALSE)", None, np.sqrt((DATA.x**2).sum() / 39)),  # R's root mean square
        ("scale(x, center = 2, scale = FALSE)", 2.0, None),
        ("scale(x, 2)", 2.0, np.sqrt(((DATA.x - 2) ** 2).sum() / 39)),
        ("scale(x, FALSE, 3)", None, 3.0),
        ("scale(x, center = F, scale = T)", None, np.sqrt((DATA.x**2).sum() / 39)),
    ],
)
def test_scale_arguments_as_r(text: str, center: float | None, scale: float | None) -> None:
    s = learn(text)[syntax.deparse(syntax.parse(text))]
    assert s.center == (None if center is None else pytest.approx(center, rel=1e-14))
    assert s.scale == (None if scale is None else pytest.approx(scale, rel=1e-14))


def test_poly_is_orthonormal_on_training_rows_and_reused_on_new_rows() -> None:
    states = learn("poly(x, 3)")
    Z = value("poly(x, 3)", DATA, states)
    assert Z.shape == (40, 3)
    np.testing.assert_allclose(Z.T @ Z, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(Z.sum(axis=0), 0.0, atol=1e-12)
    rows = DATA.iloc[[3, 17, 29]]
    np.testing.assert_allclose(value("poly(x, 3)", rows, states), Z[[3, 17, 29]], rtol=1e-13)
    raw = value("poly(x, 2, raw = TRUE)")
    np.testing.assert_allclose(raw, np.column_stack([DATA.x, DATA.x**2]), rtol=1e-15)
    assert width(syntax.parse("poly(x, 3)")) == 3 and width(syntax.parse("I(poly(x, 2) * 2)")) == 2


def test_nested_stateful_transforms_are_learned_in_rounds() -> None:
    states = learn("poly(scale(x), 2)")
    assert set(states) == {"scale(x)", "poly(scale(x), 2)"}
    Z = value("poly(scale(x), 2)", DATA, states)
    np.testing.assert_allclose(Z.T @ Z, np.eye(2), atol=1e-12)


def test_categorical_variables_and_their_levels() -> None:
    f = value("factor(k)")
    assert isinstance(f, Coded)
    assert f.levels.names == ("0", "1", "2", "3")  # R's factor(): sorted values
    np.testing.assert_array_equal(f.codes, DATA.k)
    s = value("s")
    assert isinstance(s, Coded) and s.levels.names == ("hi", "lo", "mid")
    b = value("b")
    assert isinstance(b, Coded) and b.levels.names == ("FALSE", "TRUE")
    cmp = value("I(x > 5)")
    assert isinstance(cmp, Coded) and cmp.levels.names == ("FALSE", "TRUE")
    np.testing.assert_array_equal(cmp.codes, (DATA.x > 5).astype(int))
    half = value("factor(x > 5)")
    assert isinstance(half, Coded)


def test_comparisons_of_missing_numbers_are_missing() -> None:
    """NaN and inf are missing (the rule of mixedfx.frame.na): so is a comparison of them."""
    states = learn("I(x > 5)")
    new = pd.DataFrame({"x": [1.0, 7.0, np.nan, np.inf, -np.inf]})
    coded = value("I(x > 5)", new, states)
    assert isinstance(coded, Coded)
    np.testing.assert_array_equal(coded.codes, [0, 1, -1, -1, -1])
    np.testing.assert_array_equal(
        value("I((x > 5) + 0)", new, {}), [0.0, 1.0, np.nan, np.nan, np.nan]
    )


def test_factor_levels_match_across_types() -> None:
    states = learn("factor(k)")
    as_text = pd.DataFrame({"k": DATA.k.astype(str)})
    coded = value("factor(k)", as_text, states)
    np.testing.assert_array_equal(coded.codes, DATA.k)


def test_factor_labels_are_exact_within_a_frame() -> None:
    """The label policy of grouping factors (frame.levels): nothing stripped or parsed."""
    data = pd.DataFrame({"s": pd.Series(["01", "1", 1, " 1", "1e0", "1"], dtype=object)})
    with pytest.warns(mfx.MixedFXWarning, match=r"'s' holds numbers .* e\.g\. 1 and '1'"):
        states = learn("s", data)
    assert states["s"].labels == (" 1", "01", "1", 1, "1e0")  # sorted as text, stably
    assert states["s"].names == (" 1", "01", "'1'", "1", "1e0")  # R would print "1" twice
    coded = value("s", data, states)
    assert coded.codes[1] == coded.codes[5] != coded.codes[2]
    assert len(set(coded.codes.tolist())) == 5


def test_factor_labels_match_by_value_across_frames() -> None:
    states = learn("s", pd.DataFrame({"s": ["7", "07", "8", "2.5"]}))
    coded = value("s", pd.DataFrame({"s": [8, 8.0, np.int64(8), 2.5]}), states)
    assert coded.levels.labels[coded.codes[0]] == "8"
    assert len(set(coded.codes[:3].tolist())) == 1 and coded.levels.labels[coded.codes[3]] == "2.5"
    with pytest.raises(mfx.DataError, match=r"label 7 of 's' matches.*\['07', '7'\]"):
        value("s", pd.DataFrame({"s": [7]}), states)
    with pytest.raises(mfx.DataError, match=r"level\(s\) \['8.0'\]"):
        value("s", pd.DataFrame({"s": ["8.0"]}), states)  # another spelling: another level


def test_unseen_level_is_an_error_naming_it() -> None:
    states = learn("s")
    with pytest.raises(mfx.DataError, match=r"variable 's' has level\(s\) \['top'\]"):
        value("s", pd.DataFrame({"s": ["lo", "top"]}), states)
    missing = value("s", pd.DataFrame({"s": ["lo", None]}), states)
    assert missing.codes.tolist() == [1, -1]  # missing: NaN rows, not an error


def test_types_that_differ_from_training_are_errors() -> None:
    states = learn("x")
    with pytest.raises(mfx.DataError, match="numeric in training but is categorical"):
        value("x", pd.DataFrame({"x": ["1", "2"]}), states)
    with pytest.raises(mfx.DataError, match="needs numbers, but column 's'"):
        value("log(s)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sin(x)", "unknown function 'sin'"),
        ("I(x:z)", "sequence operator"),
        ("I(factor(k) + 1)", "gives categories"),
        ("log(x, 2, 3)", "optional base"),
        ("scale(x, wrong = 1)", "unexpected argument 'wrong'"),
        ("scale(x, center = z)", "must be a number or TRUE/FALSE"),
        ("poly(x, 0)", "degree must be 1"),
        ("poly(x, 2.5)", "degree must be 1"),
        ("poly(x, 99)", "degree must be 1"),
        ("scale(poly(x, 2))", "one column"),
        ("cbind(x, z)", "only for a two-column"),
    ],
)
def test_refused_expressions(text: str, message: str) -> None:
    with pytest.raises(mfx.FormulaError, match=message):
        value(text)


def test_poly_degree_needs_distinct_values() -> None:
    few = pd.DataFrame({"x": [1.0, 2.0, 1.0, 2.0, 1.0]})
    with pytest.raises(mfx.DataError, match="less than the number of distinct values"):
        learn("poly(x, 2)", few)


def test_missing_state_outside_learning_is_an_error() -> None:
    with pytest.raises(mfx.DataError, match="no learned state for 'scale\\(x\\)'"):
        Evaluator(DATA, {}).numeric(syntax.parse("scale(x)"))


def test_pending_propagates_while_learning() -> None:
    record: dict[str, Site] = {}
    ev = Evaluator(DATA, {}, record)
    assert ev.numeric(syntax.parse("I(scale(x) + scale(z))")) is PENDING
    assert set(record) == {"scale(x)", "scale(z)"} and not ev.blocked
    ev = Evaluator(DATA, {}, {})
    assert ev.numeric(syntax.parse("poly(scale(x), 2)")) is PENDING and ev.blocked


def test_supported_functions() -> None:
    assert set(FUNCTIONS) == {
        "log", "log1p", "log2", "log10", "exp", "sqrt", "abs",
        "I", "scale", "poly", "factor", "as.factor", "offset",
    }  # fmt: skip


# -- partial statistics combine exactly ---------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=60),
    st.integers(1, 59),
    st.floats(-1e4, 1e4),
)
@example([1.2417784724109424] * 3, 1, 5461.0)  # equal values: the sums are rounding alone
def test_moments_of_split_rows_equal_moments_of_all(
    xs: list[float], cut: int, shift: float
) -> None:
    x = np.asarray(xs) + shift
    cut = min(cut, len(x) - 1)
    whole = tf.Moments.of(x, 6)
    split = tf.Moments.of(x[:cut], 6).then(tf.Moments.of(x[cut:], 6))
    assert split.n == whole.n
    assert split.mean == pytest.approx(whole.mean, rel=1e-12, abs=1e-9)
    scale = np.abs(x - whole.mean).max() or 1.0
    # each mean is known to a few ulps of |x|, so each deviation x - mean to delta: when the
    # spread is that small (x constant up to rounding), the power sums are rounding noise of
    # order n p (scale + delta)^(p-1) delta; for any real spread this term is ~1e-13 of the first
    delta = 8 * np.finfo(float).eps * np.abs(x).max()
    for p in range(2, 7):
        noise = len(x) * p * (scale + delta) ** (p - 1) * delta
        tol = 1e-9 * len(x) * scale**p + noise
        assert split.sums[p] == pytest.approx(whole.sums[p], rel=1e-9, abs=tol)


def test_poly_from_split_moments_equals_poly_from_all() -> None:
    x = DATA.x.to_numpy()
    whole = tf.learn_poly("p", tf.Moments.of(x, 8), 4)
    split = tf.learn_poly("p", tf.Moments.of(x[:13], 8).then(tf.Moments.of(x[13:], 8)), 4)
    np.testing.assert_allclose(split.apply(x), whole.apply(x), rtol=1e-11, atol=1e-12)


def test_distinct_values_combine_in_order() -> None:
    a = tf.Distinct.of(pd.Series(["b", "a", None, "b"]))
    b = tf.Distinct.of(pd.Series(["c", "a"]))
    assert a.then(b).values.tolist() == ["b", "a", "c"]
    assert tf.learn_levels("s", a.then(b)).names == ("a", "b", "c")


def _dated() -> pd.DataFrame:
    data = mfx.datasets.load("sleepstudy")
    return data.assign(
        d=pd.Timestamp("2020-01-01") + pd.to_timedelta(data["Days"], unit="D"),
        span=pd.to_timedelta(data["Days"], unit="D"),
    )


@pytest.mark.parametrize(
    ("formula", "column"),
    [
        ("Reaction ~ d + (1 | Subject)", "d"),  # R: a trend in days or seconds, not levels
        ("Reaction ~ span + (1 | Subject)", "span"),
        ("Reaction ~ Days + (d | Subject)", "d"),
        ("Reaction ~ Days:d + (1 | Subject)", "d"),
        ("Reaction ~ dz + (1 | Subject)", "dz"),  # with a time zone: pandas' extension type
    ],
)
def test_dates_and_durations_as_predictors_are_refused(formula: str, column: str) -> None:
    data = _dated().assign(dz=lambda df: df["d"].dt.tz_localize("UTC"))
    with pytest.raises(mfx.DataError, match=rf"column '{column}' holds dates or durations"):
        mfx.lmm(formula, data)


def test_dates_as_levels_or_groups_are_labels() -> None:
    data = _dated()
    as_text = data.assign(d=data["d"].dt.strftime("%Y-%m-%d"))
    for formula in ("Reaction ~ factor(d) + (1 | Subject)", "Reaction ~ 1 + (1 | d)"):
        dated, text = mfx.lmm(formula, data), mfx.lmm(formula, as_text)
        assert dated.objective == pytest.approx(text.objective, rel=1e-12)
        assert len(dated.fixef) == len(text.fixef)


NUMPY_DTYPES = [np.dtype(c) for c in "?bhilqBHILQefdgFDGOSUV"] + [
    np.dtype(f"{kind}8[{unit}]") for kind in "Mm" for unit in ("D", "s", "ns")
]


@pytest.mark.parametrize("dtype", NUMPY_DTYPES, ids=str)
def test_time_dtypes_by_kind_are_pandas_answers(dtype: np.dtype) -> None:
    """_refuse_time answers NumPy dtypes by their kind, as pandas' two checks would."""
    from mixedfx.frame.evaluate import _refuse_time

    timed = pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
    if timed:
        with pytest.raises(mfx.DataError, match="holds dates or durations"):
            _refuse_time("c", dtype)
    else:
        _refuse_time("c", dtype)


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("x", DATA["x"]),  # float64
        ("k", DATA["k"]),  # int64
        ("k", DATA["k"].astype("Int64")),  # a nullable integer
        ("k", DATA["k"].astype("float32")),
        ("x", DATA["x"].astype("double[pyarrow]")),
        ("poly(x, 2)", DATA["x"]),  # (n, 2)
        ("I(x > 5) * 1", DATA["x"]),
        ("I(2)", DATA["x"]),  # a constant: broadcast to every row
        ("I(2 + 0 * x)", DATA["x"]),
    ],
)
def test_a_numeric_variable_is_a_new_float_array_per_row(text: str, column: pd.Series) -> None:
    """A value per row (taken as it is) and a constant (broadcast) give the same kind of array."""
    name = "k" if text == "k" else "x"
    data = pd.DataFrame({name: column})
    states = learn(text, data)
    got = Evaluator(data, states).variable(syntax.parse(text))
    node = syntax.parse(text)
    x = Evaluator(data, states).numeric(node)
    expected = np.broadcast_to(np.asarray(x, dtype=float), (len(data), *np.shape(x)[1:])).copy()
    assert got.dtype == np.float64 and got.flags.c_contiguous and got.flags.writeable
    assert got.shape == expected.shape
    assert np.array_equal(got, expected, equal_nan=True)
    assert not np.shares_memory(got, x) and not np.shares_memory(got, column.to_numpy())
