"""The cross-product blocks of A = [Z X y]'[Z X y], formed once in one pass.

The random-effects terms are split into the *first* term (the one with most
random effects, ``l0`` levels of ``q0`` columns each) and the *rest*. With
``Zr`` the rest's columns (``mr`` of them) and ``m = mr + p + 1``::

    A11 = Z0'Z0                     block diagonal: (l0, q0, q0)
    A21 = [Zr X y]'Z0               (m, l0*q0), dense or sparse CSR
    A22 = [Zr X y]'[Zr X y]         (m, m), dense

Z0'Z0 is block diagonal because each row belongs to exactly one level of the
first factor. Every objective evaluation works from these blocks alone.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import pairsums
from .coefficients import Coefficients
from .grouped import GroupedSchur
from .levelsums import DOTS_MAX, LevelSums, column_products, tall_product
from .schur import DenseSchur, SchurPattern, pattern_entries, split_columns

DENSE_LIMIT = 2_000_000  # entries of A21 above which it is kept sparse
# ... and a sparse one below: where the dense Schur update's m^2 l0 q0 multiplications exceed
# GRAM_LIMIT and at most SPARSE_DENSITY of the rest's rows of A21 are nonzero (dense_layout)
GRAM_LIMIT = 4_000_000
SPARSE_DENSITY = 0.05
PATTERN_LIMIT = 50_000_000  # entries of the Schur pattern above which the update goes dense
DENSE_SCHUR_LIMIT = 250_000_000  # ... provided a dense A21 has at most this many entries


def _grouped_limit() -> int:
    """Entries of the grouped update's packed B_c at most: a quarter of physical memory."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): 3.2 GB
        return 400_000_000
    return max(400_000_000, memory // 4 // 8)


GROUPED_LIMIT = _grouped_limit()
GROUPED_OVER_PATTERN = 8  # grouping is chosen up to this many times the pattern's entries
CHUNK_BYTES = 384 * 1024  # a chunk's largest per-level array (its m rows of A21) at most ...
SPARSE_A22_MIN = 1_000_000  # entries of A22 from which one mostly of zeros is pickled sparse
MIN_CHUNK = 4096  # ... but at least this many levels (each chunk costs ~100 numpy calls)


@dataclass(frozen=True)
class RestTerm:
    """Position of one of the rest's terms among the rows of A21 and A22."""

    term: int  # index in the design's term list
    offset: int  # first row of the term in [Zr X y]
    nlevels: int
    q: int


@dataclass(frozen=True)
class Blocks:
    """Cross-products of the training rows (see module docstring)."""

    first: int  # index of the first term in the design's term list
    l0: int
    q0: int
    rest: tuple[RestTerm, ...]
    p: int
    n: int
    A11: np.ndarray  # (l0, q0, q0)
    A21: np.ndarray | sp.csr_matrix  # (m, l0*q0)
    A22: np.ndarray  # (m, m)

    @property
    def mr(self) -> int:
        """Number of random effects outside the first term."""
        return sum(t.nlevels * t.q for t in self.rest)

    @property
    def m(self) -> int:
        return self.mr + self.p + 1

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.A21)

    @functools.cached_property
    def a11_entries(self) -> list[np.ndarray]:
        """The lower-triangle entries of every level's A11 block, each contiguous (l0,).

        q0 = 1: ``[a]``; q0 = 2: ``[a, c, d]`` for blocks ``[[a, c], [c, d]]``.
        """
        if self.q0 == 1:
            return [np.ascontiguousarray(self.A11[:, 0, 0])]
        rows, cols = np.tril_indices(self.q0)
        return [np.ascontiguousarray(self.A11[:, r, c]) for r, c in zip(rows, cols, strict=True)]

    @functools.cached_property
    def a11_stack(self) -> np.ndarray:
        """Every level's A11 block, level last, contiguous (q0, q0, l0)."""
        return np.ascontiguousarray(np.moveaxis(self.A11, 0, -1))

    @functools.cached_property
    def a21_columns(self) -> list[np.ndarray]:
        """Dense A21 split by column within level: q0 arrays of shape (m, l0)."""
        return split_columns(np.asarray(self.A21), self.q0)

    def __getstate__(self) -> dict[str, object]:
        """Pickled without :attr:`level_chunks` (views, which pickle would copy), and a large
        A22 that is mostly zeros as a sparse matrix.

        A22 of the rest's intercepts is diagonal but for their crossings: pass 2
        of a Dask fit of 2,000 items shipped 32 MB of it per partition, about 10 KB
        of which were not zeros.
        """
        state = dict(self.__dict__)
        state.pop("level_chunks", None)
        state.pop("a11_stack", None)  # A11 again, rebuilt on first use
        state.pop("_gram_stack", None)  # cholesky.gram_stack's last result
        A22 = self.A22
        if A22.size >= SPARSE_A22_MIN and 3 * np.count_nonzero(A22) < A22.size:
            state["A22"] = sp.csr_matrix(A22)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        A22 = state["A22"]
        if isinstance(A22, sp.spmatrix | sp.sparray):
            state = {**state, "A22": A22.toarray()}
        self.__dict__.update(state)

    @functools.cached_property
    def level_chunks(self) -> tuple[Blocks, ...]:
        """The first term's levels in runs, each as the blocks of its levels (dense A21).

        The objective's per-level sums (``log|L11|^2``, the update ``A21 W A21'``
        and the gradient's chain back to ``T0``) run chunk by chunk, so that the
        ~100 array operations of an evaluation work on arrays that stay in the
        cache (16,384 levels for m = 3) rather than streaming arrays over every
        level from memory: 10-15 % off an evaluation with 125,000 levels. A
        chunk's ``A11`` and ``A21`` (and their per-entry caches) are views of
        these; its ``A22`` is the whole's. Few levels: one chunk, the blocks.
        """
        size = max(MIN_CHUNK, CHUNK_BYTES // (8 * max(self.m, self.q0)))
        if self.sparse or self.l0 <= size:
            return (self,)
        chunks = []
        entries, columns, q0 = self.a11_entries, self.a21_columns, self.q0
        stack = self.a11_stack if q0 > 2 else None
        for s in range(0, self.l0, size):
            e = min(s + size, self.l0)
            A21 = np.asarray(self.A21)[:, s * q0 : e * q0]
            chunk = Blocks(
                self.first, e - s, q0, self.rest, self.p, self.n, self.A11[s:e], A21, self.A22
            )
            chunk.__dict__["a11_entries"] = [x[s:e] for x in entries]  # views: no copies
            if stack is not None:
                chunk.__dict__["a11_stack"] = stack[:, :, s:e]
            chunk.__dict__["a21_columns"] = [c[:, s:e] for c in columns]
            chunks.append(chunk)
        return tuple(chunks)

    @functools.cached_property
    def schur(self) -> SchurPattern | GroupedSchur | DenseSchur:
        """``A22 - A21 W A21'`` (sparse blocks only), prepared on first use.

        The cheapest of: a precomputed pattern (its entries grow with the
        square of the rows per level; building it costs ~360 ns and each
        evaluation ~2.5 ns per entry), levels grouped by their A11 (q0 = 1;
        ``r m^2 / 2`` entries for ``r`` basis functions of the distinct
        values, :mod:`~mixedfx.engine.coefficients`, ~1 ns each per
        evaluation; built in about one BLAS product ``m^2 l0 / 2`` or the
        pattern's pairs), and, when neither fits in memory, a dense A21 and
        one BLAS product per evaluation (``m^2 l0``). Measured on 1M users x
        items rows (20,000 x 2,000): pattern 27M entries, built in 8.9 s, 63
        ms per evaluation; grouped 24 x 2M entries (57 distinct counts),
        built in 2-4 s, 50-90 ms. Over a fit's evaluations grouping wins up to
        ~8 times the pattern's entries.
        """
        A21 = sp.csr_matrix(self.A21)
        pattern = pattern_entries(A21, self.l0, self.q0)
        grouped, coefficients = PATTERN_LIMIT**2, None
        if self.q0 == 1:
            coefficients = Coefficients.fit(np.unique(self.A11[:, 0, 0]))
            grouped = coefficients.size * self.m * (self.m + 1) // 2
        if grouped <= GROUPED_OVER_PATTERN * pattern and grouped <= GROUPED_LIMIT:
            return GroupedSchur(A21, self.A22, self.A11[:, 0, 0], coefficients)
        if pattern > PATTERN_LIMIT and self.m * self.l0 * self.q0 <= DENSE_SCHUR_LIMIT:
            return DenseSchur(A21.toarray(), self.A22, self.q0)
        return SchurPattern.build(A21, self.A22, self.l0, self.q0)


def term_matrix(codes: np.ndarray, M: np.ndarray, nlevels: int) -> sp.csr_matrix:
    """A term's block of Z as a sparse matrix, shape (n, nlevels * q).

    Row ``i`` holds ``M[i]`` in columns ``codes[i]*q ... codes[i]*q + q - 1``.
    """
    n, q = M.shape
    indptr = np.arange(0, n * q + 1, q)
    indices = (codes[:, None] * q + np.arange(q)[None, :]).ravel()
    return sp.csr_matrix((M.ravel(), indices, indptr), shape=(n, nlevels * q))


def engine_order(sizes: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """Choose the first term (most random effects) and keep the rest in order.

    Parameters
    ----------
    sizes : list of (nlevels, q)

    Returns
    -------
    first : int
    rest : list of int
    """
    first = max(range(len(sizes)), key=lambda t: (sizes[t][0] * sizes[t][1], -t))
    return first, [t for t in range(len(sizes)) if t != first]


def dense_rows(nlevels: list[int], qs: list[int], p: int, first: int) -> int:
    """``m``, the rows of the dense part ``[Zr X y]`` of the blocks :func:`form` would build.

    Every term but ``first`` (random effects ``nlevels[t] * qs[t]`` each) and
    the ``p + 1`` columns of X and y.
    """
    sizes = [nl * q for nl, q in zip(nlevels, qs, strict=True)]
    return sum(size for t, size in enumerate(sizes) if t != first) + p + 1


def form(
    X: np.ndarray,
    y: np.ndarray,
    codes: tuple[np.ndarray, ...],
    Ms: tuple[np.ndarray, ...],
    nlevels: list[int],
    first: int | None = None,
    weights: np.ndarray | None = None,
) -> Blocks:
    """Form the blocks from the training arrays.

    Parameters
    ----------
    X : ndarray, shape (n, p)
    y : ndarray, shape (n,)
    codes : per term, ndarray of int, shape (n,)
    Ms : per term, ndarray, shape (n, q_t)
    nlevels : per term, number of levels
    first : int, optional
        Force the first term (to match the layout of other blocks).
    weights : ndarray, shape (n,), optional
        Row weights ``w``: the blocks of ``W^(1/2) [Z X y]``, i.e. ``[Z X y]' W [Z X y]``.
    """
    n, p = X.shape
    chosen, rest_idx = engine_order([(nlevels[t], Ms[t].shape[1]) for t in range(len(Ms))])
    if first is not None and first != chosen:
        rest_idx = [t for t in range(len(Ms)) if t != first]
    first = chosen if first is None else first
    c0, M0, l0 = codes[first], Ms[first], nlevels[first]
    q0 = M0.shape[1]
    xy_columns = [*(X[:, j] for j in range(p)), y]
    sums = LevelSums(c0, l0, [*xy_columns, *(M0[:, k] for k in range(q0))], weights)
    A11 = np.empty((l0, q0, q0))
    for i in range(q0):
        for j in range(i, q0):
            A11[:, i, j] = sums(p + 1 + i, p + 1 + j)
            A11[:, j, i] = A11[:, i, j]
    rest, offset = [], 0
    for t in rest_idx:
        rest.append(RestTerm(t, offset, nlevels[t], Ms[t].shape[1]))
        offset += nlevels[t] * Ms[t].shape[1]
    m = offset + p + 1
    # [X y]'Z0 by bincount: (p+1, l0*q0)
    xy_z0 = np.empty((p + 1, l0, q0))
    for k in range(q0):
        for j in range(p + 1):
            xy_z0[j, :, k] = sums(j, p + 1 + k)
    xy_z0 = xy_z0.reshape(p + 1, l0 * q0)
    if not rest and p + 1 <= DOTS_MAX:  # no copy of [X y]
        A21: np.ndarray | sp.csr_matrix = xy_z0
        A22 = column_products(xy_columns, weights)
        return Blocks(first, l0, q0, (), p, n, A11, A21, A22)
    Xy = np.column_stack([X, y])
    wXy = Xy if weights is None else Xy * weights[:, None]
    if not rest:
        A21 = xy_z0
        A22 = tall_product(wXy, Xy)
    else:
        # the rest's cross-products from the codes (pairsums), no sparse products
        Mr = [Ms[r.term] for r in rest]
        cr = [codes[r.term] for r in rest]
        zr_z0 = sp.vstack(
            [
                pairsums.cross(c, M, r.nlevels, c0, M0, l0, weights)
                for r, c, M in zip(rest, cr, Mr, strict=True)
            ],
            format="csr",
        )
        density = zr_z0.nnz / max(1, zr_z0.shape[0] * zr_z0.shape[1])
        if dense_layout(rest, m, l0, q0, density):
            A21 = np.vstack([zr_z0.toarray(), xy_z0])
        else:
            A21 = sp.vstack([zr_z0, sp.csr_matrix(xy_z0)]).tocsr()
            A21.sort_indices()
        A22 = np.zeros((m, m))
        mr = offset
        for i, (r, c, M) in enumerate(zip(rest, cr, Mr, strict=True)):
            at = slice(r.offset, r.offset + r.nlevels * r.q)
            diag = pairsums.own(c, M, r.nlevels, weights)  # (nlevels, q, q), block diagonal
            lv = r.offset + np.arange(r.nlevels)[:, None, None] * r.q
            A22[lv + np.arange(r.q)[:, None], lv + np.arange(r.q)[None, :]] = diag
            for o, co, Mo in zip(rest[i + 1 :], cr[i + 1 :], Mr[i + 1 :], strict=True):
                other = slice(o.offset, o.offset + o.nlevels * o.q)
                cross = pairsums.cross(c, M, r.nlevels, co, Mo, o.nlevels, weights)
                A22[at, other] = cross.toarray()
                A22[other, at] = A22[at, other].T
            A22[at, mr:] = pairsums.dense(c, M, r.nlevels, Xy, weights)
            A22[mr:, at] = A22[at, mr:].T
        sw = None if weights is None else np.sqrt(weights)[:, None]
        Xy = Xy if sw is None else Xy * sw
        A22[mr:, mr:] = Xy.T @ Xy
    return Blocks(first, l0, q0, tuple(rest), p, n, A11, A21, A22)


def _row_map(old: Blocks, new_rest: tuple[RestTerm, ...], p: int) -> np.ndarray:
    """New row index of each row of ``[Zr X y]`` of ``old`` in a layout with more levels."""
    parts = [
        nt.offset + np.arange(ot.nlevels * ot.q) for ot, nt in zip(old.rest, new_rest, strict=True)
    ]
    mr_new = sum(t.nlevels * t.q for t in new_rest)
    parts.append(mr_new + np.arange(p + 1))
    return np.concatenate(parts).astype(np.int64)


def extend(old: Blocks, nlevels: list[int]) -> Blocks:
    """The same cross-products in a layout where terms have more levels (zeros for new ones).

    Parameters
    ----------
    old : Blocks
    nlevels : per design term, the new numbers of levels (>= the old ones)
    """
    rest, offset = [], 0
    for t in old.rest:
        rest.append(RestTerm(t.term, offset, nlevels[t.term], t.q))
        offset += nlevels[t.term] * t.q
    rest_t = tuple(rest)
    l0 = nlevels[old.first]
    m = offset + old.p + 1
    rows = _row_map(old, rest_t, old.p)
    A11 = np.zeros((l0, old.q0, old.q0))
    A11[: old.l0] = old.A11
    if sp.issparse(old.A21):
        coo = sp.coo_matrix(old.A21)
        A21: np.ndarray | sp.csr_matrix = sp.csr_matrix(
            (coo.data, (rows[coo.row], coo.col)), shape=(m, l0 * old.q0)
        )
    else:
        A21 = np.zeros((m, l0 * old.q0))
        A21[rows, : old.l0 * old.q0] = old.A21
    A22 = np.zeros((m, m))
    A22[np.ix_(rows, rows)] = old.A22
    return Blocks(old.first, l0, old.q0, rest_t, old.p, old.n, A11, A21, A22)


def add(a: Blocks, b: Blocks) -> Blocks:
    """Cross-products of the union of two sets of rows in one layout."""
    if sp.issparse(a.A21) or sp.issparse(b.A21):
        A21: np.ndarray | sp.csr_matrix = (sp.csr_matrix(a.A21) + sp.csr_matrix(b.A21)).tocsr()
    else:
        A21 = a.A21 + b.A21
    return Blocks(a.first, a.l0, a.q0, a.rest, a.p, a.n + b.n, a.A11 + b.A11, A21, a.A22 + b.A22)


def fix_beta(bl: Blocks, beta: np.ndarray) -> Blocks:
    """Blocks of ``[Z, y - X beta]``: no fixed effects, the response offset by X beta."""
    mr, p = bl.mr, bl.p
    w = np.zeros(bl.m)  # [Zr X y] -> y - X beta as a combination of rows
    w[mr : mr + p] = -beta
    w[mr + p] = 1.0
    Tm = np.zeros((mr + 1, bl.m))
    Tm[np.arange(mr), np.arange(mr)] = 1.0
    Tm[mr] = w
    A21 = Tm @ bl.A21 if not sp.issparse(bl.A21) else (sp.csr_matrix(Tm) @ bl.A21).tocsr()
    A22 = Tm @ bl.A22 @ Tm.T
    return Blocks(bl.first, bl.l0, bl.q0, bl.rest, 0, bl.n, bl.A11, A21, A22)


def dense_layout(
    rest: tuple[RestTerm, ...] | list[RestTerm], m: int, l0: int, q0: int, density: float
) -> bool:
    """Whether :func:`form` keeps A21 (m, l0 q0) dense.

    Up to :data:`DENSE_LIMIT` entries, unless the dense Schur update's
    ``m^2 l0 q0`` multiplications exceed :data:`GRAM_LIMIT` and at most
    :data:`SPARSE_DENSITY` of the other terms' rows are nonzero (``density``,
    nonzeros over entries): measured whole fits, sparse over dense, nested
    ``(1 | g/h)`` with 798 levels (0.5 % nonzero) 3.2x faster, 2000 users x
    300 items (4 %) 3.4x; but ``(x | u) + (1 | i)`` with 50 rows a user (a
    third nonzero) 0.18x, and 300 users x 40 items (1.1 M multiplications)
    0.58x.
    """
    if not rest:
        return True
    if m * l0 * q0 > DENSE_LIMIT:
        return False
    return not (m * m * l0 * q0 > GRAM_LIMIT and density <= SPARSE_DENSITY)


def select_fixed(bl: Blocks, kept: np.ndarray) -> Blocks:
    """The blocks with only the columns ``kept`` of X, in :func:`form`'s layout.

    Parameters
    ----------
    bl : Blocks
        Blocks formed with every column of X.
    kept : ndarray of int, shape (p_kept,)
        Indices of the columns of X to keep, increasing.
    """
    rows = np.concatenate([np.arange(bl.mr), bl.mr + kept, [bl.mr + bl.p]]).astype(np.int64)
    A22 = bl.A22[np.ix_(rows, rows)]
    A21: np.ndarray | sp.csr_matrix
    if sp.issparse(bl.A21):  # form's layout, kept
        A21 = sp.csr_matrix(bl.A21)[rows].tocsr()
        A21.sort_indices()
    else:
        A21 = bl.A21[rows]
    return Blocks(bl.first, bl.l0, bl.q0, bl.rest, len(kept), bl.n, bl.A11, A21, A22)


def _rest_rows(
    A: np.ndarray, bl: Blocks, maps: list[np.ndarray | None], xy: np.ndarray
) -> np.ndarray:
    """``A <- P_r' A`` in place, for A (m rows; may be a view): rows by ``K_t'``, [X y]'s by ``K'``.

    Only the rows that change are touched: the rest's intercept-only terms
    (``K_t`` None) cost nothing, so moving a large A22 costs O(m p).
    """
    for t in bl.rest:
        K = maps[t.term]
        if K is not None:
            rows = slice(t.offset, t.offset + t.nlevels * t.q)
            part = A[rows].reshape(t.nlevels, t.q, -1)
            A[rows] = np.einsum("ij,lic->ljc", K, part).reshape(t.nlevels * t.q, -1)
    A[bl.mr :] = xy.T @ A[bl.mr :]
    return A


def _xy_rows(A21: sp.csr_matrix, mr: int, xy: np.ndarray) -> sp.csr_matrix:
    """A sparse A21 with its last rows (``[X y]``'s) moved by ``K'``, the rest's rows kept.

    The rest's rows (most of the entries: counts of crossed levels) are
    copied, not multiplied by an identity and re-sorted; the last ``p + 1``
    rows are a small dense product. Exact zeros are dropped, as a sparse
    product drops them.
    """
    A21.sort_indices()
    start = A21.indptr[mr]
    bottom = sp.csr_matrix(xy.T @ A21[mr:].toarray())
    bottom.sort_indices()
    return sp.csr_matrix(
        (
            np.concatenate([A21.data[:start], bottom.data]),
            np.concatenate([A21.indices[:start], bottom.indices]),
            np.concatenate([A21.indptr[: mr + 1], start + bottom.indptr[1:]]),
        ),
        shape=A21.shape,
    )


def transform(bl: Blocks, maps: list[np.ndarray | None], xy: np.ndarray) -> Blocks:
    """The blocks of ``[Z X y] P`` for ``P = blockdiag(I_l (x) K_t per term, K)``.

    Moves cross-products between coordinates (see
    :mod:`mixedfx.engine.standard`): ``A -> P' A P``.

    Parameters
    ----------
    bl : Blocks
    maps : per design term, ndarray (q_t, q_t) ``K_t``, or None for the identity
    xy : ndarray, shape (p + 1, p + 1)
        ``K`` on the columns of ``[X y]``.
    """
    K0 = maps[bl.first]
    A11 = bl.A11 if K0 is None else np.einsum("ia,lij,jb->lab", K0, bl.A11, K0)
    A22 = bl.A22.copy()
    _rest_rows(_rest_rows(A22, bl, maps, xy).T, bl, maps, xy)  # P' A22, then its columns
    A21: np.ndarray | sp.csr_matrix
    if sp.issparse(bl.A21) and K0 is None and all(maps[t.term] is None for t in bl.rest):
        A21 = _xy_rows(sp.csr_matrix(bl.A21), bl.mr, xy)
    elif sp.issparse(bl.A21):
        parts = [
            sp.kron(sp.identity(t.nlevels), sp.csr_matrix(maps[t.term]).T)
            if maps[t.term] is not None
            else sp.identity(t.nlevels * t.q)
            for t in bl.rest
        ]
        Pr = sp.block_diag([*parts, sp.csr_matrix(xy.T)], format="csr")
        A21 = Pr @ sp.csr_matrix(bl.A21)
        if K0 is not None:
            A21 = A21 @ sp.kron(sp.identity(bl.l0), sp.csr_matrix(K0), format="csr")
        A21 = sp.csr_matrix(A21)
        A21.sort_indices()
    else:
        A21 = _rest_rows(np.array(bl.A21), bl, maps, xy)
        if K0 is not None:
            A3 = A21.reshape(bl.m, bl.l0, bl.q0)
            A21 = np.einsum("mli,ij->mlj", A3, K0).reshape(bl.m, bl.l0 * bl.q0)
    return Blocks(bl.first, bl.l0, bl.q0, bl.rest, bl.p, bl.n, A11, A21, A22)
