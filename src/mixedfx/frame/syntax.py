"""R's formula syntax: a tokenizer and a recursive-descent parser to a small AST, and R's deparse.

The grammar is R's, restricted to what a model formula needs, with R's
operator precedence (lowest first)::

    ~                    formula
    | ||                 random-effects bars (left to right)
    == != < > <= >=      comparison
    + -                  (binary)
    * /
    %in% %% %/%
    :
    + -                  (unary)
    ^ (or **)            right to left; the exponent may carry a unary sign

and primaries: names (``Days``, ``Day.s``, backticked ```my col```),
numbers (``2``, ``1e6``, ``0.5``, ``2L``), ``TRUE``/``FALSE``, a
parenthesised expression and a function call ``name(args, key = value)``.

Anything else is a :class:`~mixedfx.errors.FormulaError`: strings,
subscripts ``[ ]``, ``$``/``@`` (attribute access), braces, ``;``,
assignment, ``::``, ``!``, ``&``, and R's reserved words. A name cannot
start with ``_`` (quote such a column with backticks), so no Python dunder
name can be written. The input is bounded (:data:`MAX_LENGTH` characters,
:data:`MAX_DEPTH` levels of nesting), so parsing and the recursive
walks over the tree use a bounded stack.

Left-associative operators of one precedence level form one flat
:class:`Chain` node (``a + b - c``), so a formula with many terms is a
shallow tree.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import FormulaError

MAX_LENGTH = 100_000  # characters of a formula
MAX_DEPTH = 40  # nested parentheses, calls, signs and powers

RESERVED = frozenset(
    "if else repeat while function for next break NULL Inf NaN NA NA_integer_ "
    "NA_real_ NA_character_ NA_complex_ in".split()
)


# -- the tree ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Name:
    """A variable (a data column)."""

    id: str


@dataclass(frozen=True)
class Num:
    """A numeric literal; ``integer`` for R's ``2L``."""

    value: float
    integer: bool = False


@dataclass(frozen=True)
class Bool:
    """``TRUE`` or ``FALSE``."""

    value: bool


@dataclass(frozen=True)
class Call:
    """A function call ``fn(args..., name = value...)``."""

    fn: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, Node], ...] = ()


@dataclass(frozen=True)
class Chain:
    """Left-associative operators of one level: ``items[0] ops[0] items[1] ...``."""

    ops: tuple[str, ...]
    items: tuple[Node, ...]


@dataclass(frozen=True)
class BinOp:
    """``^``, a comparison or ``~``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Unary:
    """A sign, ``-x`` or ``+x``, or a one-sided formula ``~x``."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Paren:
    """A parenthesised expression (kept: ``(a + b)^2`` and deparse need it)."""

    inner: Node


Node = Name | Num | Bool | Call | Chain | BinOp | Unary | Paren

