"""Crafted model files: checksums made to agree, the model inconsistent. Each is refused by name.

The SHA-256 checksums of a model file catch accidents, not attacks: a
tamperer recomputes them (``reseal``). These files pass every checksum, so
only the checks of the model against itself stand between them and the
engine (where, before those checks, out-of-range sparse indices crashed
Python inside scipy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import mixedfx as mfx
from mfxfile import Content, array, manifest, members, npy, reseal, write
from mixedfx.engine import blocks as blocks_mod
from mixedfx.modelfile import LEVELS, MANIFEST, MAX_MANIFEST_BYTES, MAX_MEMBERS


@pytest.fixture(scope="module")
def sparse_model(tmp_path_factory) -> Path:
    """Penicillin's crossed fit with A21 kept sparse (as for large models), saved."""
    keep = blocks_mod.DENSE_LIMIT
    blocks_mod.DENSE_LIMIT = 10
    try:
        m = mfx.lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("penicillin"))
    finally:
        blocks_mod.DENSE_LIMIT = keep
    assert m.blocks.sparse
    path = tmp_path_factory.mktemp("sparse") / "m.mfx"
    m.save(path)
    return path


@pytest.fixture(scope="module")
def slope_model(tmp_path_factory) -> Path:
    """sleepstudy with a random slope (2 x 2 blocks) and a categorical fixed effect."""
    sleep = mfx.datasets.load("sleepstudy")
    sleep["Week"] = np.where(sleep["Days"] < 5, "first", "second")
    path = tmp_path_factory.mktemp("slope") / "m.mfx"
    mfx.lmm("Reaction ~ Days + Week + (Days | Subject)", sleep).save(path)
    return path


@pytest.fixture(scope="module")
def glmm_model(tmp_path_factory) -> Path:
    """cbpp's binomial GLMM (cbind response, Laplace: opt arrays of theta and beta), saved."""
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    path = tmp_path_factory.mktemp("glmm") / "m.mfx"
    mfx.glmm(formula, mfx.datasets.load("cbpp"), family="binomial").save(path)
    return path


def set_kind(value: object) -> Callable:
    def edit(content: Content, doc: dict) -> None:
        doc["kind"] = value

    return edit


def crafted(source: Path, tmp_path: Path, edit: Callable[[Content, dict], None]) -> Path:
    """A copy of ``source`` changed by ``edit(content, manifest)``, then resealed."""
    content = members(source)
    doc = manifest(content)
    edit(content, doc)
    path = tmp_path / "crafted.mfx"
    write(path, reseal(content, doc))
    return path


def set_array(name: str, change: Callable[[np.ndarray], np.ndarray | None]) -> Callable:
    def edit(content: Content, doc: dict) -> None:
        arr = array(content, name).copy()
        out = change(arr)
        content[f"arrays/{name}.npy"] = npy(arr if out is None else out)

    return edit


def set_field(*keys: str | int, value: object) -> Callable:
    def edit(content: Content, doc: dict) -> None:
        target = doc["model"]
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return edit


def both(first: Callable, second: Callable) -> Callable:
    def edit(content: Content, doc: dict) -> None:
        first(content, doc)
        second(content, doc)

    return edit


def set_levels(change: Callable[[list], None]) -> Callable:
    def edit(content: Content, doc: dict) -> None:
        levels = json.loads(content[LEVELS])
        change(levels)
        content[LEVELS] = json.dumps(levels).encode()

    return edit


def refused(path: Path, match: str) -> None:
    with pytest.raises(mfx.ModelFileError, match=match):
        mfx.load(path)


def test_resealed_intact_file_loads(sparse_model, tmp_path):
    path = crafted(sparse_model, tmp_path, lambda c, d: None)
    assert mfx.load(path).blocks.sparse


# -- the sparse block: the crash of issue 13 ---------------------------------------------------
def _huge_index(a: np.ndarray) -> None:
    a[0] = 10**6


