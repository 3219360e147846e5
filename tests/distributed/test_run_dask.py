"""The per-partition tasks of the Dask passes free their partition without a collection.

:func:`mixedfx.distributed.run.per_partition` no longer runs a full garbage
collection after each task (~0.3 s in a worker's heap): the partition must
then be freed by reference counting alone, i.e. the work on it must make no
reference cycles that hold it (or a converted copy of it).
"""

from __future__ import annotations

import gc
import warnings
import weakref

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.frame import missing as missing_mod
from mixedfx.frame.formula import parse

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")

from mixedfx.distributed import fit as dask_fit  # noqa: E402
from mixedfx.distributed import learn as dask_learn  # noqa: E402
from mixedfx.distributed import run, score  # noqa: E402

FORMULAS = [
    "y ~ x + (1 | user) + (1 | item)",
    "y ~ scale(x) + poly(x, 2) + (x | user) + (1 | item)",
    "y ~ factor(c) + x + (1 | user:c) + (1 | item)",
    "y ~ x + (1 | c / user)",
]


def frame(n: int = 4000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user, item = rng.integers(0, 200, n), rng.integers(0, 30, n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=200)[user] + rng.normal(size=30)[item] + rng.normal(size=n)
    c = np.array(["a", "b", "c"])[user % 3]
    return pd.DataFrame({"y": y, "x": x, "user": user, "item": item, "c": c})


def _plan(formula: str, ddf) -> dask_learn.Plan:
    parsed = parse(formula)
    meta = dask_learn.memory_dtypes(ddf._meta)
    return dask_learn.Plan(
        parsed,
        tuple(missing_mod.used_columns(formula, meta, [])),
        tuple(dict.fromkeys(t.factors for t in parsed.random)),
        None,
    )


def _no_cycles(work, part: pd.DataFrame, arg) -> None:
    """``work(part, arg)`` frees ``part`` and every array it made by reference counting."""
    gc.collect()
    gc.disable()
    try:
        ref = weakref.ref(part)
        out = work(part, arg)
        del part
        assert ref() is None, "the partition outlives its task"
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        big = [
            type(o).__name__
            for o in gc.garbage
            if isinstance(o, np.ndarray | pd.DataFrame | pd.Series) and o.nbytes > 10_000
        ]
        assert not big, f"{work.__name__} left arrays in reference cycles: {big}"
        del out
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("formula", FORMULAS)
def test_partition_work_makes_no_cycles(formula: str) -> None:
    df = frame()
    ddf = dd.from_pandas(df, npartitions=2)
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learned = dask_learn.learn(formula, ddf)
    _no_cycles(dask_learn.survey, df.copy(), _plan(formula, ddf))
    _no_cycles(dask_fit.partial, df.copy(), learned.design)


def test_given_tasks_make_no_cycles() -> None:
    """The two passes of ``condition`` with Dask ``given`` rows (score._survey, _given_part)."""
    df = frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mfx.lmm(FORMULAS[0], df)
    given = frame(500, seed=9)
    given["user"] += 150  # some new users
    small = score.slim(model, None)
    survey = score._survey(given.copy(), small)
    terms = [t.with_levels(u)[0] for t, u in zip(model.spec.terms, survey.groups, strict=True)]
    _no_cycles(score._survey, given.copy(), small)
    _no_cycles(score._given_part, given.copy(), (small, terms))


def test_tasks_do_not_collect(monkeypatch) -> None:
    """A fit's per-partition tasks run no garbage collection (it cost ~0.3 s per task)."""
    calls = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(a) or real(*a))
    df = frame()
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mfx.lmm(FORMULAS[0], dd.from_pandas(df, npartitions=4))
    assert calls == []
    assert "gc" not in vars(run)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 16])
def test_runs_combine_in_order_pairwise(n: int) -> None:
    """Order kept (a non-commutative combine), each item in log2(n) + 1 combines at most."""
    sizes: list[int] = []

    def combine(a: str, b: str) -> str:
        sizes.append(len(a) + len(b))
        return a + b

    runs = run.Runs(combine)
    letters = [chr(ord("a") + i) for i in range(n)]
    for c in letters:
        runs.push(c)
        assert len(runs.stack) <= n.bit_length()
    assert runs.total() == "".join(letters)
    # the work of combining: sum of the combined sizes; sequentially it is ~n^2 / 2
    assert sum(sizes) <= n * (n.bit_length() + 1)
    if n == 16:
        assert sum(sizes) == 16 * 4  # a full binary tree: every item at 4 levels
    assert run.Runs(combine).total() is None


def test_fold_on_a_client_keeps_the_order() -> None:
    distributed = pytest.importorskip("dask.distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        items = [dask.delayed(str)(i) for i in range(11)]
        assert run.fold(items, lambda a, b: a + "," + b, window=3) == ",".join(map(str, range(11)))