# -- tokens -----------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<name>(?:[^\W\d_]|\.(?![0-9]))[\w.]*)
  | (?P<tick>`[^`]*`)
  | (?P<op>\|\||\*\*|==|!=|<=|>=|%in%|%%|%/%|[~|+\-*/^:<>(),=])
    """,
    re.VERBOSE,
)
_FORBIDDEN = {
    "[": "subscripts are not allowed in a formula",
    "]": "subscripts are not allowed in a formula",
    "$": "attribute access ('$') is not allowed in a formula",
    "@": "attribute access ('@') is not allowed in a formula",
    "{": "braces are not allowed in a formula",
    "}": "braces are not allowed in a formula",
    ";": "';' is not allowed in a formula",
    "'": "strings are not allowed in a formula",
    '"': "strings are not allowed in a formula",
    "!": "'!' is not supported in a formula",
    "&": "'&' is not supported in a formula",
    "?": "'?' is not allowed in a formula",
    "\\": "'\\' is not allowed in a formula",
    "#": "comments are not allowed in a formula",
    "_": "a name cannot start with '_' (quote such a column with backticks: `_x`)",
}
_DUNDER = re.compile(r"(?:^|\.)__\w*__(?:\.|$)")
_SEQUENCES = {
    "<-": "assignment is not allowed in a formula",
    "<<-": "assignment is not allowed in a formula",
    "->": "assignment is not allowed in a formula",
    "::": "'::' (namespace access) is not allowed in a formula",
    ":=": "':=' is not allowed in a formula",
}
_COMPARISONS = ("==", "!=", "<", ">", "<=", ">=")


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "end"
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; a FormulaError names the first character that is not allowed."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"formula is too long ({len(text)} characters; at most {MAX_LENGTH})")
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        bad = next((s for s in _SEQUENCES if text.startswith(s, pos)), None)
        m = None if bad else _TOKEN.match(text, pos)
        if m is None:
            if bad is not None:
                why = _SEQUENCES[bad]
            elif text[pos] == "%":
                why = "only the operators %in%, %% and %/% are supported"
            else:
                why = _FORBIDDEN.get(text[pos], f"character {text[pos]!r} is not allowed")
            raise FormulaError(f"{why} (at position {pos} of {_excerpt(text, pos)})")
        kind = m.lastgroup
        assert kind is not None
        if kind == "tick":
            if m.end() - pos == 2:
                raise FormulaError(f"empty backticked name at position {pos}")
            out.append(Token("qname", m.group()[1:-1], pos))
        elif kind == "name" and _DUNDER.search(m.group()):
            raise FormulaError(
                f"{m.group()!r} looks like Python attribute access, which a formula cannot do; "
                f"if it is a column's name, quote it with backticks: `{m.group()}`"
            )
        elif kind != "space":
            out.append(Token(kind, m.group(), pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


def _excerpt(text: str, pos: int) -> str:
    start = max(0, pos - 20)
    return repr(("..." if start else "") + text[start : pos + 20])


# -- the parser -------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def fail(self, what: str) -> FormulaError:
        tok = self.tok
        found = "the end" if tok.kind == "end" else repr(tok.text)
        return FormulaError(
            f"cannot read formula {self.text!r}: {what}, found {found} at position {tok.pos}"
        )

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FormulaError(f"formula is nested too deeply (more than {MAX_DEPTH} levels)")

    def expect(self, op: str) -> None:
        if not self.at(op):
            raise self.fail(f"expected {op!r}")
        self.take()

    def chain(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        first = operand()
        seen_ops, items = [], [first]
        while self.at(*ops):
            seen_ops.append(self.take().text)
            items.append(operand())
        return Chain(tuple(seen_ops), tuple(items)) if seen_ops else first

    def formula(self) -> Node:
        left = None if self.at("~") else self.bar()
        if self.at("~"):
            self.take()
            right = self.bar()
            if self.at("~"):
                raise FormulaError(f"formula {self.text!r} has more than one '~'")
            node: Node = Unary("~", right) if left is None else BinOp("~", left, right)
        elif left is None:
            raise self.fail("expected an expression")
        else:
            node = left
        if self.tok.kind != "end":
            raise self.fail("expected an operator or the end")
        return node

    def bar(self) -> Node:
        return self.chain(("|", "||"), self.comparison)

    def comparison(self) -> Node:
        left = self.sum()
        if self.at(*_COMPARISONS):
            op = self.take().text
            return BinOp(op, left, self.sum())
        return left

    def sum(self) -> Node:
        return self.chain(("+", "-"), self.product)

    def product(self) -> Node:
        return self.chain(("*", "/"), self.special)

    def special(self) -> Node:
        return self.chain(("%in%", "%%", "%/%"), self.colon)

    def colon(self) -> Node:
        return self.chain((":",), self.unary)

    def unary(self) -> Node:
        if self.at("+", "-"):
            op = self.take().text
            self.nest()
            node = Unary(op, self.unary())
            self.depth -= 1
            return node
        return self.power()

    def power(self) -> Node:
        base = self.primary()
        if self.at("^", "**"):
            self.take()
            self.nest()
            node = BinOp("^", base, self.unary())
            self.depth -= 1
            return node
        return base

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return _number(tok.text)
        if tok.kind in ("name", "qname"):
            self.take()
            if tok.kind == "name" and tok.text in ("TRUE", "FALSE"):
                return Bool(tok.text == "TRUE")
            if tok.kind == "name" and tok.text in RESERVED:
                raise FormulaError(
                    f"{tok.text!r} is an R reserved word; quote a column of that name "
                    f"with backticks: `{tok.text}`"
                )
            if self.at("("):
                if tok.kind == "qname":
                    raise self.fail("a backticked name cannot be called")
                return self.call(tok.text)
            return Name(tok.text)
        if self.at("("):
            self.take()
            self.nest()
            inner = self.bar()
            self.depth -= 1
            self.expect(")")
            return Paren(inner)
        raise self.fail("expected a name, a number or '('")

    def call(self, fn: str) -> Node:
        self.take()  # "("
        self.nest()
        args: list[Node] = []
        kwargs: list[tuple[str, Node]] = []
        while not self.at(")"):
            if args or kwargs:
                self.expect(",")
            nxt = self.tokens[self.i + 1]
            if self.tok.kind in ("name", "qname") and nxt.kind == "op" and nxt.text == "=":
                key = self.take().text
                self.take()
                kwargs.append((key, self.bar()))
            elif kwargs:
                raise self.fail("positional argument after a named one")
            else:
                args.append(self.bar())
        self.take()  # ")"
        self.depth -= 1
        return Call(fn, tuple(args), tuple(kwargs))


def _number(text: str) -> Num:
    integer = text.endswith("L")
    value = float(text[:-1] if integer else text)
    if integer and value != math.floor(value):
        raise FormulaError(f"{text!r} is not an integer")
    return Num(value, integer)


def parse(text: str) -> Node:
    """The AST of a formula or expression ``text``.

    Raises
    ------
    FormulaError
        Naming the first token that cannot be read, and why.
    """
    if not isinstance(text, str):
        raise FormulaError(f"formula must be a string such as 'y ~ x + (1 | g)', got {text!r}")
    return _Parser(text).formula()


# -- deparse: R's text of a tree ----------------------------------------------------------------
_SPACED = {"+", "-", "*", "|", "||", "%in%", "~", *_COMPARISONS}
_SYNTACTIC = re.compile(r"^(?:[^\W\d_]|\.(?![0-9]))[\w.]*$")


@functools.lru_cache(maxsize=1024)
def deparse_name(name: str) -> str:
    """A name as R prints it: bare when syntactic, else in backticks (cached: read by every fit)."""
    plain = _SYNTACTIC.match(name) and not _DUNDER.search(name)
    if plain and name not in RESERVED and name not in ("TRUE", "FALSE"):
        return name
    return f"`{name}`"


def r_number(x: float) -> str:
    """A double as R deparses it: 15 significant digits, fixed or scientific, whichever is shorter.

    ``2`` -> ``"2"``, ``1e6`` -> ``"1e+06"``, ``1e5`` -> ``"1e+05"``,
    ``123456`` -> ``"123456"``, ``1e-4`` -> ``"1e-04"``, ``0.001`` -> ``"0.001"``.
    """
    if not math.isfinite(x):
        return "Inf" if x > 0 else ("-Inf" if x < 0 else "NaN")
    if x == 0:
        return "0"
    target = float(f"{x:.14e}")
    digits = next(d for d in range(1, 16) if float(f"{x:.{d - 1}e}") == target)
    mantissa, exp = f"{x:.{digits - 1}e}".split("e")
    exponent = int(exp)
    sci = f"{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    fixed = f"{x:.{max(0, digits - 1 - exponent)}f}"
    return fixed if len(fixed) <= len(sci) else sci


def deparse(node: Node) -> str:
    """R's text of a tree, as R names model terms and columns: ``I(Days^2)``, ``log(x + 1)``."""
    if isinstance(node, Name):
        return deparse_name(node.id)
    if isinstance(node, Num):
        return (str(int(node.value)) + "L") if node.integer else r_number(node.value)
    if isinstance(node, Bool):
        return "TRUE" if node.value else "FALSE"
    if isinstance(node, Call):
        args = [deparse(a) for a in node.args]
        args += [f"{deparse_name(k)} = {deparse(v)}" for k, v in node.kwargs]
        return f"{node.fn}({', '.join(args)})"
    if isinstance(node, Chain):
        out = deparse(node.items[0])
        for op, item in zip(node.ops, node.items[1:], strict=True):
            out += f" {op} " if op in _SPACED else op
            out += deparse(item)
        return out
    if isinstance(node, BinOp):
        sep = f" {node.op} " if node.op in _SPACED else node.op
        return deparse(node.left) + sep + deparse(node.right)
    if isinstance(node, Unary):
        return node.op + deparse(node.operand)
    return f"({deparse(node.inner)})"


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents before children."""
    out: list[Node] = [node]
    if isinstance(node, Call):
        for child in (*node.args, *(v for _, v in node.kwargs)):
            out += walk(child)
    elif isinstance(node, Chain):
        for child in node.items:
            out += walk(child)
    elif isinstance(node, BinOp):
        out += walk(node.left) + walk(node.right)
    elif isinstance(node, Unary):
        out += walk(node.operand)
    elif isinstance(node, Paren):
        out += walk(node.inner)
    return out


def names(node: Node) -> list[str]:
    """The variable names a tree reads, in order, without repeats."""
    return list(dict.fromkeys(n.id for n in walk(node) if isinstance(n, Name)))
