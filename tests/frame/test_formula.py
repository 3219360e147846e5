"""The formula parser: R's syntax and precedence, lme4's random terms, R's terms() and deparse.

R's own answers for term expansion are in tests/reference/model_matrices.json
(tests/reference/make_model_matrices.R); the cases below are the ones whose
meaning is easy to state.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.frame import syntax
from mixedfx.frame.formula import parse, random_terms, variable_names
from mixedfx.frame.syntax import MAX_DEPTH, MAX_LENGTH, deparse, r_number
from mixedfx.frame.terms import expand

R = json.loads((Path(__file__).parents[1] / "reference" / "model_matrices.json").read_text())


def rhs(text: str):
    tree = syntax.parse(text)
    assert isinstance(tree, syntax.Unary) and tree.op == "~"
    return tree.operand


@pytest.mark.parametrize("formula", [f for f, v in R["cases"].items() if "labels" in v])
def test_term_labels_and_intercept_are_rs(formula: str) -> None:
    case = R["cases"][formula]
    terms = expand(rhs(formula))
    assert terms.labels() == case["labels"]
    assert terms.intercept == bool(case["intercept"])


@pytest.mark.parametrize(
    ("text", "labels", "intercept"),
    [
        ("b:a + a", ["a", "b:a"], True),  # variables in order of first appearance
        ("c + b:a + a:c", ["c", "b:a", "c:a"], True),
        ("(a + b + c)^3 - a:b:c", ["a", "b", "c", "a:b", "a:c", "b:c"], True),
        ("(a + b)/c", ["a", "b", "a:b:c"], True),
        ("a/(b + c)", ["a", "a:b", "a:c"], True),
        ("a/b/c", ["a", "a:b", "a:b:c"], True),
        ("(x + y) %in% g", ["x:g", "y:g"], True),
        ("x %in% (a + b)", ["x:a:b"], True),
        ("a*b - a", ["b", "a:b"], True),
        ("a - 1 + 1", ["a"], True),
        ("a - 0", ["a"], True),
        ("-1 + a", ["a"], False),
        ("0 + a", ["a"], False),
        ("a:b:a + b:a", ["a:b"], True),
        ("a + (b - a)", ["a", "b"], True),
        ("(Days + I(Days^2))^2", ["Days", "I(Days^2)", "Days:I(Days^2)"], True),
        ("1", [], True),
        ("Days + offset(Days) + offset(log(Days))", ["Days"], True),  # offsets are no terms
    ],
)
def test_terms_as_r(text: str, labels: list[str], intercept: bool) -> None:
    terms = expand(rhs(f"~ {text}"))
    assert terms.labels() == labels
    assert terms.intercept == intercept


def test_power_inside_I_is_arithmetic_and_outside_is_expansion() -> None:
    """``^`` in I() is a power (one variable); on a sum it is interaction expansion."""
    terms = expand(rhs("~ I(Days^2) + (a + b)^2"))
    assert terms.labels() == ["I(Days^2)", "a", "b", "a:b"]
    node = terms.variables[0]
    assert isinstance(node, syntax.Call) and isinstance(node.args[0], syntax.BinOp)
    assert node.args[0].op == "^"


A, B, C, G, X = (syntax.Name(n) for n in "abcgx")
ONE, TWO = syntax.Num(1.0), syntax.Num(2.0)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("-2^2", syntax.Unary("-", syntax.BinOp("^", TWO, TWO))),  # ^ before unary minus
        ("2^-1", syntax.BinOp("^", TWO, syntax.Unary("-", ONE))),
        ("a^b^c", syntax.BinOp("^", A, syntax.BinOp("^", B, C))),  # right to left
        ("-a:b", syntax.Chain((":",), (syntax.Unary("-", A), B))),  # unary minus before ':'
        ("a + b * c", syntax.Chain(("+",), (A, syntax.Chain(("*",), (B, C))))),
        ("a * b %in% c", syntax.Chain(("*",), (A, syntax.Chain(("%in%",), (B, C))))),
        ("a:b %in% c", syntax.Chain(("%in%",), (syntax.Chain((":",), (A, B)), C))),
        ("a + b | g", syntax.Chain(("|",), (syntax.Chain(("+",), (A, B)), G))),
        ("x > 2 + 1", syntax.BinOp(">", X, syntax.Chain(("+",), (TWO, ONE)))),
        ("a - b + c", syntax.Chain(("-", "+"), (A, B, C))),  # one flat chain
    ],
)
def test_precedence(text: str, tree: syntax.Node) -> None:
    assert syntax.parse(text) == tree


@pytest.mark.parametrize(
    ("text", "r_text"),
    [
        ("log(Days+1)", "log(Days + 1)"),
        ("exp(Days/10)", "exp(Days/10)"),
        ("I(x**2)", "I(x^2)"),
        ("I(x %% 3)", "I(x%%3)"),
        ("I(x %/% 3)", "I(x%/%3)"),
        ("I(x * 1e6)", "I(x * 1e+06)"),
        ("I(x / 1e5)", "I(x/1e+05)"),
        ("I(1e-4 * x)", "I(1e-04 * x)"),
        ("poly(x,2,raw=TRUE)", "poly(x, 2, raw = TRUE)"),
        ("x > 5", "x > 5"),
        ("`my col` + a %in% b", "`my col` + a %in% b"),
        ("I(-x)", "I(-x)"),
        ("poly(x, 2L)", "poly(x, 2L)"),
    ],
)
def test_deparse_is_rs(text: str, r_text: str) -> None:
    assert deparse(syntax.parse(text)) == r_text


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (2.0, "2"),
        (1e6, "1e+06"),
        (1e5, "1e+05"),
        (123456.0, "123456"),
        (1e-4, "1e-04"),
        (0.001, "0.001"),
        (0.1 + 0.2, "0.3"),
        (10000.0, "10000"),
        (2.5e-7, "2.5e-07"),
        (1.5, "1.5"),
    ],
)
def test_r_number(x: float, text: str) -> None:
    assert r_number(x) == text


@given(st.floats(min_value=1e-300, max_value=1e300))
def test_r_number_reads_back_to_15_digits(x: float) -> None:
    assert float(r_number(x)) == pytest.approx(x, rel=1e-14)


def test_deparse_round_trips() -> None:
    for formula in R["cases"]:
        if "error" in R["cases"][formula]:
            continue
        text = deparse(syntax.parse(formula))
        assert deparse(syntax.parse(text)) == text


# -- lme4's random terms ----------------------------------------------------------------------
def test_split_into_response_fixed_and_random() -> None:
    p = parse("log(Reaction) ~ Days + I(Days^2) + offset(Days*2) + (1 + Days || Subject)")
    assert p.response == "log(Reaction)"
    assert p.fixed == "Days + I(Days^2) + offset(Days * 2)"
    assert p.fixed_terms.labels() == ["Days", "I(Days^2)"]
    assert [deparse(o) for o in p.offsets] == ["Days * 2"]
    (term,) = p.random
    assert str(term) == "(1 + Days || Subject)" and not term.correlated


def test_nesting_and_interaction_of_grouping_factors() -> None:
    p = parse("y ~ x + (1 | a/b/c) + (x | d:e)")
    assert [t.factors for t in p.random] == [("a",), ("b", "a"), ("c", "b", "a"), ("d", "e")]
    assert [t.group for t in p.random] == ["a", "b:a", "c:b:a", "d:e"]


def test_double_bar_expands_as_lme4() -> None:
    """lme4's expandDoubleVerts: (1 | g) and (0 + t | g) per term t of the left side."""
    (term,) = parse("y ~ (x + f + x:f || g)").random
    parts = term.parts()
    assert [(p.intercept, p.labels()) for p in parts] == [
        (True, []),
        (False, ["x"]),
        (False, ["f"]),
        (False, ["x:f"]),
    ]
    (no_int,) = parse("y ~ (0 + x + z || g)").random
    assert [(p.intercept, p.labels()) for p in no_int.parts()] == [(False, ["x"]), (False, ["z"])]


