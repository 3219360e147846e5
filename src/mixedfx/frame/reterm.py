"""One random-effects term ``(expr | group)``: its levels, model matrix and Lambda.

For a term with ``q`` columns and ``l`` levels, the rows' random-effects
model matrix ``M`` has shape (n, q) and the term's block of ``Z`` is the
row-wise Khatri-Rao product of the level indicators with ``M``: row ``i``
holds ``M[i]`` in the columns of level ``codes[i]``. The relative covariance
factor of one level, ``T`` (q x q, lower triangular), comes from ``theta``:
its lower triangle in column-major order, block diagonal for ``||`` terms
(see :class:`~mixedfx.engine.layout.ThetaLayout`). The term's block of
``Lambda`` is ``kron(I_l, T)``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import levels as lv
from . import transforms as tf
from .columns import column
from .formula import RandomTerm
from .modelmatrix import MatrixSpec


@dataclass(frozen=True)
class ReTerm:
    """A random-effects term learned from training data.

    Attributes
    ----------
    term : RandomTerm
        The parsed term.
    columns : tuple of str
        Names of the term's ``q`` model-matrix columns, as lme4 names them.
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
    parts : tuple of MatrixSpec
        The model matrices whose columns the term stacks: one, or for ``||``
        lme4's ``(1 | g)`` and ``(0 + t | g)`` per term ``t``.
    scales : ndarray, shape (q,), or None
        Root mean squares of columns of extreme size (see :func:`mixedfx.fit.column_scales`);
        None means all 1. The boundary check of :attr:`LinearMixedModel.singular`
        uses ``|T_jj| * scales[j]``, so it does not depend on the units of a
        random-slope column.
    """

    term: RandomTerm
    columns: tuple[str, ...]
    keys: np.ndarray
    labels: np.ndarray
    factor_keys: tuple[np.ndarray, ...]
    parts: tuple[MatrixSpec, ...] = field(default=(), compare=False, repr=False)
    scales: np.ndarray | None = field(default=None, compare=False)

    @property
    def blocks(self) -> tuple[int, ...]:
        """Sizes of the diagonal blocks of the term's ``T``: lme4's terms on this factor."""
        return tuple(len(p.names) for p in self.parts) if not self.term.correlated else (self.q,)

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
        random effect for it (:class:`~mixedfx.frame.modelmatrix.MatrixSpec`).
        """
        try:
            if len(self.parts) == 1:
                return self.parts[0].matrix(data)
            return np.hstack([p.matrix(data) for p in self.parts])
        except DataError as exc:  # say where: the fixed effects raise the same errors
            raise DataError(f"{exc} (in random term {self.term})") from exc

    def data_columns(self) -> list[str]:
        """The data columns the term's model matrix reads."""
        return list(dict.fromkeys(c for p in self.parts for c in p.data_columns()))

    def columns_of(self, term: RandomTerm) -> list[str]:
        """The column names ``term`` (from an lme4 ``re.form``) has with this term's states."""
        states = self.parts[0].states
        return [n for part in term.parts() for n in MatrixSpec.build(part, states).names]

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
    return column(data, name)


def learn(
    term: RandomTerm, data: pd.DataFrame, states: Mapping[str, tf.State]
) -> tuple[ReTerm, np.ndarray]:
    """Learn a term from training data and the formula's learned states.

    Returns
    -------
    term : ReTerm
    codes : ndarray of int64, shape (n,)
        The rows' level codes, found with the levels (one pass over the
        labels); :func:`mixedfx.frame.rows.build` takes them for the training
        rows instead of looking the labels up again. The model matrix comes
        from ``build``, as for any rows.
    """
    for f in term.factors:
        if f not in data:
            raise DataError(f"grouping column {f!r} of random term {term} is missing from the data")
    return from_levels(term, term_parts(term, states), data)


def term_parts(term: RandomTerm, states: Mapping[str, tf.State]) -> tuple[MatrixSpec, ...]:
    """The term's model matrices from the learned states, checked."""
    parts = tuple(MatrixSpec.build(t, states) for t in term.parts())
    named = {c for p in parts for c in p.data_columns()}
    for f in term.factors:
        if f in named:
            raise FormulaError(
                f"random term {term} uses {f!r} on both sides of the bar; "
                "a grouping factor cannot also be its own random slope"
            )
    return parts


def from_levels(
    term: RandomTerm, parts: tuple[MatrixSpec, ...], data: pd.DataFrame
) -> tuple[ReTerm, np.ndarray]:
    """The term with the grouping levels found in ``data``, and the rows' level codes.

    Only the grouping columns of ``data`` are read, so the distinct rows of
    those columns (in order of first appearance) give the same levels as the
    full data.
    """
    encoded = [lv.encode(column(data, f), f) for f in term.factors]
    codes, keys = encoded[0] if len(encoded) == 1 else lv.combine(encoded)
    labels = keys if len(encoded) == 1 else lv.as_array([lv.display(k) for k in keys])
    factor_keys = tuple(labels for _, labels in encoded)
    columns = tuple(n for p in parts for n in p.names)
    return ReTerm(term, columns, keys, labels, factor_keys, parts), codes


def lme4_order(
    terms: list[ReTerm], codes: list[np.ndarray], Ms: list[np.ndarray] | None = None
) -> tuple[list[ReTerm], list[np.ndarray], list[np.ndarray]]:
    """The terms in lme4's order, with their codes and model matrices.

    lme4 (``mkReTrms``, ``reorder.terms``) orders its terms by decreasing
    number of levels when they are not already, as ``rev(order(nl))``, which
    reverses terms with equal numbers of levels. Its terms are the blocks of
    ours (a ``||`` term is several), so the blocks of a ``||`` term reverse too.
    """
    expanded = [k for k, t in enumerate(terms) for _ in t.blocks]
    nl = [terms[k].nlevels for k in expanded]
    Ms = list(Ms) if Ms is not None else [np.empty((0, t.q)) for t in terms]
    if all(b <= a for a, b in zip(nl, nl[1:], strict=False)):
        return list(terms), list(codes), Ms
    order = list(dict.fromkeys(expanded[i] for i in np.argsort(nl, kind="stable")[::-1]))
    flipped = [_reversed_blocks(terms[k], Ms[k]) for k in order]
    return [t for t, _ in flipped], [codes[k] for k in order], [M for _, M in flipped]


def _reversed_blocks(t: ReTerm, M: np.ndarray) -> tuple[ReTerm, np.ndarray]:
    """A ``||`` term with its blocks (lme4's terms) in reverse order, and its M's columns."""
    if len(t.blocks) < 2:
        return t, M
    starts = np.cumsum((0, *t.blocks))
    perm = np.concatenate(
        [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)][::-1]
    )
    columns = tuple(t.columns[j] for j in perm)
    return dataclasses.replace(t, parts=t.parts[::-1], columns=columns), M[:, perm]
