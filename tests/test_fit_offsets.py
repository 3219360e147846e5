"""Offsets: ``offset(expr)`` in the formula and ``lmm(offset=...)``, added to the linear predictor.

The fit is on ``y - offset``; fitted values and every prediction mode add the
offset back, so new data must supply what the offset reads. Also the two
hooks of the GLMM: ``DesignSpec.offset(rows)`` and a ``cbind`` response.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from mixedfx.frame import design as design_mod


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mfx.datasets.load("sleepstudy").assign(exposure=lambda d: np.log1p(d["Days"]) * 5)


def test_the_spellings_agree(sleep: pd.DataFrame) -> None:
    by_formula = mfx.lmm("Reaction ~ Days + offset(exposure) + (Days | Subject)", sleep)
    by_name = mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep, offset="exposure")
    by_array = mfx.lmm(
        "Reaction ~ Days + (Days | Subject)", sleep, offset=sleep["exposure"].to_numpy()
    )
    shifted = mfx.lmm(
        "y ~ Days + (Days | Subject)", sleep.assign(y=sleep["Reaction"] - sleep["exposure"])
    )
    for m in (by_name, by_array, shifted):
        assert m.objective == pytest.approx(by_formula.objective, rel=1e-12)
        np.testing.assert_allclose(m.theta, by_formula.theta, rtol=1e-8)
        np.testing.assert_allclose(m.beta, by_formula.beta, rtol=1e-10)
    np.testing.assert_allclose(
        by_formula.fitted(), shifted.fitted() + sleep["exposure"], rtol=1e-12
    )
    np.testing.assert_allclose(by_formula.residuals(), shifted.residuals(), atol=1e-9)
    np.testing.assert_allclose(by_name.fitted(), by_formula.fitted(), rtol=1e-12)
    np.testing.assert_allclose(by_array.predict(), by_formula.fitted(), rtol=1e-12)


def test_offsets_are_summed(sleep: pd.DataFrame) -> None:
    two = mfx.lmm("Reaction ~ Days + offset(exposure) + offset(Days) + (1 | Subject)", sleep)
    one = mfx.lmm("Reaction ~ Days + offset(exposure + Days) + (1 | Subject)", sleep)
    also = mfx.lmm("Reaction ~ Days + offset(Days) + (1 | Subject)", sleep, offset="exposure")
    for m in (one, also):
        assert m.objective == pytest.approx(two.objective, rel=1e-12)
        np.testing.assert_allclose(m.fitted(), two.fitted(), rtol=1e-12)
    assert two.fixef["Days"] == pytest.approx(one.fixef["Days"], rel=1e-10)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"re": "none"},
        {"re": "(1 | Subject)"},
        {"interval": "confidence"},
        {"interval": "prediction", "new_levels": "population"},
    ],
)
def test_every_prediction_mode_adds_the_offset(sleep: pd.DataFrame, options: dict) -> None:
    m = mfx.lmm("Reaction ~ Days + offset(exposure) + (Days | Subject)", sleep)
    plain = mfx.lmm(
        "y ~ Days + (Days | Subject)", sleep.assign(y=sleep["Reaction"] - sleep["exposure"])
    )
    new = pd.DataFrame({"Subject": ["308", "999"], "Days": [11.0, 3.0]})
    new["exposure"] = [2.0, -1.0]
    ours, base = m.predict(new, **options), plain.predict(new, **options)
    if isinstance(ours, pd.DataFrame):
        np.testing.assert_allclose(ours["se"], base["se"], rtol=1e-6)
        ours, base = ours["fit"], base["fit"]
    np.testing.assert_allclose(np.asarray(ours), np.asarray(base) + new["exposure"], rtol=1e-6)


def test_given_rows_use_the_offset(sleep: pd.DataFrame) -> None:
    m = mfx.lmm("Reaction ~ Days + offset(exposure) + (Days | Subject)", sleep)
    plain = mfx.lmm(
        "y ~ Days + (Days | Subject)", sleep.assign(y=sleep["Reaction"] - sleep["exposure"])
    )
    given = sleep[sleep["Subject"] == "308"].head(3).assign(Subject="new")
    new = pd.DataFrame({"Subject": ["new"], "Days": [5.0], "exposure": [1.5]})
    given_plain = given.assign(y=given["Reaction"] - given["exposure"])
    np.testing.assert_allclose(
        m.predict(new, given=given), plain.predict(new, given=given_plain) + 1.5, rtol=1e-6
    )


def test_new_data_must_supply_the_offset(sleep: pd.DataFrame) -> None:
    new = pd.DataFrame({"Subject": ["308"], "Days": [1.0]})
    m = mfx.lmm("Reaction ~ Days + offset(log1p(exposure)) + (1 | Subject)", sleep)
    with pytest.raises(mfx.DataError, match=r"offset column\(s\) \['exposure'\] missing"):
        m.predict(new)
    by_name = mfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, offset="exposure")
    with pytest.raises(mfx.DataError, match=r"\['exposure'\] missing"):
        by_name.predict(new)
    by_array = mfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, offset=np.ones(len(sleep)))
    with pytest.raises(mfx.DataError, match=r"'\(offset\)'.*offset= an array"):
        by_array.predict(new)
    assert by_array.predict(new.assign(**{"(offset)": 1.0}))[0] == pytest.approx(
        by_array.predict(new.assign(**{"(offset)": 0.0}))[0] + 1.0
    )


def test_bad_offsets_are_refused(sleep: pd.DataFrame) -> None:
    with pytest.raises(mfx.DataError, match="offset has 3 values for 180 rows"):
        mfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, offset=np.ones(3))
    with pytest.raises(mfx.DataError, match=r"offset column\(s\) \['nothing'\]"):
        mfx.lmm("Reaction ~ Days + (1 | Subject)", sleep, offset="nothing")
    holes = sleep.assign(exposure=sleep["exposure"].where(sleep.index != 7))
    with pytest.raises(mfx.DataError, match="'exposure' \\(1\\)"):
        mfx.lmm("Reaction ~ Days + (1 | Subject)", holes, offset="exposure")
    with pytest.warns(mfx.MissingDataWarning, match="dropped 1"):
        m = mfx.lmm("Reaction ~ Days + offset(exposure) + (1 | Subject)", holes, missing="drop")
    assert m.nobs == 179


def test_saved_models_keep_their_offsets(sleep: pd.DataFrame, tmp_path) -> None:
    new = pd.DataFrame({"Subject": ["308", "999"], "Days": [11.0, 3.0], "exposure": [2.0, 1.0]})
    for kw, formula in [
        ({}, "Reaction ~ Days + offset(2 * exposure) + (Days | Subject)"),
        ({"offset": "exposure"}, "Reaction ~ Days + (Days | Subject)"),
    ]:
        m = mfx.lmm(formula, sleep, **kw)
        m.save(tmp_path / "m.mfx")
        loaded = mfx.load(tmp_path / "m.mfx")
        np.testing.assert_array_equal(loaded.predict(new), m.predict(new))


# -- the GLMM's hooks -----------------------------------------------------------------------------
def test_offset_hook_of_the_design(sleep: pd.DataFrame) -> None:
    """``DesignSpec.offset(rows)``: the summed offset of any rows, shape (n,)."""
    m = mfx.lmm("Reaction ~ Days + offset(exposure) + (1 | Subject)", sleep, offset="Days")
    rows = sleep.head(4)
    np.testing.assert_allclose(m.spec.offset(rows), rows["exposure"] + rows["Days"], rtol=1e-15)
    plain = mfx.lmm("Reaction ~ Days + (1 | Subject)", sleep)
    np.testing.assert_array_equal(plain.spec.offset(rows), np.zeros(4))


def test_cbind_response_is_for_the_glmm(sleep: pd.DataFrame) -> None:
    data = sleep.assign(s=np.round(sleep["Reaction"] / 10), f=40.0)
    with pytest.raises(mfx.FormulaError, match=r"mfx\.glmm\(\.\.\., family='binomial'\)"):
        mfx.lmm("cbind(s, f) ~ Days + (1 | Subject)", data)
    design, arrays = design_mod.learn(
        "cbind(s, f - s) ~ Days + offset(exposure) + (1 | Subject)", data, two_column=True
    )
    assert arrays.y.shape == (len(data), 2)
    np.testing.assert_array_equal(arrays.y[:, 1], data["f"] - data["s"])
    np.testing.assert_array_equal(arrays.offset, data["exposure"])
    np.testing.assert_array_equal(design.response_values(data.head(2)), arrays.y[:2])
