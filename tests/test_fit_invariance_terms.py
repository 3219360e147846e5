"""Issue 11 with offsets and ``||`` terms of several blocks: shifts and scales do not move the fit.

As in tests/test_fit_invariance.py, each fit of transformed data is compared
with the fit of the *same* numbers in the original coordinates (the
transformed column rounded once and transformed back exactly), so only the
fit's own arithmetic is counted: 1e-8 relative (the brief's standard), and
values near a shift ``c`` within a few units in the last place of ``c``.

* Offsets: the fit standardizes the working response ``y - offset``; the
  fitted values and predictions add the offset back, and the model keeps the
  raw response. ``y + c`` moves the intercept by ``c`` and every prediction
  by ``c``; ``offset + c`` moves the intercept by ``-c`` and no prediction.
* ``(f || g)`` and ``(x || g)``: lme4's several terms on one factor, a
  block-diagonal ``T``. Such a term is only scaled, never centred, so the
  back-mapped ``T`` keeps its zero blocks exactly.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

RTOL = 1e-8
# The response and the offset on dyadic grids (2^-6, 2^-8): then y - offset, y + c and
# offset + c are exact for every shift below, so the rounding of the data, which no fit
# can undo, is not counted (the working response is rounded once more than y itself).
SLEEP = mfx.datasets.load("sleepstudy").assign(
    Reaction=lambda d: np.round(d["Reaction"] * 64) / 64,
    o=lambda d: np.round((20.0 * np.log1p(d["Days"]) + 5.0 * np.sin(d["Days"])) * 256) / 256,
)
OFFSET_FORMULA = "Reaction ~ Days + offset(o) + (Days | Subject)"
NEW = pd.DataFrame(
    {
        "Subject": ["308", "335", "999"],
        "Days": [0.5, 3.0, 12.0],
        "o": [1.0, -2.0, 7.5],
        "Reaction": [250.0, 260.0, 400.0],
    }
)


def quiet(formula: str, data: pd.DataFrame, **kw) -> mfx.LinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.lmm(formula, data, **kw)


def close(got: np.ndarray, want: np.ndarray, near: float = 0.0) -> None:
    """Relative to the expected array's scale; ``near`` adds an absolute allowance."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=near + RTOL * np.abs(want).max())


def ulps(c: float) -> float:
    return 4.0 * float(np.spacing(abs(c)))


def same_fit(m: mfx.LinearMixedModel, ref: mfx.LinearMixedModel) -> None:
    """Objective, theta, sigma, slope, BLUPs and their covariances equal."""
    assert m.objective == pytest.approx(ref.objective, rel=RTOL)
    close(m.theta, ref.theta)
    assert m.sigma == pytest.approx(ref.sigma, rel=RTOL)
    close(m.beta[1:], ref.beta[1:])
    close(m.vcov_beta, ref.vcov_beta)
    close(m.b[0], ref.b[0])
    close(m.b_condcov[0], ref.b_condcov[0])


# -- offsets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1e2, 1e6, 1e10])
@pytest.mark.parametrize("spelling", ["formula", "argument"])
def test_response_shift_with_an_offset(k: float, spelling: str) -> None:
    c = k * SLEEP["Reaction"].std()
    shifted = SLEEP.assign(Reaction=SLEEP["Reaction"] + c)
    back = shifted.assign(Reaction=shifted["Reaction"] - c)
    if spelling == "formula":
        m, ref = quiet(OFFSET_FORMULA, shifted), quiet(OFFSET_FORMULA, back)
    else:
        formula = "Reaction ~ Days + (Days | Subject)"
        m, ref = quiet(formula, shifted, offset="o"), quiet(formula, back, offset="o")
    same_fit(m, ref)
    close(m.beta[0] - c, ref.beta[0], near=ulps(c))
    assert m.response_values is not None and ref.response_values is not None
    np.testing.assert_array_equal(m.response_values, shifted["Reaction"])  # the raw response
    close(m.fitted() - c, ref.fitted(), near=ulps(c))
    close(m.fitted() - m.response_values, ref.fitted() - ref.response_values, near=ulps(c))
    new = NEW.assign(Reaction=NEW["Reaction"] + c)
    close(m.predict(new) - c, ref.predict(NEW), near=ulps(c))
    close(m.predict(new, re="none") - c, ref.predict(NEW, re="none"), near=ulps(c))
    got = m.predict(new, given=new.iloc[2:]) - c  # a new subject, given one row
    close(got, ref.predict(NEW, given=NEW.iloc[2:]), near=ulps(c))
    a, b = m.predict(new, interval="prediction"), ref.predict(NEW, interval="prediction")
    close(a["se"], b["se"])


