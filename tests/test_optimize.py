"""The optimizer's safeguards (optimize.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mixedfx as mfx
from mixedfx.optimize import OptSummary, confirm, gradient
from oracle import refit

DATA = Path(__file__).parent / "data"


def test_gradient_central_and_one_sided() -> None:
    fun = lambda x: float((x[0] - 1.0) ** 2 + 3.0 * x[1])  # noqa: E731
    g = gradient(fun, np.array([0.0, 0.0]), np.array([-np.inf, 0.0]))
    np.testing.assert_allclose(g, [-2.0, 3.0], rtol=1e-6)


def test_confirm_restarts_only_when_the_gradient_is_not_flat() -> None:
    fun = lambda x: float((x[0] - 2.0) ** 2)  # noqa: E731
    lower = np.array([0.0])
    far = OptSummary("test", np.ones(1), np.array([1.0]), lower, 1.0, 5, "ftol reached", True)
    fixed = confirm(fun, far)
    assert fixed.extra["gradient_restart"] == 1.0
    assert abs(fixed.final[0] - 2.0) < 1e-4 and fixed.fmin < 1e-8
    at = OptSummary("test", np.ones(1), np.array([2.0]), lower, 0.0, 5, "ftol reached", True)
    assert "gradient_restart" not in confirm(fun, at).extra


def test_premature_ftol_stop_is_caught() -> None:
    """A design on which BOBYQA stopped after 22 evaluations, 1.4e-3 above the optimum."""
    data = pd.read_csv(DATA / "premature_stop.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = mfx.lmm("y ~ x + (1 | g) + (1 | h)", data, reml=True)
    best, _ = refit(m, data)
    assert m.objective <= best + 1e-8 * abs(best)
