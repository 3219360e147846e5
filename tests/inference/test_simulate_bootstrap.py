"""simulate, bootstrap and prediction intervals over draws of theta."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import mixedfx as mfx
from conftest import fit_case, frame, quiet_fit
from mixedfx.inference.uncertainty import mixture_quantile


@pytest.fixture(scope="module")
def sleep() -> mfx.LinearMixedModel:
    return fit_case("sleepstudy_reml")


@pytest.fixture(scope="module")
def boot(sleep: mfx.LinearMixedModel) -> mfx.inference.bootstrap.BootstrapResult:
    return sleep.bootstrap(60, seed=3, progress=False, n_jobs=1)


def test_simulate_is_reproducible_and_shaped(sleep: mfx.LinearMixedModel) -> None:
    a, b = sleep.simulate(4, seed=7), sleep.simulate(4, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["sim_1", "sim_2", "sim_3", "sim_4"]
    assert a.index.equals(sleep.data.index)
    assert not np.allclose(a["sim_1"], a["sim_2"])


def test_simulate_moments_new_and_known_groups(sleep: mfx.LinearMixedModel) -> None:
    # One row of a new subject and one of a known one, 20000 draws: the new
    # row's variance is z' Sigma z + sigma^2 in both modes; the known row's
    # mean is the BLUP prediction with ranef="fitted" (variance sigma^2).
    rows = pd.DataFrame({"Days": [4.0, 4.0], "Subject": ["new", "308"]})
    z = np.array([1.0, 4.0])
    var_new = z @ sleep.covariances()[0] @ z + sleep.sigma**2
    n = 20000
    for ranef in ("sample", "fitted"):
        sims = sleep.simulate(n, newdata=rows, ranef=ranef, seed=1).to_numpy()
        # a variance estimate from n normal draws has relative sd sqrt(2/n) = 1%: 5 sd
        np.testing.assert_allclose(sims[0].var(), var_new, rtol=5 * np.sqrt(2 / n))
    fitted = sleep.simulate(n, newdata=rows, ranef="fitted", seed=2).to_numpy()[1]
    pred = sleep.predict(rows)[1]
    assert abs(fitted.mean() - pred) < 5 * sleep.sigma / np.sqrt(n)
    np.testing.assert_allclose(fitted.var(), sleep.sigma**2, rtol=5 * np.sqrt(2 / n))


def test_simulate_includes_the_offset(sleep: mfx.LinearMixedModel) -> None:
    # A model with an offset: the simulated responses are centred on the
    # prediction, offset included (lme4's simulate.merMod), and a bootstrap
    # refit of them recovers the model (it simulates the working response).
    data = sleep.data.assign(o=np.linspace(-500.0, 500.0, len(sleep.data)))
    m = quiet_fit("Reaction ~ Days + (Days | Subject)", data, offset="o")
    rows = data.iloc[[0, 95]]
    n = 20000
    sims = m.simulate(n, newdata=rows, ranef="fitted", seed=5).to_numpy()
    # the mean of n draws has sd sigma / sqrt(n): 5 sd
    np.testing.assert_allclose(sims.mean(axis=1), m.predict(rows), atol=5 * m.sigma / np.sqrt(n))
    b = m.bootstrap(1, seed=11, progress=False, n_jobs=1)
    y = m.simulate(1, seed=np.random.default_rng(np.random.SeedSequence(11).spawn(1)[0]))
    refit = quiet_fit(m.spec.formula, data.assign(Reaction=y["sim_1"]), offset="o")
    np.testing.assert_allclose(b.beta[0], refit.beta, rtol=1e-8)


def test_simulate_checks(sleep: mfx.LinearMixedModel) -> None:
    with pytest.raises(ValueError, match="ranef"):
        sleep.simulate(ranef="new")
    with pytest.raises(mfx.DataError, match="predictors"):
        sleep.simulate(newdata=pd.DataFrame({"Days": [np.nan], "Subject": ["308"]}))


def test_bootstrap_draws(sleep: mfx.LinearMixedModel, boot: object) -> None:
    b = boot
    assert b.n == 60 and b.theta.shape == (60, 3) and b.beta.shape == (60, 2)
    assert b.n_failed == 0 and b.converged.all()
    params = b.parameters()
    assert params.shape == (60, 6)
    # draws scatter around the estimates: each mean within 4 bootstrap se of it
    from mixedfx.inference.confint import estimates

    hat = estimates(sleep)
    se = params.std(axis=0) / np.sqrt(60)
    assert (np.abs(params.mean(axis=0) - hat) < 4 * params.std(axis=0)).all()
    assert (se > 0).all()
    frame_ = b.to_frame()
    assert list(frame_.columns[-3:]) == ["failed", "converged", "singular"]
    assert "60 draws, 0 failed" in repr(b)


def test_bootstrap_does_not_depend_on_jobs(sleep: mfx.LinearMixedModel, boot: object) -> None:
    par = sleep.bootstrap(60, seed=3, progress=False, n_jobs=2)
    np.testing.assert_array_equal(par.theta, boot.theta)
    np.testing.assert_array_equal(par.sigma, boot.sigma)


def test_bootstrap_refits_equal_fits_of_the_simulated_data(sleep: mfx.LinearMixedModel) -> None:
    # Replicate i is the fit of the response drawn from its own seed.
    b = sleep.bootstrap(3, seed=11, progress=False, n_jobs=1)
    seeds = np.random.SeedSequence(11).spawn(3)
    for i, s in enumerate(seeds):
        y = sleep.simulate(1, seed=np.random.default_rng(s))["sim_1"]
        m = quiet_fit(sleep.spec.formula, sleep.data.assign(Reaction=y))
        np.testing.assert_allclose(b.theta[i], m.theta, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(b.beta[i], m.beta, rtol=1e-8)
        np.testing.assert_allclose(b.sigma[i], m.sigma, rtol=1e-8)


def test_bootstrap_counts_failures(sleep: mfx.LinearMixedModel, monkeypatch) -> None:
    from mixedfx.engine import resample

    calls = []

    def flaky(*args: object):
        calls.append(1)
        if len(calls) % 2:
            raise np.linalg.LinAlgError("not positive definite")
        return real(*args)

    real = resample.refit
    monkeypatch.setattr(resample, "refit", flaky)
    b = sleep.bootstrap(6, progress=False, n_jobs=1)
    assert b.n_failed == 3 and np.isnan(b.sigma[b.failed]).all()
    assert np.isfinite(b.sigma[~b.failed]).all()
    ci = sleep.confint("bootstrap", bootstrap=b)
    assert np.isfinite(ci.to_numpy()).all()


def test_bootstrap_confint_percentiles(sleep: mfx.LinearMixedModel, boot: object) -> None:
    ci = sleep.confint("bootstrap", level=0.8, bootstrap=boot)
    params = boot.parameters()
    np.testing.assert_allclose(ci["lower"], np.quantile(params, 0.1, axis=0))
    np.testing.assert_allclose(ci["upper"], np.quantile(params, 0.9, axis=0))


def test_mixture_quantile() -> None:
    mean = np.array([[0.0, 1.0], [2.0, 1.0]])
    sd = np.array([[1.0, 2.0], [1.0, 2.0]])
    q = mixture_quantile(mean, sd, 0.3)
    cdf = norm.cdf((q - mean) / sd).mean(axis=0)
    np.testing.assert_allclose(cdf, 0.3, atol=1e-10)
    np.testing.assert_allclose(q[1], 1.0 + 2.0 * norm.ppf(0.3), rtol=1e-9)


def test_uncertain_intervals(sleep: mfx.LinearMixedModel, boot: object) -> None:
    rows = pd.DataFrame({"Days": [3.0, 3.0], "Subject": ["308", "new"]})
    given = pd.DataFrame({"Subject": "new", "Days": [0.0, 1.0, 2.0], "Reaction": [250.0, 262, 270]})
    for kw in ({}, {"given": given}):
        plug = sleep.predict(rows, interval="prediction", **kw)
        for unc in ("bootstrap", "hessian"):
            out = sleep.predict(rows, interval="prediction", uncertainty=unc, bootstrap=boot, **kw)
            np.testing.assert_allclose(out["fit"], plug["fit"], rtol=1e-12)
            assert (out["lower"] < out["fit"]).all() and (out["fit"] < out["upper"]).all()
            # the same order of width as the plug-in interval
            ratio = (out["upper"] - out["lower"]) / (plug["upper"] - plug["lower"])
            assert ((ratio > 0.8) & (ratio < 1.5)).all()


def test_uncertainty_checks(sleep: mfx.LinearMixedModel) -> None:
    rows = pd.DataFrame({"Days": [3.0], "Subject": ["308"]})
    with pytest.raises(ValueError, match="bootstrap="):
        sleep.predict(rows, interval="prediction", uncertainty="bootstrap")
    with pytest.raises(ValueError, match="interval"):
        sleep.predict(rows, uncertainty="hessian")
    with pytest.raises(ValueError, match="uncertainty"):
        sleep.predict(rows, interval="prediction", uncertainty="bayes")


def test_hessian_intervals_shrink_toward_plugin_with_many_groups() -> None:
    # With many groups theta is well determined: the intervals approach the plug-in ones.
    m = quiet_fit("y ~ x + (1 | g)", frame(n_groups=200, size=5))
    rows = m.data.head(5)
    plug = m.predict(rows, interval="prediction")
    out = m.predict(rows, interval="prediction", uncertainty="hessian")
    np.testing.assert_allclose(
        out["upper"] - out["lower"], plug["upper"] - plug["lower"], rtol=0.02
    )


def test_basic_draws_reflect_the_refits(sleep: mfx.LinearMixedModel, boot: object) -> None:
    from mixedfx.inference.uncertainty import basic_draws

    d = basic_draws(sleep, boot)
    np.testing.assert_allclose(d[:, :-1], 2 * sleep.theta - boot.theta)
    np.testing.assert_allclose(d[:, -1], np.abs(2 * sleep.sigma - boot.sigma))
    # the refits' mean bias, reversed
    np.testing.assert_allclose(
        d.mean(axis=0) - np.append(sleep.theta, sleep.sigma),
        np.append(sleep.theta, sleep.sigma)
        - np.column_stack([boot.theta, boot.sigma]).mean(axis=0),
    )