@pytest.mark.parametrize("c", [1e2, 1e6, 1e10])
def test_offset_shift(c: float) -> None:
    """``offset + c`` is ``y - c``: the intercept moves by ``-c``, no prediction moves."""
    shifted = SLEEP.assign(o=SLEEP["o"] + c)
    back = shifted.assign(o=shifted["o"] - c)
    m, ref = quiet(OFFSET_FORMULA, shifted), quiet(OFFSET_FORMULA, back)
    same_fit(m, ref)
    close(m.beta[0] + c, ref.beta[0], near=ulps(c))
    close(m.fitted(), ref.fitted(), near=ulps(c))
    new = NEW.assign(o=NEW["o"] + c)
    close(m.predict(new), ref.predict(NEW), near=ulps(c))
    close(m.predict(new, re="none"), ref.predict(NEW, re="none"), near=ulps(c))
    close(m.predict(new, given=new.iloc[2:]), ref.predict(NEW, given=NEW.iloc[2:]), near=ulps(c))


# -- uncorrelated terms of several blocks ----------------------------------------------------
def factor_data(seed: int = 5) -> pd.DataFrame:
    """Three-level f within 12 groups, with a full covariance of f's effects per group."""
    rng = np.random.default_rng(seed)
    n = 360
    g = rng.integers(0, 12, size=n)
    f = rng.integers(0, 3, size=n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    L = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.4, 0.7]])
    u = rng.normal(size=(12, 3)) @ L.T
    slopes = rng.normal(size=(12, 2)) * [0.7, 0.4]
    y = 2.0 + 0.5 * x + u[g, f] + slopes[g, 0] * x + slopes[g, 1] * z + rng.normal(size=n)
    return pd.DataFrame(
        {"y": y, "x": x, "z": z, "f": np.array(["a", "b", "c"])[f], "g": g.astype(str)}
    )


def off_block_zero(m: mfx.LinearMixedModel) -> None:
    """Every T of the model (and the one its standardized theta maps to) zero off its blocks."""
    layout, coords = m.spec.layout, m.standardized.coords
    mapped = coords.Ts(layout.Ts(m.standardized.theta))
    for t, T, U in zip(m.spec.terms, m.Ts(), mapped, strict=True):
        block = np.repeat(np.arange(len(t.blocks)), t.blocks)
        outside = block[:, None] != block[None, :]
        assert not T[outside].any() and not U[outside].any()  # exactly zero
        np.testing.assert_array_equal(T, U)  # theta holds all of the mapped T


def shift_and_scale(formula: str, sy: float, cy: float):
    data = factor_data()
    new = data.assign(y=data["y"] * sy + cy)
    back = new.assign(y=(new["y"] - cy) / sy)
    m, ref = quiet(formula, new), quiet(formula, back)
    off_block_zero(m)
    off_block_zero(ref)
    n, p = m.nobs, len(m.beta)
    assert m.objective - 2 * (n - p) * np.log(sy) == pytest.approx(ref.objective, rel=RTOL)
    assert m.sigma == pytest.approx(sy * ref.sigma, rel=RTOL)
    close(m.beta[1:], sy * ref.beta[1:])
    close(m.fitted(), sy * ref.fitted() + cy, near=ulps(cy))
    return m, ref


@pytest.mark.parametrize(("sy", "cy"), [(1.0, 1e8), (1e-6, 0.0), (1e6, -1e3)])
def test_uncorrelated_factor_term(sy: float, cy: float) -> None:
    """``(0 + x + f || g)`` = ``(0 + x | g) + (0 + f | g)``: blocks 1 and 3; y moved."""
    m, ref = shift_and_scale("y ~ x + (0 + x + f || g)", sy, cy)
    assert m.spec.terms[0].blocks == (1, 3)
    close(m.theta, ref.theta)
    close(m.b[0], sy * ref.b[0])
    close(m.b_condcov[0], sy**2 * ref.b_condcov[0])


def test_unidentified_uncorrelated_factor_term() -> None:
    """``(f || g)`` = ``(1 | g) + (0 + f | g)``, as lme4 expands it.

    The intercept's variance and a common part of f's covariance are one
    parameter (f's indicators sum to the intercept), so theta is not unique
    (lme4's neither): only what the likelihood determines is compared, and T
    keeps its zero blocks.
    """
    m, ref = shift_and_scale("y ~ x + (f || g)", 1.0, 1e8)
    assert m.spec.terms[0].blocks == (1, 3)


@pytest.mark.parametrize("s", [1e-5, 3.0, 1e5])
def test_uncorrelated_blocks_scale_exactly(s: float) -> None:
    """``(0 + x + z + f || g)``: blocks 1, 1, 3; x in other units changes only x's row of T."""
    data = factor_data(7)
    formula = "y ~ x + (0 + x + z + f || g)"
    new = data.assign(x=data["x"] * s)
    back = new.assign(x=new["x"] / s)
    m, ref = quiet(formula, new), quiet(formula, back)
    assert m.spec.terms[0].blocks == (1, 1, 3)
    off_block_zero(m)
    assert m.objective - 2 * np.log(s) == pytest.approx(ref.objective, rel=RTOL)
    want = ref.Ts()[0]
    want[0] = want[0] / s  # the row of x's column
    close(m.Ts()[0], want)
    close(m.fitted(), ref.fitted())
    rows = back.head(5)
    close(m.predict(rows.assign(x=rows["x"] * s)), ref.predict(rows))
