"""Every fitted number against lme4 (tests/reference/make_reference.R)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import fit_case, load_reference
from mixedfx.frame.levels import display

CASES = sorted(load_reference())


SMALL = [c for c in CASES if c != "insteval_ml"]


@pytest.mark.parametrize("name", CASES)
def test_objective(name: str, reference: dict) -> None:
    m, ref = fit_case(name), reference[name]
    assert m.objective == pytest.approx(ref["objective"], rel=1e-6)
    assert m.loglik == pytest.approx(ref["loglik"], rel=1e-6)
    assert m.aic == pytest.approx(ref["aic"], rel=1e-6)
    assert m.bic == pytest.approx(ref["bic"], rel=1e-6)
    assert m.nobs == ref["nobs"]


@pytest.mark.parametrize("name", CASES)
def test_theta_sigma_fixef(name: str, reference: dict) -> None:
    m, ref = fit_case(name), reference[name]
    names = m.spec.theta_names()
    assert names == ref["theta_order"]
    np.testing.assert_allclose(m.theta, [ref["theta"][k] for k in names], atol=1e-4, rtol=1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    assert list(m.fixef.index) == ref["fixef_order"]  # lme4's names, as R deparses them
    np.testing.assert_allclose(
        m.fixef.to_numpy(),
        [ref["fixef"][k] for k in ref["fixef_order"]],
        rtol=1e-4,
        atol=1e-4 * np.abs(m.fixef).max(),
    )
    np.testing.assert_allclose(
        m.vcov.to_numpy(), np.array(ref["vcov"]), rtol=1e-3, atol=1e-6 * np.abs(ref["vcov"]).max()
    )
    assert m.singular == ref["singular"]


@pytest.mark.parametrize("name", CASES)
def test_ranef_and_condvar(name: str, reference: dict) -> None:
    m, ref = fit_case(name), reference[name]
    ranef = m.ranef
    condvar = m.ranef_condvar
    assert sorted(ranef) == sorted(ref["ranef"])
    for group, r in ref["ranef"].items():
        ours = ranef[group]
        expected = pd.DataFrame(r["values"], index=r["levels"], columns=r["terms"])
        ours.index = pd.Index([display(k) for k in ours.index])  # lme4's "a:b" names
        assert list(ours.columns) == r["terms"]
        got = ours.loc[expected.index]
        scale = max(1.0, float(np.abs(expected.to_numpy()).max()))
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-4 * scale)
        layout = ref["condvar_layout"][group]
        cv = condvar[group]
        cv.index = pd.Index([display(k) for k in cv.index])
        for j, term in enumerate(r["terms"]):
            if layout == "array":
                want = np.array([lvl[j][j] for lvl in ref["condvar"][group]])
            else:
                want = np.array([lvl[0][0] for lvl in ref["condvar"][group][term]])
            got_cv = cv.loc[expected.index, term].to_numpy()
            np.testing.assert_allclose(got_cv, want, rtol=1e-3, atol=1e-6 * want.max())


@pytest.mark.parametrize("name", CASES)
def test_fitted_and_residuals(name: str, reference: dict) -> None:
    m, ref = fit_case(name), reference[name]
    want = np.array(ref["fitted"] if "fitted" in ref else ref["fitted_head"])
    got = m.fitted()[: len(want)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(m.fitted() + m.residuals(), m.response_values)


@pytest.mark.parametrize("name", SMALL)
def test_varcorr(name: str, reference: dict) -> None:
    m, ref = fit_case(name), reference[name]
    vc = m.varcorr
    ours_var = vc[vc["term2"].isna()]["variance"].to_numpy()
    theirs = [r["vcov"] for r in ref["varcorr"] if r["var2"] is None]
    np.testing.assert_allclose(ours_var, theirs, rtol=1e-3)
