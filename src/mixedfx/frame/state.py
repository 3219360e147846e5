"""The learned state of a formula: what its stateful parts learn from the training rows.

A formula's state maps R's text of each stateful part to what it learned:
the levels of each categorical variable (``"Sex"``, ``"factor(k)"``,
``"I(x > 2)"``) and the constants of ``scale()`` and ``poly()`` (see
:mod:`.transforms`). It is plain data (numbers and strings): it is saved
in model files and, with the formula, rebuilds the design.

Learning is a *survey* of rows: each stateful part not yet learned records
partial statistics (:class:`~mixedfx.frame.evaluate.Site`). Surveys of
adjacent rows combine (:func:`combine`), so memory surveys the whole frame
once and a Dask frame each partition, and both :func:`finish` the same way.
A stateful part inside another (``poly(scale(x), 2)``) needs the inner state
first: memory surveys again; a survey marks this as ``blocked``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from ..errors import FormulaError
from . import syntax
from . import transforms as tf
from .evaluate import Evaluator, Site, categorical_form, state_kind
from .formula import ParsedFormula
from .syntax import Call, Node, deparse

States = Mapping[str, tf.State]
MAX_ROUNDS = 8


@dataclass(frozen=True)
class Survey:
    """What some rows teach: the partial statistics per stateful part.

    Attributes
    ----------
    sites : dict of str to Site
    blocked : bool
        Some stateful part waits for another's state (nested transforms).
    """

    sites: dict[str, Site]
    blocked: bool = False


def stateful(node: Node) -> bool:
    """Whether ``node`` holds a stateful call (``scale``, ``poly``, ``factor``)."""
    return any(
        isinstance(n, Call) and n.fn in ("scale", "poly", "factor", "as.factor")
        for n in syntax.walk(node)
    )


def variables(parsed: ParsedFormula) -> list[Node]:
    """Every model variable of the formula: the fixed part's, then each random term's."""
    out = list(parsed.fixed_terms.variables)
    for term in parsed.random:
        for part in term.parts():
            out += part.variables
    return out


def _roots(parsed: ParsedFormula) -> list[Node]:
    """Every expression the formula computes: the response, offsets and variables."""
    return [parsed.lhs, *parsed.offsets, *variables(parsed)]


def parts(parsed: ParsedFormula) -> dict[str, type]:
    """Each part of the formula that may hold a state, and the state's type.

    ``scale()`` and ``poly()`` calls (anywhere) hold Scale and Poly; a
    model variable may hold Levels (it does when it is categorical).
    """
    out: dict[str, type] = {deparse(v): tf.Levels for v in variables(parsed)}
    for root in _roots(parsed):
        for node in syntax.walk(root):
            kind = state_kind(node)
            if kind is not None:
                out[deparse(node)] = kind
    return out


def factor_calls(parsed: ParsedFormula) -> list[str]:
    """The variables that are categorical whatever the data (``factor()``, comparisons)."""
    return [deparse(v) for v in variables(parsed) if categorical_form(v)]


def survey(parsed: ParsedFormula, data: pd.DataFrame, states: States) -> Survey:
    """Partial statistics, over ``data``, of the stateful parts of ``parsed`` not in ``states``."""
    record: dict[str, Site] = {}
    ev = Evaluator(data, states, record)
    numeric = [parsed.lhs, *parsed.offsets]
    if parsed.two_column:
        assert isinstance(parsed.lhs, Call)
        numeric = [*parsed.lhs.args, *parsed.offsets]
    for node in numeric:
        if _unlearned(node, states):
            ev.numeric(node)
    for node in dict.fromkeys(variables(parsed)):
        if _unlearned(node, states) or (deparse(node) not in states and ev.categorical(node)):
            ev.variable(node)
    return Survey(record, ev.blocked)


def _unlearned(node: Node, states: States) -> bool:
    """Whether ``node`` holds a stateful call whose state is not learned yet."""
    return any(
        state_kind(n) is not None
        and deparse(n) not in states
        or isinstance(n, Call)
        and n.fn in ("factor", "as.factor")
        and deparse(n) not in states
        for n in syntax.walk(node)
    )


def combine(a: Survey, b: Survey) -> Survey:
    """The survey of ``a``'s rows followed by ``b``'s."""
    sites = dict(a.sites)
    for key, site in b.sites.items():
        sites[key] = sites[key].then(site) if key in sites else site
    return Survey(sites, a.blocked or b.blocked)


def finish(s: Survey) -> dict[str, tf.State]:
    """The states the survey's statistics give."""
    return {key: site.finish(key) for key, site in s.sites.items()}


def learn(parsed: ParsedFormula, data: pd.DataFrame) -> dict[str, tf.State]:
    """The formula's state learned from the training rows (in memory; nested parts in rounds)."""
    states: dict[str, tf.State] = {}
    for _ in range(MAX_ROUNDS):
        s = survey(parsed, data, states)
        if not s.sites:
            if s.blocked:  # pragma: no cover - a blocked part always records in a later round
                raise FormulaError("the formula's stateful transforms cannot be learned")
            return states
        states |= finish(s)
    raise FormulaError(f"stateful transforms nested more than {MAX_ROUNDS} deep")
