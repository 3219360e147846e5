"""The average information (information.py) against its definition on dense matrices."""

from __future__ import annotations

import numpy as np
import pytest
from test_gradient import (
    LARGE,
    SMALL,
    crossed,
    differenced_hessian,
    load,
    objective,
    somewhere,
)

from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine.cholesky import factorize, objective_parts
from mixedfx.engine.information import average_information, covariance_curvature, positive_part
from mixedfx.engine.layout import ThetaLayout
from mixedfx.engine.optimize import fit_theta


def dense_information(
    X: np.ndarray, y: np.ndarray, Z: np.ndarray, lam: list[np.ndarray], theta: np.ndarray,
    reml: bool,
) -> np.ndarray:  # fmt: skip
    """``(N / q) (v' P v - c c' / q)`` from ``W = I + Z Lam Lam' Z'`` as (n, n) matrices.

    ``lam[k]`` is ``dLambda / dtheta_k`` (Lambda is linear in theta).
    """
    n, p = X.shape
    Lam = sum(t * L for t, L in zip(theta, lam, strict=True))
    W = np.eye(n) + Z @ Lam @ Lam.T @ Z.T
    Wi = np.linalg.inv(W)
    P = Wi - Wi @ X @ np.linalg.solve(X.T @ Wi @ X, X.T @ Wi)
    e = P @ y
    Wk = [Z @ (L @ Lam.T + Lam @ L.T) @ Z.T for L in lam]
    v = np.stack([Wd @ e for Wd in Wk], axis=1)  # (n, k)
    c = v.T @ e
    q = float(e @ W @ e)
    N = n - p if reml else n
    return (N / q) * (v.T @ P @ v - np.outer(c, c) / q)


