"""The optimizer's safeguards (optimize.py)."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_gradient import objective

import mixedfx as mfx
from mixedfx.engine import optimize
from mixedfx.engine.bobyqa import OptSummary, minimize
from mixedfx.engine.newton import Remembered, polish, settle
from mixedfx.engine.optimize import boundary_restarts, quasi_newton
from oracle import refit
from tolerance import assert_close

DATA = Path(__file__).parents[1] / "data"


def test_a_start_a_hair_above_the_bound_does_not_shrink_bobyqas_steps() -> None:
    """NLopt's default step is 3/4 of the distance to the bound: 2.5e-18 from this start.

    A profile's warm start (a variance of 3.3e-18 from the previous point) stopped
    there, 1.4 above the profile's minimum, and moved a confidence limit by 3 %.
    """
    fun = lambda x: float((x[0] - 1.0) ** 2 + (x[1] - 0.5) ** 2 + x[0] * x[1])  # noqa: E731
    res = minimize(fun, np.array([3.3e-18, 0.0]), np.array([0.0, -np.inf]), 1e-10, 1e-10)
    np.testing.assert_allclose(res.final, [1.0, 0.0], rtol=0, atol=1e-6)  # xtol 1e-10
    assert res.fmin - 0.25 < 1e-12  # the minimum, at (1, 0)


def test_settle_restarts_only_when_the_gradient_is_not_flat() -> None:
    fun = lambda x: float((x[0] - 2.0) ** 2)  # noqa: E731
    grad = lambda x: np.array([2.0 * (x[0] - 2.0)])  # noqa: E731
    lower = np.array([0.0])
    far = OptSummary("test", np.ones(1), np.array([1.0]), lower, 1.0, 5, "ftol reached", True)
    fixed = settle(fun, both(fun, grad), far)  # too far for Newton steps: BOBYQA again
    assert fixed.extra["settle_restart"] == 1.0
    assert abs(fixed.final[0] - 2.0) < 1e-12 and fixed.fmin < 1e-20
    near = OptSummary("test", np.ones(1), np.array([2.001]), lower, 1e-6, 5, "ftol reached", True)
    polished = settle(fun, both(fun, grad), near)
    assert "settle_restart" not in polished.extra and abs(polished.final[0] - 2.0) < 1e-12


def quadratic(center: np.ndarray, hess: np.ndarray):
    fun = lambda x: float(0.5 * (x - center) @ hess @ (x - center))  # noqa: E731
    grad = lambda x: hess @ (x - center)  # noqa: E731
    return fun, grad


def both(fun, grad):
    return lambda x: (fun(x), grad(x))


def summary(x: np.ndarray, fun, lower: np.ndarray) -> OptSummary:
    return OptSummary("test", x, x.copy(), lower, fun(x), 10, "ftol reached", True)


def test_polish_reaches_the_minimum_bobyqa_stopped_near() -> None:
    hess = np.array([[4.0, 1.0], [1.0, 3.0]])
    fun, grad = quadratic(np.array([0.7, -0.3]), hess)
    near = np.array([0.7 + 3e-5, -0.3 - 2e-5])
    out = polish(both(fun, grad), summary(near, fun, np.array([0.0, -np.inf])))
    np.testing.assert_allclose(out.final, [0.7, -0.3], rtol=0, atol=1e-12)
    assert out.extra["newton_steps"] >= 1 and out.fmin <= fun(near)


def test_polish_keeps_bounds() -> None:
    hess = np.diag([2.0, 5.0])
    lower = np.array([0.0, 0.0])
    # optimum outside the feasible set in the first coordinate: it stays on its bound
    fun, grad = quadratic(np.array([-0.1, 0.5]), hess)
    out = polish(both(fun, grad), summary(np.array([0.0, 0.5 + 1e-5]), fun, lower))
    assert out.final[0] == 0.0
    assert abs(out.final[1] - 0.5) < 1e-12
    # a step that would cross the bound stops on it
    fun, grad = quadratic(np.array([-1e-6, 0.5]), hess)
    out = polish(both(fun, grad), summary(np.array([1e-6, 0.5]), fun, lower))
    assert out.final[0] == 0.0


def test_polish_refuses_long_steps_and_saddles() -> None:
    fun, grad = quadratic(np.array([0.5, 0.5]), np.diag([1.0, -1.0]))  # a saddle
    start = np.array([0.5 + 1e-4, 0.5 + 1e-4])
    assert np.array_equal(polish(both(fun, grad), summary(start, fun, np.zeros(2))).final, start)
    fun, grad = quadratic(np.array([5.0, 0.5]), np.eye(2))  # too far: not a polish
    start = np.array([0.5, 0.5])
    assert np.array_equal(polish(both(fun, grad), summary(start, fun, np.zeros(2))).final, start)


def test_with_a_closed_form_hessian_the_last_step_below_precision_is_taken_too() -> None:
    """A Dask fit and an in-memory one stopped 5e-12 apart in a small theta (0.0088),
    so that term's BLUPs differed by 1e-9 relative; where evaluations are cheap the
    polish takes the step it would otherwise call converged."""
    hess = np.array([[40.0, 3.0], [3.0, 2.0]])
    center = np.array([1.35, 0.0088])
    fun, grad = quadratic(center, hess)
    start = center + np.array([0.0, 5e-12])
    with_hessian = polish(both(fun, grad), summary(start, fun, np.zeros(2)), lambda x: hess)
    assert with_hessian.extra["newton_converged"] == 1.0
    assert abs(with_hessian.final[1] - center[1]) < 1e-15
    differenced = polish(both(fun, grad), summary(start, fun, np.zeros(2)))
    assert np.array_equal(differenced.final, start)  # blocked models: no evaluation for it


@pytest.mark.parametrize("flat", [0.0, -1e-9, 1e-9])
def test_polish_reaches_a_ridge_of_optima_without_sliding_along_it(flat: float) -> None:
    """A Hessian flat along (1, 1) up to rounding of either sign: the minimum-norm step.

    As an unidentified ``(f || g)`` fit: a Cholesky step fails (or, with a
    tiny positive eigenvalue, runs off along the ridge and is refused as too
    long), so the polish used to stop 1e-4 from the ridge.
    """
    v = np.array([1.0, 1.0]) / np.sqrt(2.0)
    u = np.array([1.0, -1.0]) / np.sqrt(2.0)
    hess = 50.0 * np.outer(u, u) + flat * np.outer(v, v)
    fun, grad = quadratic(np.array([0.4, 0.6]), hess)
    start = np.array([0.4, 0.6]) + 3e-5 * u + 2e-3 * v  # off the ridge, and along it
    out = polish(both(fun, grad), summary(start, fun, np.full(2, -np.inf)), lambda x: hess)
    assert out.extra["newton_converged"] == 1.0
    assert abs(u @ (out.final - [0.4, 0.6])) < 1e-12  # on the ridge
    assert abs(v @ (out.final - start)) < 1e-12  # not moved along it


def test_polish_needs_positive_curvature_only_where_elements_are_free() -> None:
    """The first element sits on its bound, pushed there; the curvature's other block decides."""
    hess = np.array([[-1.0, 0.0], [0.0, 2.0]])  # indefinite, but the free block (2) is not
    lower = np.array([0.0, -np.inf])
    fun = lambda x: 0.5 * x @ hess @ x + 3.0 * x[0] - 0.5 * x[1]  # noqa: E731
    grad = lambda x: hess @ x + np.array([3.0, -0.5])  # noqa: E731
    start = np.array([0.0, 0.25 + 1e-5])
    out = polish(both(fun, grad), summary(start, fun, lower), lambda x: hess)
    assert out.final[0] == 0.0 and abs(out.final[1] - 0.25) < 1e-12
    nan_curvature = lambda x: np.full((2, 2), np.nan)  # noqa: E731
    kept = polish(both(fun, grad), summary(start, fun, lower), nan_curvature)
    assert np.array_equal(kept.final, start)


