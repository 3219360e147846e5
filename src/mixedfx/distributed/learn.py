"""Pass 1: learn the design of a Dask frame, as :func:`mixedfx.frame.design.learn` would.

Each partition is *surveyed* (:class:`Survey`): its row count, the missing
values the in-memory checks look for (with the first bad row), the range of
the response, the partial statistics of the formula's stateful parts
(:func:`mixedfx.frame.state.survey`: distinct values of categorical
variables, moments for ``scale()`` and ``poly()``) and the distinct rows of
each term's grouping columns in order of first appearance. Adjacent
surveys combine into one; the formula's state then comes out as memory
learns it from the concatenated rows (levels exactly; means, scales and
polynomial coefficients up to rounding), and the distinct grouping rows
of the whole frame give exactly the levels that
:func:`mixedfx.frame.levels.encode` finds on the concatenated rows.

What needs two passes to learn cannot be learned here and is refused with
a FormulaError: a stateful transform inside another (``poly(scale(x), 2)``),
and a stateful transform of the response or of an offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..frame import design as design_mod
from ..frame import reterm
from ..frame import state as state_mod
from ..frame.formula import ParsedFormula, RandomTerm, parse
from ..frame.modelmatrix import MatrixSpec
from ..frame.syntax import Name, deparse, names
from ..frames import plain_dtypes
from .run import compute, per_partition, tree_reduce


@dataclass(frozen=True)
class Plan:
    """What to survey: the formula and the frame's columns it reads."""

    parsed: ParsedFormula
    fixed_vars: tuple[str, ...]  # fixed-effects inputs present in the frame
    groups: tuple[tuple[str, ...], ...]  # distinct grouping-column tuples
    offset: str | None


@dataclass
class BadCount:
    """Missing or infinite values among ``n`` rows: how many, and the first bad row."""

    n: int
    bad: int = 0
    first: int = -1

    @classmethod
    def of(cls, mask: np.ndarray) -> BadCount:
        bad = int(mask.sum())
        return cls(len(mask), bad, int(np.argmax(mask)) if bad else -1)

    def then(self, other: BadCount) -> BadCount:
        """The count over these rows followed by ``other``'s."""
        first = self.first if self.bad else (self.n + other.first if other.bad else -1)
        return BadCount(self.n + other.n, self.bad + other.bad, first)


@dataclass
class Survey:
    """What pass 1 learns from a run of adjacent partitions (see module docstring)."""

    n: int
    y_bad: BadCount
    y_min: float
    y_max: float
    offset_bad: BadCount
    inputs: dict[str, BadCount]
    group_na: dict[str, BadCount]
    state: state_mod.Survey
    groups: dict[tuple[str, ...], pd.DataFrame]


def memory_dtypes(part: pd.DataFrame) -> pd.DataFrame:
    """The partition with the dtypes pandas gives the same data in memory.

    Dask stores text as ``string[pyarrow]`` (missing values ``pd.NA``) where
    an in-memory frame has ``str`` or object columns: every partition goes
    through the in-memory boundary's conversion
    (:func:`mixedfx.frames.plain_dtypes`) before any formula work, so both
    paths see the same labels.
    """
    return plain_dtypes(part)


def _bad(col: pd.Series) -> np.ndarray:
    """Non-finite numbers or missing values (as the in-memory checks)."""
    if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
        return ~np.isfinite(col.to_numpy(dtype=float, na_value=np.nan))
    return np.asarray(col.isna())


def _design(plan: Plan, states: dict[str, Any]) -> design_mod.DesignSpec:
    """A design holding only what the response and offsets need (no terms)."""
    fixed = MatrixSpec.build(plan.parsed.fixed_terms, states)
    kept = np.arange(len(fixed.names), dtype=np.int64)
    return design_mod.DesignSpec(
        "", plan.parsed, fixed, kept, fixed.names, (), (), states, plan.offset
    )


def survey(part: pd.DataFrame, plan: Plan) -> Survey:
    """Survey one partition."""
    part = memory_dtypes(part)
    bare = _design(plan, {})
    y = bare.response_values(part)
    off = bare.offset(part)
    working = y - off  # as the in-memory check of a constant response
    ok = np.isfinite(working)
    group_cols = dict.fromkeys(c for g in plan.groups for c in g)
    return Survey(
        len(part),
        BadCount.of(~np.isfinite(y)),
        float(working[ok].min()) if ok.any() else np.inf,
        float(working[ok].max()) if ok.any() else -np.inf,
        BadCount.of(~np.isfinite(off)),
        {v: BadCount.of(_bad(part[v])) for v in plan.fixed_vars},
        {c: BadCount.of(np.asarray(part[c].isna())) for c in group_cols},
        state_mod.survey(plan.parsed, part, {}),
        {g: part[list(g)].drop_duplicates() for g in plan.groups},
    )


def combine(a: Survey, b: Survey) -> Survey:
    """The survey of ``a``'s rows followed by ``b``'s."""
    return Survey(
        a.n + b.n,
        a.y_bad.then(b.y_bad),
        min(a.y_min, b.y_min),
        max(a.y_max, b.y_max),
        a.offset_bad.then(b.offset_bad),
        {v: a.inputs[v].then(b.inputs[v]) for v in a.inputs},
        {c: a.group_na[c].then(b.group_na[c]) for c in a.group_na},
        state_mod.combine(a.state, b.state),
        {g: pd.concat([a.groups[g], b.groups[g]]).drop_duplicates() for g in a.groups},
    )


