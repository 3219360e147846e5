"""lme4's formula spellings give lme4's numbers (tests/reference/make_formulas.R).

Transforms of the response and of predictors (``I(Days^2)``, ``log``,
``sqrt``...), ``scale()`` and ``poly()`` learned on training rows and
reused on new data, ``factor()``, offsets, ``^2`` expansion and ``(f || g)``
with a factor. Two checks per case:

* the design: at lme4's theta, a dense computation from mixedfx's design
  of the training and new rows (X, Z, the transformed response, offsets)
  gives lme4's objective, fitted values and predictions to 1e-8: the
  formula means what it means in lme4, to rounding;
* the fit: objective to 1e-6 (relative, and never above lme4's), theta,
  sigma and the fixed effects (by lme4's names) to 1e-4, fitted values and
  predictions to 1e-5. Where lme4's optimizer stops short of the optimum
  (mixedfx's objective is lower by up to 2.5e-7), theta differs by up to
  1.5e-4 and predictions by up to 4e-6, which is why these are not 1e-6:
  the design check above holds those to 1e-8.

The shift and scale cases of the same file test the fit's invariance (the
numerics), not spellings.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx import fit as fit_mod
from mixedfx.engine import optimize
from mixedfx.engine.optimize import fit_theta, scored
from oracle import predict_at
from tolerance import assert_close

REFERENCE = json.loads((Path(__file__).parent / "reference" / "lme4_formulas.json").read_text())
CASES = sorted(k for k in REFERENCE if not k.startswith(("shift_", "scale_")))
OFFSET_ARGUMENT = "offset_argument"  # lmer(offset = Days * 2)
# lme4 stops early on this over-parameterised design (degenerate Hessian, see its
# lme4_conv_messages); mixedfx reaches a lower objective: checked separately below
NOT_CONVERGED = {k for k in CASES if not REFERENCE[k]["converged"]}


def training(case: dict) -> pd.DataFrame:
    """The case's training rows, typed as in R."""
    if "data" not in case:
        return mfx.datasets.load(case["dataset"])
    df = pd.DataFrame(case["data"])
    for col, kind in case["column_types"].items():
        if kind in ("factor", "ordered"):
            levels = case["factor_levels"][col]
            df[col] = pd.Categorical(df[col].astype(str), levels, ordered=kind == "ordered")
        elif kind == "string":
            df[col] = df[col].astype(str)
        else:
            df[col] = df[col].astype(float if kind == "double" else int)
    return df


_FITS: dict[str, mfx.LinearMixedModel] = {}


def fit(name: str) -> mfx.LinearMixedModel:
    if name not in _FITS:
        case = REFERENCE[name]
        data = training(case)
        kw = {"offset": 2 * data["Days"].to_numpy()} if name == OFFSET_ARGUMENT else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mfx.SingularFitWarning)
            _FITS[name] = mfx.lmm(case["formula"], data, reml=case["reml"], **kw)
    return _FITS[name]


def close(actual: np.ndarray, expected: list[float], rtol: float) -> None:
    expected_ = np.asarray(expected, dtype=float)
    np.testing.assert_allclose(actual, expected_, rtol=rtol, atol=rtol * np.abs(expected_).max())


def new_rows(name: str) -> tuple[pd.DataFrame, str]:
    """The case's new rows, and the suffix of lme4's predictions to compare with."""
    new = pd.DataFrame(REFERENCE[name]["newdata"])
    if name != OFFSET_ARGUMENT:
        return new, ""
    new["(offset)"] = 2 * new["Days"]  # lme4's predict(newdata) drops offset=; mixedfx keeps it
    return new, "_with_offset"


@pytest.mark.parametrize("name", CASES)
def test_design_at_lme4s_theta_gives_lme4s_numbers(name: str) -> None:
    m, ref = fit(name), REFERENCE[name]
    train = m.data
    assert train is not None
    theta = np.array([ref["theta"][k] for k in ref["theta_order"]])
    new, suffix = new_rows(name)
    obj, _, _ = predict_at(m, train, train, theta)
    assert obj == pytest.approx(ref["objective"], rel=1e-9)
    _, fitted, _ = predict_at(m, train, train, theta)
    close(fitted, ref["fitted"], 1e-8)
    _, pred_all, pred_none = predict_at(m, train, new, theta)
    close(pred_all, ref["pred_all" + suffix], 1e-8)
    close(pred_none, ref["pred_none" + suffix], 1e-8)


