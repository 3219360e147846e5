"""docs/modelfile.md describes the files mixedfx writes: every field, member, array and limit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import mixedfx as mfx
from mfxfile import members
from mixedfx import modelcheck, modelfile, modelzip

DOC = (Path(__file__).resolve().parents[1] / "docs" / "modelfile.md").read_text()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A model with two terms (one sparse-free rest term) and a categorical fixed effect."""
    pen = mfx.datasets.load("penicillin")
    pen["half"] = np.where(pen.index % 2 == 0, "a", "b")
    path = tmp_path_factory.mktemp("doc") / "model.mfx"
    mfx.lmm("diameter ~ half + (1 | plate) + (1 | sample)", pen).save(path)
    return path


def documented(name: str) -> bool:
    return f"`{name}`" in DOC or f"| `{name}` |" in DOC


def test_every_manifest_field_is_documented(saved):
    doc = json.loads(members(saved)[modelfile.MANIFEST])
    model = doc["model"]
    fields = [*doc, *model, *model["terms"][0], *model["blocks"], *model["optsummary"]]
    fields += list(json.loads(members(saved)[modelfile.LEVELS])[0])
    assert [f for f in fields if not documented(f)] == []


def test_every_glmm_field_is_documented(tmp_path):
    cbpp = mfx.datasets.load("cbpp")
    path = tmp_path / "glmm.mfx"
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    mfx.glmm(formula, cbpp, family="binomial").save(path)
    doc = json.loads(members(path)[modelfile.MANIFEST])
    assert doc["kind"] == "glmm" and '`"glmm"`' in DOC
    assert [f for f in doc["model"] if not documented(f)] == []


def test_every_member_and_array_is_documented(saved):
    names = [n.removeprefix("arrays/").removesuffix(".npy") for n in members(saved)]
    generic = [re.sub(r"^(b|condcov|std_b|std_moments)\d+$", r"\1<t>", n) for n in names]
    assert [n for n in generic if not documented(n) and n != "mixedfx.json"] == []


def test_limits_are_the_documented_ones():
    assert modelfile.MAX_MANIFEST_BYTES == 4 * 2**20 and "over 4 MiB" in DOC
    assert f"more than {modelfile.MAX_MEMBERS} members" in DOC
    assert f"more than {modelcheck.MAX_TERMS} random terms" in DOC
    assert f"more than {modelcheck.MAX_TERM_COLUMNS} columns" in DOC
    assert f"more than {modelcheck.MAX_THETA} covariance parameters" in DOC
    assert modelfile.MAX_LABEL_BYTES == 1024 and modelfile.LEVELS_SLACK == 4096
    assert "1 KiB per label on average (plus 4 KiB)" in DOC
    assert modelzip.MAX_NPY_HEADER == 4096 and "header is over 4 KiB" in DOC
    assert f"`version` | `{modelfile.VERSION}`" in DOC


def test_the_reading_example_runs(saved, monkeypatch):
    monkeypatch.chdir(saved.parent)
    block = re.search(r"## Reading a file without mixedfx\n\n```python\n(.*?)```", DOC, re.S)
    assert block is not None
    scope: dict = {}
    exec(block.group(1), scope)  # noqa: S102 - the documentation's own example
    m = mfx.load(saved)
    assert scope["fixef"] == dict(m.fixef)
    assert scope["ranef"] == m.ranef["plate"].to_dict(orient="index")
