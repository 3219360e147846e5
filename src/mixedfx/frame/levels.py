"""Grouping levels: exact within a frame, matched by value across frames.

The policy (DESIGN.md, "Policies"):

* **Within one frame labels are compared exactly**, as ``pandas.factorize``
  does: two different strings are two levels (``"7"``, ``"07"`` and ``" 7"``
  are three); nothing is stripped, parsed or lower-cased. Numbers compare by
  value (``1`` and ``1.0`` are one level).
* **Across frames** (training against new data or ``given``) a label is
  first looked up exactly. A label of the other kind (a number against text
  labels, or text against number labels) then matches the training label
  whose text is the number's *canonical spelling*: ``str(int)`` for an
  integral value (``7``, ``7.0`` and ``np.int64(7)`` are spelled ``"7"``),
  ``repr(float)`` otherwise (``2.5``). Other spellings (``"07"``, ``"7.0"``,
  ``" 7"``, ``"1e2"``) match no number. A cross-kind match is *ambiguous*
  when training also holds another spelling of the same value (``"7"`` and
  ``"07"`` against ``7``): a :class:`~mixedfx.DataError` lists the candidates.
* **Interaction and nesting keys are tuples** of labels, one per factor
  (:func:`combine`); lme4's ``"a:b"`` text is for display only.

A training factor's levels are a :class:`Levels`, built once per term and
reused for every lookup: :meth:`Levels.find` runs pandas' hash lookup on the
distinct labels of new data, and looks at the other kind only for labels it
did not find.

Integer columns against integer labels (the common ids) skip the hashing: a
table indexed by value (:class:`IntegerTable`) encodes and looks up each row
in a few passes over the column, with the same result as the hash lookup.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, MixedFXWarning, user_stacklevel
from .na import is_missing, present

_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
_DIGITS = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EXACT_FLOAT = 2**53  # integral floats below this spell as integers
UNSEEN, MISSING = -1, -2  # codes of a label training never saw, and of a missing label
_NUMBER_KINDS = frozenset(["integer", "floating", "mixed-integer-float"])  # infer_dtype's


def as_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """A 1-D object array of labels (tuples stay elements, never become rows)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def display(key: Any) -> str:
    """A level as lme4 prints it: the label, or an interaction's labels joined by ``":"``."""
    return ":".join(map(str, key)) if isinstance(key, tuple) else str(key)


def is_number(label: Any) -> bool:
    """True for int and float labels (Python or NumPy), not for booleans."""
    return isinstance(label, int | float | np.integer | np.floating) and not isinstance(
        label, bool | np.bool_
    )


def spell(label: Any) -> str | None:
    """The canonical spelling of a number label (``7.0 -> "7"``), None for anything else."""
    if not is_number(label):
        return None
    if isinstance(label, int | np.integer):
        return str(int(label))
    value = float(label)
    if not math.isfinite(value):
        return None
    if value.is_integer() and abs(value) < _EXACT_FLOAT:
        return str(int(value))
    return repr(value)


def read(text: str) -> int | float | None:
    """The number that ``text`` spells canonically (``"7" -> 7``; ``"07"``, ``"7.0"`` -> None)."""
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return None
    return value if spell(value) == text else None


def value_of(text: str) -> int | float | None:
    """The number any decimal spelling of ``text`` stands for (``" 07" -> 7``), else None.

    Integers are read exactly (``int``), so distinct long ids stay distinct.
    """
    stripped = text.strip()
    if not _DECIMAL.fullmatch(stripped):
        return None
    if _DIGITS.fullmatch(stripped):
        return int(stripped)
    value = float(stripped)
    return int(value) if value.is_integer() and abs(value) < _EXACT_FLOAT else value


def _normal(label: Any) -> str:
    """A label with case, spaces and number format removed: equal forms are near misses."""
    if isinstance(label, str):
        text = label.strip().casefold()
        value = value_of(text)
        return text if value is None else str(spell(value))
    return spell(label) or str(label)


def _text_extension(dtype: Any) -> bool:
    """A text dtype other than object: ``str``, ``string``, Arrow strings."""
    return pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype)


