"""Cross-products of random-effects terms from the codes, against the dense product of Z."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mixedfx.engine import blocks, pairsums


def _term(rng: np.random.Generator, n: int, nlevels: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    codes = rng.integers(0, nlevels, n)
    M = np.column_stack([np.ones(n), *(rng.normal(size=n) for _ in range(q - 1))])
    return codes, M


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("qa", "qb"), [(1, 1), (2, 1), (1, 3), (2, 2)])
def test_cross_dense_own_equal_products_of_z(weighted: bool, qa: int, qb: int) -> None:
    rng = np.random.default_rng(qa * 10 + qb)
    n, la, lb = 3000, 40, 300
    (ca, Ma), (cb, Mb) = _term(rng, n, la, qa), _term(rng, n, lb, qb)
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    W = np.ones(n) if w is None else w
    Za = blocks.term_matrix(ca, Ma, la).toarray()
    Zb = blocks.term_matrix(cb, Mb, lb).toarray()
    C = rng.normal(size=(n, 3))
    got = pairsums.cross(ca, Ma, la, cb, Mb, lb, w)
    assert sp.isspmatrix_csr(got) and got.has_sorted_indices
    np.testing.assert_allclose(got.toarray(), Za.T @ (W[:, None] * Zb), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(
        pairsums.dense(ca, Ma, la, C, w), Za.T @ (W[:, None] * C), rtol=1e-13, atol=1e-12
    )
    full = Za.T @ (W[:, None] * Za)
    own = pairsums.own(ca, Ma, la, w)
    for k in range(la):
        at = slice(k * qa, (k + 1) * qa)
        np.testing.assert_allclose(own[k], full[at, at], rtol=1e-13, atol=1e-12)


def test_counts_of_crossed_intercepts_are_exact() -> None:
    rng = np.random.default_rng(1)
    ca, cb = rng.integers(0, 50, 10_000), rng.integers(0, 70, 10_000)
    ones = np.ones((10_000, 1))
    got = pairsums.cross(ca, ones, 50, cb, ones, 70).toarray()
    expected = np.zeros((50, 70))
    np.add.at(expected, (ca, cb), 1.0)
    assert np.array_equal(got, expected)


def test_form_with_three_terms_equals_the_dense_cross_products() -> None:
    rng = np.random.default_rng(2)
    n = 4000
    terms = [_term(rng, n, 500, 1), _term(rng, n, 60, 2), _term(rng, n, 9, 1)]
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n)
    bl = blocks.form(X, y, tuple(c for c, _ in terms), tuple(M for _, M in terms), [500, 60, 9],
                     weights=w)  # fmt: skip
    Zr = np.hstack(
        [
            blocks.term_matrix(c, M, nl).toarray()
            for (c, M), nl in zip(terms[1:], [60, 9], strict=True)
        ]
    )
    R = np.column_stack([Zr, X, y])
    np.testing.assert_allclose(bl.A22, R.T @ (w[:, None] * R), rtol=1e-13, atol=1e-11)
    Z0 = blocks.term_matrix(*terms[0], 500).toarray()
    A21 = bl.A21.toarray() if sp.issparse(bl.A21) else bl.A21
    np.testing.assert_allclose(A21, R.T @ (w[:, None] * Z0), rtol=1e-13, atol=1e-11)
