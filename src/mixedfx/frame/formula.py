"""lme4's formula language: a formula split into response, fixed part and random terms.

``y ~ x + (x | g) + (1 | a/b)`` becomes the response ``y``, the fixed-effects
terms of ``x`` (:mod:`.terms`, R's ``terms()``) and the random-effects terms
``(x | g)``, ``(1 | a)`` and ``(1 | b:a)``. The text is read by the parser
of :mod:`.syntax` (never by Python), and every function it calls must be
one the evaluator knows (:data:`~mixedfx.frame.evaluate.FUNCTIONS`).

Random terms, as in lme4:

* ``(expr | g)``: correlated random effects for the columns of ``expr``
  (a right-hand side: ``1 + Days``, ``log(Days + 1)``, ``0 + factor(k)``);
* ``(expr || g)``: uncorrelated, lme4's ``expandDoubleVerts``: ``(1 | g)``
  and ``(0 + t | g)`` for each term ``t`` of ``expr``, so a factor ``f``
  in ``(f || g)`` keeps a full block for its levels;
* ``(0 + x | g)`` or ``(x - 1 | g)``: no random intercept;
* ``(1 | a/b)`` = ``(1 | a) + (1 | b:a)`` (lme4's naming), and deeper nests;
* ``(1 | a:b)``: the interaction of two factors as one grouping factor.

The response may be an expression (``log(y)``, ``sqrt(y)``, ``I(y/100)``),
or ``cbind(successes, failures)`` for a binomial GLMM. ``offset(expr)``
terms are summed into the linear predictor.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from ..errors import FormulaError
from . import syntax
from .evaluate import FUNCTIONS, unknown_function
from .syntax import BinOp, Call, Chain, Name, Node, Num, Paren, Unary, deparse
from .terms import Terms, expand


def _check_functions(node: Node, allow_cbind: bool = False) -> None:
    """Every call in ``node`` is a function the evaluator knows."""
    for n in syntax.walk(node):
        if isinstance(n, Call) and n.fn not in FUNCTIONS:
            if not (allow_cbind and n is node and n.fn == "cbind"):
                raise unknown_function(n.fn, n)


@functools.lru_cache(maxsize=1024)
def _rhs(text: str) -> Node:
    """The tree of a right-hand side given as text (a term's ``expr``)."""
    node = syntax.parse(text)
    if isinstance(node, BinOp | Unary) and node.op == "~":
        raise FormulaError(f"{text!r} must be a right-hand side, without '~'")
    _check_functions(node)
    return node


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)``.

    Attributes
    ----------
    expr : str
        R's text of the left-hand side of the bar, e.g. ``"1 + Days"``.
    factors : tuple of str
        The grouping columns; more than one for an interaction ``a:b``.
    correlated : bool
        False for ``||``: lme4's expansion into one term per term of ``expr``.
    """

    expr: str
    factors: tuple[str, ...]
    correlated: bool = True

    @property
    def group(self) -> str:
        """The grouping factor's name as lme4 prints it, e.g. ``"a:b"``."""
        return ":".join(self.factors)

    def __str__(self) -> str:
        bar = "|" if self.correlated else "||"
        return f"({self.expr} {bar} {self.group})"

    @property
    def lhs(self) -> Node:
        return _rhs(self.expr)

    def parts(self) -> tuple[Terms, ...]:
        """The term's model matrices: one, or for ``||`` lme4's ``(1 | g)`` and ``(0 + t | g)``.

        Raises
        ------
        FormulaError
            For a term without columns, or with an offset.
        """
        return _parts(self)


