"""MixedLMRegressor: the scikit-learn estimator against the direct API, and sklearn tooling."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    GroupKFold,
    KFold,
    cross_val_score,
)
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from mixedfx.estimator import MixedLMRegressor, quote  # noqa: E402

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep() -> pd.DataFrame:
    return mfx.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def Xy(sleep: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return sleep[["Days", "Subject"]], sleep["Reaction"]


@pytest.fixture(scope="module")
def direct(sleep: pd.DataFrame) -> mfx.LinearMixedModel:
    return mfx.lmm(FORMULA, sleep)


def new_subjects(sleep: pd.DataFrame) -> pd.DataFrame:
    """Two subjects' rows relabelled as subjects never seen in training."""
    rows = sleep[sleep["Subject"].astype(str).isin(["308", "309"])].copy()
    rows["Subject"] = rows["Subject"].astype(str).map({"308": "new1", "309": "new2"})
    return rows


# -- same numbers as the direct API ------------------------------------------------------
def test_formula_mode_matches_direct_api(sleep, Xy, direct):
    X, y = Xy
    est = MixedLMRegressor(FORMULA).fit(X, y)
    assert est.formula_ == FORMULA
    assert est.response_ == "Reaction"
    assert est.n_features_in_ == 2
    assert list(est.feature_names_in_) == ["Days", "Subject"]
    np.testing.assert_allclose(est.model_.fixef, direct.fixef, rtol=1e-10)
    np.testing.assert_allclose(est.model_.theta, direct.theta, rtol=1e-10)
    np.testing.assert_allclose(est.predict(X), direct.predict(sleep), rtol=1e-12)
    np.testing.assert_allclose(
        est.predict(X, re="none"), direct.predict(sleep, re="none"), rtol=1e-12
    )
    np.testing.assert_allclose(
        est.predict(X, re="(1 | Subject)"), direct.predict(sleep, re="(1 | Subject)"), rtol=1e-12
    )
    assert est.score(X, y) == pytest.approx(r2_score(y, direct.fitted()), rel=1e-12)


def test_groups_mode_equals_formula_mode(sleep, Xy, direct):
    X, y = Xy
    est = MixedLMRegressor(groups="Subject", random="1 + Days").fit(X, y)
    assert est.formula_ == "y ~ Days + (1 + Days | Subject)"
    assert est.response_ == "y"
    np.testing.assert_allclose(est.model_.fixef, direct.fixef, rtol=1e-10)
    np.testing.assert_allclose(est.model_.objective, direct.objective, rtol=1e-12)
    np.testing.assert_allclose(est.predict(X), direct.predict(sleep), rtol=1e-12)
    new = new_subjects(sleep)
    with pytest.warns(mfx.NewLevelWarning):
        got = est.predict(new[["Days", "Subject"]])
    np.testing.assert_allclose(got, direct.predict(new, re="none"), rtol=1e-12)


