"""The gradient of the profiled objective with respect to theta, in closed form.

The objective of :mod:`mixedfx.engine.objective` is a weighted sum of the log
squared diagonals of the blocked factor (:mod:`mixedfx.engine.cholesky`)::

    f = log|L11|^2 + sum_i w_i log L22_ii^2
    w = (1 on the rest's random effects, 1 (REML) or 0 (ML) on X, dof on y)

plus constants, with ``dof = n - p`` (REML) or ``n`` (ML). A weighted sum of
the log-determinants of nested leading blocks has the derivative::

    df/dM22 = H = K' diag(w) K,     K = L22^-1

and the chain back to theta runs through ``M22 = Lr' (A22 - U) Lr + D``
with ``U = A21 W A21'`` and ``W_k = T0 M11_k^-1 T0'``, ``M11_k = T0' A11_k
T0 + I``::

    df/dLr  = 2 C Lr H,  C = A22 - U       (summed over each rest term's levels)
    df/dU   = -Lr H Lr'
    df/dW_k = a_k' (df/dU) a_k              (a_k: level k's columns of A21)
    df/dT0  = sum_k 2 A11_k T0 M11_k^-1 + 2 Wb_k T0 M11_k^-1 - 2 A11_k T0 N_k
              N_k = M11_k^-1 T0' Wb_k T0 M11_k^-1,  Wb_k = df/dW_k

The step to ``df/dW`` is the adjoint of the Schur update and costs what the
update does (``P' v`` for a pattern, ``B v`` for grouped levels). With the
inverse of L22 (one ``dpotri``), a gradient costs about two to three
evaluations of the objective, where finite differences cost ``2k``. When C
lives on sparse positions and every rest term has q = 1 (crossed random
intercepts), every product above is needed only where C is non-zero, and
the gradient forms no (m, m) array but the factor, inverted in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np
from scipy.linalg import blas

from . import levelstack
from .blocks import Blocks
from .cholesky import (
    Gram,
    Gram2,
    GramStack,
    dense_update,
    first_gram,
    first_grams,
    first_update,
    gram_2x2,
    gram_stack,
    logdets,
    rest_diagonal,
    scale_both,
    scale_rows,
)
from .grouped import GroupedSchur
from .linalg import (
    cholesky,
    inverse_from_cholesky,
    inverse_lower,
    pack_lower,
    solve_lower,
    unpack_lower,
)
from .schur import DenseSchur, Positions, split_columns

Parts = tuple[float, float, float]
Factored = Callable[[np.ndarray], None]


def weights(blocks: Blocks, reml: bool) -> np.ndarray:
    """The weights ``w`` of ``log L22_ii^2`` in the objective, shape (m,)."""
    mr, p, n = blocks.mr, blocks.p, blocks.n
    w = np.ones(blocks.m)
    if not reml:
        w[mr : mr + p] = 0.0
    w[-1] = n - p if reml else n
    return w


def inverse_weighted(L: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``K' diag(w) K`` for ``K = L^-1``, symmetric, shape (m, m).

    Only L's lower triangle is read. Small: ``K`` by ``dtrtri`` and one
    product. Large: one ``dpotri`` gives ``K'K`` in a third of the product's
    flops, and the few rows with ``w_i != 1`` (X and y) are corrected with
    rank-one terms from triangular solves.
    """
    if L.shape[0] <= SMALL:
        K = inverse_lower(L)
        return np.asarray(K.T @ (w[:, None] * K))
    Y, rows = _special_rows(L, w)
    H = inverse_from_cholesky(L)
    if len(rows):
        H += (Y * (w[rows] - 1.0)) @ Y.T
    return H


SMALL = 100  # up to this size inverse_weighted forms L^-1 and one product


