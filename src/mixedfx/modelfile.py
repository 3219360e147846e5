"""Saved models: one zip of JSON and ``.npy`` arrays, never pickle (format: docs/modelfile.md).

Members of a ``.mfx`` file (a zip archive), and nothing else::

    mixedfx.json        the manifest: format name, version and model kind
                        (``lmm`` or ``glmm``), the model's scalars (a GLMM's
                        family, link, nAGQ and weights column) and design
                        (formula as text, its learned state as plain numbers
                        and strings, terms and their sizes, the block
                        layout), the size
                        and SHA-256 of every other member, and the SHA-256 of the
                        manifest itself (``sha256``, over its canonical JSON
                        without that key)
    levels.json         per random term, its level keys (labels with their JSON
                        types; a list per level of an interaction), display
                        labels and per-factor keys
    arrays/<name>.npy   numeric arrays (float64, int64 or sparse index types)

Saving is atomic (:mod:`mixedfx.atomicfile`): a failed or killed save leaves
the previous file as it was. Loading trusts nothing in the file: the
checksums catch accidents, not attacks. The manifest is capped in size, and
every other member must be exactly the size that the model it declares
needs (:mod:`mixedfx.modelcheck`); arrays are read without pickle under their
expected dtype and shape, then checked against the model (indices in range,
values finite, blocks symmetric and positive semi-definite). A truncated,
tampered, foreign or newer file fails with
:class:`~mixedfx.errors.ModelFileError` naming what is wrong, and runs no
code. The formula is data: it is re-parsed through the formula whitelist
(:mod:`mixedfx.frame.syntax`, never Python) and the design is rebuilt from it
and the learned state; a formula that fails the whitelist, or a state or
column that disagrees with it, is a ModelFileError. No training rows are
stored: the cross-product blocks (sufficient statistics) carry what
``given`` and intervals need.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import modelcheck as mc
from . import modelkind, modelzip, statecodec
from .atomicfile import replacing
from .base import MixedModel
from .engine.blocks import Blocks, RestTerm
from .engine.bobyqa import OptSummary
from .errors import DataError, FormulaError, ModelFileError
from .frame import reterm
from .frame.design import DesignSpec
from .frame.formula import RandomTerm
from .frame.levels import as_array
from .frame.modelmatrix import MatrixSpec
from .frame.reterm import ReTerm
from .glmm_model import GeneralizedLinearMixedModel
from .model import LinearMixedModel

FORMAT = "mixedfx-model"
VERSION = 5  # 5: a GLMM's standardized coordinates; 4: an LMM's, kind glmm; 3: kind, levels.json
KINDS = modelkind.KINDS  # the kinds of model this version reads
MANIFEST = "mixedfx.json"
LEVELS = "levels.json"
MAX_MANIFEST_BYTES = 4 * 2**20
MAX_MEMBERS = 16 + 4 * mc.MAX_TERMS  # per term: b, condcov, std_b, std_moments
MAX_LABEL_BYTES = 1024  # JSON bytes per label in levels.json, on average
LEVELS_SLACK = 4096  # ... plus this much
JSON_MEMORY = 8  # bytes of Python objects per byte of parsed JSON, about


def manifest_checksum(doc: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON, without its own ``sha256`` entry."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# -- saving ---------------------------------------------------------------------------------
def _plain(values: np.ndarray) -> list[Any]:
    """Labels as JSON values: numbers stay numbers, tuples lists, anything else becomes text."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, tuple):
            out.append(_plain(as_array(v)))
            continue
        if isinstance(v, np.generic):
            v = v.item()
        out.append(v if isinstance(v, bool | int | float | str) else str(v))
    return out


def _arrays(model: MixedModel) -> dict[str, np.ndarray]:
    bl = model.blocks
    arrays = {
        "theta": model.theta,
        "beta": model.beta,
        "vcov_beta": model.vcov_beta,
        "kept": np.asarray(model.spec.kept, dtype=np.int64),
        "A11": bl.A11,
        "A22": bl.A22,
        "opt_start": model.optsummary.start,
        "opt_final": model.optsummary.final,
        "opt_lower": model.optsummary.lower,
    }
    if sp.issparse(bl.A21):
        A21 = sp.csr_matrix(bl.A21)
        A21.sum_duplicates()  # canonical: sorted indices, no repeats
        arrays |= {"A21_data": A21.data, "A21_indices": A21.indices, "A21_indptr": A21.indptr}
    else:
        arrays["A21"] = np.asarray(bl.A21)
    for k, (b, c) in enumerate(zip(model.b, model.b_condcov, strict=True)):
        arrays[f"b{k}"] = b
        arrays[f"condcov{k}"] = c
    arrays |= modelkind.arrays(model)
    return {name: np.ascontiguousarray(a) for name, a in arrays.items()}


