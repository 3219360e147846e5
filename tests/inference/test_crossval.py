"""cross_validate against a hand-rolled loop over scikit-learn's splitters."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, StratifiedKFold

import mixedfx as mfx
from binary_data import grouped_binary
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


def binary_frame(n_groups: int = 16, size: int = 12, seed: int = 3) -> pd.DataFrame:
    return grouped_binary(n_groups, size, seed, beta=(-0.3, 0.9), label="g{:02d}")


def test_glmm_given_mode_against_a_hand_rolled_loop() -> None:
    data = binary_frame()
    out = mfx.cross_validate(
        FORMULA, data, mode="given", given_rows=[0, 2], cv=4, family="binomial"
    )
    assert set(out["metric"]) == {"log_loss", "brier"}
    for fold, (train, test) in enumerate(GroupKFold(4).split(data, groups=data["g"])):
        m = mfx.glmm(FORMULA, data.iloc[train], family="binomial")
        held = data.iloc[test]
        rank = held.groupby("g").cumcount()
        scored = held[rank >= 2]
        y = scored["y"].to_numpy(dtype=float)
        for k in (0, 2):
            p = m.predict(scored, given=held[rank < k] if k else None)
            got = out[(out.fold == fold) & (out.k == k)].set_index("metric")["value"]
            log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
            np.testing.assert_allclose(got["log_loss"], log_loss, rtol=1e-12)
            np.testing.assert_allclose(got["brier"], np.mean((y - p) ** 2), rtol=1e-12)


def test_glmm_metrics_weigh_rows_by_trials() -> None:
    # A proportion with its trials as weights counts as that many Bernoulli
    # rows: the same log loss and deviance as the 0/1 rows it summarises, per trial.
    data = binary_frame(n_groups=12, size=10, seed=5)
    data["t"] = np.repeat(np.arange(len(data) // 2), 2)
    rows = data.groupby(["g", "t"], as_index=False).agg(p=("y", "mean"), x=("x", "first"))
    rows["n"] = 2.0
    out = mfx.cross_validate(
        "p ~ x + (1 | g)",
        rows,
        mode="new",
        cv=3,
        family="binomial",
        weights="n",
        metric=["log_loss", "deviance", "brier"],
    )
    for fold, (train, test) in enumerate(GroupKFold(3).split(rows, groups=rows["g"])):
        m = mfx.glmm("p ~ x + (1 | g)", rows.iloc[train], family="binomial", weights="n")
        held = rows.iloc[test]
        mu, y, w = m.predict(held), held["p"].to_numpy(), held["n"].to_numpy()
        got = out[out.fold == fold].set_index("metric")["value"]
        ll = -np.sum(w * (y * np.log(mu) + (1 - y) * np.log(1 - mu))) / w.sum()
        np.testing.assert_allclose(got["log_loss"], ll, rtol=1e-12)
        dev = m.family.dev_resid(y, mu, w).sum() / w.sum()
        np.testing.assert_allclose(got["deviance"], dev, rtol=1e-12)
        np.testing.assert_allclose(got["brier"], np.sum(w * (y - mu) ** 2) / w.sum(), rtol=1e-12)


def test_poisson_defaults_and_checks() -> None:
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(12), 8)
    data = pd.DataFrame({"g": g.astype(str), "x": rng.normal(size=len(g))})
    data["y"] = rng.poisson(np.exp(0.5 + 0.3 * data["x"] + rng.normal(0, 0.8, 12)[g]))
    out = mfx.cross_validate(FORMULA, data, mode="new", cv=3, family="poisson")
    assert set(out["metric"]) == {"deviance", "rmse"}
    assert (out["value"] > 0).all()
    with pytest.raises(ValueError, match="'log_loss' is for binomial"):
        mfx.cross_validate(FORMULA, data, family="poisson", metric="log_loss")
    with pytest.raises(ValueError, match="need family="):
        mfx.cross_validate(FORMULA, data, metric="deviance")
