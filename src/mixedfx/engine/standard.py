"""The standardized coordinates the engine fits in, and the exact map back.

Why. The profiled objective reads ``r^2`` and ``log|L_X|`` off a Cholesky
factor of the cross-products of ``[Z X y]``. When the mean of y (or of a
column of X, or of a random-slope column) is large against its spread, those
cross-products cancel catastrophically: sleepstudy with ``Reaction + 1e8``
came back with sigma 1 % off, with ``+ 1e10`` not at all, and ``x + 1e6`` in
a random slope moved the objective by 0.08. So every column is centred and
scaled *before* the cross-products are formed, and the estimates are mapped
back to the user's coordinates exactly (a linear map, no refit). Fits of
``y + c``, ``y * s``, ``x + c`` and ``x * s`` then see the same standardized
numbers, up to the rounding of the data, and are invariant by construction.

Coordinates. For a matrix ``W`` (n x k) with an *intercept combination*
``v`` (``W v = 1`` on every row, e.g. ``e_j`` for an all-ones column, or the
indicator columns of a fully coded factor; None when there is none)::

    W_s = W G,    G = (I - v mu') D^-1,    G^-1 = D (I + v mu')

with ``mu_j`` the mean of column ``j`` outside v's support (0 inside, and 0
everywhere when there is no v: a shift is a reparameterisation only when
the constant is in the column space) and ``D = diag(d)``, ``d_j`` the root
mean square of the centred column (1 for a column that is all zero). As
``mu' v = 0``, ``det G = 1 / prod d``, and row by row ``W_s = (W - mu) / d``.

The fit's matrices:

* ``[X y]`` with ``v = [v_X; 0]``: ``X_s = X G_X`` and
  ``y_s = (y - c) / s`` with ``c`` the mean of y when X has an intercept
  combination (else 0) and ``s`` the root mean square of ``y - c``;
* each random term's ``M``: ``M_s = M G_t``. Only terms whose ``T`` is one
  full lower triangle (correlated, with an intercept combination) are
  centred: then ``T T' -> G_t^-1 T T' G_t^-T`` maps the set of covariance
  matrices onto itself and the likelihood is unchanged. A ``||`` term of
  several blocks (block-diagonal ``T``) is only scaled, so ``D^-1 T`` keeps
  its zero blocks exactly; ``(x || g)`` is not invariant under ``x + c`` (in
  lme4 neither), and neither is ``(1 | g) + (0 + x | g)``.

Back to the user's coordinates, from ``y = c + s y_s``::

    beta = s G_X beta_s + c v_X             vcov  = s^2 G_X V_s G_X'
    b_t  = s G_t b_s                        condcov = s^2 G_t C_s G_t'
    sigma = s sigma_s                       T_t = lower factor of G_t T_s  (L L' = G T T' G')
    ML:   deviance  = deviance_s + 2 n log s
    REML: criterion = criterion_s + 2 (n - p) log s + 2 sum_j log d_X,j

(``log|X'V^-1 X|`` in the REML criterion gains ``-2 log|det G_X|``.) theta
is unitless, so y's scale leaves it alone.

The moments merge exactly (Chan et al.'s pairwise update), so each Dask
partition standardizes with its own and the partials are moved to the merged
coordinates (:meth:`Standardization.to`, :func:`~mixedfx.engine.blocks.transform`)
before they are added: both paths end in the coordinates of the whole data's
moments.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from . import smallmat
from .layout import ThetaLayout
from .rowwise import row_dot, row_matmul


def _pow2(x: np.ndarray) -> np.ndarray:
    """A power of two near ``|x|`` (1 for 0), elementwise: exact to divide by."""
    return np.ldexp(1.0, np.frexp(np.where(x == 0.0, 1.0, np.abs(x)))[1])


@dataclass(frozen=True)
class Moments:
    """Column means and root mean squares of a matrix, and its standardizing map.

    Attributes
    ----------
    n : int
        Rows summarised.
    weights : ndarray, shape (k,), or None
        The intercept combination ``v`` (``W v = 1``); None when there is none.
    mean : ndarray, shape (k,)
        Means of the centred columns, 0 for the others.
    rms : ndarray, shape (k,)
        Root mean squares about ``mean``.
    """

    n: int
    weights: np.ndarray | None
    mean: np.ndarray
    rms: np.ndarray

    @classmethod
    def of(cls, W: np.ndarray, weights: np.ndarray | None) -> Moments:
        """The moments of the rows of ``W`` (n, k).

        Each column is divided by a power of two near its largest value
        first, so that no sum of squares overflows.

        Raises
        ------
        ValueError
            When ``W @ weights`` is not exactly 1 on every row (a design
            whose intercept combination was misread: a bug, never data).
        """
        n, k = W.shape
        if weights is not None and n and not (W @ weights == 1.0).all():
            raise ValueError("internal: the columns' intercept combination does not sum to 1")
        if n == 0:
            return cls(0, weights, np.zeros(k), np.zeros(k))
        # the ufuncs' reductions: what ndarray.max and .mean (a sum over n) run, without
        # their Python wrappers (four calls on a few columns cost more than the sums)
        top = np.maximum(np.maximum.reduce(W, axis=0), -np.minimum.reduce(W, axis=0))
        unit = _pow2(top)  # max |W| per column
        Wu = W / unit
        mean = np.add.reduce(Wu, axis=0) / n
        mean *= _centred(weights, k)
        Wu -= mean
        np.square(Wu, out=Wu)
        rms = np.sqrt(np.add.reduce(Wu, axis=0) / n)
        return cls(n, weights, mean * unit, rms * unit)

    @functools.cached_property
    def scale(self) -> np.ndarray:
        """``d``: the root mean squares, 1 where that is 0 (a constant column, centred) (k,)."""
        return np.where(self.rms > 0.0, self.rms, 1.0)

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets of rows (Chan et al.; no sum of squares is formed).

        Each set's mean carries a rounding error of ~eps ``|mean|``, so the
        merged root mean square differs from the whole's by ~eps ``|mean| /
        rms`` relative: a slightly different choice of coordinates, in which
        the fit is as exact.
        """
        n = self.n + other.n
        if not self.n or not other.n:
            return self if other.n == 0 else other
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        big = np.maximum(np.maximum(self.rms, other.rms), np.abs(delta))
        unit = np.where(big > 0.0, big, 1.0)
        a, b, c = self.rms / unit, other.rms / unit, delta / unit
        sq = self.n * a * a + other.n * b * b + c * c * (self.n * other.n / n)
        rms = unit * np.sqrt(sq / n)
        return Moments(n, self.weights, mean, rms)

    def rows(self, W: np.ndarray) -> np.ndarray:
        """``W G`` for rows with ``W v = 1``: ``(W - mean) / d``, shape (n, k)."""
        out = W - self.mean
        out /= self.scale
        return out

    def matrix(self) -> np.ndarray:
        """``G = (I - v mean') D^-1``, shape (k, k) (read-only: computed once)."""
        return self._matrix

    @functools.cached_property
    def _matrix(self) -> np.ndarray:
        k = len(self.mean)
        v = np.zeros(k) if self.weights is None else self.weights
        G = (np.eye(k) - np.outer(v, self.mean)) / self.scale
        G.flags.writeable = False
        return G

    def inverse(self) -> np.ndarray:
        """``G^-1 = D (I + v mean')``, shape (k, k)."""
        k = len(self.mean)
        v = np.zeros(k) if self.weights is None else self.weights
        return self.scale[:, None] * (np.eye(k) + np.outer(v, self.mean))

    def to(self, other: Moments) -> np.ndarray:
        """``K = G_self^-1 G_other``: rows in these coordinates times K are in ``other``'s."""
        k = len(self.mean)
        v = np.zeros(k) if self.weights is None else self.weights
        step = np.eye(k) + np.outer(v, self.mean - other.mean)
        return self.scale[:, None] * step / other.scale

    def identity(self) -> bool:
        """True when ``G = I`` (nothing centred, every scale 1): rows are left as they are."""
        return not self.mean.any() and bool(np.all(self.scale == 1.0))

    def same(self, other: Moments) -> bool:
        """The same coordinates (equal means and scales)."""
        return np.array_equal(self.mean, other.mean) and np.array_equal(self.scale, other.scale)

    def uncentred(self) -> Moments:
        """The same columns scaled only, without an intercept combination."""
        return Moments(self.n, None, np.zeros_like(self.mean), np.hypot(self.rms, self.mean))

    def holds_weights(self, cols: np.ndarray) -> bool:
        """Whether the columns ``cols`` include every column of the intercept combination."""
        return self.weights is None or not np.any(np.delete(self.weights, cols))

    def take(self, cols: np.ndarray) -> Moments:
        """The moments of columns ``cols`` (increasing indices, :meth:`holds_weights`)."""
        w = None if self.weights is None else self.weights[cols]
        return Moments(self.n, w, self.mean[cols], self.rms[cols])