def _model_json(model: MixedModel, nnz: int | None) -> dict[str, Any]:
    spec, bl, opt = model.spec, model.blocks, model.optsummary
    return {
        "formula": spec.formula,
        **modelkind.fields(model),
        "objective": model.objective,
        "nobs_given": model.nobs_given,
        "states": statecodec.encode(spec.states),
        "offset_column": spec.offset_column,
        "fixed_names": list(spec.fixed_names),
        "dropped": list(spec.dropped),
        "terms": [
            {
                "expr": t.term.expr,
                "factors": list(t.term.factors),
                "correlated": t.term.correlated,
                "columns": list(t.columns),
                "nlevels": t.nlevels,
                "theta_blocks": list(t.blocks),
                "scales": None if t.scales is None else [float(v) for v in t.scales],
            }
            for t in spec.terms
        ],
        "blocks": {
            "first": bl.first,
            "rest": [r.term for r in bl.rest],
            "n": bl.n,
            "sparse": nnz is not None,
            "A21_nnz": nnz,
        },
        "optsummary": {
            "optimizer": opt.optimizer,
            "fmin": opt.fmin,
            "feval": opt.feval,
            "status": opt.status,
            "converged": opt.converged,
            "xtol_abs": opt.xtol_abs,
            "ftol_abs": opt.ftol_abs,
            "maxeval": opt.maxeval,
            "extra": opt.extra,
        },
    }


def _levels_json(model: MixedModel) -> bytes:
    terms = [
        {
            "keys": _plain(t.keys),
            "labels": _plain(t.labels),
            "factor_keys": [_plain(fk) for fk in t.factor_keys],
        }
        for t in model.spec.terms
    ]
    return json.dumps(terms, allow_nan=True).encode()


def save(model: MixedModel, path: str | os.PathLike[str], overwrite: bool = True) -> None:
    """Write ``model`` to ``path`` atomically (a zip of JSON and .npy arrays; see module doc).

    With ``overwrite=False`` an existing ``path`` is left alone
    (:class:`FileExistsError`).

    Raises
    ------
    ModelFileError
        When the model exceeds the format's limits (see ``docs/modelfile.md``).
    OSError
        When the file cannot be written; the previous file at ``path``, if
        any, is then unchanged.
    """
    arrays = _arrays(model)
    nnz = len(arrays["A21_data"]) if "A21_data" in arrays else None
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kind": modelkind.of(model)}
    doc["model"] = _model_json(model, nnz)
    declared = mc.declared(doc["model"], doc["kind"])  # never write a file load would refuse
    levels = _levels_json(model)
    if len(levels) > _levels_cap(declared):
        raise ModelFileError(
            f"cannot save: the level labels take {len(levels)} bytes, more than the model "
            f"file format allows for {declared.nlevels} levels ({MAX_LABEL_BYTES} per label)"
        )
    with replacing(path, overwrite) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        members = {LEVELS: modelzip.write(zf, LEVELS, levels)}
        for name, arr in arrays.items():
            members[f"arrays/{name}.npy"] = modelzip.write(zf, f"arrays/{name}.npy", arr)
        doc["members"] = members
        doc["sha256"] = manifest_checksum(doc)
        text = json.dumps(doc, allow_nan=True).encode()
        if len(text) > MAX_MANIFEST_BYTES:
            raise ModelFileError(
                f"cannot save: the manifest takes {len(text)} bytes, more than the "
                f"{MAX_MANIFEST_BYTES} that the model file format allows"
            )
        zf.writestr(modelzip.member(MANIFEST), text)


# -- loading --------------------------------------------------------------------------------
def _levels_cap(declared: mc.Declared) -> int:
    labels = sum(t.nlevels * (2 + t.nfactors) for t in declared.terms)
    return LEVELS_SLACK + MAX_LABEL_BYTES * labels


