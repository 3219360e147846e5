"""Issue 5, saved files: load refuses every damaged or foreign file and runs no code from it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mixedfx.modelfile import MANIFEST, VERSION, manifest_checksum
from strategies import datasets

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"mixedfx-pwned-{os.getpid()}"


class Payload:
    """Unpickling this would create MARKER: the proof that code from the file ran."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(MARKER), "w"))


@pytest.fixture(scope="module")
def model() -> mfx.LinearMixedModel:
    sleep = mfx.datasets.load("sleepstudy")
    sleep["Week"] = np.where(sleep["Days"] < 5, "first", "second")  # learned levels to save
    return mfx.lmm("Reaction ~ Days + Week + (Days | Subject)", sleep)


@pytest.fixture()
def saved(model, tmp_path) -> Path:
    path = tmp_path / "m.mfx"
    model.save(path)
    return path


@pytest.fixture(autouse=True)
def no_marker():
    MARKER.unlink(missing_ok=True)
    yield
    assert not MARKER.exists(), "code from a model file ran"


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write(path: Path, content: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, blob in content.items():
            zf.writestr(name, blob)


def edit_manifest(path: Path, fn: Callable[[dict], None], reseal: bool = True) -> None:
    """Change the manifest; ``reseal`` recomputes its checksum, so a later check must act."""
    content = members(path)
    doc = json.loads(content[MANIFEST])
    fn(doc)
    if reseal:
        doc["sha256"] = manifest_checksum(doc)
    content[MANIFEST] = json.dumps(doc).encode()
    write(path, content)


def replace_array(path: Path, name: str, blob: bytes, dtype: str, shape: list[int]) -> None:
    """Swap an array member and make the manifest agree with it (hash, dtype, shape)."""
    content = members(path)
    content[f"arrays/{name}.npy"] = blob
    doc = json.loads(content[MANIFEST])
    doc["arrays"][name] = {
        "dtype": dtype,
        "shape": shape,
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    doc["sha256"] = manifest_checksum(doc)
    content[MANIFEST] = json.dumps(doc).encode()
    write(path, content)


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def refused(path: Path, match: str | None = None) -> None:
    with pytest.raises(mfx.ModelFileError, match=match):
        mfx.load(path)


# -- the intact file loads ----------------------------------------------------------------------
def test_intact_file_loads(model, saved):
    loaded = mfx.load(saved)
    np.testing.assert_array_equal(loaded.predict(model.data), model.predict())
    assert json.loads(members(saved)[MANIFEST])["version"] == VERSION


# -- damaged files --------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0, 10, 100, 0.25, 0.5, 0.9, -1])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    n = keep if isinstance(keep, int) and keep >= 0 else len(data) - 1
    if isinstance(keep, float):
        n = int(len(data) * keep)
    saved.write_bytes(data[:n])
    refused(saved)


def test_flipped_byte_in_the_json(saved):
    """A changed number in the manifest (valid JSON, valid zip) fails the manifest checksum."""
    content = members(saved)
    text = content[MANIFEST].decode()
    at = text.index('"sigma": ') + len('"sigma": ') + 1  # a digit of sigma
    flipped = "1" if text[at] != "1" else "2"
    content[MANIFEST] = (text[:at] + flipped + text[at + 1 :]).encode()
    write(saved, content)
    refused(saved, "manifest fails its checksum")


def test_flipped_label_in_the_json(saved):
    edit_manifest(saved, lambda d: d["model"]["terms"][0]["keys"].reverse(), reseal=False)
    refused(saved, "manifest fails its checksum")


@pytest.mark.parametrize("name", ["beta", "theta", "A22", "b0"])
def test_flipped_byte_in_an_array(saved, name):
    content = members(saved)
    blob = bytearray(content[f"arrays/{name}.npy"])
    blob[-3] ^= 0x10  # inside the data, after the .npy header
    content[f"arrays/{name}.npy"] = bytes(blob)
    write(saved, content)
    refused(saved, f"array '{name}' fails its checksum")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_flipped_bit_is_refused_or_harmless(model, tmp_path_factory, data):
    """Flip one bit anywhere in the raw file: an error, or (zip metadata) the very same model."""
    path = tmp_path_factory.mktemp("flip") / "m.mfx"
    model.save(path)
    raw = bytearray(path.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    path.write_bytes(bytes(raw))
    try:
        loaded = mfx.load(path)
    except mfx.ModelFileError:
        return
    np.testing.assert_array_equal(loaded.predict(model.data), model.predict())
    np.testing.assert_array_equal(
        loaded.predict(model.data, interval="prediction").to_numpy(),
        model.predict(interval="prediction").to_numpy(),
    )


@pytest.mark.parametrize("version", [0, 1, VERSION + 1, "2", None])
def test_wrong_format_version(saved, version):
    edit_manifest(saved, lambda d: d.__setitem__("version", version))
    refused(saved, "format version .* is not supported")


def test_wrong_format_name(saved):
    edit_manifest(saved, lambda d: d.__setitem__("format", "numpy-zip"))
    refused(saved, "wrong format name")


def test_declared_shape_disagrees_with_data(saved):
    edit_manifest(saved, lambda d: d["arrays"]["beta"].__setitem__("shape", [4]))
    refused(saved, r"array 'beta' has shape \(3,\), declared \(4,\)")


def test_array_data_disagrees_with_the_design(saved):
    """A well-formed array of the wrong size (hash and declared shape updated) is refused."""
    replace_array(saved, "beta", npy(np.zeros(4)), "float64", [4])
    refused(saved, "inconsistent: fixed effects")


def test_npy_header_disagrees_with_its_data(saved):
    blob = npy(np.zeros(3))
    header_end = blob.index(b"\n") + 1
    bigger = blob[:header_end].replace(b"(3,)", b"(9,)") + blob[header_end:]
    replace_array(saved, "beta", bigger, "float64", [9])
    refused(saved, "beta")


# -- foreign content: pickles, object arrays, other files ----------------------------------------
def test_pickled_object_array_is_refused_without_running_it(saved):
    arr = np.array([Payload(), 1.0], dtype=object)
    replace_array(saved, "beta", npy(arr, allow_pickle=True), "object", [2])
    refused(saved, "cannot be read safely")
    assert not MARKER.exists()


def test_object_array_declared_as_float_is_refused(saved):
    arr = np.array([Payload(), 1.0, 2.0], dtype=object)
    replace_array(saved, "beta", npy(arr, allow_pickle=True), "float64", [3])
    refused(saved, "beta")


def test_structured_array_is_refused(saved):
    arr = np.zeros(3, dtype=[("a", "f8"), ("b", "i8")])
    replace_array(saved, "beta", npy(arr), str(arr.dtype), [3])
    refused(saved, "beta")


def test_pickle_as_the_manifest(saved):
    content = members(saved)
    content[MANIFEST] = pickle.dumps(Payload())
    write(saved, content)
    refused(saved)


def test_extra_pickle_member(saved):
    content = members(saved)
    content["arrays/payload.pkl"] = pickle.dumps(Payload())
    write(saved, content)
    refused(saved, "members do not match")


def test_whole_file_is_a_pickle(tmp_path):
    path = tmp_path / "m.mfx"
    path.write_bytes(pickle.dumps(Payload()))
    refused(path, "cannot read model file")


def test_unknown_type_in_the_learned_state(saved):
    def inject(doc: dict) -> None:
        doc["model"]["states"][0] = {
            "key": "Week",
            "type": "os.system",
            "command": f"touch {MARKER}",
        }

    edit_manifest(saved, inject)
    refused(saved, "learned state of 'Week' is malformed")


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (
            {
                "key": "Week",
                "type": "levels",
                "keys": ["a"],
                "labels": [{"x": 1}],
                "ordered": False,
            },
            "not a string, number or boolean",
        ),
        (
            {
                "key": "Week",
                "type": "levels",
                "keys": ["a", "a"],
                "labels": [1, 2],
                "ordered": False,
            },
            "distinct",
        ),
        ({"key": "Week", "type": "scale", "center": 1.0, "scale": 2.0}, "another"),
        ({"key": "nothing(x)", "type": "scale", "center": 1.0, "scale": 2.0}, "formula lacks"),
        ({"key": "Days", "type": "poly", "alpha": [1.0], "norm2": [1.0, 0.0, 1.0]}, "norm"),
        ({"key": "Days", "type": "poly", "alpha": [1.0], "norm2": [1.0, 9.0, 1.0]}, "another"),
        ({"key": "Week", "type": "scale", "center": None, "scale": -1.0}, "not positive"),
    ],
)
def test_malformed_learned_state(saved, state, message):
    edit_manifest(saved, lambda doc: doc["model"]["states"].__setitem__(0, state))
    refused(saved, message)


@pytest.mark.parametrize(
    "formula",
    [
        "Reaction ~ I(Days + 0*__import__('os').system('touch MARKER')) + (Days | Subject)",
        "Reaction ~ os.system(Days) + (Days | Subject)",
        "Reaction ~ Days[0] + (Days | Subject)",
        "Reaction ~ Days$real + (Days | Subject)",
    ],
)
def test_formula_failing_the_whitelist(saved, formula):
    """The formula is data: re-parsed at load, never evaluated by Python; refused."""

    def inject(doc: dict) -> None:
        doc["model"]["formula"] = formula.replace("MARKER", str(MARKER))

    edit_manifest(saved, inject)
    refused(saved, "formula fails the formula whitelist")


def test_formula_that_disagrees_with_the_design(saved):
    def inject(doc: dict) -> None:
        doc["model"]["formula"] = "Reaction ~ log(Days + 1) + Week + (Days | Subject)"

    edit_manifest(saved, inject)
    refused(saved, "names disagree with its formula")


def test_a_directory(tmp_path):
    refused(tmp_path, "is a directory")


def test_a_missing_path(tmp_path):
    refused(tmp_path / "nothing.mfx", "does not exist")


@pytest.mark.parametrize(
    "content", [b"", b"formula,sigma\ny ~ x,1\n", b"PK\x03\x04 not really a zip", b"\x00" * 64]
)
def test_a_file_that_is_not_a_zip(tmp_path, content):
    path = tmp_path / "m.mfx"
    path.write_bytes(content)
    refused(path, "cannot read model file")


def test_a_zip_without_the_manifest(tmp_path):
    path = tmp_path / "m.mfx"
    write(path, {"data.csv": b"a,b\n1,2\n"})
    refused(path, "no manifest")


def test_manifest_that_is_not_an_object(saved):
    content = members(saved)
    content[MANIFEST] = b"[1, 2, 3]"
    write(saved, content)
    refused(saved, "wrong format name")


# -- round trip ----------------------------------------------------------------------------------
def all_modes(m: mfx.LinearMixedModel, data: pd.DataFrame, formula: str) -> list[np.ndarray]:
    new = data.copy()
    new.loc[new.index[::4], "g"] = "never-seen"
    given_rows = data.head(3).assign(y=lambda f: f["y"] + 1.0)
    subset = "(1 | g)"
    out = []
    for kw in (
        {},
        {"re": "none"},
        {"re": subset},
        {"new_levels": "nan"},
        {"given": given_rows},
        {"interval": "confidence"},
        {"interval": "prediction", "re": subset},
        {"interval": "prediction", "given": given_rows, "level": 0.8},
    ):
        out.append(np.asarray(m.predict(new, **kw)))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_round_trip_predictions_are_bit_identical(tmp_path_factory, case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm(case["formula"], case["data"], reml=case["reml"])
    path = tmp_path_factory.mktemp("rt") / "m.mfx"
    m.save(path)
    loaded = mfx.load(path)
    assert loaded.objective == m.objective and loaded.singular == m.singular
    np.testing.assert_array_equal(loaded.theta, m.theta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.MixedFXWarning)
        before = all_modes(m, case["data"], case["formula"])
        after = all_modes(loaded, case["data"], case["formula"])
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
