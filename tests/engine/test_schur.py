"""The three ways to form A22 - A21 W A21' (schur.py) agree with each other and with dense."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedfx as mfx
from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine.grouped import GroupedSchur
from mixedfx.engine.schur import DenseSchur, SchurPattern


def crossed(seed: int, n: int = 3000, users: int = 200, items: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user, item = rng.integers(0, users, n), rng.integers(0, items, n)
    x = rng.normal(size=n)
    y = x + rng.normal(size=users)[user] + 0.5 * rng.normal(size=items)[item] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "user": user, "item": item})


def random_blocks(seed: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m, l0 = 30, 120
    A21 = sp.random(m, l0, density=0.2, random_state=seed, format="csr")
    A22 = rng.normal(size=(m, m))
    A22 = A22 @ A22.T
    a11 = rng.integers(1, 6, l0).astype(float)  # few distinct values, as row counts
    return A21, A22, a11


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_pattern_and_dense_agree(seed: int) -> None:
    A21, A22, a11 = random_blocks(seed)
    t = 0.7
    w = t * t / (t * t * a11 + 1.0)  # a function of a11 alone, as in the objective
    W = w.reshape(1, 1, -1)
    d = np.random.default_rng(seed).uniform(0.5, 2.0, A21.shape[0])
    exact = np.tril((A22 - (A21 @ sp.diags(w) @ A21.T).toarray()) * np.outer(d, d))
    for update in (SchurPattern.build(A21, A22, len(a11), 1), DenseSchur(A21.toarray(), A22, 1)):
        np.testing.assert_allclose(update.assemble(W, d), exact, rtol=1e-12, atol=1e-12)
    grouped = GroupedSchur(A21, A22, a11)  # a function of t alone
    np.testing.assert_allclose(grouped.assemble(t, d), exact, rtol=1e-12, atol=1e-12)


def test_fit_is_the_same_whichever_update(monkeypatch: pytest.MonkeyPatch) -> None:
    data = crossed(3)
    formula = "y ~ x + (1 | user) + (1 | item)"
    monkeypatch.setattr(blocks_mod, "DENSE_LIMIT", 0)  # sparse blocks even for this size
    fits = {}
    for name, grouped_limit, pattern_limit in [
        ("pattern", 0, 10**12),
        ("grouped", 10**12, 10**12),
        ("dense", 0, 0),
    ]:
        monkeypatch.setattr(blocks_mod, "GROUPED_LIMIT", grouped_limit)
        monkeypatch.setattr(blocks_mod, "PATTERN_LIMIT", pattern_limit)
        if name == "grouped":  # make grouping the cheapest
            monkeypatch.setattr(blocks_mod, "pattern_entries", lambda *a: 10**13)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = mfx.lmm(formula, data)
        kind = {"pattern": SchurPattern, "grouped": GroupedSchur, "dense": DenseSchur}[name]
        assert isinstance(m.blocks.schur, kind)
        fits[name] = m
    ref = fits["pattern"]
    for m in fits.values():
        assert abs(m.objective - ref.objective) <= 1e-10 * abs(ref.objective)
        np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-5)


def test_pattern_and_dense_agree_for_two_columns_per_level() -> None:
    rng = np.random.default_rng(7)
    m, l0, q0 = 25, 60, 2
    A21 = sp.random(m, l0 * q0, density=0.25, random_state=7, format="csr")
    A22 = rng.normal(size=(m, m))
    A22 = A22 @ A22.T
    R = rng.normal(size=(l0, q0, q0))
    Wk = R @ np.transpose(R, (0, 2, 1))  # per level R_k R_k'
    W = np.ascontiguousarray(np.moveaxis(Wk, 0, -1))  # level last
    blockdiag = sp.block_diag(list(Wk))
    exact = np.tril(A22 - (A21 @ blockdiag @ A21.T).toarray())
    for update in (SchurPattern.build(A21, A22, l0, q0), DenseSchur(A21.toarray(), A22, q0)):
        np.testing.assert_allclose(update.assemble(W), exact, rtol=1e-12, atol=1e-12)
