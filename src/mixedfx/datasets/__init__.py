"""Classic mixed-model data sets, bundled with mixedfx.

The data are exported from R's lme4 and nlme packages by
``tests/reference/export_datasets.R`` into gzipped CSV files, together with a
sidecar ``levels.json`` that records each column's R type and, for factors,
the levels in R's order.  :func:`load` rebuilds the data frame so that it
matches R's: factors become :class:`pandas.Categorical` with R's level order
(ordered factors stay ordered), double columns are ``float64`` and integer
columns ``int64``.  Factor labels are kept as strings, exactly as R prints
them (e.g. sleepstudy's ``Subject`` levels are ``"308"``, ``"309"``, ...).

Available data sets
-------------------
sleepstudy
    lme4::sleepstudy, 180 rows: ``Reaction``, ``Days``, ``Subject``.
dyestuff
    lme4::Dyestuff, 30 rows: ``Batch``, ``Yield``.
dyestuff2
    lme4::Dyestuff2, 30 rows: ``Batch``, ``Yield`` (a singular fit).
penicillin
    lme4::Penicillin, 144 rows: ``diameter``, ``plate``, ``sample`` (crossed).
pastes
    lme4::Pastes, 60 rows: ``strength``, ``batch``, ``cask``, ``sample``
    (nested: ``sample`` is ``batch:cask``).
insteval
    lme4::InstEval, 73,421 rows: ``s``, ``d``, ``studage``, ``lectage``,
    ``service``, ``dept``, ``y``.
orthodont
    nlme::Orthodont as a plain data frame, 108 rows: ``distance``, ``age``,
    ``Subject``, ``Sex``.
cbpp
    lme4::cbpp, 56 rows: ``herd``, ``incidence``, ``size``, ``period``
    (binomial: ``incidence`` cases out of ``size``).
grouseticks
    lme4::grouseticks, 403 rows: ``INDEX``, ``TICKS``, ``BROOD``, ``HEIGHT``,
    ``YEAR``, ``LOCATION``, ``cHEIGHT`` (Poisson counts; ``INDEX`` is one
    level per row).

Examples
--------
>>> from mixedfx import datasets
>>> df = datasets.load("sleepstudy")
>>> df.shape
(180, 3)
>>> list(df["Subject"].cat.categories[:3])
['308', '309', '310']
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["load", "names"]

_NAMES: tuple[str, ...] = (
    "sleepstudy",
    "dyestuff",
    "dyestuff2",
    "penicillin",
    "pastes",
    "insteval",
    "orthodont",
    "cbpp",
    "grouseticks",
)

_FACTOR_TYPES = ("factor", "ordered")


def names() -> list[str]:
    """Return the names of the bundled data sets.

    Returns
    -------
    list of str
        The names accepted by :func:`load`, in lower case.
    """
    return list(_NAMES)


@cache
def _metadata() -> dict[str, Any]:
    """Read and cache the sidecar ``levels.json`` (column types and factor levels)."""
    text = (files(__name__) / "data" / "levels.json").read_text(encoding="utf-8")
    meta: dict[str, Any] = json.loads(text)
    return meta


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a pandas DataFrame.

    Parameters
    ----------
    name : str
        Name of the data set, case-insensitive; one of :func:`names`:
        ``"sleepstudy"``, ``"dyestuff"``, ``"dyestuff2"``, ``"penicillin"``,
        ``"pastes"``, ``"insteval"``, ``"orthodont"``, ``"cbpp"``,
        ``"grouseticks"``.

    Returns
    -------
    pandas.DataFrame
        A new data frame (safe to modify) with R's column names and row order.
        Factor columns are ``Categorical`` with the categories (strings) in R's
        level order, ordered where R's factor is ordered; numeric columns are
        ``float64``, or ``int64`` where the R column is integer.

    Raises
    ------
    ValueError
        If `name` is not one of the bundled data sets.
    TypeError
        If `name` is not a string.

    Examples
    --------
    >>> df = load("Dyestuff")
    >>> df.dtypes["Yield"]
    dtype('float64')
    >>> list(df["Batch"].cat.categories)
    ['A', 'B', 'C', 'D', 'E', 'F']
    """
    if not isinstance(name, str):
        raise TypeError(f"data set name must be a string, not {type(name).__name__}")
    key = name.strip().lower()
    if key not in _NAMES:
        raise ValueError(f"unknown data set {name!r}; available data sets: {', '.join(_NAMES)}")

    meta = _metadata()[key]
    columns: list[dict[str, Any]] = meta["columns"]
    # Read factor labels as strings so that labels such as "308" or "01" keep
    # their exact text; numbers are parsed by pandas' default (exact) parser.
    dtypes: dict[str, Any] = {col["name"]: str for col in columns if col["type"] in _FACTOR_TYPES}
    resource = files(__name__) / "data" / f"{key}.csv.gz"
    with resource.open("rb") as handle:
        raw = pd.read_csv(
            handle,
            compression="gzip",
            dtype=dtypes,
            keep_default_na=False,
        )

    expected = [col["name"] for col in columns]
    if list(raw.columns) != expected or len(raw) != meta["nrow"]:
        raise RuntimeError(
            f"bundled data set {key!r} does not match levels.json "
            f"(columns {list(raw.columns)} vs {expected}, rows {len(raw)} vs {meta['nrow']}); "
            "regenerate with tests/reference/export_datasets.R"
        )

    out: dict[str, Any] = {}
    for col in columns:
        col_name: str = col["name"]
        kind: str = col["type"]
        values = raw[col_name]
        if kind in _FACTOR_TYPES:
            levels = [str(level) for level in col["levels"]]
            cat = pd.Categorical(
                values.to_numpy(dtype=object),
                categories=levels,
                ordered=kind == "ordered",
            )
            if (cat.codes < 0).any():
                raise RuntimeError(
                    f"bundled data set {key!r}: column {col_name!r} has labels "
                    "outside its levels in levels.json"
                )
            out[col_name] = cat
        elif kind == "integer":
            out[col_name] = values.to_numpy(dtype=np.int64)
        elif kind == "double":
            out[col_name] = values.to_numpy(dtype=np.float64)
        else:
            raise RuntimeError(
                f"bundled data set {key!r}: column {col_name!r} has unknown type {kind!r}"
            )
    return pd.DataFrame(out, columns=expected)
