"""The 50 random lme4 designs (tests/reference/make_random_designs.R): data and fits.

Shared by the tests of fits (test_fit_random_designs) and of labels
(test_labels_lme4); each design is fitted once per test session.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mixedfx as mfx

REFERENCE = Path(__file__).parent / "reference" / "lme4_random_designs.json"
DESIGNS = json.loads(REFERENCE.read_text())
TYPES = {"string": object, "integer": np.int64, "double": np.float64}
CAST = {"string": str, "integer": int, "double": float}


def frame(design: dict) -> pd.DataFrame:
    """The design's rows with the reference's column types (labels typed as in R)."""
    data = pd.DataFrame.from_records(design["data"])
    for column, kind in design["column_types"].items():
        if kind == "factor":
            data[column] = pd.Categorical(data[column], categories=design["factor_levels"][column])
    for column, kind in design["label_types"].items():
        data[column] = pd.Series(data[column].tolist(), dtype=TYPES[kind], index=data.index)
    return data


_FITS: dict[str, mfx.LinearMixedModel] = {}


def fit(name: str) -> mfx.LinearMixedModel:
    if name not in _FITS:
        design = DESIGNS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.MixedFXWarning)  # singular fits, as lme4's
            _FITS[name] = mfx.lmm(design["formula"], frame(design), reml=design["reml"])
    return _FITS[name]


def keys(design: dict, group: str) -> list:
    """lme4's levels of a group as typed labels (tuples for an interaction such as "b:a")."""
    casts = [CAST[design["label_types"][f]] for f in group.split(":")]
    values = design["level_values"][group]
    if len(casts) == 1:
        return [casts[0](v) for v in values]
    return [tuple(c(v) for c, v in zip(casts, pair, strict=True)) for pair in values]
