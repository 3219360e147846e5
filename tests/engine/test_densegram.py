"""Packed Gram matrices of dense columns, rows of counts in single precision, to the bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from mixedfx.engine import densegram
from mixedfx.engine.densegram import DenseGram, exact_rows
from mixedfx.engine.linalg import pack_lower, unpack_lower


def counts_then_reals(n: int, seed: int) -> np.ndarray:
    """300 rows of small counts (crossed levels' pairs), their sums (an intercept row of X,
    also integers), then two real-valued rows: (303, n)."""
    rng = np.random.default_rng(seed)
    top = rng.poisson(0.05, size=(300, n)).astype(float)
    return np.vstack([top, top.sum(axis=0), rng.normal(size=(2, n)) * 1e3])


@pytest.mark.parametrize("n", [1, 37, 300])
def test_single_precision_rows_give_the_double_precision_gram_to_the_bit(n: int) -> None:
    D = np.asfortranarray(counts_then_reals(n, n))
    m = D.shape[0]
    k = exact_rows(sp.csc_matrix(D))
    assert k == 301
    got = unpack_lower(DenseGram(m, k).packed(D, np.empty(m * (m + 1) // 2)), m)
    expected = pack_lower(np.asfortranarray(D @ D.T))
    E = unpack_lower(expected, m)
    low = np.tril_indices(k)
    assert np.array_equal(got[:k, :k][low], E[:k, :k][low])  # the integer block: exact
    np.testing.assert_allclose(got, E, rtol=1e-13, atol=1e-9 * np.abs(E).max())
    double = DenseGram(m, 0).packed(D, np.empty(m * (m + 1) // 2))
    assert np.array_equal(double, expected)


def test_single_precision_is_used(monkeypatch) -> None:
    calls = []
    real = densegram.blas.ssyrk
    monkeypatch.setattr(densegram.blas, "ssyrk", lambda *a, **k: calls.append(1) or real(*a, **k))
    D = np.asfortranarray(counts_then_reals(50, 1))
    m = D.shape[0]
    DenseGram(m, exact_rows(sp.csc_matrix(D))).packed(D, np.empty(m * (m + 1) // 2))
    assert calls == [1]


def test_exact_rows_stop_where_sums_could_round() -> None:
    rng = np.random.default_rng(4)
    D = rng.poisson(1.0, size=(400, 1000)).astype(float)
    assert exact_rows(sp.csc_matrix(D)) == 400
    D[300, 0] = 0.5  # a fraction: rows from 300 on are not integers
    assert exact_rows(sp.csc_matrix(D)) == 300
    D[300, 0] = 1.0
    D[390, 5] = np.inf  # not finite: not exact (and no overflow warning from its square)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert exact_rows(sp.csc_matrix(D)) == 390
    D[390, 5] = 1.0
    D[350, :4] = 2.0**11  # sum of squares 2^24: products with row 350 could round
    assert exact_rows(sp.csc_matrix(D)) == 350
    D[100, :4] = 2.0**11
    assert exact_rows(sp.csc_matrix(D)) == 0  # fewer than SINGLE_MIN rows
    D[:, :] = rng.normal(size=D.shape)
    assert exact_rows(sp.csc_matrix(D)) == 0