@functools.lru_cache(maxsize=1024)
def _parts(term: RandomTerm) -> tuple[Terms, ...]:
    """:meth:`RandomTerm.parts`, cached: the result is immutable and read by every fit."""
    terms = expand(term.lhs)
    if terms.offsets:
        raise FormulaError(f"random term {term} cannot hold an offset")
    if not terms.terms and not terms.intercept:
        raise FormulaError(f"random term {term} has no columns")
    if term.correlated:
        return (terms,)
    singles = tuple(terms.single(k) for k in range(len(terms.terms)))
    return ((Terms(True, (), ()),) if terms.intercept else ()) + singles


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part and random terms.

    Attributes
    ----------
    response : str
        The response column's name, or R's text of the response expression
        (``"log(Reaction)"``, ``"cbind(s, f)"``).
    fixed : str
        R's text of the fixed part (``"1"`` when it has no terms).
    random : tuple of RandomTerm
    lhs : Node
        The response's tree.
    fixed_terms : Terms
        The fixed part's terms, intercept and offsets.
    """

    response: str
    fixed: str
    random: tuple[RandomTerm, ...]
    lhs: Node = field(compare=False, repr=False)
    fixed_terms: Terms = field(compare=False, repr=False)

    @property
    def two_column(self) -> bool:
        """A ``cbind(successes, failures)`` response."""
        return isinstance(self.lhs, Call) and self.lhs.fn == "cbind"

    @property
    def offsets(self) -> tuple[Node, ...]:
        return self.fixed_terms.offsets


def _unwrap(node: Node) -> Node:
    while isinstance(node, Paren):
        node = node.inner
    return node


def _summands(node: Node) -> list[tuple[str, Node]]:
    """The top-level ``+``/``-`` pieces of a right-hand side, with their signs."""
    if isinstance(node, Chain) and node.ops[0] in "+-":
        return [("+", node.items[0]), *zip(node.ops, node.items[1:], strict=True)]
    return [("+", node)]


def _has_bar(node: Node) -> bool:
    return any(isinstance(n, Chain) and n.ops[0] in ("|", "||") for n in syntax.walk(node))


def _group_names(node: Node, term: str) -> list[tuple[str, ...]]:
    """Expand the grouping side of a bar: ``a/b`` -> ``[(a,), (b, a)]``, as lme4 does."""
    node = _unwrap(node)
    nested = isinstance(node, Chain) and set(node.ops) == {"/"}
    groups: list[tuple[str, ...]] = []
    prefix: tuple[str, ...] = ()
    for part in node.items if isinstance(node, Chain) and nested else (node,):
        part = _unwrap(part)
        raw = part.items if isinstance(part, Chain) and set(part.ops) == {":"} else (part,)
        factors = tuple(f.id for f in raw if isinstance(f, Name))
        if len(factors) != len(raw):
            raise FormulaError(
                f"grouping factor {deparse(part)!r} in random term {term} is not a column name; "
                "write (x | group) with group a column of the data"
            )
        prefix = factors + prefix  # lme4 names b nested in a "b:a"
        groups.append(prefix)
    return groups


def _random_terms(bar: Chain, text: str) -> list[RandomTerm]:
    term = f"({deparse(bar)})"
    if len(bar.ops) != 1:
        raise FormulaError(f"random term {term} has more than one bar; write (x | group)")
    lhs, rhs = bar.items
    _check_functions(lhs)
    if _has_bar(lhs):
        raise FormulaError(f"random term {term} has a bar inside its left side")
    expr = deparse(lhs)
    return [RandomTerm(expr, g, bar.ops[0] == "|") for g in _group_names(rhs, term)]


def split_rhs(node: Node, text: str) -> tuple[Node, list[RandomTerm]]:
    """The fixed part (a tree) and the random terms of a right-hand side."""
    fixed: list[tuple[str, Node]] = []
    random: list[RandomTerm] = []
    for sign, piece in _summands(node):
        inner = _unwrap(piece)
        if isinstance(piece, Paren) and isinstance(inner, Chain) and inner.ops[0] in ("|", "||"):
            if sign == "-":
                raise FormulaError(f"random term ({deparse(inner)}) cannot be subtracted")
            random.extend(_random_terms(inner, text))
        elif _has_bar(piece):
            raise FormulaError(
                f"term {deparse(piece)!r} uses '|' outside parentheses; write random terms "
                "as (x | g), added to the rest of the formula"
            )
        else:
            fixed.append((sign, piece))
    if not fixed:
        return Num(1.0), random
    first_sign, first = fixed[0]
    items = [Unary("-", first) if first_sign == "-" else first, *(p for _, p in fixed[1:])]
    ops = tuple(s for s, _ in fixed[1:])
    return (Chain(ops, tuple(items)) if ops else items[0]), random


def parse(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part and random terms (cached).

    Parameters
    ----------
    formula : str
        For example ``"Reaction ~ Days + (Days | Subject)"``.

    Returns
    -------
    ParsedFormula

    Raises
    ------
    FormulaError
        For text that is not a formula (see :mod:`.syntax`), a formula
        without ``~``, response or random term, a malformed bar, or a
        function that is not supported.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string such as 'y ~ x + (1 | g)', got {formula!r}")
    return _parse(formula)


@functools.lru_cache(maxsize=256)
def _parse(formula: str) -> ParsedFormula:
    """:func:`parse` of a string (the result is immutable, so it is cached)."""
    if "~" not in formula:
        raise FormulaError(f"formula {formula!r} has no '~'; write 'y ~ x + (1 | g)'")
    tree = syntax.parse(formula)
    if not isinstance(tree, BinOp) or tree.op != "~":
        if isinstance(tree, Unary) and tree.op == "~":
            raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
        raise FormulaError(f"formula {formula!r}: '~' must separate the response and the terms")
    lhs = tree.left
    _check_functions(lhs, allow_cbind=True)
    if isinstance(lhs, Call) and lhs.fn == "cbind" and (len(lhs.args) != 2 or lhs.kwargs):
        raise FormulaError(f"{deparse(lhs)}: write cbind(successes, failures)")
    if _has_bar(lhs):
        raise FormulaError(f"the response of {formula!r} cannot hold a bar")
    fixed, random = split_rhs(tree.right, formula)
    if not random:
        raise FormulaError(
            f"formula {formula!r} has no random-effects term such as (1 | group); "
            "for a model without random effects use ordinary least squares"
        )
    _check_functions(fixed)
    terms = expand(fixed)
    response = lhs.id if isinstance(lhs, Name) else deparse(lhs)
    return ParsedFormula(response, deparse(fixed), tuple(random), lhs, terms)


def random_terms(text: str) -> tuple[RandomTerm, ...]:
    """The random terms of ``text``, such as ``"(1 | Subject)"`` or ``"~ (1 | a) + (x | b)"``."""
    tree = syntax.parse(text)
    if isinstance(tree, Unary) and tree.op == "~":
        tree = tree.operand
    _, random = split_rhs(tree, text)
    if not random:
        raise FormulaError(f"{text!r} has no random term such as (1 | g)")
    return tuple(random)


def variable_names(text: str) -> list[str]:
    """The data columns a formula (or an expression) reads, in order, without repeats."""
    return list(_variable_names(text))


@functools.lru_cache(maxsize=256)
def _variable_names(text: str) -> tuple[str, ...]:
    """:func:`variable_names`, cached (formulas are read again by every fit)."""
    return tuple(syntax.names(syntax.parse(text)))