def _sort_order(uniques: pd.Index | np.ndarray) -> np.ndarray:
    """The order in which lme4 would list the levels of a column that is not a factor: sorted."""
    if isinstance(uniques, pd.Index) and _text_extension(uniques.dtype):
        return np.asarray(uniques.argsort())  # str, Arrow text: code point order, no objects
    values = np.asarray(uniques)
    if values.dtype.kind == "O" and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return np.argsort(values.astype(str), kind="stable")  # code point order
    if values.dtype.kind == "O":  # numbers in an object column sort as numbers
        values = pd.Index(values).infer_objects().to_numpy()
    if values.dtype.kind in "iufb":
        return np.argsort(values, kind="stable")
    return np.argsort(values.astype(str), kind="stable")


def integer_values(column: pd.Series) -> np.ndarray | None:
    """A column's values as int64 when its dtype is a NumPy integer that fits, else None.

    Shape (n,). Such a column has no missing value, and its labels are
    compared by value, so :class:`IntegerTable` can encode and look them up.
    """
    dtype = column.dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iu":
        return None
    values = column.to_numpy()
    if dtype.kind == "u" and dtype.itemsize == 8 and len(values) and values.max() >= 2**63:
        return None
    return values.astype(np.int64, copy=False)


TABLE_SPAN = 4  # a table by value is used while max - min < TABLE_SPAN * (rows + labels) + 1024


def _table_fits(low: int, high: int, size: int) -> bool:
    return high - low < TABLE_SPAN * size + 1024