def test_fixed_part_without_terms_is_the_intercept() -> None:
    assert parse("y ~ (1 | g)").fixed == "1"
    assert parse("y ~ (1 | g) - 1").fixed_terms.intercept is False
    assert parse("y ~ 0 + (1 | g)").fixed_terms.intercept is False


def test_cbind_response_is_two_columns() -> None:
    p = parse("cbind(s, n - s) ~ x + (1 | g)")
    assert p.two_column and p.response == "cbind(s, n - s)"
    assert not parse("y ~ x + (1 | g)").two_column


def test_re_form_terms() -> None:
    assert [str(t) for t in random_terms("(1 | Subject)")] == ["(1 | Subject)"]
    assert [str(t) for t in random_terms("~ (1 | a) + (x || b)")] == ["(1 | a)", "(x || b)"]


def test_variable_names() -> None:
    assert variable_names("log(y) ~ I(Day.s^2) + scale(x, center = FALSE) + (z | g)") == [
        "y",
        "Day.s",
        "x",
        "z",
        "g",
    ]


# -- what is refused --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y ~ x", "no random-effects term"),
        ("y + (1 | g)", "has no '~'"),
        ("~ x + (1 | g)", "no response"),
        ("y ~ x ~ z + (1 | g)", "more than one '~'"),
        ("y ~ x | g", "outside parentheses"),
        ("y ~ x - (1 | g)", "cannot be subtracted"),
        ("y ~ (1 | g | h)", "more than one bar"),
        ("y ~ (x | log(g))", "is not a column name"),
        ("y ~ x + (1 | a * b)", "is not a column name"),
        ("y ~ x + 2 + (1 | g)", r"only 1 \(intercept\) and 0"),
        ("y ~ (a + b)^1 + (1 | g)", "invalid power"),
        ("y ~ (a + b)^x + (1 | g)", "invalid power"),
        ("y ~ sin(x) + (1 | g)", "unknown function 'sin'"),
        ("y ~ np.log(x) + (1 | g)", "unknown function 'np.log'"),
        ("y ~ C(x) + (1 | g)", "unknown function 'C'"),
        ("y ~ x + (exp2(x) | g)", "unknown function 'exp2'"),
        ("sin(y) ~ x + (1 | g)", "unknown function 'sin'"),
        ("y ~ cbind(a, b) + (1 | g)", "unknown function 'cbind'"),
        ("cbind(a) ~ x + (1 | g)", "cbind\\(successes, failures\\)"),
        ("y ~ x + offset(z) + (offset(z) | g)", "cannot hold an offset"),
        ("y ~ x + (0 | g)", "has no columns"),
        ("y ~ x + I(x %% 2) %% 3 + (1 | g)", "inside I\\(\\)"),
        ("y ~ if + (1 | g)", "reserved word"),
    ],
)
def test_refused_formulas(formula: str, message: str) -> None:
    with pytest.raises(mfx.FormulaError, match=message):
        p = parse(formula)
        for t in p.random:
            t.parts()