def test_groups_mode_uses_every_other_column_with_quoting(sleep):
    rng = np.random.default_rng(1)
    X = sleep[["Days", "Subject"]].assign(
        **{"noise col": rng.normal(size=len(sleep)), "kind": rng.choice(["a", "b"], len(sleep))}
    )
    est = MixedLMRegressor(groups="Subject", response="Reaction", reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        est.fit(X, sleep["Reaction"])
    assert est.formula_ == "Reaction ~ Days + `noise col` + kind + (1 | Subject)"
    direct = mfx.lmm(est.formula_, X.assign(Reaction=sleep["Reaction"]), reml=False)
    assert list(est.model_.fixef.index) == ["(Intercept)", "Days", "`noise col`", "kindb"]
    np.testing.assert_allclose(est.predict(X), direct.predict(X), rtol=1e-12)


def test_groups_mode_with_only_the_group_column(sleep):
    est = MixedLMRegressor(groups="Subject").fit(sleep[["Subject"]], sleep["Reaction"])
    assert est.formula_ == "y ~ 1 + (1 | Subject)"
    direct = mfx.lmm("Reaction ~ 1 + (1 | Subject)", sleep)
    np.testing.assert_allclose(est.predict(sleep[["Subject"]]), direct.predict(sleep))


def test_quote():
    assert quote("Days") == "Days"
    assert quote("_x1") == "`_x1`"  # not an R name
    assert quote("function") == "`function`"  # an R reserved word
    assert quote("noise col") == "`noise col`"
    assert quote("a.b") == "`a.b`"
    assert quote("class") == "`class`"
    assert quote("1x") == "`1x`"
    with pytest.raises(ValueError, match="backtick"):
        quote("a`b")


def test_y_as_list_array_and_column_vector(Xy, direct):
    X, y = Xy
    expected = direct.predict(X)
    for yy in (y.tolist(), y.to_numpy(), y.to_numpy()[:, None]):
        est = MixedLMRegressor(FORMULA).fit(X, yy)
        np.testing.assert_allclose(est.predict(X), expected, rtol=1e-10)


def test_y_matched_by_position_not_index(Xy, direct):
    X, y = Xy
    shuffled_index = pd.Series(y.to_numpy(), index=y.index[::-1])
    est = MixedLMRegressor(FORMULA).fit(X, shuffled_index)
    np.testing.assert_allclose(est.predict(X), direct.predict(X), rtol=1e-10)


def test_fit_does_not_modify_X(Xy):
    X, y = Xy
    before = X.copy()
    MixedLMRegressor(FORMULA).fit(X, y)
    pd.testing.assert_frame_equal(X, before)


# -- new levels and given rows --------------------------------------------------------
def test_new_levels_default_and_override(sleep, Xy):
    X, y = Xy
    new = new_subjects(sleep)[["Days", "Subject"]]
    est = MixedLMRegressor(groups="Subject", random="1 + Days", new_levels="nan").fit(X, y)
    with pytest.warns(mfx.NewLevelWarning):
        assert np.isnan(est.predict(new)).all()
    with pytest.warns(mfx.NewLevelWarning):
        assert np.isfinite(est.predict(new, new_levels="population")).all()
    with warnings.catch_warnings():  # "error" raises, without a NewLevelWarning first
        warnings.simplefilter("error", mfx.NewLevelWarning)
        with pytest.raises(mfx.DataError, match="not seen"):
            est.predict(new, new_levels="error")


def test_given_frame_and_pair_match_direct_api(sleep, Xy, direct):
    X, y = Xy
    new = new_subjects(sleep)
    first = new[new["Days"] < 3]
    later = new[new["Days"] >= 3]
    expected = direct.predict(later, given=first)

    est = MixedLMRegressor(FORMULA).fit(X, y)
    np.testing.assert_allclose(est.predict(later[["Days", "Subject"]], given=first), expected)
    pair = (first[["Days", "Subject"]], first["Reaction"])
    np.testing.assert_allclose(est.predict(later[["Days", "Subject"]], given=pair), expected)

    grp = MixedLMRegressor(groups="Subject", random="1 + Days").fit(X, y)
    np.testing.assert_allclose(
        grp.predict(later[["Days", "Subject"]], given=first.rename(columns={"Reaction": "y"})),
        expected,
        rtol=1e-10,
    )
    np.testing.assert_allclose(grp.predict(later[["Days", "Subject"]], given=pair), expected)
    with pytest.raises(ValueError, match="column 'y'"):
        grp.predict(later[["Days", "Subject"]], given=first)


def test_predict_interval(sleep, Xy, direct):
    X, y = Xy
    est = MixedLMRegressor(FORMULA).fit(X, y)
    got = est.predict_interval(X, level=0.9)
    pd.testing.assert_frame_equal(got, direct.predict(sleep, interval="prediction", level=0.9))
    got = est.predict_interval(X, interval="confidence", re="none")
    pd.testing.assert_frame_equal(got, direct.predict(sleep, interval="confidence", re="none"))
    with pytest.raises(ValueError, match="interval must be"):
        est.predict_interval(X, interval=None)  # type: ignore[arg-type]


# -- scikit-learn protocol ------------------------------------------------------------
def test_clone_and_params_round_trip(Xy):
    X, y = Xy
    est = MixedLMRegressor(groups="Subject", random="1 + Days", reml=False, new_levels="nan")
    params = est.get_params()
    assert params == {
        "formula": None,
        "groups": "Subject",
        "random": "1 + Days",
        "response": None,
        "reml": False,
        "new_levels": "nan",
        "missing": "error",
    }
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert MixedLMRegressor(**params).get_params() == params
    twin.set_params(reml=True, random="1")
    assert twin.get_params()["reml"] is True and est.get_params()["reml"] is False
    est.fit(X, y)
    fresh = clone(est)
    assert not hasattr(fresh, "model_")
    assert "random='1 + Days'" in repr(est)


def test_not_fitted():
    est = MixedLMRegressor(FORMULA)
    X = pd.DataFrame({"Days": [0.0], "Subject": ["308"]})
    with pytest.raises(NotFittedError):
        est.predict(X)
    with pytest.raises(NotFittedError):
        est.predict_interval(X)


def test_pickle_round_trip(Xy):
    X, y = Xy
    est = MixedLMRegressor(FORMULA).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


def test_fitted_estimator_holds_no_training_frame(Xy, direct):
    X, y = Xy
    est = MixedLMRegressor(FORMULA).fit(X, y)
    assert est.model_.data is None
    again = pickle.loads(pickle.dumps(est))
    assert again.model_.data is None
    assert not any(isinstance(v, pd.DataFrame) for v in vars(again.model_).values())
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    np.testing.assert_allclose(est.model_.fitted(), direct.fitted(), rtol=1e-10)
    np.testing.assert_allclose(est.model_.residuals(), direct.residuals(), rtol=1e-8, atol=1e-8)
    with pytest.raises(mfx.DataError, match="pass newdata"):
        est.model_.predict()


def add_days_squared(X: pd.DataFrame) -> pd.DataFrame:
    return X.assign(Days2=X["Days"] ** 2)


def test_pipeline_with_function_transformer(sleep, Xy):
    X, y = Xy
    step = FunctionTransformer(add_days_squared).set_output(transform="pandas")
    pipe = make_pipeline(step, MixedLMRegressor(groups="Subject", random="1 + Days"))
    pipe.fit(X, y)
    assert pipe[-1].formula_ == "y ~ Days + Days2 + (1 + Days | Subject)"
    direct = mfx.lmm("Reaction ~ Days + Days2 + (1 + Days | Subject)", add_days_squared(sleep))
    np.testing.assert_allclose(pipe.predict(X), direct.predict(add_days_squared(sleep)))
    assert pipe.score(X, y) == pytest.approx(r2_score(y, direct.fitted()))
    # the pipeline clones and its nested parameters are settable
    pipe2 = clone(pipe).set_params(mixedlmregressor__random="1")
    assert pipe2[-1].random == "1"


# -- model selection ------------------------------------------------------------------
def test_cross_val_group_kfold_is_population_level(sleep, Xy):
    X, y = Xy
    est = MixedLMRegressor(FORMULA)
    cv = GroupKFold(n_splits=3)
    with warnings.catch_warnings():  # every test subject is new: expected, so no warning
        warnings.simplefilter("error", mfx.NewLevelWarning)
        scores = cross_val_score(est, X, y, cv=cv, groups=X["Subject"])
    expected = []
    for train, test in cv.split(X, y, groups=X["Subject"]):
        m = mfx.lmm(FORMULA, sleep.iloc[train])
        population = m.predict(sleep.iloc[test], re="none")
        with warnings.catch_warnings():
            warnings.simplefilter("error", mfx.NewLevelWarning)
            fold = clone(est).fit(X.iloc[train], y.iloc[train]).predict(X.iloc[test])
        np.testing.assert_allclose(fold, population, rtol=1e-10)
        expected.append(r2_score(y.iloc[test], population))
    np.testing.assert_allclose(scores, expected, rtol=1e-10)


def test_known_groups_cross_validate_better_than_new_groups(Xy):
    X, y = Xy
    est = MixedLMRegressor(FORMULA)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfx.NewLevelWarning)
        new = cross_val_score(est, X, y, cv=GroupKFold(n_splits=3), groups=X["Subject"])
    known = cross_val_score(est, X, y, cv=KFold(n_splits=3, shuffle=True, random_state=0))
    # sleepstudy: BLUPs explain most of the between-subject spread
    # (known about 0.56-0.82 per fold, new subjects about 0.07-0.17)
    assert known.mean() > new.mean() + 0.4
    assert known.min() > new.max()


