"""Where each element of theta sits: the layout of the relative covariance factors.

lme4's theta holds, for each random-effects term in order, the lower
triangle of the term's relative covariance factor ``T`` (q x q) in
column-major order. ``T`` may be block diagonal: an uncorrelated (``||``)
term is lme4's several terms on one grouping factor, ``(1 | g)`` and
``(0 + t | g)`` per term ``t``, whose blocks are 1 x 1 for numeric
columns and full for the levels of a factor; theta then holds each
block's lower triangle in turn.
Diagonal entries are bounded below by 0; the start is the identity.
Everything that maps theta to matrices (the objective, the model's
covariances, the standardized coordinates, the dense system) reads this
one layout, owned by the design.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ThetaLayout:
    """The theta layout of a sequence of terms.

    Attributes
    ----------
    qs : tuple of int
        Columns ``q_t`` of each term's ``T``.
    blocks : tuple of tuple of int
        Per term, the sizes of the diagonal blocks of ``T`` (summing to
        ``q_t``): ``(q_t,)`` for a correlated term, ``(1,) * q_t`` for a
        ``||`` term of numeric columns.
    """

    qs: tuple[int, ...]
    blocks: tuple[tuple[int, ...], ...]

    @functools.cached_property
    def index(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Per term, the (rows, cols) of ``T`` that its theta elements fill, in order."""
        out = []
        for q, sizes in zip(self.qs, self.blocks, strict=True):
            if sum(sizes) != q:
                raise ValueError(f"blocks {sizes} do not add up to {q} columns")
            pairs, start = [], 0
            for b in sizes:
                pairs += [(start + i, start + j) for j in range(b) for i in range(j, b)]
                start += b
            rows, cols = zip(*pairs, strict=True)
            out.append((np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)))
        return tuple(out)

    @functools.cached_property
    def slices(self) -> tuple[slice, ...]:
        """Per term, its slice of theta."""
        out, start = [], 0
        for rows, _ in self.index:
            out.append(slice(start, start + len(rows)))
            start += len(rows)
        return tuple(out)

    @property
    def ntheta(self) -> int:
        return sum(len(rows) for rows, _ in self.index)

    @functools.cached_property
    def diagonal(self) -> np.ndarray:
        """True for theta elements on a diagonal of some ``T``, shape (ntheta,)."""
        return np.concatenate([rows == cols for rows, cols in self.index])

    def block_positions(self) -> list[np.ndarray]:
        """Theta positions of every block of two or more rows: (b, b) ints, -1 above the diagonal.

        Where a diagonal ``T_jj`` of a block is 0, the entries below it and the
        block's later columns can be turned into each other without changing
        ``T T'`` (:func:`mixedfx.engine.optimize.ridge_turns`).
        """
        out = []
        for (rows, cols), sizes, sl in zip(self.index, self.blocks, self.slices, strict=True):
            start = 0
            for b in sizes:
                if b >= 2:
                    P = np.full((b, b), -1, dtype=np.intp)
                    inside = np.flatnonzero((rows >= start) & (rows < start + b))
                    P[rows[inside] - start, cols[inside] - start] = sl.start + inside
                    out.append(P)
                start += b
        return out

    def start(self) -> np.ndarray:
        """lme4's start: every ``T`` the identity, shape (ntheta,)."""
        return self.diagonal.astype(float)

    def lower(self) -> np.ndarray:
        """Bounds: 0 on diagonals, -inf elsewhere, shape (ntheta,)."""
        return np.where(self.diagonal, 0.0, -np.inf)

    def T(self, t: int, theta: np.ndarray) -> np.ndarray:
        """Term ``t``'s factor ``T`` from the whole theta, shape (q_t, q_t)."""
        rows, cols = self.index[t]
        T = np.zeros((self.qs[t], self.qs[t]))
        T[rows, cols] = theta[self.slices[t]]
        return T

    def Ts(self, theta: np.ndarray) -> list[np.ndarray]:
        """Every term's ``T``, in order."""
        theta = np.asarray(theta, dtype=float)
        return [self.T(t, theta) for t in range(len(self.qs))]

    def theta(self, Ts: list[np.ndarray]) -> np.ndarray:
        """The inverse of :meth:`Ts`: theta from the factors, shape (ntheta,)."""
        return np.concatenate([T[r, c] for T, (r, c) in zip(Ts, self.index, strict=True)])

    def by_row(self, per_term: list[np.ndarray]) -> np.ndarray:
        """Spread per-term, per-row values over theta: element (i, j) of T_t gets v_t[i].

        Parameters
        ----------
        per_term : list of ndarray, shape (q_t,)

        Returns
        -------
        ndarray, shape (ntheta,)
        """
        return np.concatenate(
            [np.asarray(v, dtype=float)[r] for v, (r, _) in zip(per_term, self.index, strict=True)]
        )
