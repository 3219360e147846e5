"""Fit and predict on Dask data frames (the optional ``mixedfx[dask]`` extra).

The engine works on sufficient statistics: the blocks of
``A = [Z X y]'[Z X y]`` are sums over rows. On a ``dask.dataframe.DataFrame``

* pass 1 (:mod:`.learn`) learns the design partition by partition: grouping
  levels from the distinct rows of the grouping columns, the formula's
  learned state (categorical levels, ``scale()`` and ``poly()`` constants:
  :mod:`mixedfx.frame.state`), and the checks the in-memory path makes
  (missing values, constant response);
* pass 2 (:mod:`.fit`) forms the blocks of each partition with the learned
  design and adds them up in a tree (sparse where they are sparse), along
  with a QR factor of X for the rank check;

then the in-memory optimizer runs on the summed blocks and gives the same
:class:`~mixedfx.LinearMixedModel` (no training rows are kept: fitted values
and residuals come from ``m.predict(ddf)``). Predictions (:mod:`.score`)
are lazy: ``map_partitions`` over the new rows. ``given`` rows on Dask are
summed into blocks the same way, in two passes, and never collected.

This package is a backend of the core (:mod:`mixedfx.frames` dispatches a
Dask frame here by the module of its type): it depends on the core's public
functions, and the core never imports it. ``import mixedfx`` stays free of
Dask.
"""

from __future__ import annotations

from typing import Any

from ..errors import DataError
from ..model import LinearMixedModel


def lmm(
    formula: str,
    data: Any,
    reml: bool,
    missing: str,
    progress: bool,
    offset: str | None = None,
) -> LinearMixedModel:
    """:func:`mixedfx.lmm` on a Dask frame: two passes over its partitions."""
    if missing != "error":
        raise DataError(
            f"missing={missing!r} is not supported for a Dask frame; drop the rows "
            "first with ddf.dropna(subset=[...])"
        )
    from .fit import lmm as dask_lmm

    return dask_lmm(formula, data, reml, progress, offset)


def predict(
    model: Any,
    newdata: Any,
    re: str | None,
    new_levels: str,
    interval: str | None,
    level: float,
    kind: str | None = None,
) -> Any:
    """``predict`` on a Dask frame: lazy, partition by partition (``kind``: a GLMM's type)."""
    from .score import predict as dask_predict

    return dask_predict(model, newdata, re, new_levels, interval, level, kind)


def condition(model: LinearMixedModel, given: Any) -> LinearMixedModel:
    """:meth:`LinearMixedModel.condition` on given rows in a Dask frame (summed, not collected)."""
    from .score import condition as dask_condition

    return dask_condition(model, given)
