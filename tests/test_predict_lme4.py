"""Every prediction mode against lme4 (tests/reference/make_predictions.R)."""

from __future__ import annotations

import json
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

REF = json.loads((Path(__file__).parent / "reference" / "lme4_predictions.json").read_text())
RE_VARIANTS = [(case, key) for case, v in REF.items() for key in v.get("re_forms", {})]


def fitted(case: str) -> mfx.LinearMixedModel:
    ref = REF[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.lmm(ref["formula"], mfx.datasets.load(ref["dataset"]), reml=ref["reml"])


def frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records)


def re_arg(form: str) -> str:
    return {"NULL": "all", "NA": "none"}.get(form, form)


@pytest.mark.parametrize(("case", "key"), RE_VARIANTS)
def test_re_variants_and_new_levels(case: str, key: str) -> None:
    ref = REF[case]
    m = fitted(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.NewLevelWarning)
        got = m.predict(frame(ref["newdata"]), re=re_arg(ref["re_forms"][key]))
    np.testing.assert_allclose(got, ref[key], rtol=1e-5)


@pytest.mark.parametrize(
    "case", ["sleepstudy_given_new", "sleepstudy_given_known", "penicillin_given"]
)
def test_given(case: str) -> None:
    ref = REF[case]
    m = fitted(case)
    given = frame(ref["given"])
    new = frame(ref["newdata"])
    # penicillin's given rows include samples that newdata lacks (lme4 uses them all the same)
    unused = case == "penicillin_given"
    with pytest.warns(mfx.GivenWarning, match="'sample'") if unused else nullcontext():
        pred = m.predict(new, given=given)
    np.testing.assert_allclose(pred, ref["pred_given"], rtol=1e-5)
    c = m.condition(given)
    group = c.spec.terms[0].group if case != "penicillin_given" else "plate"
    label = str(given[group].iloc[0])
    ranef = c.ranef[group]
    ranef.index = ranef.index.astype(str)
    want = ref["b_given"]
    got = ranef.loc[label, list(want)].to_numpy(dtype=float)
    np.testing.assert_allclose(got, list(want.values()), rtol=1e-4, atol=1e-5)
    if "b_sample" in ref:
        bs = ref["b_sample"]
        sample = c.ranef["sample"]
        sample.index = sample.index.astype(str)
        np.testing.assert_allclose(sample.loc[bs["levels"]].to_numpy(), bs["values"], rtol=1e-4)


@pytest.mark.parametrize("case", [c for c in REF if "se_confidence" in REF[c]])
def test_interval_standard_errors(case: str) -> None:
    ref = REF[case]
    m = fitted(case)
    new = frame(ref["newdata"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.NewLevelWarning)
        for interval, key in [("confidence", "se_confidence"), ("prediction", "se_prediction")]:
            out = m.predict(new, interval=interval)
            np.testing.assert_allclose(out["se"], ref[key], rtol=1e-4)
            np.testing.assert_allclose(out["fit"], ref["pred_all"], rtol=1e-5)
            out = m.predict(new, re="none", interval=interval)
            np.testing.assert_allclose(
                out["se"],
                ref["se_confidence_none"]
                if interval == "confidence"
                else ref["se_prediction_none"],
                rtol=1e-4,
            )


def test_interval_bounds_use_normal_quantiles() -> None:
    m = fitted("sleepstudy")
    out = m.predict(frame(REF["sleepstudy"]["newdata"]), interval="prediction", level=0.9)
    np.testing.assert_allclose(out["upper"] - out["fit"], 1.6448536269514722 * out["se"])
    np.testing.assert_allclose(out["fit"] - out["lower"], 1.6448536269514722 * out["se"])
