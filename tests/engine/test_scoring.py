"""Fisher scoring on the average information (scoring.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_descent import even_saddle, quadratic
from test_gradient import LARGE, crossed, objective

from mixedfx.engine import scoring
from mixedfx.engine.descent import descend
from mixedfx.engine.optimize import quasi_newton
from mixedfx.engine.scoring import SHRINK, SNAP, newton_step, score


def with_information(fungrad, hess: np.ndarray):
    """``fgh`` from a value-and-gradient function and a fixed matrix as the information."""

    def fgh(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        f, g = fungrad(x)
        return f, g, hess

    return fgh


def test_one_step_on_a_quadratic_with_its_hessian() -> None:
    hess = np.array([[4.0, 1.0], [1.0, 3.0]])
    fungrad = quadratic(np.array([0.7, -0.3]), hess)
    d = score(with_information(fungrad, hess), fungrad, np.ones(2), np.array([0.0, -np.inf]))
    # one full step lands on the minimum; the next is predicted as 0 and not taken
    assert d.evals == 2 and d.status == "near the optimum" and d.converged
    np.testing.assert_allclose(d.x, [0.7, -0.3], rtol=0, atol=1e-15)
    assert d.method == "scoring"


def test_a_step_across_zero_shrinks_the_diagonal_instead() -> None:
    """The full step would put x0 at 0 (a saddle for an even objective): it goes to 0.1 x0."""
    x, lower = np.array([0.5, 1.0]), np.array([0.0, -np.inf])
    longest, snap = scoring._longest(x, np.array([-2.0, 1.0]), lower)
    assert not snap.any()
    assert longest == pytest.approx((1 - SHRINK) * 0.5 / 2.0, rel=1e-15)
    moved = scoring._moved(x, np.array([-2.0, 1.0]), lower, longest, snap)
    assert moved[0] == pytest.approx(SHRINK * 0.5, rel=1e-15)
    tiny = np.array([0.5 * SNAP / SHRINK, 1.0])  # a step would leave it within SNAP: to 0
    longest, snap = scoring._longest(tiny, np.array([-2.0, 1.0]), lower)
    assert longest == 1.0 and list(snap) == [True, False]
    assert scoring._moved(tiny, np.array([-2.0, 1.0]), lower, 1.0, snap)[0] == 0.0


def test_an_overshooting_information_does_not_strand_it_at_the_saddle() -> None:
    """Curvature 1 in x0 asks for a full step from 1 to -0.5: projected, 0 would be final."""
    fgh = with_information(even_saddle, np.diag([1.0, 2.0]))
    d = score(fgh, even_saddle, np.array([1.0, 1.0]), np.array([0.0, -np.inf]))
    np.testing.assert_allclose(d.x, [0.5, 0.3], rtol=0, atol=1e-6)


def test_without_a_lower_point_l_bfgs_b_goes_on() -> None:
    """Scoring given a gradient of the wrong sign finds nothing lower; L-BFGS-B (on the
    right one) takes over from its point, as it does where the information is not definite."""
    center = np.array([0.7, -0.3])
    fungrad = quadratic(center, np.diag([2.0, 1.0]))

    def wrong(x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        f, g = fungrad(x)
        return f, -g, np.eye(2)

    free = np.array([-np.inf, -np.inf])
    for fgh, status in [
        (wrong, "no lower point along the scoring direction"),
        (with_information(fungrad, -np.eye(2)), "average information singular"),
    ]:
        d = score(fgh, fungrad, np.ones(2), free)
        assert d.method == "scoring, then L-BFGS-B" and d.status.startswith(status)
        np.testing.assert_allclose(d.x, center, rtol=0, atol=1e-6)


def test_newton_step_on_singular_and_semidefinite_information() -> None:
    g = np.array([1.0, -2.0])
    assert newton_step(np.zeros((2, 2)), g, np.ones(2, bool)) is None
    semi = np.array([[1.0, 0.0], [0.0, 0.0]])  # a term whose theta is 0: a zero row
    step = newton_step(semi, g, np.ones(2, bool))
    assert step is not None and step[0] == pytest.approx(-1.0, rel=1e-9)
    held = newton_step(np.diag([4.0, 1.0]), g, np.array([True, False]))
    assert held is not None and list(held) == [-0.25, 0.0]


COMPARED = [LARGE[i] for i in (3, 5, 7, 9)]  # the others take 20 to 70 s per optimizer


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("formula", "users", "schur"), COMPARED)
def test_never_above_l_bfgs_b_and_at_its_optimum_where_it_converged(
    formula, users, schur, reml
) -> None:
    """Each followed by the Newton polish, as in a fit.

    Where L-BFGS-B met the first-order conditions, scoring's theta agrees with
    its to the polish's precision. Where it did not ((f || u) with 400 users:
    L-BFGS-B's first step put a diagonal at 0 and it stopped there, 120 units
    higher), scoring is lower.
    """
    obj = objective(formula, crossed(6000, users, 700), reml, schur)
    lower, start = obj.lower(), obj.start()
    old = quasi_newton(obj.blocked, lower)(start, False)
    new = quasi_newton(obj.blocked, lower, information=obj.value_gradient_information)(start, False)
    assert new.optimizer in ("scoring", "scoring, then L-BFGS-B")
    assert new.fmin <= old.fmin + 1e-12 * abs(old.fmin)
    if old.extra["first_order"] and new.extra["first_order"]:
        scale = np.abs(old.final).max()
        np.testing.assert_allclose(new.final, old.final, rtol=0, atol=1e-8 * scale)


def test_a_ridge_of_equal_optima_ends_early() -> None:
    """A rank-deficient 3 x 3 covariance: theta is not unique along a ridge.

    Steps along the ridge are long and predict no decrease an evaluation could
    confirm; scoring stops there (it wandered for 191 evaluations without the
    rule) and L-BFGS-B's answer is no lower.
    """
    from test_gradient import load

    obj = objective("y ~ x + (f || u) + (1 | i)", load("crossed"), True)
    lower = obj.lower()
    start = np.where(lower == 0.0, 0.5, 0.0)
    d = score(obj.value_gradient_information, obj.blocked, start, lower)
    assert d.status == "near the optimum" and d.evals <= 60
    lbfgs = descend(obj.blocked, start, lower)
    assert d.f <= lbfgs.f + 1e-10 * abs(lbfgs.f)
