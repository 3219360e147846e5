"""Checked LAPACK calls: every routine's ``info`` is read, and a failure raises.

The engine calls LAPACK only through these wrappers, so no factorization or
inverse can fail silently and leave garbage behind. Each raises
:class:`numpy.linalg.LinAlgError` naming the routine and its ``info``.
Matrices are dense float64; only the lower triangle of a symmetric or
triangular input is read.

Both memory orders are taken without a copy: the lower triangle of a
C-ordered array is the upper triangle of its (Fortran-ordered) transpose, so
LAPACK is called on the transpose with ``uplo`` and ``trans`` flipped. The
hot paths build their matrices C-ordered and factor them in place.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.linalg import lapack


def _check(routine: str, info: int) -> None:
    if info > 0 and routine == "dpotrf":
        raise np.linalg.LinAlgError(f"matrix is not positive definite (dpotrf info {info})")
    if info != 0:
        raise np.linalg.LinAlgError(f"{routine} failed (info {info})")


def _fortran(A: np.ndarray) -> tuple[np.ndarray, int]:
    """A Fortran-ordered view holding ``A``'s lower triangle, and LAPACK's ``lower`` flag.

    For a C-ordered ``A`` this is ``A.T`` with the triangle in its upper half
    (flag 0); any other array is returned as it is (flag 1; LAPACK's wrapper
    copies it when it is not Fortran-ordered).
    """
    if A.flags.c_contiguous and not A.flags.f_contiguous:
        return A.T, 0
    return A, 1


def cholesky(A: np.ndarray, clean: bool = True, overwrite: bool = True) -> np.ndarray:
    """Lower Cholesky factor ``L`` of a symmetric positive definite ``A``, ``A = L L'``.

    Parameters
    ----------
    A : ndarray, shape (n, n)
        Only the lower triangle is read. With ``overwrite`` and ``A`` C- or
        Fortran-ordered, ``A`` itself becomes the result (no copy).
    clean : bool
        Zero the strict upper triangle of the result (else it is left as it was).

    Returns
    -------
    ndarray, shape (n, n)
        ``L`` in the lower triangle, in ``A``'s memory order.
    """
    F, lower = _fortran(A)
    C, info = lapack.dpotrf(F, lower, int(clean), int(overwrite))  # the small models' hot path
    if info:
        _check("dpotrf", info)
    return C if lower else C.T


def definite_solve(A: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``A^-1 b`` for a symmetric positive definite ``A`` (k, k) and ``b`` (k,); else None.

    One ``dposv`` (Cholesky and solve): for the few-by-few systems of the
    optimizers' steps it costs a tenth of numpy's ``cholesky`` and ``solve``.
    Only ``A``'s lower triangle is read; ``A`` and ``b`` are not written.
    None where ``A`` is not numerically positive definite (``info > 0``).
    """
    F, lower = _fortran(A)
    _, x, info = lapack.dposv(F, b, lower=lower)
    if info > 0:
        return None
    _check("dposv", info)
    return np.asarray(x)


def qr_r(A: np.ndarray) -> np.ndarray:
    """The R factor of ``A = Q R`` (Householder, ``dgeqrf``), shape (min(n, p), p).

    ``A`` (n, p) is not written. The fixed effects' rank check and its Dask
    form (the partitions' R factors stacked) both take R from here.
    """
    n, p = A.shape
    k = min(n, p)
    if k == 0:
        return np.zeros((k, p))
    qr, _, _, info = lapack.dgeqrf(A)
    _check("dgeqrf", info)
    return np.triu(qr[:k])


