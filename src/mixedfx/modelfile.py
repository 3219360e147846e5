"""Saved models: one zip of JSON and ``.npy`` arrays, never pickle.

Layout of a ``.mfx`` file (a zip archive)::

    mixedfx.json        format name and version, the model's scalars, the
                        design (formula, learned formulaic state, levels),
                        per array its dtype, shape and SHA-256, and the
                        SHA-256 of the manifest itself (``sha256``, over its
                        canonical JSON without that key)
    arrays/<name>.npy   numeric arrays, read with allow_pickle=False

Loading checks the format and version, the manifest's hash, the member list, every array's hash,
dtype and shape, and the consistency of shapes with the design, and builds
only known types from data: a truncated, tampered or foreign file fails with
:class:`~mixedfx.errors.ModelFileError` and runs no code. No training rows are
stored: the cross-product blocks (sufficient statistics) carry what
``given`` and intervals need.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from typing import Any

import numpy as np
import scipy.sparse as sp
from formulaic import Formula, ModelSpec

from . import statecodec
from .base import MixedModel
from .engine.blocks import Blocks, RestTerm
from .engine.family import make as make_family
from .engine.optimize import OptSummary
from .errors import ModelFileError
from .frame.design import DesignSpec
from .frame.formula import RandomTerm, parse
from .frame.reterm import ReTerm
from .glmm_model import GeneralizedLinearMixedModel
from .model import LinearMixedModel
from .outcome import OutcomeSpec

FORMAT = "mixedfx-model"
VERSION = 2  # 2: the manifest carries its own checksum; terms may carry column scales
MANIFEST = "mixedfx.json"
MAX_MEMBER_BYTES = 8 * 2**30


def manifest_checksum(doc: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON, without its own ``sha256`` entry."""
    body = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _spec_json(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {
        "formula": str(spec.formula),
        "ensure_full_rank": bool(spec.ensure_full_rank),
        "transform_state": statecodec.encode(spec.transform_state),
        "encoder_state": statecodec.encode(spec.encoder_state),
        "columns": list(spec.column_names),
    }


def _spec_from_json(d: dict[str, Any] | None) -> Any:
    if d is None:
        return None
    return ModelSpec(
        formula=Formula(str(d["formula"])),
        materializer="pandas",
        ensure_full_rank=bool(d["ensure_full_rank"]),
        na_action="ignore",
        output="numpy",
        transform_state=statecodec.decode(d["transform_state"]),
        encoder_state=statecodec.decode(d["encoder_state"]),
    )


def _plain(values: np.ndarray) -> list[Any]:
    """Labels as JSON values (numbers stay numbers, anything else becomes text)."""
    out: list[Any] = []
    for v in values:
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
        "kept": model.spec.kept,
        "A11": bl.A11,
        "A22": bl.A22,
        "opt_start": model.optsummary.start,
        "opt_final": model.optsummary.final,
        "opt_lower": model.optsummary.lower,
    }
    if sp.issparse(bl.A21):
        A21 = sp.csr_matrix(bl.A21)
        arrays |= {"A21_data": A21.data, "A21_indices": A21.indices, "A21_indptr": A21.indptr}
    else:
        arrays["A21"] = np.asarray(bl.A21)
    for k, (b, c) in enumerate(zip(model.b, model.b_condcov, strict=True)):
        arrays[f"b{k}"] = b
        arrays[f"condcov{k}"] = c
    return arrays


def _kind(model: MixedModel) -> dict[str, Any]:
    """What kind of model: ``"lmm"`` with its REML flag and sigma, or ``"glmm"`` with its family."""
    if isinstance(model, GeneralizedLinearMixedModel):
        out = model.outcome
        return {
            "kind": "glmm",
            "family": out.family.name,
            "link": out.family.link.name,
            "nagq": model.nagq,
            "weights": out.weights,
            "offset": out.offset,
            "trials": out.trials,
        }
    assert isinstance(model, LinearMixedModel)
    return {"kind": "lmm", "reml": model.reml, "sigma": model.sigma, "weights": model.weights}