def test_settle_calls_a_fit_converged_once_its_gradient_is_flat() -> None:
    """An optimizer that stopped unconverged near the optimum: the polish finishes it."""
    hess = np.array([[4.0, 1.0], [1.0, 3.0]])
    fun, grad = quadratic(np.array([0.7, 0.3]), hess)
    near = np.array([0.7 + 3e-5, 0.3 - 2e-5])
    stopped = replace(summary(near, fun, np.zeros(2)), converged=False, status="near the optimum")
    out = settle(fun, both(fun, grad), stopped, lambda x: hess)
    assert out.converged and out.status == "near the optimum; settled: the gradient is flat"
    np.testing.assert_allclose(out.final, [0.7, 0.3], rtol=0, atol=1e-12)
    done = settle(fun, both(fun, grad), summary(near, fun, np.zeros(2)), lambda x: hess)
    assert done.converged and done.status == "ftol reached"  # a converged fit keeps its status


def test_a_blocked_fit_that_scoring_left_unconverged_is_settled_without_a_warning() -> None:
    """Scoring stopped near the optimum, two variances near 0, without meeting the
    first-order test; the settle step's polish did (the data of the Dask test's
    ``synthetic()``, whose fits warned "did not converge" at |g| 6e-11 before)."""
    n, rng = 480, np.random.default_rng(3)
    part = np.repeat(np.arange(4), n // 4)
    trt = np.where(part == 0, rng.choice(["a", "b"], n), rng.choice(["b", "c"], n))
    trt = np.where(part == 3, rng.choice(["c", "d", "b"], n), trt)
    g = np.where(part < 2, rng.integers(0, 12, n), rng.integers(8, 30, n))
    site = rng.choice(["s1", "s2", "s3", "s4", "s5"], n)
    x = rng.normal(3.0, 2.0, n)
    effect = {"a": 0.0, "b": 1.0, "c": -0.5, "d": 2.0}
    u = rng.normal(0.0, 1.0, 30)
    y = 5 + np.vectorize(effect.get)(trt) + 0.3 * x + u[g] + rng.normal(0.0, 0.7, n)
    df = pd.DataFrame({"y": y, "x": x, "z": x * x, "xc": x - x.mean(), "trt": trt, "g": g})
    df["site"] = site
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.ConvergenceWarning)
        m = mfx.lmm("y ~ trt + x + z + I(x^3) + I(x > 3) + (1 + xc | g) + (1 | site)", df)
    # scoring or the settle step finishes it, depending on the BLAS kernel's rounding:
    # converged either way, and never the warning
    assert m.converged


