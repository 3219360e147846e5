"""R's ``terms()``: the model terms of a formula's right-hand side.

A term is a set of variables (an interaction of them; a main effect has
one). The operators combine lists of terms as R's ``terms.formula`` does:

* ``a + b``: the terms of both; ``a - b``: those of ``a`` not in ``b``
  (``- 1`` drops the intercept, ``+ 1`` puts it back, ``0 +`` drops it);
* ``a:b``: every term of ``a`` with every term of ``b``;
* ``a * b`` = ``a + b + a:b``; ``(a + b)^2`` = ``a + b + a:b``;
* ``a %in% b``: every term of ``a`` with all the variables of ``b``;
* ``a / b`` = ``a + (all variables of a):b``, e.g. ``(a + b)/c`` = ``a + b + a:b:c``.

Variables are any other expression (``x``, ``I(x^2)``, ``log(x + 1)``,
``factor(k)``), identified by R's text of them; ``offset(...)`` is an
offset, not a term. The terms are then ordered by their number of
variables (stably), and each term lists its variables in the order of
their first appearance in the formula, so term labels are R's:
``c + b:a + a:c`` has labels ``c``, ``b:a``, ``c:a``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import FormulaError
from .syntax import BinOp, Call, Chain, Node, Num, Paren, Unary, deparse, names


@dataclass(frozen=True)
class Terms:
    """The expanded right-hand side of a formula.

    Attributes
    ----------
    intercept : bool
    variables : tuple of Node
        Distinct variables in order of first appearance (offsets excluded).
    terms : tuple of tuple of int
        Each term: indices into ``variables``, increasing; ordered by degree.
    offsets : tuple of Node
        The expressions inside ``offset(...)``, in order.
    """

    intercept: bool
    variables: tuple[Node, ...]
    terms: tuple[tuple[int, ...], ...]
    offsets: tuple[Node, ...] = ()

    @functools.cached_property
    def keys(self) -> tuple[str, ...]:
        """R's text of each variable (``"I(Days^2)"``)."""
        return tuple(deparse(v) for v in self.variables)

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """The data columns the variables read, in order, without repeats."""
        return tuple(dict.fromkeys(n for v in self.variables for n in names(v)))

    def labels(self) -> list[str]:
        """R's term labels, e.g. ``["x", "f", "x:f"]``."""
        keys = self.keys
        return [":".join(keys[i] for i in term) for term in self.terms]

    def single(self, k: int) -> Terms:
        """Term ``k`` alone, without intercept (lme4's ``0 + term`` for ``||``)."""
        used = self.terms[k]
        return Terms(False, tuple(self.variables[i] for i in used), (tuple(range(len(used))),))


Term = frozenset[int]


class _Expander:
    """One expansion: the variables met so far and the intercept flag."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.nodes: list[Node] = []
        self.offsets: dict[str, Node] = {}
        self.intercept = True
        self.deleting = False  # inside the right side of a '-': 1 drops the intercept

    def variable(self, node: Node) -> list[Term]:
        key = deparse(node)
        if key not in self.keys:
            self.keys[key] = len(self.nodes)
            self.nodes.append(node)
        return [frozenset([self.keys[key]])]

    def expand(self, node: Node) -> list[Term]:
        if isinstance(node, Num):
            if node.value not in (0.0, 1.0):
                raise FormulaError(
                    f"term {deparse(node)!r} is a number; only 1 (intercept) and 0 "
                    "(no intercept) can be terms; write I(...) for arithmetic"
                )
            self.intercept = (node.value == 1.0) != self.deleting
            return []
        if isinstance(node, Paren):
            return self.expand(node.inner)
        if isinstance(node, Unary) and node.op in "+-":
            if node.op == "+":
                return self.expand(node.operand)
            return self.delete([], node.operand)
        if isinstance(node, Call) and node.fn == "offset":
            if len(node.args) != 1 or node.kwargs:
                raise FormulaError(f"{deparse(node)}: offset() takes one expression")
            self.offsets.setdefault(deparse(node.args[0]), node.args[0])
            return []
        if isinstance(node, BinOp) and node.op == "^":
            return self.power(node)
        if isinstance(node, Chain):
            return self.chain(node)
        return self.variable(node)

    def chain(self, node: Chain) -> list[Term]:
        if node.ops[0] in ("|", "||"):
            raise FormulaError(
                f"{deparse(node)!r} uses a bar outside a random term; write random terms "
                "in parentheses, (x | g), added to the rest of the formula"
            )
        if node.ops[0] in ("%%", "%/%"):
            raise FormulaError(f"{deparse(node)!r}: write arithmetic inside I(), e.g. I(x %% 2)")
        out = self.expand(node.items[0])
        for op, item in zip(node.ops, node.items[1:], strict=True):
            if op == "-":
                out = self.delete(out, item)
                continue
            right = self.expand(item)
            if op == "+":
                out = _trim(out + right)
            elif op == ":":
                out = _interact(out, right)
            elif op == "*":
                out = _trim(out + right + _interact(out, right))
            elif op == "%in%":
                every = frozenset().union(*right) if right else frozenset()
                out = _trim([t | every for t in out])
            else:  # "/"
                every = frozenset().union(*out) if out else frozenset()
                out = _trim(out + [every | t for t in right])
        return out

    def delete(self, left: list[Term], node: Node) -> list[Term]:
        self.deleting = not self.deleting
        right = self.expand(node)
        self.deleting = not self.deleting
        return [t for t in left if t not in right]

    def power(self, node: BinOp) -> list[Term]:
        exponent = node.right
        if not (isinstance(exponent, Num) and exponent.value == int(exponent.value) > 1):
            raise FormulaError(
                f"invalid power in {deparse(node)!r}: (a + b)^k needs a whole number k >= 2; "
                "for a power of a variable write I(x^2)"
            )
        left = self.expand(node.left)
        out = left
        for _ in range(int(exponent.value) - 1):
            out = _interact(left, out)
        return out


def _trim(terms: list[Term]) -> list[Term]:
    """Without repeats and empty terms, first occurrences kept (R's TrimRepeats)."""
    return [t for t in dict.fromkeys(terms) if t]


def _interact(left: list[Term], right: list[Term]) -> list[Term]:
    return _trim([a | b for a in left for b in right])


def expand(node: Node) -> Terms:
    """The terms of a right-hand side (no random-effects bars), as R's ``terms()``.

    Raises
    ------
    FormulaError
        For numbers other than 0 and 1 as terms, bad powers, bars, ``%%``.
    """
    ex = _Expander()
    terms = ex.expand(node)  # an offset is no term, nor part of one
    terms.sort(key=len)  # stable: by degree, then in order
    used = sorted(set().union(*terms)) if terms else []
    index = {v: i for i, v in enumerate(used)}
    return Terms(
        ex.intercept,
        tuple(ex.nodes[v] for v in used),
        tuple(tuple(sorted(index[v] for v in t)) for t in terms),
        tuple(ex.offsets.values()),
    )
