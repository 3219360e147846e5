"""``Z_a' W Z_b``, ``Z_a' W C`` and ``Z_a' W Z_a`` of random-effects terms, from the rows' codes.

A term's block of Z holds row ``i``'s ``M[i]`` (q entries) in the columns of
its level ``codes[i]``. Its cross-products with another term's block are sums,
over the rows of each *pair of levels*, of the products of their columns::

    (Z_a' W Z_b)[(k, s), (h, t)] = sum_{i: a_i = k, b_i = h} w_i M_a[i, s] M_b[i, t]

The pairs that occur are found by sorting the rows' pair keys once
(``np.unique``); each product of columns is then one ``bincount`` over the
pairs. Forming the sparse blocks of Z and multiplying them (scipy's
``csr_matmat``, then conversions and sorting) cost 4-5 times as much for 1M
rows of two crossed intercepts. With a term against dense columns ``C`` or
against itself (block diagonal) no sorting is needed: ``bincount`` over the
codes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _ones(M: np.ndarray) -> list[bool]:
    """Whether each column of M is all ones (it multiplies nothing)."""
    return [bool(len(c) and c[0] == 1.0 and np.all(c == 1.0)) for c in M.T]


def _product(
    u: np.ndarray, u_one: bool, v: np.ndarray, v_one: bool, w: np.ndarray | None
) -> np.ndarray | None:
    """``w u v`` without the factors that are ones; None when every factor is."""
    factors = [f for f, one in ((u, u_one), (v, v_one)) if not one]
    if w is not None:
        factors.append(w)
    if not factors:
        return None
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out


def cross(
    codes_a: np.ndarray,
    M_a: np.ndarray,
    nlevels_a: int,
    codes_b: np.ndarray,
    M_b: np.ndarray,
    nlevels_b: int,
    weights: np.ndarray | None = None,
) -> sp.csr_matrix:
    """``Z_a' W Z_b`` of two terms, shape (nlevels_a q_a, nlevels_b q_b), sorted indices.

    Parameters
    ----------
    codes_a, codes_b : ndarray of int, shape (n,)
    M_a, M_b : ndarray, shape (n, q_a) and (n, q_b)
    nlevels_a, nlevels_b : int
    weights : ndarray, shape (n,), optional
        The diagonal of W (the identity when None).
    """
    qa, qb = M_a.shape[1], M_b.shape[1]
    shape = (nlevels_a * qa, nlevels_b * qb)
    key = codes_a.astype(np.int64) * nlevels_b + codes_b
    ones_a, ones_b = _ones(M_a), _ones(M_b)
    counts_only = weights is None and all(ones_a) and all(ones_b)
    if counts_only:
        pairs, counts = np.unique(key, return_counts=True)
        sums = counts.astype(float)[:, None, None]
    else:
        pairs, inverse = np.unique(key, return_inverse=True)
        inverse = inverse.reshape(-1)
        sums = np.empty((len(pairs), qa, qb))
        for s in range(qa):
            for t in range(qb):
                w = _product(M_a[:, s], ones_a[s], M_b[:, t], ones_b[t], weights)
                sums[:, s, t] = np.bincount(inverse, weights=w, minlength=len(pairs))
    k, h = np.divmod(pairs, nlevels_b)
    if qa == 1 and qb == 1:  # pairs sorted by (k, h): already CSR
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(k, minlength=shape[0]), out=indptr[1:])
        return sp.csr_matrix((sums[:, 0, 0], h, indptr), shape=shape)
    rows = (k[:, None, None] * qa + np.arange(qa)[None, :, None]).repeat(qb, axis=2)
    cols = (h[:, None, None] * qb + np.arange(qb)[None, None, :]).repeat(qa, axis=1)
    out = sp.csr_matrix((sums.reshape(-1), (rows.reshape(-1), cols.reshape(-1))), shape=shape)
    out.sort_indices()
    return out


def dense(
    codes: np.ndarray,
    M: np.ndarray,
    nlevels: int,
    C: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``Z' W C`` of a term and dense columns C (n, k), shape (nlevels q, k)."""
    q, k = M.shape[1], C.shape[1]
    ones = _ones(M)
    out = np.empty((nlevels, q, k))
    for s in range(q):
        for j in range(k):
            w = _product(M[:, s], ones[s], C[:, j], False, weights)
            out[:, s, j] = np.bincount(codes, weights=w, minlength=nlevels)
    return out.reshape(nlevels * q, k)


def own(
    codes: np.ndarray, M: np.ndarray, nlevels: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """``Z' W Z`` of one term: its diagonal blocks, shape (nlevels, q, q)."""
    q = M.shape[1]
    ones = _ones(M)
    out = np.empty((nlevels, q, q))
    for s in range(q):
        for t in range(s, q):
            w = _product(M[:, s], ones[s], M[:, t], ones[t], weights)
            if w is None:
                out[:, s, t] = np.bincount(codes, minlength=nlevels)
            else:
                out[:, s, t] = np.bincount(codes, weights=w, minlength=nlevels)
            out[:, t, s] = out[:, s, t]
    return out
