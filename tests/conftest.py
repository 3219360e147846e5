"""Shared fixtures: lme4 reference values and fitted models, fitted once per session."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
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


# -- a small data set for input checks ----------------------------------------------------
def frame(n_groups: int = 6, size: int = 10, seed: int = 0) -> pd.DataFrame:
    """``y ~ x + (1 | g)`` data: ``n_groups`` string labels ``s0, s1, ...`` of ``size`` rows."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    y = 1.0 + 0.5 * x + rng.normal(size=n_groups)[g] + rng.normal(size=len(g))
    return pd.DataFrame({"y": y, "x": x, "g": [f"s{k}" for k in g]})


def quiet_fit(formula: str, data: pd.DataFrame, **kw: object) -> mfx.LinearMixedModel:
    """:func:`mixedfx.lmm` without the SingularFitWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.lmm(formula, data, **kw)  # type: ignore[arg-type]
