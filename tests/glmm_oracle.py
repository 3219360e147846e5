"""Dense, slow, obviously correct GLMM pieces for differential tests.

Z and Lambda as dense matrices; the conditional mode minimises the penalized
deviance with scipy's trust-region Newton (exact gradient and Hessian) and a
few plain Newton steps after it; the
Laplace deviance is ``-2 log p(y | u*) + ||u*||^2 + log det(Lambda'Z'W Z Lambda + I)``
with numpy's slogdet; the marginal likelihood of one scalar term is
integrated per level with scipy's adaptive quadrature.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate, optimize

from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine.family import Family, make
from mixedfx.engine.pirls import GlmRows


def synthetic(
    family: Family, n: int = 120, slope: bool = True, crossed: bool = True, seed: int = 0
) -> tuple[GlmRows, list[np.ndarray]]:
    """Rows of ``y ~ x + (x | g) + (1 | h)`` (or fewer terms) and their factors ``T``."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 8, size=n)
    h = rng.integers(0, 5, size=n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    codes, Ms, nlevels, Ts = [g], [X.copy() if slope else np.ones((n, 1))], [8], []
    Ts.append(np.array([[0.8, 0.0], [0.2, 0.5]]) if slope else np.array([[0.8]]))
    if crossed:
        codes.append(h)
        Ms.append(np.ones((n, 1)))
        nlevels.append(5)
        Ts.append(np.array([[0.6]]))
    eta = 0.2 + 0.5 * x + 0.7 * rng.normal(size=8)[g]
    if crossed:
        eta = eta + 0.4 * rng.normal(size=5)[h]
    w = np.ones(n)
    if family.binomial:
        w = rng.integers(1, 4, size=n).astype(float)
        y = rng.binomial(w.astype(int), 1 / (1 + np.exp(-eta))) / w
    else:
        y = rng.poisson(np.exp(eta)).astype(float)
    offset = 0.1 * rng.normal(size=n)
    sizes = [(nl, M.shape[1]) for nl, M in zip(nlevels, Ms, strict=True)]
    first, _ = blocks_mod.engine_order(sizes)
    rows = GlmRows(X, tuple(codes), tuple(Ms), tuple(nlevels), y, w, w, offset, family, first)
    return rows, Ts


def dense(rows: GlmRows, Ts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Z (n, q) and Lambda (q, q), terms in design order."""
    Zs, Ls = [], []
    for codes, M, nl, T in zip(rows.codes, rows.M, rows.nlevels, Ts, strict=True):
        qt = M.shape[1]
        Z = np.zeros((rows.n, nl * qt))
        for j in range(qt):
            Z[np.arange(rows.n), codes * qt + j] = M[:, j]
        Zs.append(Z)
        Ls.append(np.kron(np.eye(nl), T))
    L = np.zeros((sum(z.shape[1] for z in Zs),) * 2)
    pos = 0
    for B in Ls:
        L[pos : pos + len(B), pos : pos + len(B)] = B
        pos += len(B)
    return np.hstack(Zs), L


def penalized_deviance(rows: GlmRows, eta: np.ndarray, u: np.ndarray) -> float:
    mu = rows.family.linkinv(eta)
    return float(rows.family.dev_resid(rows.y, mu, rows.weights).sum() + u @ u)


def mode(rows: GlmRows, Ts: list[np.ndarray], beta: np.ndarray) -> np.ndarray:
    """The spherical conditional mode (concatenated), by trust-region Newton (canonical links)."""
    Z, L = dense(rows, Ts)
    ZL = Z @ L
    base = rows.offset + rows.X @ beta
    fam = rows.family

    def parts(u: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        eta = base + ZL @ u
        mu = fam.linkinv(eta)
        r = rows.weights * (rows.y - mu)  # canonical link: d loglik / d eta
        W = rows.weights * fam.variance(mu)
        grad = -2.0 * ZL.T @ r + 2.0 * u
        hess = 2.0 * (ZL.T * W) @ ZL + 2.0 * np.eye(len(u))
        return penalized_deviance(rows, eta, u), grad, hess

    res = optimize.minimize(
        lambda u: parts(u)[0],
        np.zeros(ZL.shape[1]),
        jac=lambda u: parts(u)[1],
        hess=lambda u: parts(u)[2],
        method="trust-exact",
        options={"gtol": 1e-11},
    )
    u = res.x
    for _ in range(5):  # trust-exact may stop at |gradient| ~ 1e-7: finish with Newton steps
        _, g, H = parts(u)
        u = u - np.linalg.solve(H, g)
    return u


def laplace(rows: GlmRows, Ts: list[np.ndarray], beta: np.ndarray) -> float:
    """-2 log L by the Laplace approximation, densely."""
    u = mode(rows, Ts, beta)
    Z, L = dense(rows, Ts)
    eta = rows.offset + rows.X @ beta + Z @ L @ u
    fam = rows.family
    mu = fam.linkinv(eta)
    W = rows.weights * fam.link.mu_eta(eta) ** 2 / fam.variance(mu)
    ZL = Z @ L
    logdet = np.linalg.slogdet((ZL.T * W) @ ZL + np.eye(len(u)))[1]
    return -2.0 * fam.loglik(rows.y, mu, rows.weights, rows.trials) + float(u @ u) + logdet


def marginal(rows: GlmRows, t: float, beta: np.ndarray) -> float:
    """-2 log of the exact marginal likelihood of one scalar term, level by level (quad)."""
    codes, x = rows.codes[0], rows.M[0][:, 0]
    base = rows.offset + rows.X @ beta
    total = 0.0
    for k in range(rows.nlevels[0]):
        sel = codes == k
        total += -2.0 * log_integral(rows, sel, base[sel], t * x[sel])
    return total


def log_integral(rows: GlmRows, sel: np.ndarray, base: np.ndarray, slope: np.ndarray) -> float:
    """``log E p(y_sel | u)`` over ``u ~ N(0, 1)`` with ``eta = base + slope u``."""
    fam = rows.family
    y, w, m = rows.y[sel], rows.weights[sel], rows.trials[sel]

    def log_joint(u: float) -> float:
        return fam.loglik(y, fam.linkinv(base + slope * u), w, m) - 0.5 * u * u

    peak = optimize.minimize_scalar(lambda u: -log_joint(u)).x
    c = log_joint(peak)
    value, _ = integrate.quad(
        lambda u: float(np.exp(log_joint(u) - c)) / np.sqrt(2 * np.pi),
        peak - 12,
        peak + 12,
        epsabs=0,
        epsrel=1e-13,
        limit=200,
    )
    return float(np.log(value) + c)


def stacked_mode(
    L: np.ndarray,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    given: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    family: Family,
) -> np.ndarray:
    """Spherical modes of a Gaussian part and a GLM part stacked (canonical links), densely.

    Minimises ``sum w_t (r - Z_t L u)^2 + sum_i d_i(y, g^-1(base + Z_g L u)) + ||u||^2``
    by Newton's method from 0.

    Parameters
    ----------
    L : ndarray, shape (q, q)
    train : (Z_t, w_t, r)
        The training rows' Z, working weights and working response less X beta.
    given : (Z_g, base, y, w)
        The given rows' Z, linear predictor without Z b, response and prior weights.
    """
    Zt, wt, r = train
    Zg, base, y, w = given
    A, B = Zt @ L, Zg @ L
    u = np.zeros(L.shape[0])
    for _ in range(100):
        mu = family.linkinv(base + B @ u)
        grad = -2 * A.T @ (wt * (r - A @ u)) - 2 * B.T @ (w * (y - mu)) + 2 * u
        hess = 2 * (A.T * wt) @ A + 2 * (B.T * (w * family.variance(mu))) @ B + 2 * np.eye(len(u))
        step = np.linalg.solve(hess, grad)
        u = u - step
        if np.abs(step).max() < 1e-14 * max(1.0, np.abs(u).max()):
            break
    return u


__all__ = ["dense", "laplace", "make", "marginal", "mode", "stacked_mode", "synthetic"]
