"""Model rows: the one way a frame becomes ``X``, ``y``, the offset, level codes and ``M``.

:func:`build` turns any frame (training rows, new data, ``given`` rows, a
Dask partition) into model rows under a design: ``X`` (n x p), the response
``y`` (n,) when asked for, the offset (n,) and, per random term, level codes
(n,) and the term's model matrix ``M`` (n x q). Columns are read by the one
missing-value rule (:mod:`mixedfx.frame.na`), so a missing value is NaN in
``X``, ``y``, the offset or ``M``, and a missing label has code ``-2``
(``-1``: a label training never saw). The masks of missing values are read
from those arrays (:class:`Rows`), and counted in a :class:`Tally`, which
the checks of training and of ``given`` read, in memory and on Dask alike.

The rest of the module is what predictions do with the rows: the choice of
random effects (``re``), the label-mismatch warning, level counts and Z.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..engine.blocks import term_matrix
from ..errors import FormulaError, NewLevelWarning
from . import design as design_mod
from . import levels as lv
from .formula import RandomTerm, random_terms
from .na import Count
from .reterm import ReTerm, Unseen

if TYPE_CHECKING:
    from .design import DesignSpec


@dataclass(frozen=True)
class Rows:
    """A frame's model rows under a design, missing values marked in them.

    Attributes
    ----------
    X : ndarray, shape (n, p)
        Not finite in a row with a missing predictor.
    codes : tuple of ndarray of int, shape (n,) per term
        ``-1`` for a level training never saw, ``-2`` for a missing label.
    M : tuple of ndarray, shape (n, q_t) per term
        Not finite in a row with a missing value of a column the term reads.
    offset : ndarray, shape (n,)
        Added to the linear predictor (zeros without offsets); NaN where missing.
    unseen : tuple of list of Unseen, per term
        The grouping columns with labels training never saw, and those labels.
    y : ndarray, shape (n,) or (n, 2), or None
        The response as observed (``build(..., response=True)``); NaN where missing.
    """

    X: np.ndarray
    codes: tuple[np.ndarray, ...]
    M: tuple[np.ndarray, ...]
    offset: np.ndarray
    unseen: tuple[list[Unseen], ...] = ()
    y: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def working(self) -> np.ndarray:
        """The working response ``y - offset``, shape (n,): what ``X beta + Z b`` fits."""
        assert self.y is not None and self.y.ndim == 1, "rows built without a response"
        return self.y - self.offset

    # -- the masks, shape (n,) --------------------------------------------------------------
    @property
    def missing_x(self) -> np.ndarray:
        """Rows with a missing predictor (a value of X not finite)."""
        return ~np.isfinite(self.X).all(axis=1)

    @property
    def missing_y(self) -> np.ndarray:
        """Rows with a missing response (none when built without one)."""
        if self.y is None:
            return np.zeros(self.n, dtype=bool)
        bad = ~np.isfinite(self.y)
        return bad if bad.ndim == 1 else bad.any(axis=1)

    @property
    def missing_offset(self) -> np.ndarray:
        """Rows with a missing offset."""
        return ~np.isfinite(self.offset)

    @property
    def missing_labels(self) -> tuple[np.ndarray, ...]:
        """Per term: rows with a missing label of a grouping column."""
        return tuple(c == lv.MISSING for c in self.codes)

    @property
    def new_levels(self) -> tuple[np.ndarray, ...]:
        """Per term: rows whose level training never saw (their labels are present)."""
        return tuple(c == lv.UNSEEN for c in self.codes)

    @property
    def complete(self) -> bool:
        """Nothing is missing: every number finite and every label present.

        One sum per array: a NaN or infinity anywhere makes its sum not
        finite (a sum that overflows only sends :meth:`Tally.of` the long way).
        """
        arrays = [self.X, self.offset, *self.M, *([] if self.y is None else [self.y])]
        finite = all(math.isfinite(np.add.reduce(a, axis=None)) for a in arrays)
        return finite and all(c.min(initial=0) != lv.MISSING for c in self.codes)

    def missing_effects(self, k: int, columns: np.ndarray | None = None) -> np.ndarray:
        """Rows with a missing value in term ``k``'s ``M`` (in ``columns``, bool (q,), if given)."""
        M = self.M[k] if columns is None or columns.all() else self.M[k][:, columns]
        return ~np.isfinite(M).all(axis=1)


