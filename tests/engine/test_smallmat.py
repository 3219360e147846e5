"""Stacks of small matrices (engine/smallmat.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mixedfx.engine import smallmat


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((7, 2, 2), (2, 2)), ((2, 2), (7, 2, 2)), ((7, 2, 2), (7, 2, 2)), ((2, 2), (2, 2))],
)
def test_matmul_2x2_broadcasts_like_matmul(a_shape: tuple, b_shape: tuple) -> None:
    # q = 2 is formed entry by entry; the result's shape is the broadcast of both stacks
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=a_shape), rng.normal(size=b_shape)
    out = smallmat.matmul(A, B)
    assert out.shape == np.broadcast_shapes(a_shape, b_shape)
    np.testing.assert_allclose(out, A @ B, rtol=1e-14, atol=1e-14)
    # each entry is a_i0 b_0j + a_i1 b_1j, in that order: the bits of the closed form
    expected = A[..., :, 0, None] * B[..., None, 0, :] + A[..., :, 1, None] * B[..., None, 1, :]
    assert np.array_equal(out, expected)