def save(model: MixedModel, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` (a zip of JSON and .npy arrays; see module docstring)."""
    spec, bl, opt = model.spec, model.blocks, model.optsummary
    arrays = _arrays(model)
    blobs: dict[str, bytes] = {}
    meta: dict[str, dict[str, Any]] = {}
    for name, arr in arrays.items():
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        blobs[name] = buf.getvalue()
        meta[name] = {
            "dtype": str(arr.dtype),
            "shape": list(arr.shape),
            "sha256": hashlib.sha256(blobs[name]).hexdigest(),
        }
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "model": {
            **_kind(model),
            "formula": spec.formula,
            "objective": model.objective,
            "nobs_given": model.nobs_given,
            "fixed_spec": _spec_json(spec.fixed_spec),
            "fixed_names": list(spec.fixed_names),
            "dropped": list(spec.dropped),
            "terms": [
                {
                    "expr": t.term.expr,
                    "factors": list(t.term.factors),
                    "correlated": t.term.correlated,
                    "columns": list(t.columns),
                    "keys": _plain(t.keys),
                    "labels": _plain(t.labels),
                    "factor_keys": [_plain(k) for k in t.factor_keys],
                    "spec": _spec_json(t.spec),
                    "scales": None if t.scales is None else [float(v) for v in t.scales],
                }
                for t in spec.terms
            ],
            "blocks": {
                "first": bl.first,
                "l0": bl.l0,
                "q0": bl.q0,
                "p": bl.p,
                "n": bl.n,
                "rest": [[r.term, r.offset, r.nlevels, r.q] for r in bl.rest],
                "sparse": bool(sp.issparse(bl.A21)),
                "A21_shape": list(bl.A21.shape),
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
        },
        "arrays": meta,
    }
    doc["sha256"] = manifest_checksum(doc)
    text = json.dumps(doc, allow_nan=True).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, text)
        for name, blob in blobs.items():
            zf.writestr(f"arrays/{name}.npy", blob)


def _read_arrays(zf: zipfile.ZipFile, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    expected = {MANIFEST} | {f"arrays/{name}.npy" for name in meta}
    present = set(zf.namelist())
    if present != expected:
        extra = sorted(present - expected)[:5]
        missing = sorted(expected - present)[:5]
        raise ModelFileError(
            f"model file members do not match its manifest (unexpected {extra}, missing {missing})"
        )
    out = {}
    for name, m in meta.items():
        info = zf.getinfo(f"arrays/{name}.npy")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ModelFileError(f"model file: array {name!r} is implausibly large")
        blob = zf.read(info)
        if hashlib.sha256(blob).hexdigest() != m["sha256"]:
            raise ModelFileError(
                f"model file: array {name!r} fails its checksum (tampered or corrupted)"
            )
        try:
            arr = np.load(io.BytesIO(blob), allow_pickle=False)
        except ValueError as exc:
            raise ModelFileError(
                f"model file: array {name!r} cannot be read safely: {exc}"
            ) from exc
        if arr.dtype.kind not in "biuf" or str(arr.dtype) != m["dtype"]:
            raise ModelFileError(
                f"model file: array {name!r} has dtype {arr.dtype}, declared {m['dtype']}"
            )
        if list(arr.shape) != list(m["shape"]):
            raise ModelFileError(
                f"model file: array {name!r} has shape {arr.shape}, declared {tuple(m['shape'])}"
            )
        out[name] = arr
    return out


def load(path: str | os.PathLike[str]) -> LinearMixedModel | GeneralizedLinearMixedModel:
    """Read a model written by ``save`` (a linear or a generalized linear mixed model).

    Raises
    ------
    ModelFileError
        For a missing, truncated, tampered, foreign or unknown-version file.
    """
    if os.path.isdir(path):
        raise ModelFileError(f"{os.fspath(path)!r} is a directory, not a model file")
    if not os.path.exists(path):
        raise ModelFileError(f"model file {os.fspath(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                doc = json.loads(zf.read(MANIFEST))
            except KeyError as exc:
                raise ModelFileError("not a mixedfx model file (no manifest)") from exc
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ModelFileError("not a mixedfx model file (wrong format name)")
            if doc.get("version") != VERSION:
                raise ModelFileError(
                    f"model file format version {doc.get('version')!r} is not "
                    f"supported (this mixedfx reads version {VERSION})"
                )
            if doc.get("sha256") != manifest_checksum(doc):
                raise ModelFileError(
                    "model file manifest fails its checksum (tampered or corrupted)"
                )
            arrays = _read_arrays(zf, doc["arrays"])
            return _build(doc["model"], arrays)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as exc:
        raise ModelFileError(f"cannot read model file {os.fspath(path)!r}: {exc}") from exc
    except Exception as exc:  # anything else a malformed file provokes: never a traceback
        raise ModelFileError(f"model file {os.fspath(path)!r} is malformed: {exc!r}") from exc


def _scales(values: Any, q: int) -> np.ndarray | None:
    """A term's column scales from the file: None, or q positive finite numbers."""
    if values is None:
        return None
    out = np.array([float(v) for v in values])
    if out.shape != (q,) or not (np.isfinite(out).all() and (out > 0).all()):
        raise ModelFileError("model file: a term's column scales are malformed")
    return out


def _build(
    d: dict[str, Any], arrays: dict[str, np.ndarray]
) -> LinearMixedModel | GeneralizedLinearMixedModel:
    parsed = parse(str(d["formula"]))
    terms = []
    for t in d["terms"]:
        term = RandomTerm(str(t["expr"]), tuple(map(str, t["factors"])), bool(t["correlated"]))
        terms.append(
            ReTerm(
                term,
                tuple(map(str, t["columns"])),
                np.array([str(k) for k in t["keys"]], dtype=object),
                np.array(t["labels"], dtype=object),
                tuple(np.array([str(k) for k in fk], dtype=object) for fk in t["factor_keys"]),
                _spec_from_json(t["spec"]),
                _scales(t.get("scales"), len(t["columns"])),
            )
        )
    fixed = d["fixed_spec"]
    spec = DesignSpec(
        str(d["formula"]),
        parsed,
        _spec_from_json(fixed),
        arrays["kept"].astype(np.int64),
        tuple(map(str, d["fixed_names"])),
        tuple(map(str, d["dropped"])),
        tuple(terms),
        tuple(map(str, fixed["columns"])),
    )
    bd = d["blocks"]
    rest = tuple(RestTerm(*map(int, r)) for r in bd["rest"])
    if bd["sparse"]:
        A21: Any = sp.csr_matrix(
            (arrays["A21_data"], arrays["A21_indices"], arrays["A21_indptr"]),
            shape=tuple(bd["A21_shape"]),
        )
    else:
        A21 = arrays["A21"]
    blocks = Blocks(
        int(bd["first"]),
        int(bd["l0"]),
        int(bd["q0"]),
        rest,
        int(bd["p"]),
        int(bd["n"]),
        arrays["A11"],
        A21,
        arrays["A22"],
    )
    o = d["optsummary"]
    opt = OptSummary(
        str(o["optimizer"]),
        arrays["opt_start"],
        arrays["opt_final"],
        arrays["opt_lower"],
        float(o["fmin"]),
        int(o["feval"]),
        str(o["status"]),
        bool(o["converged"]),
        float(o["xtol_abs"]),
        float(o["ftol_abs"]),
        int(o["maxeval"]),
        {str(k): float(v) for k, v in o["extra"].items()},
    )
    b = [arrays[f"b{k}"] for k in range(len(terms))]
    condcov = [arrays[f"condcov{k}"] for k in range(len(terms))]
    nobs_given = int(d.get("nobs_given", 0))  # files before nobs_given: never conditioned
    model: LinearMixedModel | GeneralizedLinearMixedModel
    kind = d.get("kind", "lmm")
    if kind == "glmm":
        model = GeneralizedLinearMixedModel(
            spec,
            _outcome(d),
            int(d["nagq"]),
            arrays["theta"],
            arrays["beta"],
            float(d["objective"]),
            b,
            condcov,
            arrays["vcov_beta"],
            opt,
            blocks,
            None,
            None,
            None,
            None,
            nobs_given,
        )
    elif kind == "lmm":
        model = LinearMixedModel(
            spec,
            bool(d["reml"]),
            arrays["theta"],
            arrays["beta"],
            float(d["sigma"]),
            float(d["objective"]),
            b,
            condcov,
            arrays["vcov_beta"],
            opt,
            blocks,
            None,
            None,
            None,
            nobs_given,
            _column(d.get("weights")),
        )
    else:
        raise ModelFileError(f"model file holds an unknown kind of model {kind!r}")
    _check(model)
    return model


def _column(value: Any) -> str | None:
    """A column name (or None) from the file."""
    if value is not None and not isinstance(value, str):
        raise ModelFileError("model file: a column name is malformed")
    return value


def _outcome(d: dict[str, Any]) -> OutcomeSpec:
    """A GLMM's family and weights and offset columns from the file."""
    try:
        family = make_family(str(d["family"]), str(d["link"]))
    except ValueError as exc:
        raise ModelFileError(f"model file: {exc}") from exc
    columns = [d["weights"], d["offset"]]
    if not all(c is None or isinstance(c, str) for c in columns) or int(d["nagq"]) < 0:
        raise ModelFileError("model file: the GLMM's weights, offset or nAGQ are malformed")
    return OutcomeSpec(family, columns[0], columns[1], bool(d.get("trials", True)))


def _check(m: MixedModel) -> None:
    """Shapes must agree with the design; a file that lies about them is refused."""
    spec, bl = m.spec, m.blocks
    p = len(spec.fixed_names)
    problems = []
    if m.beta.shape != (p,) or m.vcov_beta.shape != (p, p) or bl.p != p:
        problems.append("fixed effects")
    if len(m.theta) != spec.layout.ntheta:
        problems.append("theta")
    for t, b, c in zip(spec.terms, m.b, m.b_condcov, strict=True):
        if b.shape != (t.nlevels, t.q) or c.shape != (t.nlevels, t.q, t.q):
            problems.append(f"random effects of {t.group!r}")
        if len(t.labels) != t.nlevels:
            problems.append(f"labels of {t.group!r}")
    if not 0 <= bl.first < len(spec.terms):
        problems.append("block layout")
    else:
        first = spec.terms[bl.first]
        if (bl.l0, bl.q0) != (first.nlevels, first.q) or bl.A11.shape != (bl.l0, bl.q0, bl.q0):
            problems.append("first block")
        if bl.A21.shape != (bl.m, bl.l0 * bl.q0) or bl.A22.shape != (bl.m, bl.m):
            problems.append("cross-product blocks")
        for r in bl.rest:
            if not 0 <= r.term < len(spec.terms) or spec.terms[r.term].nlevels != r.nlevels:
                problems.append("rest layout")
    if not (np.isfinite(m.sigma) and m.sigma > 0):
        problems.append("sigma")
    if not 0 <= m.nobs_given < bl.n:
        problems.append("given rows")
    if problems:
        raise ModelFileError(
            f"model file is inconsistent: {', '.join(problems)} do not agree with the design"
        )