def dense_parts(
    layout: ThetaLayout, codes: list[np.ndarray], Ms: list[np.ndarray], nlevels: list[int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Z (n, sum l_t q_t), level-major within each term, and ``dLambda / dtheta_k`` per theta."""
    cols, offsets, start = [], [], 0
    for c, M, lvl in zip(codes, Ms, nlevels, strict=True):
        q = M.shape[1]
        Zt = np.zeros((len(c), lvl * q))
        for j in range(q):
            Zt[np.arange(len(c)), c * q + j] = M[:, j]
        cols.append(Zt)
        offsets.append(start)
        start += lvl * q
    lam = []
    for t, (rows, cs) in enumerate(layout.index):
        q = layout.qs[t]
        for r, col in zip(rows, cs, strict=True):
            L = np.zeros((start, start))
            for level in range(nlevels[t]):
                L[offsets[t] + level * q + r, offsets[t] + level * q + col] = 1.0
            lam.append(L)
    return np.hstack(cols), lam


DESIGNS = [
    # (terms as (q, T blocks), levels): first term chosen by the engine; rest terms of q 1 and 2
    (((2, (2,)), (1, (1,))), (9, 6)),
    (((1, (1,)), (2, (2,)), (1, (1,))), (7, 5, 4)),
    (((2, (1, 1)), (3, (3,))), (6, 4)),
    (((1, (1,)), (1, (1,))), (40, 30)),  # more levels than rows per level: sparse A21
]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("terms", "nlevels"), DESIGNS)
def test_average_information_is_its_definition(terms, nlevels, reml, weighted) -> None:
    rng = np.random.default_rng(len(nlevels) + 10 * nlevels[0])
    n = 120
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    codes = [rng.integers(0, lvl, n) for lvl in nlevels]
    for c, lvl in zip(codes, nlevels, strict=True):
        c[:lvl] = np.arange(lvl)  # every level has a row
    Ms = [np.column_stack([np.ones(n), rng.normal(size=(n, q - 1))]) for q, _ in terms]
    y = X @ [1.0, 0.5] + rng.normal(size=n) * 2.0
    for c, M in zip(codes, Ms, strict=True):
        y += (M * rng.normal(size=(max(nlevels), M.shape[1]))[c]).sum(axis=1)
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    layout = ThetaLayout(tuple(q for q, _ in terms), tuple(b for _, b in terms))
    bl = blocks_mod.form(X, y, tuple(codes), tuple(Ms), list(nlevels), weights=w)
    rows = np.ones(n) if w is None else np.sqrt(w)
    Z, lam = dense_parts(layout, codes, Ms, list(nlevels))
    diag = layout.diagonal
    for _ in range(2):  # two points
        theta = np.where(diag, rng.uniform(0.2, 1.5, layout.ntheta), rng.uniform(-0.5, 0.5))
        Ts = layout.Ts(theta)
        H = average_information(bl, layout, Ts, reml, factorize(bl, Ts).L22)
        want = dense_information(rows[:, None] * X, rows * y, rows[:, None] * Z, lam, theta, reml)
        # both sides are sums of ~n products of O(1) numbers: rounding, times the
        # condition number of W (< 1e3 here), well below 1e-10 of H's scale
        np.testing.assert_allclose(H, want, rtol=0, atol=1e-10 * np.abs(want).max())
        assert np.all(np.linalg.eigvalsh(H) >= -1e-12 * np.abs(H).max())  # semidefinite


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("formula", "users", "schur"), LARGE)
def test_read_off_every_schur_update(formula, users, schur, reml) -> None:
    """One factorization gives the objective, gradient and information on every path."""
    obj = objective(formula, crossed(6000, users, 700), reml, schur)
    theta = somewhere(obj, seed=users)
    f, g, H = obj.value_gradient_information(theta)
    f_alone, g_alone = obj.blocked(theta)
    assert f == f_alone  # the same function on the same inputs
    np.testing.assert_array_equal(g, g_alone)
    Ts = obj.Ts(theta)
    want = average_information(obj.blocks, obj.layout, Ts, reml, factorize(obj.blocks, Ts).L22)
    want += positive_part(covariance_curvature(obj.layout, Ts, g))
    # two factorizations of one matrix by different code paths: rounding (~1e-16)
    # times the system's condition number (< 1e6 for these designs)
    np.testing.assert_allclose(H, want, rtol=0, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("formula", "name"), SMALL)
def test_close_to_the_hessian_at_the_optimum(formula, name, reml) -> None:
    """At the optimum the replaced traces match their expectations: H is near the Hessian.

    The difference is O(p / n) for ML and the sampling noise of the data
    part; measured at most 0.6 % of the Hessian's largest entry on these
    designs (and at the start, where the Hessian is indefinite, 100 % and more).
    """
    obj = objective(formula, load(name), reml)
    opt = fit_theta(obj)
    theta = opt.final
    interior = (obj.lower() < 0.0) | (theta > 1e-3)  # at a variance of 0 both are singular
    assert interior.sum() >= 2
    _, _, H = obj.value_gradient_information(theta)
    hess = differenced_hessian(obj, theta)
    sub = np.ix_(interior, interior)
    assert np.abs(H - hess)[sub].max() <= 0.05 * np.abs(hess[sub]).max()


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("formula", "name"), SMALL)
def test_covariance_curvature_is_the_derivative_along_d2w(formula, name, reml) -> None:
    """``S_kl`` against differences of the objective along ``Sigma_t + eps (E_ab + E_ba)``.

    ``d^2 W / dtheta_k dtheta_l`` changes term t's relative covariance
    ``Sigma_t = T T'`` by ``E_ab + E_ba`` (a, b: the rows of theta_k and
    theta_l in T when they share a column). The objective along that change
    is evaluated through the Cholesky factor of the changed ``Sigma_t``.
    """
    obj = objective(formula, load(name), reml)
    layout = obj.layout
    theta = somewhere(obj, seed=5)
    _, g = obj.blocked(theta)
    S = covariance_curvature(layout, obj.Ts(theta), g)
    checked = 0
    for t, ((rows, cols), sl) in enumerate(zip(layout.index, layout.slices, strict=True)):
        T = layout.T(t, theta)
        for i in range(len(rows)):
            for j in range(len(rows)):
                a, b = rows[i], rows[j]
                if cols[i] != cols[j]:
                    assert S[sl.start + i, sl.start + j] == 0.0
                    continue
                step = np.zeros_like(T)
                step[a, b] += 1.0
                step[b, a] += 1.0

                def along(eps: float, t: int = t, T=T, step=step) -> float:
                    Ts = obj.Ts(theta)
                    Ts[t] = np.linalg.cholesky(T @ T.T + eps * step)
                    return obj.criterion(*objective_parts(obj.blocks, Ts))

                h = 1e-4
                fd = (along(-2 * h) - 8 * along(-h) + 8 * along(h) - along(2 * h)) / (12 * h)
                # five-point differences: error ~h^4 (fifth derivative), rounding ~1e-16 |f| / h
                assert S[sl.start + i, sl.start + j] == pytest.approx(fd, rel=1e-6, abs=1e-6)
                checked += 1
    assert checked >= len(theta)