@pytest.mark.parametrize("name", sorted(set(CASES) - NOT_CONVERGED))
def test_objective_theta_fixef(name: str) -> None:
    m, ref = fit(name), REFERENCE[name]
    assert m.objective == pytest.approx(ref["objective"], rel=1e-6)
    assert m.objective <= ref["objective"] + 1e-9 * abs(ref["objective"])
    assert m.spec.theta_names() == ref["theta_order"]
    close(m.theta, [ref["theta"][k] for k in ref["theta_order"]], 1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    assert list(m.fixef.index) == ref["fixef_order"]
    close(m.fixef.to_numpy(), [ref["fixef"][k] for k in ref["fixef_order"]], 1e-4)


@pytest.mark.parametrize("name", sorted(set(CASES) - NOT_CONVERGED))
def test_fitted_and_predictions(name: str) -> None:
    """Fitted values and predictions on new data (new Days for scale/poly, an unseen group)."""
    m, ref = fit(name), REFERENCE[name]
    close(m.fitted(), ref["fitted"], 1e-5)
    new, suffix = new_rows(name)
    close(m.predict(new), ref["pred_all" + suffix], 1e-5)
    close(m.predict(new, re="none"), ref["pred_none" + suffix], 1e-5)


@pytest.mark.parametrize("name", sorted(NOT_CONVERGED))
def test_where_lme4_stops_early_mixedfx_is_at_least_as_good(name: str) -> None:
    m, ref = fit(name), REFERENCE[name]
    assert m.spec.theta_names() == ref["theta_order"]
    assert list(m.fixef.index) == ref["fixef_order"]
    assert m.objective <= ref["objective"] + 1e-6 * abs(ref["objective"])


def test_double_bar_with_a_factor_is_lme4s_expansion() -> None:
    """(f || g) = (1 | g) + (0 + f | g): the same fit as the explicit spelling.

    The model is over-parameterised (an intercept and every level of f), so
    theta is not identified along a ridge: compare the objective and the
    predictions, which the ridge leaves unchanged.
    """
    a, b = fit("fg_double_bar"), fit("fg_zero_f")
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert a.spec.theta_names() == b.spec.theta_names()
    assert a.spec.terms[0].blocks == (1, 3)
    new = pd.DataFrame(REFERENCE["fg_double_bar"]["newdata"])
    np.testing.assert_allclose(a.predict(new), b.predict(new), rtol=1e-6)


DOUBLE_BAR = sorted(k for k in CASES if "||" in REFERENCE[k]["formula"])


@pytest.mark.parametrize("scored_levels", [optimize.SCORED_LEVELS, 0])
@pytest.mark.parametrize("name", DOUBLE_BAR)
def test_gradient_optimizer_on_double_bar_terms_reaches_lme4s_optimum(
    name: str, scored_levels: int, monkeypatch
) -> None:
    """The blocked factor and Fisher scoring (large models' path) on ``||`` terms: lme4's optimum.

    Here the objective is made to use the blocked factor, whose analytic
    gradient and average information read only the entries of the
    block-diagonal ``T`` that theta holds, so :func:`fit_theta` uses scoring
    with two or more terms or few levels, else L-BFGS-B (``optimize.scored``).
    ``lmm`` fits the sleepstudy case with BOBYQA on the dense evaluator (it is small), and
    ``(f || g)``'s 20 groups x 4 columns with this same path. One-term
    models are also fitted as if they had more levels than SCORED_LEVELS
    (``scored_levels=0``): by L-BFGS-B.
    """
    monkeypatch.setattr(optimize, "SCORED_LEVELS", scored_levels)
    case = REFERENCE[name]
    design, arrays = fit_mod.learn_design(case["formula"], training(case))
    coords, blocks = fit_mod.form_blocks(design, arrays)
    obj = fit_mod.make_objective(design, blocks, case["reml"])
    obj.__dict__["dense"] = None  # the blocked path, whatever the size
    opt = fit_theta(obj)
    assert opt.optimizer.startswith("scoring") if scored(blocks) else opt.optimizer == "L-BFGS-B"
    fmin = coords.objective(opt.fmin, case["reml"])  # the user's criterion
    ref, m = case["objective"], fit(name)
    assert fmin <= ref + 1e-9 * abs(ref)  # never above lme4's
    # the two paths polish the same optimum with Newton steps: objectives agree to rounding
    assert fmin == pytest.approx(m.objective, rel=1e-12)
    if name in NOT_CONVERGED:  # over-parameterised (see below): theta is not identified
        return
    assert fmin == pytest.approx(ref, rel=1e-6)
    theta = design.layout.theta(coords.Ts(design.layout.Ts(opt.final)))  # the user's theta
    close(theta, [case["theta"][k] for k in case["theta_order"]], 1e-4)  # as lme4 above
    # theta located to the precision of the sums on both paths (as row orders, Dask)
    assert_close(theta, m.theta, 1e-10)