def test_unknown_function_lists_the_supported_ones() -> None:
    with pytest.raises(mfx.FormulaError) as caught:
        parse("y ~ sqrtt(x) + (1 | g)")
    text = str(caught.value)
    for fn in ("log", "log1p", "exp", "sqrt", "abs", "log2", "log10", "scale", "poly", "factor"):
        assert fn in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("y ~ x[1] + (1 | g)", "subscripts"),
        ("y ~ x$a + (1 | g)", "attribute access"),
        ("y ~ x@a + (1 | g)", "attribute access"),
        ("y ~ {x} + (1 | g)", "braces"),
        ("y ~ 'x' + (1 | g)", "strings"),
        ('y ~ I(x + 0*__import__("os").system("true")) + (1 | g)', "cannot start with '_'"),
        ("y ~ __class__ + (1 | g)", "cannot start with '_'"),
        ("y ~ x <- 3 + (1 | g)", "assignment"),
        ("y ~ os::system + (1 | g)", "namespace"),
        ("y ~ x; y + (1 | g)", "';'"),
        ("y ~ !x + (1 | g)", "'!'"),
        ("y ~ x %o% z + (1 | g)", "%in%"),
        ("y ~ log(x).real + (1 | g)", "expected an operator"),
        ("y ~ x = 3 + (1 | g)", "expected an operator"),
        ("y ~ function(x) x + (1 | g)", "reserved word"),
        ("y ~ (lambda: 1)() + (1 | g)", "expected"),
    ],
)
def test_python_and_r_escapes_are_refused(text: str, message: str) -> None:
    with pytest.raises(mfx.FormulaError, match=message):
        parse(text)


def test_size_and_depth_are_bounded() -> None:
    deep = "y ~ " + "(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1) + " + (1 | g)"
    with pytest.raises(mfx.FormulaError, match="nested too deeply"):
        parse(deep)
    calls = "y ~ " + "log(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1) + " + (1 | g)"
    with pytest.raises(mfx.FormulaError, match="nested too deeply"):
        parse(calls)
    signs = "y ~ I(" + "-" * (MAX_DEPTH + 1) + "x) + (1 | g)"
    with pytest.raises(mfx.FormulaError, match="nested too deeply"):
        parse(signs)
    with pytest.raises(mfx.FormulaError, match="too long"):
        parse("y ~ " + "x + " * (MAX_LENGTH // 4) + "(1 | g)")


def test_wide_formulas_are_flat() -> None:
    """A thousand terms is a shallow tree (one chain), far from any recursion limit."""
    text = "y ~ " + " + ".join(f"x{k}" for k in range(1000)) + " + (1 | g)"
    p = parse(text)
    assert len(p.fixed_terms.terms) == 1000