SPARSE_CASES = {
    "index out of range": (set_array("A21_indices", _huge_index), "A21_indices/A21_indptr"),
    "negative index": (set_array("A21_indices", lambda a: a - 1), "A21_indices/A21_indptr"),
    "unsorted indices": (set_array("A21_indices", lambda a: a[::-1].copy()), "A21_indices"),
    "pointers not monotone": (set_array("A21_indptr", lambda a: a[::-1].copy()), "A21_ind"),
    "pointers past the data": (set_array("A21_indptr", lambda a: a * 2), "A21_ind"),
    "float indices": (set_array("A21_indices", lambda a: a.astype(float)), "A21_indices"),
    "nnz disagrees": (set_field("blocks", "A21_nnz", value=3), "A21_data"),
    "nnz beyond the matrix": (set_field("blocks", "A21_nnz", value=10**9), "A21_nnz"),
}


@pytest.mark.parametrize("case", SPARSE_CASES)
def test_sparse_block(sparse_model, tmp_path, case):
    edit, match = SPARSE_CASES[case]
    refused(crafted(sparse_model, tmp_path, edit), match)


def test_out_of_range_sparse_index_is_an_error_not_a_crash(sparse_model, tmp_path):
    """The file that crashed Python (exit 139 inside scipy) before load checked indices."""
    path = crafted(sparse_model, tmp_path, set_array("A21_indices", _huge_index))
    script = textwrap.dedent(
        f"""
        import mixedfx as mfx
        try:
            m = mfx.load({str(path)!r})
            m.predict(mfx.datasets.load("penicillin"), interval="prediction")
            print("predicted")
        except mfx.ModelFileError as exc:
            print("refused:", exc)
        """
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("refused:") and "A21_indices" in res.stdout


# -- layout, levels and values -------------------------------------------------------------------
def _dup_key(levels: list) -> None:
    levels[0]["keys"][1] = levels[0]["keys"][0]


def _dup_factor_key(levels: list) -> None:
    levels[0]["factor_keys"][0][1] = levels[0]["factor_keys"][0][0]


def _asymmetric(a: np.ndarray) -> None:
    a[0, -1] += 1.0


def _indefinite_2x2(a: np.ndarray) -> None:
    a[0] = [[1.0, 2.0], [2.0, 1.0]]


def _no_residual(a: np.ndarray) -> None:
    a[-1, :] = 0.0
    a[:, -1] = 0.0


CASES = {
    "kept out of range": ("slope", set_array("kept", lambda a: a + 5), "array kept"),
    "kept not increasing": ("slope", set_array("kept", lambda a: a[::-1].copy()), "array kept"),
    "kept names another column": ("slope", set_array("kept", lambda a: a * 0 + [0, 2, 1]), "kept"),
    "kept as floats": ("slope", set_array("kept", lambda a: a.astype(float)), "array 'kept'"),
    "duplicate level keys": ("slope", set_levels(_dup_key), "repeats a level key"),
    "duplicate factor keys": ("slope", set_levels(_dup_factor_key), "repeats a level key"),
    "keys not strings": ("slope", set_levels(lambda lv: lv[0]["keys"].__setitem__(0, 7)), "keys"),
    "a level too few": ("slope", set_levels(lambda lv: lv[0]["keys"].pop()), r"\.keys has 17"),
    "labels not scalars": (
        "slope",
        set_levels(lambda lv: lv[0]["labels"].__setitem__(0, [1])),
        "labels",
    ),
    "factor keys not the keys": (
        "slope",
        set_levels(lambda lv: lv[0]["factor_keys"][0].__setitem__(0, "x")),
        "factor_keys of a one-factor term",
    ),
    "a key renamed": ("slope", set_levels(lambda lv: lv[0]["keys"].__setitem__(0, "x")), "keys"),
    "slope read from another column": (
        "slope",
        set_field("terms", 0, "columns", value=["(Intercept)", "Reaction"]),
        r"columns are not the columns of \(Days \| Subject\)",
    ),
    "rest names the first term": ("sparse", set_field("blocks", "rest", value=[0]), "blocks.rest"),
    "rest names a term twice": ("sparse", set_field("blocks", "rest", value=[1, 1]), "blocks.rest"),
    "negative rest term": ("sparse", set_field("blocks", "rest", value=[-1]), "blocks.rest"),
    "first out of range": ("sparse", set_field("blocks", "first", value=2), "blocks.first"),
    "first as a float": ("sparse", set_field("blocks", "first", value=0.0), "blocks.first"),
    "levels disagree with arrays": (
        "slope",
        set_field("terms", 0, "nlevels", value=17),
        "expected 17",
    ),
    "NaN theta": ("slope", set_array("theta", lambda a: a * np.nan), "array theta holds NaN"),
    "inf theta": ("slope", set_array("theta", lambda a: a + np.inf), "array theta holds NaN"),
    "negative theta diagonal": ("slope", set_array("theta", lambda a: -a), "negative diagonal"),
    "NaN beta": ("slope", set_array("beta", lambda a: a * np.nan), "array beta"),
    "inf random effect": ("slope", set_array("b0", lambda a: a + np.inf), "array b0"),
    "indefinite A11 level": ("sparse", set_array("A11", lambda a: -a), "A11 is not positive"),
    "indefinite condcov": ("slope", set_array("condcov0", _indefinite_2x2), "condcov0 is not pos"),
    "asymmetric condcov": ("slope", set_array("condcov0", lambda a: a + [[0, 1], [0, 0]]), "symm"),
    "indefinite vcov": ("slope", set_array("vcov_beta", lambda a: -a), "vcov_beta is not pos"),
    "asymmetric A22": ("slope", set_array("A22", _asymmetric), "A22 is not symmetric"),
    "no residual in A22": ("slope", set_array("A22", _no_residual), "not positive definite"),
    "sigma zero": ("slope", set_field("sigma", value=0.0), "model.sigma"),
    "sigma NaN": ("slope", set_field("sigma", value=float("nan")), "model.sigma"),
    "sigma a string": ("slope", set_field("sigma", value="25"), "model.sigma"),
    "nobs_given all rows": ("slope", set_field("nobs_given", value=180), "nobs_given"),
    "fewer rows than effects": ("slope", set_field("blocks", "n", value=2), "blocks.n"),
    "formula unreadable": (
        "slope",
        set_field("formula", value="Reaction ~ (Days |"),
        "model.formula fails the formula whitelist",
    ),
    "term not in formula": ("slope", set_field("terms", 0, "expr", value="1"), r"model.terms\[0\]"),
    "factors not in formula": (
        "slope",
        set_field("terms", 0, "factors", value=["Days"]),
        "disagree with the formula",
    ),
    "term columns repeat": ("slope", set_field("terms", 0, "columns", value=["a", "a"]), "repeats"),
    "too many columns": (
        "slope",
        set_field("terms", 0, "columns", value=list("abc")),
        "theta_blocks must add up",
    ),
    "huge term": (
        "slope",
        set_field("terms", 0, "columns", value=[str(i) for i in range(3000)]),
        "3000 columns",
    ),
    "too many parameters": (
        "slope",
        both(
            set_field("terms", 0, "columns", value=[str(i) for i in range(300)]),
            set_field("terms", 0, "theta_blocks", value=[300]),
        ),
        "45150 covariance",
    ),
    "theta blocks not the term's": (
        "slope",
        set_field("terms", 0, "theta_blocks", value=[1, 1]),
        "array 'theta'",  # two blocks of 1 declare 2 parameters, the file holds 3
    ),
    "negative scales": ("slope", set_field("terms", 0, "scales", value=[1.0, -1.0]), "scales"),
    "fixed names not the kept columns": (
        "slope",
        set_field("fixed_names", value=["a", "b", "c"]),
        "fixed_names",
    ),
    "dropped count": ("slope", set_field("dropped", value=["x"]), "model.dropped"),
    "not an object": ("slope", set_field("blocks", value=[1]), "model.blocks must be an object"),
    "weights not a column name": ("slope", set_field("weights", value=[1]), "model.weights must"),
    "an lmm relabelled glmm": ("slope", set_kind("glmm"), "model.nagq must be an integer"),
    # -- a GLMM's fields: family, link, nAGQ, trials, and the optimizer over theta and beta
    "glmm relabelled lmm": ("glmm", set_kind("lmm"), "model.std_sigma must be a number"),
    "glmm family unknown": ("glmm", set_field("family", value="gamma"), "unknown family"),
    "glmm family not text": ("glmm", set_field("family", value=1), "model.family must be a str"),
    "glmm link of another family": ("glmm", set_field("link", value="log"), "takes the links"),
    "glmm link missing": ("glmm", set_field("link", value=None), "model.link must be a string"),
    "glmm nAGQ a bool": ("glmm", set_field("nagq", value=True), "model.nagq must be an integer"),
    "glmm nAGQ too large": ("glmm", set_field("nagq", value=10**9), "model.nagq = 1000000000"),
    "glmm nAGQ 0, beta optimized": ("glmm", set_field("nagq", value=0), "'opt_start' is float64"),
    "glmm trials not a flag": ("glmm", set_field("trials", value=1), "model.trials must be true"),
    "glmm weights not text": ("glmm", set_field("weights", value=2.0), "model.weights must be"),
    "glmm NaN bound": ("glmm", set_array("opt_lower", lambda a: a * np.nan), "opt_lower holds NaN"),
    "glmm NaN mode": ("glmm", set_array("b0", lambda a: a * np.nan), "array b0 holds NaN"),
    "glmm indefinite A11": ("glmm", set_array("A11", lambda a: -a), "A11 is not positive"),
}


@pytest.mark.parametrize("case", CASES)
def test_inconsistent_model(sparse_model, slope_model, glmm_model, tmp_path, case):
    which, edit, match = CASES[case]
    source = {"sparse": sparse_model, "slope": slope_model, "glmm": glmm_model}[which]
    refused(crafted(source, tmp_path, edit), match)


def test_resealed_intact_glmm_loads(glmm_model, tmp_path):
    m = mfx.load(crafted(glmm_model, tmp_path, lambda c, d: None))
    assert isinstance(m, mfx.GeneralizedLinearMixedModel) and m.nagq == 1


# -- sizes: members, manifest, memory --------------------------------------------------------------
def test_extra_member_is_refused(slope_model, tmp_path):
    def edit(content: Content, doc: dict) -> None:
        content["arrays/extra.npy"] = npy(np.zeros(10))

    refused(crafted(slope_model, tmp_path, edit), r"unexpected \['arrays/extra.npy'\]")


def test_missing_member_is_refused(slope_model, tmp_path):
    refused(crafted(slope_model, tmp_path, lambda c, d: c.pop("arrays/b0.npy")), "missing")


def test_duplicate_member_is_refused(slope_model, tmp_path):
    path = tmp_path / "dup.mfx"
    content = members(slope_model)
    with zipfile.ZipFile(path, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name, blob in content.items():
            zf.writestr(name, blob)
        zf.writestr("arrays/beta.npy", npy(np.zeros(3)))
    refused(path, "members are not those")


def test_too_many_members(slope_model, tmp_path):
    def edit(content: Content, doc: dict) -> None:
        content.update({f"x/{i}": b"" for i in range(5000)})

    path = crafted(slope_model, tmp_path, edit)
    with zipfile.ZipFile(path) as zf:
        count = len(zf.namelist())
    assert count > MAX_MEMBERS
    refused(path, f"{count} members, too many")


def test_huge_manifest_is_refused_before_parsing(slope_model, tmp_path):
    def edit(content: Content, doc: dict) -> None:
        doc["model"]["padding"] = "x" * MAX_MANIFEST_BYTES

    refused(crafted(slope_model, tmp_path, edit), "manifest is .* bytes, over the 4194304")


def test_deeply_nested_manifest(slope_model, tmp_path):
    path = tmp_path / "nested.mfx"
    write(path, {MANIFEST: b"[" * 1_000_000 + b"]" * 1_000_000})
    refused(path, "malformed")


def test_oversized_levels_member(slope_model, tmp_path):
    def edit(content: Content, doc: dict) -> None:
        content[LEVELS] = content[LEVELS] + b" " * (2**20)

    refused(crafted(slope_model, tmp_path, edit), r"levels.json'\]\.bytes = \d+ is out of range")


def test_member_that_inflates_beyond_its_declared_size(slope_model, tmp_path):
    """A zip bomb: the manifest says 152 bytes, the member inflates to 100 MB."""
    content = members(slope_model)
    doc = manifest(reseal(content))
    path = tmp_path / "bomb.mfx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, blob in content.items():
            if name == "arrays/beta.npy":
                blob = blob + bytes(100 * 2**20)
            zf.writestr(name, blob if name != MANIFEST else json.dumps(doc).encode())
    refused(path, r"'arrays/beta.npy' holds 104857752 bytes, the manifest says 152")


def test_declared_model_larger_than_memory(slope_model, tmp_path):
    """A manifest may declare a huge model; load says so before reading a byte of it."""

    def edit(content: Content, doc: dict) -> None:
        doc["model"]["blocks"]["n"] = 10**13
        doc["model"]["terms"][0]["nlevels"] = 10**12

    path = tmp_path / "huge.mfx"
    content = members(slope_model)
    doc = manifest(reseal(content))
    edit(content, doc)
    doc["members"]["arrays/b0.npy"]["bytes"] = 16 * 10**12  # as a consistent file would say
    from mixedfx.modelfile import manifest_checksum

    doc["sha256"] = manifest_checksum(doc)
    write(path, {**content, MANIFEST: json.dumps(doc).encode()})
    refused(path, r"needs about \d+\.\d GiB, more than this machine's")


MEMORY_SCRIPT = """
import resource, sys
import mixedfx as mfx
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    mfx.load(sys.argv[1])
except mfx.ModelFileError as exc:
    print("refused", exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("grew_kb", after - before)
"""


def _extra_member(source: Path, path: Path) -> str:
    """A 1 MiB file with a checksummed extra member of 256 MiB of zeros (issue 13: 1.6 GiB)."""
    write(path, reseal(members(source)))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("arrays/extra.npy", "w", force_zip64=True) as out:
            for _ in range(256):
                out.write(bytes(2**20))  # ~250 KiB compressed
    return "arrays/extra.npy"


def _wide_term(source: Path, path: Path) -> str:
    """A 0.5 MiB manifest declaring a term of 60,000 columns (issue 13: 1.1 GiB)."""
    content = members(source)
    doc = manifest(content)
    doc["model"]["terms"][0]["columns"] = [f"x{i:05d}" for i in range(60_000)]
    write(path, reseal(content, doc))
    return "60000 columns"


def _many_terms(source: Path, path: Path) -> str:
    """A manifest declaring 1000 terms of a million levels each, with the arrays of one."""
    content = members(source)
    doc = manifest(content)
    term = {**doc["model"]["terms"][0], "nlevels": 10**6}
    doc["model"]["terms"] = [term] * 1000
    doc["model"]["blocks"]["rest"] = list(range(1, 1000))
    write(path, reseal(content, doc))
    return "members are not those"


@pytest.mark.parametrize("craft", [_extra_member, _wide_term, _many_terms])
def test_crafted_files_cost_no_memory(slope_model, tmp_path, craft):
    path = tmp_path / "crafted.mfx"
    message = craft(slope_model, path)
    assert path.stat().st_size < 2**20
    res = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "refused" in res.stdout and message in res.stdout, res.stdout
    grew_mb = int(res.stdout.split("grew_kb")[1]) / 1024
    assert grew_mb < 50, f"loading grew the process by {grew_mb:.0f} MB"
