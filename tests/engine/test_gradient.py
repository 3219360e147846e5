"""The analytic gradient of the profiled objective (gradient.py, dense.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mixedfx as mfx
from mixedfx import datasets
from mixedfx import fit as fit_mod
from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine.grouped import GroupedSchur
from mixedfx.engine.objective import Objective
from mixedfx.engine.schur import DenseSchur, SchurPattern
from tolerance import REORDERED, assert_close


def crossed(n: int, users: int, items: int, seed: int = 0) -> pd.DataFrame:
    """Users x items with a slope on each side: big enough for a sparse A21.

    ``f`` is a three-level factor for ``(f || u)``, a term whose ``T`` has a
    1 x 1 and a full 3 x 3 block.
    """
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, n), rng.integers(0, items, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = (
        x
        + rng.normal(size=users)[u] * (1 + 0.3 * x)
        + rng.normal(size=items)[i] * z
        + rng.normal(size=n)
    )
    f = pd.Categorical(np.array(["a", "b", "c"])[rng.integers(0, 3, n)])
    y = y + rng.normal(size=(users, 3))[u, f.codes]
    return pd.DataFrame({"u": u, "i": i, "x": x, "z": z, "f": f, "y": y})


def load(name: str) -> pd.DataFrame:
    """A data set, or users x items small enough for the dense evaluator.

    ``"crossed"`` has more items than users (the users' term comes first in
    the blocks when it has a slope), ``"wide"`` more users than twice the items.
    """
    if name == "crossed":
        return crossed(300, 8, 6, seed=3)
    if name == "wide":
        return crossed(300, 14, 5, seed=4)
    return datasets.load(name)


def objective(formula: str, data: pd.DataFrame, reml: bool, schur: str | None = None):
    """The objective, its blocked evaluator only, with a chosen Schur update.

    ``schur=None``: a dense A21, whatever the cost of its Schur update.
    """
    design, arrays = fit_mod.learn_design(formula, data)
    gram_limit = blocks_mod.GRAM_LIMIT
    if schur is None:
        blocks_mod.GRAM_LIMIT = math.inf
    try:
        _, blocks = fit_mod.form_blocks(design, arrays)
    finally:
        blocks_mod.GRAM_LIMIT = gram_limit
    if schur is not None:
        assert blocks.sparse
        A21 = sp.csr_matrix(blocks.A21)
        blocks.__dict__["schur"] = {
            "pattern": lambda: SchurPattern.build(A21, blocks.A22, blocks.l0, blocks.q0),
            "grouped": lambda: GroupedSchur(A21, blocks.A22, blocks.A11[:, 0, 0]),
            "dense": lambda: DenseSchur(A21.toarray(), blocks.A22, blocks.q0),
        }[schur]()
    obj = Objective(blocks, design.layout, reml)
    obj.__dict__["dense"] = None  # the blocked path, whatever the size
    return obj


def somewhere(obj: Objective, seed: int = 1) -> np.ndarray:
    """A point away from the start: diagonals in (0.2, 1.5), off-diagonals of either sign."""
    rng = np.random.default_rng(seed)
    diag = obj.lower() == 0.0
    return np.where(diag, rng.uniform(0.2, 1.5, obj.ntheta), rng.uniform(-0.5, 0.5, obj.ntheta))


def five_point(obj: Objective, theta: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Central differences of order four: error ~h^4, rounding ~1e-16 |f| / h."""
    g = np.empty(len(theta))
    for k in range(len(theta)):
        step = h * max(1.0, abs(theta[k]))

        def at(j: int, k: int = k, step: float = step) -> float:
            t = theta.copy()
            t[k] += j * step
            return obj(t)

        g[k] = (at(-2) - 8 * at(-1) + 8 * at(1) - at(2)) / (12 * step)
    return g


def differenced_hessian(obj: Objective, theta: np.ndarray) -> np.ndarray:
    """Central differences of the analytic gradient, step 1e-5 relative, shape (k, k)."""
    out = np.empty((len(theta), len(theta)))
    for j in range(len(theta)):
        h = 1e-5 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        out[:, j] = (obj.gradient(up) - obj.gradient(down)) / (2 * h)
    return out


