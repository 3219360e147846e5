"""Fuzzing model files: mutants of a saved model, and a worker that loads and predicts them.

Mutants come in two families:

* raw damage to the file's bytes (bit flips, overwritten runs, truncation):
  what disks, networks and careless copies do;
* crafted edits with every checksum recomputed (``reseal``): JSON fields of
  the manifest and of ``levels.json`` replaced by values of another type,
  out of range, non-finite or repeated; arrays made non-finite, reshaped,
  retyped, Fortran-ordered, negated (covariances and cross-products) or
  given out-of-range indices; oversized declared shapes; members dropped,
  added, renamed or repeated; a huge or deeply nested manifest.

Each outcome must be a :class:`~mixedfx.ModelFileError` at load, or a model
whose predictions are bit-identical to the original's: never a crash, a
hang, another exception or a different number. Edits that yield a
*consistent* different model (another beta, two well-formed arrays
swapped) are not generated: nothing in a file can tell them from a model
that was saved that way, which is why the checksums are documented as
catching accidents, not attacks. For the same reason the formula's learned
state (``states``: category levels, ``scale()`` constants, ``poly()``
coefficients) and the ``offset_column`` name are not mutated here: another
centre or another offset column is a consistent model too. Their form is
checked by :mod:`mixedfx.statecodec` and ``tests/test_modelfile_crafted.py``.

``python tests/modelfuzz.py jobs.json`` is the worker: for each job (a model
file, the rows to predict and the given rows, as CSV) it prints ``start <i>``
and then one JSON line, so that a parent sees which file killed it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mfxfile import Content, array, manifest, npy, reseal
from mixedfx.modelfile import LEVELS, MANIFEST, manifest_checksum

FORMULA_STATE = ("states", "offset_column")  # consistent edits: not mutated here
ODD_VALUES: dict[type, list[Any]] = {
    float: [math.nan, math.inf, -math.inf, -1.0, 0.0, "1", None, True, []],
    int: [-1, 2**62, 1.5, "1", None, True, {}],
    bool: [0, "true", None],
    str: ["", 1, None, ["x"]],
    list: [[], None, {}, "x"],
    dict: [None, [], "x"],
    type(None): [1, "x", [], {}],
}
PSD_ARRAYS = ("A11", "A22", "vcov_beta", "condcov0", "condcov1")


def leaves(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every (path, value) in a JSON tree, containers included, formulaic state excluded."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in FORMULA_STATE:
                yield from leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, (*path, i))


def replacement(rng: random.Random, value: Any) -> Any:
    """A value of another type, out of range, non-finite, a neighbour, or a changed list."""
    options = list(ODD_VALUES[type(value)])
    if isinstance(value, bool):
        options.append(not value)
    elif isinstance(value, int):
        options += [value + 1, value - 1, value * 1000]
    elif isinstance(value, str):
        options += [value * 2, "x"]
    elif isinstance(value, list) and value:
        options += [value[:-1], value + value[-1:], value[::-1]]
    return rng.choice(options)


def edit_json(rng: random.Random, doc: Any) -> tuple[str, Any]:
    """One random field of ``doc`` replaced; (its path, the new document)."""
    doc = json.loads(json.dumps(doc))
    path, value = rng.choice(list(leaves(doc))[1:])
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = replacement(rng, value)
    return "/".join(map(str, path)), doc


def edit_array(rng: random.Random, content: Content) -> str:
    names = [n[len("arrays/") : -len(".npy")] for n in content if n.startswith("arrays/")]
    name = rng.choice(sorted(names))
    a = array(content, name)
    ops: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "longer": lambda a: np.concatenate([a.ravel(), a.ravel()[:1]]),
        "float32": lambda a: a.astype(np.float32),
        "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
        "object": lambda a: a.astype(object),
    }
    if a.ndim > 1 and a.shape[0] > 1 and a.shape[-1] > 1:
        ops["fortran"] = np.asfortranarray
    if a.size and a.dtype.kind == "f":
        ops["nan"] = lambda a: _at(rng, a, math.nan)
        ops["inf"] = lambda a: _at(rng, a, -math.inf)
        if name in PSD_ARRAYS and np.abs(a).max() > 0:
            ops["negated"] = np.negative
    if a.size and a.dtype.kind == "i":
        ops["index -1"] = lambda a: _at(rng, a, -1)
        ops["index huge"] = lambda a: _at(rng, a, 2**31 - 1)
        ops["shuffled"] = lambda a: a[rng.sample(range(len(a)), len(a))]
    op = rng.choice(sorted(ops))
    content[f"arrays/{name}.npy"] = npy(ops[op](a), allow_pickle=op == "object")
    return f"{name} {op}"


def _at(rng: random.Random, a: np.ndarray, value: float) -> np.ndarray:
    out = a.copy()
    out.flat[rng.randrange(a.size)] = value
    return out


def zipped(content: Content, extra: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """The members as a zip archive; ``extra`` members may repeat names."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted here
        for name, blob in [*content.items(), *extra]:
            zf.writestr(name, blob)
    return buf.getvalue()


