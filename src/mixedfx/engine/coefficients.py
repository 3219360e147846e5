"""The coefficients ``w_c(t) = t^2 / (t^2 a_c + 1)`` of grouped levels, on few basis functions.

The grouped Schur update (:mod:`mixedfx.engine.grouped`) is
``U(t) = sum_c w_c(t) B_c`` over the ``D`` distinct values ``a_c > 0`` of
A11. With ``v = t^2 a_ref`` for a reference ``a_ref = sqrt(min a * max a)``::

    w_c(t) = p(t) g_c(u),   p = t^2 / (1 + v),   u = 1 / (1 + v) in (0, 1],
    g_c(u) = a_ref / (a_c + u (a_ref - a_c))

Each ``g_c`` is analytic on [0, 1] (its pole ``u = a_c / (a_c - a_ref)`` lies
outside, at a distance ``1 / (sqrt(max a / min a) - 1)``), so its
interpolant at ``r`` Chebyshev points ``u_j`` converges geometrically in
``r``: for row counts between 684 and 928 (20,000 users, 16M ratings) 12
points reproduce every ``g_c`` to rounding, for 24 to 83 (1M ratings) 20.
Then::

    U(t) = p(t) sum_j l_j(u) C_j,    C_j = sum_c g_c(u_j) B_c

with ``l_j`` the Lagrange basis, evaluated by the barycentric formula
(stable: its Lebesgue constant is about 3). The ``C_j`` are ``U`` at the
points, sums of the ``B_c`` with positive weights; an evaluation combines
``r`` of them instead of ``D``.

The number of points is the smallest for which the interpolant of every
``g_c`` agrees with ``g_c`` to :data:`TOLERANCE` (relative, a few units of
rounding, about what summing the ``D`` products ``w_c B_c`` costs) on a
fine grid of ``u`` spanning [0, 1], plus :data:`MARGIN` points (each
shrinks the error by the convergence factor again). Where that takes more
than half of ``D`` points, or some ``a_c <= 0`` (levels without rows), the
basis is the groups themselves: ``w_c(t)`` exactly, ``C_j = B_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOLERANCE = 4e-15  # relative error of every group's interpolated coefficient on the grid
MARGIN = 4  # points added beyond the fewest that meet TOLERANCE
MOST = 64  # points tried at most
MAX_GROUPS = 1024  # more groups than this keep exact coefficients
GRID = np.unique(
    np.concatenate(
        [
            np.linspace(0.0, 1.0, 4001),
            np.geomspace(1e-12, 1e-3, 100),
            1.0 - np.geomspace(1e-12, 1e-3, 100),
        ]
    )
)


@dataclass(frozen=True)
class Coefficients:
    """``w_c(t)`` and ``dw_c/dt`` through ``r`` basis functions (module docstring).

    Attributes
    ----------
    a : ndarray, shape (D,)
        The groups' values of A11, increasing.
    weights : ndarray, shape (D, r)
        ``g_c(u_j)``: ``C_j = sum_c weights[c, j] B_c`` (the identity for exact coefficients).
    nodes : ndarray, shape (r,) or None
        The Chebyshev points ``u_j`` in [0, 1]; None for exact coefficients.
    a_ref : float
    """

    a: np.ndarray
    weights: np.ndarray
    nodes: np.ndarray | None = None
    a_ref: float = 1.0

    @property
    def size(self) -> int:
        """Number of basis functions ``r``."""
        return self.weights.shape[1]

    @classmethod
    def fit(cls, a: np.ndarray) -> Coefficients:
        """The fewest Chebyshev points that reproduce every ``g_c``, or the exact coefficients.

        Even numbers of points are tried on a coarse grid of ``u``; the first
        that passes is checked on :data:`GRID` (and grown by two until it
        passes there), then :data:`MARGIN` points are added.
        """
        a = np.asarray(a, dtype=float)
        exact = cls(a, np.eye(len(a)))
        most = min(MOST, len(a) // 2 - MARGIN)
        if most < 4 or a[0] <= 0.0 or len(a) > MAX_GROUPS:
            return exact
        a_ref = float(np.sqrt(a[0] * a[-1]))
        guess = expected_points(a[-1] / a[0])
        if guess > most:
            return exact
        for r in range(max(4, guess - 8), most + 1, 2):
            if _error(a, a_ref, r, GRID[:: len(GRID) // 256]) > TOLERANCE:
                continue
            while r <= most and _error(a, a_ref, r, GRID) > TOLERANCE:
                r += 2
            if r <= most:
                nodes = chebyshev_points(r + MARGIN)
                return cls(a, shape(a, a_ref, nodes), nodes, a_ref)
        return exact

    def at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The basis coefficients of ``U(t)`` and of ``dU/dt``, each (r,).

        ``U(t) = sum_j alpha_j C_j`` and ``dU/dt = sum_j dalpha_j C_j``. For
        exact coefficients ``alpha = w(t)``, computed as
        :func:`mixedfx.engine.cholesky.first_gram` computes ``W_k``.
        """
        tt = t * t
        if self.nodes is None:
            m = self.a * tt + 1.0
            return tt / m, (2.0 * t) / (m * m)
        s = 1.0 + tt * self.a_ref
        p, dp = tt / s, (2.0 * t) / (s * s)  # p and dp/dt
        du = -self.a_ref * dp  # du/dt
        basis, slope = lagrange(self.nodes, np.array([1.0 / s]))
        return p * basis[0], dp * basis[0] + (p * du) * slope[0]


