"""What a model file declares, checked before anything is built from it.

A model file is untrusted input: its checksums catch accidents, not
attacks. Loading therefore reads it in two steps:

1. :func:`declared` reads the manifest's model section with arithmetic only
   (no array is allocated, no layout built): every count, index and flag
   must have the right JSON type and range, and the block layout must be the
   one its terms imply. From it follow the exact dtype and shape of every
   array member (:class:`Declared`), hence every member's size.
2. :func:`check_values` checks the arrays read under those shapes: values
   finite, indices in range, labels unique, the kept fixed-effects columns
   named as the design says, and every stored covariance or cross-product
   block symmetric and positive semi-definite (per-level blocks directly; the
   whole system by factoring it at theta, as intervals will).

Anything else is a :class:`~mixedfx.errors.ModelFileError` that names the field.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .engine.cholesky import factorize
from .errors import FormulaError, ModelFileError
from .frame import reterm
from .frame.formula import ParsedFormula, RandomTerm, parse

if TYPE_CHECKING:
    from .base import MixedModel

MAX_TERMS = 1_000  # random-effects terms
MAX_TERM_COLUMNS = 2_000  # q of one term
MAX_THETA = 20_000  # covariance parameters: far beyond what any optimizer fits
MAX_NAGQ = 25  # quadrature nodes of a GLMM, as mixedfx.glmm allows
F8 = (np.dtype("<f8"),)
I8 = (np.dtype("<i8"),)
INDEX = (np.dtype("<i4"), np.dtype("<i8"))  # scipy's sparse index types
SYMMETRY_RTOL = 1e-8  # rounding leaves ~q * eps * scale; tampering much more


def bad(field: str, problem: str) -> ModelFileError:
    return ModelFileError(f"model file is invalid: {field} {problem}")


def integer(value: Any, field: str, lo: int = 0, hi: int | None = None) -> int:
    """A JSON integer in [lo, hi] (bools and floats refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(field, f"must be an integer, got {value!r:.40}")
    if value < lo or (hi is not None and value > hi):
        raise bad(field, f"= {value} is out of range [{lo}, {'inf' if hi is None else hi}]")
    return value


def flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise bad(field, f"must be true or false, got {value!r:.40}")
    return value


def number(value: Any, field: str, positive: bool = False) -> float:
    """A finite JSON number (positive when asked)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(field, f"must be a number, got {value!r:.40}")
    try:
        out = float(value)
    except OverflowError:  # an integer beyond float's range
        out = math.inf
    if not math.isfinite(out) or (positive and out <= 0):
        raise bad(field, f"= {out} must be finite{' and positive' if positive else ''}")
    return out


def text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise bad(field, f"must be a string, got {value!r:.40}")
    return value


def texts(value: Any, field: str, n: int | None = None, unique: bool = False) -> list[str]:
    """A JSON list of strings (of length n; without repeats when ``unique``)."""
    if not isinstance(value, list):
        raise bad(field, f"must be a list, got {type(value).__name__}")
    if n is not None and len(value) != n:
        raise bad(field, f"has {len(value)} entries, expected {n}")
    out = [text(v, f"{field}[{i}]") for i, v in enumerate(value)]
    if unique and len(set(out)) < len(out):
        repeated = next(k for k, c in Counter(out).items() if c > 1)
        raise bad(field, f"repeats {repeated!r:.60}")
    return out


def mapping(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(field, f"must be an object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class TermSize:
    q: int
    nlevels: int
    nfactors: int
    ntheta: int


@dataclass(frozen=True)
class Declared:
    """The sizes a manifest declares and the arrays they imply.

    Attributes
    ----------
    terms : tuple of TermSize
    p : int
        Fixed effects kept.
    first : int
        The engine's first term; ``rest`` the others in their block order.
    rest : tuple of (term, offset)
        Each rest term and its first row in ``[Zr X y]``.
    m : int
        Rows of A21 and A22: ``sum of the rest's l q + p + 1``.
    arrays : dict
        Member name (without ``arrays/`` and ``.npy``) -> (allowed dtypes, shape).
    nagq : int
        A GLMM's quadrature nodes (0 for a linear mixed model).
    """

    terms: tuple[TermSize, ...]
    p: int
    first: int
    rest: tuple[tuple[int, int], ...]
    m: int
    arrays: dict[str, tuple[tuple[np.dtype, ...], tuple[int, ...]]]
    nagq: int = 0

    @property
    def nlevels(self) -> int:
        return sum(t.nlevels for t in self.terms)

    @property
    def array_bytes(self) -> int:
        """Bytes of every array's data (sparse data counted at 8 + 8 bytes per entry)."""
        return sum(max(d.itemsize for d in dt) * math.prod(s) for dt, s in self.arrays.values())


def _term_size(t: Any, k: int) -> TermSize:
    field = f"model.terms[{k}]"
    t = mapping(t, field)
    q = len(texts(t.get("columns"), f"{field}.columns", unique=True))
    if not 1 <= q <= MAX_TERM_COLUMNS:
        raise bad(f"{field}.columns", f"has {q} columns (1 to {MAX_TERM_COLUMNS} allowed)")
    nfactors = len(texts(t.get("factors"), f"{field}.factors"))
    if nfactors < 1:
        raise bad(f"{field}.factors", "is empty")
    flag(t.get("correlated"), f"{field}.correlated")
    text(t.get("expr"), f"{field}.expr")
    nlevels = integer(t.get("nlevels"), f"{field}.nlevels", lo=1)
    blocks = t.get("theta_blocks")
    if not isinstance(blocks, list) or not blocks:
        raise bad(f"{field}.theta_blocks", "must list the sizes of the blocks of T")
    sizes = [integer(b, f"{field}.theta_blocks", lo=1, hi=q) for b in blocks]
    if sum(sizes) != q:
        raise bad(f"{field}.theta_blocks", f"must add up to the term's {q} columns")
    return TermSize(q, nlevels, nfactors, sum(b * (b + 1) // 2 for b in sizes))


def declared(d: dict[str, Any], kind: str = "lmm") -> Declared:
    """Check the manifest's model section with arithmetic only; the arrays it implies.

    ``kind`` is the manifest's: ``"lmm"``, or ``"glmm"`` whose optimizer ran
    over theta and beta together (``opt_*`` arrays of ``k + p`` values; ``k``
    for nAGQ = 0) and whose nAGQ > 1 needs one scalar random term.

    Raises
    ------
    ModelFileError
        Naming the first field with a wrong type, a value out of range, or a
        block layout that its terms contradict.
    """
    raw = d.get("terms")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TERMS:
        raise bad("model.terms", f"must be a list of 1 to {MAX_TERMS} terms")
    terms = tuple(_term_size(t, k) for k, t in enumerate(raw))
    ntheta = sum(t.ntheta for t in terms)
    if ntheta > MAX_THETA:
        raise bad("model.terms", f"declare {ntheta} covariance parameters (at most {MAX_THETA})")
    names = texts(d.get("fixed_names"), "model.fixed_names", unique=True)
    p = len(names)
    texts(d.get("dropped"), "model.dropped", unique=True)
    bd = mapping(d.get("blocks"), "model.blocks")
    first = integer(bd.get("first"), "model.blocks.first", hi=len(terms) - 1)
    order = bd.get("rest")
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(
        str(t) for t in range(len(terms)) if t != first
    ):
        raise bad("model.blocks.rest", "must list every term but the first, once each")
    rest, offset = [], 0
    for k in order:
        rest.append((integer(k, "model.blocks.rest"), offset))
        offset += terms[k].nlevels * terms[k].q
    m = offset + p + 1
    n = integer(bd.get("n"), "model.blocks.n", lo=p + 1)
    integer(d.get("nobs_given"), "model.nobs_given", hi=n - 1)
    nagq, nopt = 0, ntheta
    if kind == "glmm":
        nagq = integer(d.get("nagq"), "model.nagq", hi=MAX_NAGQ)
        if nagq > 1 and (len(terms) != 1 or terms[0].q != 1):
            raise bad("model.nagq", f"= {nagq} needs a single scalar random-effects term")
        nopt = ntheta + p if nagq >= 1 else ntheta
    t0 = terms[first]
    arrays: dict[str, tuple[tuple[np.dtype, ...], tuple[int, ...]]] = {
        "theta": (F8, (ntheta,)),
        "beta": (F8, (p,)),
        "vcov_beta": (F8, (p, p)),
        "kept": (I8, (p,)),
        "A11": (F8, (t0.nlevels, t0.q, t0.q)),
        "A22": (F8, (m, m)),
        "opt_start": (F8, (nopt,)),
        "opt_final": (F8, (nopt,)),
        "opt_lower": (F8, (nopt,)),
    }
    width = t0.nlevels * t0.q
    if flag(bd.get("sparse"), "model.blocks.sparse"):
        nnz = integer(bd.get("A21_nnz"), "model.blocks.A21_nnz", hi=m * width)
        arrays |= {
            "A21_data": (F8, (nnz,)),
            "A21_indices": (INDEX, (nnz,)),
            "A21_indptr": (INDEX, (m + 1,)),
        }
    else:
        arrays["A21"] = (F8, (m, width))
    for k, t in enumerate(terms):
        arrays[f"b{k}"] = (F8, (t.nlevels, t.q))
        arrays[f"condcov{k}"] = (F8, (t.nlevels, t.q, t.q))
    if kind == "lmm":  # a GLMM's standardized sigma is 1
        number(d.get("std_sigma"), "model.std_sigma", positive=True)
    arrays |= {"std_theta": (F8, (ntheta,)), "std_beta": (F8, (p,))}
    arrays["std_moments_xy"] = (F8, (2, p + 1))
    for k, t in enumerate(terms):
        arrays[f"std_b{k}"] = (F8, (t.nlevels, t.q))
        arrays[f"std_moments{k}"] = (F8, (2, t.q))
    return Declared(terms, p, first, tuple(rest), m, arrays, nagq)


def formula(text: str) -> ParsedFormula:
    """The stored formula, parsed as a new one is (text only: parsing runs no code)."""
    try:
        return parse(text)
    except FormulaError as exc:
        raise bad("model.formula", f"fails the formula whitelist: {exc}") from exc


def check_terms(text: str, terms: list[RandomTerm]) -> None:
    """The terms must be the formula's random terms (in any order)."""
    want = Counter(formula(text).random)
    if Counter(terms) != want:
        raise bad("model.terms", f"do not match the random terms of the formula {text!r}")


def finite(values: np.ndarray, field: str) -> None:
    if not np.isfinite(values).all():
        raise bad(field, "holds NaN or infinite values")


def unique_keys(keys: np.ndarray, field: str) -> None:
    """No repeated level (``"7"`` and ``7`` are two levels; tuples compare as tuples)."""
    if not pd.Index(keys, dtype=object).is_unique:
        raise bad(field, "repeats a level key")


def symmetric_psd(stack: np.ndarray, field: str) -> None:
    """Every matrix of ``stack`` (k, q, q) symmetric and positive semi-definite.

    Both to ``SYMMETRY_RTOL`` times the matrix's largest entry: rounding in
    a product such as ``T M T'`` leaves about ``q * eps`` of it.
    """
    if stack.size == 0:
        return
    scale = np.abs(stack).max(axis=(1, 2))
    tol = SYMMETRY_RTOL * scale
    if (np.abs(stack - np.swapaxes(stack, 1, 2)).max(axis=(1, 2)) > tol).any():
        raise bad(field, "is not symmetric")
    if (np.linalg.eigvalsh(stack)[:, 0] < -tol).any():
        raise bad(field, "is not positive semi-definite")


def symmetric(A: np.ndarray, field: str, rows: int = 512) -> None:
    """A large square matrix symmetric to ``SYMMETRY_RTOL`` of its largest entry.

    Compared ``rows`` rows at a time, so the temporaries stay small.
    """
    tol = SYMMETRY_RTOL * max(float(A.max(initial=0.0)), -float(A.min(initial=0.0)))
    for start in range(0, len(A), rows):
        if np.abs(A[start : start + rows] - A[:, start : start + rows].T).max() > tol:
            raise bad(field, "is not symmetric")


def check_levels(k: int, t: reterm.ReTerm) -> None:
    """Keys unique; a one-factor term's factor keys its keys."""
    unique_keys(t.keys, f"levels of term {k} ({t.group})")
    for j, fk in enumerate(t.factor_keys):
        unique_keys(fk, f"levels of factor {j} of term {k} ({t.group})")
    if len(t.factor_keys) == 1 and list(t.factor_keys[0]) != list(t.keys):
        raise bad(f"levels.json[{k}].factor_keys", "of a one-factor term must be its keys")


def sparse_block(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """A21 from its CSR arrays, checked: scipy's kernels trust indices and may crash on bad ones.

    Indices in range, pointers monotone from 0 to the number of entries,
    indices sorted within rows without duplicates.
    """
    try:
        A21 = sp.csr_matrix((data, indices, indptr), shape=shape)
        A21.check_format(full_check=True)
    except ValueError as exc:
        raise bad("arrays A21_indices/A21_indptr", f"are malformed: {exc}") from exc
    if not A21.has_canonical_format:
        raise bad("array A21_indices", "must be sorted within rows, without duplicates")
    return A21


def check_values(model: MixedModel) -> None:
    """Values of a model built from a file: finite, in range, symmetric, PSD, factorable.

    Raises
    ------
    ModelFileError
        Naming the first array that is inconsistent with the model.
    """
    spec, bl, std = model.spec, model.blocks, model.standardized
    for name, values in (
        ("theta", model.theta),
        ("beta", model.beta),
        ("vcov_beta", model.vcov_beta),
        ("std_theta", std.theta),
        ("std_beta", std.beta),
        ("A11", bl.A11),
        ("A21", np.asarray(bl.A21.data if sp.issparse(bl.A21) else bl.A21)),
        ("A22", bl.A22),
        ("opt_start", model.optsummary.start),
        ("opt_final", model.optsummary.final),
    ):
        finite(values, f"array {name}")
    if np.isnan(model.optsummary.lower).any():
        raise bad("array opt_lower", "holds NaN")
    if (model.theta[spec.layout.diagonal] < 0).any():
        raise bad("array theta", "has a negative diagonal element")
    if (std.theta[spec.layout.diagonal] < 0).any():
        raise bad("array std_theta", "has a negative diagonal element")
    moments = [("std_moments_xy", std.coords.xy)]
    moments += [(f"std_moments{k}", m) for k, m in enumerate(std.coords.terms)]
    for name, m in moments:
        finite(np.vstack([m.mean, m.rms]), f"array {name}")
        if (m.rms < 0).any():
            raise bad(f"array {name}", "has a negative root mean square")
        centred = np.zeros(len(m.mean), bool) if m.weights is None else m.weights == 0
        if m.mean[~centred].any():  # G = (I - v mean') D^-1 is inverted as if mean'v = 0
            raise bad(f"array {name}", "has a mean for a column that is not centred")
    for k, (t, b, c) in enumerate(zip(spec.terms, model.b, model.b_condcov, strict=True)):
        finite(b, f"array b{k}")
        finite(std.b[k], f"array std_b{k}")
        finite(c, f"array condcov{k}")
        symmetric_psd(c, f"array condcov{k}")
        check_levels(k, t)
    symmetric_psd(bl.A11, "array A11")
    symmetric_psd(model.vcov_beta[None], "array vcov_beta")
    symmetric(bl.A22, "array A22")
    try:  # the factor that intervals use: fails unless [Z X y]'[Z X y] is PSD as it must be
        factorize(bl, spec.layout.Ts(std.theta))  # the blocks' coordinates
    except np.linalg.LinAlgError as exc:
        raise bad("arrays A11, A21, A22", f"are not positive definite: {exc}") from exc