def _manifest(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError as exc:
        raise ModelFileError("not a mixedfx model file (no manifest)") from exc
    if info.file_size > MAX_MANIFEST_BYTES:
        raise ModelFileError(
            f"model file manifest is {info.file_size} bytes, over the "
            f"{MAX_MANIFEST_BYTES} that the format allows"
        )
    doc = json.loads(modelzip.read(zf, MANIFEST, info.file_size, None))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError("not a mixedfx model file (wrong format name)")
    version = doc.get("version")
    if version != VERSION:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
        hint = "upgrade mixedfx to read it" if newer else "refit the model and save it again"
        raise ModelFileError(
            f"model file format version {version!r} is not supported: this mixedfx "
            f"reads version {VERSION}; {hint}"
        )
    if doc.get("kind") not in KINDS:
        raise ModelFileError(
            f"model kind {doc.get('kind')!r:.40} is not supported by this mixedfx (it reads "
            f"{' and '.join(map(repr, KINDS))} models); upgrade mixedfx"
        )
    if doc.get("sha256") != manifest_checksum(doc):
        raise ModelFileError("model file manifest fails its checksum (tampered or corrupted)")
    return doc


def _members(zf: zipfile.ZipFile, doc: dict[str, Any], declared: mc.Declared) -> dict[str, Any]:
    """Name -> (size, sha256) of every member the model needs; nothing else may be there."""
    caps = {LEVELS: _levels_cap(declared)}
    for name, (dtypes, shape) in declared.arrays.items():
        caps[f"arrays/{name}.npy"] = modelzip.npy_cap(dtypes, shape)
    present = zf.namelist()
    listed = mc.mapping(doc.get("members"), "members")
    if sorted(present) != sorted([MANIFEST, *caps]) or sorted(listed) != sorted(caps):
        extra = sorted(set(present) - {MANIFEST, *caps})[:5]
        missing = sorted({MANIFEST, *caps} - set(present))[:5]
        raise ModelFileError(
            "model file members are not those of the model it declares (unexpected "
            f"{extra}, missing {missing}, or listed wrongly in the manifest)"
        )
    out = {}
    for name, cap in caps.items():
        entry = mc.mapping(listed[name], f"members[{name!r}]")
        size = mc.integer(entry.get("bytes"), f"members[{name!r}].bytes", hi=cap)
        out[name] = (size, mc.text(entry.get("sha256"), f"members[{name!r}].sha256"))
    need = declared.array_bytes + JSON_MEMORY * out[LEVELS][0]
    memory = modelzip.physical_memory()
    if memory is not None and need > memory:
        raise ModelFileError(
            f"the model in this file needs about {need / 2**30:.1f} GiB, more than this "
            f"machine's {memory / 2**30:.1f} GiB of memory"
        )
    return out


def load(path: str | os.PathLike[str]) -> LinearMixedModel | GeneralizedLinearMixedModel:
    """Read a model written by ``save`` (a linear or a generalized linear mixed model).

    Raises
    ------
    ModelFileError
        For a missing, truncated, tampered, foreign, inconsistent or
        unknown-version file, naming what is wrong.
    """
    name = os.fspath(path)
    if os.path.isdir(path):
        raise ModelFileError(f"{name!r} is a directory, not a model file")
    if not os.path.exists(path):
        raise ModelFileError(f"model file {name!r} does not exist")
    if not os.path.isfile(path):
        raise ModelFileError(f"{name!r} is not a regular file")
    try:
        with zipfile.ZipFile(path) as zf:
            if len(zf.infolist()) > MAX_MEMBERS:
                raise ModelFileError(f"model file has {len(zf.infolist())} members, too many")
            doc = _manifest(zf)
            d = mc.mapping(doc.get("model"), "model")
            declared = mc.declared(d, doc["kind"])
            members = _members(zf, doc, declared)
            levels = _levels(modelzip.read(zf, LEVELS, *members[LEVELS]), declared)
            arrays = {}
            for a, (dtypes, shape) in declared.arrays.items():
                blob = modelzip.read(zf, f"arrays/{a}.npy", *members[f"arrays/{a}.npy"])
                arrays[a] = modelzip.npy(blob, a, dtypes, shape)
        model = _build(d, doc["kind"], declared, levels, arrays)
        mc.check_values(model)
        return model
    except (ModelFileError, MemoryError):
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as exc:
        raise ModelFileError(f"cannot read model file {name!r}: {exc}") from exc
    except Exception as exc:  # anything else a malformed file provokes: never a traceback
        raise ModelFileError(f"model file {name!r} is malformed: {exc!r:.300}") from exc


def _levels(blob: bytearray, declared: mc.Declared) -> list[tuple[Any, Any, Any]]:
    """Per term: keys and labels (object arrays, shape (l,)) and per-factor keys."""
    doc = json.loads(blob)
    if not isinstance(doc, list) or len(doc) != len(declared.terms):
        raise mc.bad("levels.json", f"must list the levels of {len(declared.terms)} terms")
    out = []
    for k, (t, size) in enumerate(zip(doc, declared.terms, strict=True)):
        field = f"levels.json[{k}]"
        t = mc.mapping(t, field)
        keys = _labels(t.get("keys"), f"{field}.keys", size.nlevels, size.nfactors)
        labels = _labels(t.get("labels"), f"{field}.labels", size.nlevels)
        factor_keys = t.get("factor_keys")
        if not isinstance(factor_keys, list) or len(factor_keys) != size.nfactors:
            raise mc.bad(f"{field}.factor_keys", f"must list the keys of {size.nfactors} factors")
        out.append(
            (
                keys,
                labels,
                tuple(_labels(fk, f"{field}.factor_keys[{j}]") for j, fk in enumerate(factor_keys)),
            )
        )
    return out


def _labels(value: Any, field: str, n: int | None = None, width: int = 1) -> np.ndarray:
    """Labels from levels.json as saved: strings or finite numbers, lists of ``width`` for tuples.

    Returns
    -------
    ndarray of object, shape (n,)
        The labels, with their types (``"7"`` and ``7`` stay apart); an
        interaction's keys as tuples.
    """
    if not isinstance(value, list):
        raise mc.bad(field, f"must be a list, got {type(value).__name__}")
    if n is not None and len(value) != n:
        raise mc.bad(field, f"has {len(value)} entries, expected {n}")

    def scalar(v: Any) -> bool:
        return isinstance(v, str | int) or (isinstance(v, float) and np.isfinite(v))

    if width == 1 and not all(scalar(v) for v in value):
        raise mc.bad(field, "must be strings or finite numbers")
    if width > 1 and not all(
        isinstance(v, list) and len(v) == width and all(scalar(x) for x in v) for v in value
    ):
        raise mc.bad(field, f"must be lists of {width} strings or finite numbers")
    return as_array([tuple(v) if width > 1 else v for v in value])


def _scales(values: Any, q: int, field: str) -> np.ndarray | None:
    """A term's column scales from the file: None, or q positive finite numbers."""
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != q:
        raise mc.bad(field, f"must list {q} numbers")
    return np.array([mc.number(v, field, positive=True) for v in values])


def _optsummary(o: Any, arrays: dict[str, np.ndarray]) -> OptSummary:
    o = mc.mapping(o, "model.optsummary")
    extra = mc.mapping(o.get("extra"), "model.optsummary.extra")
    return OptSummary(
        mc.text(o.get("optimizer"), "model.optsummary.optimizer"),
        arrays["opt_start"],
        arrays["opt_final"],
        arrays["opt_lower"],
        mc.number(o.get("fmin"), "model.optsummary.fmin"),
        mc.integer(o.get("feval"), "model.optsummary.feval"),
        mc.text(o.get("status"), "model.optsummary.status"),
        mc.flag(o.get("converged"), "model.optsummary.converged"),
        mc.number(o.get("xtol_abs"), "model.optsummary.xtol_abs"),
        mc.number(o.get("ftol_abs"), "model.optsummary.ftol_abs"),
        mc.integer(o.get("maxeval"), "model.optsummary.maxeval"),
        {str(k): mc.number(v, f"model.optsummary.extra[{k!r}]") for k, v in extra.items()},
    )


def _design(d: dict[str, Any], kept: np.ndarray, levels: list[tuple[Any, Any, Any]]) -> DesignSpec:
    """The design rebuilt from the formula (re-parsed through the whitelist) and its state.

    The formula is parsed as a new one is (:mod:`mixedfx.frame.syntax`: text
    only, never Python); the fixed-effects columns and each random term's
    columns and theta blocks must be the ones that formula and the stored
    state give.
    """
    formula = mc.text(d.get("formula"), "model.formula")
    parsed = mc.formula(formula)
    states = statecodec.decode(d.get("states"), parsed)
    offset = d.get("offset_column")
    if offset is not None:
        mc.text(offset, "model.offset_column")
    try:
        fixed = MatrixSpec.build(parsed.fixed_terms, states)
        terms = [
            _term(t, states, level, k)
            for k, (t, level) in enumerate(zip(d["terms"], levels, strict=True))
        ]
    except (DataError, FormulaError) as exc:
        raise mc.bad("model.states", f"disagree with the formula: {exc}") from exc
    names = fixed.names
    if len(kept) and (kept[0] < 0 or kept[-1] >= len(names) or (np.diff(kept) <= 0).any()):
        raise mc.bad("array kept", f"must be increasing indices below {len(names)}")
    fixed_names = tuple(d["fixed_names"])
    if fixed_names != tuple(names[j] for j in kept):
        raise mc.bad("model.fixed_names", "are not the kept columns of the formula")
    dropped = tuple(d["dropped"])
    if dropped != tuple(n for j, n in enumerate(names) if j not in set(kept.tolist())):
        raise mc.bad("model.dropped", "are not the formula's columns that are not kept")
    mc.check_terms(formula, [t.term for t in terms])
    return DesignSpec(
        formula, parsed, fixed, kept, fixed_names, dropped, tuple(terms), states, offset
    )


def _term(t: dict[str, Any], states: dict[str, Any], level: tuple[Any, Any, Any], k: int) -> ReTerm:
    """One random term from the file; its columns and blocks must be those its formula gives."""
    term = RandomTerm(t["expr"], tuple(t["factors"]), t["correlated"])
    columns = tuple(t["columns"])
    parts = reterm.term_parts(term, states)
    if tuple(n for p in parts[::-1] for n in p.names) == columns and len(parts) > 1:
        parts = parts[::-1]  # lme4's order reversed the blocks of this || term
    if tuple(n for p in parts for n in p.names) != columns:
        raise mc.bad(f"model.terms[{k}].columns", f"are not the columns of {term}")
    keys, labels, factor_keys = level
    scales = _scales(t.get("scales"), len(columns), f"model.terms[{k}].scales")
    out = ReTerm(term, columns, keys, labels, factor_keys, parts, scales)
    if list(out.blocks) != list(t["theta_blocks"]):
        raise mc.bad(f"model.terms[{k}].theta_blocks", f"are not the blocks of {term}")
    return out


def _build(
    d: dict[str, Any],
    kind: str,
    declared: mc.Declared,
    levels: list[tuple[Any, Any, Any]],
    arrays: dict[str, np.ndarray],
) -> LinearMixedModel | GeneralizedLinearMixedModel:
    """The model from checked manifest fields, levels and arrays."""
    design = _design(d, arrays["kept"], levels)
    terms = design.terms
    rest = tuple(
        RestTerm(k, offset, declared.terms[k].nlevels, declared.terms[k].q)
        for k, offset in declared.rest
    )
    t0 = declared.terms[declared.first]
    if "A21" in arrays:
        A21: Any = arrays["A21"]
    else:
        parts = (arrays["A21_data"], arrays["A21_indices"], arrays["A21_indptr"])
        A21 = mc.sparse_block(*parts, shape=(declared.m, t0.nlevels * t0.q))
    blocks = Blocks(
        declared.first,
        t0.nlevels,
        t0.q,
        rest,
        declared.p,
        d["blocks"]["n"],
        arrays["A11"],
        A21,
        arrays["A22"],
    )
    b = [arrays[f"b{k}"] for k in range(len(terms))]
    condcov = [arrays[f"condcov{k}"] for k in range(len(terms))]
    objective = mc.number(d.get("objective"), "model.objective")
    opt = _optsummary(d.get("optsummary"), arrays)
    weights = _column(d.get("weights"), "model.weights")
    common = (objective, opt, b, condcov, weights, declared.nagq)
    return modelkind.model(kind, d, design, blocks, arrays, common)


def _column(value: Any, field: str) -> str | None:
    """A column name, or None, from the file."""
    return None if value is None else mc.text(value, field)
