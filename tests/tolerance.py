"""How the tests compare floating-point results (docs/testing.md has the same policy).

Exact equality only for the same function on the same inputs: the same call twice, a fit
and its refit on the same rows, a model and its copy through a lossless save and load.
Anything computed along another path (another summation order, another subset or order of
rows, another BLAS call, a duplicate row at another place in one BLAS call) may differ in its
last bits, and how much depends on the kernel that numpy's and scipy's OpenBLAS pick for the
machine's CPU (tools/kernel_matrix.py runs the suite under four of them).

Otherwise compare with :func:`assert_close`: the tolerance is relative to the scale of the
expected array, ``atol = rtol * max|expected|``, not to each element, so an element near zero
(a residual, a covariance, a BLUP) is held to the precision of the array's large elements,
which is all that its rounding can promise.  ``rtol`` comes from the conditioning of what is
compared, never from what happened to pass on one machine:

- the same formula on the same numbers in another order or blocking: a few hundred ulps of
  the scale (sums of a few terms of the array's own size); 1e-12 leaves room for that;
- results that pass through a solve or a factorization: the condition number times the
  unit roundoff (2.2e-16);
- results of an optimizer: the precision to which the optimum is located (the objective's
  flatness), stated where it is used.

The ``rtol`` chosen, and why, is written beside each comparison that is not exact.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# The same formula on the same numbers, in another order, blocking, subset of rows or
# BLAS kernel: sums of a few terms of the array's own scale round within a few hundred ulps.
REORDERED = 1e-12


def assert_close(
    actual: npt.ArrayLike, expected: npt.ArrayLike, rtol: float, err_msg: str = ""
) -> None:
    """Assert ``|actual - expected| <= rtol * max|expected|`` elementwise, shapes equal.

    NaN must match NaN (missing predictions stay missing); infinities must match exactly.
    With ``rtol=0`` this is exact equality.
    """
    a = np.asarray(actual, dtype=float)
    b = np.asarray(expected, dtype=float)
    assert a.shape == b.shape, f"shapes differ: {a.shape} != {b.shape}. {err_msg}"
    finite = np.isfinite(b)
    scale = float(np.abs(b[finite]).max()) if finite.any() else 0.0
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale, equal_nan=True, err_msg=err_msg)


def assert_close_columns(
    actual: npt.ArrayLike, expected: npt.ArrayLike, rtol: float, err_msg: str = ""
) -> None:
    """:func:`assert_close` on each column of 2-d arrays: columns of their own scale.

    For a prediction frame (fit, se, lower, upper), where se is far smaller than fit.
    """
    a = np.asarray(actual, dtype=float)
    b = np.asarray(expected, dtype=float)
    assert a.shape == b.shape and a.ndim == 2, f"shapes {a.shape}, {b.shape}. {err_msg}"
    for j in range(b.shape[1]):
        assert_close(a[:, j], b[:, j], rtol, err_msg=f"column {j}. {err_msg}")
