"""Saved GLMMs: every prediction mode, intervals and conditioning survive a round trip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from glmm_reference import fit, newdata, training
from mixedfx import modelfile

CASES = [
    "cbpp_prop_laplace",
    "cbpp_cbind_agq9",
    "poisson_crossed_offset",
    "poisson_offset_arg",
    "bernoulli_slope",
    "grouseticks_scaled",
]


@pytest.mark.parametrize("name", CASES)
def test_round_trip_keeps_every_prediction(name: str, tmp_path: Path) -> None:
    m = fit(name)
    m.save(tmp_path / "m.mfx")
    back = mfx.load(tmp_path / "m.mfx")
    assert isinstance(back, mfx.GeneralizedLinearMixedModel)
    assert (back.family, back.nagq, back.outcome) == (m.family, m.nagq, m.outcome)
    assert (back.objective, back.aic, back.bic, back.nobs) == (m.objective, m.aic, m.bic, m.nobs)
    nd = newdata(name)
    for kind in ("response", "link"):
        for re in ("all", "none"):
            np.testing.assert_array_equal(
                back.predict(nd, type=kind, re=re), m.predict(nd, type=kind, re=re)
            )
        for interval in ("confidence", "prediction"):
            pd.testing.assert_frame_equal(
                back.predict(nd, type=kind, interval=interval),
                m.predict(nd, type=kind, interval=interval),
            )
    pd.testing.assert_frame_equal(back.vcov, m.vcov)
    assert back.summary() == m.summary()


def test_loaded_model_conditions_like_the_fitted_one(tmp_path: Path) -> None:
    name = "cbpp_prop_laplace"
    m = fit(name)
    m.save(tmp_path / "m.mfx")
    back = mfx.load(tmp_path / "m.mfx")
    given = training(name).head(6).assign(herd="new")
    nd = pd.concat([newdata(name), newdata(name).head(1).assign(herd="new")], ignore_index=True)
    np.testing.assert_array_equal(back.predict(nd, given=given), m.predict(nd, given=given))
    with pytest.warns(mfx.GivenWarning, match=r"'herd': \['new'\]"):  # as for an LMM
        back.predict(newdata(name), given=given)
    m.condition(given).save(tmp_path / "c.mfx")
    c = mfx.load(tmp_path / "c.mfx")
    assert c.nobs_given == 6
    np.testing.assert_array_equal(
        c.predict(newdata(name)), back.condition(given).predict(newdata(name))
    )
    with pytest.raises(mfx.DataError, match="pass newdata"):
        back.predict()
    with pytest.raises(mfx.DataError, match="training rows"):
        back.fitted()


def _rewrite(path: Path, edit: dict, top: dict | None = None) -> None:
    """Edit the manifest's model section (``edit``) and its top level (``top``), checksummed."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    doc = json.loads(members[modelfile.MANIFEST])
    doc["model"].update(edit)
    doc.update(top or {})
    doc["sha256"] = modelfile.manifest_checksum(doc)
    members[modelfile.MANIFEST] = json.dumps(doc).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, blob in members.items():
            zf.writestr(n, blob)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"family": "gamma"}, "unknown family"),
        ({"link": "identity"}, "unknown link"),
        ({"link": "log"}, "takes the links"),
        ({"family": None}, "model.family must be a string"),
        ({"weights": 3}, "model.weights must be a string"),
        ({"trials": "yes"}, "model.trials must be true or false"),
        ({"nagq": -1}, "model.nagq"),
        ({"nagq": 26}, "model.nagq"),
        ({"nagq": 1.0}, "model.nagq must be an integer"),
        ({"nagq": 0}, r"'opt_start' is float64 \(5,\); the model needs float64 \(1,\)"),
    ],
)
def test_malformed_glmm_fields_are_refused(edit: dict, message: str, tmp_path: Path) -> None:
    fit("cbpp_prop_laplace").save(tmp_path / "m.mfx")
    _rewrite(tmp_path / "m.mfx", edit)
    with pytest.raises(mfx.ModelFileError, match=message):
        mfx.load(tmp_path / "m.mfx")


def test_nagq_above_1_needs_one_scalar_term(tmp_path: Path) -> None:
    fit("poisson_crossed_offset").save(tmp_path / "m.mfx")  # (1 | site) + (1 | month)
    _rewrite(tmp_path / "m.mfx", {"nagq": 5})
    with pytest.raises(mfx.ModelFileError, match="single scalar random-effects term"):
        mfx.load(tmp_path / "m.mfx")


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nlmm", "model kind 'nlmm' is not supported"),
        ("lmm", "model.std_sigma must be a number"),  # an LMM's fields are not there
    ],
)
def test_a_glmm_is_not_read_as_another_kind(kind: str, message: str, tmp_path: Path) -> None:
    fit("cbpp_prop_laplace").save(tmp_path / "m.mfx")
    _rewrite(tmp_path / "m.mfx", {}, top={"kind": kind})
    with pytest.raises(mfx.ModelFileError, match=message):
        mfx.load(tmp_path / "m.mfx")


def test_manifest_fields_of_a_glmm(tmp_path: Path) -> None:
    """The manifest names the kind, family, link, nAGQ and weights; offsets as for an LMM."""
    fit("poisson_offset_arg").save(tmp_path / "m.mfx")
    with zipfile.ZipFile(tmp_path / "m.mfx") as zf:
        doc = json.loads(zf.read(modelfile.MANIFEST))
    assert doc["kind"] == "glmm"
    d = doc["model"]
    assert (d["family"], d["link"], d["nagq"], d["weights"], d["trials"]) == (
        "poisson",
        "log",
        1,
        None,
        True,
    )
    assert d["offset_column"] == "logexp"
    assert "reml" not in d and "sigma" not in d