@dataclass(frozen=True)
class Learned:
    """The design learned in pass 1, before the rank check of pass 2.

    ``design.kept`` holds every fixed-effects column; ``names`` are their
    lme4-style names.
    """

    design: design_mod.DesignSpec
    names: list[str]
    n: int
    y_range: float


def _meta_checks(ddf: Any, parsed: ParsedFormula, offset: str | None) -> None:
    """The checks that need only the column names and dtypes (no pass over the data)."""
    meta = memory_dtypes(ddf._meta)
    for what, node in [("the response", parsed.lhs), *(("an offset", o) for o in parsed.offsets)]:
        if state_mod.stateful(node):
            raise FormulaError(
                f"{what}, {deparse(node)!r}, has a stateful transform (scale, poly, factor) "
                "that cannot be learned on a Dask frame; compute it as a column first"
            )
    if parsed.two_column:
        raise FormulaError(design_mod.two_column_message(parsed.response))
    design_mod.check_columns(meta, names(parsed.lhs), "response")
    if isinstance(parsed.lhs, Name):
        design_mod.response(meta, parsed.lhs.id, finite=False)  # a non-numeric response
    design_mod.check_columns(meta, [c for o in parsed.offsets for c in names(o)], "offset")
    if offset is not None:
        design_mod.check_columns(meta, [offset], "offset")
    fixed_vars = MatrixSpec.build(parsed.fixed_terms, {}).data_columns()
    design_mod.check_columns(meta, fixed_vars, "fixed-effects")
    for term in parsed.random:
        for f in term.factors:
            if f not in meta:
                raise DataError(
                    f"grouping column {f!r} of random term {term} is missing from the data"
                )
    used = dict.fromkeys([*fixed_vars, *(f for t in parsed.random for f in t.factors)])
    for name in used:
        if isinstance(meta[name].dtype, pd.CategoricalDtype) and not ddf[name].cat.known:
            raise DataError(
                f"column {name!r} is categorical with unknown categories; the levels "
                f"must be known to be learned in order: use ddf.categorize(columns=[{name!r}])"
            )


def _check_survey(s: Survey, parsed: ParsedFormula) -> None:
    """Raise the in-memory path's errors, in its order, from the combined survey."""
    if s.n == 0:
        raise DataError("data has no rows")
    if s.y_bad.bad:
        raise DataError(
            f"response {parsed.response!r} has {s.y_bad.bad} NaN or infinite values (first "
            f"at row {s.y_bad.first}); drop those rows first"
        )
    for name, c in s.inputs.items():
        if c.bad == c.n:
            raise DataError(f"column {name!r} is entirely missing")
        if c.bad:
            raise DataError(
                f"column {name!r} has {c.bad} NaN or infinite values (first at row "
                f"{c.first}); drop those rows first"
            )
    if s.offset_bad.bad:
        raise DataError(
            f"the offset has {s.offset_bad.bad} NaN or infinite values (first at row "
            f"{s.offset_bad.first}); drop those rows first"
        )
    if s.state.blocked:
        raise FormulaError(
            "a stateful transform inside another (such as poly(scale(x), 2)) cannot be "
            "learned on a Dask frame; compute the inner one as a column first, or fit in memory"
        )


def _term(term: RandomTerm, s: Survey, states: dict[str, Any]) -> reterm.ReTerm:
    """One random term learned from the survey (levels from the distinct grouping rows)."""
    parts = reterm.term_parts(term, states)
    for f in term.factors:
        if s.group_na[f].bad:
            raise DataError(
                f"grouping column {f!r} has {s.group_na[f].bad} missing values; "
                "drop those rows or give them a level"
            )
    rt, _ = reterm.from_levels(term, parts, s.groups[term.factors])
    return rt


def learn(formula: str, ddf: Any, progress: bool = False, offset: str | None = None) -> Learned:
    """Pass 1 over a Dask frame: the design, the number of rows and the response's range.

    Parameters
    ----------
    formula : str
    ddf : dask.dataframe.DataFrame
    progress : bool
        Show a progress bar while the pass runs.
    offset : str, optional
        A column added to the linear predictor.
    """
    parsed = parse(formula)
    _meta_checks(ddf, parsed, offset)
    meta = memory_dtypes(ddf._meta)
    fixed_vars = MatrixSpec.build(parsed.fixed_terms, {}).data_columns()
    plan = Plan(
        parsed,
        tuple(v for v in fixed_vars if v in meta.columns),
        tuple(dict.fromkeys(t.factors for t in parsed.random)),
        offset,
    )
    plan_d = dask.delayed(plan, traverse=False)
    parts = per_partition(ddf, survey, plan_d)
    s: Survey = compute(tree_reduce(parts, combine), progress)
    _check_survey(s, parsed)
    states = state_mod.finish(s.state)
    fixed = MatrixSpec.build(parsed.fixed_terms, states)
    names_ = list(fixed.names)
    terms = [_term(t, s, states) for t in parsed.random]
    terms, _, _ = reterm.lme4_order(terms, [np.empty(0)] * len(terms))
    design = design_mod.DesignSpec(
        formula,
        parsed,
        fixed,
        np.arange(len(names_), dtype=np.int64),
        tuple(names_),
        (),
        tuple(terms),
        states,
        offset,
    )
    return Learned(design, names_, s.n, s.y_max - s.y_min)