def build(
    spec: DesignSpec,
    data: pd.DataFrame,
    response: bool = False,
    binary: bool = False,
    codes: tuple[np.ndarray, ...] | None = None,
) -> Rows:
    """The model rows of ``data`` (a pandas frame, see :mod:`mixedfx.frames`) under a design.

    The one function from a frame to rows: training (:func:`mixedfx.frame.design.learn`),
    predictions, ``given`` rows and every Dask partition use it.

    Parameters
    ----------
    spec : DesignSpec
    data : DataFrame, shape (n, ...)
    response : bool, default False
        Also read the response (``Rows.y``).
    binary : bool, default False
        Accept a boolean response (a GLMM's outcome, True is 1); a linear
        model refuses one.
    codes : tuple of ndarray of int, shape (n,) per term, optional
        The rows' level codes when the caller has them: training finds its
        levels and their codes in one pass (:func:`mixedfx.frame.reterm.learn`),
        so its labels are not looked up again. By default each term looks
        its labels up (:meth:`~mixedfx.frame.reterm.ReTerm.lookup`).

    Raises
    ------
    DataError
        For a missing column, a response that is not numeric (or boolean),
        a categorical level training never saw or a variable of another type.
    """
    needed = [c for t in spec.terms for c in (*t.term.factors, *t.data_columns())]
    design_mod.check_columns(data, list(dict.fromkeys(needed)), "model")
    n = len(data)
    y = spec.response_values(data, binary=binary) if response else None
    X = spec.X(data) if n else np.empty((0, len(spec.fixed_names)))
    if codes is None:
        found = [t.lookup(data) for t in spec.terms]
        codes, unseen = tuple(c for c, _ in found), tuple(u for _, u in found)
    else:  # every label is one of the levels
        unseen = tuple([] for _ in spec.terms)
    M = tuple(t.model_matrix(data) if n else np.empty((0, t.q)) for t in spec.terms)
    return Rows(X, codes, M, spec.offset(data), unseen, y)


@dataclass(frozen=True)
class Tally:
    """The rows' missing values counted (:class:`~mixedfx.frame.na.Count`: how many, the first).

    What the checks of training and ``given`` read; the tallies of adjacent
    runs of rows (Dask partitions) add with :meth:`then`.

    Attributes
    ----------
    y, offset, x : Count
        Rows with a missing response, offset, predictor.
    x_columns : ndarray of bool, shape (p,)
        Columns of X with a missing value.
    labels, effects : tuple of Count, per term
        Rows with a missing label; with a missing value in ``M``.
    """

    y: Count
    offset: Count
    x: Count
    x_columns: np.ndarray
    labels: tuple[Count, ...]
    effects: tuple[Count, ...]

    @property
    def n(self) -> int:
        return self.x.n

    @property
    def clean(self) -> bool:
        """Nothing is missing."""
        counts = (self.y, self.offset, self.x, *self.labels, *self.effects)
        return not any(c.bad for c in counts)

    @classmethod
    def of(cls, r: Rows) -> Tally:
        if r.complete:
            none, terms = Count(r.n), tuple(Count(r.n) for _ in r.M)
            return cls(none, none, none, np.zeros(r.X.shape[1], dtype=bool), terms, terms)
        return cls(
            Count.of(r.missing_y),
            Count.of(r.missing_offset),
            Count.of(r.missing_x),
            ~np.isfinite(r.X).all(axis=0),
            tuple(Count.of(m) for m in r.missing_labels),
            tuple(Count.of(r.missing_effects(k)) for k in range(len(r.M))),
        )

    def then(self, other: Tally) -> Tally:
        """The tally of these rows followed by ``other``'s."""
        return Tally(
            self.y.then(other.y),
            self.offset.then(other.offset),
            self.x.then(other.x),
            self.x_columns | other.x_columns,
            tuple(a.then(b) for a, b in zip(self.labels, other.labels, strict=True)),
            tuple(a.then(b) for a, b in zip(self.effects, other.effects, strict=True)),
        )


def select(spec: DesignSpec, re: str | None) -> list[np.ndarray]:
    """Which columns of each term to include, from lme4's ``re.form``.

    Parameters
    ----------
    re : {"all", "none"} or str
        ``"all"`` (or None), ``"none"`` (or ``"0"``, ``"~0"``), or random
        terms such as ``"(1 | Subject)"`` or ``"~ (1 | plate)"``.

    Returns
    -------
    list of bool ndarray, shape (q_t,) per term
    """
    if re is None or re == "all":
        return [np.ones(t.q, dtype=bool) for t in spec.terms]
    if not isinstance(re, str):
        raise FormulaError(f"re must be 'all', 'none' or terms such as '(1 | g)', got {re!r}")
    text = re.strip().lstrip("~").strip()
    if text in ("none", "0", "NA", ""):
        return [np.zeros(t.q, dtype=bool) for t in spec.terms]
    masks = [np.zeros(t.q, dtype=bool) for t in spec.terms]
    for term in random_terms(text):
        matches = [k for k, t in enumerate(spec.terms) if set(t.term.factors) == set(term.factors)]
        if not matches:
            groups = sorted({t.group for t in spec.terms})
            raise FormulaError(
                f"re term {term} names grouping factor {term.group!r}, which the "
                f"model does not have (it has {groups})"
            )
        same = [k for k in matches if spec.terms[k].term.expr == term.expr]
        if same:
            for k in same:
                masks[k][:] = True
            continue
        for col in spec.terms[matches[0]].columns_of(term):
            hits = [k for k in matches if col in spec.terms[k].columns]
            if not hits:
                raise FormulaError(_unknown_columns(term, [spec.terms[k] for k in matches]))
            for k in hits:
                masks[k][list(spec.terms[k].columns).index(col)] = True
    return masks


