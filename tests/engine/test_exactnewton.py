"""Newton's method on the closed-form Hessian (exactnewton.py) and its place in fit_theta."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx import fit as fit_mod
from mixedfx.engine import exactnewton, optimize
from mixedfx.engine.bobyqa import bobyqa
from mixedfx.engine.exactnewton import BOUNDARY, CONVERGED, minimize
from mixedfx.engine.newton import Remembered, settle
from tolerance import assert_close

FREE = np.array([-np.inf, -np.inf])


def counted(fun, grad, hess):
    calls = {"fgh": 0, "f": 0}

    def fgh(x):
        calls["fgh"] += 1
        return fun(x), grad(x), hess(x)

    def fungrad(x):
        calls["f"] += 1
        return fun(x), grad(x)

    return fgh, fungrad, calls


def test_a_quadratic_in_one_step_then_the_rounding_step() -> None:
    A = np.array([[4.0, 1.0], [1.0, 2.0]])
    c = np.array([0.3, -1.2])
    fgh, f, calls = counted(
        lambda x: float(0.5 * (x - c) @ A @ (x - c)), lambda x: A @ (x - c), lambda x: A
    )
    res = minimize(fgh, f, np.zeros(2), FREE, 1e-4)
    assert res.converged and res.status == CONVERGED and res.optimizer == "Newton"
    np.testing.assert_allclose(res.final, c, rtol=0, atol=1e-15)
    assert res.extra["newton_steps"] == 1 and res.extra["first_order"] == 1.0
    assert calls["fgh"] == 2 and res.feval == calls["fgh"] + calls["f"]


def test_negative_curvature_is_reflected_into_a_descent_step() -> None:
    """From x = 0.1, where f'' < 0, a plain Newton step goes uphill to the maximum at 0."""
    fun = lambda x: float(x[0] ** 4 - x[0] ** 2)  # noqa: E731  minima at +-1/sqrt(2)
    grad = lambda x: np.array([4 * x[0] ** 3 - 2 * x[0]])  # noqa: E731
    hess = lambda x: np.array([[12 * x[0] ** 2 - 2.0]])  # noqa: E731
    fgh, f, _ = counted(fun, grad, hess)
    res = minimize(fgh, f, np.array([0.1]), np.array([-np.inf]), 1e-4)
    assert res.converged
    assert res.final[0] == pytest.approx(1 / math.sqrt(2), rel=1e-14)


def test_a_bound_is_approached_not_crossed_and_the_run_hands_back() -> None:
    """The minimum is at x0 = -1, outside x0 >= 0: each step keeps a tenth of the distance."""
    seen = []
    A = np.array([[1.0, 0.2], [0.2, 1.0]])
    c = np.array([-1.0, 0.5])

    def fgh(x):
        seen.append(x.copy())
        return float(0.5 * (x - c) @ A @ (x - c)), A @ (x - c), A

    lower = np.array([0.0, -np.inf])
    res = minimize(fgh, lambda x: fgh(x)[:2], np.array([1.0, 0.0]), lower, 1e-4)
    assert res.status == BOUNDARY and not res.converged
    assert res.final[0] < 1e-4
    firsts = np.array([x[0] for x in seen])
    assert (firsts > 0).all()
    np.testing.assert_allclose(firsts[1:] / firsts[:-1], exactnewton.SHRINK, rtol=1e-12)


def test_where_the_objective_is_undefined_the_step_is_halved() -> None:
    """Defined only for x < 1.5: the full step from 0 to 2 is halved once, to 1."""

    def fgh(x):
        if x[0] >= 1.5:
            return math.inf, np.zeros(1), np.zeros((1, 1))
        return float((x[0] - 2.0) ** 2 - 3 * math.log(1.5 - x[0])), np.array([0.0]), np.eye(1)

    calls = []

    def spy(x):
        calls.append(float(x[0]))
        out = fgh(x)
        return (
            out[0],
            np.array([2 * (x[0] - 2.0) + 3 / (1.5 - x[0])]),
            np.array([[2.0 + 3 / (1.5 - x[0]) ** 2]]),
        )

    res = minimize(spy, lambda x: spy(x)[:2], np.array([0.0]), np.array([-np.inf]), 1e-4)
    assert res.converged
    exact = (3.5 - math.sqrt(0.25 + 6)) / 2  # the root of 2(x - 2) + 3 / (1.5 - x) below 1.5
    assert res.final[0] == pytest.approx(exact, rel=1e-14)


def test_a_failed_factorization_ends_the_run_unconverged() -> None:
    def fgh(x):
        raise np.linalg.LinAlgError("not positive definite")

    res = minimize(fgh, lambda x: (0.0, np.zeros(2)), np.ones(2), FREE, 1e-4)
    assert not res.converged and "factorization" in res.status


def test_a_flat_saddle_is_not_called_converged() -> None:
    """At a stationary point whose Hessian is indefinite the step is 0: hand back."""
    H = np.diag([1.0, -1.0])
    fgh, f, _ = counted(lambda x: float(0.5 * x @ H @ x), lambda x: H @ x, lambda x: H)
    res = minimize(fgh, f, np.zeros(2), FREE, 1e-4)
    assert not res.converged and res.status != BOUNDARY


def objective(formula: str, data: pd.DataFrame, reml: bool):
    """The objective a fit minimises (a small model's: the dense evaluator)."""
    design, arrays = fit_mod.learn_design(formula, data)
    _, blocks = fit_mod.form_blocks(design, arrays)
    obj = fit_mod.make_objective(design, blocks, reml)
    assert obj.dense is not None
    return obj


def sleepstudy_objective():
    return objective("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"), True)


