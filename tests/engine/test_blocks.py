"""The cross-product blocks (blocks.py): forming them and the first term's level chunks."""

from __future__ import annotations

import pickle

import numpy as np

from mixedfx.engine import blocks as blocks_mod


def test_form_without_weights_equals_form_with_unit_weights() -> None:
    # unit weights take the direct products; without weights the shared sums: same blocks
    rng = np.random.default_rng(1)
    n, nlevels = 2000, 150
    codes = rng.integers(0, nlevels, n)
    x = rng.normal(size=n)
    X = np.asfortranarray(np.column_stack([np.ones(n), x]))
    M = np.asfortranarray(np.column_stack([np.ones(n), x]))
    y = rng.normal(size=n)
    plain = blocks_mod.form(X, y, (codes,), (M,), [nlevels])
    unit = blocks_mod.form(X, y, (codes,), (M,), [nlevels], weights=np.ones(n))
    np.testing.assert_array_equal(plain.A11, unit.A11)
    np.testing.assert_array_equal(plain.A21, unit.A21)
    np.testing.assert_allclose(plain.A22, unit.A22, rtol=1e-14)  # dots vs gemm: other sums


def test_level_chunks_are_views_and_not_pickled(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    n, nlevels = 3000, 1000
    codes = rng.integers(0, nlevels, n)
    x = rng.normal(size=n)
    X = np.asfortranarray(np.column_stack([np.ones(n), x]))
    monkeypatch.setattr(blocks_mod, "MIN_CHUNK", 256)
    monkeypatch.setattr(blocks_mod, "CHUNK_BYTES", 256 * 8 * 3)
    bl = blocks_mod.form(X, rng.normal(size=n), (codes,), (X,), [nlevels])
    chunks = bl.level_chunks
    assert [c.l0 for c in chunks] == [256, 256, 256, 232]
    assert all(np.shares_memory(c.a21_columns[0], bl.a21_columns[0]) for c in chunks)
    np.testing.assert_array_equal(
        np.concatenate([c.a11_entries[1] for c in chunks]), bl.a11_entries[1]
    )
    copy = pickle.loads(pickle.dumps(bl))
    assert "level_chunks" not in copy.__dict__
    np.testing.assert_array_equal(copy.A21, bl.A21)
    assert [c.l0 for c in copy.level_chunks] == [256, 256, 256, 232]


def test_a22_mostly_zeros_is_pickled_sparse_and_restored_exactly() -> None:
    """Crossed intercepts: A22 of 1,500 items is diagonal but for [X y]; pickled small."""
    rng = np.random.default_rng(5)
    n, users, items = 20_000, 3000, 1500
    codes = (rng.integers(0, users, n), rng.integers(0, items, n))
    ones = np.ones((n, 1))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    bl = blocks_mod.form(X, rng.normal(size=n), codes, (ones, ones), [users, items])
    assert bl.A22.shape == (items + 3, items + 3)
    data = pickle.dumps(bl)
    assert len(data) < bl.A22.nbytes / 4 + bl.A21.data.nbytes * 2 + bl.A11.nbytes * 2
    copy = pickle.loads(data)
    assert isinstance(copy.A22, np.ndarray) and copy.A22.flags.c_contiguous
    np.testing.assert_array_equal(copy.A22, bl.A22)
    np.testing.assert_array_equal(copy.A11, bl.A11)
    assert (copy.A21 != bl.A21).nnz == 0


def test_dense_rows_is_the_size_form_builds() -> None:
    """The thread policy sizes a GLMM's factor without forming its blocks."""
    rng = np.random.default_rng(5)
    n = 400
    codes = (rng.integers(0, 30, n), rng.integers(0, 7, n), rng.integers(0, 12, n))
    Ms = (np.ones((n, 1)), np.column_stack([np.ones(n), rng.standard_normal(n)]), np.ones((n, 1)))
    X, y = np.column_stack([np.ones(n), rng.standard_normal(n)]), rng.standard_normal(n)
    for first in (None, 0, 1, 2):
        bl = blocks_mod.form(X, y, codes, Ms, [30, 7, 12], first)
        assert blocks_mod.dense_rows([30, 7, 12], [1, 2, 1], 2, bl.first) == bl.m


def two_terms(levels0: int, levels1: int, per: int, nested: bool, seed: int = 3):
    """``form``'s arguments for (1 | a) + (1 | b): b within a (nested) or crossed with it."""
    rng = np.random.default_rng(seed)
    n = levels0 * per
    first = np.repeat(np.arange(levels0), per)  # the most levels: the first term
    second = first % levels1 if nested else rng.integers(0, levels1, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    ones = np.ones((n, 1))
    return X, rng.normal(size=n), (first, second), (ones, ones), [levels0, levels1]


def test_a21_is_sparse_where_the_dense_schur_update_costs_more(monkeypatch) -> None:
    """Nested levels: one nonzero per level among 200 rows, 200^2 x 800 multiplications."""
    nested = blocks_mod.form(*two_terms(800, 200, 2, nested=True))
    assert nested.m == 203 and nested.sparse
    # crossed, each level meeting a quarter of the others: dense, although as large
    crossed = blocks_mod.form(*two_terms(800, 200, 60, nested=False))
    assert crossed.m == 203 and not crossed.sparse
    # small: dense whatever the density
    small = blocks_mod.form(*two_terms(100, 40, 2, nested=True))
    assert not small.sparse
    # both layouts hold the same sums, and selecting columns of X keeps the layout
    monkeypatch.setattr(blocks_mod, "GRAM_LIMIT", np.inf)
    dense = blocks_mod.form(*two_terms(800, 200, 2, nested=True))
    assert not dense.sparse
    np.testing.assert_array_equal(nested.A21.toarray(), dense.A21)
    np.testing.assert_array_equal(nested.A22, dense.A22)
    kept = blocks_mod.select_fixed(nested, np.array([1]))
    assert kept.sparse and kept.p == 1
