"""Pass 1: learn the design of a Dask frame, as :func:`mixedfx.frame.design.learn` would.

Each partition is *surveyed* (:class:`Survey`): its row count, the missing
values the in-memory checks look for (with the first bad row), the range of
the response, what formulaic learns from it (:mod:`.states`) and the
distinct rows of each term's grouping columns in order of first appearance.
Adjacent surveys combine into one; the distinct grouping rows of the whole
frame then give exactly the levels (order and canonical keys) that
:func:`mixedfx.frame.levels.encode` finds on the concatenated rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import pandas as pd

from ..errors import DataError
from ..frame import design as design_mod
from ..frame import reterm
from ..frame.formula import ParsedFormula, RandomTerm, parse
from ..frames import plain_dtypes
from . import states
from .run import compute, per_partition, tree_reduce

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Plan:
    """What to survey: names read from the formula and the frame's columns."""

    response: str
    fixed: str
    fixed_vars: tuple[str, ...]  # fixed-effects inputs present in the frame, sorted
    exprs: tuple[str, ...]  # random-term expressions that need formulaic
    groups: tuple[tuple[str, ...], ...]  # distinct grouping-column tuples


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
    inputs: dict[str, BadCount]
    group_na: dict[str, BadCount]
    fixed: states.PartialSpec
    exprs: dict[str, states.PartialSpec]
    groups: dict[tuple[str, ...], pd.DataFrame]
    sample: pd.DataFrame = field(repr=False)


def memory_dtypes(part: pd.DataFrame) -> pd.DataFrame:
    """The partition with the dtypes pandas gives the same data in memory.

    Dask stores text as ``string[pyarrow]`` (missing values ``pd.NA``) where
    an in-memory frame has ``str`` or object columns: every partition goes
    through the in-memory boundary's conversion
    (:func:`mixedfx.frames.plain_dtypes`) before any formula work.
    """
    return plain_dtypes(part)


def _bad(col: pd.Series) -> np.ndarray:
    """Non-finite numbers or missing values (as the in-memory checks)."""
    if pd.api.types.is_numeric_dtype(col):
        return ~np.isfinite(np.asarray(col, dtype=float))
    return np.asarray(col.isna())


def survey(part: pd.DataFrame, plan: Plan) -> Survey:
    """Survey one partition."""
    part = memory_dtypes(part)
    y = np.asarray(part[plan.response], dtype=float)
    ok = np.isfinite(y)
    group_cols = dict.fromkeys(c for g in plan.groups for c in g)
    return Survey(
        len(part),
        BadCount.of(~ok),
        float(y[ok].min()) if ok.any() else np.inf,
        float(y[ok].max()) if ok.any() else -np.inf,
        {v: BadCount.of(_bad(part[v])) for v in plan.fixed_vars},
        {c: BadCount.of(np.asarray(part[c].isna())) for c in group_cols},
        states.survey(plan.fixed, part),
        {e: states.survey(e, part) for e in plan.exprs},
        {g: part[list(g)].drop_duplicates() for g in plan.groups},
        part.head(SAMPLE_ROWS),
    )


def combine(a: Survey, b: Survey) -> Survey:
    """The survey of ``a``'s rows followed by ``b``'s."""
    return Survey(
        a.n + b.n,
        a.y_bad.then(b.y_bad),
        min(a.y_min, b.y_min),
        max(a.y_max, b.y_max),
        {v: a.inputs[v].then(b.inputs[v]) for v in a.inputs},
        {c: a.group_na[c].then(b.group_na[c]) for c in a.group_na},
        states.combine(a.fixed, b.fixed),
        {e: states.combine(a.exprs[e], b.exprs[e]) for e in a.exprs},
        {g: pd.concat([a.groups[g], b.groups[g]]).drop_duplicates() for g in a.groups},
        a.sample if len(a.sample) else b.sample,
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


def _meta_checks(ddf: Any, parsed: ParsedFormula, fixed_vars: list[str]) -> None:
    """The checks that need only the column names and dtypes (no pass over the data)."""
    meta = memory_dtypes(ddf._meta)
    design_mod.response(meta, parsed.response)  # missing or non-numeric response
    design_mod.check_columns(meta, fixed_vars, "fixed-effects")
    for term in parsed.random:
        for f in term.factors:
            if f not in meta:
                raise DataError(
                    f"grouping column {f!r} of random term {term} is missing from the data"
                )
    names = dict.fromkeys([*fixed_vars, *(f for t in parsed.random for f in t.factors)])
    for name in names:
        if isinstance(meta[name].dtype, pd.CategoricalDtype) and not ddf[name].cat.known:
            raise DataError(
                f"column {name!r} is categorical with unknown categories; the levels "
                f"must be known to be learned in order: use ddf.categorize(columns=[{name!r}])"
            )


def _plan(ddf: Any, parsed: ParsedFormula, fixed_vars: list[str]) -> Plan:
    meta = memory_dtypes(ddf._meta)
    exprs = [t.expr for t in parsed.random if reterm._simple_columns(t.expr, meta) is None]
    return Plan(
        parsed.response,
        parsed.fixed,
        tuple(v for v in fixed_vars if v in meta.columns),
        tuple(dict.fromkeys(exprs)),
        tuple(dict.fromkeys(t.factors for t in parsed.random)),
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


def _term(term: RandomTerm, s: Survey, meta: pd.DataFrame) -> reterm.ReTerm:
    """One random term learned from the survey (levels from the distinct grouping rows)."""
    simple = reterm._simple_columns(term.expr, meta)
    spec = None
    if simple is None:
        what = f"the model matrix of term {term}"
        spec = states.finish(term.expr, s.exprs[term.expr], s.sample, what)
    columns = reterm.term_columns(term, simple, spec)
    for f in term.factors:
        if s.group_na[f].bad:
            raise DataError(
                f"grouping column {f!r} has {s.group_na[f].bad} missing values; "
                "drop those rows or give them a level"
            )
    rt, _ = reterm.from_levels(term, columns, spec, s.groups[term.factors])
    return rt


def learn(formula: str, ddf: Any, progress: bool = False) -> Learned:
    """Pass 1 over a Dask frame: the design, the number of rows and the response's range.

    Parameters
    ----------
    formula : str
    ddf : dask.dataframe.DataFrame
    progress : bool
        Show a progress bar while the pass runs.
    """
    parsed = parse(formula)
    rhs = design_mod._fixed_formula(parsed.fixed)
    fixed_vars = sorted(rhs.required_variables)
    _meta_checks(ddf, parsed, fixed_vars)
    plan = _plan(ddf, parsed, fixed_vars)
    plan_d = dask.delayed(plan, traverse=False)
    parts = per_partition(ddf, survey, plan_d)
    s: Survey = compute(tree_reduce(parts, combine), progress)
    _check_survey(s, parsed)
    what = f"the fixed effects {parsed.fixed!r}"
    spec = states.finish(parsed.fixed, s.fixed, s.sample, what)
    names = reterm.rename_intercept(list(spec.column_names))
    terms = [_term(t, s, memory_dtypes(ddf._meta)) for t in parsed.random]
    terms = sorted(terms, key=lambda t: -t.nlevels)  # lme4's term order (stable)
    design = design_mod.DesignSpec(
        formula,
        parsed,
        spec,
        np.arange(len(names), dtype=np.int64),
        tuple(names),
        (),
        tuple(terms),
        tuple(spec.column_names),
    )
    return Learned(design, names, s.n, s.y_max - s.y_min)
