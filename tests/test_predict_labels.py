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
    with pytest.warns(mfx.MixedFXWarning, match="holds numbers and the text that spells them"):
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
        with pytest.raises(
            mfx.DataError, match=r"'k' has level\(s\) \['mid'\].*random term \(0 \+ k"
        ):
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


# -- fixed-effect factors: the same label policy as grouping factors ----------------------------
def factor_data(labels: list, seed: int = 1, per: int = 30) -> pd.DataFrame:
    """A fixed-effect factor ``f`` with the given labels (level k has effect k)."""
    rng = np.random.default_rng(seed)
    k = np.tile(np.arange(len(labels)), per)
    g = rng.integers(0, 10, len(k))
    y = k + rng.normal(size=10)[g] + rng.normal(size=len(k)) * 0.3
    f = pd.Series([labels[c] for c in k], dtype=object)
    return pd.DataFrame({"y": y, "x": rng.normal(size=len(k)), "f": f, "g": g.astype(str)})


FACTOR = "y ~ x + f + (1 | g)"


@pytest.mark.parametrize(
    "labels",
    [["007", "7", "0007", "8"], ["a", " a", "a ", "b"], ["1e2", "100", "5"], ["01", "1", 1, "2"]],
)
def test_fixed_factor_labels_are_exact_within_a_frame(labels: list) -> None:
    """Each label a level, coefficient for coefficient as with plain distinct names."""
    data = factor_data(labels)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always", mfx.MixedFXWarning)
        m = mfx.lmm(FACTOR, data)
    look_alike = 1 in labels and "1" in labels  # a number and the text that spells it
    assert [str(w.message).count("spells them") for w in got] == ([1] if look_alike else [])
    assert len(m.spec.states["f"]) == len(labels) and len(m.fixef) == len(labels) + 1
    assert m.fixef.index.is_unique  # 1 and "1" of one column are named f1 and f'1'
    names = {v: f"L{k}" for k, v in enumerate(sorted(labels, key=repr))}
    ref = mfx.lmm(FACTOR, data.assign(f=data["f"].map(names)))
    assert m.objective == pytest.approx(ref.objective, rel=1e-10)
    np.testing.assert_allclose(m.predict(data), ref.predict(ref.data), rtol=1e-7)


def test_mixed_kinds_in_one_factor_column_are_named_apart() -> None:
    with pytest.warns(mfx.MixedFXWarning, match="holds numbers and the text that spells them"):
        m = mfx.lmm(FACTOR, factor_data(["01", "1", 1, "2"]))
    assert set(m.fixef.index) == {"(Intercept)", "x", "f1", "f'1'", "f2"}  # "01" the baseline


def test_fixed_factor_labels_match_by_value_across_frames(tmp_path: Path) -> None:
    data = factor_data(["1", "2", "3"])
    m = mfx.lmm(FACTOR, data)
    new = data.head(6)
    expected = m.predict(new)
    for other in (int, float, np.int64):  # numbers find the text labels spelled canonically
        as_numbers = new.assign(f=new["f"].map(lambda v, other=other: other(v)))
        np.testing.assert_array_equal(m.predict(as_numbers), expected)
    for spelling in ("01", "1.0", " 1"):  # other spellings are other levels: named, refused
        with pytest.raises(mfx.DataError, match=rf"variable 'f' has level\(s\) \['{spelling}'\]"):
            m.predict(new.assign(f=spelling))
    m.save(tmp_path / "m.mfx")
    back = mfx.load(tmp_path / "m.mfx")
    assert back.spec.states["f"] == m.spec.states["f"]
    np.testing.assert_array_equal(back.predict(new.assign(f=new["f"].astype(int))), expected)


def test_numeric_factor_labels_match_text_across_frames() -> None:
    data = factor_data([10, 20, 30]).assign(f=lambda d: d["f"].astype(np.int64))
    m = mfx.lmm("y ~ x + factor(f) + (1 | g)", data)
    assert m.spec.states["factor(f)"].labels == (10, 20, 30)
    new = data.head(6)
    as_text = new.assign(f=new["f"].astype(str).astype(object))
    np.testing.assert_array_equal(m.predict(as_text), m.predict(new))
    with pytest.raises(mfx.DataError, match=r"level\(s\) \['010'\]"):
        m.predict(new.assign(f="010"))


def test_ambiguous_fixed_factor_match_lists_the_candidates() -> None:
    m = mfx.lmm(FACTOR, factor_data(["7", "07", "8"]))
    new = factor_data(["7", "07", "8"]).head(3)
    assert len(set(m.predict(new.assign(x=0.0)))) == 3  # "7", "07" and "8" apart
    np.testing.assert_array_equal(m.predict(new.assign(f=8)), m.predict(new.assign(f="8")))
    with pytest.raises(mfx.DataError, match=r"label 7 of 'f' matches.*\['07', '7'\]"):
        m.predict(new.assign(f=7))


def test_fixed_factor_labels_saved_with_their_types(tmp_path: Path) -> None:
    data = factor_data(["01", "1", 1, 2.5])
    with pytest.warns(mfx.MixedFXWarning, match="holds numbers and the text that spells them"):
        m = mfx.lmm(FACTOR, data)
    m.save(tmp_path / "m.mfx")
    back = mfx.load(tmp_path / "m.mfx")
    assert back.spec.states["f"].labels == m.spec.states["f"].labels
    types = [type(v) for v in back.spec.states["f"].labels]
    assert types == [type(v) for v in m.spec.states["f"].labels]
    assert sorted(t.__name__ for t in types) == ["float", "int", "str", "str"]
    np.testing.assert_array_equal(back.predict(data), m.predict(data))
    assert back.fixef.index.equals(m.fixef.index)
