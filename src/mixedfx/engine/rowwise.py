"""Row-by-row products whose value for a row does not depend on the other rows.

``X @ beta`` through BLAS sums each row's products in an order chosen by
the kernel, and optimized kernels treat rows differently by their position
in a block (the last rows of a block go through a tail loop). Under
OpenBLAS's SkylakeX kernels a row's prediction differed in its last bit
depending on which Dask partition it was in. Predictions must not depend
on which other rows are scored with them, so these products are formed
column by column with elementwise operations: each row's sum runs over
the columns in order, the same on every CPU and for every batch of rows.
They read ``X`` once per column: on the design's column-major matrices,
100k rows take 0.05 ms for 2 columns (BLAS: 0.03), 0.28 ms for 10 (0.09)
and 4.1 ms for 50 (1.3). (numpy's einsum is also independent of the row's
position, but gives other bits for a column-major array than for a
row-major one, and is slower for few columns.)
"""

from __future__ import annotations

import numpy as np


def row_dot(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``A @ v`` with each row's sum taken over the columns in order.

    Parameters
    ----------
    A : ndarray, shape (n, k)
    v : ndarray, shape (k,)

    Returns
    -------
    ndarray, shape (n,)
        ``sum_j A[i, j] v[j]``, summed from ``j = 0`` up.
    """
    n, k = A.shape
    out = np.zeros(n)
    if k == 0:
        return out
    np.multiply(A[:, 0], v[0], out=out)
    term = np.empty(n)
    for j in range(1, k):
        np.multiply(A[:, j], v[j], out=term)
        out += term
    return out


def row_matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A @ B`` with each row of the result from :func:`row_dot` of its row of ``A``.

    Parameters
    ----------
    A : ndarray, shape (n, k)
    B : ndarray, shape (k, m)

    Returns
    -------
    ndarray, shape (n, m)
    """
    out = np.empty((A.shape[0], B.shape[1]))
    for c in range(B.shape[1]):
        out[:, c] = row_dot(A, B[:, c])
    return out
