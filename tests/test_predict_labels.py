"""Labels through the model: never merged, tuples for interactions, unseen values in a term."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

FORMULA = "y ~ x + (1 | g)"


def grouped(labels: list, per: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(labels)), per)
    y = rng.normal(size=len(labels))[codes] + rng.normal(size=len(codes)) * 0.5
    g = pd.Series([labels[c] for c in codes], dtype=object)
    return pd.DataFrame({"y": y, "x": rng.normal(size=len(codes)), "g": g})


@pytest.mark.parametrize(
    "labels",
    [
        ["007", "7", "0007", "8"],
        ["a", " a", "a ", "b"],
        ["1e2", "100", "5", "6"],
        [str(1234567890123456789 + k) for k in range(12)],
    ],
)
def test_distinct_labels_are_distinct_groups(labels: list) -> None:
    """The model equals the one with the labels renamed to plain distinct names."""
    data = grouped(labels)
    m = mfx.lmm(FORMULA, data)
    assert sorted(m.ranef["g"].index) == sorted(labels)
    names = {v: f"g{k:02d}" for k, v in enumerate(labels)}
    ref = mfx.lmm(FORMULA, data.assign(g=data["g"].map(names)))
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)
    np.testing.assert_allclose(m.predict(data), ref.predict(ref.data), rtol=1e-7)
    renamed = ref.ranef["g"].rename(index={n: v for v, n in names.items()})
    np.testing.assert_allclose(
        m.ranef["g"].loc[labels].to_numpy(), renamed.loc[labels].to_numpy(), atol=1e-6
    )


@pytest.fixture(scope="module")
def colliding() -> pd.DataFrame:
    """("a", "b:c") and ("a:b", "c") join to the same "a:b:c"."""
    rng = np.random.default_rng(3)
    a = ["a", "a:b", "x", "x", "y", "y"] * 6
    b = ["b:c", "c", "u", "v", "u", "v"] * 6
    effect = {("a", "b:c"): 3.0, ("a:b", "c"): -3.0}
    y = [effect.get(k, 0.0) for k in zip(a, b, strict=True)] + rng.normal(size=36) * 0.3
    return pd.DataFrame({"a": a, "b": b, "x": rng.normal(size=36), "y": y})


def test_interaction_keys_are_tuples(colliding: pd.DataFrame, tmp_path: Path) -> None:
    m = mfx.lmm("y ~ x + (1 | a:b)", colliding)
    ranef = m.ranef["a:b"]
    assert isinstance(ranef.index, pd.MultiIndex) and list(ranef.index.names) == ["a", "b"]
    assert ranef.shape[0] == 6
    assert ranef.loc[("a", "b:c"), "(Intercept)"] > 1 > -1 > ranef.loc[("a:b", "c"), "(Intercept)"]
    # known pairs get their own BLUP; the other pairing of the same labels is new
    known = colliding.head(2)
    np.testing.assert_allclose(m.predict(known), m.fitted()[:2], rtol=1e-12)
    swapped = pd.DataFrame({"a": ["a", "a:b"], "b": ["c", "b:c"], "x": [0.0, 0.0]})
    assert np.isnan(m.predict(swapped, new_levels="nan")).all()
    with pytest.raises(mfx.DataError, match=r"\('a', 'c'\)"):
        m.predict(swapped, new_levels="error")
    # the design's names keep lme4's display; save and load keep the tuples
    assert m.design(known).z_names[:2] == ["a:b[a:b:c]:(Intercept)", "a:b[a:b:c]:(Intercept)"]
    m.save(tmp_path / "m.mfx")
    back = mfx.load(tmp_path / "m.mfx")
    assert back.ranef["a:b"].index.equals(ranef.index)
    np.testing.assert_array_equal(back.predict(known), m.predict(known))
    assert np.isnan(back.predict(swapped, new_levels="nan")).all()


def test_nested_keys_are_tuples_and_given_appends_them(colliding: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        m = mfx.lmm("y ~ x + (1 | a/b)", colliding)
    assert set(m.ranef) == {"a", "b:a"}
    assert m.ranef["b:a"].index[0] == ("b:c", "a")
    given = pd.DataFrame({"a": ["a", "a"], "b": ["c", "c"], "x": [0.0, 1.0], "y": [1.0, 2.0]})
    c = m.condition(given)
    assert c.spec.terms[0].keys[-1] == ("c", "a") and c.ranef["b:a"].shape[0] == 7
    np.testing.assert_array_equal(c.predict(given), m.predict(given, given=given))


def test_saved_labels_keep_their_type(tmp_path: Path) -> None:
    data = grouped(["7", 7, "07", 8.5])
    m = mfx.lmm(FORMULA, data)
    m.save(tmp_path / "m.mfx")
    back = mfx.load(tmp_path / "m.mfx")
    assert back.ranef["g"].index.tolist() == m.ranef["g"].index.tolist()
    assert [type(v) for v in back.spec.terms[0].keys] == [type(v) for v in m.spec.terms[0].keys]
    new = pd.DataFrame({"x": 0.0, "g": pd.Series(["7", 7, "07", 8.5], dtype=object)})
    np.testing.assert_array_equal(back.predict(new), m.predict(new))
    assert len(set(m.predict(new))) == 4


@pytest.fixture(scope="module")
def slope_model() -> mfx.LinearMixedModel:
    rng = np.random.default_rng(5)
    n = 240
    g = rng.integers(0, 12, n)
    k = rng.choice(["lo", "hi"], n)
    effect = rng.normal(size=(12, 2))[g, (k == "hi").astype(int)]
    data = pd.DataFrame({"g": g.astype(str), "k": k, "x": rng.normal(size=n)})
    data["y"] = data["x"] + 2 * effect + rng.normal(size=n) * 0.5
    return mfx.lmm("y ~ x + (0 + k | g)", data)


def test_unseen_level_of_a_random_term_factor_is_an_error(slope_model) -> None:
    new = pd.DataFrame({"g": ["1", "2"], "k": ["lo", "mid"], "x": [0.0, 0.0]})
    for new_levels in ("population", "nan", "error"):
        with pytest.raises(mfx.DataError, match=r"column 'k' has level\(s\) \['mid'\].*\(0 \+ k"):
            slope_model.predict(new, new_levels=new_levels)
    with pytest.raises(mfx.DataError, match="'mid'"):
        slope_model.condition(new.assign(y=1.0))


def test_missing_value_of_a_random_term_factor_is_nan(slope_model) -> None:
    new = pd.DataFrame({"g": ["1", "2"], "k": ["lo", None], "x": [0.0, 0.0]})
    with pytest.warns(mfx.MixedFXWarning, match="1 row.*missing predictors"):
        out = slope_model.predict(new)
    assert np.isfinite(out[0]) and np.isnan(out[1])
    with pytest.warns(mfx.MixedFXWarning, match="missing predictors"):
        iv = slope_model.predict(new, interval="prediction")
    assert iv.iloc[1].isna().all() and iv.iloc[0].notna().all()
    with pytest.raises(mfx.DataError, match="missing values in the columns of random term"):
        slope_model.condition(new.assign(y=1.0))
