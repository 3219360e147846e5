"""Issue 5, concurrency: one fitted model, many threads predicting at once, the serial numbers."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

THREADS = 8


def requests(data: pd.DataFrame) -> list[dict]:
    """Every prediction mode, on rows with known, new and missing levels."""
    new = data.copy()
    new["Subject"] = new["Subject"].astype(object)
    new.loc[new.index[::7], "Subject"] = "new subject"
    new.loc[new.index[3], "Subject"] = None
    unseen_level = new.head(5).assign(Week=["first", "never", "first", "first", "first"])
    given_rows = data[data["Subject"] == data["Subject"].iloc[0]].head(3)
    return [
        {"newdata": new},
        {"newdata": new, "re": "none"},
        {"newdata": new, "re": "(1 | Subject)"},
        {"newdata": new, "new_levels": "nan"},
        {"newdata": new, "interval": "confidence"},
        {"newdata": new, "interval": "prediction", "level": 0.8},
        {"newdata": new, "interval": "prediction", "re": "(1 | Subject)"},
        {"newdata": new, "given": given_rows},
        {"newdata": new, "given": given_rows, "interval": "prediction"},
        {"newdata": new, "new_levels": "error"},  # an error, the same in every thread
        {"newdata": unseen_level},  # an error naming Week
    ]


def run(model: mfx.LinearMixedModel, kw: dict) -> object:
    try:
        out = model.predict(**kw)
    except mfx.DataError as exc:
        return ("error", str(exc))
    return np.asarray(out)


def same(a: object, b: object) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


@pytest.fixture()
def fresh_model() -> mfx.LinearMixedModel:
    """A new model each time, so the lazily computed pieces are computed under contention."""
    sleep = mfx.datasets.load("sleepstudy")
    sleep["Week"] = np.where(sleep["Days"] < 5, "first", "second")
    return mfx.lmm("Reaction ~ Days + Week + (Days | Subject)", sleep)


def test_threads_give_the_serial_numbers(fresh_model):
    m = fresh_model
    jobs = requests(m.data) * 6  # 66 calls over 8 threads, modes interleaved
    barrier = threading.Barrier(THREADS)

    def start_together(kw: dict) -> object:
        if threading.current_thread().name not in started:
            started.add(threading.current_thread().name)
            barrier.wait(timeout=30)
        return run(m, kw)

    started: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.MixedFXWarning)
        with ThreadPoolExecutor(THREADS) as pool:
            parallel = list(pool.map(start_together, jobs))
        serial = [run(m, kw) for kw in jobs]
    for kw, a, b in zip(jobs, parallel, serial, strict=True):
        assert same(a, b), {k: v for k, v in kw.items() if k != "newdata"}
    assert parallel[-2][0] == "error" and "not seen in training" in parallel[-2][1]
    assert parallel[-1][0] == "error" and "'Week'" in parallel[-1][1]


def test_first_interval_computed_once_under_contention(fresh_model):
    """Eight threads ask for intervals at once on a model that has not computed them yet."""
    m = fresh_model
    assert "_prediction_error" not in m.__dict__
    barrier = threading.Barrier(THREADS)

    def first(_: int) -> tuple[int, np.ndarray]:
        barrier.wait(timeout=30)
        pe = m.prediction_error()
        out = m.predict(m.data, interval="prediction")
        return id(pe), out.to_numpy()

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(first, range(THREADS)))
    assert len({i for i, _ in results}) == 1  # one object, shared by every thread
    for _, out in results[1:]:
        np.testing.assert_array_equal(out, results[0][1])


def test_warning_filters_survive_concurrent_predictions(fresh_model):
    """Turning formulaic's warning into an error must not leak into the process's filters."""
    before = list(warnings.filters)
    m = fresh_model
    jobs = requests(m.data) * 4
    with ThreadPoolExecutor(THREADS) as pool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.MixedFXWarning)
            inner = list(warnings.filters)
            list(pool.map(lambda kw: run(m, kw), jobs))
            assert warnings.filters == inner
    assert warnings.filters == before