def test_grid_search_picks_random_slopes_and_refits(sleep, Xy):
    X, y = Xy
    grid = GridSearchCV(
        MixedLMRegressor(groups="Subject"),
        {"random": ["1", "1 + Days"], "reml": [True, False]},
        cv=KFold(n_splits=3, shuffle=True, random_state=0),
    )
    grid.fit(X, y)
    assert grid.best_params_["random"] == "1 + Days"
    best = grid.best_estimator_
    assert best.formula_ == "y ~ Days + (1 + Days | Subject)"
    direct = mfx.lmm(FORMULA, sleep, reml=grid.best_params_["reml"])
    np.testing.assert_allclose(best.model_.fixef, direct.fixef, rtol=1e-10)
    np.testing.assert_allclose(grid.predict(X), direct.predict(sleep), rtol=1e-10)


# -- errors ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one of formula= .* neither"),
        ({"formula": FORMULA, "groups": "Subject"}, "exactly one of formula= .* both"),
        ({"formula": FORMULA, "response": "y"}, "response= is for groups= mode"),
        ({"formula": FORMULA, "random": "1 + Days"}, "random= is for groups= mode"),
        ({"formula": 3}, "formula must be a string"),
        ({"groups": ["Subject", "Days"]}, "groups must be the name of one column"),
        ({"groups": "Subject", "random": "1 | Subject"}, "only the left side of the bar"),
        ({"groups": "Subject", "random": ""}, "random must be a string"),
        ({"groups": "Subject", "response": ""}, "response must be a column name"),
        ({"groups": "Subject", "reml": "yes"}, "reml must be True or False"),
        ({"groups": "Subject", "new_levels": "zero"}, "new_levels must be one of"),
        ({"groups": "subject"}, "groups column 'subject' is not in X"),
    ],
)
def test_bad_parameters_raise_at_fit(Xy, params, message):
    X, y = Xy
    est = MixedLMRegressor(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)


