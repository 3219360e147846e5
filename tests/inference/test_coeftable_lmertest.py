"""Satterthwaite and Kenward-Roger tables against lmerTest and pbkrtest."""

from __future__ import annotations

import numpy as np
import pytest
from inference_cases import at_reference, fit, reference

FITS = list(reference()["fits"])
REML_FITS = [n for n in FITS if reference()["fits"][n]["reml"]]


@pytest.mark.parametrize("name", FITS)
def test_satterthwaite_at_lme4_parameters(name: str) -> None:
    # The same deviance, Hessian and Jacobian as lmerTest at the same (theta, sigma):
    # numDeriv's Richardson differences agree with ours to ~1e-8 relative.
    m = at_reference(name)
    sat = reference()["fits"][name]["satterthwaite"]
    table = m.coef_table()
    assert list(table.index) == sat["terms"]
    np.testing.assert_allclose(table["estimate"], sat["estimate"], rtol=1e-7)
    np.testing.assert_allclose(table["se"], sat["se"], rtol=1e-7)
    # At a boundary (theta_3 = 0 in the singular fit) the deviance is not smooth
    # across the bound and the differences depend on the steps: 1e-6 there.
    rtol = 1e-5 if reference()["fits"][name]["singular"] else 1e-7
    np.testing.assert_allclose(table["df"], sat["df"], rtol=rtol)
    np.testing.assert_allclose(table["t"], sat["t"], rtol=1e-7)
    np.testing.assert_allclose(table["p"], sat["p"], rtol=10 * rtol)


@pytest.mark.parametrize("name", FITS)
def test_satterthwaite_of_own_fit(name: str) -> None:
    # Our theta is the optimum to ~1e-10; lme4's stops up to 7e-5 away (the
    # singular fit), which moves df by up to ~7e-5 relative.
    sat = reference()["fits"][name]["satterthwaite"]
    table = fit(name).coef_table("satterthwaite")
    np.testing.assert_allclose(table["df"], sat["df"], rtol=2e-4)
    np.testing.assert_allclose(table["p"], sat["p"], rtol=5e-3)


@pytest.mark.parametrize("name", REML_FITS)
def test_kenward_roger_matches_pbkrtest(name: str) -> None:
    m = at_reference(name)
    ref = reference()["fits"][name]["pbkrtest"]
    table = m.coef_table("kenward-roger")
    # the same closed forms at the same parameters: agreement to rounding (seen: 2e-14)
    np.testing.assert_allclose(table["se"], ref["se"], rtol=1e-10)
    np.testing.assert_allclose(table["df"], ref["df"], rtol=1e-10)
    np.testing.assert_allclose(table["p"], ref["p"], rtol=1e-8)
    from mixedfx.inference.kenward_roger import kenward_roger

    vadj = np.array(ref["vcov_adj"])
    np.testing.assert_allclose(
        kenward_roger(m).phi_adj, vadj, rtol=0, atol=1e-10 * np.abs(vadj).max()
    )


def test_kenward_roger_refuses_ml() -> None:
    with pytest.raises(ValueError, match="REML"):
        fit("unbalanced_ml").coef_table("kenward-roger")


def test_no_ddf_is_normal() -> None:
    table = fit("sleepstudy_reml").coef_table("none")
    assert np.isinf(table["df"]).all()
    from scipy.stats import norm

    np.testing.assert_allclose(table["p"], 2 * norm.sf(np.abs(table["t"])), rtol=1e-12)


def test_unknown_ddf() -> None:
    with pytest.raises(ValueError, match="ddf"):
        fit("sleepstudy_reml").coef_table("containment")


def test_conditioned_model_is_refused() -> None:
    import mixedfx as mfx

    m = fit("sleepstudy_reml")
    given = m.data.head(3).assign(Subject="new")
    with pytest.raises(mfx.DataError, match="condition"):
        m.condition(given).coef_table()
