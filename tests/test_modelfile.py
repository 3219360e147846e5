"""Saved files: load refuses every damaged or foreign file and runs no code from it.

Crafted files (consistent checksums, inconsistent model) are in
test_modelfile_crafted.py; the fuzz test in test_modelfile_fuzz.py.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mixedfx as mfx
from mfxfile import members, npy, reseal, write
from mixedfx.modelfile import LEVELS, MANIFEST, VERSION, manifest_checksum
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


def edit_manifest(path: Path, fn: Callable[[dict], None], reseal: bool = True) -> None:
    """Change the manifest; ``reseal`` recomputes its checksum, so a later check must act."""
    content = members(path)
    doc = json.loads(content[MANIFEST])
    fn(doc)
    if reseal:
        doc["sha256"] = manifest_checksum(doc)
    content[MANIFEST] = json.dumps(doc).encode()
    write(path, content)


def replace_array(path: Path, name: str, blob: bytes) -> None:
    """Swap an array member and make the manifest agree with it (size and hash)."""
    write(path, reseal({**members(path), f"arrays/{name}.npy": blob}))


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


def test_flipped_label_in_the_levels(saved):
    content = members(saved)
    levels = json.loads(content[LEVELS])
    levels[0]["keys"].reverse()
    content[LEVELS] = json.dumps(levels).encode()
    write(saved, content)
    refused(saved, "'levels.json' fails its checksum")


@pytest.mark.parametrize("name", ["beta", "theta", "A22", "b0"])
def test_flipped_byte_in_an_array(saved, name):
    content = members(saved)
    blob = bytearray(content[f"arrays/{name}.npy"])
    blob[-3] ^= 0x10  # inside the data, after the .npy header
    content[f"arrays/{name}.npy"] = bytes(blob)
    write(saved, content)
    refused(saved, f"'arrays/{name}.npy' fails its checksum")


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


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4, "5", None, True])
def test_older_or_malformed_format_version(saved, version):
    edit_manifest(saved, lambda d: d.__setitem__("version", version))
    refused(saved, f"format version {version!r} is not supported: this mixedfx reads version 5")


def test_newer_format_version_names_both(saved):
    edit_manifest(saved, lambda d: d.__setitem__("version", VERSION + 1))
    refused(saved, f"version {VERSION + 1} is not supported: .* reads version {VERSION}; upgrade")


@pytest.mark.parametrize("kind", ["nlmm", None, 3])
def test_unknown_model_kind(saved, kind):
    edit_manifest(saved, lambda d: d.__setitem__("kind", kind))
    refused(saved, f"model kind {kind!r} is not supported")


def test_an_lmm_is_not_read_as_a_glmm(saved):
    """kind "glmm" needs a GLMM's fields: an LMM's file relabelled has no nAGQ."""
    edit_manifest(saved, lambda d: d.__setitem__("kind", "glmm"))
    refused(saved, "model.nagq must be an integer, got None")


def test_wrong_format_name(saved):
    edit_manifest(saved, lambda d: d.__setitem__("format", "numpy-zip"))
    refused(saved, "wrong format name")


def test_declared_size_disagrees_with_the_member(saved):
    edit_manifest(saved, lambda d: d["members"]["arrays/beta.npy"].__setitem__("bytes", 100))
    refused(saved, r"'arrays/beta.npy' holds 152 bytes, the manifest says 100")


def test_array_data_disagrees_with_the_design(saved):
    """A well-formed array of the wrong size (hash and size updated) is refused."""
    replace_array(saved, "beta", npy(np.zeros(4)))
    refused(saved, r"array 'beta' is float64 \(4,\); the model needs float64 \(3,\)")


def test_npy_header_disagrees_with_its_data(saved):
    blob = npy(np.zeros(3))
    header_end = blob.index(b"\n") + 1
    bigger = blob[:header_end].replace(b"(3,)", b"(9,)") + blob[header_end:]
    replace_array(saved, "beta", bigger)
    refused(saved, "beta")


@pytest.mark.parametrize(
    "arr", [np.zeros(3, dtype=">f8"), np.zeros(3, dtype="f4"), np.zeros(3, dtype="i8")]
)
def test_array_of_another_dtype(saved, arr):
    replace_array(saved, "beta", npy(arr))
    refused(saved, r"array 'beta' is .*; the model needs float64 \(3,\)")


def test_fortran_ordered_array(saved):
    vcov = np.asfortranarray(np.eye(3))
    replace_array(saved, "vcov_beta", npy(vcov))
    refused(saved, "Fortran-ordered")


# -- foreign content: pickles, object arrays, other files ----------------------------------------
def test_pickled_object_array_is_refused_without_running_it(saved):
    arr = np.array([Payload(), 1.0], dtype=object)
    replace_array(saved, "beta", npy(arr, allow_pickle=True))
    refused(saved, "array 'beta' is object")
    assert not MARKER.exists()


def test_object_array_declared_as_float_is_refused(saved):
    arr = np.array([Payload(), 1.0, 2.0], dtype=object)
    replace_array(saved, "beta", npy(arr, allow_pickle=True))
    refused(saved, "beta")


def test_structured_array_is_refused(saved):
    arr = np.zeros(3, dtype=[("a", "f8"), ("b", "i8")])
    replace_array(saved, "beta", npy(arr))
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
    refused(saved, "members are not those of the model")


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
                "labels": [{"x": 1}],
                "ordered": False,
            },
            "not a string, number or boolean",
        ),
        (
            {
                "key": "Week",
                "type": "levels",
                "labels": ["a", "a"],
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
    refused(saved, "fixed_names are not the kept columns of the formula")


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


def test_load_save_reproduces_the_file(model, saved, tmp_path):
    """A loaded model saves to the same members (the formulaic state included)."""
    again = tmp_path / "again.mfx"
    mfx.load(saved).save(again)
    assert members(again) == members(saved)


def test_saves_do_not_depend_on_the_clock(model, tmp_path, monkeypatch):
    """Two saves of one model are byte-identical even when a clock tick falls between them.

    Zip entries carry a timestamp with 2-second resolution; without a fixed
    one, saves straddling a tick differ (seen as a flaky equality test).
    """
    model.save(tmp_path / "a.mfx")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 86_400 * 400 + 3)
    model.save(tmp_path / "b.mfx")
    assert (tmp_path / "a.mfx").read_bytes() == (tmp_path / "b.mfx").read_bytes()


def test_load_condition_save_load_round_trips_exactly(model, saved, tmp_path):
    """Load -> condition (new and known groups) -> save -> load: the same model, bit for bit."""
    data = model.data
    given_rows = pd.concat(
        [data.head(4).assign(Reaction=lambda f: f["Reaction"] + 5.0), data.tail(3)]
    ).assign(Subject=["new1"] * 4 + ["308"] * 3)
    conditioned = mfx.load(saved).condition(given_rows)
    path = tmp_path / "conditioned.mfx"
    conditioned.save(path)
    loaded = mfx.load(path)
    assert loaded.nobs_given == 7 and loaded.nobs == model.nobs
    assert list(loaded.ranef["Subject"].index) == list(conditioned.ranef["Subject"].index)
    new = data.assign(Subject=np.where(np.arange(len(data)) % 3 == 0, "new1", data["Subject"]))
    for kw in ({}, {"interval": "confidence"}, {"interval": "prediction", "re": "none"}):
        np.testing.assert_array_equal(
            np.asarray(loaded.predict(new, **kw)), np.asarray(conditioned.predict(new, **kw))
        )
    loaded.save(tmp_path / "again.mfx")
    assert members(tmp_path / "again.mfx") == members(path)


def test_save_after_condition_of_a_fit(model, tmp_path):
    given_rows = model.data.head(3).assign(Subject="new")
    conditioned = model.condition(given_rows)
    conditioned.save(tmp_path / "c.mfx")
    loaded = mfx.load(tmp_path / "c.mfx")
    new = model.data.head(5).assign(Subject="new")
    np.testing.assert_array_equal(
        loaded.predict(new, interval="prediction").to_numpy(),
        conditioned.predict(new, interval="prediction").to_numpy(),
    )
