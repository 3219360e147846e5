"""The grouped Schur update (grouped.py): both ways to form B_c, both ways to form a_k' S^-1 a_k."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mixedfx import fit as fit_mod
from mixedfx.engine import grouped
from mixedfx.engine.coefficients import Coefficients
from mixedfx.engine.grouped import GroupedSchur, group_grams, level_forms
from mixedfx.engine.linalg import cholesky, unpack_lower
from mixedfx.engine.objective import Objective


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
    B = group_grams(A, group, np.eye(5))
    m = A.shape[0]
    for c in range(5):
        Ac = A[:, np.flatnonzero(group == c)].toarray()
        exact = np.tril(Ac @ Ac.T)
        np.testing.assert_allclose(unpack_lower(B[c], m), exact, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("fold", [2**28, 1])  # all groups at once, one group at a time
def test_group_grams_fold_groups_into_weighted_sums(fold: int, monkeypatch) -> None:
    monkeypatch.setattr(grouped, "FOLD", fold)
    A = ratings(2)
    group = np.random.default_rng(2).integers(0, 6, A.shape[1])
    weights = np.random.default_rng(3).normal(size=(6, 3))
    B = group_grams(A, group, np.eye(6))
    folded = group_grams(A, group, weights)
    np.testing.assert_allclose(folded, weights.T @ B, rtol=1e-12, atol=1e-12)


def test_group_grams_batch_the_pairs(monkeypatch) -> None:
    monkeypatch.setattr(grouped, "PAIR_COST", 0.0)
    A = ratings(2)
    group = np.zeros(A.shape[1], dtype=int)
    whole = group_grams(A, group, np.eye(1))
    monkeypatch.setattr(grouped, "CHUNK", 7)  # many batches, several bincounts
    np.testing.assert_allclose(group_grams(A, group, np.eye(1)), whole, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("route", ["gathered", "solves"])
def test_level_forms_are_the_quadratic_forms(route: str, monkeypatch) -> None:
    monkeypatch.setattr(grouped, "GATHER_COST", 0.0 if route == "gathered" else 1e30)
    monkeypatch.setattr(grouped, "CHUNK", 500)  # several chunks of columns
    A = ratings(3)
    m, n = A.shape[0], A.shape[0] - 3  # the last three rows do not count
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 60))
    S = X @ X.T + np.eye(n)
    L = cholesky(S.copy(order="F"))
    G = np.zeros((m, m))
    G[:n, :n] = np.linalg.inv(S)
    scale = rng.uniform(0.5, 2.0, m)
    Xs = scale[:, None] * A.toarray()
    exact = np.einsum("ik,ij,jk->k", Xs, G, Xs)
    np.testing.assert_allclose(level_forms(A, scale, L, G), exact, rtol=1e-12)


@pytest.mark.parametrize("distinct", [5, 60])  # exact coefficients, Chebyshev basis
def test_update_and_its_slope_match_the_direct_sums(distinct: int) -> None:
    A = ratings(4, levels=400)
    rng = np.random.default_rng(4)
    a11 = (20 + rng.integers(0, distinct, A.shape[1])).astype(float)
    m = A.shape[0]
    schur = GroupedSchur(sp.csr_matrix(A), np.eye(m), a11)
    assert (schur.coefficients.nodes is None) == (distinct == 5)
    Ub = rng.normal(size=(m, m))
    Ub = Ub + Ub.T
    dense = A.toarray()
    for t in [0.0, 0.3, 1.7, 40.0]:
        w = t * t / (t * t * a11 + 1.0)
        dw = 2.0 * t / (t * t * a11 + 1.0) ** 2
        U, dU = schur.update(t)
        # each group's coefficient to rounding: errors within eps * sum_c |w_c| |B_c|
        for got, c, rtol in [(U, w, 1e-14), (dU, dw, 1e-12)]:
            scale = np.tril(np.abs(dense) * c @ np.abs(dense).T)
            error = np.abs(unpack_lower(got, m) - np.tril(dense * c @ dense.T))
            assert np.all(error <= rtol * scale + 1e-300)
        slope = np.einsum("ij,ij->", dense * dw @ dense.T, Ub)
        bound = 1e-12 * np.einsum("ij,ij->", np.abs(dense) * dw @ np.abs(dense).T, np.abs(Ub))
        assert abs(schur.slope(t, Ub) - slope) <= bound


def test_chebyshev_coefficients_give_the_exact_objective_and_gradient(monkeypatch) -> None:
    """Users with 80 to 130 ratings: ~50 distinct counts, ~20 basis functions."""
    rng = np.random.default_rng(11)
    users, items = 400, 150
    n = users * 105
    user, item = rng.integers(0, users, n), rng.integers(0, items, n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=users)[user] + 0.5 * rng.normal(size=items)[item] + rng.normal(size=n)
    data = pd.DataFrame({"y": y, "x": x, "user": user, "item": item})
    design, arrays = fit_mod.learn_design("y ~ x + (1 | user) + (1 | item)", data)
    _, blocks = fit_mod.form_blocks(design, arrays)
    A21 = sp.csr_matrix(blocks.A21)
    a11 = blocks.A11[:, 0, 0]
    compressed = GroupedSchur(A21, blocks.A22, a11)
    assert compressed.coefficients.nodes is not None
    assert compressed.coefficients.size < len(np.unique(a11)) / 2
    monkeypatch.setattr(Coefficients, "fit", classmethod(lambda cls, a: cls(a, np.eye(len(a)))))
    exact = GroupedSchur(A21, blocks.A22, a11)
    for reml in (True, False):
        values = []
        for schur in (compressed, exact):
            b = dataclasses.replace(blocks)
            b.__dict__["schur"] = schur
            obj = Objective(b, design.layout, reml)
            obj.__dict__["dense"] = None
            values.append([obj.value_and_gradient(np.array(t)) for t in ([0.7, 0.4], [2.0, 0.05])])
        for (f1, g1), (f2, g2) in zip(*values, strict=True):
            assert f1 == pytest.approx(f2, rel=1e-14)
            np.testing.assert_allclose(g1, g2, rtol=1e-9, atol=1e-9 * np.abs(g2).max())