def test_response_already_in_X(sleep):
    X = sleep[["Days", "Subject", "Reaction"]]
    with pytest.raises(ValueError, match="already has a column 'Reaction'"):
        MixedLMRegressor(FORMULA).fit(X, sleep["Reaction"])
    with pytest.raises(ValueError, match="already has a column 'y'"):
        MixedLMRegressor(groups="Subject").fit(X.rename(columns={"Reaction": "y"}), X["Reaction"])


def test_bad_X_and_y(sleep, Xy):
    X, y = Xy
    est = MixedLMRegressor(FORMULA)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        est.fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match="not strings"):
        MixedLMRegressor(groups="Subject").fit(X.set_axis(["Days", 0], axis=1), y)
    with pytest.raises(ValueError, match="y has 179 values for 180 rows"):
        est.fit(X, y.iloc[:-1])
    with pytest.raises(ValueError, match="one-dimensional"):
        est.fit(X, np.column_stack([y, y]))
    with pytest.raises(mfx.FormulaError):
        MixedLMRegressor("Reaction ~ Days").fit(X, y)
    with pytest.raises(mfx.DataError, match="missing"):
        MixedLMRegressor("Reaction ~ Hours + (1 | Subject)").fit(X, y)
    fitted = est.fit(X, y)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        fitted.predict(X.to_numpy())
    with pytest.raises(mfx.DataError, match="Days"):
        fitted.predict(X[["Subject"]])


# -- packaging ------------------------------------------------------------------------------
def test_import_mixedfx_does_not_import_sklearn():
    code = "import sys, mixedfx; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_exported_lazily_from_package():
    assert mfx.MixedLMRegressor is MixedLMRegressor


@pytest.mark.parametrize(
    "formula",
    ["log(Reaction) ~ Days + (Days | Subject)", "I(Reaction / 100) ~ Days + (1 | Subject)"],
)
def test_a_transformed_response_is_refused_with_the_sklearn_recipe(Xy, formula: str) -> None:
    # y is the response itself: a formula that transforms it would predict and
    # score on another scale than y, silently
    X, y = Xy
    with pytest.raises(ValueError, match="TransformedTargetRegressor"):
        MixedLMRegressor(formula=formula).fit(X, y)


def test_the_recipe_for_a_log_response_is_lmm_of_the_log(Xy, sleep: pd.DataFrame) -> None:
    from sklearn.compose import TransformedTargetRegressor

    X, y = Xy
    est = TransformedTargetRegressor(
        regressor=MixedLMRegressor(formula="Reaction ~ Days + (Days | Subject)"),
        func=np.log,
        inverse_func=np.exp,
    ).fit(X, y)
    m = mfx.lmm("log(Reaction) ~ Days + (Days | Subject)", sleep)
    # the same function on the same numbers (log y by numpy in both): exactly equal
    np.testing.assert_array_equal(est.predict(X), np.exp(m.predict(sleep)))