def test_sleepstudy_reaches_the_optimum_bobyqa_and_the_polish_reach() -> None:
    """The same theta as BOBYQA, settled by Newton steps (the method before), to 1e-10."""
    obj = sleepstudy_objective()
    lower = obj.lower()
    fungrad = Remembered(obj.value_and_gradient)
    before = settle(obj, fungrad, bobyqa(obj, lower)(obj.start(), False), obj.hessian)
    m = mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    opt = m.optsummary
    assert opt.optimizer == "Newton" and opt.status == CONVERGED
    assert opt.feval < 20  # BOBYQA: 54 evaluations, then the settle
    assert_close(m.standardized.theta, before.final, 1e-10)
    assert obj(m.standardized.theta) <= before.fmin + 1e-12 * abs(before.fmin)


def test_newton_is_tried_only_from_inside_the_bounds() -> None:
    """A warm start with a variance at 0 (a refit of a singular fit) goes to BOBYQA."""
    obj = sleepstudy_objective()
    start = obj.start()
    start[2] = 0.0
    opt = optimize.fit_theta(obj, start)
    assert opt.optimizer == "NLOPT_LN_BOBYQA"
    inside = optimize.fit_theta(obj, obj.start())
    assert opt.fmin == pytest.approx(inside.fmin, rel=1e-12)


def test_a_singular_small_fit_goes_from_newton_to_the_restarts() -> None:
    """No slope variance in the data: Newton hands its boundary point to the restarts."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(12), 8)
    x = rng.normal(size=len(g))
    y = 1 + x + rng.normal(size=12)[g] + rng.normal(size=len(g))
    data = pd.DataFrame({"y": y, "x": x, "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm("y ~ x + (x | g)", data)
    opt = m.optsummary
    assert m.singular and opt.extra["restarts"] > 0 and opt.extra["newton_steps"] > 0
    obj = objective("y ~ x + (x | g)", data, True)
    lower = obj.lower()
    local = bobyqa(obj, lower)
    old = optimize.boundary_restarts(obj, local(obj.start(), False), lower == 0.0, local)
    old = settle(obj, Remembered(obj.value_and_gradient), old, obj.hessian)
    assert obj(m.standardized.theta) <= old.fmin + 1e-12 * abs(old.fmin)
