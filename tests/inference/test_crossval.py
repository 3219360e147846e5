"""cross_validate against a hand-rolled loop over scikit-learn's splitters."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, StratifiedKFold

import mixedfx as mfx
from conftest import frame

FORMULA = "y ~ x + (1 | g)"
# the hand-rolled loops predict new groups with m.predict, which may warn about them
pytestmark = pytest.mark.filterwarnings("ignore::mixedfx.NewLevelWarning")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return frame(n_groups=10, size=8, seed=4)


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - p) ** 2)))


def test_known_mode(data: pd.DataFrame) -> None:
    out = mfx.cross_validate(FORMULA, data, mode="known", cv=4, seed=2)
    expected = []
    folds = StratifiedKFold(4, shuffle=True, random_state=2).split(data, data["g"])
    for train, test in folds:
        m = mfx.lmm(FORMULA, data.iloc[train])
        held = data.iloc[test]
        expected.append(rmse(held["y"].to_numpy(), m.predict(held)))
    got = out[out.metric == "rmse"]
    np.testing.assert_allclose(got["value"], expected, rtol=1e-12)
    assert got["k"].isna().all() and (got["mode"] == "known").all()
    assert set(out["metric"]) == {"rmse", "mae"}


def test_new_mode(data: pd.DataFrame) -> None:
    out = mfx.cross_validate(FORMULA, data, mode="new", cv=5, metric="mae")
    expected = []
    for train, test in GroupKFold(5).split(data, groups=data["g"]):
        m = mfx.lmm(FORMULA, data.iloc[train])
        held = data.iloc[test]
        expected.append(float(np.mean(np.abs(held["y"].to_numpy() - m.predict(held)))))
    np.testing.assert_allclose(out["value"], expected, rtol=1e-12)
    assert (out["k"] == 0).all() and (out["n"] == 16).all()


def test_given_mode(data: pd.DataFrame) -> None:
    out = mfx.cross_validate(FORMULA, data, mode="given", given_rows=[0, 1, 3], cv=5)
    out = out[out.metric == "rmse"]
    for fold, (train, test) in enumerate(GroupKFold(5).split(data, groups=data["g"])):
        m = mfx.lmm(FORMULA, data.iloc[train])
        held = data.iloc[test]
        rank = held.groupby("g").cumcount()
        scored = held[rank >= 3]
        for k in (0, 1, 3):
            given = held[rank < k] if k else None
            pred = m.predict(scored, given=given)
            value = out[(out.fold == fold) & (out.k == k)]["value"].item()
            np.testing.assert_allclose(value, rmse(scored["y"].to_numpy(), pred), rtol=1e-12)
    # with k = 0 the scored rows are predicted at the population level: "new" on those rows
    np.testing.assert_array_equal(out[out.k == 0]["n"], out[out.k == 3]["n"])


def test_revealing_rows_helps_on_average() -> None:
    data = frame(n_groups=30, size=10, seed=1)  # group sd 1, residual sd 1
    out = mfx.cross_validate(FORMULA, data, mode="given", given_rows=[0, 5], metric="mse")
    means = out.groupby("k")["value"].mean()
    assert means[5] < means[0]


def test_checks(data: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="mode"):
        mfx.cross_validate(FORMULA, data, mode="old")
    with pytest.raises(ValueError, match="metric"):
        mfx.cross_validate(FORMULA, data, metric="r2")
    with pytest.raises(mfx.DataError, match="group column"):
        mfx.cross_validate(FORMULA, data, group="h")


def test_callable_metric(data: pd.DataFrame) -> None:
    def bias(y: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(p - y))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = mfx.cross_validate(FORMULA, data, mode="new", metric=[bias], cv=2)
    assert set(out["metric"]) == {"bias"}
