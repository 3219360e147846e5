"""The rows of a Dask frame's partitions against the in-memory rows of the same frame.

Dask stores the frame its own way (text as ``string[pyarrow]``, ``pd.NA``
for missing values); each partition goes through the frame boundary's
conversion and :func:`mixedfx.frame.rows.build`, as memory does. For frames
with missing values in every dtype, the partitions' rows are the memory
rows (the same function on the same values, row by row: exact), their
tallies add up to the memory tally (what the checks of training and of
``given`` read), and the Dask paths raise the memory path's errors.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.frame import rows
from mixedfx.frame.missing import DROP_HINT
from mixedfx.frames import in_memory
from strategies import MISSING_FORMULA, frames_with_missing, missing_training

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

from mixedfx.distributed import fit as dask_fit  # noqa: E402
from mixedfx.distributed import score  # noqa: E402
from mixedfx.distributed.learn import DASK_HINT, memory_dtypes  # noqa: E402

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def model() -> mfx.LinearMixedModel:
    return mfx.lmm(MISSING_FORMULA, missing_training())


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def partitions(frame: pd.DataFrame, k: int) -> list[pd.DataFrame]:
    """The partitions as Dask holds them (its dtypes), computed."""
    ddf = dd.from_pandas(frame, npartitions=k)
    return list(dask.compute(*ddf.to_delayed()))


def assert_tallies_equal(a: rows.Tally, b: rows.Tally) -> None:
    assert (a.y, a.offset, a.x, a.labels, a.effects) == (b.y, b.offset, b.x, b.labels, b.effects)
    np.testing.assert_array_equal(a.x_columns, b.x_columns)


@given(frames_with_missing(), st.integers(1, 4))
@SETTINGS
def test_partitions_give_the_memory_rows_and_masks(model, case, k: int) -> None:
    frame, _ = case
    spec = model.spec
    memory = rows.build(spec, in_memory(frame, "data"), response=True)
    parts = partitions(frame, k)
    built = [rows.build(spec, memory_dtypes(p), response=True) for p in parts]
    # the same function on the same values, row by row: identical (NaN where NaN)
    np.testing.assert_array_equal(np.vstack([b.X for b in built]), memory.X)
    np.testing.assert_array_equal(np.concatenate([b.offset for b in built]), memory.offset)
    np.testing.assert_array_equal(np.concatenate([b.working for b in built]), memory.working)
    for t in range(len(spec.terms)):
        np.testing.assert_array_equal(np.concatenate([b.codes[t] for b in built]), memory.codes[t])
        np.testing.assert_array_equal(np.vstack([b.M[t] for b in built]), memory.M[t])
    # the masks, counted per partition by the fit's pass 2 and the given survey, add up
    expected = rows.Tally.of(memory)
    partials = [dask_fit.partial(p, spec).tally for p in parts]
    assert_tallies_equal(functools.reduce(rows.Tally.then, partials), expected)
    surveys = [score._survey(p, model) for p in parts]
    combined = functools.reduce(score._combine_surveys, surveys)
    assert_tallies_equal(combined.tally, expected)


def _error(call) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.MixedFXWarning)
            call()
    except mfx.DataError as exc:
        return str(exc)
    return None


@given(frames_with_missing(), st.integers(1, 3))
@settings(SETTINGS, max_examples=15)  # each runs Dask's passes: ~1 s
def test_dask_given_and_training_raise_the_memory_errors(model, case, k: int) -> None:
    frame, missing = case
    ddf = dd.from_pandas(frame, npartitions=k)
    assert _error(lambda: model.condition(ddf)) == _error(lambda: model.condition(frame))
    if not np.logical_or.reduce(list(missing.values())).any():
        return  # nothing missing: the fits are compared in test_distributed.py
    memory = _error(lambda: mfx.lmm(MISSING_FORMULA, frame))
    on_dask = _error(lambda: mfx.lmm(MISSING_FORMULA, ddf))
    assert memory is not None and on_dask is not None
    assert on_dask.replace(DASK_HINT, DROP_HINT) == memory
