"""The frame boundary: every frame a user passes is turned into pandas here, or dispatched.

A Dask frame is fitted, scored or summed by :mod:`mixedfx.distributed`,
which depends on the core and calls only its public functions. The core
never imports it (or Dask): :func:`backend` recognises a frame by the module
of its type and imports the backend on first use.

Every other frame goes through :func:`in_memory` once, where the call
enters mixedfx (``lmm``, ``predict``, ``given``, ``condition``, ``design``,
the estimator): polars ``DataFrame`` and ``LazyFrame`` and pyarrow ``Table``
become pandas frames, and pandas columns with nullable or Arrow dtypes
(``string[pyarrow]``, ``string[python]``, ``pd.ArrowDtype``, ``Int64``,
``boolean``: anything ``convert_dtypes()`` gives) become the NumPy or object
columns the rest of mixedfx reads, so every frame type gives the numbers of
the pandas object-dtype path. polars and pyarrow are imported only when
given such an object.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError

BACKENDS = {"dask": "mixedfx.distributed", "dask_expr": "mixedfx.distributed"}


def backend(obj: object) -> ModuleType | None:
    """The backend module for a frame that is not in memory, or None for in-memory frames.

    A backend module provides ``lmm(formula, data, reml, missing, progress, offset)``,
    ``predict(model, newdata, re, new_levels, interval, level)`` and
    ``condition(model, given)``.
    """
    name = BACKENDS.get(type(obj).__module__.split(".")[0])
    return None if name is None else importlib.import_module(name)


def in_memory(obj: Any, what: str) -> pd.DataFrame:
    """``obj`` as a pandas DataFrame with NumPy and object columns.

    Parameters
    ----------
    obj : pandas DataFrame, polars DataFrame or LazyFrame, or pyarrow Table
    what : str
        The argument's name, for the error message.

    Returns
    -------
    DataFrame
        ``obj`` itself when it is a pandas frame that needs no conversion.

    Raises
    ------
    DataError
        For any other type.
    """
    module = type(obj).__module__.split(".")[0]
    if isinstance(obj, pd.DataFrame):
        frame = obj
    elif module == "polars":
        frame = _from_polars(obj)
    elif module == "pyarrow" and hasattr(obj, "to_pandas"):
        frame = obj.to_pandas()
    else:
        raise DataError(
            f"{what} must be a pandas DataFrame (or a polars DataFrame or LazyFrame, a "
            f"pyarrow Table, a Dask DataFrame), got {type(obj).__name__}"
        )
    return plain_dtypes(frame)


def plain_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every nullable or Arrow column as a NumPy or object column.

    Columns whose missing value is ``pd.NA`` (nullable, ``string`` and Arrow
    dtypes) are converted; a categorical keeps its codes, with its
    categories converted alike. Other columns are untouched, and the frame
    is returned as is when none needs converting.
    """
    convert = [
        j
        for j, dtype in enumerate(_dtypes(frame))
        if _nullable(dtype)
        or (isinstance(dtype, pd.CategoricalDtype) and _nullable(dtype.categories.dtype))
    ]
    if not convert:
        return frame
    out = frame.copy(deep=False)
    for j in convert:
        col = frame.iloc[:, j]
        if isinstance(col.dtype, pd.CategoricalDtype):
            categories = pd.Index(_numpy(pd.Series(col.cat.categories)))
            out.isetitem(
                j,
                pd.Categorical.from_codes(
                    col.cat.codes.to_numpy(), categories=categories, ordered=col.cat.ordered
                ),
            )
        else:
            out.isetitem(j, _numpy(col))
    return out


def _dtypes(frame: pd.DataFrame) -> Any:
    """The columns' dtypes in order: ``frame.dtypes``' values, without building its Series.

    That Series (an object index of the columns) costs ten times the lookup of
    the dtypes themselves, on every fit; pandas' block manager has them as an
    array (a pandas without ``get_dtypes`` takes ``frame.dtypes``).
    """
    get_dtypes = getattr(getattr(frame, "_mgr", None), "get_dtypes", None)
    return frame.dtypes if get_dtypes is None else get_dtypes()


def _nullable(dtype: Any) -> bool:
    return getattr(dtype, "na_value", None) is pd.NA


def _numpy(col: pd.Series) -> np.ndarray:
    """A nullable column's values: numbers as NumPy (NaN where missing), the rest as objects."""
    kind = getattr(getattr(col.dtype, "numpy_dtype", None), "kind", "O")
    missing = bool(col.isna().any())
    if kind in "iu" and not missing:
        return col.to_numpy(dtype=np.int64 if kind == "i" else np.uint64)
    if kind == "b" and not missing:
        return col.to_numpy(dtype=bool)
    if kind in "iuf":
        return col.to_numpy(dtype=float, na_value=np.nan)
    return col.to_numpy(dtype=object, na_value=np.nan)


def _from_polars(obj: Any) -> pd.DataFrame:
    """A polars DataFrame or LazyFrame as pandas, without pyarrow.

    An ``Enum`` column becomes a pandas categorical with the Enum's order
    (a factor); a ``Categorical`` column becomes text, whose levels are then
    sorted as for any text column.
    """
    import polars as pl  # only reached when given a polars object

    if isinstance(obj, pl.LazyFrame):
        obj = obj.collect()
    columns: dict[str, Any] = {}
    for s in obj.get_columns():
        if isinstance(s.dtype, pl.Enum):
            columns[s.name] = pd.Categorical(
                s.cast(pl.String).to_numpy(), categories=s.dtype.categories.to_list()
            )
        elif isinstance(s.dtype, pl.Categorical):
            columns[s.name] = s.cast(pl.String).to_numpy()
        else:
            columns[s.name] = s.to_numpy()
    return pd.DataFrame(columns)
