"""The conditional covariances of the BLUPs (solve.condcov) against a dense inverse."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine.grouped import GroupedSchur
from mixedfx.engine.schur import DenseSchur, SchurPattern
from oracle import dense_lambda, dense_z


def crossed(seed: int, n: int = 1500, users: int = 120, items: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, n), rng.integers(0, items, n)
    x = rng.normal(size=n)
    y = (
        x
        + rng.normal(size=users)[u] * (1 + 0.4 * x)
        + rng.normal(size=items)[i] * (0.5 - 0.3 * x)
        + rng.normal(size=n)
    )
    return pd.DataFrame({"y": y, "x": x, "u": u, "i": i})


UPDATES = {  # GROUPED_LIMIT, PATTERN_LIMIT and the Schur update the blocks then choose
    "pattern": (0, 10**12, SchurPattern),
    "grouped": (10**12, 10**12, GroupedSchur),
    "dense": (0, 1, DenseSchur),
}
FORMULAS = ["y ~ x + (1 | u) + (1 | i)", "y ~ x + (x | u) + (x | i)", "y ~ x + (1 | u) + (x | i)"]
# levels are grouped by their A11 only with one random effect per level of the first term
CASES = [(f, u) for f in FORMULAS for u in [None, *UPDATES] if u != "grouped" or "(1 | u)" in f]


@pytest.mark.parametrize(("formula", "update"), CASES)
def test_condcov_is_the_dense_inverse(formula: str, update: str | None, monkeypatch) -> None:
    """sigma^2 Lambda (Lambda' Z'Z Lambda + I)^-1 Lambda', diagonal blocks per level."""
    if update is not None:
        grouped, pattern, _ = UPDATES[update]
        monkeypatch.setattr(blocks_mod, "DENSE_LIMIT", 0)
        monkeypatch.setattr(blocks_mod, "GROUPED_LIMIT", grouped)
        monkeypatch.setattr(blocks_mod, "PATTERN_LIMIT", pattern)
        monkeypatch.setattr(blocks_mod, "GROUPED_OVER_PATTERN", 10**9)
    data = crossed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm(formula, data)
    assert m.blocks.sparse == (update is not None)
    if update is not None:
        assert isinstance(m.blocks.schur, UPDATES[update][2])
    Z, Lam = dense_z(m, data), dense_lambda(m, m.theta)
    ZL = Z @ Lam
    C = m.sigma**2 * Lam @ np.linalg.inv(ZL.T @ ZL + np.eye(len(Lam))) @ Lam.T
    start = 0
    for term, cov in zip(m.spec.terms, m.b_condcov, strict=True):
        q = term.q
        for level in range(term.nlevels):
            block = C[start + level * q : start + (level + 1) * q, start + level * q :][:, :q]
            np.testing.assert_allclose(cov[level], block, rtol=1e-9, atol=1e-12 * np.abs(C).max())
        start += term.nlevels * q
