"""Blocks with one fixed effect held at a value: the fixed-effect profiles' system.

Holding ``beta_j = v`` moves ``v x_j`` into the response and drops column j
of X: the rows ``[Zr X y]`` of the blocks become ``[Zr X_-j (y - v x_j)]``,
a linear map of the old rows (as :func:`mixedfx.engine.blocks.fix_beta` for all of beta).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .blocks import Blocks


def hold_fixed(bl: Blocks, j: int, value: float) -> Blocks:
    """The blocks of ``[Z, X without column j, y - value * x_j]``."""
    mr, p, m = bl.mr, bl.p, bl.m
    keep = [i for i in range(m - 1) if i != mr + j]
    Tm = np.zeros((m - 1, m))
    Tm[np.arange(m - 2), keep] = 1.0
    Tm[-1, -1] = 1.0
    Tm[-1, mr + j] = -value
    if sp.issparse(bl.A21):
        A21 = (sp.csr_matrix(Tm) @ bl.A21).tocsr()
        A21.sort_indices()
    else:
        A21 = Tm @ bl.A21
    return Blocks(bl.first, bl.l0, bl.q0, bl.rest, p - 1, bl.n, bl.A11, A21, Tm @ bl.A22 @ Tm.T)
