"""The BLAS thread policy (threads.py): the choice, the pinning, and lmm's threads=."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import mixedfx as mfx
from mixedfx import threads
from mixedfx.engine import blocks as blocks_mod


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def sized(m: int) -> blocks_mod.Blocks:
    """Blocks whose dense factor has m rows (only m is read by the policy)."""
    return blocks_mod.Blocks(0, 2, 1, (), m - 1, 10, np.ones((2, 1, 1)), np.ones((m, 2)), np.eye(m))


def test_one_thread_below_the_size_where_parallel_blas_pays(monkeypatch) -> None:
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.0)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 8)
    monkeypatch.setattr(threads, "allowed", lambda: 8)
    assert threads.choose(sized(threads.PARALLEL_MIN - 1)) == 1
    assert threads.choose(sized(threads.PARALLEL_MIN)) == 8


def test_busy_cores_are_left_alone(monkeypatch) -> None:
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    monkeypatch.setattr(threads, "allowed", lambda: 2)
    big = sized(threads.PARALLEL_MIN)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 1.0)  # one other CPU-bound process
    assert threads.choose(big) == 1
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 9.0)
    assert threads.choose(big) == 1
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.0)
    assert threads.choose(big) == 2
    # the load average still holds this process's last minute: a trace is not a busy core
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.04)
    assert threads.choose(big) == 2
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.6)  # most of a core in use
    assert threads.choose(big) == 1


def test_an_explicit_choice_wins_and_is_checked() -> None:
    assert threads.choose(sized(10), 3) == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            threads.choose(sized(10), bad)  # type: ignore[arg-type]


def test_pinned_limits_nests_and_restores() -> None:
    before = blas_threads()
    with threads.pinned(1):
        assert set(blas_threads()) == {1}
        with threads.pinned(2):  # the outer limit holds
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
    with threads.pinned(None):
        assert blas_threads() == before


def test_lmm_threads_argument() -> None:
    data = mfx.datasets.load("sleepstudy")
    formula = "Reaction ~ Days + (Days | Subject)"
    with pytest.raises(ValueError, match="threads"):
        mfx.lmm(formula, data, threads=0)
    one, two = mfx.lmm(formula, data, threads=1), mfx.lmm(formula, data, threads=2)
    np.testing.assert_allclose(two.theta, one.theta, rtol=1e-10)


def test_concurrent_fits_share_the_limit_and_restore_it() -> None:
    data = mfx.datasets.load("sleepstudy")
    before = blas_threads()
    results: list[float] = []

    def fit() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results.append(mfx.lmm("Reaction ~ Days + (Days | Subject)", data).objective)

    workers = [threading.Thread(target=fit) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(results) == 6 and len(set(results)) == 1
    assert blas_threads() == before


def test_rows_are_read_with_one_thread_next_to_a_busy_core(monkeypatch) -> None:
    """Forming the blocks ran with BLAS's own threads before the policy chose: 1.4x slower."""
    from mixedfx import fit as fit_mod

    monkeypatch.setattr(threads, "READING_MIN", 100)  # sleepstudy's 180 rows count as many

    seen: list[list[int]] = []
    form = fit_mod.form_blocks

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(blas_threads())
        return form(*args, **kwargs)

    monkeypatch.setattr(fit_mod, "form_blocks", watched)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    data = mfx.datasets.load("sleepstudy")
    before = blas_threads()
    with threadpool_limits(2, user_api="blas"):  # as if OPENBLAS_NUM_THREADS=2
        monkeypatch.setattr(threads, "busy_elsewhere", lambda: 1.0)
        mfx.lmm("Reaction ~ Days + (Days | Subject)", data)
        monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.0)
        assert threads.reading(None, 10**6) is None and threads.reading(3) == 3
        monkeypatch.setattr(threads, "busy_elsewhere", lambda: 1.0)
        assert threads.reading(None, 99) is None  # few rows: nothing to limit
        assert set(blas_threads()) == {2}
    assert seen == [[1] * len(before)]
    assert blas_threads() == before


def test_never_more_threads_than_the_process_allows(monkeypatch) -> None:
    """OPENBLAS_NUM_THREADS=1 or a joblib worker's limit: the policy must not raise it."""
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 0.0)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 8)
    big = sized(threads.PARALLEL_MIN)
    with threadpool_limits(1, user_api="blas"):
        assert threads.allowed() == 1
        assert threads.choose(big) == 1
    with threadpool_limits(2, user_api="blas"):
        assert threads.choose(big) == 2
    assert threads.choose(big, 3) == 3  # the user's explicit choice still wins
