"""Blocks with one linear function of the fixed effects held: the fixed-effect profiles' system.

Holding ``a' beta = t`` eliminates one element ``beta_k`` (``k`` the largest
``|a_k|``, partial pivoting): ``beta_k = (t - a_-k' beta_-k) / a_k``, so
``X beta = (X_-k - x_k a_-k' / a_k) beta_-k + (t / a_k) x_k`` and the rows
``[Zr X y]`` of the blocks become ``[Zr (X_-k - x_k a_-k' / a_k) (y - (t /
a_k) x_k)]``, a linear map of the old rows (as
:func:`mixedfx.engine.blocks.fix_beta` for all of beta). For ``a = e_j`` this
moves ``t x_j`` into the response and drops column j.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .blocks import Blocks


def hold_linear(bl: Blocks, a: np.ndarray, value: float) -> Blocks:
    """The blocks with ``a' beta = value`` held (``a`` (p,), not 0); see the module docstring."""
    mr, p, m = bl.mr, bl.p, bl.m
    a = np.asarray(a, dtype=float)
    k = int(np.argmax(np.abs(a)))
    keep = [i for i in range(m - 1) if i != mr + k]
    Tm = np.zeros((m - 1, m))
    Tm[np.arange(m - 2), keep] = 1.0
    others = [i for i in range(p) if i != k]
    Tm[mr + np.arange(p - 1), mr + k] = -a[others] / a[k]
    Tm[-1, -1] = 1.0
    Tm[-1, mr + k] = -value / a[k]
    if sp.issparse(bl.A21):
        A21 = (sp.csr_matrix(Tm) @ bl.A21).tocsr()
        A21.sort_indices()
    else:
        A21 = Tm @ bl.A21
    return Blocks(bl.first, bl.l0, bl.q0, bl.rest, p - 1, bl.n, bl.A11, A21, Tm @ bl.A22 @ Tm.T)


def hold_fixed(bl: Blocks, j: int, value: float) -> Blocks:
    """The blocks of ``[Z, X without column j, y - value * x_j]`` (``beta_j = value``)."""
    return hold_linear(bl, np.eye(bl.p)[j], value)
