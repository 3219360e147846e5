"""Standardized coordinates (engine/standard.py) and moving blocks between them (transform)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine.standard import Moments, Standardization, lower_factor


def rows(n: int, seed: int, offset: float = 0.0) -> dict:
    """X = [1, x, z], y, a slope term (two levels sets) and an intercept term."""
    rng = np.random.default_rng(seed)
    x = offset + rng.normal(size=n) * 3.0
    X = np.column_stack([np.ones(n), x, rng.uniform(size=n) * 1e4])
    y = 1e6 + X @ [1.0, 2.0, 1e-3] + rng.normal(size=n)
    codes = (rng.integers(0, 7, size=n), rng.integers(0, 5, size=n))
    Ms = (np.column_stack([np.ones(n), x]), np.ones((n, 1)))
    return {"X": X, "y": y, "codes": codes, "Ms": Ms, "nlevels": [7, 5]}


def coords_of(r: dict) -> Standardization:
    return Standardization.learn(
        r["X"], r["y"], r["Ms"], np.array([1.0, 0, 0]), [np.array([1.0, 0]), None]
    )


def formed(r: dict, coords: Standardization, sparse: bool = False) -> blocks_mod.Blocks:
    X, y, Ms = coords.apply(r["X"], r["y"], r["Ms"])
    limit = blocks_mod.DENSE_LIMIT
    try:
        if sparse:
            blocks_mod.DENSE_LIMIT = 0
        return blocks_mod.form(X, y, r["codes"], Ms, r["nlevels"])
    finally:
        blocks_mod.DENSE_LIMIT = limit


def dense(A: np.ndarray | sp.spmatrix) -> np.ndarray:
    return A.toarray() if sp.issparse(A) else np.asarray(A)


def test_moments_merge_like_the_whole() -> None:
    """Chan's pairwise update: two halves' moments merge into the whole's."""
    r = rows(300, 0, offset=1e8)
    W = np.column_stack([r["X"], r["y"]])
    v = np.array([1.0, 0, 0, 0])
    whole = Moments.of(W, v)
    merged = Moments.of(W[:100], v).merge(Moments.of(W[100:], v))
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-15)
    # each half's mean carries ~eps |mean| (1.5e-8 here), which their difference keeps:
    # the merged root mean squares agree to ~eps |mean| / rms relative (a choice of
    # coordinates: the fit is exact in either)
    rtol = 10 * np.finfo(float).eps * np.abs(whole.mean) / whole.rms
    assert np.all(np.abs(merged.rms - whole.rms) <= np.maximum(rtol, 1e-14) * whole.rms)
    assert merged.n == 300 and whole.mean[0] == 0.0 and whole.rms[0] == 1.0
    # the standardized columns have mean 0 and root mean square 1 (the intercept stays 1)
    Ws = whole.rows(W)
    np.testing.assert_allclose(Ws.mean(axis=0), [1, 0, 0, 0], atol=10 * rtol.max())
    np.testing.assert_allclose(np.sqrt((Ws[:, 1:] ** 2).mean(axis=0)), 1.0, rtol=1e-12)


def test_moments_of_huge_values_do_not_overflow() -> None:
    W = np.array([[1e306], [3e306], [-2e306]])
    m = Moments.of(W, None)
    assert np.isfinite(m.rms).all()
    assert m.rms[0] == pytest.approx(np.sqrt((1 + 9 + 4) / 3) * 1e306, rel=1e-15)


@pytest.mark.parametrize("sparse", [False, True])
def test_transform_moves_blocks_between_coordinates(sparse: bool) -> None:
    """Blocks formed in one partition's coordinates, moved to another's = formed there."""
    r = rows(400, 1, offset=50.0)
    part = {k: v for k, v in r.items()}
    part_coords = coords_of(
        {**r, "X": r["X"][:150], "y": r["y"][:150], "Ms": tuple(M[:150] for M in r["Ms"])}
    )
    target = coords_of(r)
    moved = blocks_mod.transform(formed(part, part_coords, sparse), *part_coords.to(target))
    direct = formed(r, target, sparse)
    assert sp.issparse(moved.A21) == sparse
    for a, b in [(moved.A11, direct.A11), (moved.A21, direct.A21), (moved.A22, direct.A22)]:
        a, b = dense(a), dense(b)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.abs(b).max())