def encode_integers(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`encode` of int64 values, shape (n,): codes into the sorted distinct values.

    Dense ids (the span of the values a few times their number at most) go
    through a table indexed by value, in a few passes; others through a sort.
    Both give what factorizing and sorting give.
    """
    if not len(values):
        return np.zeros(0, dtype=np.int64), as_array([])
    low, high = int(values.min()), int(values.max())
    if _table_fits(low, high, len(values)):
        offsets = values - low
        seen = np.zeros(high - low + 1, dtype=bool)
        seen[offsets] = True
        rank = np.cumsum(seen, dtype=np.int64) - 1
        return rank[offsets], (np.flatnonzero(seen) + low).astype(object)  # Python ints
    distinct, codes = np.unique(values, return_inverse=True)
    return codes.reshape(-1).astype(np.int64, copy=False), distinct.astype(object)


class IntegerTable:
    """Integer training labels, looked up by value: position of each, ``-1`` where absent.

    Parameters
    ----------
    labels : ndarray of int64, shape (k,)
        Distinct, in any order.
    """

    def __init__(self, labels: np.ndarray) -> None:
        self.size = len(labels)
        self.low = int(labels.min()) if len(labels) else 0
        self.high = int(labels.max()) if len(labels) else -1
        self.table: np.ndarray | None = None
        self.index: pd.Index | None = None
        if _table_fits(self.low, self.high, self.size):
            self.table = np.full(self.high - self.low + 1, UNSEEN, dtype=np.int64)
            self.table[labels - self.low] = np.arange(self.size)
        else:
            self.index = pd.Index(labels)

    def find(self, values: np.ndarray) -> np.ndarray:
        """Positions of int64 values, shape (n,) -> (n,) of int64."""
        if self.index is not None:
            return self.index.get_indexer(pd.Index(values)).astype(np.int64, copy=False)
        assert self.table is not None
        inside = (values >= self.low) & (values <= self.high)
        if inside.all():
            return self.table[values - self.low]
        out = np.full(len(values), UNSEEN, dtype=np.int64)
        out[inside] = self.table[values[inside] - self.low]
        return out


def encode(column: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Level codes of a training grouping column; labels compared exactly.

    Parameters
    ----------
    column : Series, shape (n,)
    name : str
        The column name, for error messages.

    Returns
    -------
    codes : ndarray of int64, shape (n,)
        Index of each row's level in ``labels``.
    labels : ndarray of object, shape (k,)
        The distinct labels as found (a str stays a str, an int an int), in
        lme4's order: the categories' order for a categorical, else sorted.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):  # fast path: codes are given
        _refuse_missing(int(np.count_nonzero(is_missing(column))), name)
        codes = np.asarray(column.array.codes).astype(np.int64)  # no Series built; none is -1
        uniques = column.dtype.categories  # column.cat.categories, without the accessor
        used = np.bincount(codes, minlength=len(uniques)) > 0
        if not used.all():  # drop unused levels, as lme4 does
            codes = (np.cumsum(used) - 1)[codes]
            uniques = uniques[used]
        labels = as_array(np.asarray(uniques, dtype=object).tolist())
        _look_alikes(labels, uniques, name)
        return codes, labels  # in the categories' order, as lme4's levels
    values = integer_values(column)
    if values is not None:
        return encode_integers(values)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    labels_of = np.asarray(uniques, dtype=object)
    # the missing values by na.py's rule: factorize's NA (-1), and inf among the labels
    infinite = np.flatnonzero(is_missing(pd.Series(uniques)))
    gone = codes < 0
    if len(infinite):
        gone |= np.isin(codes, infinite)
    _refuse_missing(int(gone.sum()), name)
    _look_alikes(labels_of, uniques, name)
    order = _sort_order(uniques)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], labels_of[order]


def _objects(dtype: Any) -> bool:
    """Whether labels of ``dtype`` may mix kinds: not one NumPy type, not a pandas text dtype."""
    if isinstance(dtype, np.dtype):
        return dtype.kind == "O"
    return not isinstance(dtype, pd.StringDtype)


def _look_alikes(labels: np.ndarray, uniques: pd.Index, name: str) -> None:
    """:func:`_warn_look_alikes` for labels that may mix kinds (typed labels are of one kind)."""
    if len(labels) > 1 and _objects(uniques.dtype):
        _warn_look_alikes(labels, name)


def _warn_look_alikes(labels: np.ndarray, name: str) -> None:
    """Warn where one column holds a number and the text that spells it (``308``, ``"308"``).

    Within a frame they are two levels (labels are compared exactly), while a
    lookup from other data would match the text to the number: almost always
    rows read with two types (frames concatenated from two files).
    """
    if pd.api.types.infer_dtype(labels, skipna=False) not in ("mixed", "mixed-integer"):
        return
    texts = {label for label in labels if isinstance(label, str)}
    alike = [label for label in labels if spell(label) in texts]
    if alike:
        shown = ", ".join(f"{label!r} and {spell(label)!r}" for label in alike[:3])
        warnings.warn(
            f"column {name!r} holds numbers and the text that spells them "
            f"({len(alike)} such pair(s), e.g. {shown}): they are different levels, as "
            "labels are compared exactly; if they are one level, give the column one type, "
            f"e.g. data[{name!r}].astype(str)",
            MixedFXWarning,
            stacklevel=user_stacklevel(),
        )


def _refuse_missing(count: int, name: str) -> None:
    if count:
        raise DataError(
            f"grouping column {name!r} has {count} missing values; "
            "drop those rows or give them a level"
        )


class Levels:
    """One grouping factor's training labels, ready for lookups (built once per term).

    Parameters
    ----------
    labels : ndarray of object, shape (k,)
        Distinct labels, as from :func:`encode`.
    """

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    @functools.cached_property
    def kind(self) -> str:
        """pandas' ``infer_dtype`` of the labels: ``"string"``, ``"integer"``, ``"mixed"``, ..."""
        return str(pd.api.types.infer_dtype(self.labels, skipna=False))

    @functools.cached_property
    def index(self) -> pd.Index:
        """The labels as an index for hash lookups: typed for numbers, objects for text."""
        if self.kind == "string":  # kept as objects: a str dtype would convert every lookup
            return pd.Index(self.labels, dtype=object)
        return pd.Index(self.labels, dtype=object).infer_objects()

    @functools.cached_property
    def integers(self) -> IntegerTable | None:
        """The labels as an :class:`IntegerTable` when all are integers within int64, else None."""
        if self.kind != "integer" or not len(self.labels):
            return None
        try:
            return IntegerTable(np.array(self.labels.tolist(), dtype=np.int64))
        except OverflowError:
            return None

    @functools.cached_property
    def _texts(self) -> tuple[pd.Index, np.ndarray]:
        """The text labels and their positions."""
        if self.kind == "string":
            where = np.arange(len(self.labels))
        elif self.kind in _NUMBER_KINDS:
            where = np.zeros(0, dtype=np.int64)
        else:
            where = np.flatnonzero([isinstance(v, str) for v in self.labels])
        return pd.Index(self.labels[where], dtype=object), where

    @functools.cached_property
    def _numbers(self) -> tuple[pd.Index, np.ndarray]:
        """The number labels (compared by value) and their positions."""
        if self.kind in _NUMBER_KINDS:
            where = np.arange(len(self.labels))
        elif self.kind == "string":
            where = np.zeros(0, dtype=np.int64)
        else:
            where = np.flatnonzero([is_number(v) for v in self.labels])
        return pd.Index(self.labels[where], dtype=object), where

    @functools.cached_property
    def _integer_texts(self) -> tuple[pd.Index, np.ndarray]:
        """Text labels that spell an int64 canonically (``"7"``), as int64; their positions."""
        texts, positions = self._texts
        numbers = [read(t) for t in texts]
        keep = np.array([type(v) is int and -(2**63) <= v < 2**63 for v in numbers], dtype=bool)
        integers = np.array([v for v, k in zip(numbers, keep, strict=True) if k], dtype=np.int64)
        return pd.Index(integers), positions[keep]

    @functools.cached_property
    def _spellings(self) -> dict[Any, list[str]]:
        """Number -> the text labels that spell it in any way (``7 -> ["7", "07"]``)."""
        out: dict[Any, list[str]] = {}
        for text in self._texts[0]:
            value = value_of(text)
            if value is not None:
                out.setdefault(value, []).append(text)
        return out

    @functools.cached_property
    def _ambiguous(self) -> pd.Index:
        """The numbers that several text labels spell (``7`` for ``"7"`` and ``"07"``)."""
        return pd.Index([v for v, texts in self._spellings.items() if len(texts) > 1], dtype=object)

    @functools.cached_property
    def _normal(self) -> dict[str, Any]:
        """Normal form -> a training label with it (for near misses)."""
        return {_normal(v): v for v in self.labels[::-1]}

    def find(self, uniques: Any, name: str) -> np.ndarray:
        """Position of each distinct new label among the training labels, ``-1`` where absent.

        Parameters
        ----------
        uniques : array-like, shape (u,)
            Distinct labels without missing values (``pandas.factorize``'s uniques).
        name : str
            The column, for the error on an ambiguous match.

        Returns
        -------
        ndarray of int64, shape (u,)

        Raises
        ------
        DataError
            When a number matches a text label and training has other
            spellings of the same value (see module docstring).
        """
        if isinstance(uniques, pd.Categorical | pd.CategoricalIndex):
            uniques = np.asarray(uniques)
        target = pd.Index(uniques)
        if _text_extension(target.dtype):
            target = pd.Index(np.asarray(target, dtype=object), dtype=object)  # str, Arrow text
        if target.dtype.kind in "iuf" and len(self._texts[1]) == len(self.labels):
            out = np.full(len(target), -1, dtype=np.int64)  # numbers against words only
        else:
            out = self.index.get_indexer(target).astype(np.int64)
        missed = np.flatnonzero(out < 0)
        if not len(missed):
            return out
        values = target[missed]
        kind = pd.api.types.infer_dtype(values, skipna=False)
        if kind == "string":
            texts, numbers = np.ones(len(values), dtype=bool), np.zeros(len(values), dtype=bool)
        elif kind in ("integer", "floating", "mixed-integer-float"):
            texts, numbers = np.zeros(len(values), dtype=bool), np.ones(len(values), dtype=bool)
        else:
            texts = np.array([isinstance(v, str) for v in values], dtype=bool)
            numbers = np.array([is_number(v) for v in values], dtype=bool)
        if texts.any() and len(self._numbers[1]):
            self._texts_to_numbers(values[texts], missed[texts], out)
        if numbers.any() and len(self._texts[1]):
            self._numbers_to_texts(np.asarray(values[numbers]), missed[numbers], out, name)
        return out

    def _numbers_to_texts(
        self, values: np.ndarray, where: np.ndarray, out: np.ndarray, name: str
    ) -> None:
        """Numbers against text labels: the canonical spelling, unless ambiguous."""
        if values.dtype.kind in "iu":  # integer ids: an int64 lookup, no text made
            index, positions = self._integer_texts
            found = index.get_indexer(pd.Index(values))
        else:
            index, positions = self._texts
            found = index.get_indexer(pd.Index([spell(v) for v in values], dtype=object))
        hit = found >= 0
        if len(self._ambiguous):
            ambiguous = self._ambiguous.get_indexer(pd.Index(values[hit], dtype=object))
            if (ambiguous >= 0).any():
                value = self._ambiguous[ambiguous[ambiguous >= 0][0]]
                raise DataError(
                    f"label {value!r} of {name!r} matches more than one training label: "
                    f"{self._spellings[value]}; training has several spellings of this "
                    f"number, so give {name!r} as text, spelled as in training"
                )
        out[where[hit]] = positions[found[hit]]

    def _texts_to_numbers(self, values: pd.Index, where: np.ndarray, out: np.ndarray) -> None:
        """Text against number labels: only a canonical spelling reads as a number."""
        numbers, positions = self._numbers
        read_ = [read(v) for v in values]
        ok = np.array([v is not None for v in read_], dtype=bool)
        if ok.any():
            found = numbers.get_indexer(pd.Index([v for v in read_ if v is not None], dtype=object))
            hit = found >= 0
            out[where[ok][hit]] = positions[found[hit]]

    def near_misses(self, unseen: Sequence[Any] | np.ndarray) -> list[tuple[Any, Any]]:
        """(new, training) label pairs that differ only in case, spaces or number format."""
        pairs = []
        for v in unseen:
            match = self._normal.get(_normal(v))
            if match is not None:
                pairs.append((v, match))
        return pairs

    def mismatch(self, unseen: Sequence[Any] | np.ndarray, matched: bool) -> str | None:
        """Why unseen labels of new data look like a labelling mismatch, or None.

        Evidence: labels that differ from training's only in case, spaces,
        zero padding or number format; or, when no label matched, labels of
        a kind training's cannot match (numbers against words, or words
        against numbers).
        """
        pairs = self.near_misses(unseen)
        if pairs:
            shown = ", ".join(f"{a!r} ~ {b!r}" for a, b in pairs[:3])
            return (
                f"{len(pairs)} of them differ from training labels only in case, spaces, "
                f"zero padding or number format ({shown}; new ~ training)"
            )
        if matched:
            return None
        words_new = all(isinstance(v, str) and value_of(v) is None for v in unseen)
        numbers_new = all(is_number(v) for v in unseen)
        numeric = len(self._numbers[1]) + sum(len(t) for t in self._spellings.values())
        sample = list(self.labels[:3])
        if numbers_new and numeric == 0:
            return f"they are numbers, while training's labels are words (e.g. {sample})"
        if words_new and numeric == len(self.labels):
            return f"they are words, while training's labels are numbers (e.g. {sample})"
        return None


def lookup(column: pd.Series, levels: Levels, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Codes of new data against training levels, and the labels training never saw.

    Parameters
    ----------
    column : Series, shape (n,)
    levels : Levels
    name : str
        The column name, for error messages.

    Returns
    -------
    codes : ndarray of int64, shape (n,)
        The level's position; :data:`UNSEEN` (-1) for a label training never
        saw, :data:`MISSING` (-2) for a missing label (:mod:`mixedfx.frame.na`).
    unseen : ndarray of object, shape (u,)
        The distinct labels training never saw.
    """
    values = integer_values(column)
    if values is not None and levels.integers is not None:
        out = levels.integers.find(values)
        unseen = out < 0
        return out, as_array(pd.unique(values[unseen]).tolist() if unseen.any() else [])
    codes, uniques = pd.factorize(present(column), use_na_sentinel=True)
    if len(uniques) == 0:
        return np.full(len(column), MISSING, dtype=np.int64), as_array([])
    found = levels.find(uniques, name)
    out = np.where(codes >= 0, found[np.maximum(codes, 0)], MISSING).astype(np.int64)
    return out, as_array(np.asarray(uniques, dtype=object)[found < 0].tolist())


def combine(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Levels of an interaction of factors, keeping only observed combinations.

    Parameters
    ----------
    parts : list of (codes, labels)
        Per factor: codes, shape (n,), into its labels, shape (k_j,).

    Returns
    -------
    codes : ndarray of int64, shape (n,)
    keys : ndarray of object, shape (l,)
        One tuple of labels per combination, ordered by the first factor's
        order, then the second's, ...
    """
    first, codes = np.unique(parts[0][0], return_inverse=True)
    per_factor = [first]  # each level's code in each factor so far
    for part_codes, labels in parts[1:]:
        joint = codes * len(labels) + part_codes
        uniq, codes = np.unique(joint, return_inverse=True)
        per_factor = [c[uniq // len(labels)] for c in per_factor] + [uniq % len(labels)]
    columns = [labels[c] for (_, labels), c in zip(parts, per_factor, strict=True)]
    return codes.reshape(-1).astype(np.int64), as_array(list(zip(*columns, strict=True)))