def _special_rows(L: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``i`` with ``w_i != 1``, and ``K[i, :]'`` for each, shape (m, len(rows))."""
    rows = np.flatnonzero(w != 1.0)
    E = np.zeros((L.shape[0], len(rows)))
    E[rows, np.arange(len(rows))] = 1.0
    return (solve_lower(L, E, transpose=True) if len(rows) else E), rows


def inverse_weighted_at(L: np.ndarray, w: np.ndarray, pos: Positions) -> np.ndarray:
    """:func:`inverse_weighted` at the positions only, shape (nloc,).

    ``L`` is overwritten: ``dpotri`` works in its memory, and nothing of
    size (m, m) is allocated.
    """
    if L.shape[0] <= SMALL:
        return inverse_weighted(L, w)[pos.rows, pos.cols]
    Y, rows = _special_rows(L, w)
    h = inverse_from_cholesky(L, overwrite=True).reshape(-1)[pos.flat]
    if len(rows):  # one position column at a time: no (nloc, len(rows)) gathers
        terms = ((Y[:, j][pos.rows] * (w[i] - 1.0)) * Y[:, j][pos.cols] for j, i in enumerate(rows))
        extra = next(terms)
        for term in terms:  # formed one at a time
            extra += term
        h += extra
    return h


def schur_adjoint(blocks: Blocks, Ub: np.ndarray) -> np.ndarray:
    """``df/dW_k = a_k' Ub a_k`` for every level, level last, shape (q0, q0, l0).

    ``Ub`` (m, m) is the symmetric ``df/dU``; for sparse updates see
    :meth:`~mixedfx.engine.schur.Positions.adjoint` (``df/dC = -Ub``).
    """
    q0, l0 = blocks.q0, blocks.l0
    if not blocks.sparse:
        return _dense_adjoint(blocks.a21_columns, Ub, l0)
    schur = blocks.schur
    if isinstance(schur, Positions):
        return schur.adjoint(schur.symmetric_weights(-Ub.reshape(-1)[schur.flat]))
    assert isinstance(schur, DenseSchur)  # grouped levels: grouped_first_term
    return _dense_adjoint(split_columns(schur.A, q0), Ub, l0)


def _dense_adjoint(cols: list[np.ndarray], Ub: np.ndarray, l0: int) -> np.ndarray:
    """``a_k' Ub a_k`` for a dense A21 split by column within level (see split_columns).

    Symmetrised: entry (a, b) is ``(x_ab + x_ba) / 2`` with ``x_ab = a_k[:, a]' Ub
    a_k[:, b]``. Up to :data:`STACKED_MAX` levels the columns are stacked and
    every ``x_ab`` is one batched product and one ``einsum`` (a few calls, where
    their number is what costs); beyond, each off-diagonal pair is formed once
    from ``q0`` products ``Ub A_a`` (a batched product with a small ``Ub`` is
    slower than BLAS on (m, l0) arrays that leave the cache).
    """
    q0 = len(cols)
    if l0 <= STACKED_MAX:
        C = np.stack(cols)  # (q0, m, l0)
        X = np.einsum("aml,bml->abl", C, np.matmul(Ub, C))
        return np.asarray(0.5 * (X + X.transpose(1, 0, 2)))
    V = [Ub @ c for c in cols]  # (m, l0) each
    Wb = np.empty((q0, q0, l0))
    for a in range(q0):
        Wb[a, a] = np.einsum("ml,ml->l", cols[a], V[a])
        for b in range(a + 1, q0):
            pair = np.einsum("ml,ml->l", cols[a], V[b])
            pair += np.einsum("ml,ml->l", cols[b], V[a])
            pair *= 0.5
            Wb[a, b] = Wb[b, a] = pair
    return Wb


STACKED_MAX = 2048  # levels up to which _dense_adjoint stacks (measured: 1.1-2.5x at 103-2000)


def first_term(
    blocks: Blocks, T0: np.ndarray, Wb: np.ndarray, gram: Gram | None = None
) -> np.ndarray:
    """``df/dT0`` from ``log|L11|^2`` and ``W``'s gradient ``Wb`` (q0, q0, l0), shape (q0, q0).

    With ``W_k = T0 M_k^-1 T0'`` the three terms of the module docstring
    combine to::

        df/dT0 = 2 sum_k (A_k + (I - A_k W_k) Wb_k) T0 M_k^-1

    Per-level matrices are held level last, (q0, q0, l0)
    (:mod:`~mixedfx.engine.levelstack`), so that each product is a few
    whole-array operations over the levels. ``gram``:
    :func:`~mixedfx.engine.cholesky.gram_2x2` (q0 = 2) or
    :func:`~mixedfx.engine.cholesky.gram_stack` (q0 >= 3) at ``T0`` when the
    caller has it.
    """
    q0 = blocks.q0
    if q0 == 1:
        t, a, wb = T0[0, 0], blocks.a11_entries[0], Wb[0, 0]
        m = a * (t * t) + 1.0
        return np.array([[float((2.0 * t) * ((a / m).sum() + (wb / (m * m)).sum()))]])
    if q0 == 2:
        gram2 = gram_2x2(blocks, T0) if gram is None else cast(Gram2, gram)
        return _first_term_2x2(blocks, T0, Wb, gram2)
    _, Minv, W = gram_stack(blocks, T0) if gram is None else cast(GramStack, gram)
    A = blocks.a11_stack
    X = A + Wb - levelstack.product(levelstack.product(A, W), Wb)
    TM = levelstack.sandwich(T0, Minv, np.eye(q0))  # T0 M_k^-1
    return 2.0 * levelstack.trace_sum(X, TM)


def _first_term_2x2(blocks: Blocks, T0: np.ndarray, Wb: np.ndarray, gram: Gram2) -> np.ndarray:
    """:func:`first_term` for q0 = 2 in closed form, on contiguous per-entry arrays.

    With ``W_k = T0 M_k^-1 T0'`` the three terms combine to::

        df/dT0 = 2 sum_k (A_k + (I - A_k W_k) Wb_k) T0 M_k^-1

    and every product is a few operations on (l0,) arrays; the sums over
    the levels are dot products.
    """
    t0, t1, t2 = T0[0, 0], T0[1, 0], T0[1, 1]
    a, c, d = blocks.a11_entries
    _, (i00, i10, i11), (w00, w01, w11) = gram
    b00, b01, b11 = Wb[0, 0], Wb[0, 1], Wb[1, 1]
    aw00, aw01 = a * w00 + c * w01, a * w01 + c * w11  # A_k W_k
    aw10, aw11 = c * w00 + d * w01, c * w01 + d * w11
    x00 = a + b00 - (aw00 * b00 + aw01 * b01)  # X_k = A_k + (I - A_k W_k) Wb_k
    x01 = c + b01 - (aw00 * b01 + aw01 * b11)
    x10 = c + b01 - (aw10 * b00 + aw11 * b01)
    x11 = d + b11 - (aw10 * b01 + aw11 * b11)
    tm00, tm01 = t0 * i00, t0 * i10  # T0 M_k^-1
    tm10, tm11 = t1 * i00 + t2 * i10, t1 * i10 + t2 * i11
    return 2.0 * np.array(
        [
            [x00 @ tm00 + x01 @ tm10, x00 @ tm01 + x01 @ tm11],
            [x10 @ tm00 + x11 @ tm10, x10 @ tm01 + x11 @ tm11],
        ]
    )


def rest_terms(
    blocks: Blocks, Ts: list[np.ndarray], C: np.ndarray, H: np.ndarray
) -> dict[int, np.ndarray]:
    """``df/dT_t = sum over levels of (2 C Lr H)`` diagonal blocks, per rest term."""
    CL = scale_rows(C, blocks, Ts).T  # C Lr (C symmetric)
    out = {}
    for t in blocks.rest:
        rows = slice(t.offset, t.offset + t.nlevels * t.q)
        X = CL[rows].reshape(t.nlevels, t.q, -1)
        Y = H[:, rows].T.reshape(t.nlevels, t.q, -1)
        out[t.term] = 2.0 * np.einsum("lam,lbm->ab", X, Y)
    return out


def unscaled_rest(blocks: Blocks, Ts: list[np.ndarray], W: np.ndarray) -> np.ndarray:
    """``C = A22 - A21 W A21'``, symmetric, shape (m, m)."""
    if not blocks.sparse:
        return blocks.A22 - dense_update(blocks, W)
    schur = blocks.schur
    low = (
        schur.assemble(Ts[blocks.first][0, 0])
        if isinstance(schur, GroupedSchur)
        else schur.assemble(W)
    )  # zeros above the diagonal
    return low + np.tril(low, -1).T


def gradient(
    blocks: Blocks,
    Ts: list[np.ndarray],
    reml: bool,
    w: np.ndarray | None = None,
    factored: Factored | None = None,
) -> tuple[Parts, list[np.ndarray]]:
    """The objective's parts and ``df/dT_t`` for every design term (see module docstring).

    ``w`` (m,) replaces the objective's weights of ``log L22_ii^2`` (:func:`weights`);
    ``log|L11|^2`` keeps weight 1. ``factored``, when given, is called with
    the Schur factor ``L22`` (m, m; lower triangle) before the gradient
    overwrites it, to read more off the one factorization.

    Returns
    -------
    logdets : (float, float, float)
        ``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2``, as :func:`mixedfx.engine.cholesky.logdets`.
    grads : list of ndarray, each (q_t, q_t)
        Only the entries of T_t that hold theta are meaningful; the caller
        picks them out.

    Raises
    ------
    numpy.linalg.LinAlgError
        When M22 is not positive definite (the objective is infinite there).
    """
    T0 = Ts[blocks.first]
    w = weights(blocks, reml) if w is None else w
    if not blocks.sparse:  # two passes over the level chunks: U, then the chain to T0
        logdet11, U, grams = first_update(blocks, T0, keep=True)
        parts, out, Ub = _on_dense(blocks, Ts, blocks.A22 - U, w, logdet11, factored)
        pairs = zip(blocks.level_chunks, grams, strict=True)
        out[blocks.first] = sum(
            (first_term(c, T0, schur_adjoint(c, Ub), gram) for c, gram in pairs),
            np.zeros((blocks.q0, blocks.q0)),
        )
        return parts, [out[t] for t in range(len(Ts))]
    gram = first_grams(blocks, T0)
    logdet11, W = first_gram(blocks, T0, gram)
    d = rest_diagonal(blocks, Ts)
    schur = blocks.schur
    if isinstance(schur, GroupedSchur):  # q0 = 1: no 2x2 gram
        if d is not None:
            parts, out, slope = _on_grouped(blocks, schur, T0[0, 0], d, w, logdet11, factored)
        else:
            C = unscaled_rest(blocks, Ts, W)
            parts, out, Ub = _on_dense(blocks, Ts, C, w, logdet11, factored)
            slope = schur.slope(T0[0, 0], Ub)
        out[blocks.first] = grouped_first_term(blocks, T0[0, 0], slope)
        return parts, [out[t] for t in range(len(Ts))]
    if isinstance(schur, Positions) and d is not None:
        parts, out, Wb = _on_positions(blocks, schur, W, d, w, logdet11, factored)
    else:
        C = unscaled_rest(blocks, Ts, W)
        parts, out, Ub = _on_dense(blocks, Ts, C, w, logdet11, factored)
        Wb = schur_adjoint(blocks, Ub)
    out[blocks.first] = first_term(blocks, T0, Wb, gram)
    return parts, [out[t] for t in range(len(Ts))]


def grouped_first_term(blocks: Blocks, t: float, slope: float) -> np.ndarray:
    """``df/dT0`` (1 x 1) for grouped levels from ``slope = <dU/dt, Ub>``, ``Ub = df/dU``.

    :func:`first_term` for q0 = 1 with the sum over levels of ``(dW_k/dt)
    df/dW_k`` taken inside ``dU/dt = sum_k (dW_k/dt) a_k a_k'``::

        df/dt = 2 t sum_k a_k / (t^2 a_k + 1) + <dU/dt, Ub>
    """
    a = blocks.a11_entries[0]
    return np.array([[2.0 * t * float((a / (a * (t * t) + 1.0)).sum()) + slope]])


def _on_positions(
    blocks: Blocks,
    pos: Positions,
    W: np.ndarray,
    d: np.ndarray,
    w: np.ndarray,
    logdet11: float,
    factored: Factored | None = None,
) -> tuple[Parts, dict[int, np.ndarray], np.ndarray]:
    """Parts, rest terms' gradients and ``df/dW`` when C lives on sparse positions.

    With every rest term of q = 1, ``M22 = D C D + diag(I_mr, 0)``
    (``D = diag(d)``), so ``df/dC = D H D`` and ``df/dd_i = 2 sum_j H_ij
    C_ij d_j``: both need H only where C is non-zero.
    """
    rows, cols, m = pos.rows, pos.cols, blocks.m
    c = pos.values(W)
    dd = d[rows] * d[cols]
    M22 = pos.scatter(c * dd)
    M22.reshape(-1)[: blocks.mr * (m + 1) : m + 1] += 1.0
    L22 = cholesky(M22, clean=False)
    parts = logdets(blocks, L22, logdet11)
    if factored is not None:
        factored(L22)
    h = inverse_weighted_at(L22, w, pos)
    hc = h * c
    gd = np.bincount(rows, weights=hc * d[cols], minlength=m)
    gd += np.bincount(cols, weights=np.where(pos.off_diagonal, hc * d[rows], 0.0), minlength=m)
    return parts, diagonal_terms(blocks, gd), pos.adjoint(pos.symmetric_weights(dd * h))


def _on_dense(
    blocks: Blocks,
    Ts: list[np.ndarray],
    C: np.ndarray,
    w: np.ndarray,
    logdet11: float,
    factored: Factored | None = None,
) -> tuple[Parts, dict[int, np.ndarray], np.ndarray]:
    """Parts, rest terms' gradients and ``df/dU = -Lr H Lr'`` from ``C = A22 - U`` (m, m).

    The caller chains ``df/dU`` to ``df/dW`` (:func:`schur_adjoint`) or, for
    grouped levels, to ``<dU/dt, df/dU>`` (:meth:`GroupedSchur.slope`).
    """
    M22 = scale_both(C, blocks, Ts) if blocks.rest else C.copy()
    M22.reshape(-1)[: blocks.mr * (blocks.m + 1) : blocks.m + 1] += 1.0
    L22 = cholesky(M22, clean=False)
    parts = logdets(blocks, L22, logdet11)
    if factored is not None:
        factored(L22)
    H = inverse_weighted(L22, w)
    out = rest_terms(blocks, Ts, C, H)
    return parts, out, -scale_both(H, blocks, [T.T for T in Ts])  # -Lr H Lr'


def _on_grouped(
    blocks: Blocks,
    schur: GroupedSchur,
    t: float,
    d: np.ndarray,
    w: np.ndarray,
    logdet11: float,
    factored: Factored | None = None,
) -> tuple[Parts, dict[int, np.ndarray], float]:
    """Parts, the rest terms' gradients and ``<dU/dt, df/dU>`` for grouped levels (rest q = 1).

    One pass over the packed ``C_j`` gives ``U(t)`` and ``U' = dU/dt``
    together (:meth:`GroupedSchur.update`); then::

        M22 = D C D + diag(I_mr, 0),   C = A22 - U,   L22 L22' = M22
        H   = K' diag(w) K             (dpotri in L22's memory, rank-one terms for w_i != 1)
        df/dd_i = 2 (H o C) d          (o: elementwise)
        <U', df/dU> = -d' (H o U') d   (df/dU = -D H D)

    One (m, m) array, Fortran-ordered, holds M22, L22 and H in turn; C, U'
    and H meet as packed lower triangles, whose symmetric mat-vecs
    (``dspmv``) read each entry once.
    """
    m, mr = blocks.m, blocks.mr
    U, dU = schur.update(t)
    C = np.subtract(schur.base, U, out=U)
    M22 = unpack_lower(C, m)
    M22 *= d
    M22 *= d[:, None]
    M22[np.arange(mr), np.arange(mr)] += 1.0
    L22 = cholesky(M22, clean=False)
    parts = logdets(blocks, L22, logdet11)
    if factored is not None:
        factored(L22)
    Y, rows = _special_rows(L22, w)
    H = inverse_from_cholesky(L22, overwrite=True)  # lower triangle
    for j, i in enumerate(rows):
        H = blas.dsyr(w[i] - 1.0, Y[:, j], lower=1, a=H, overwrite_a=1)
    h = pack_lower(H)
    gd = blas.dspmv(m, 1.0, np.multiply(C, h, out=C), d, lower=1)
    slope = -float(d @ blas.dspmv(m, 1.0, np.multiply(dU, h, out=dU), d, lower=1))
    return parts, diagonal_terms(blocks, gd), slope


def diagonal_terms(blocks: Blocks, gd: np.ndarray) -> dict[int, np.ndarray]:
    """Each rest term's ``df/dT_t`` (1 x 1, q = 1) from ``df/dd`` (m,): 2 sum over its levels."""
    return {
        t.term: np.array([[2.0 * gd[t.offset : t.offset + t.nlevels].sum()]]) for t in blocks.rest
    }
