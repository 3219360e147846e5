"""Inference on a GLMM: anova compares nested GLMMs as lme4 does; the rest refuse by name.

The LMM's inference (Satterthwaite, Kenward-Roger, profile intervals,
simulation, bootstrap, uncertainty draws, tidy/glance) rests on its profiled
Gaussian likelihood; on a GLMM each raises NotImplementedError naming the
function, never a number computed under the wrong model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

import mixedfx as mfx
from glmm_reference import fit, minus2loglik, newdata
from mixedfx.inference import bootstrap, coeftable, confint, simulate, tidy, uncertainty
from tolerance import assert_close

NAME = "cbpp_cbind_laplace"


@pytest.fixture(scope="module")
def g() -> mfx.GeneralizedLinearMixedModel:
    return fit(NAME)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("confint", ()),
        ("confint", ("wald",)),
        ("coef_table", ()),
        ("simulate", (10,)),
        ("bootstrap", (10,)),
        ("tidy", ()),
        ("glance", ()),
    ],
)
def test_methods_refuse_a_glmm_by_name(g, method: str, args: tuple) -> None:
    with pytest.raises(NotImplementedError, match=rf"^{method} is not implemented for gener"):
        getattr(g, method)(*args)


@pytest.mark.parametrize(
    ("function", "name"),
    [
        (lambda m: confint.confint(m, "wald", 0.95, None), "confint"),
        (lambda m: coeftable.coef_table(m), "coef_table"),
        (lambda m: simulate.simulate(m, 2, None, "sample", 0), "simulate"),
        (lambda m: bootstrap.bootstrap(m, 2, 0, False, 1, "sample"), "bootstrap"),
        (lambda m: tidy.tidy(m, False, 0.95, "wald"), "tidy"),
        (lambda m: tidy.glance(m), "glance"),
    ],
)
def test_module_functions_refuse_a_glmm_by_name(g, function, name: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"^{name} is not implemented"):
        function(g)


@pytest.mark.parametrize("how", ["hessian", "bootstrap"])
def test_uncertain_intervals_refuse_a_glmm(g, how: str) -> None:
    with pytest.raises(NotImplementedError, match="predict\\(uncertainty="):
        g.predict(newdata(NAME), interval="prediction", uncertainty=how)
    with pytest.raises(NotImplementedError, match="predict\\(uncertainty="):
        uncertainty.predict_uncertain(  # type: ignore[arg-type]
            g, newdata(NAME), "all", "population", None, "prediction", 0.95, how, None
        )


def test_plugin_intervals_are_the_default(g) -> None:
    nd = newdata(NAME)
    pd.testing.assert_frame_equal(
        g.predict(nd, interval="confidence", uncertainty="plugin"),
        g.predict(nd, interval="confidence"),
    )


def test_anova_compares_nested_glmms_by_their_laplace_loglik(g) -> None:
    """lme4's anova(gm0, gm1) for glmer fits: no refit, chisq from the log-likelihoods."""
    data = mfx.datasets.load("cbpp")
    g0 = mfx.glmm("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", data, family="binomial")
    table = mfx.anova(g, g0)
    assert list(table.index) == [g0.spec.formula, g.spec.formula]  # by npar
    assert table["npar"].tolist() == [2, 5]
    assert table["loglik"].iloc[1] == g.loglik
    assert table["deviance"].iloc[1] == pytest.approx(minus2loglik(NAME), rel=1e-8)  # lme4's
    chisq = 2.0 * (g.loglik - g0.loglik)
    # anova takes the difference of the sorted log-likelihoods: rounding of one subtraction
    assert table["chisq"].iloc[1] == pytest.approx(chisq, rel=1e-12)
    assert table["df"].iloc[1] == 3
    assert table["p"].iloc[1] == pytest.approx(chi2.sf(chisq, 3), rel=1e-12)
    np.testing.assert_allclose(table["aic"], [g0.aic, g.aic], rtol=1e-14)


def test_anova_refuses_mixed_kinds_and_families(g) -> None:
    data = mfx.datasets.load("cbpp").assign(prop=lambda d: d.incidence / d["size"])
    lm = mfx.lmm("prop ~ period + (1 | herd)", data)
    with pytest.raises(mfx.DataError, match="not nested"):
        mfx.anova(g, lm)
    probit = mfx.glmm(
        "cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
        data,
        family="binomial(link='probit')",
    )
    with pytest.raises(mfx.DataError, match="different families or links"):
        mfx.anova(g, probit)


# -- a linear mixed model with prior weights ---------------------------------------------------
@pytest.fixture(scope="module")
def weighted() -> mfx.LinearMixedModel:
    sleep = mfx.datasets.load("sleepstudy").assign(w=lambda d: 1.0 + d.Days % 3)
    return mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep, weights="w")


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda m: m.confint("profile"), "confint\\(method='profile'\\)"),
        (lambda m: m.confint("bootstrap"), "confint\\(method='bootstrap'\\)"),
        (lambda m: m.coef_table("kenward-roger"), "coef_table\\(ddf='kenward-roger'\\)"),
        (lambda m: m.simulate(2, seed=0), "simulate"),
        (lambda m: m.bootstrap(2, progress=False), "bootstrap"),
        (lambda m: mfx.anova(m, m), "anova"),
        (
            lambda m: m.predict(interval="prediction", uncertainty="hessian"),
            "predict\\(uncertainty=...\\)",
        ),
    ],
)
def test_unverified_methods_refuse_prior_weights_by_name(weighted, call, name: str) -> None:
    with pytest.raises(NotImplementedError, match=rf"^{name} is not implemented for a linear"):
        call(weighted)


def test_wald_and_satterthwaite_work_with_weights(weighted) -> None:
    """Weights c * w are the same model with sigma * sqrt(c): the same df, se and intervals."""
    sleep = mfx.datasets.load("sleepstudy").assign(w=lambda d: 4.0 * (1.0 + d.Days % 3))
    scaled = mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep, weights="w")
    a, b = weighted.coef_table(), scaled.coef_table()
    # two fits to the optimizer's tolerance (theta to ~1e-6): their se and df to 1e-5
    assert_close(b["se"].to_numpy(), a["se"].to_numpy(), rtol=1e-5)
    assert_close(b["df"].to_numpy(), a["df"].to_numpy(), rtol=1e-5)
    assert_close(a["se"].to_numpy(), np.sqrt(np.diag(weighted.vcov_beta)), rtol=0)
    assert "Satterthwaite" in weighted.summary()
    wald = weighted.confint("wald")
    assert np.isfinite(wald.loc["Days"]).all()
