"""One random-effects term ``(expr | group)``: its levels, model matrix and Lambda.

For a term with ``q`` columns and ``l`` levels, the rows' random-effects
model matrix ``M`` has shape (n, q) and the term's block of ``Z`` is the
row-wise Khatri-Rao product of the level indicators with ``M``: row ``i``
holds ``M[i]`` in the columns of level ``codes[i]``. The relative covariance
factor of one level, ``T`` (q x q, lower triangular), comes from ``theta``:
its lower triangle in column-major order (correlated terms) or its diagonal
(``||`` terms). The term's block of ``Lambda`` is ``kron(I_l, T)``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import levels as lv
from .formula import RandomTerm, variable_names
from .missing import bad_mask

_SIMPLE = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


def _simple_columns(expr: str, data: pd.DataFrame) -> list[str] | None:
    """Column list for expressions like ``1 + x`` or ``0 + x`` of numeric columns."""
    pieces = [p.strip() for p in expr.replace("-", "+-").split("+") if p.strip()]
    intercept = True
    cols: list[str] = []
    for piece in pieces:
        if piece == "1":
            intercept = True
        elif piece in ("0", "-1"):
            intercept = False
        elif _SIMPLE.match(piece) and piece in data and data[piece].dtype.kind in "iuf":
            cols.append(piece)
        else:
            return None
    return (["(Intercept)"] if intercept else []) + cols


def rename_intercept(names: list[str]) -> list[str]:
    """formulaic's ``Intercept`` is lme4's ``(Intercept)``."""
    return ["(Intercept)" if n == "Intercept" else n for n in names]


@dataclass(frozen=True)
class ReTerm:
    """A random-effects term learned from training data.

    Attributes
    ----------
    term : RandomTerm
        The parsed term.
    columns : tuple of str
        Names of the term's ``q`` model-matrix columns.
    keys : ndarray of object, shape (l,)
        The levels: a label as found in training (``"07"`` stays ``"07"``,
        ``7`` stays ``7``), or for an interaction ``a:b`` a tuple of labels,
        one per factor. Matched to new data by :mod:`mixedfx.frame.levels`.
    labels : ndarray of object, shape (l,)
        The levels for display: the label, or lme4's ``"a:b"`` text for an
        interaction (never used to match).
    factor_keys : tuple of ndarray
        Per grouping factor, its distinct training labels (``(keys,)`` for a
        single factor).
    spec : object or None
        A formulaic ModelSpec for non-simple expressions, else None.
    scales : ndarray, shape (q,), or None
        Column scales the optimizer worked in (see :func:`mixedfx.fit.column_scales`);
        None means all 1. The boundary check of :attr:`LinearMixedModel.singular`
        uses ``|T_jj| * scales[j]``, so it does not depend on the units of a
        random-slope column.
    """

    term: RandomTerm
    columns: tuple[str, ...]
    keys: np.ndarray
    labels: np.ndarray
    factor_keys: tuple[np.ndarray, ...]
    spec: object | None = field(default=None, compare=False)
    scales: np.ndarray | None = field(default=None, compare=False)

    # -- sizes --------------------------------------------------------------
    @property
    def group(self) -> str:
        return self.term.group

    @property
    def q(self) -> int:
        """Number of random effects per level."""
        return len(self.columns)

    @property
    def nlevels(self) -> int:
        return len(self.keys)

    def theta_names(self, index: tuple[np.ndarray, np.ndarray]) -> list[str]:
        """lme4-style names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``.

        ``index`` is the term's (rows, cols) in the design's
        :class:`~mixedfx.engine.layout.ThetaLayout`.
        """
        cols = self.columns
        return [
            f"{self.group}.{cols[i]}" if i == j else f"{self.group}.{cols[i]}.{cols[j]}"
            for i, j in zip(*index, strict=True)
        ]

    # -- data -> codes and model matrix ---------------------------------------
    @functools.cached_property
    def levels(self) -> tuple[lv.Levels, ...]:
        """Each grouping factor's training levels, ready for lookups (built on first use)."""
        return tuple(lv.Levels(k) for k in self.factor_keys)

    @functools.cached_property
    def _combinations(self) -> pd.MultiIndex:
        """An interaction's levels as tuples of factor codes, for lookups."""
        codes = [
            levels.index.get_indexer(pd.Index(lv.as_array([k[j] for k in self.keys]), dtype=object))
            for j, levels in enumerate(self.levels)
        ]
        return pd.MultiIndex.from_arrays(codes)

    def model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The term's per-row model matrix ``M``, shape (n, q).

        A row with a missing value in a column the term reads is NaN (as a
        missing predictor makes a row NaN); a categorical level training
        never saw is an error, as in the fixed effects: the term has no
        random effect for it.
        """
        if self.spec is None:
            out = np.empty((len(data), self.q))
            for k, name in enumerate(self.columns):
                out[:, k] = 1.0 if name == "(Intercept)" else _numeric(data, name)
            return out
        from .design import unseen_levels  # design builds on this module

        absent = np.zeros(len(data), dtype=bool)
        for name in variable_names(self.term.expr):
            if name in data.columns:
                absent |= bad_mask(data[name])
        if absent.any():  # build the complete rows; the others are NaN
            out = np.full((len(data), self.q), np.nan)
            if not absent.all():
                out[~absent] = self.model_matrix(data.iloc[np.flatnonzero(~absent)])
            return out
        unseen_levels(self.spec, data, f"random term {self.term}")
        mm = self.spec.get_model_matrix(data, output="numpy")  # type: ignore[attr-defined]
        return np.asarray(mm, dtype=float)

    def codes(self, data: pd.DataFrame) -> np.ndarray:
        """Level codes of new rows, shape (n,): ``-1`` unseen, ``-2`` a missing label."""
        return self.lookup(data)[0]

    def lookup(self, data: pd.DataFrame) -> tuple[np.ndarray, list[Unseen]]:
        """Level codes of new rows (as :meth:`codes`) and, per factor, its unseen labels.

        Returns
        -------
        codes : ndarray of int64, shape (n,)
        unseen : list of Unseen
            The grouping columns with labels training never saw (for an
            interaction, a new combination of known labels lists nothing).
        """
        found = self._factor_lookups(data)
        unseen = [
            Unseen(f, labels, bool((c >= 0).any()))
            for f, (c, labels) in zip(self.term.factors, found, strict=True)
            if len(labels)
        ]
        return self._joint([c for c, _ in found]), unseen

    def _factor_lookups(self, data: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per grouping factor: the rows' codes among its labels, and its unseen labels."""
        return [
            lv.lookup(_column(data, f), levels, f)
            for f, levels in zip(self.term.factors, self.levels, strict=True)
        ]

    def _joint(self, parts: list[np.ndarray]) -> np.ndarray:
        """The level codes from each factor's codes (an interaction's combinations)."""
        if len(parts) == 1:
            return parts[0]
        known = np.logical_and.reduce([c >= 0 for c in parts])
        missing = np.logical_or.reduce([c == lv.MISSING for c in parts])
        out = np.where(missing, lv.MISSING, lv.UNSEEN).astype(np.int64)
        if known.any():
            rows = pd.MultiIndex.from_arrays([c[known] for c in parts])
            out[known] = self._combinations.get_indexer(rows)
        return out

    def missing_labels(self, data: pd.DataFrame) -> np.ndarray:
        """True where a row lacks a label of one of the grouping columns, shape (n,)."""
        return np.asarray(pd.isna(data[list(self.term.factors)]).any(axis=1), dtype=bool)

    def find(self, keys: Sequence[Any]) -> np.ndarray:
        """Positions of levels given as labels (tuples for an interaction), ``< 0`` where absent.

        Labels match as in new data (:mod:`mixedfx.frame.levels`).
        """
        rows = [k if isinstance(k, tuple) else (k,) for k in keys]
        fits = np.array([len(r) == len(self.term.factors) for r in rows], dtype=bool)
        out = np.full(len(rows), lv.UNSEEN, dtype=np.int64)
        if fits.any():
            chosen = [r for r, ok in zip(rows, fits, strict=True) if ok]
            out[fits] = self.codes(pd.DataFrame(chosen, columns=self.term.factors, dtype=object))
        return out

    def with_levels(self, data: pd.DataFrame) -> tuple[ReTerm, np.ndarray]:
        """The term with the rows' unseen levels appended (sorted), and the rows' codes.

        Labels are matched as in :meth:`codes`; labels that match nothing are
        new levels, compared exactly among themselves.
        """
        found = [c for c, _ in self._factor_lookups(data)]
        codes = self._joint(found).copy()
        unseen = codes < 0
        if not unseen.any():
            return self, codes
        parts, factor_keys = [], []
        for f, fk, c in zip(self.term.factors, self.factor_keys, found, strict=True):
            absent = c < 0
            if absent.any():
                fresh_codes, fresh = lv.encode(data[f][absent], f)
                c = c.copy()
                c[absent] = len(fk) + fresh_codes
                fk = np.concatenate([fk, fresh])
            parts.append(c)
            factor_keys.append(fk)
        if len(parts) == 1:
            codes, keys = parts[0], factor_keys[0]
        else:
            fresh_codes, fresh_keys = lv.combine(
                [(c[unseen], fk) for c, fk in zip(parts, factor_keys, strict=True)]
            )
            codes[unseen] = self.nlevels + fresh_codes
            keys = np.concatenate([self.keys, fresh_keys])
        labels = lv.as_array([lv.display(k) for k in keys[self.nlevels :]])
        new = dataclasses.replace(
            self,
            keys=keys,
            labels=np.concatenate([self.labels, labels]),
            factor_keys=tuple(factor_keys),
        )
        return new, codes


