"""Checked LAPACK calls: every routine's ``info`` is read, and a failure raises.

The engine calls LAPACK only through these wrappers, so no factorization or
inverse can fail silently and leave garbage behind. Each raises
:class:`numpy.linalg.LinAlgError` naming the routine and its ``info``.
Matrices are dense float64; only the lower triangle of a symmetric or
triangular input is read.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack


def _check(routine: str, info: int) -> None:
    if info > 0 and routine == "dpotrf":
        raise np.linalg.LinAlgError(f"matrix is not positive definite (dpotrf info {info})")
    if info != 0:
        raise np.linalg.LinAlgError(f"{routine} failed (info {info})")


def cholesky(A: np.ndarray, clean: bool = True, overwrite: bool = True) -> np.ndarray:
    """Lower Cholesky factor ``L`` of a symmetric positive definite ``A``, ``A = L L'``.

    Parameters
    ----------
    A : ndarray, shape (n, n)
        Only the lower triangle is read; overwritten when ``overwrite`` and
        ``A`` is Fortran-ordered.
    clean : bool
        Zero the strict upper triangle of the result.

    Returns
    -------
    ndarray, shape (n, n)
    """
    L, info = lapack.dpotrf(A, lower=1, clean=int(clean), overwrite_a=int(overwrite))
    _check("dpotrf", info)
    return np.asarray(L)


def inverse_lower(L: np.ndarray) -> np.ndarray:
    """``L^-1`` of a lower-triangular ``L`` (upper triangle not read), lower triangular."""
    K, info = lapack.dtrtri(L, lower=1)
    _check("dtrtri", info)
    return np.tril(K)


def inverse_from_cholesky(L: np.ndarray) -> np.ndarray:
    """``(L L')^-1`` from its lower Cholesky factor, both triangles filled, shape (n, n)."""
    S, info = lapack.dpotri(L, lower=1)
    _check("dpotri", info)
    return np.tril(S) + np.tril(S, -1).T


def solve_lower(L: np.ndarray, b: np.ndarray, transpose: bool = False) -> np.ndarray:
    """``L^-1 b`` (or ``L^-T b``) for a lower-triangular ``L``.

    Parameters
    ----------
    L : ndarray, shape (n, n)
    b : ndarray, shape (n,) or (n, k)
    """
    x, info = lapack.dtrtrs(L, b, lower=1, trans=int(transpose))
    _check("dtrtrs", info)
    return np.asarray(x)
