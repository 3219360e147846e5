"""lme4's formula language: split a model formula into its fixed and random parts.

``y ~ x + (x | g) + (1 | a/b)`` becomes the response ``y``, the fixed-effects
right-hand side ``x`` (handed to formulaic) and the random-effects terms
``(x | g)``, ``(1 | a)`` and ``(1 | a:b)``.

Supported random-term syntax, as in lme4:

* ``(expr | g)``: correlated random effects for the columns of ``expr``;
* ``(expr || g)``: uncorrelated (diagonal relative covariance);
* ``(0 + x | g)`` or ``(x - 1 | g)``: no random intercept;
* ``(1 | a/b)`` = ``(1 | a) + (1 | b:a)`` (lme4's naming), and deeper nests;
* ``(1 | a:b)``: the interaction of two factors as one grouping factor.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import FormulaError

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$|^`[^`]+`$")

# variable names inside an expression: backticked names, and bare identifiers
# that are not followed by "(" (those are functions, such as np.log or C)
_VARIABLE = re.compile(
    r"`([^`]+)`|(?<![A-Za-z0-9_.])([A-Za-z_.][A-Za-z0-9_.]*)(?![A-Za-z0-9_.]|\s*\()"
)


def variable_names(expr: str) -> list[str]:
    """Names an expression uses as variables, in order, without repeats."""
    return list(dict.fromkeys(a or b for a, b in _VARIABLE.findall(expr)))


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)``.

    Attributes
    ----------
    expr : str
        The left-hand side of the bar, e.g. ``"1 + Days"`` or ``"0 + x"``.
    factors : tuple of str
        The grouping columns; more than one for an interaction ``a:b``.
    correlated : bool
        False for ``||``: the term's relative covariance factor is diagonal.
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


@dataclass(frozen=True)
class ParsedFormula:
    """A formula split into response, fixed part and random terms."""

    response: str
    fixed: str
    random: tuple[RandomTerm, ...]

    @property
    def fixed_formula(self) -> str:
        """The fixed-effects formula for formulaic, ``response ~ fixed``."""
        return f"{self.response} ~ {self.fixed}"


def _split_top(text: str, seps: str) -> list[tuple[str, str]]:
    """Split ``text`` at characters in ``seps`` outside parentheses.

    Returns a list of ``(sign, piece)`` where ``sign`` is the separator that
    preceded the piece (``"+"`` for the first one).
    """
    pieces: list[tuple[str, str]] = []
    depth, start, sign = 0, 0, "+"
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' in formula term {text!r}")
        elif ch in seps and depth == 0:
            pieces.append((sign, text[start:i].strip()))
            sign, start = ch, i + 1
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in formula term {text!r}")
    pieces.append((sign, text[start:].strip()))
    return pieces


def _outer_parens(piece: str) -> str | None:
    """The inside of ``piece`` when the whole piece is one parenthesised group."""
    if not (piece.startswith("(") and piece.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(piece):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(piece) - 1:
            return None
    return piece[1:-1].strip()


def _group_names(spec: str, term: str) -> list[tuple[str, ...]]:
    """Expand the grouping side of a bar: ``a/b`` -> ``[(a,), (b, a)]``, as lme4 does."""
    spec = spec.strip()
    inner = _outer_parens(spec)
    if inner is not None:
        spec = inner
    if not spec:
        raise FormulaError(f"random term {term} has nothing after the bar; write (x | group)")
    nest = [part.strip() for part in spec.split("/")]
    groups: list[tuple[str, ...]] = []
    prefix: tuple[str, ...] = ()
    for part in nest:
        raw = [f.strip() for f in part.split(":")]
        for f in raw:
            if not f or not _NAME.match(f):
                raise FormulaError(
                    f"grouping factor {f!r} in random term {term} is not a column name; "
                    "write (x | group) with group a column of the data"
                )
        factors = tuple(f.strip("`") for f in raw)
        prefix = factors + prefix  # lme4 names a nested b in a as "b:a"
        groups.append(prefix)
    return groups


def _random_terms(inner: str, term: str) -> list[RandomTerm]:
    """Parse the inside of ``( ... | ... )``."""
    if "||" in inner:
        lhs, _, rhs = inner.partition("||")
        correlated = False
    else:
        lhs, _, rhs = inner.partition("|")
        correlated = True
    if "|" in rhs:
        raise FormulaError(f"random term {term} has more than one bar; write (x | group)")
    lhs = lhs.strip()
    if not lhs:
        raise FormulaError(f"random term {term} has nothing before the bar; write (1 | group)")
    return [RandomTerm(lhs, g, correlated) for g in _group_names(rhs, term)]


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
        For a formula without ``~``, without a response, without a random
        term, or with a malformed bar.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string such as 'y ~ x + (1 | g)', got {formula!r}")
    return _parse(formula)


@functools.lru_cache(maxsize=256)
def _parse(formula: str) -> ParsedFormula:
    """:func:`parse` of a string (the result is immutable, so it is cached)."""
    lhs, tilde, rhs = formula.partition("~")
    if not tilde:
        raise FormulaError(f"formula {formula!r} has no '~'; write 'y ~ x + (1 | g)'")
    response = lhs.strip()
    if not response:
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if response.startswith("`") and response.endswith("`") and len(response) > 2:
        response = response[1:-1]
    elif not _NAME.match(response):
        raise FormulaError(
            f"the response {response!r} must be a column name (transform it in "
            "the data frame first, or quote an unusual name with backticks)"
        )
    if "~" in rhs:
        raise FormulaError(f"formula {formula!r} has more than one '~'")
    fixed: list[str] = []
    random: list[RandomTerm] = []
    for sign, piece in _split_top(rhs, "+-"):
        if not piece:
            if sign == "+" and not fixed and not random:
                continue
            raise FormulaError(f"formula {formula!r} has an empty term")
        inner = _outer_parens(piece)
        if inner is not None and "|" in inner:
            if sign == "-":
                raise FormulaError(f"random term {piece} cannot be subtracted")
            random.extend(_random_terms(inner, piece))
        elif "|" in piece:
            raise FormulaError(
                f"term {piece!r} uses '|' outside parentheses; write random terms as (x | g)"
            )
        else:
            fixed.append(piece if sign == "+" else f"- {piece}")
    if not random:
        raise FormulaError(
            f"formula {formula!r} has no random-effects term such as (1 | group); "
            "for a model without random effects use ordinary least squares"
        )
    fixed_rhs = " + ".join(fixed).replace("+ -", "-") if fixed else "1"
    return ParsedFormula(response, fixed_rhs, tuple(random))