SMALL = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
    ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "penicillin"),
    ("strength ~ 1 + (1 | batch) + (1 | batch:cask)", "pastes"),
    # block-diagonal T: theta holds only the blocks' entries (engine/layout.py)
    ("y ~ x + (x || u)", "crossed"),
    ("y ~ x + (1 + x || u) + (1 | i)", "crossed"),
    ("y ~ x + (1 | u) + (1 + z || i)", "wide"),  # a || term after the first
    ("y ~ x + (f || u) + (1 | i)", "crossed"),  # blocks (1, 3)
]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("formula", "name"), SMALL)
def test_blocked_gradient_matches_differences_and_dense_system(formula, name, reml) -> None:
    obj = objective(formula, load(name), reml)
    theta = somewhere(obj)
    f, g = obj.blocked(theta)
    assert f == pytest.approx(obj(theta), rel=1e-13)
    np.testing.assert_allclose(g, five_point(obj, theta), rtol=1e-6, atol=1e-6)
    dense = Objective(obj.blocks, obj.layout, reml)
    assert dense.dense is not None
    np.testing.assert_allclose(dense.gradient(theta), g, rtol=1e-10, atol=1e-10)
    assert dense.value_and_gradient(theta)[0] == pytest.approx(f, rel=1e-12)  # other sums


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("formula", "name"), SMALL)
def test_closed_form_hessian_matches_differenced_gradient(formula, name, reml) -> None:
    blocked = objective(formula, load(name), reml)
    obj = Objective(blocked.blocks, blocked.layout, reml)  # with its small-model evaluator
    theta = somewhere(obj, seed=7)
    hess = obj.hessian(theta)
    assert hess is not None
    differenced = differenced_hessian(obj, theta)
    np.testing.assert_allclose(hess, differenced, rtol=1e-6, atol=1e-6 * np.abs(hess).max())


LARGE = [
    # (formula, users, schur): q0 = 1, 2, 3 first terms; q = 1, 2 rest terms
    ("y ~ x + (x | u) + (z | i)", 1500, "pattern"),
    ("y ~ x + (x | u) + (z | i)", 1500, "dense"),
    ("y ~ x + (1 | u) + (z | i)", 4000, "grouped"),
    ("y ~ x + (1 | u) + (1 | i)", 4000, "pattern"),
    ("y ~ x + (1 | u) + (1 | i)", 4000, "grouped"),
    ("y ~ x + (1 + x + z | u) + (1 | i)", 400, None),
    # || terms (block-diagonal T) first and after the first, of numeric columns and a factor
    ("y ~ x + (x || u)", 1500, None),
    ("y ~ x + (1 + x || u) + (1 | i)", 1500, "pattern"),
    ("y ~ x + (1 | u) + (1 + z || i)", 4000, "grouped"),
    ("y ~ x + (f || u) + (1 | i)", 400, None),
]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("formula", "users", "schur"), LARGE)
def test_gradient_on_every_schur_update(formula, users, schur, reml) -> None:
    obj = objective(formula, crossed(6000, users, 700), reml, schur)
    assert obj.blocks.sparse == (schur is not None)
    theta = somewhere(obj, seed=users)
    np.testing.assert_allclose(obj.gradient(theta), five_point(obj, theta), rtol=1e-6, atol=1e-6)


CHUNKED = [
    "y ~ x + (1 | u)",  # q0 = 1
    "y ~ x + (x | u)",  # q0 = 2
    "y ~ x + (1 + x + z | u)",  # q0 = 3
    "y ~ x + (x | u) + (1 | i)",  # with a rest term: dense A21 (fewer items)
]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", CHUNKED)
def test_level_chunks_give_the_whole_objective_and_gradient(formula, reml, monkeypatch) -> None:
    data = crossed(3000, 900, 4)
    whole = objective(formula, data, reml)
    assert not whole.blocks.sparse and len(whole.blocks.level_chunks) == 1
    monkeypatch.setattr(blocks_mod, "MIN_CHUNK", 64)
    monkeypatch.setattr(blocks_mod, "CHUNK_BYTES", 64 * 8 * whole.blocks.m)  # 64 levels
    chunked = objective(formula, data, reml)
    chunks = chunked.blocks.level_chunks
    assert len(chunks) == -(-whole.blocks.l0 // 64)
    assert sum(c.l0 for c in chunks) == chunked.blocks.l0
    theta = somewhere(whole)
    # the same sums, added chunk by chunk: REORDERED (tests/tolerance.py), relative to the scale
    f, g = whole.value_and_gradient(theta)
    fc, gc = chunked.value_and_gradient(theta)
    assert fc == pytest.approx(f, rel=REORDERED)
    assert_close(gc, g, REORDERED)
    assert chunked(theta) == pytest.approx(whole(theta), rel=REORDERED)


def test_gradient_vanishes_at_the_fitted_optimum() -> None:
    m = mfx.lmm("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    obj = Objective(m.blocks, m.spec.layout, m.reml)  # blocks and theta in the fit's coordinates
    g = obj.gradient(m.standardized.theta)
    assert np.abs(g).max() < 1e-6  # it was ~3e-4 where BOBYQA stopped
    assert m.optsummary.extra["newton_steps"] >= 1
