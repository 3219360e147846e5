"""Penalized iteratively reweighted least squares: the conditional modes of a GLMM.

At fixed relative covariance factors (theta), the conditional mode of the
spherical random effects ``u`` (``b = Lambda u``) minimises the penalized
deviance::

    pdev(u, beta) = sum_i d_i(y_i, mu_i) + ||u||^2,
    mu = g^-1(eta),  eta = offset + X beta + Z Lambda u

with ``d_i`` the family's deviance residuals. Each PIRLS iteration solves a
penalized weighted least-squares problem at the current ``eta``: with the
working weights ``W = w mu_eta^2 / V(mu)`` and the working response
``z = eta - offset + (y - mu) / mu_eta``, the new ``(u, beta)`` minimise::

    || W^(1/2) (z - X beta - Z Lambda u) ||^2 + ||u||^2

which is the linear mixed model's penalized least squares on rows scaled by
``W^(1/2)``: the same cross-product blocks (:mod:`mixedfx.engine.blocks`),
formed from the weighted rows and factored by the blocked Cholesky
(:mod:`mixedfx.engine.cholesky`), once per iteration. Two modes, as lme4's
``pwrssUpdate``:

* joint (``beta=None``): ``u`` and ``beta`` together (lme4's nAGQ = 0 stage);
* ``u`` only, ``beta`` fixed: the rows' response is ``z - X beta`` and X is
  left out of the blocks (the Laplace and Gauss-Hermite deviances).

Given rows (conditioning a fitted model) add the training rows' part as
fixed ``prior`` blocks of ``[Z, r]`` (their working-weighted cross-products
at the fitted mode): the objective is then ``pdev + ||r - Z Lambda u||^2``
over the training part, the Laplace (quadratic) approximation of the
training rows' deviance around their mode.

A step that raises ``pdev`` (beyond rounding, 1e-12 relative) is halved
(up to ten times), as in lme4. Iterations stop when the error left in the
linear predictor is below ``1e-13 (1 + |eta|)``, estimated from the last two
moves as ``m_k r / (1 - r)`` with ``r = m_k / m_(k-1)`` (the tail of a
geometric series: Newton's steps for canonical links converge
quadratically, Fisher scoring for probit and cloglog linearly), or when
``pdev`` moves by less than ``1e-13`` relative twice in a row while the
moves do not shrink geometrically (a flat objective: complete separation
in the joint mode, where beta drifts off to infinity). This is far
tighter than lme4's ``1e-7`` relative change of ``pdev``: the Laplace
deviance depends to first order on the mode through its log-determinant,
so only a mode exact to rounding makes the deviance a smooth function of
the parameters (finite differences at step 1e-3 then give its Hessian).
The factor returned is at the final mode's weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import blocks as blocks_mod
from . import solve
from .cholesky import BlockedCholesky, factorize
from .family import Family
from .rowwise import row_dot

MAXIT = 60
HALVINGS = 10
ETA_TOL = 1e-13
PDEV_TOL = 1e-13
ROUNDING = 1e-12  # relative increase of pdev taken as rounding, not as a failed step


@dataclass(frozen=True, eq=False)
class GlmRows:
    """The rows of a GLMM as the engine sees them.

    Attributes
    ----------
    X : ndarray, shape (n, p)
    codes : per term, ndarray of int, shape (n,)
    M : per term, ndarray, shape (n, q_t)
    nlevels : per term, int
    y : ndarray, shape (n,)
        Response (binomial: proportion of successes).
    weights : ndarray, shape (n,)
        Prior weights.
    trials : ndarray, shape (n,)
        Binomial trials ``m`` per row (see :mod:`mixedfx.engine.family`).
    offset : ndarray, shape (n,)
    family : Family
    first : int
        The term the blocks put first (:func:`mixedfx.engine.blocks.engine_order`).
    """

    X: np.ndarray
    codes: tuple[np.ndarray, ...]
    M: tuple[np.ndarray, ...]
    nlevels: tuple[int, ...]
    y: np.ndarray
    weights: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    family: Family
    first: int

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def sizes(self) -> list[int]:
        """Random effects per term, ``l_t q_t``."""
        return [nl * M.shape[1] for nl, M in zip(self.nlevels, self.M, strict=True)]

    @functools.cached_property
    def columns(self) -> list[list[np.ndarray]]:
        """Per term, its model-matrix columns, each contiguous (n,)."""
        return [[np.ascontiguousarray(M[:, j]) for j in range(M.shape[1])] for M in self.M]

    @functools.cached_property
    def bernoulli(self) -> bool:
        """Binomial with every response 0 or 1 (one logarithm per row, not two)."""
        return self.family.binomial and bool(np.all((self.y == 0) | (self.y == 1)))

    def random_part(self, b: list[np.ndarray]) -> np.ndarray:
        """``Z b`` for per-term effects ``b_t`` of shape (l_t, q_t), shape (n,)."""
        out = np.zeros(self.n)
        for codes, cols, bt in zip(self.codes, self.columns, b, strict=True):
            for j, col in enumerate(cols):
                out += col * np.take(np.ascontiguousarray(bt[:, j]), codes)
        return out

    def eta(self, beta: np.ndarray, b: list[np.ndarray]) -> np.ndarray:
        """The linear predictor ``offset + X beta + Z b``, shape (n,)."""
        return self.offset + row_dot(self.X, beta) + self.random_part(b)

    @functools.cached_property
    def saturated_kernel(self) -> float:
        """``sum_i kernel(y_i, y_i, w_i)``: the deviance residuals' constant part."""
        return float(self.family.kernel(self.y, self.y, self.weights).sum())

    def drsum(self, eta: np.ndarray, mu: np.ndarray | None = None) -> float:
        """Sum of the deviance residuals at ``eta`` (``mu``: its mean, when known)."""
        mu = self.family.linkinv(eta) if mu is None else mu
        with np.errstate(divide="ignore"):  # a mean of exactly 0 or 1 against y: infinite
            if self.bernoulli:  # kernel(y, y) = 0
                return -2.0 * float(self.weights @ np.log(np.where(self.y > 0, mu, 1.0 - mu)))
            kernel = self.family.kernel(self.y, mu, self.weights)
        return 2.0 * (self.saturated_kernel - float(kernel.sum()))

    def working(
        self, eta: np.ndarray, mu: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Working weights ``W`` and working response ``z`` at ``eta``, each shape (n,).

        ``mu``: the mean at ``eta`` when the caller has it (PIRLS: from the deviance).
        """
        fam = self.family
        mu = fam.linkinv(eta) if mu is None else mu
        me = fam.link.mu_eta(eta, mu)
        w = self.weights * me * me / fam.variance(mu)
        return w, eta - self.offset + (self.y - mu) / me

    def weighted_blocks(
        self, eta: np.ndarray, beta: np.ndarray | None, mu: np.ndarray | None = None
    ) -> blocks_mod.Blocks:
        """Blocks of the weighted rows ``W^(1/2) [Z X z]`` at ``eta`` (mean ``mu``, when known).

        With ``beta`` given: the blocks of ``W^(1/2) [Z, z - X beta]`` (no X).
        """
        w, z = self.working(eta, mu)
        if beta is None:
            X, r = self.X, z
        else:
            X, r = np.empty((self.n, 0)), z - row_dot(self.X, beta)
        return blocks_mod.form(X, r, self.codes, self.M, list(self.nlevels), self.first, w)


@dataclass(frozen=True)
class Mode:
    """The conditional mode at one set of parameters.

    Attributes
    ----------
    beta : ndarray, shape (p,)
        The fixed effects (given, or estimated jointly).
    u, b : list per term of ndarray, shape (l_t, q_t)
        Spherical effects and ``b = T u`` per level.
    eta : ndarray, shape (n,)
    factor : BlockedCholesky
        Of the weighted blocks at this mode (with X in the joint mode).
    drsum : float
        Sum of the deviance residuals.
    prior_ss : float
        The prior blocks' weighted sum of squares at the mode (0 without them).
    iterations : int
    converged : bool
    """

    beta: np.ndarray
    u: list[np.ndarray]
    b: list[np.ndarray]
    eta: np.ndarray
    factor: BlockedCholesky
    drsum: float
    prior_ss: float
    iterations: int
    converged: bool

    @property
    def usq(self) -> float:
        """``||u||^2``."""
        return float(sum((ut * ut).sum() for ut in self.u))

    @property
    def pdev(self) -> float:
        """The penalized deviance ``sum d_i + ||u||^2`` (plus the prior's sum of squares)."""
        return self.drsum + self.usq + self.prior_ss

    @property
    def logdet(self) -> float:
        """``log|L_Z|^2`` at the mode's weights."""
        return self.factor.logdets()[0]

    def laplace(self) -> float:
        """The Laplace deviance without the saturated model's part: ``pdev + log|L_Z|^2``."""
        return self.pdev + self.logdet


def _flat(u: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([ut.ravel() for ut in u]) if u else np.zeros(0)


def _split(v: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    out, pos = [], 0
    for ut in like:
        out.append(v[pos : pos + ut.size].reshape(ut.shape))
        pos += ut.size
    return out


def prior_ss(bl: blocks_mod.Blocks, b: list[np.ndarray]) -> float:
    """``||r - Z b||^2 = [-b; 1]' A [-b; 1]`` for blocks ``A`` of ``[Z r]`` (p = 0).

    Parameters
    ----------
    bl : Blocks
        With no fixed effects.
    b : list per design term of ndarray, shape (l_t, q_t)
    """
    b0 = b[bl.first]
    v = np.concatenate([*(-b[t.term].ravel() for t in bl.rest), [1.0]])
    first = float(np.einsum("kij,ki,kj->", bl.A11, b0, b0))
    cross = float(v @ (bl.A21 @ -b0.ravel()))
    return first + 2.0 * cross + float(v @ bl.A22 @ v)


def pirls(
    rows: GlmRows,
    Ts: list[np.ndarray],
    beta: np.ndarray | None = None,
    u0: list[np.ndarray] | None = None,
    beta0: np.ndarray | None = None,
    eta0: np.ndarray | None = None,
    maxit: int = MAXIT,
    prior: blocks_mod.Blocks | None = None,
) -> Mode:
    """The conditional mode at ``Ts`` (see module docstring).

    Parameters
    ----------
    rows : GlmRows
    Ts : list per term of ndarray, shape (q_t, q_t)
        Relative covariance factors.
    beta : ndarray, shape (p,), optional
        Fixed effects held fixed; None estimates them jointly with ``u``.
    u0 : list of ndarray, optional
        Starting spherical effects (zeros by default).
    beta0 : ndarray, optional
        Starting fixed effects in the joint mode (zeros by default).
    eta0 : ndarray, shape (n,), optional
        A starting linear predictor that is not of the form above (e.g. from
        the family's starting means): the first step is then taken from it
        unconditionally.
    maxit : int
    prior : Blocks, optional
        Fixed blocks of ``[Z, r]`` (no X; u only) in the rows' layout, added
        to every iteration's (see module docstring).

    Returns
    -------
    Mode
    """
    shapes = [np.zeros((nl, M.shape[1])) for nl, M in zip(rows.nlevels, rows.M, strict=True)]
    u = _flat(u0) if u0 is not None else np.zeros(sum(rows.sizes))
    fixed = beta is not None
    cur_beta = np.asarray(beta if fixed else (beta0 if beta0 is not None else np.zeros(0)))
    if not fixed and len(cur_beta) != rows.X.shape[1]:
        cur_beta = np.zeros(rows.X.shape[1])

    def b_of(uv: np.ndarray) -> list[np.ndarray]:
        return [ut @ T.T for ut, T in zip(_split(uv, shapes), Ts, strict=True)]

    def objective(eta: np.ndarray, uv: np.ndarray) -> tuple[float, float, np.ndarray]:
        """The penalized deviance, its deviance part and the mean at ``eta`` (reused)."""
        mu = rows.family.linkinv(eta)
        dr = rows.drsum(eta, mu)
        extra = 0.0 if prior is None else prior_ss(prior, b_of(uv))
        return dr + float(uv @ uv) + extra, dr, mu

    def factor(eta: np.ndarray, mu: np.ndarray | None) -> BlockedCholesky:
        bl = rows.weighted_blocks(eta, cur_beta if fixed else None, mu)
        return factorize(bl if prior is None else blocks_mod.add(prior, bl), Ts)

    if eta0 is not None:
        eta = np.asarray(eta0, dtype=float)
        pdev, dr, mu = np.inf, None, None
    else:
        eta = rows.eta(cur_beta, b_of(u))
        pdev, dr, mu = objective(eta, u)
    f = factor(eta, mu)
    converged, it, flat_before, before = False, 0, False, np.inf
    for it in range(1, maxit + 1):  # noqa: B007 (the count is returned)
        new_beta, new_u, _ = solve.modes(f)
        nu = _flat(new_u)
        nb = cur_beta if fixed else new_beta
        new_eta = rows.eta(nb, b_of(nu))
        new_pdev, new_dr, new_mu = objective(new_eta, nu)
        moved = float(np.max(np.abs(new_eta - eta), initial=0.0))
        rounding = ROUNDING * (1.0 + abs(pdev)) if np.isfinite(pdev) else np.inf
        for _ in range(HALVINGS):
            if new_pdev <= pdev + rounding:
                break
            nu = 0.5 * (u + nu)
            nb = nb if fixed else 0.5 * (cur_beta + nb)
            new_eta = rows.eta(nb, b_of(nu))
            new_pdev, new_dr, new_mu = objective(new_eta, nu)
        if new_pdev > pdev + rounding:
            break  # step halving failed: not converged
        rate = moved / before if 0.0 < before < np.inf else (0.0 if moved == 0.0 else 1.0)
        left = moved * rate / (1.0 - rate) if rate < 1.0 else np.inf
        small = left <= ETA_TOL * (1.0 + float(np.max(np.abs(new_eta), initial=0.0)))
        # a flat objective while eta keeps moving at a steady pace: separation
        flat = rate >= 0.5 and abs(pdev - new_pdev) <= PDEV_TOL * (1.0 + abs(new_pdev))
        before = moved
        u, cur_beta, eta, pdev, dr, mu = nu, nb, new_eta, new_pdev, new_dr, new_mu
        f = factor(eta, mu)
        if small or (flat and flat_before):
            converged = True
            break
        flat_before = flat
    b = b_of(u)
    extra = 0.0 if prior is None else prior_ss(prior, b)
    us = _split(u, shapes)
    dr = rows.drsum(eta) if dr is None else dr  # (a start eta0 never accepted a step)
    return Mode(cur_beta.copy(), us, b, eta, f, dr, extra, it, converged)