def _unknown_columns(term: RandomTerm, model_terms: list[ReTerm]) -> str:
    """The error for an ``re`` term whose columns are not the model's for its factor.

    Parameters
    ----------
    term : RandomTerm
        The term as written in ``re``.
    model_terms : list of ReTerm
        The model's terms with the same grouping factor(s).

    Returns
    -------
    str
        Names the unknown column(s) and lists the columns the model has.
    """
    known = list(dict.fromkeys(c for t in model_terms for c in t.columns))
    unknown = [c for c in model_terms[0].columns_of(term) if c not in known]
    what = f"unknown column(s) {unknown}" if unknown else "columns not written as in the model"
    first = "1" if "(Intercept)" in known else f"0 + {known[0]}"
    return (
        f"re term {term}: {what}; the model's random effects for {term.group!r} have "
        f"columns {known}: write a subset of them, e.g. ({first} | {term.group})"
    )


def warn_unseen(
    spec: DesignSpec, data: pd.DataFrame, rows: Rows, masks: list[np.ndarray], stacklevel: int
) -> None:
    """A NewLevelWarning when unseen labels look like a labelling mismatch.

    New groups are expected (a new patient, a held-out fold) and stay quiet;
    the warning needs evidence (:meth:`~mixedfx.frame.levels.Levels.mismatch`):
    labels that differ from training's only in case, spaces, zero padding or
    number format, or, when no label of the column matched, labels of
    another kind than training's (numbers against words).
    """
    done: set[str] = set()
    for t, unseen, mask in zip(spec.terms, rows.unseen, masks, strict=True):
        for f, labels, matched in unseen if mask.any() else ():
            why = None if f in done else t.levels[t.term.factors.index(f)].mismatch(labels, matched)
            done.add(f)
            if why is not None:
                warnings.warn(
                    f"new data has {len(labels)} label(s) of {f!r} that training never saw "
                    f"(e.g. {labels[:3].tolist()}): {why}. The labels probably do not "
                    "match training's (check their dtype and spelling); those rows are "
                    "predicted as new groups",
                    NewLevelWarning,
                    stacklevel=stacklevel + 1,
                )


def level_counts(
    spec: DesignSpec, data: pd.DataFrame, rows: Rows, masks: list[np.ndarray]
) -> pd.DataFrame:
    """Per grouping factor, how many rows of ``data`` have a new or missing level.

    Returns
    -------
    DataFrame
        Indexed by the grouping factor's name as lme4 prints it (``"Subject"``,
        ``"cask:batch"``); columns ``rows``, ``new_rows`` (a level training
        never saw), ``new_levels`` (distinct such levels), ``missing_rows`` (a
        missing label) and ``used`` (whether ``re`` includes the factor).
    """
    out: dict[str, dict[str, object]] = {}
    parts = zip(spec.terms, rows.codes, rows.missing_labels, rows.new_levels, masks, strict=True)
    for t, codes, missing, new, mask in parts:
        if t.group in out:  # (1 | g) + (0 + x | g): one factor, the same codes
            out[t.group]["used"] = bool(out[t.group]["used"]) or bool(mask.any())
            continue
        distinct = data.loc[new, list(t.term.factors)].drop_duplicates() if new.any() else ()
        out[t.group] = dict(
            rows=len(codes),
            new_rows=int(new.sum()),
            new_levels=len(distinct),
            missing_rows=int(missing.sum()),
            used=bool(mask.any()),
        )
    return pd.DataFrame.from_dict(out, orient="index").rename_axis("group")


def z_matrix(spec: DesignSpec, rows: Rows) -> tuple[sp.csr_matrix, list[str]]:
    """The random-effects matrix of new rows and its column names.

    Returns
    -------
    Z : csr_matrix, shape (n, sum_t l_t q_t)
        Rows with unseen levels have zeros in that term's columns.
    names : list of str
        ``"group[level]:column"``, in lme4's column order.
    """
    parts, names = [], []
    for t, codes, M in zip(spec.terms, rows.codes, rows.M, strict=True):
        known = codes >= 0
        Mk = np.where(known[:, None], np.nan_to_num(M), 0.0)
        parts.append(term_matrix(np.maximum(codes, 0), Mk, t.nlevels))
        names += [f"{t.group}[{label}]:{col}" for label in t.labels for col in t.columns]
    Z = sp.hstack(parts, format="csr") if parts else sp.csr_matrix((rows.n, 0))
    Z.eliminate_zeros()
    return Z, names
