"""Grouping labels against lme4 (tests/reference/make_random_designs.R).

The 50 random designs label their grouping columns with integers, doubles or
strings drawn from a pool of look-alikes ("007", "7", "07", " 7", "7 ",
"1.0", "1", "A", "a", "1e3", "NA", "None", ...): lme4 keeps every distinct
label a level of its own, and so must mixedfx, with the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from random_designs import DESIGNS, fit, keys

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
