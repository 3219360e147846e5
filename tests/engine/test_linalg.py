"""The checked LAPACK wrappers: right answers, and an exception where LAPACK reports failure."""

from __future__ import annotations

import numpy as np
import pytest

from mixedfx.engine import linalg


def spd(n: int, seed: int = 0) -> np.ndarray:
    B = np.random.default_rng(seed).normal(size=(n, n))
    return B @ B.T + n * np.eye(n)


def test_cholesky_inverse_and_solve_agree_with_numpy():
    A = spd(6)
    L = linalg.cholesky(A.copy(order="F"))
    scale = np.abs(A).max()
    np.testing.assert_allclose(L @ L.T, A, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(linalg.inverse_from_cholesky(L) @ A, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(linalg.inverse_lower(L) @ L, np.eye(6), atol=1e-13)
    b = np.arange(6.0)
    np.testing.assert_allclose(L @ linalg.solve_lower(L, b), b, atol=1e-12 * 6)
    np.testing.assert_allclose(L.T @ linalg.solve_lower(L, b, transpose=True), b, atol=1e-12 * 6)


def test_the_inverse_of_an_empty_factor_is_empty() -> None:
    """A model without fixed effects has a (0, 0) factor of X: LAPACK refuses its size."""
    assert linalg.inverse_lower(np.zeros((0, 0))).shape == (0, 0)


def test_failures_raise_instead_of_returning_garbage():
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        linalg.cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))
    singular = np.array([[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(np.linalg.LinAlgError, match="dtrtri"):
        linalg.inverse_lower(singular)
    with pytest.raises(np.linalg.LinAlgError, match="dtrtrs"):
        linalg.solve_lower(singular, np.ones(2))
    with pytest.raises(np.linalg.LinAlgError, match="dpotri"):
        linalg.inverse_from_cholesky(singular)


@pytest.mark.parametrize("order", ["C", "F"])
def test_packed_lower_triangle_round_trips(order: str) -> None:
    n = 7
    A = np.asarray(spd(n, seed=3), order=order)
    ap = linalg.pack_lower(A)
    rows, cols = np.tril_indices(n)
    assert ap.shape == (n * (n + 1) // 2,)
    np.testing.assert_array_equal(ap[linalg.packed_index(rows, cols, n)], A[rows, cols])
    back = linalg.unpack_lower(ap, n)
    assert back.flags.f_contiguous
    np.testing.assert_array_equal(back, np.tril(A))  # zeros above the diagonal


def test_packing_into_a_given_array_is_the_same() -> None:
    A = np.asfortranarray(spd(6, seed=4))
    out = np.full(21, np.nan)
    assert linalg.pack_lower(A, out=out) is out
    np.testing.assert_array_equal(out, linalg.pack_lower(A))
