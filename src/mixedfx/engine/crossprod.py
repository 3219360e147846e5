"""The cross-products ``A = [Z X y]'[Z X y]`` and ``Lambda`` as dense matrices, in engine order.

Columns run over the first term's random effects (level-major), the rest's
(at their offsets, level-major), X, then y: the order of
:mod:`mixedfx.engine.blocks`. For methods that need the whole system at once
(Kenward-Roger's adjustment, the small-model evaluator); memory is
``(q + p + 1)^2`` doubles.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .blocks import Blocks


def dense_A(blocks: Blocks) -> np.ndarray:
    """``A`` as one dense symmetric matrix, shape (N, N), ``N = l0 q0 + m``."""
    l0, q0 = blocks.l0, blocks.q0
    A21 = sp.csr_matrix(blocks.A21).toarray() if sp.issparse(blocks.A21) else blocks.A21
    n0 = l0 * q0
    N = n0 + blocks.m
    A = np.zeros((N, N))
    k0 = np.arange(l0)[:, None, None] * q0
    A[k0 + np.arange(q0)[:, None], k0 + np.arange(q0)[None, :]] = blocks.A11
    A[n0:, :n0] = A21
    A[:n0, n0:] = A21.T
    A[n0:, n0:] = blocks.A22
    return A


def term_columns(blocks: Blocks) -> dict[int, tuple[int, int, int]]:
    """Per design term: (first column in Z, levels, q) in engine order."""
    n0 = blocks.l0 * blocks.q0
    out = {blocks.first: (0, blocks.l0, blocks.q0)}
    for t in blocks.rest:
        out[t.term] = (n0 + t.offset, t.nlevels, t.q)
    return out


def lambda_matrix(blocks: Blocks, Ts: list[np.ndarray]) -> sp.csr_matrix:
    """``Lambda`` (q, q), block diagonal with ``T_t`` per level, in engine order."""
    cols = term_columns(blocks)
    parts = [
        sp.kron(sp.identity(nlev, format="csr"), sp.csr_matrix(Ts[t]))
        for t, (_, nlev, _) in sorted(cols.items(), key=lambda kv: kv[1][0])
    ]
    return sp.block_diag(parts, format="csr")