def test_transform_of_intercept_terms_equals_the_full_product(monkeypatch) -> None:
    """Intercept-only terms: the sparse A21's count rows are kept, [X y]'s rows moved."""
    calls = []
    real = blocks_mod._xy_rows
    monkeypatch.setattr(blocks_mod, "_xy_rows", lambda *a: calls.append(1) or real(*a))
    r = rows(400, 2, offset=50.0)
    r = {**r, "Ms": (np.ones((400, 1)), np.ones((400, 1)))}
    half = {**r, "X": r["X"][:150], "y": r["y"][:150], "Ms": tuple(M[:150] for M in r["Ms"])}
    part_coords, target = coords_of_intercepts(half), coords_of_intercepts(r)
    bl = formed(r, part_coords, sparse=True)
    maps, xy = part_coords.to(target)
    assert all(K is None for K in maps)
    moved = blocks_mod.transform(bl, maps, xy)
    assert calls == [1]  # the rows of [X y] alone
    P = np.eye(bl.m)
    P[bl.mr :, bl.mr :] = xy
    assert sp.isspmatrix_csr(moved.A21) and moved.A21.has_sorted_indices
    np.testing.assert_allclose(dense(moved.A21), P.T @ dense(bl.A21), rtol=1e-15, atol=1e-12)
    np.testing.assert_allclose(moved.A22, P.T @ bl.A22 @ P, rtol=1e-14, atol=1e-10)
    direct = formed(r, target, sparse=True)
    np.testing.assert_allclose(
        dense(moved.A21), dense(direct.A21), atol=1e-10 * np.abs(dense(direct.A21)).max()
    )


def coords_of_intercepts(r: dict) -> Standardization:
    return Standardization.learn(r["X"], r["y"], r["Ms"], np.array([1.0, 0, 0]), [None, None])


def test_lower_factor_keeps_small_diagonals() -> None:
    """For q = 2 the second diagonal is |det| / L11: exact where a QR loses it."""
    T = np.array([[0.9, 0.0], [0.02, 0.23]])
    G = np.array([[1.0, -1e8], [0.0, 1.0]])  # a slope column shifted by 1e8
    L = lower_factor(G @ T, float(np.linalg.det(G) * T[0, 0] * T[1, 1]))
    np.testing.assert_allclose(L @ L.T, G @ T @ T.T @ G.T, rtol=1e-12)
    exact = 0.9 * 0.23 / np.hypot(0.9 - 1e8 * 0.02, 1e8 * 0.23)
    assert L[1, 1] == pytest.approx(exact, rel=1e-14)
    A = np.random.default_rng(0).normal(size=(3, 3))
    L3 = lower_factor(A, float(np.linalg.det(A)))
    np.testing.assert_allclose(L3 @ L3.T, A @ A.T, atol=1e-14)
    assert (np.diag(L3) >= 0).all() and np.allclose(np.triu(L3, 1), 0.0)


def test_parameter_maps_invert() -> None:
    """Ts and fit_Ts are inverse maps; beta and b map linearly with the y scale."""
    coords = coords_of(rows(200, 2, offset=1e3))
    Ts = [np.array([[0.8, 0.0], [-0.3, 0.4]]), np.array([[1.3]])]
    back = coords.fit_Ts(coords.Ts(Ts))
    for a, b in zip(back, Ts, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    beta_s = np.array([0.1, -0.2, 0.3])
    G = coords.xy.matrix()[:-1, :-1]
    want = coords.y_scale * G @ beta_s + coords.y_centre * np.array([1.0, 0, 0])
    np.testing.assert_allclose(coords.beta(beta_s), want, rtol=1e-14)


def test_signed_factors_are_smooth_through_a_zero_diagonal() -> None:
    """signed_Ts is Ts for a positive diagonal, and linear in T_s,22 through 0 (q = 2)."""
    coords = coords_of(rows(200, 2, offset=1e3))
    T1 = np.array([[1.3]])
    Ts = [np.array([[0.8, 0.0], [-0.3, 0.4]]), T1]
    for a, b in zip(coords.signed_Ts(Ts), coords.Ts(Ts), strict=True):
        np.testing.assert_array_equal(a, b)  # the same function on the same inputs
    # L_22 = det(G T_s) / L_11, with L_11 independent of T_s,22: odd and linear in it
    L = [coords.signed_Ts([np.array([[0.8, 0.0], [-0.3, t]]), T1])[0] for t in (-0.1, 0.0, 0.1)]
    np.testing.assert_allclose(L[0][1, 1], -L[2][1, 1], rtol=1e-12)
    assert L[1][1, 1] == 0.0
    np.testing.assert_allclose(L[0][:, 0], L[2][:, 0], rtol=1e-12)
