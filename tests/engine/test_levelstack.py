"""Stacks of small matrices held level last (levelstack.py), against numpy's per-matrix linalg."""

from __future__ import annotations

import numpy as np
import pytest

from mixedfx.engine import levelstack


def stack(mats: np.ndarray) -> np.ndarray:
    """(l, q, q) -> contiguous (q, q, l)."""
    return np.ascontiguousarray(np.moveaxis(mats, 0, -1))


def unstack(X: np.ndarray) -> np.ndarray:
    return np.moveaxis(X, -1, 0)


def spd(rng: np.random.Generator, levels: int, q: int, spread: float) -> np.ndarray:
    """``T' A T + I`` as the objective forms it: eigenvalues from 1 to about ``spread``."""
    Z = rng.normal(size=(levels, 3 * q, q))
    T = np.tril(rng.normal(size=(q, q))) * np.sqrt(spread / (3 * q))
    return T.T @ (Z.transpose(0, 2, 1) @ Z) @ T + np.eye(q)


@pytest.mark.parametrize("q", [3, 4, 5])
@pytest.mark.parametrize("spread", [1.0, 1e6])
def test_inverse_and_log_determinant(q: int, spread: float) -> None:
    rng = np.random.default_rng(q)
    M = spd(rng, 57, q, spread)
    inverse, logdet = levelstack.inverse_logdet(stack(M))
    expected = np.linalg.inv(M)
    cond = np.linalg.cond(M).max()
    # backward-stable Cholesky: the error grows with the condition number
    scale = np.abs(expected).max(axis=(1, 2), keepdims=True)
    assert (np.abs(unstack(inverse) - expected) / scale).max() < 50 * q * cond * 2.2e-16
    sign, logs = np.linalg.slogdet(M)
    assert (sign == 1).all()
    assert abs(logdet - logs.sum()) < 1e-13 * max(1.0, abs(logs).sum())
    assert np.array_equal(unstack(inverse), unstack(inverse).transpose(0, 2, 1))  # symmetric


def test_only_the_lower_triangle_is_read() -> None:
    M = spd(np.random.default_rng(1), 9, 3, 10.0)
    garbage = M.copy()
    garbage[:, 0, 1] = garbage[:, 0, 2] = garbage[:, 1, 2] = np.nan
    a, la = levelstack.inverse_logdet(stack(M))
    b, lb = levelstack.inverse_logdet(stack(garbage))
    assert np.array_equal(a, b) and la == lb


def test_an_overflowing_product_of_pivots_falls_back_to_logs() -> None:
    M = np.broadcast_to(np.diag([1e120, 1e120, 1e120]), (4, 3, 3)).copy()
    _, logdet = levelstack.inverse_logdet(stack(M))
    assert np.isclose(logdet, 4 * 3 * np.log(1e120), rtol=1e-14)


@pytest.mark.parametrize("bad", [-1.0, 0.0, np.nan])
def test_a_block_that_is_not_positive_definite_raises(bad: float) -> None:
    M = spd(np.random.default_rng(2), 6, 3, 10.0)
    M[4, 2, 2] = bad  # the last pivot: M22 - l20^2 - l21^2 < 0, = bad, or NaN
    M[4, 2, :2] = M[4, :2, 2] = 0.0
    with pytest.raises(np.linalg.LinAlgError):
        levelstack.inverse_logdet(stack(M))


@pytest.mark.parametrize("levels", [1, 7, 300])
def test_products_match_per_level_matmul(levels: int) -> None:
    rng = np.random.default_rng(levels)
    X, Y = rng.normal(size=(2, levels, 3, 3))
    A, B = rng.normal(size=(2, 3, 3))
    sx, sy = stack(X), stack(Y)
    assert np.allclose(unstack(levelstack.sandwich(A, sx, B)), A @ X @ B, rtol=1e-14, atol=1e-13)
    assert np.allclose(unstack(levelstack.product(sx, sy)), X @ Y, rtol=1e-14, atol=1e-13)
    assert np.allclose(levelstack.trace_sum(sx, sy), (X @ Y).sum(axis=0), rtol=1e-13, atol=1e-12)


def test_sandwich_of_a_strided_view() -> None:
    """Level chunks pass views of the whole stack (a slice of the last axis)."""
    rng = np.random.default_rng(5)
    whole = stack(rng.normal(size=(20, 3, 3)))
    A = rng.normal(size=(3, 3))
    part = levelstack.sandwich(A.T, whole[:, :, 5:12], A)
    full = levelstack.sandwich(A.T, whole, A)[:, :, 5:12]  # BLAS may block the two differently
    assert np.abs(part - full).max() < 1e-14 * np.abs(full).max()
    expected = A.T @ unstack(whole[:, :, 5:12]) @ A
    assert np.abs(unstack(part) - expected).max() < 1e-13 * np.abs(expected).max()


def test_the_kept_gram_is_the_one_for_this_t0() -> None:
    """cholesky.gram_stack keeps its last result on the blocks: a new T0 recomputes, the same
    T0 returns it, and each is what a fresh computation gives."""
    from mixedfx.engine.blocks import Blocks
    from mixedfx.engine.cholesky import gram_stack

    rng = np.random.default_rng(7)
    l0, q0 = 30, 3
    Z = rng.normal(size=(l0, 5, q0))
    A11 = Z.transpose(0, 2, 1) @ Z
    blocks = Blocks(0, l0, q0, (), 1, 150, A11, np.zeros((2, l0 * q0)), np.eye(2))
    T1 = np.tril(rng.normal(size=(q0, q0)))
    T2 = T1 + 0.25 * np.eye(q0)

    def fresh(T: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        M = T.T @ A11 @ T + np.eye(q0)
        inv = np.linalg.inv(M)
        return float(np.linalg.slogdet(M)[1].sum()), inv, T @ inv @ T.T

    first = gram_stack(blocks, T1)
    again = gram_stack(blocks, T1.copy())
    assert again is first  # kept
    second = gram_stack(blocks, T2)
    for got, T in ((first, T1), (second, T2)):
        logdet, inv, W = fresh(T)
        assert abs(got[0] - logdet) < 1e-12 * abs(logdet)
        for mine, theirs in ((got[1], inv), (got[2], W)):
            assert np.abs(unstack(mine) - theirs).max() < 1e-12 * np.abs(theirs).max()
    assert "_gram_stack" not in blocks.__getstate__()  # not pickled
