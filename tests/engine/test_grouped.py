"""The grouped Schur update (grouped.py): both ways to form B_c, both ways to form a_k' S^-1 a_k."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mixedfx.engine import grouped
from mixedfx.engine.grouped import GroupedSchur, group_grams, level_forms
from mixedfx.engine.linalg import cholesky, unpack_lower


def ratings(seed: int, m: int = 40, levels: int = 150, density: float = 0.15) -> sp.csc_matrix:
    """A sparse (m, levels) matrix with a dense last row, as A21's y row."""
    A = sp.random(m, levels, density=density, random_state=seed, format="lil")
    A[m - 1] = np.random.default_rng(seed).normal(size=levels)
    return sp.csc_matrix(A)


@pytest.mark.parametrize("route", ["pairs", "dsyrk"])
def test_group_grams_are_each_groups_gram_matrix(route: str, monkeypatch) -> None:
    monkeypatch.setattr(grouped, "PAIR_COST", 0.0 if route == "pairs" else 1e30)
    A = ratings(1)
    group = np.random.default_rng(1).integers(0, 5, A.shape[1])
    B = group_grams(A, group, 5)
    m = A.shape[0]
    for c in range(5):
        Ac = A[:, np.flatnonzero(group == c)].toarray()
        exact = np.tril(Ac @ Ac.T)
        np.testing.assert_allclose(unpack_lower(B[c], m), exact, rtol=1e-13, atol=1e-13)


def test_group_grams_batch_the_pairs(monkeypatch) -> None:
    monkeypatch.setattr(grouped, "PAIR_COST", 0.0)
    A = ratings(2)
    group = np.zeros(A.shape[1], dtype=int)
    whole = group_grams(A, group, 1)
    monkeypatch.setattr(grouped, "CHUNK", 7)  # many batches, several bincounts
    np.testing.assert_allclose(group_grams(A, group, 1), whole, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("route", ["gathered", "solves"])
def test_level_forms_are_the_quadratic_forms(route: str, monkeypatch) -> None:
    monkeypatch.setattr(grouped, "GATHER_COST", 0.0 if route == "gathered" else 1e30)
    monkeypatch.setattr(grouped, "CHUNK", 500)  # several chunks of columns
    A = ratings(3)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(A.shape[0], 60))
    S = X @ X.T + np.eye(A.shape[0])
    L = cholesky(S.copy(order="F"))
    Sinv = np.linalg.inv(S)
    exact = np.einsum("ik,ij,jk->k", A.toarray(), Sinv, A.toarray())
    np.testing.assert_allclose(level_forms(A, L, Sinv), exact, rtol=1e-12)


def test_grouped_adjoint_is_the_group_totals() -> None:
    A = ratings(4)
    a11 = np.random.default_rng(4).integers(1, 4, A.shape[1]).astype(float)
    m = A.shape[0]
    rng = np.random.default_rng(5)
    Ub = rng.normal(size=(m, m))
    Ub = Ub + Ub.T
    schur = GroupedSchur(sp.csr_matrix(A), np.eye(m), a11)
    Wb = schur.adjoint(Ub)
    per_level = np.einsum("ik,ij,jk->k", A.toarray(), Ub, A.toarray())
    for c, value in enumerate(schur.a):
        assert Wb[0, 0, schur.first[c]] == pytest.approx(per_level[a11 == value].sum(), rel=1e-12)
    assert np.count_nonzero(Wb) <= len(schur.a)
