"""L-BFGS-B on the analytic gradient (descent.py) and the optimizer chosen for the model.

Blocked models are fitted by Fisher scoring (scoring.py), which hands over to
L-BFGS-B where it cannot go on.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.engine.descent import descend, escape
from mixedfx.engine.optimize import quasi_newton


def quadratic(center: np.ndarray, hess: np.ndarray):
    def fungrad(x: np.ndarray) -> tuple[float, np.ndarray]:
        d = x - center
        return float(0.5 * d @ hess @ d), hess @ d

    return fungrad


def test_descends_to_an_interior_minimum_and_learns_the_curvature() -> None:
    hess = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    center = np.array([0.7, -0.3, 1.2])
    d = descend(quadratic(center, hess), np.ones(3), np.array([0.0, -np.inf, 0.0]))
    assert d.status == "near the optimum"
    # handed over once the predicted step is below 1e-7: within about that of the minimum
    np.testing.assert_allclose(d.x, center, rtol=0, atol=1e-6)
    np.testing.assert_allclose(d.hessian, hess, rtol=0.2, atol=0.2 * np.abs(hess).max())


def test_stops_on_a_bound_with_the_gradient_pointing_out() -> None:
    hess = np.diag([2.0, 5.0])
    d = descend(quadratic(np.array([-0.5, 0.4]), hess), np.ones(2), np.zeros(2))
    assert d.x[0] == 0.0 and d.converged
    assert abs(d.x[1] - 0.4) < 1e-6


def test_an_objective_that_is_not_finite_is_not_converged() -> None:
    def fungrad(x: np.ndarray) -> tuple[float, np.ndarray]:
        if x[0] > 1.5:
            return np.inf, np.zeros(1)
        return float((x[0] - 2.0) ** 2), np.array([2.0 * (x[0] - 2.0)])

    d = descend(fungrad, np.array([0.0]), np.array([0.0]))
    assert not d.converged  # stuck below the minimum at 2: the caller must settle


def test_a_factorization_that_fails_is_a_point_where_the_objective_is_not_finite() -> None:
    """A restart of L-BFGS-B from a far start met a Schur block that rounding had left not
    positive definite (the fit's r^2 below 0): its LinAlgError ended the whole fit."""
    calls = []

    def fungrad(x: np.ndarray) -> tuple[float, np.ndarray]:
        calls.append(x[0])
        if 3.0 < x[0] < 4.5:  # between the start and the minimum at 1
            raise np.linalg.LinAlgError("matrix is not positive definite (dpotrf info 4)")
        return float((x[0] - 1.0) ** 2), np.array([2.0 * (x[0] - 1.0)])

    d = descend(fungrad, np.array([5.0]), np.array([0.0]))
    assert any(3.0 < c < 4.5 for c in calls)  # its first step went there
    assert np.isfinite(d.f) and d.x[0] >= 4.5 and not d.converged  # held back, not crashed


def even_saddle(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Even in x0 (its derivative is 0 at the bound 0), falling away from it: minimum at 0.5."""
    a = x[0] ** 2 - 0.25
    return float(a * a + (x[1] - 0.3) ** 2), np.array([4.0 * x[0] * a, 2.0 * (x[1] - 0.3)])


def test_a_saddle_on_the_bound_is_left() -> None:
    """The first-order conditions hold at x0 = 0; L-BFGS-B alone stays there."""
    lower = np.array([0.0, -np.inf])
    start = np.array([0.0, 1.0])
    assert descend(even_saddle, start, lower).x[0] == 0.0
    point, evals = escape(even_saddle, np.array([0.0, 0.3]), 0.0625, np.zeros(2), lower)
    assert evals == 1 and point is not None and point[0] > 0.0
    opt = quasi_newton(even_saddle, lower)(start, False)
    assert opt.extra["escapes"] == 1.0 and opt.converged
    np.testing.assert_allclose(opt.final, [0.5, 0.3], rtol=0, atol=1e-6)  # as the descent's


def test_a_minimum_on_the_bound_is_kept() -> None:
    def fungrad(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(x[0] ** 2 + x[0] ** 4), np.array([2.0 * x[0] + 4.0 * x[0] ** 3])

    point, evals = escape(fungrad, np.zeros(1), 0.0, np.zeros(1), np.zeros(1))
    assert point is None and evals == 1
    # a gradient that holds x on the bound: nothing to look at
    assert escape(fungrad, np.zeros(1), 0.0, np.ones(1), np.zeros(1)) == (None, 0)


def crossed(n: int, users: int, items: int, item_sd: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, n), rng.integers(0, items, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(size=users)[u] + item_sd * rng.normal(size=items)[i]
    return pd.DataFrame({"y": y + rng.normal(size=n), "x": x, "u": u, "i": i})


def quiet(formula: str, data: pd.DataFrame, **kw: object) -> mfx.LinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mfx.lmm(formula, data, **kw)  # type: ignore[arg-type]


def test_the_optimizer_is_chosen_for_the_model_and_counted_honestly() -> None:
    small = quiet("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))
    # a small model's interior optimum: Newton's method on the closed-form Hessian,
    # located to the sums' precision by its last step, so neither settled nor restarted
    assert small.optsummary.optimizer == "Newton" and small.converged
    assert small.optsummary.extra["first_order"] == 1.0
    assert "max_abs_gradient" not in small.optsummary.extra
    big = quiet("y ~ x + (1 | u) + (1 | i)", crossed(3000, 250, 60, 0.5, 1))
    opt = big.optsummary
    assert opt.optimizer == "scoring" and opt.converged
    # an interior optimum where the first-order conditions held: neither probed nor
    # settled, so every evaluation came with a gradient
    assert opt.extra["first_order"] == 1.0
    assert opt.feval == opt.extra["gradient_evals"] > 0
    # one term: the levels are independent given beta, and above SCORED_LEVELS
    # L-BFGS-B's cheap evaluations beat scoring's fewer but dearer ones; below,
    # numpy's per-call cost sets both, and scoring's fewer win (optimize.scored)
    one = quiet("y ~ x + (1 | u)", crossed(3000, 2500, 60, 0.5, 1)).optsummary
    assert one.optimizer == "L-BFGS-B" and one.converged
    few = quiet("y ~ x + (1 | u)", crossed(3000, 1000, 60, 0.5, 1)).optsummary
    assert few.optimizer == "scoring" and few.converged


@pytest.mark.parametrize("item_sd", [0.0, 0.5])
def test_blocked_fits_settle_on_one_optimum_in_every_row_order(item_sd: float) -> None:
    """The gradient path, singular (no item variance) and not: theta to 1e-10 across orders."""
    data = crossed(4000, 250, 60, item_sd, 2)
    fits = []
    for seed in range(4):
        order = np.random.default_rng(seed).permutation(len(data))
        fits.append(quiet("y ~ x + (1 | u) + (1 | i)", data.iloc[order].reset_index(drop=True)))
    assert fits[0].optsummary.optimizer == "scoring"
    assert fits[0].singular == (item_sd == 0.0)
    for m in fits[1:]:
        np.testing.assert_allclose(m.theta, fits[0].theta, rtol=1e-10, atol=1e-12)
        assert m.objective == pytest.approx(fits[0].objective, rel=1e-12)


def test_an_iteration_that_stays_put_after_many_evaluations_is_accepted() -> None:
    """L-BFGS-B reports its current point when a line search finds nothing lower.

    Under OpenBLAS's SandyBridge kernels a Dask test's fit did so after 24
    evaluations, when a cache of 16 points had dropped the current one: KeyError.
    """
    from mixedfx.engine.descent import _Run

    hess = np.diag([2.0, 5.0])
    fungrad = quadratic(np.array([0.3, 0.4]), hess)
    run = _Run(fungrad, np.array([1.0, 1.0]), np.zeros(2))
    for t in np.linspace(0.1, 2.0, 30):  # a long, fruitless line search
        run.value(np.array([1.0, 1.0]) + t)
    start_evals = run.evals
    step = run.accept(run.x.copy())  # the point it started from
    assert run.evals == start_evals and np.all(np.isfinite(step))
    moved = np.array([0.8, 0.9])
    run.value(moved)
    run.accept(moved)
    assert np.array_equal(run.x, moved) and run.f == fungrad(moved)[0]
    other = np.array([0.5, 0.5])  # never evaluated: evaluated on acceptance
    run.accept(other)
    assert run.evals == start_evals + 2 and run.f == fungrad(other)[0]
