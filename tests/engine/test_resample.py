"""Blocks with a new response or a held fixed effect, and warm refits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import fit_case, quiet_fit
from mixedfx.engine import blocks as blocks_mod
from mixedfx.engine import resample
from mixedfx.engine.objective import Objective
from mixedfx.engine.optimize import fit_theta
from mixedfx.engine.profiling import hold_fixed, hold_linear
from mixedfx.fit import learn_design
from tolerance import REORDERED, assert_close


def test_with_response_equals_forming_the_blocks() -> None:
    # In the fit's standardized coordinates, as the bootstrap puts a new response in.
    df = mfx.datasets.load("sleepstudy")
    m = fit_case("sleepstudy_reml")
    coords = m.standardized.coords
    y2 = np.random.default_rng(1).normal(300, 50, len(df))
    _, arrays = learn_design("Reaction ~ Days + (Days | Subject)", df.assign(Reaction=y2))
    Xs, ys, Ms = coords.apply(arrays.X, arrays.y, arrays.M)
    formed = blocks_mod.form(Xs, ys, arrays.codes, Ms, [18])
    Z0 = blocks_mod.term_matrix(arrays.codes[0], Ms[0], 18)
    new = resample.with_response(m.blocks, Z0.T @ ys, np.concatenate([Xs.T @ ys, [ys @ ys]]))
    np.testing.assert_allclose(new.A21, formed.A21, rtol=1e-12)
    np.testing.assert_allclose(new.A22, formed.A22, rtol=1e-12)


def test_hold_fixed_equals_an_offset_response() -> None:
    # In the user's coordinates, where the profiles hold a fixed effect.
    df = mfx.datasets.load("sleepstudy")
    m = fit_case("sleepstudy_ml")
    held = hold_fixed(m.user_blocks, 1, 9.0)  # the user's columns, y centred on c
    c = m.standardized.coords.y_centre
    _, arrays = learn_design("y ~ 1 + (Days | Subject)", df.assign(y=df.Reaction - 9.0 * df.Days))
    formed = blocks_mod.form(arrays.X, arrays.y - c, arrays.codes, arrays.M, [18])
    # held comes from blocks moved back from the standardized coordinates (sums of a few
    # products with G^-1): rounding relative to the largest cross-products, not elementwise
    assert_close(held.A22, formed.A22, REORDERED)
    assert_close(held.A21, formed.A21, REORDERED)


def test_hold_linear_is_the_constraint_whichever_element_it_eliminates() -> None:
    # beta_0 + 3 beta_1 = 5 eliminates beta_1 (the larger coefficient): with
    # beta_1 = (5 - beta_0) / 3, y - 5 x / 3 on the column 1 - x / 3 alone
    df = mfx.datasets.load("sleepstudy")
    m = fit_case("sleepstudy_ml")
    held = hold_linear(m.user_blocks, np.array([1.0, 3.0]), 5.0)
    c = m.standardized.coords.y_centre
    data = df.assign(y=df.Reaction - 5.0 * df.Days / 3.0, x=1.0 - df.Days / 3.0)
    _, arrays = learn_design("y ~ 0 + x + (Days | Subject)", data)
    formed = blocks_mod.form(arrays.X, arrays.y - c, arrays.codes, arrays.M, [18])
    assert_close(held.A22, formed.A22, REORDERED)  # as above: sums of a few products
    assert_close(held.A21, formed.A21, REORDERED)
    # the same constraint scaled is the same system
    twice = hold_linear(m.user_blocks, np.array([2.0, 6.0]), 10.0)
    theta = m.theta
    a = Objective(held, m.spec.layout, reml=False)(theta)
    b = Objective(twice, m.spec.layout, reml=False)(theta)
    assert a == pytest.approx(b, rel=1e-12)  # the same numbers up to a division's rounding


@pytest.mark.parametrize("seed", range(8))
def test_warm_started_refit_is_the_full_fit(seed: int) -> None:
    # A refit from the fit's theta (Newton from the warm start) stops where the
    # fit from lme4's start does.
    m = fit_case("sleepstudy_reml")
    y = m.simulate(1, seed=seed)["sim_1"].to_numpy()
    Z = m.design().Z.toarray()
    bl = resample.with_response(  # in the user's coordinates, those of m.theta
        m.user_blocks, Z.T @ y, np.concatenate([m.design().X.to_numpy().T @ y, [y @ y]])
    )
    obj = Objective(bl, m.spec.layout, m.reml)
    full = fit_theta(obj)
    fast = fit_theta(Objective(bl, m.spec.layout, m.reml), m.theta)
    np.testing.assert_allclose(fast.final, full.final, rtol=1e-7, atol=1e-9)
    assert fast.fmin <= full.fmin + 1e-9


def test_a_warm_started_refit_of_a_boundary_optimum_restarts() -> None:
    for seed in range(20):  # data without group variance: the first singular fit
        rng = np.random.default_rng(seed)
        df = pd.DataFrame({"y": rng.normal(size=30), "g": np.repeat(np.arange(6), 5)})
        m = quiet_fit("y ~ 1 + (1 | g)", df)
        if m.singular:
            break
    assert m.singular
    opt = fit_theta(Objective(m.blocks, m.spec.layout, m.reml), np.array([0.5]))
    assert opt.extra["restarts"] > 0 and opt.final[0] == 0.0
