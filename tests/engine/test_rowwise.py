"""Row-by-row products: a row's value does not depend on the rows around it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.engine.rowwise import row_dot, row_matmul


def in_order(a: np.ndarray, v: np.ndarray) -> float:
    """One row's sum over the columns in order, in plain Python floats."""
    acc = float(a[0]) * float(v[0])
    for x, c in zip(a[1:], v[1:], strict=True):
        acc += float(x) * float(c)
    return acc


@pytest.mark.parametrize("k", [1, 2, 5, 13])
def test_each_row_is_its_own_sum_in_column_order(k: int) -> None:
    rng = np.random.default_rng(k)
    A = rng.standard_normal((1001, k)) * 10.0 ** rng.integers(-3, 4, size=(1001, k))
    v = rng.standard_normal(k)
    got = row_dot(A, v)
    assert got.tolist() == [in_order(a, v) for a in A]
    for start in (0, 1, 3, 7, 500):  # any slice: the same bits for the same rows
        assert np.array_equal(row_dot(A[start:], v), got[start:])
        assert np.array_equal(row_dot(np.asfortranarray(A[start:]), v), got[start:])


def test_matmul_columns_are_row_dots() -> None:
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((257, 3)), rng.standard_normal((3, 2))
    got = row_matmul(A, B)
    assert got.shape == (257, 2)
    for c in range(2):
        assert np.array_equal(got[:, c], row_dot(A, B[:, c]))
    np.testing.assert_allclose(got, A @ B, rtol=1e-13, atol=1e-13 * np.abs(A @ B).max())
    assert row_dot(np.zeros((4, 0)), np.zeros(0)).tolist() == [0.0] * 4


def test_a_row_predicts_the_same_alone_and_in_any_batch() -> None:
    """Predictions of each row equal, bit for bit, those of the row scored alone.

    With BLAS's matrix-vector product a row's value depended on its position
    within the kernel's blocks (OpenBLAS SkylakeX: the last bit moved between
    Dask partitions); six fixed-effect columns give the kernels a tail to differ on.
    """
    rng = np.random.default_rng(3)
    n = 300
    data = pd.DataFrame(rng.standard_normal((n, 6)), columns=[f"x{i}" for i in range(6)])
    data["y"] = data.sum(axis=1) + rng.standard_normal(n)
    data["g"] = rng.integers(0, 12, n).astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm("y ~ x0 + x1 + x2 + x3 + x4 + x5 + (x0 | g)", data)
    batch = m.predict(data)
    for i in range(0, n, 7):
        assert m.predict(data.iloc[[i]])[0] == batch[i]
        assert np.array_equal(m.predict(data.iloc[i:]), batch[i:])
