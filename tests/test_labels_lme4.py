"""Grouping labels against lme4 (tests/reference/make_random_designs.R).

The 50 random designs label their grouping columns with integers, doubles or
strings drawn from a pool of look-alikes ("007", "7", "07", " 7", "7 ",
"1.0", "1", "A", "a", "1e3", "NA", "None", ...): lme4 keeps every distinct
label a level of its own, and so must mixedfx, with the same numbers.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

REFERENCE = Path(__file__).parent / "reference" / "lme4_random_designs.json"
DESIGNS = json.loads(REFERENCE.read_text())
TYPES = {"string": object, "integer": np.int64, "double": np.float64}
CAST = {"string": str, "integer": int, "double": float}
STRING_LABELS = sorted(k for k, d in DESIGNS.items() if "string" in d["label_types"].values())
# the numbers of the designs whose labels are strings, lme4 converged and the fit is
# regular; templates about something else (shifted or scaled columns, factor terms'
# column names) are left to the tests of those features
PLAIN = {
    "uncorrelated",
    "nested",
    "crossed",
    "crossed_slope",
    "two_slopes",
    "slope",
    "fixed_interaction",
}
PLAIN.add("intercept_only")
WELL_POSED = [
    k
    for k in STRING_LABELS
    if DESIGNS[k]["converged"] and not DESIGNS[k]["singular"] and DESIGNS[k]["template"] in PLAIN
]


def frame(design: dict) -> pd.DataFrame:
    data = pd.DataFrame.from_records(design["data"])
    for column, kind in design["column_types"].items():
        if kind == "factor":
            data[column] = pd.Categorical(data[column], categories=design["factor_levels"][column])
    for column, kind in design["label_types"].items():
        data[column] = pd.Series(data[column].tolist(), dtype=TYPES[kind], index=data.index)
    return data


def fit(name: str) -> mfx.LinearMixedModel:
    design = DESIGNS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.MixedFXWarning)  # singular fits, as lme4's
        return mfx.lmm(design["formula"], frame(design), reml=design["reml"])


def keys(design: dict, group: str) -> list:
    """lme4's levels of a group as typed labels (tuples for an interaction such as "b:a")."""
    casts = [CAST[design["label_types"][f]] for f in group.split(":")]
    values = design["level_values"][group]
    if len(casts) == 1:
        return [casts[0](v) for v in values]
    return [tuple(c(v) for c, v in zip(casts, pair, strict=True)) for pair in values]


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_levels_are_lme4s_labels(name: str) -> None:
    design, m = DESIGNS[name], fit(name)
    for group in design["level_values"]:
        ours = m.ranef[group].index.tolist()
        assert len(ours) == design["ngrps"][group]
        assert sorted(map(repr, ours)) == sorted(map(repr, keys(design, group)))


@pytest.mark.parametrize("name", WELL_POSED)
def test_look_alike_labels_give_lme4s_numbers(name: str) -> None:
    design, m = DESIGNS[name], fit(name)
    assert m.objective == pytest.approx(design["objective"], rel=1e-6)
    for group in design["level_values"]:
        ref = design["ranef"][group]
        expected = np.asarray(ref["values"], dtype=float)
        got = m.ranef[group].loc[keys(design, group), ref["terms"]].to_numpy()
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got, expected, atol=1e-4 * scale)