def symmetric_eigen(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (k,), ascending, and eigenvectors (k, k) of a symmetric ``A`` (lower read).

    One ``dsyevd``: for the few-by-few matrices of the optimizers a fifth of
    ``numpy.linalg.eigh``'s cost.
    """
    F, lower = _fortran(A)
    lam, V, info = lapack.dsyevd(F, compute_v=1, lower=lower)
    _check("dsyevd", info)
    return lam, V


def inverse_lower(L: np.ndarray, clean: bool = False) -> np.ndarray:
    """``L^-1`` of a lower-triangular ``L`` (upper triangle not read), lower triangular.

    ``clean``: ``L``'s strict upper triangle is 0 (a :func:`cholesky` with
    ``clean``), so the inverse's, which ``dtrtri`` leaves as it found it, is
    0 too and is not masked again. A (0, 0) ``L`` (a model without fixed
    effects) gives a (0, 0) inverse; LAPACK would refuse its leading dimension.
    """
    if L.shape[0] == 0:
        return np.zeros((0, 0))
    F, lower = _fortran(L)
    K, info = lapack.dtrtri(F, lower=lower)
    _check("dtrtri", info)
    K = K if lower else K.T
    return K if clean else tril(K)


def tril(A: np.ndarray) -> np.ndarray:
    """``np.tril`` of a square ``A`` (a new array), with the triangle's mask made once per size."""
    return np.where(_lower_mask(len(A)), A, 0.0)


@functools.lru_cache(maxsize=64)
def _lower_mask(n: int) -> np.ndarray:
    """The lower triangle (with the diagonal) of an (n, n) matrix, as a read-only mask."""
    mask = np.tri(n, dtype=bool)
    mask.flags.writeable = False
    return mask


def inverse_from_cholesky(L: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """``S = (L L')^-1`` from its lower Cholesky factor.

    Parameters
    ----------
    L : ndarray, shape (n, n)
        Lower triangle read.
    overwrite : bool
        Compute ``S`` in ``L``'s memory (C- or Fortran-ordered ``L``) and
        return only its lower triangle there, the strict upper triangle left
        as it was: no copy and no full-size temporary. Otherwise a new
        array with both triangles filled.

    Returns
    -------
    ndarray, shape (n, n)
    """
    F, lower = _fortran(L)
    S, info = lapack.dpotri(F, lower=lower, overwrite_c=int(overwrite))
    _check("dpotri", info)
    S = S if lower else S.T
    if overwrite:
        return np.asarray(S)
    return np.tril(S) + np.tril(S, -1).T


def solve_lower(L: np.ndarray, b: np.ndarray, transpose: bool = False) -> np.ndarray:
    """``L^-1 b`` (or ``L^-T b``) for a lower-triangular ``L``.

    Parameters
    ----------
    L : ndarray, shape (n, n)
    b : ndarray, shape (n,) or (n, k)
    """
    F, lower = _fortran(L)
    trans = int(transpose) if lower else 1 - int(transpose)
    x, info = lapack.dtrtrs(F, b, lower=lower, trans=trans)
    _check("dtrtrs", info)
    return np.asarray(x)


def pack_lower(A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The lower triangle of ``A`` in LAPACK's packed order, shape (n (n + 1) / 2,).

    Column by column: entry ``(i, j)``, ``i >= j``, is at ``j (2 n - j - 1) / 2 + i``
    (:func:`packed_index`). Only the lower triangle is read; a Fortran-ordered
    ``A`` is read without a copy. With ``out`` (of that shape) the result is
    written there.
    """
    ap, info = lapack.dtrttp(A, uplo="L")
    _check("dtrttp", info)
    if out is not None:
        out[:] = ap
        return out
    return np.asarray(ap)


def unpack_lower(ap: np.ndarray, n: int) -> np.ndarray:
    """A Fortran-ordered (n, n) array with the packed lower triangle ``ap``, zeros above.

    The inverse of :func:`pack_lower` (f2py fills the new array with zeros
    before LAPACK writes the triangle).
    """
    A, info = lapack.dtpttr(n, ap, uplo="L")
    _check("dtpttr", info)
    return np.asarray(A)


def packed_index(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Positions of the entries ``(rows, cols)``, ``rows >= cols``, in :func:`pack_lower`'s order.

    ``cols (2 n - cols - 1) / 2 + rows``: each column's triangle follows the previous ones.
    """
    cols = cols.astype(np.int64)
    return cols * (2 * n - cols - 1) // 2 + rows
