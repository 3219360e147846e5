"""Prior weights for the linear mixed model, as lmer(weights=): lme4's numbers and the edges."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.frame import design as design_mod

REF = json.loads((Path(__file__).parent / "reference" / "lme4_glmm.json").read_text())
CASES = {"lmer_weights_reml": True, "lmer_weights_ml": False}


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mfx.datasets.load("sleepstudy").assign(w=lambda d: 1.0 + d.Days % 3)


def weighted(sleep: pd.DataFrame, reml: bool) -> mfx.LinearMixedModel:
    return mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep, reml=reml, weights="w")


@pytest.mark.parametrize(("name", "reml"), CASES.items())
def test_weighted_fit_matches_lmer(sleep: pd.DataFrame, name: str, reml: bool) -> None:
    m, ref = weighted(sleep, reml), REF[name]
    assert m.objective == pytest.approx(ref["objective"], rel=1e-9)
    np.testing.assert_allclose(m.theta, [ref["theta"][k] for k in ref["theta_order"]], atol=1e-4)
    np.testing.assert_allclose(m.beta, [ref["fixef"][k] for k in ref["fixef_order"]], rtol=1e-6)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-5)
    np.testing.assert_allclose(m.fitted(), ref["fitted"], rtol=1e-5)
    nd = pd.DataFrame(ref["newdata"])
    forms = {"NULL": "all", "NA": "none"}
    for key, text in ref["re_forms"].items():
        want = np.array(ref["pred"]["link"][key])
        got = m.predict(nd, re=forms.get(text, text.lstrip("~")))
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_unit_weights_are_no_weights(sleep: pd.DataFrame) -> None:
    plain = mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)
    ones = mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep.assign(w=1.0), weights="w")
    assert ones.objective == pytest.approx(plain.objective, rel=1e-12)
    np.testing.assert_allclose(ones.theta, plain.theta, rtol=1e-8)


def test_scaling_the_weights_scales_sigma_only(sleep: pd.DataFrame) -> None:
    """w -> c w: the same fit with sigma * sqrt(c) (weights are relative precisions)."""
    a = weighted(sleep, True)
    b = mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep.assign(w=sleep.w * 4), weights="w")
    np.testing.assert_allclose(b.theta * b.sigma, a.theta * a.sigma, rtol=1e-5)
    assert b.sigma == pytest.approx(a.sigma * 2, rel=1e-6)
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-7)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan])
def test_bad_weights_name_the_rows(sleep: pd.DataFrame, bad: float) -> None:
    df = sleep.copy()
    df.loc[7, "w"] = bad
    with pytest.raises(mfx.DataError, match=r"'w'.*\[7\]|\[7\].*'w'|'w'"):
        mfx.lmm("Reaction ~ Days + (Days | Subject)", df, weights="w")


def test_given_rows_of_a_weighted_model_need_their_weights(
    sleep: pd.DataFrame, tmp_path: Path
) -> None:
    m = weighted(sleep, True)
    given = pd.DataFrame(
        {"Subject": ["999"] * 3, "Days": [0.0, 1.0, 2.0], "Reaction": [280, 290, 310]}
    )
    with pytest.raises(mfx.DataError, match="'w'"):
        m.condition(given)
    heavy = m.condition(given.assign(w=100.0)).ranef["Subject"].loc["999"]
    light = m.condition(given.assign(w=0.01)).ranef["Subject"].loc["999"]
    assert abs(light.iloc[0]) < abs(heavy.iloc[0])  # light rows shrink to the population
    m.save(tmp_path / "m.mfx")
    back = mfx.load(tmp_path / "m.mfx")
    assert back.weights == "w"
    np.testing.assert_array_equal(
        back.condition(given.assign(w=2.0)).b[0], m.condition(given.assign(w=2.0)).b[0]
    )


@pytest.mark.parametrize("name", ["lmer_offset_formula_ml", "lmer_offset_arg_ml"])
def test_offset_fit_matches_lmer(sleep: pd.DataFrame, name: str) -> None:
    """lmer with an offset (ML): in the formula, or lmer(offset = 0.5 * Days) as an array.

    lme4's predict(newdata) drops an offset= argument (the reference's "pred");
    mixedfx always adds it, as lme4's fitted() does ("pred_with_offset", which adds
    0.5 * Days to lme4's predictions). Tolerances as for the weighted fits above.
    """
    ref = REF[name]
    formula = ref["formula"]
    if ref["offset_arg"] is None:
        m = mfx.lmm(formula, sleep, reml=False)
    else:
        assert ref["offset_arg"] == "0.5 * Days"
        m = mfx.lmm(formula, sleep, reml=False, offset=0.5 * sleep["Days"].to_numpy())
    assert m.objective == pytest.approx(ref["objective"], rel=1e-9)
    np.testing.assert_allclose(m.theta, [ref["theta"][k] for k in ref["theta_order"]], atol=1e-4)
    np.testing.assert_allclose(m.beta, [ref["fixef"][k] for k in ref["fixef_order"]], rtol=1e-6)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-5)
    np.testing.assert_allclose(m.fitted(), ref["fitted"], rtol=1e-5)
    nd = pd.DataFrame(ref["newdata"])
    if ref["offset_arg"] is not None:
        nd[design_mod.OFFSET_COLUMN] = 0.5 * nd["Days"]
    pred = ref["pred_with_offset"] if ref.get("offset_dropped_by_predict") else ref["pred"]
    forms = {"NULL": "all", "NA": "none"}
    for key, text in ref["re_forms"].items():
        want = np.array(pred["link"][key])
        np.testing.assert_allclose(
            m.predict(nd, re=forms.get(text, text.lstrip("~"))), want, rtol=1e-5
        )
