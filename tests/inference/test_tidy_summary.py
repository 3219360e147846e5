"""tidy, glance and the summary's Satterthwaite columns."""

from __future__ import annotations

import numpy as np
from inference_cases import fit


def test_tidy() -> None:
    m = fit("sleepstudy_reml")
    t = m.tidy(conf_int=True)
    assert list(t["effect"]) == ["fixed"] * 2 + ["ran_pars"] * 4
    assert list(t["term"][2:]) == [
        "sd__(Intercept)",
        "cor__(Intercept).Days",
        "sd__Days",
        "sd__Observation",
    ]
    assert list(t["group"][2:]) == ["Subject"] * 3 + ["Residual"]
    table = m.coef_table()
    np.testing.assert_array_equal(t["df"][:2], table["df"])
    np.testing.assert_array_equal(t["p_value"][:2], table["p"])
    vc = m.varcorr
    np.testing.assert_allclose(t["estimate"][[2, 4, 5]], vc["sd"].dropna())
    ci = m.confint("wald")
    np.testing.assert_array_equal(t["conf_low"][:2], ci["lower"].iloc[-2:])
    assert t["conf_low"][2:].isna().all()


def test_glance() -> None:
    m = fit("unbalanced_ml")
    g = m.glance()
    assert len(g) == 1
    assert g["nobs"].item() == 40 and g["df_residual"].item() == 40 - 5
    assert g["aic"].item() == m.aic and not g["reml"].item()


def test_summary_shows_satterthwaite() -> None:
    m = fit("unbalanced_reml")
    text = m.summary()
    assert "Satterthwaite" in text and "Pr(>|t|)" in text
    table = m.coef_table()
    for df in table["df"]:
        assert f"{df:.2f}" in text
    given = m.data.head(2).assign(g="new")
    assert "Pr(>|t|)" not in m.condition(given).summary()