class Unseen(NamedTuple):
    """A grouping column's labels that training never saw, in some rows."""

    column: str
    labels: np.ndarray  # distinct, as found
    matched: bool  # whether any other label of the column was seen


def _column(data: pd.DataFrame, name: str) -> pd.Series:
    if name not in data:
        raise DataError(f"grouping column {name!r} is missing from the data")
    return data[name]


def _numeric(data: pd.DataFrame, name: str) -> np.ndarray:
    if name not in data:
        raise DataError(f"column {name!r} of a random-effects term is missing from the data")
    return np.asarray(data[name], dtype=float)


def learn(term: RandomTerm, data: pd.DataFrame) -> tuple[ReTerm, np.ndarray, np.ndarray]:
    """Learn a term from training data.

    Returns
    -------
    reterm : ReTerm
    codes : ndarray of int64, shape (n,)
    M : ndarray, shape (n, q)
        The term's per-row model matrix.
    """
    for f in term.factors:
        if f not in data:
            raise DataError(f"grouping column {f!r} of random term {term} is missing from the data")
    simple = _simple_columns(term.expr, data)
    spec = None
    if simple is None:
        from formulaic import model_matrix

        try:
            mm = model_matrix(term.expr, data, output="numpy", na_action="ignore")
        except Exception as exc:  # formulaic raises many types; name the term
            absent = sorted(set(variable_names(term.expr)) - set(map(str, data.columns)))
            if absent:
                raise DataError(
                    f"column(s) {absent} of random term {term} missing from the data"
                ) from exc
            raise FormulaError(f"cannot build the model matrix of term {term}: {exc}") from exc
        spec = mm.model_spec
    reterm, codes = from_levels(term, term_columns(term, simple, spec), spec, data)
    return reterm, codes, reterm.model_matrix(data)


