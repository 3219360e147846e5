"""Grouping levels matched by value, whatever the dtype.

The labels ``1``, ``1.0``, ``"1"`` and ``np.int64(1)`` are one level: each
label is reduced to a canonical string key (integral numbers print without a
decimal point, numeric strings are read as numbers, other strings are kept
as they are), and training and new data are matched on those keys.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError


def _number_keys(values: np.ndarray) -> np.ndarray:
    """Canonical keys of a float array without NaN: ``3.0 -> "3"``, ``2.5 -> "2.5"``."""
    integral = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**53)
    keys = np.empty(values.shape, dtype=object)
    keys[integral] = values[integral].astype(np.int64).astype(str)
    rest = ~integral
    keys[rest] = [repr(float(v)) for v in values[rest]]
    return keys


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def canonical_keys(uniques: pd.Index | np.ndarray) -> np.ndarray:
    """Canonical string keys, one per label.

    Parameters
    ----------
    uniques : array-like, shape (k,)
        Labels without missing values.

    Returns
    -------
    ndarray of object, shape (k,)
    """
    values = np.asarray(uniques)
    if values.dtype.kind in "iub":
        return values.astype(np.int64).astype(str).astype(object)
    if values.dtype.kind == "f":
        return _number_keys(values.astype(float))
    text = np.array([str(v).strip() for v in values], dtype=object)
    try:
        numbers = text.astype(float)
    except ValueError:  # some labels are not numbers: read them one by one
        numbers = np.array([_to_float(v) for v in text])
    numeric = np.isfinite(numbers)
    if numeric.any():
        text[numeric] = _number_keys(numbers[numeric])
    return text


def _sort_order(uniques: pd.Index | np.ndarray, column: pd.Series) -> np.ndarray:
    """The order in which lme4 would list the levels: factor order, else sorted."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        if isinstance(uniques, pd.Index) and uniques.equals(column.cat.categories):
            return np.arange(len(uniques))
        cats = pd.Index(column.cat.categories)
        return np.argsort(cats.get_indexer(pd.Index(uniques)), kind="stable")
    values = np.asarray(uniques)
    if values.dtype.kind in "iufb":
        return np.argsort(values, kind="stable")
    try:
        return np.argsort(pd.Index(values).astype(str).to_numpy(), kind="stable")
    except (TypeError, ValueError):  # pragma: no cover - str() of any object works
        return np.arange(len(values))


def encode(column: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Level codes of a training grouping column.

    Parameters
    ----------
    column : Series, shape (n,)
    name : str
        The column name, for error messages.

    Returns
    -------
    codes : ndarray of int64, shape (n,)
        Index of each row's level in ``keys``.
    keys : ndarray of object, shape (k,)
        Canonical keys of the levels, in lme4's order.
    labels : ndarray of object, shape (k,)
        One original label per level, for display.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):  # fast path: codes are given
        codes = column.cat.codes.to_numpy().astype(np.int64)
        uniques = column.cat.categories
        used = np.bincount(codes[codes >= 0], minlength=len(uniques)) > 0
        if not used.all():  # drop unused levels, as lme4 does
            remap = np.cumsum(used) - 1
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
            uniques = uniques[used]
    else:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if (codes < 0).any():
        raise DataError(
            f"grouping column {name!r} has {(codes < 0).sum()} missing values; "
            "drop those rows or give them a level"
        )
    order = _sort_order(uniques, column)
    keys = canonical_keys(uniques)[order]
    labels = np.asarray(uniques, dtype=object)[order]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = rank[codes]
    merged, first, inverse = np.unique(keys.astype(str), return_index=True, return_inverse=True)
    if len(merged) < len(keys):  # e.g. 1 and "1" in one column: one level
        keep = np.sort(first)
        remap = np.empty(len(merged), dtype=np.int64)
        remap[inverse[keep]] = np.arange(len(keep))
        codes = remap[inverse[codes]]
        keys, labels = keys[keep], labels[keep]
    return codes.astype(np.int64), keys, labels


