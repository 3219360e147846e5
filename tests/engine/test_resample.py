"""Blocks with a new response or a held fixed effect, and warm refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import fit_case, quiet_fit
from mixedfx.engine import resample
from mixedfx.engine.objective import Objective
from mixedfx.engine.optimize import fit_theta
from mixedfx.engine.profiling import hold_fixed
from mixedfx.fit import form_blocks, learn_design


def test_with_response_equals_forming_the_blocks() -> None:
    df = mfx.datasets.load("sleepstudy")
    m = fit_case("sleepstudy_reml")
    y2 = np.random.default_rng(1).normal(300, 50, len(df))
    design, arrays = learn_design("Reaction ~ Days + (Days | Subject)", df.assign(Reaction=y2))
    formed = form_blocks(design, arrays)
    X = arrays.X
    Z0 = m.design(df).Z.toarray()
    new = resample.with_response(m.blocks, Z0.T @ y2, np.concatenate([X.T @ y2, [y2 @ y2]]))
    np.testing.assert_allclose(new.A21, formed.A21, rtol=1e-12)
    np.testing.assert_allclose(new.A22, formed.A22, rtol=1e-12)


def test_hold_fixed_equals_an_offset_response() -> None:
    df = mfx.datasets.load("sleepstudy")
    m = fit_case("sleepstudy_ml")
    held = hold_fixed(m.blocks, 1, 9.0)
    _, arrays = learn_design("y ~ 1 + (Days | Subject)", df.assign(y=df.Reaction - 9.0 * df.Days))
    design, _ = learn_design("y ~ 1 + (Days | Subject)", df.assign(y=df.Reaction))
    formed = form_blocks(design, arrays)
    np.testing.assert_allclose(held.A22, formed.A22, rtol=1e-12)
    np.testing.assert_allclose(held.A21, formed.A21, rtol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_newton_refit_is_the_full_fit(seed: int) -> None:
    # The fast path (Newton from the fit's theta) stops where the full fit
    # (BOBYQA, boundary restarts, settle) does, or declines.
    m = fit_case("sleepstudy_reml")
    y = m.simulate(1, seed=seed)["sim_1"].to_numpy()
    Z = m.design().Z.toarray()
    bl = resample.with_response(
        m.blocks, Z.T @ y, np.concatenate([m.design().X.to_numpy().T @ y, [y @ y]])
    )
    obj = Objective(bl, m.spec.layout, m.reml)
    full = fit_theta(obj, np.ones(3))
    fast = resample.newton(Objective(bl, m.spec.layout, m.reml), m.theta)
    if fast is not None:
        np.testing.assert_allclose(fast.final, full.final, rtol=1e-7, atol=1e-9)
        assert fast.fmin <= full.fmin + 1e-9


def test_newton_declines_a_boundary_optimum() -> None:
    for seed in range(20):  # data without group variance: the first singular fit
        rng = np.random.default_rng(seed)
        df = pd.DataFrame({"y": rng.normal(size=30), "g": np.repeat(np.arange(6), 5)})
        m = quiet_fit("y ~ 1 + (1 | g)", df)
        if m.singular:
            break
    assert m.singular
    assert resample.newton(Objective(m.blocks, m.spec.layout, m.reml), np.array([0.5])) is None
