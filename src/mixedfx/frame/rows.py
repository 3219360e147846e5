"""Model matrices of new rows, the choice of random effects (``re``) and Z.

For a data frame of ``n`` new rows this gives ``X`` (n x p, NaN where a
predictor is missing) and, per random term, level codes (n,; -1 for a level
training never saw or a missing label) and the term's model matrix (n x q).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..engine.blocks import term_matrix
from ..errors import DataError, FormulaError, NewLevelWarning
from .design import DesignSpec, check_columns
from .formula import RandomTerm, random_terms
from .reterm import ReTerm


@dataclass(frozen=True)
class Rows:
    """Model matrices of new rows.

    Attributes
    ----------
    X : ndarray, shape (n, p)
    codes : tuple of ndarray of int, shape (n,) per term
    M : tuple of ndarray, shape (n, q_t) per term
    offset : ndarray, shape (n,)
        Added to the linear predictor (zeros without offsets).
    """

    X: np.ndarray
    codes: tuple[np.ndarray, ...]
    M: tuple[np.ndarray, ...]
    offset: np.ndarray

    @property
    def n(self) -> int:
        return self.X.shape[0]


def build(spec: DesignSpec, data: pd.DataFrame) -> Rows:
    """Model matrices of ``data`` under a learned design."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {type(data).__name__}")
    needed = [c for t in spec.terms for c in (*t.term.factors, *t.data_columns())]
    check_columns(data, list(dict.fromkeys(needed)), "model")
    X = spec.X(data) if len(data) else np.empty((0, len(spec.fixed_names)))
    codes = tuple(t.codes(data) for t in spec.terms)
    M = tuple(t.model_matrix(data) if len(data) else np.empty((0, t.q)) for t in spec.terms)
    return Rows(X, codes, M, spec.offset(data))


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


def warn_unseen(spec: DesignSpec, data: pd.DataFrame, rows: Rows, masks: list[np.ndarray]) -> None:
    """Warn when none of a used grouping factor's labels in new data were seen."""
    for t, codes, mask in zip(spec.terms, rows.codes, masks, strict=True):
        if not mask.any() or len(codes) == 0 or (codes >= 0).any():
            continue
        factors = list(t.term.factors)
        present = ~pd.isna(data[factors]).any(axis=1).to_numpy()
        if present.any():
            # distinct labels, written as training's are ("a:A" for an interaction)
            found = data.loc[present, factors].drop_duplicates().head(3).astype(str)
            sample = found.agg(":".join, axis=1).tolist()
            warnings.warn(
                f"none of the {t.group!r} labels in the new data were seen in training "
                f"(e.g. {sample}; training has e.g. {[str(v) for v in t.labels[:3]]}); the labels "
                "probably do not match (check dtype and spelling)",
                NewLevelWarning,
                stacklevel=4,
            )


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
