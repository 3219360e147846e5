"""Sums of products of the rows' columns (levelsums.py): per level and over all rows."""

from __future__ import annotations

import numpy as np

from mixedfx.engine.levelsums import LevelSums, column_products
from tolerance import REORDERED


def naive(codes: np.ndarray, nlevels: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.bincount(codes, weights=u * v, minlength=nlevels)


def test_level_sums_are_the_bincounts_of_the_products_to_the_bit() -> None:
    rng = np.random.default_rng(0)
    n, nlevels = 1000, 37
    codes = rng.integers(0, nlevels - 1, n)  # the last level has no row
    x, y = rng.normal(size=n), rng.normal(size=n)
    columns = [np.ones(n), x, y, np.ones(n), x.copy(), 2.0 * x]
    sums = LevelSums(codes, nlevels, columns)
    assert sums.same == [0, 1, 2, 0, 1, 5]  # equal columns share their sums
    for i in range(len(columns)):
        for j in range(len(columns)):
            np.testing.assert_array_equal(sums(i, j), naive(codes, nlevels, columns[i], columns[j]))


def test_column_products_are_every_dot_product() -> None:
    """A22 of [X y] from the upper triangle's dot products, mirrored: exactly symmetric.

    The upper triangle is ``u @ v`` itself, to the bit. ``v @ u`` is the same
    sum only where BLAS adds in the same order for either argument order:
    OpenBLAS's Prescott kernel on a strided and a contiguous column does not
    (one ulp), so the lower triangle is held to the precision of the sums
    (``REORDERED`` of the products' scale, ``sum |u_i v_i|``).
    """
    rng = np.random.default_rng(5)
    F = np.asfortranarray(rng.normal(size=(100_003, 3)) * [1.0, 1e3, 1e-3] + [0.0, 5.0, -7.0])
    C = np.ascontiguousarray(F)
    for matrix in (F, C):
        columns = [matrix[:, j] for j in range(3)] + [rng.normal(size=100_003)]
        got = column_products(columns)
        assert np.array_equal(got, got.T)
        for i, u in enumerate(columns):
            for j, v in enumerate(columns):
                if i <= j:
                    assert got[i, j] == u @ v
                else:
                    scale = float(np.abs(u) @ np.abs(v))
                    assert abs(got[i, j] - v @ u) <= REORDERED * scale