def crafted(rng: random.Random, content: Content) -> tuple[str, bytes]:
    """One resealed edit of the content: a mutant that every checksum accepts."""
    content = dict(content)
    doc = manifest(content)
    kind = rng.choice(["manifest", "manifest", "manifest", "levels", "array", "array", "member"])
    if kind == "manifest":
        body = {k: v for k, v in doc.items() if k not in ("members", "sha256")}
        label, body = edit_json(rng, body)
        return f"manifest {label}", zipped(reseal(content, {**doc, **body}))
    if kind == "levels":
        label, levels = edit_json(rng, json.loads(content[LEVELS]))
        content[LEVELS] = json.dumps(levels).encode()
        return f"levels {label}", zipped(reseal(content, doc))
    if kind == "array":
        label = edit_array(rng, content)
        return f"array {label}", zipped(reseal(content, doc))
    name = rng.choice(sorted(n for n in content if n != MANIFEST))
    op = rng.choice(["drop", "rename", "extra", "repeat", "listed extra"])
    if op == "drop":
        del content[name]
        return f"member {name} dropped", zipped(reseal(content, doc))
    if op == "rename":
        content[name.replace(".", "x.", 1)] = content.pop(name)
        return f"member {name} renamed", zipped(reseal(content, doc))
    if op == "repeat":
        return f"member {name} twice", zipped(reseal(content, doc), ((name, content[name]),))
    if op == "extra":
        return "unlisted extra member", zipped(reseal(content, doc), (("arrays/x.npy", b""),))
    content["arrays/x.npy"] = npy(np.zeros(3))
    return "listed extra member", zipped(reseal(content, doc))


def oversized(rng: random.Random, content: Content) -> tuple[str, bytes]:
    """Declared sizes far beyond the arrays, a huge manifest, or a deeply nested one."""
    doc = manifest(content)
    op = rng.choice(["nlevels", "nnz", "columns", "n", "huge manifest", "nested", "member bytes"])
    model = doc["model"]
    if op == "nlevels":
        model["terms"][0]["nlevels"] *= 10 ** rng.randint(3, 12)
    elif op == "nnz":
        model["blocks"]["A21_nnz"] = 10 ** rng.randint(6, 15)
    elif op == "columns":
        model["terms"][0]["columns"] = [f"c{i}" for i in range(rng.choice([199, 2001, 10**5]))]
    elif op == "n":
        model["blocks"]["n"] = 10**18
    elif op == "huge manifest":
        model["pad"] = "x" * (5 * 2**20)
    elif op == "nested":
        return "nested manifest", zipped({**content, MANIFEST: b"[" * 10**6 + b"]" * 10**6})
    resealed = reseal(content, doc)
    if op == "member bytes":
        doc = manifest(resealed)
        doc["members"][LEVELS]["bytes"] = 10**15
        doc["sha256"] = manifest_checksum(doc)
        resealed[MANIFEST] = json.dumps(doc).encode()
    return f"oversized {op}", zipped(resealed)