def test_premature_ftol_stop_is_caught() -> None:
    """A design on which BOBYQA stopped after 22 evaluations, 1.4e-3 above the optimum."""
    data = pd.read_csv(DATA / "premature_stop.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm("y ~ x + (1 | g) + (1 | h)", data, reml=True)
    best, _ = refit(m, data)
    assert m.objective <= best + 1e-8 * abs(best)


def test_every_row_order_settles_on_one_optimum() -> None:
    """Four groups and a random slope (found by hypothesis): a flat, singular optimum.

    From one row order BOBYQA stopped 5e-5 above the optimum, beyond what
    Newton steps may cover, and the slope's variance was left at 1.7e-8 in
    one order and 3e-12 in another.
    """
    data = pd.read_csv(DATA / "flat_slope.csv")
    fits = []
    for seed in range(6):
        order = np.random.default_rng(seed).permutation(len(data))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(mfx.lmm("y ~ x + (x | g)", data.iloc[order].reset_index(drop=True)))
    best, _ = refit(fits[0], data)
    for m in fits:
        assert m.objective <= best + 1e-12 * abs(best)
        # 1e-10 of theta's scale, as Dask against memory: the Newton polish locates the
        # optimum to the precision of the sums, which another row order rounds differently
        assert_close(m.theta, fits[0].theta, 1e-10)
        assert m.theta[2] == 0.0 and m.singular


def test_boundary_restarts_try_every_face() -> None:
    """A random slope (found by hypothesis): every start but a face start ends 0.047 too high."""
    data = pd.read_csv(DATA / "other_face.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm("y ~ x + (x | g)", data, reml=True)
    best, _ = refit(m, data)
    assert m.objective <= best + 1e-8 * abs(best)
    assert m.theta[2] == 0.0 and m.theta[0] > 0.04  # the slope's own diagonal is 0


# -- blocked models: no restarts, L-BFGS-B on the boundary checked by scoring ----------------
def random_blocked(seed: int) -> pd.DataFrame:
    """One of the 148 random designs the restarts were measured on: unbalanced groups of
    1 to 8 rows, a second grouping ``h``, some variance components 0 (singular fits)."""
    rng = np.random.default_rng(seed)
    l0, lh = int(rng.integers(20, 250)), int(rng.integers(5, 60))
    g = np.repeat(np.arange(l0), rng.integers(1, 9, size=l0))
    n = len(g)
    h = rng.integers(0, lh, size=n)
    x = rng.normal(size=n)
    z = rng.normal(size=n) + 0.5 * x
    f = rng.choice(list("abc")[: int(rng.integers(2, 4))], size=n)
    sd = lambda: float(rng.choice([0.0, 0.0, 0.1, 0.5, 1.0]))  # noqa: E731
    b0, b1, b2 = (rng.normal(size=l0) * sd() for _ in range(3))
    bf = rng.normal(size=(l0, 3)) * sd()
    c0, c1 = rng.normal(size=lh) * sd(), rng.normal(size=lh) * sd()
    fi = pd.factorize(f)[0]
    y = 1 + x + b0[g] + b1[g] * x + b2[g] * z + bf[g, fi] + c0[h] + c1[h] * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "z": z, "f": f, "g": g.astype(str), "h": h.astype(str)})


