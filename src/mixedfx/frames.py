"""Frames that are not in memory: dispatch to an optional backend.

A Dask frame is fitted, scored or summed by :mod:`mixedfx.distributed`,
which depends on the core and calls only its public functions. The core
never imports it (or Dask): :func:`backend` recognises a frame by the module
of its type and imports the backend on first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

BACKENDS = {"dask": "mixedfx.distributed", "dask_expr": "mixedfx.distributed"}


def backend(obj: object) -> ModuleType | None:
    """The backend module for a frame that is not in memory, or None for in-memory frames.

    A backend module provides ``lmm(formula, data, reml, missing, progress, offset)``,
    ``predict(model, newdata, re, new_levels, interval, level)`` and
    ``condition(model, given)``.
    """
    name = BACKENDS.get(type(obj).__module__.split(".")[0])
    return None if name is None else importlib.import_module(name)
