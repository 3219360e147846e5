"""Fit and predict on Dask data frames (the optional ``mixedfx[dask]`` extra).

The engine works on sufficient statistics: the blocks of
``A = [Z X y]'[Z X y]`` are sums over rows. On a ``dask.dataframe.DataFrame``

* pass 1 (:mod:`.learn`) learns the design partition by partition: grouping
  levels from the distinct rows of the grouping columns, formulaic's
  categorical levels and stateful-transform constants (:mod:`.states`), and
  the checks the in-memory path makes (missing values, constant response);
* pass 2 (:mod:`.fit`) forms the blocks of each partition with the learned
  design and adds them up in a tree (sparse where they are sparse), along
  with a QR factor of X for the rank check;

then the in-memory optimizer runs on the summed blocks and gives the same
:class:`~mixedfx.LinearMixedModel` (no training rows are kept: fitted values
and residuals come from ``m.predict(ddf)``). Predictions (:mod:`.score`)
are lazy: ``map_partitions`` over the new rows. ``given`` rows on Dask are
summed into blocks the same way, in two passes, and never collected.

This package's ``__init__`` does not import Dask: ``import mixedfx`` stays
free of it, and :func:`is_dask` dispatches on a cheap type check.
"""

from __future__ import annotations


def is_dask(obj: object) -> bool:
    """True for Dask collections (checked by module name, without importing Dask)."""
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr")
