"""A conditioned model: the fit's parameters and criteria, updated random effects."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mfx.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def fit(sleep: pd.DataFrame) -> mfx.LinearMixedModel:
    return mfx.lmm("Reaction ~ Days + (Days | Subject)", sleep)


# three more days of a known subject and two of a new one
GIVEN = pd.DataFrame(
    {
        "Subject": ["308", "308", "308", "400", "400"],
        "Days": [10.0, 11.0, 12.0, 0.0, 1.0],
        "Reaction": [480.0, 490.0, 500.0, 300.0, 310.0],
    }
)


def test_conditioned_model_keeps_the_fit_criteria(fit: mfx.LinearMixedModel) -> None:
    c = fit.condition(GIVEN)
    assert not fit.conditioned and fit.nobs_given == 0
    assert c.conditioned and c.nobs_given == 5
    assert c.nobs == fit.nobs == 180
    assert (c.objective, c.loglik, c.aic, c.bic) == (fit.objective, fit.loglik, fit.aic, fit.bic)
    assert np.isclose(c.bic, c.objective + np.log(c.nobs) * c.npar)
    twice = c.condition(GIVEN.head(2))  # conditioning again adds to the given rows
    assert twice.nobs_given == 7 and twice.nobs == 180 and twice.bic == fit.bic


def test_conditioned_summary_and_repr_say_so(fit: mfx.LinearMixedModel) -> None:
    c = fit.condition(GIVEN)
    text = c.summary()
    assert "Number of obs: 180," in text
    assert "Random effects conditioned on 5 given rows" in text
    assert "conditioned" not in fit.summary()
    assert "180 obs" in repr(c) and "conditioned on 5 given rows" in repr(c)


def test_saved_conditioned_model_keeps_given_count(
    fit: mfx.LinearMixedModel, tmp_path: Path
) -> None:
    c = fit.condition(GIVEN)
    c.save(tmp_path / "c.mfx")
    loaded = mfx.load(tmp_path / "c.mfx")
    assert loaded.nobs_given == 5 and loaded.nobs == 180 and loaded.bic == fit.bic


def test_predict_without_newdata_is_training_rows_with_updated_effects(
    fit: mfx.LinearMixedModel, sleep: pd.DataFrame
) -> None:
    c = fit.condition(GIVEN)
    got = c.predict()
    assert len(got) == len(sleep)  # the training rows, not the given ones
    np.testing.assert_array_equal(got, c.predict(sleep))
    np.testing.assert_array_equal(c.fitted(), got)
    np.testing.assert_allclose(c.residuals(), sleep.Reaction.to_numpy() - got)
    moved = (sleep.Subject == "308").to_numpy()  # only 308's effects changed
    assert not np.allclose(got[moved], fit.predict()[moved])
    np.testing.assert_allclose(got[~moved], fit.predict()[~moved], rtol=1e-10)


def test_model_without_training_rows_says_why(fit: mfx.LinearMixedModel, tmp_path: Path) -> None:
    fit.save(tmp_path / "m.mfx")
    loaded = mfx.load(tmp_path / "m.mfx")
    for model in (loaded, loaded.condition(GIVEN)):
        with pytest.raises(mfx.DataError) as caught:
            model.predict()
        text = str(caught.value)
        assert "loaded from a file" in text and "pass newdata" in text
        assert "conditioned" not in text  # a model conditioned in memory keeps them


# -- given checks ---------------------------------------------------------------------
def test_given_group_absent_from_newdata_warns_naming_it(fit: mfx.LinearMixedModel) -> None:
    new = pd.DataFrame({"Subject": ["308", "401"], "Days": [13.0, 2.0]})
    with pytest.warns(mfx.GivenWarning, match=r"'Subject': \['400'\]"):
        fit.predict(new, given=GIVEN)
    relabelled = GIVEN.assign(Subject=GIVEN["Subject"].map({"308": "s308", "400": "s400"}))
    with pytest.warns(mfx.GivenWarning, match=r"\['s308', 's400'\]"):
        fit.predict(new.assign(Subject=["308", "400"]), given=relabelled)


def test_given_groups_used_by_newdata_are_quiet(fit: mfx.LinearMixedModel) -> None:
    new = pd.DataFrame({"Subject": [308, 400], "Days": [13.0, 2.0]})  # ints match by value
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.MixedFXWarning)
        fit.predict(new, given=GIVEN)


def test_given_rows_of_a_cask_inform_another_cask_of_its_batch_quietly() -> None:
    m = mfx.lmm("strength ~ 1 + (1 | batch/cask)", mfx.datasets.load("pastes"))
    given = pd.DataFrame({"batch": ["A", "A"], "cask": ["a", "a"], "strength": [70.0, 71.0]})
    new = pd.DataFrame({"batch": ["A"], "cask": ["d"]})  # a new cask of batch A
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.MixedFXWarning)
        with_given = m.predict(new, given=given)
    assert with_given[0] != m.predict(new)[0]  # the batch effect moved


def without_rows(m: mfx.LinearMixedModel) -> mfx.LinearMixedModel:
    return dataclasses.replace(m, data=None)


def test_given_copies_of_training_rows_warn_that_they_count_twice(
    fit: mfx.LinearMixedModel, sleep: pd.DataFrame
) -> None:
    copies = sleep[sleep["Subject"] == "308"].head(4).astype({"Subject": str})
    fresh = copies.assign(Reaction=copies["Reaction"] + 1.0)
    with pytest.warns(mfx.GivenWarning, match=r"4 row\(s\) identical to training rows.*'308'"):
        fit.condition(copies)
    with pytest.warns(mfx.GivenWarning, match=r"2 row\(s\) identical"):
        fit.predict(copies.head(1), given=pd.concat([copies.head(2), fresh]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.GivenWarning)
        fit.condition(fresh)  # later observations of a known subject: additional rows
        fit.condition(copies.assign(Subject="999"))  # a new subject: nothing to repeat
    saved = without_rows(fit)
    with warnings.catch_warnings():  # a model without its training rows cannot tell
        warnings.simplefilter("error", mfx.GivenWarning)
        saved.condition(copies)


def test_given_of_a_known_group_adds_observations(fit: mfx.LinearMixedModel, sleep) -> None:
    """The known group's BLUPs rest on its training rows and the given rows together."""
    later = GIVEN[GIVEN["Subject"] == "308"]
    c = fit.condition(later)
    once = fit.condition(later.head(1)).condition(later.iloc[1:])
    np.testing.assert_allclose(c.b[0], once.b[0], rtol=1e-10, atol=1e-12)
    assert c.ranef["Subject"].loc["308", "Days"] > fit.ranef["Subject"].loc["308", "Days"]


def test_given_labels_match_across_dtypes(fit: mfx.LinearMixedModel) -> None:
    as_ints = GIVEN.assign(Subject=GIVEN["Subject"].astype(int))
    np.testing.assert_array_equal(fit.condition(as_ints).b[0], fit.condition(GIVEN).b[0])
    new = pd.DataFrame({"Subject": ["308", "400"], "Days": [13.0, 2.0]})
    np.testing.assert_array_equal(fit.predict(new, given=as_ints), fit.predict(new, given=GIVEN))