def damaged(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    """Raw damage: bit flips, an overwritten run of bytes, or truncation."""
    data = bytearray(raw)
    op = rng.choice(["flip", "flip", "flips", "run", "truncate"])
    if op == "truncate":
        n = rng.randrange(len(data))
        return f"truncated at {n}", bytes(data[:n])
    if op == "run":
        at = rng.randrange(len(data))
        size = rng.randint(1, 64)
        data[at : at + size] = bytes(rng.randrange(256) for _ in range(size))
        return f"run of {size} at {at}", bytes(data)
    flips = 1 if op == "flip" else rng.randint(2, 8)
    for _ in range(flips):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)
    return f"{flips} bit flip(s), last at {at}", bytes(data)


def mutants(raw: bytes, content: Content, n: int, seed: int) -> list[tuple[str, bytes]]:
    """``n`` mutants of one saved model: a third raw damage, most of the rest crafted."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        u = rng.random()
        if u < 0.35:
            out.append(damaged(rng, raw))
        elif u < 0.9:
            out.append(crafted(rng, content))
        else:
            out.append(oversized(rng, content))
    return out


# -- running the mutants ---------------------------------------------------------------------
Job = tuple[str, str, str]  # model file, rows to predict, given rows (CSV)


def run(jobs: list[Job], scratch: Path) -> list[dict[str, str]]:
    """Load and predict every job's file in worker processes; one result per job.

    A worker killed by a signal (a crash) or busy for over 120 s with one
    file (a hang; it stops itself after 30 s of Python) is reported for that
    file, and a new worker takes the rest.
    """
    import subprocess
    import threading

    worker = str(Path(__file__).resolve())
    results: list[dict[str, str]] = []
    while len(results) < len(jobs):
        (scratch / "jobs.json").write_text(json.dumps(jobs[len(results) :]))
        proc = subprocess.Popen(
            [sys.executable, worker, str(scratch / "jobs.json")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        timer = threading.Timer(600, proc.kill)  # the worker's start-up, on a busy machine
        timer.start()
        started = False
        for line in proc.stdout:
            timer.cancel()
            if line.startswith("start "):
                started = True
                timer = threading.Timer(120, proc.kill)
                timer.start()
                continue
            results.append(json.loads(line))
            started = False
        timer.cancel()
        code = proc.wait()
        if started:  # died inside a file
            what = "hang (killed)" if code == -9 else f"crash (exit {code})"
            results.append({"status": what, "message": proc.stderr.read()[-300:]})  # type: ignore[union-attr]
        elif len(results) < len(jobs):
            stderr = proc.stderr.read()  # type: ignore[union-attr]
            raise RuntimeError(f"fuzz worker failed (exit {code}) between files: {stderr}")
    return results


# -- the worker ------------------------------------------------------------------------------
def digest(model: Any, newdata: Any, given: Any) -> str:
    """SHA-256 of the predictions in every mode that reads the model's arrays."""
    sha = hashlib.sha256()
    for kw in (
        {},
        {"re": "none"},
        {"interval": "confidence"},
        {"interval": "prediction", "new_levels": "nan"},
        {"given": given, "interval": "prediction"},
    ):
        sha.update(np.ascontiguousarray(np.asarray(model.predict(newdata, **kw))).tobytes())
    return sha.hexdigest()


def work(jobs_json: str) -> None:
    import signal

    import pandas as pd

    import mixedfx as mfx

    warnings.simplefilter("ignore")
    jobs = json.loads(Path(jobs_json).read_text())
    frames = {name: pd.read_csv(name) for job in jobs for name in job[1:]}

    def hang(signum: int, frame: Any) -> None:
        raise TimeoutError("took over 30 s")

    signal.signal(signal.SIGALRM, hang)
    for i, (path, newdata, given) in enumerate(jobs):
        print(f"start {i}", flush=True)
        signal.alarm(30)
        try:
            model = mfx.load(path)
            result = {"status": "ok", "digest": digest(model, frames[newdata], frames[given])}
        except mfx.ModelFileError as exc:
            result = {"status": "refused", "message": str(exc)[:200]}
        except BaseException as exc:  # noqa: BLE001 - the parent reports it as a failure
            result = {"status": "raised", "message": f"{type(exc).__name__}: {exc}"[:300]}
        signal.alarm(0)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    work(sys.argv[1])