def term_columns(
    term: RandomTerm, simple: list[str] | None, spec: object | None
) -> tuple[str, ...]:
    """The term's column names (from the simple parse or the formulaic spec), checked."""
    if simple is None:
        names = list(getattr(spec, "column_names", ()))
        columns = tuple(rename_intercept(names))
    else:
        columns = tuple(simple)
    if not columns:
        raise FormulaError(f"random term {term} has no columns")
    named = set(variable_names(term.expr))
    for f in term.factors:
        if f == term.expr.strip() or f in columns or f in named:
            raise FormulaError(
                f"random term {term} uses {f!r} on both sides of the bar; "
                "a grouping factor cannot also be its own random slope"
            )
    return columns


def from_levels(
    term: RandomTerm, columns: tuple[str, ...], spec: object | None, data: pd.DataFrame
) -> tuple[ReTerm, np.ndarray]:
    """The term with the grouping levels found in ``data``, and the rows' level codes.

    Only the grouping columns of ``data`` are read, so the distinct rows of
    those columns (in order of first appearance) give the same levels as the
    full data.
    """
    parts = [lv.encode(data[f], f) for f in term.factors]
    codes, keys = parts[0] if len(parts) == 1 else lv.combine(parts)
    labels = keys if len(parts) == 1 else lv.as_array([lv.display(k) for k in keys])
    factor_keys = tuple(labels for _, labels in parts)
    return ReTerm(term, columns, keys, labels, factor_keys, spec), codes