class KeyIndex:
    """Training keys ready for lookups, built once per term.

    A hash index of the keys as strings and, when every key is an integer
    (the common case of numeric ids), of the keys as int64: integer labels
    of new data are then found without turning them into strings.

    Parameters
    ----------
    keys : ndarray of object, shape (k,)
        Canonical keys from :func:`encode`.
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        self.strings = pd.Index(keys.astype(str))
        self.integers: pd.Index | None = None
        if len(keys) and all(_INTEGER.fullmatch(k) for k in self.strings):
            self.integers = pd.Index(self.strings.to_numpy(dtype=str).astype(np.int64))

    def find(self, uniques: pd.Index | np.ndarray) -> np.ndarray:
        """Position of each label in the keys, ``-1`` where absent, shape (u,)."""
        values = np.asarray(uniques)
        if self.integers is not None and values.dtype.kind in "iu":
            return self.integers.get_indexer(pd.Index(values.astype(np.int64), copy=False))
        if self.integers is not None and values.dtype.kind == "f":
            integral = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**53)
            out = np.full(len(values), -1, dtype=np.int64)
            out[integral] = self.integers.get_indexer(values[integral].astype(np.int64))
            return out
        return self.strings.get_indexer(canonical_keys(uniques).astype(str))


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def lookup(column: pd.Series, keys: np.ndarray | KeyIndex) -> np.ndarray:
    """Codes of new data against training keys; ``-1`` for unseen or missing.

    Parameters
    ----------
    column : Series, shape (n,)
    keys : ndarray of object, shape (k,), or KeyIndex
        Training keys from :func:`encode`.

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if len(uniques) == 0:
        return np.full(len(column), -1, dtype=np.int64)
    index = keys if isinstance(keys, KeyIndex) else KeyIndex(keys)
    found = index.find(uniques)
    out = np.where(codes >= 0, found[np.maximum(codes, 0)], -1)
    return out.astype(np.int64)


@dataclass(frozen=True)
class Interaction:
    """Codes and keys of an interaction ``a:b:...`` of grouping columns."""

    codes: np.ndarray
    keys: np.ndarray
    labels: np.ndarray


def combine(parts: list[tuple[np.ndarray, np.ndarray]]) -> Interaction:
    """Levels of an interaction of factors, keeping only observed combinations.

    Parameters
    ----------
    parts : list of (codes, keys)
        Per factor: codes, shape (n,), and keys, shape (k_j,).

    Returns
    -------
    Interaction
        Keys are the factor keys joined by ``":"``, as lme4 names them.
    """
    codes = np.zeros(len(parts[0][0]), dtype=np.int64)
    for part_codes, part_keys in parts:
        codes = codes * len(part_keys) + part_codes
    uniq, inverse = np.unique(codes, return_inverse=True)
    key_cols = []
    rest = uniq.copy()
    for _, part_keys in reversed(parts):
        key_cols.append(part_keys[rest % len(part_keys)].astype(str))
        rest //= len(part_keys)
    joined = key_cols[-1].astype(object)
    for col in reversed(key_cols[:-1]):
        joined = joined + ":" + col.astype(object)
    keys = np.asarray(joined, dtype=object)
    return Interaction(inverse.astype(np.int64), keys, keys.copy())


def interaction_lookup(parts: list[tuple[np.ndarray, np.ndarray]], keys: np.ndarray) -> np.ndarray:
    """Codes of new rows in a training interaction; ``-1`` where unseen.

    Parameters
    ----------
    parts : list of (codes, keys)
        Per factor: the new rows' codes against that factor's training keys
        (``-1`` unseen) and the factor's training keys.
    keys : ndarray of object
        The interaction's training keys.
    """
    n = len(parts[0][0])
    known = np.ones(n, dtype=bool)
    joined = np.full(n, "", dtype=object)
    for j, (part_codes, part_keys) in enumerate(parts):
        known &= part_codes >= 0
        piece = np.where(part_codes >= 0, part_keys[np.maximum(part_codes, 0)], "")
        joined = piece.astype(object) if j == 0 else joined + ":" + piece.astype(object)
    found = pd.Index(keys.astype(str)).get_indexer(joined.astype(str))
    return np.where(known, found, -1).astype(np.int64)
