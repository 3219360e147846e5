"""What counts as missing: the one rule for every column a model reads.

A value is missing when it is ``None``, ``NaN``, ``pd.NA`` or ``NaT``, in
any dtype (NumPy, object, categorical, pandas nullable such as ``Int64``,
``boolean`` and ``string``, Arrow), and a number is missing when it is not
finite (``inf``, also among the objects of an object column). A boolean is a
label: it is missing only as ``pd.NA`` or ``None``.

Every path that turns a frame into model rows reads columns through this
rule (:mod:`mixedfx.frame.rows`): numbers become NaN in ``X``, ``M``, the
offset and the response where missing, and labels get the code
:data:`~mixedfx.frame.levels.MISSING`. Training's policy on them
(:mod:`mixedfx.frame.missing`) counts them with :class:`Count`, which a Dask
frame's partitions add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# pandas.api.types.infer_dtype's kinds of object columns that hold no float
_NO_FLOATS = frozenset(
    ["empty", "string", "bytes", "integer", "boolean", "datetime", "datetime64", "date"]
    + ["timedelta", "timedelta64", "time", "period", "interval"]
)


def is_missing(column: pd.Series) -> np.ndarray:
    """True where a value of ``column`` is missing by the rule above, shape (n,)."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "fiu":  # NumPy numbers: NaN and inf only
        return ~np.isfinite(column.to_numpy())
    if isinstance(dtype, pd.CategoricalDtype):
        codes = np.asarray(column.array.codes)
        gone = _missing_categories(dtype.categories)
        return (codes < 0) | gone[np.maximum(codes, 0)] if gone.any() else codes < 0
    if pd.api.types.is_bool_dtype(dtype):
        return column.isna().to_numpy(dtype=bool)
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":  # NumPy integers: never missing
        return np.zeros(len(column), dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype):
        return ~np.isfinite(column.to_numpy(dtype=float, na_value=np.nan))
    out = column.isna().to_numpy(dtype=bool, copy=True)
    if (
        pd.api.types.is_object_dtype(dtype)
        and pd.api.types.infer_dtype(column, skipna=True) not in _NO_FLOATS
    ):
        out |= np.fromiter((_infinite(v) for v in column), dtype=bool, count=len(column))
    return out


def numbers(column: pd.Series) -> np.ndarray:
    """A numeric column's values as a new float64 array, NaN where missing, shape (n,)."""
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "fiub":  # NumPy: NaN is already missing
        return np.array(column.to_numpy(), dtype=float)
    return column.to_numpy(dtype=float, na_value=np.nan)


def _missing_categories(categories: pd.Index) -> np.ndarray:
    """The rule on a categorical's categories, shape (k,).

    pandas keeps no missing value among categories (a missing value is code
    -1), so only an infinite number can be one: in float or object categories.
    """
    if categories.dtype.kind == "f":
        return np.isinf(categories.to_numpy())
    if pd.api.types.is_object_dtype(categories.dtype):
        return is_missing(pd.Series(categories, dtype=object))
    return np.zeros(len(categories), dtype=bool)


def _infinite(value: object) -> bool:
    return isinstance(value, float | np.floating) and math.isinf(value)


def present(column: pd.Series) -> pd.Series:
    """``column`` with every missing value as NaN, which ``pandas.factorize`` leaves out."""
    gone = is_missing(column)
    return column.mask(gone) if gone.any() else column


@dataclass(frozen=True)
class Count:
    """How many of ``n`` rows a mask marks, and the first of them (``-1``: none).

    Counts of adjacent runs of rows (Dask partitions) add with :meth:`then`.
    """

    n: int
    bad: int = 0
    first: int = -1

    @classmethod
    def of(cls, mask: np.ndarray) -> Count:
        """The count of a boolean mask, shape (n,)."""
        bad = int(np.count_nonzero(mask))  # mask.sum(), without its wrapper
        return cls(len(mask), bad, int(np.argmax(mask)) if bad else -1)

    def then(self, other: Count) -> Count:
        """The count over these rows followed by ``other``'s."""
        first = self.first if self.bad else (self.n + other.first if other.bad else -1)
        return Count(self.n + other.n, self.bad + other.bad, first)