def _centred(weights: np.ndarray | None, k: int) -> np.ndarray:
    """1.0 for the columns that are centred (outside v's support), else 0.0, shape (k,)."""
    if weights is None:
        return np.zeros(k)
    return (weights == 0.0).astype(float)


def lower_factor(A: np.ndarray, det: float) -> np.ndarray:
    """The lower-triangular ``L`` with non-negative diagonal and ``L L' = A A'`` (LQ of A).

    ``det`` is ``det A``, known exactly as a product of factors' diagonals
    (``A = G T`` with ``det G = 1 / prod d``). No product ``A A'`` is formed:
    for q = 2 (a random slope) ``L`` is closed form with ``L_22 = |det| / L_11``,
    so a diagonal that is tiny against the others (``x + 1e6``: ``T_22 ~ 1e-6
    T_11``) keeps full relative accuracy; larger q use a Householder QR of
    ``A'``.
    """
    q = A.shape[0]
    if q == 1:
        return np.abs(A)
    l00 = float(np.hypot(A[0, 0], A[0, 1])) if q == 2 else 0.0
    if l00 > 0.0:
        l10 = (A[1, 0] * A[0, 0] + A[1, 1] * A[0, 1]) / l00
        return np.array([[l00, 0.0], [l10, abs(det) / l00]])
    R = np.asarray(np.linalg.qr(A.T, mode="r"))
    sign = np.where(np.diag(R) < 0.0, -1.0, 1.0)
    return np.tril(R.T * sign)


