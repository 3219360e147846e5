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
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import levels as lv
from . import transforms as tf
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
    keys, labels : ndarray of object, shape (l,)
        Canonical keys and display labels of the grouping levels.
    factor_keys : tuple of ndarray
        For an interaction ``a:b``, the keys of each factor (for new data).
    parts : tuple of MatrixSpec
        The model matrices whose columns the term stacks: one, or for ``||``
        lme4's ``(1 | g)`` and ``(0 + t | g)`` per term ``t``.
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
    def key_index(self) -> lv.KeyIndex:
        """The keys' hash index for :meth:`codes`, built on first use."""
        return lv.KeyIndex(self.keys)

    def model_matrix(self, data: pd.DataFrame) -> np.ndarray:
        """The term's per-row model matrix ``M``, shape (n, q); NaN where a value is missing."""
        return np.hstack([p.matrix(data) for p in self.parts])

    def data_columns(self) -> list[str]:
        """The data columns the term's model matrix reads."""
        return list(dict.fromkeys(c for p in self.parts for c in p.data_columns()))

    def columns_of(self, term: RandomTerm) -> list[str]:
        """The column names ``term`` (from an lme4 ``re.form``) has with this term's states."""
        states = self.parts[0].states
        return [n for part in term.parts() for n in MatrixSpec.build(part, states).names]

    def codes(self, data: pd.DataFrame) -> np.ndarray:
        """Level codes of new rows, shape (n,); ``-1`` for unseen or missing labels."""
        if len(self.term.factors) == 1:
            return lv.lookup(_column(data, self.term.factors[0]), self.key_index)
        parts = [
            (lv.lookup(_column(data, f), fk), fk)
            for f, fk in zip(self.term.factors, self.factor_keys, strict=True)
        ]
        return lv.interaction_lookup(parts, self.keys)

    def new_keys(self, data: pd.DataFrame) -> np.ndarray:
        """Canonical keys of the rows' levels (seen or not), shape (n,), None where missing."""
        pieces = []
        for f in self.term.factors:
            col = _column(data, f)
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            keys = lv.canonical_keys(uniques) if len(uniques) else np.array([], dtype=object)
            piece = np.full(len(col), None, dtype=object)
            piece[codes >= 0] = keys[codes[codes >= 0]]
            pieces.append(piece)
        out: np.ndarray = pieces[0]
        for piece in pieces[1:]:
            ok = ~(pd.isna(out) | pd.isna(piece))
            out = out.copy()
            out[ok] = out[ok] + ":" + piece[ok]
            out[~ok] = None
        return out


def _column(data: pd.DataFrame, name: str) -> pd.Series:
    if name not in data:
        raise DataError(f"grouping column {name!r} is missing from the data")
    return data[name]


def learn(
    term: RandomTerm, data: pd.DataFrame, states: Mapping[str, tf.State]
) -> tuple[ReTerm, np.ndarray, np.ndarray]:
    """Learn a term from training data and the formula's learned states.

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
    parts = term_parts(term, states)
    reterm, codes = from_levels(term, parts, data)
    return reterm, codes, reterm.model_matrix(data)


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
    if len(term.factors) == 1:
        codes, keys, labels = lv.encode(data[term.factors[0]], term.factors[0])
        factor_keys: tuple[np.ndarray, ...] = (keys,)
    else:
        encoded = [lv.encode(data[f], f) for f in term.factors]
        inter = lv.combine([(c, k) for c, k, _ in encoded])
        codes, keys, labels = inter.codes, inter.keys, inter.labels
        factor_keys = tuple(k for _, k, _ in encoded)
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
