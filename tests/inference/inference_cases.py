"""The lme4/lmerTest/pbkrtest inference references (tests/reference/lme4_inference.json)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pandas as pd

import mixedfx as mfx
from conftest import quiet_fit

REFERENCE = Path(__file__).parents[1] / "reference" / "lme4_inference.json"


@cache
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


def case_data(case: dict) -> pd.DataFrame:
    """The case's data: a bundled data set, or the records written by make_inference.R."""
    if case.get("dataset"):
        return mfx.datasets.load(case["dataset"])
    frame = pd.DataFrame(case["data"])
    for col, levels in case.get("factor_levels", {}).items():
        frame[col] = pd.Categorical(frame[col], categories=levels)
    return frame


_FITS: dict[str, mfx.LinearMixedModel] = {}


def fit(name: str) -> mfx.LinearMixedModel:
    """The mixedfx fit of ``fits[name]`` (cached)."""
    if name not in _FITS:
        case = reference()["fits"][name]
        _FITS[name] = quiet_fit(case["formula"], case_data(case), reml=case["reml"])
    return _FITS[name]