@dataclass(frozen=True)
class Standardization:
    """The coordinates of a fit: moments of ``[X y]`` and of each term's ``M``.

    Attributes
    ----------
    xy : Moments
        Of the p + 1 columns of ``[X y]``; its weights are ``[v_X; 0]``.
    terms : tuple of Moments
        Per design term, of its q_t columns (weights only for correlated
        terms with an intercept).
    """

    xy: Moments
    terms: tuple[Moments, ...]

    @classmethod
    def learn(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        Ms: tuple[np.ndarray, ...] | list[np.ndarray],
        x_weights: np.ndarray | None,
        term_weights: list[np.ndarray | None],
    ) -> Standardization:
        """The moments of the training arrays (X (n, p), y (n,), M_t (n, q_t))."""
        xy_weights = None if x_weights is None else np.append(x_weights, 0.0)
        xy = Moments.of(np.column_stack([X, y]), xy_weights)
        terms = tuple(Moments.of(M, w) for M, w in zip(Ms, term_weights, strict=True))
        return cls(xy, terms)

    def merge(self, other: Standardization) -> Standardization:
        """The coordinates of both sets of rows."""
        terms = tuple(a.merge(b) for a, b in zip(self.terms, other.terms, strict=True))
        return Standardization(self.xy.merge(other.xy), terms)

    def to(self, other: Standardization) -> tuple[list[np.ndarray | None], np.ndarray]:
        """Per term and for ``[X y]``, the maps from these coordinates to ``other``'s.

        None for a term whose coordinates are the same in both.
        """
        terms = [
            None if a.same(b) else a.to(b) for a, b in zip(self.terms, other.terms, strict=True)
        ]
        return terms, self.xy.to(other.xy)

    def for_fixed(self, kept: np.ndarray) -> Standardization:
        """Coordinates in which the columns ``kept`` of X can be taken alone.

        These coordinates, unless the intercept combination uses a column not
        kept: then X and y are only scaled (the kept columns no longer hold a
        known constant).
        """
        cols = np.append(kept, self.p)
        return self if self.xy.holds_weights(cols) else replace(self, xy=self.xy.uncentred())

    def take_fixed(self, kept: np.ndarray) -> Standardization:
        """The coordinates of the columns ``kept`` of X and y (see :meth:`for_fixed`)."""
        return replace(self, xy=self.xy.take(np.append(kept, self.p)))

    # -- rows ---------------------------------------------------------------------
    @property
    def p(self) -> int:
        return len(self.xy.mean) - 1

    @property
    def x_weights(self) -> np.ndarray | None:
        """``v_X`` (p,), or None when y and X are not centred."""
        return None if self.xy.weights is None else self.xy.weights[:-1]

    @property
    def y_centre(self) -> float:
        return float(self.xy.mean[-1])

    @property
    def y_scale(self) -> float:
        return float(self.xy.scale[-1])

    def x_rows(self, X: np.ndarray) -> np.ndarray:
        """``X_s`` of rows of the fixed-effects matrix (each with ``x'v = 1``), (n, p)."""
        out = X - self.xy.mean[:-1]
        out /= self.xy.scale[:-1]
        return out

    def y_rows(self, y: np.ndarray) -> np.ndarray:
        """``(y - c) / s``, shape (n,)."""
        out = y - self.y_centre
        out /= self.y_scale
        return out

    def z_rows(self, t: int, M: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``M G_t`` of a term's rows, shape (n, q_t).

        With a ``mask`` (bool, (q_t,)) the columns outside it are zeroed
        first (lme4's ``re.form`` on part of a term); such rows no longer hold
        the intercept, so the matrix form is used.
        """
        mom = self.terms[t]
        if mask is None or mask.all():
            return mom.rows(M)
        return row_matmul(np.where(mask, M, 0.0), mom.matrix())

    def y_back(self, fit: np.ndarray) -> np.ndarray:
        """Standardized responses back to the user's: ``c + s fit``."""
        out = self.y_scale * fit
        out += self.y_centre
        return out

    def apply(
        self, X: np.ndarray, y: np.ndarray, Ms: tuple[np.ndarray, ...] | list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """The standardized ``X``, ``y`` and ``M_t`` of rows."""
        X_s, Ms_s = self.design_rows(X, Ms)
        return X_s, self.y_rows(y), Ms_s

    def design_rows(
        self, X: np.ndarray, Ms: tuple[np.ndarray, ...] | list[np.ndarray]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The standardized ``X`` and ``M_t`` of rows (a GLMM's: its response is not mapped)."""
        Ms_s = tuple(M if m.identity() else m.rows(M) for m, M in zip(self.terms, Ms, strict=True))
        return self.x_rows(X), Ms_s

    # -- parameters back to the user's coordinates ----------------------------------
    def Ts(self, Ts_s: list[np.ndarray]) -> list[np.ndarray]:
        """The user's relative factors ``T_t`` from the standardized ones: LQ of ``G_t T_s``.

        A term that is only scaled (``G_t = D^-1``, diagonal) needs no LQ:
        ``D^-1 T_s`` is lower triangular with the same zeros (a ``||`` term's
        blocks stay exactly block diagonal) and the same signs.
        """
        return [
            T / m.scale[:, None]
            if not m.mean.any()
            else lower_factor(m.matrix() @ T, float(np.multiply.reduce(np.diag(T) / m.scale)))
            for m, T in zip(self.terms, Ts_s, strict=True)
        ]

    def signed_Ts(self, Ts_s: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`Ts` with each column's sign that of ``T_s``'s diagonal: smooth in ``T_s``.

        ``L S`` (``S`` the signs of ``diag T_s``, + for 0) has ``L S (L S)' =
        L L'``; where every diagonal of ``T_s`` is positive it is :meth:`Ts`.
        A diagonal that crosses 0 (a variance at its bound) moves ``L``'s
        smoothly through 0 instead of folding it (``L_22 = det / L_11``), so
        this map can be differentiated there (Satterthwaite's chain rule).
        """
        out = self.Ts(Ts_s)
        return [L * np.where(np.diag(T) < 0.0, -1.0, 1.0) for L, T in zip(out, Ts_s, strict=True)]

    def fit_Ts(self, Ts: list[np.ndarray]) -> list[np.ndarray]:
        """The standardized relative factors from the user's (the inverse of :meth:`Ts`)."""
        return [
            T * m.scale[:, None]
            if not m.mean.any()
            else lower_factor(m.inverse() @ T, float(np.prod(np.diag(T) * m.scale)))
            for m, T in zip(self.terms, Ts, strict=True)
        ]

    def theta(self, layout: ThetaLayout, theta_s: np.ndarray) -> np.ndarray:
        """The user's theta from the standardized one (:meth:`Ts`), shape (ntheta,)."""
        return layout.theta(self.Ts(layout.Ts(theta_s)))

    def signed_theta(self, layout: ThetaLayout, theta_s: np.ndarray) -> np.ndarray:
        """The user's theta from the standardized one by :meth:`signed_Ts`, shape (ntheta,)."""
        return layout.theta(self.signed_Ts(layout.Ts(theta_s)))

    def fit_theta(self, layout: ThetaLayout, theta: np.ndarray) -> np.ndarray:
        """The standardized theta from the user's (:meth:`fit_Ts`), shape (ntheta,)."""
        return layout.theta(self.fit_Ts(layout.Ts(theta)))

    def back(self) -> tuple[list[np.ndarray | None], np.ndarray]:
        """Maps of rows back to the user's coordinates with y left centred: ``[Z, X, y - c]``.

        For :func:`~mixedfx.engine.blocks.transform`: per term ``G_t^-1``
        (None for a term whose ``G_t`` is the identity), and on ``[X y]``
        ``G^-1`` but for y's centre ``c``. Shifting y by ``c`` times X's
        intercept combination is a reparameterisation of beta alone
        (``beta - c v_X``): theta, sigma and both criteria are the user's,
        and y's cross-products do not cancel however large ``c`` is.
        """
        terms = [None if m.identity() else m.inverse() for m in self.terms]
        centred_y = np.append(np.zeros(self.p), self.y_centre)
        target = Moments(self.xy.n, self.xy.weights, centred_y, np.ones(self.p + 1))
        return terms, self.xy.to(target)

    def beta(self, beta_s: np.ndarray) -> np.ndarray:
        """``s G_X beta_s + c v_X``, shape (p,)."""
        G = self.xy.matrix()[:-1, :-1]
        out = self.y_scale * (G @ beta_s)
        v = self.x_weights
        return out if v is None else out + self.y_centre * v

    def vcov(self, V_s: np.ndarray) -> np.ndarray:
        """``s^2 G_X V_s G_X'``, shape (p, p)."""
        G = self.xy.matrix()[:-1, :-1] * self.y_scale
        return G @ V_s @ G.T

    def b(self, b_s: list[np.ndarray]) -> list[np.ndarray]:
        """``s G_t b_s`` per level: (l_t, q_t) arrays."""
        return [(self.y_scale * b) @ m.matrix().T for m, b in zip(self.terms, b_s, strict=True)]

    def condcov(self, C_s: list[np.ndarray]) -> list[np.ndarray]:
        """``s^2 G_t C_s G_t'`` per level: (l_t, q_t, q_t) arrays."""
        out = []
        for m, C in zip(self.terms, C_s, strict=True):
            G = m.matrix() * self.y_scale
            out.append(smallmat.matmul(smallmat.matmul(G, C), G.T))
        return out

    def objective(self, value: float, reml: bool) -> float:
        """The user's ML deviance or REML criterion from the standardized one."""
        n, p = self.xy.n, self.p
        log_s = math.log(self.y_scale)
        if not reml:
            return value + 2.0 * n * log_s
        return value + 2.0 * (n - p) * log_s + 2.0 * float(np.log(self.xy.scale[:-1]).sum())


@dataclass(frozen=True)
class Standardized:
    """A fit's estimates in its standardized coordinates (what the engine's blocks hold).

    The user's estimates are maps of these (:class:`Standardization`); the
    reverse maps would cancel (an intercept of ``1e10 + 251`` minus ``1e10``),
    so predictions, intervals and conditioning start from these.

    Attributes
    ----------
    coords : Standardization
    theta : ndarray, shape (ntheta,)
    beta : ndarray, shape (p,)
    sigma : float
    b : list per design term of ndarray, shape (l_t, q_t)
    """

    coords: Standardization
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    b: list[np.ndarray]

    def fixed_part(self, X: np.ndarray) -> np.ndarray:
        """``x'beta`` in the user's units, from rows of X (n, p): ``c + s x_s'beta_s``."""
        return self.coords.y_back(row_dot(self.coords.x_rows(X), self.beta))

    def random_part(
        self, t: int, M: np.ndarray, codes: np.ndarray, mask: np.ndarray | None = None
    ) -> np.ndarray:
        """``z'b_t[k]`` in the user's units for rows of M (n, q_t) at levels ``codes`` (>= 0)."""
        Ms = self.coords.z_rows(t, M, mask)
        out = Ms[:, 0] * self.b[t][:, 0][codes]  # column by column: M and Ms are column-major
        for j in range(1, Ms.shape[1]):
            out += Ms[:, j] * self.b[t][:, j][codes]
        out *= self.coords.y_scale
        return out
