"""Residual and BLUP diagnostics and the cross-validation curve: numbers drawn, PNGs, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import norm  # noqa: E402

import mixedfx as mfx  # noqa: E402
from mixedfx import plots  # noqa: E402


@pytest.fixture(scope="module")
def sleep() -> mfx.LinearMixedModel:
    return mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


@pytest.fixture(autouse=True)
def close_figures() -> Any:
    yield
    plt.close("all")


def nonblank(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5_000


def test_qq_residuals(sleep: mfx.LinearMixedModel, tmp_path: Path) -> None:
    d = plots.qq(sleep)
    np.testing.assert_array_equal(d.sample, np.sort(sleep.residuals()))
    n = sleep.nobs
    np.testing.assert_allclose(d.theoretical, norm.ppf((np.arange(1, n + 1) - 0.5) / n))
    q1, q3 = np.quantile(d.sample, [0.25, 0.75])
    np.testing.assert_allclose(d.intercept + d.slope * norm.ppf([0.25, 0.75]), [q1, q3])
    nonblank(d.figure_, tmp_path / "qq.png")


def test_qq_ranef(sleep: mfx.LinearMixedModel) -> None:
    d = plots.qq(sleep, which="ranef", term="Days")
    np.testing.assert_array_equal(d.sample, np.sort(sleep.ranef["Subject"]["Days"].to_numpy()))
    with pytest.raises(ValueError, match="which"):
        plots.qq(sleep, which="fitted")
    with pytest.raises(ValueError, match="term"):
        plots.qq(sleep, which="ranef", term="Age")


def test_residuals_vs_fitted(sleep: mfx.LinearMixedModel, tmp_path: Path) -> None:
    d = plots.residuals_vs_fitted(sleep)
    np.testing.assert_allclose(d.fitted + d.residuals, sleep.response_values)
    nonblank(d.figure_, tmp_path / "rvf.png")


def test_residual_spread(sleep: mfx.LinearMixedModel, tmp_path: Path) -> None:
    d = plots.residual_spread(sleep)
    assert len(d.residuals) == 18
    medians = [np.median(v) for v in d.residuals.values()]
    assert medians == sorted(medians)
    res = pd.Series(sleep.residuals(), index=sleep.data.index)
    by = res.groupby(sleep.data["Subject"].astype(str)).std()
    np.testing.assert_allclose(d.sd[by.index], by.to_numpy())
    nonblank(d.figure_, tmp_path / "spread.png")
    with pytest.raises(ValueError, match="group"):
        plots.residual_spread(sleep, group="Days")


def test_cv_curve(tmp_path: Path) -> None:
    rows = [
        dict(fold=f, mode="given", k=k, metric="rmse", value=v + f, n=10)
        for f in range(2)
        for k, v in [(0, 3.0), (2, 2.0)]
    ]
    rows += [dict(fold=0, mode="new", k=0, metric="rmse", value=3.2, n=10)]
    rows += [dict(fold=0, mode="known", k=np.nan, metric="rmse", value=1.0, n=10)]
    d = plots.cv_curve(pd.DataFrame(rows))
    np.testing.assert_allclose(d.curve["mean"], [3.5, 2.5])
    assert d.population == 3.2 and d.known == 1.0
    nonblank(d.figure_, tmp_path / "cv.png")
    with pytest.raises(ValueError, match="metric"):
        plots.cv_curve(pd.DataFrame(rows), metric="mae")
