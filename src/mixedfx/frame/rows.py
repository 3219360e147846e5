"""Model matrices of new rows, the choice of random effects (``re``) and Z.

For a data frame of ``n`` new rows this gives ``X`` (n x p, NaN where a
predictor is missing), the offset (n,) and, per random term, level codes
(n,; -1 for a level training never saw, -2 for a missing label) and the
term's model matrix (n x q).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..engine.blocks import term_matrix
from ..errors import FormulaError, NewLevelWarning
from . import levels as lv
from .design import DesignSpec, check_columns
from .formula import RandomTerm, random_terms
from .reterm import ReTerm, Unseen


@dataclass(frozen=True)
class Rows:
    """Model matrices of new rows.

    Attributes
    ----------
    X : ndarray, shape (n, p)
    codes : tuple of ndarray of int, shape (n,) per term
        ``-1`` for a level training never saw, ``-2`` for a missing label.
    M : tuple of ndarray, shape (n, q_t) per term
    offset : ndarray, shape (n,)
        Added to the linear predictor (zeros without offsets).
    unseen : tuple of list of Unseen, per term
        The grouping columns with labels training never saw, and those labels.
    """

    X: np.ndarray
    codes: tuple[np.ndarray, ...]
    M: tuple[np.ndarray, ...]
    offset: np.ndarray
    unseen: tuple[list[Unseen], ...] = ()

    @property
    def n(self) -> int:
        return self.X.shape[0]


def build(spec: DesignSpec, data: pd.DataFrame) -> Rows:
    """Model matrices of ``data`` (a pandas frame, see :mod:`mixedfx.frames`) under a design."""
    needed = [c for t in spec.terms for c in (*t.term.factors, *t.data_columns())]
    check_columns(data, list(dict.fromkeys(needed)), "model")
    X = spec.X(data) if len(data) else np.empty((0, len(spec.fixed_names)))
    found = [t.lookup(data) for t in spec.terms]
    M = tuple(t.model_matrix(data) if len(data) else np.empty((0, t.q)) for t in spec.terms)
    codes = tuple(c for c, _ in found)
    return Rows(X, codes, M, spec.offset(data), tuple(u for _, u in found))


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
    for t, codes, mask in zip(spec.terms, rows.codes, masks, strict=True):
        if t.group in out:  # (1 | g) + (0 + x | g): one factor, the same codes
            out[t.group]["used"] = bool(out[t.group]["used"]) or bool(mask.any())
            continue
        missing = codes == lv.MISSING
        new = codes == lv.UNSEEN
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
