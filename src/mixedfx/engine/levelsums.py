"""Sums of products of the rows' columns, from which :mod:`mixedfx.engine.blocks` forms A.

Per level of a grouping (:class:`LevelSums`: ``bincount(codes, u * v)``, each
distinct product once) and over all rows (:func:`column_products`,
:func:`tall_product`: ``[X y]'[X y]`` as dot products of its columns where
there are few).
"""

from __future__ import annotations

import numpy as np

DOTS_MAX = 3  # up to this many columns, dot products of columns beat BLAS's gemm on (n, k)


def tall_product(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A' B`` for tall arrays A (n, k) and B (n, k), shape (k, k).

    With few columns (column-major, as the rows' matrices are) it is the
    k^2 dot products of the columns: gemm on such shapes costs several times that.
    """
    k = A.shape[1]
    if k > DOTS_MAX:
        return A.T @ B
    return np.array([[A[:, i] @ B[:, j] for j in range(k)] for i in range(k)])


class LevelSums:
    """Per level, the sums of products of two row columns: ``bincount(codes, u * v)``.

    Each distinct product is summed once: a column equal to an earlier one (a
    random slope that is also a fixed effect, the intercept of X and of M)
    shares its sums, and a column of ones multiplies nothing (its products
    are the other column; two of them, the rows' counts). The sums are those
    of the products themselves, to the bit. With row ``weights`` ``w`` the
    sums are of ``(u w) v`` (``u`` the earlier column; ``w`` alone or ``v w``
    against ones): a GLMM's working weights, where ``[X y]'Z0`` shares most
    of its sums with ``Z0'Z0``.

    Parameters
    ----------
    codes : ndarray of int, shape (n,)
        The rows' levels.
    nlevels : int
    columns : list of ndarray, shape (n,) each
    weights : ndarray, shape (n,), optional
    """

    def __init__(
        self,
        codes: np.ndarray,
        nlevels: int,
        columns: list[np.ndarray],
        weights: np.ndarray | None = None,
    ) -> None:
        self.codes, self.nlevels, self.columns, self.weights = codes, nlevels, columns, weights
        self.same: list[int] = []  # per column, the first column equal to it
        for i, c in enumerate(columns):
            earlier = (j for j in sorted(set(self.same)) if _equal(columns[j], c))
            self.same.append(next(earlier, i))
        self.ones = [bool(len(c) and c[0] == 1.0 and (c == 1.0).all()) for c in columns]
        self.done: dict[tuple[int, int], np.ndarray] = {}

    def __call__(self, i: int, j: int) -> np.ndarray:
        """The sums of ``columns[i] * columns[j]`` over each level's rows, shape (nlevels,)."""
        a, b = sorted((self.same[i], self.same[j]))
        if (a, b) not in self.done:
            u, v, rw = self.columns[a], self.columns[b], self.weights
            if self.ones[a] and self.ones[b]:
                w = rw  # None: the rows' counts
            elif self.ones[a] or self.ones[b]:
                other = v if self.ones[a] else u
                w = other if rw is None else other * rw
            else:
                w = u * v if rw is None else (u * rw) * v
            out = np.bincount(self.codes, weights=w, minlength=self.nlevels)
            self.done[(a, b)] = out if w is not None else out.astype(float)
        return self.done[(a, b)]


def column_products(columns: list[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    """``[u' W v for v in columns] for u in columns``, shape (k, k), one dot product per pair.

    The lower triangle is copied from the upper one (exactly symmetric;
    ``v' u`` would be the same sum but for the order in which some BLAS kernels
    add a strided and a contiguous column): k (k + 1) / 2 passes over the rows
    instead of k^2. With ``weights`` (n,) the products
    are ``(u w)' v``, symmetric by construction.
    """
    k = len(columns)
    out = np.empty((k, k))
    for i, u in enumerate(columns):
        uw = u if weights is None else u * weights
        for j in range(i, k):
            out[i, j] = out[j, i] = uw @ columns[j]
    return out


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two columns are equal, elementwise (their first entries compared first)."""
    if a.shape != b.shape:
        return False
    head = min(len(a), 16)  # np.array_equal's test, without its wrapper (per pair of columns)
    return bool((a[:head] == b[:head]).all() and (a == b).all())