def expected_points(ratio: float) -> int:
    """Chebyshev points that bring the interpolation error to ~1e-16, for ``max a / min a``.

    The poles of the ``g_c`` lie at ``1 / (sqrt(ratio) - 1)`` from [0, 1]:
    in the variable ``x = 2 u - 1`` at ``x* = 1 + 2 / (sqrt(ratio) - 1)``,
    so the error falls like ``rho^-r`` with ``rho = x* + sqrt(x*^2 - 1)``.
    """
    x = 1.0 + 2.0 / (np.sqrt(ratio) - 1.0)
    rho = x + np.sqrt(x * x - 1.0)
    return int(np.ceil(np.log(1e16 * np.sqrt(ratio)) / np.log(rho)))


def _error(a: np.ndarray, a_ref: float, r: int, u: np.ndarray) -> float:
    """The largest relative error of the interpolants of the ``g_c`` at r points, over ``u``."""
    nodes = chebyshev_points(r)
    interpolated = shape(a, a_ref, nodes) @ lagrange(nodes, u)[0].T
    return float(np.abs(interpolated / shape(a, a_ref, u) - 1.0).max())


def shape(a: np.ndarray, a_ref: float, u: np.ndarray) -> np.ndarray:
    """``g_c(u) = a_ref / (a_c + u (a_ref - a_c))``, shape (D, len(u))."""
    return a_ref / (a[:, None] + u[None, :] * (a_ref - a[:, None]))


def chebyshev_points(r: int) -> np.ndarray:
    """``r >= 2`` Chebyshev points of the second kind on [0, 1], both ends included, increasing."""
    return 0.5 * (1.0 - np.cos(np.pi * np.arange(r) / (r - 1)))


def lagrange(nodes: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Lagrange basis at Chebyshev points of the second kind, and its derivative in u.

    The basis by the barycentric formula with weights ``lambda_j = (-1)^j``
    (halved at both ends): ``l_j(u) = q_j / sum_k q_k``, ``q_j = lambda_j /
    (u - u_j)``, and ``l = e_i`` at a point ``u_i`` itself. The derivative
    as ``l'(u) = l(u) D``, exact for polynomials of degree ``< r`` and,
    unlike the derivative of the barycentric formula, stable next to a
    point: ``D_ij = (lambda_j / lambda_i) / (u_i - u_j)`` is the
    differentiation matrix, ``D_ii = -sum_{j != i} D_ij``.

    Parameters
    ----------
    nodes : ndarray, shape (r,)
    u : ndarray, shape (n,)

    Returns
    -------
    basis, slope : ndarray, shape (n, r)
    """
    r = len(nodes)
    lam = (-1.0) ** np.arange(r)
    lam[[0, -1]] *= 0.5
    diff = u[:, None] - nodes[None, :]
    at_node = diff == 0.0
    diff[at_node] = 1.0
    q = lam / diff
    basis = q / q.sum(axis=1, keepdims=True)
    hit = at_node.any(axis=1)
    basis[hit] = at_node[hit].astype(float)
    gap = nodes[:, None] - nodes[None, :]
    np.fill_diagonal(gap, 1.0)
    D = (lam[None, :] / lam[:, None]) / gap
    np.fill_diagonal(D, 0.0)
    np.fill_diagonal(D, -D.sum(axis=1))
    return basis, basis @ D