def restarted(m: mfx.LinearMixedModel, data: pd.DataFrame):
    """What the old sequence found: boundary restarts (seven to ten local runs) from the fit."""
    obj = objective(m.spec.formula, data, m.reml)
    lower = obj.lower()
    theta = m.standardized.theta
    at = OptSummary("fit", theta, theta.copy(), lower, obj(theta), 0, "fit", True)
    local = quasi_newton(Remembered(obj.value_and_gradient), lower)
    return at.fmin, boundary_restarts(obj, at, lower == 0.0, local).fmin


@pytest.mark.parametrize(("seed", "term"), [(1, "(x | g)"), (4, "(f | g)")])
def test_l_bfgs_b_stopped_on_the_boundary_is_rescored(seed: int, term: str, monkeypatch) -> None:
    """L-BFGS-B's first step put a diagonal at 0 and it stopped there, 1.4 and 10.5 above.

    Scoring from the same start reaches the optimum; restarts from the old
    starts find nothing lower. (These designs have fewer levels than
    SCORED_LEVELS, which now fits them by scoring: L-BFGS-B is pinned, as for
    one-term models with more levels.)
    """
    monkeypatch.setattr(optimize, "SCORED_LEVELS", 0)
    data = random_blocked(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm(f"y ~ x + z + f + {term}", data, reml=bool(seed % 2))
    opt = m.optsummary
    assert opt.extra["rescored"] == 1.0 and opt.optimizer.startswith("scoring")
    assert opt.extra["first_fmin"] - m.objective > 1.0  # where L-BFGS-B had stopped
    fit, best = restarted(m, data)
    assert fit <= best + 1e-10 * abs(best)


@pytest.mark.parametrize(
    ("seed", "term"), [(7, "(1 | g) + (1 | h)"), (9, "(1 | g/h)"), (21, "(x | g) + (1 | h)")]
)
def test_scoring_on_the_boundary_needs_no_restarts(seed: int, term: str) -> None:
    """Singular crossed and nested fits: the old restarts cost three to ten times the fit
    and, on 148 random designs, never ended lower."""
    data = random_blocked(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm(f"y ~ x + z + f + {term}", data, reml=bool(seed % 2))
    assert m.singular and m.optsummary.optimizer.startswith("scoring")
    assert "restarts" not in m.optsummary.extra
    fit, best = restarted(m, data)
    assert fit <= best + 1e-10 * abs(best)


def three_groupings(seed: int) -> pd.DataFrame:
    """The second family of random designs: 5 to 120 groups g of 1 to 14 rows, crossed
    groupings h and k, correlated x and z, some variance components 0."""
    rng = np.random.default_rng(1000 + seed)
    l0, lh, lk = int(rng.integers(5, 120)), int(rng.integers(3, 30)), int(rng.integers(3, 15))
    g = np.repeat(np.arange(l0), rng.integers(1, 15, size=l0))
    n = len(g)
    h, k = rng.integers(0, lh, size=n), rng.integers(0, lk, size=n)
    x = rng.normal(size=n)
    z = rng.normal(size=n) + rng.uniform(-0.9, 0.9) * x
    f = rng.choice(list("abc"), size=n)
    fi = pd.factorize(f)[0]
    sd = lambda: float(rng.choice([0.0, 0.0, 0.05, 0.3, 1.0]))  # noqa: E731
    y = 1 + x + rng.normal(size=l0)[g] * sd() + rng.normal(size=l0)[g] * sd() * x
    y = y + rng.normal(size=l0)[g] * sd() * z + rng.normal(size=(l0, 3))[g, fi] * sd()
    y = y + rng.normal(size=lh)[h] * sd() + rng.normal(size=lh)[h] * sd() * x
    y = y + rng.normal(size=lk)[k] * sd() + rng.normal(size=n) * rng.choice([0.3, 1.0, 3.0])
    return pd.DataFrame(
        {"y": y, "x": x, "z": z, "f": f, "g": g.astype(str), "h": h.astype(str), "k": k.astype(str)}
    )


def test_where_l_bfgs_b_has_the_last_word_on_the_boundary_the_restarts_run() -> None:
    """(f || g) + (1 | h): scoring hands over to L-BFGS-B (three damped steps in a row, a
    curved valley), which stops on the boundary 2.1e-4 (relative) above the optimum."""
    data = three_groupings(29)
    formula = "y ~ x + z + (f || g) + (1 | h)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm(formula, data, reml=True)
    assert m.optsummary.extra["restarts"] > 0
    obj = objective(formula, data, True)
    lower = obj.lower()
    fungrad = Remembered(obj.value_and_gradient)
    scoring = quasi_newton(fungrad, lower, information=obj.value_gradient_information)
    alone = scoring(obj.start(), False)
    assert alone.optimizer == "scoring, then L-BFGS-B" and (alone.final[lower == 0] < 1e-4).any()
    fit = obj(m.standardized.theta)
    assert alone.fmin - fit > 1e-4 * abs(fit)


def three_slopes(groups: int, per: int, seed: int) -> pd.DataFrame:
    """``(x + z | g)``: a 3 x 3 covariance, every variance well away from 0."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x, z, e = rng.normal(size=(3, len(g)))
    b = rng.normal(size=(groups, 3)) * [1.0, 0.5, 0.3]
    y = 1 + x + b[g, 0] + b[g, 1] * x + b[g, 2] * z + e
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": g.astype(str)})


def test_a_poor_quasi_newton_hessian_is_replaced_before_the_polish_gives_up(monkeypatch) -> None:
    """L-BFGS-B stopped 1e-7 from the optimum, and five Newton steps on its BFGS
    Hessian shrank the step only linearly: the fit was then probed at the boundary
    (4 evaluations) and settled (6 differenced gradients and 2 steps). One polish on
    differenced gradients reaches the optimum right away; nothing further runs.
    (103 groups: L-BFGS-B pinned, as for one-term models above SCORED_LEVELS.)
    """
    monkeypatch.setattr(optimize, "SCORED_LEVELS", 0)
    data = three_slopes(103, 8, 0)
    m = mfx.lmm("y ~ x + z + (x + z | g)", data)
    extra = m.optsummary.extra
    assert m.optsummary.optimizer == "L-BFGS-B"
    assert extra["first_order"] == 1.0 and extra["newton_converged"] == 1.0
    assert "max_abs_gradient" not in extra  # not settled
    assert m.optsummary.feval == extra["gradient_evals"]  # no probe's values
    best, _ = refit(m, data)
    assert m.objective <= best + 1e-12 * abs(best)


def one_term(seed: int) -> tuple[str, pd.DataFrame]:
    """The one-term family the ridge turns were measured on (seeds 0 to 700): 40 to 2,000
    groups of 2 to 20 rows, up to four random effects, some variances 0."""
    forms = [
        "y ~ x + (x | g)", "y ~ x + z + (x + z | g)", "y ~ x + (x || g)",
        "y ~ x + z + (x + z || g)", "y ~ x + (1 | g)", "y ~ x + (f | g)",
        "y ~ x + z + w + (x + z + w | g)",
    ]  # fmt: skip
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([40, 70, 103, 160, 250, 600, 2000]))
    g = np.repeat(np.arange(groups), rng.integers(2, int(rng.choice([6, 10, 20])) + 1, size=groups))
    x, z, w = rng.normal(size=(3, len(g)))
    f = rng.choice(["a", "b", "c"], size=len(g))
    sd = rng.choice([0.0, 0.3, 1.0], size=4)
    b = rng.normal(size=(groups, 4)) * sd
    y = 1 + x + b[g, 0] + b[g, 1] * x + b[g, 2] * z + (f == "b") * b[g, 3] + 0.5 * w
    y = y + rng.normal(size=len(g))
    return forms[seed % len(forms)], pd.DataFrame({"y": y, "x": x, "z": z, "w": w, "f": f, "g": g})


def test_a_ridge_is_turned_to_the_side_the_objective_falls_from() -> None:
    """(x + z | g): the local optimizer stops with the middle diagonal at 0 and the last
    row's (T_21, T_22) on the side of their circle where the bound holds T_11 at 0, 0.02
    above the optimum (whose T_22 is 0 instead). Turning the circle finds it; so did the
    seven restarts, at three times the cost."""
    formula, data = one_term(1)
    with pytest.warns(mfx.SingularFitWarning):  # the optimum, too, is on the boundary
        m = mfx.lmm(formula, data)
    assert m.optsummary.extra["turns"] >= 1.0
    assert m.optsummary.extra["first_fmin"] - m.objective > 0.01
    assert "restarts" not in m.optsummary.extra
    fit, best = restarted(m, data)
    assert fit <= best + 1e-10 * abs(best)


def test_turns_are_looked_at_only_on_a_ridge() -> None:
    """A boundary optimum whose last diagonal is 0 is on no ridge: no gradient is spent.
    With the middle diagonal at 0, both ends of the last row's circle are looked at;
    with the first, both signs of the two columns of the Cholesky factor of the rest."""
    from mixedfx.engine.layout import ThetaLayout
    from mixedfx.engine.optimize import ridge_turns

    layout = ThetaLayout((3,), ((3,),))
    calls = []

    def fungrad(x):
        calls.append(x)
        return 0.0, np.ones_like(x)  # the bound holds every diagonal at 0: no local run

    lower = layout.lower()
    at = np.array([1.0, 0.2, -0.3, 0.5, 0.4, 0.0])  # T_22 = 0: nothing turns
    opt = OptSummary("scoring", at, at, lower, 1.0, 3, "near the optimum", True)
    assert ridge_turns(fungrad, opt, layout, None) == replace(opt, feval=3)  # type: ignore[arg-type]
    assert not calls
    middle = at.copy()
    middle[3], middle[5] = 0.0, 0.3  # T_11 = 0: (T_21, T_22) = (0.4, 0.3) turn
    ridge_turns(fungrad, replace(opt, final=middle), layout, None)  # type: ignore[arg-type]
    ends = np.array(calls)
    assert len(ends) == 2
    np.testing.assert_allclose(ends[:, 4], [0.5, -0.5], rtol=1e-15)
    assert (ends[:, [3, 5]] == 0.0).all() and (ends[:, :3] == at[:3]).all()
    calls.clear()
    first = np.array([0.0, 0.2, -0.3, 0.5, 0.4, 0.3])  # T_00 = 0
    ridge_turns(fungrad, replace(opt, final=first), layout, None)  # type: ignore[arg-type]
    assert len(calls) == 4
    Ts = [layout.Ts(x)[0] for x in calls]
    for T in Ts:  # every turned point is the same covariance
        np.testing.assert_allclose(T @ T.T, layout.Ts(first)[0] @ layout.Ts(first)[0].T, atol=1e-15)
    below, rest = np.array([[0.2], [-0.3]]), np.array([[0.5, 0.0], [0.4, 0.3]])
    L = np.linalg.cholesky(below @ below.T + rest @ rest.T)
    expected = [sign * L[:, m] for m in range(2) for sign in (1.0, -1.0)]
    np.testing.assert_allclose([T[1:, 0] for T in Ts], expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(
    ("formula", "ridge"),
    [
        ("y ~ x + z + (x + z | g)", {3: 0.0}),  # T_11 = 0: (T_21, T_22) turn
        ("y ~ x + z + (x + z | g)", {0: 0.0}),  # T_00 = 0: two rows below it turn
        ("y ~ x + z + f + (f || g) + (1 | h)", {1: 0.0}),  # the 3 x 3 block of f's columns
    ],
)
def test_every_turned_point_is_the_same_fit(formula: str, ridge: dict[int, float]) -> None:
    """The points ridge_turns looks at have the objective of the point they were turned
    from (to rounding): they are the same covariance, read through the real evaluator."""
    from mixedfx.engine.optimize import ridge_turns

    data = random_blocked(3)
    obj = objective(formula, data, True)
    theta = obj.start() + np.random.default_rng(11).uniform(0.1, 0.4, size=obj.ntheta)
    for i, v in ridge.items():
        theta[i] = v
    f0 = obj(theta)
    seen = []

    def fungrad(x):
        f, g = obj.value_and_gradient(x)
        seen.append(f)
        return f, np.ones_like(g)  # no local run: only the points are checked

    at = OptSummary("scoring", theta, theta, obj.lower(), f0, 0, "test", True)
    ridge_turns(fungrad, at, obj.layout, None)  # type: ignore[arg-type]
    assert len(seen) >= 2
    np.testing.assert_allclose(seen, f0, rtol=1e-12)
