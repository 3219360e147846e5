"""The lme4/lmerTest/pbkrtest inference references (tests/reference/lme4_inference.json)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
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


def at_reference(name: str) -> mfx.LinearMixedModel:
    """The mixedfx fit moved to lme4's theta and sigma (beta solved again).

    lme4's optimizer stops ~1e-5 from the optimum in theta, and df and
    p-values are that sensitive; comparing at lme4's own parameters tests
    the method, not the optimizer.
    """
    from mixedfx.inference.uncertainty import at_parameters

    case = reference()["fits"][name]
    return at_parameters(fit(name), np.array(list(case["theta"].values())), case["sigma"])


def values(xs: list) -> np.ndarray:
    """JSON numbers with null as NaN."""
    return np.array([np.nan if v is None else v for v in xs], dtype=float)
