"""Shared fixtures: lme4 reference values and fitted models, fitted once per session."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import mixedfx as mfx

REFERENCE = Path(__file__).parent / "reference" / "lme4_fits.json"


def load_reference() -> dict:
    return json.loads(REFERENCE.read_text())


_FITS: dict[str, mfx.LinearMixedModel] = {}


def fit_case(name: str) -> mfx.LinearMixedModel:
    """Fit a reference case with mixedfx (cached for the session)."""
    if name not in _FITS:
        case = load_reference()[name]
        data = mfx.datasets.load(case["dataset"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.SingularFitWarning)
            _FITS[name] = mfx.lmm(case["formula"], data, reml=case["reml"])
    return _FITS[name]


@pytest.fixture(scope="session")
def reference() -> dict:
    return load_reference()
