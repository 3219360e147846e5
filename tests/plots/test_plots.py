"""Diagnostic plots: every plot renders to a non-blank PNG, draws the right numbers,
and rejects bad arguments with errors that name them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import norm  # noqa: E402

import mixedfx as mfx  # noqa: E402
from mixedfx import plots  # noqa: E402


@pytest.fixture(scope="module")
def sleep() -> mfx.LinearMixedModel:
    return mfx.lmm("Reaction ~ Days + (Days | Subject)", mfx.datasets.load("sleepstudy"))


@pytest.fixture(scope="module")
def penicillin() -> mfx.LinearMixedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.lmm("diameter ~ 1 + (1 | plate) + (1 | sample)", mfx.datasets.load("penicillin"))


@pytest.fixture(autouse=True)
def close_figures() -> Any:
    yield
    plt.close("all")


def without_data(m: mfx.LinearMixedModel) -> mfx.LinearMixedModel:
    """The model as it would be loaded from a file: no training rows kept."""
    return dataclasses.replace(m, data=None, fitted_values=None, response_values=None)


def check_png(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=80)
    assert path.stat().st_size > 5_000
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(np.var(image[..., :3])) > 0.0
    colours = np.unique(np.round(image[..., :3].reshape(-1, 3) * 255).astype(int), axis=0)
    assert len(colours) >= 8  # points, lines, text and background, not a blank canvas


# -- every plot renders ------------------------------------------------------------
CASES: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = [
    ("sleep-caterpillar", "sleep", plots.caterpillar, {}),
    ("sleep-caterpillar-days", "sleep", plots.caterpillar, {"term": "Days", "level": 0.9}),
    ("sleep-shrinkage", "sleep", plots.shrinkage, {}),
    ("sleep-shrinkage-days", "sleep", plots.shrinkage, {"term": "Days"}),
    ("sleep-groups", "sleep", plots.groups, {}),
    ("sleep-groups-list", "sleep", plots.groups, {"which": [308, "309", 372]}),
    ("sleep-observed", "sleep", plots.observed_vs_predicted, {}),
    ("pen-caterpillar", "penicillin", plots.caterpillar, {}),
    ("pen-caterpillar-sample", "penicillin", plots.caterpillar, {"group": "sample"}),
    ("pen-shrinkage", "penicillin", plots.shrinkage, {}),
    ("pen-shrinkage-sample", "penicillin", plots.shrinkage, {"group": "sample"}),
    ("pen-groups", "penicillin", plots.groups, {"x": "sample", "which": 4}),
    ("pen-observed", "penicillin", plots.observed_vs_predicted, {}),
]


@pytest.mark.parametrize("name, model, fn, kwargs", CASES, ids=[c[0] for c in CASES])
def test_renders_png(
    name: str,
    model: str,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    m = request.getfixturevalue(model)
    disp = fn(m, **kwargs)
    axes = np.atleast_1d(np.asarray(disp.ax_, dtype=object))
    assert all(a.figure is disp.figure_ for a in axes)
    check_png(disp.figure_, tmp_path / f"{name}.png")


def test_replot_on_given_axes(sleep: mfx.LinearMixedModel, tmp_path: Path) -> None:
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 5))
    disp = plots.caterpillar(sleep, ax=a1)
    assert disp.ax_ is a1 and disp.figure_ is fig
    assert plots.shrinkage(sleep, ax=a2).ax_ is a2
    assert plots.observed_vs_predicted(sleep, ax=a3).ax_ is a3
    fig2, a = plt.subplots()
    assert disp.plot(ax=a).figure_ is fig2  # a display draws again elsewhere
    check_png(fig, tmp_path / "three.png")


def test_groups_on_given_axes(sleep: mfx.LinearMixedModel, tmp_path: Path) -> None:
    fig, axs = plt.subplots(2, 2)
    disp = plots.groups(sleep, which=3, ax=axs)
    assert list(disp.ax_[:3]) == list(axs.ravel()[:3])
    assert not axs.ravel()[3].axison  # the unused axes is turned off
    fig2, a = plt.subplots(figsize=(8, 6))
    split = plots.groups(sleep, which=4, ax=a)
    assert split.figure_ is fig2 and len(split.ax_) == 4
    assert len(plots.groups(sleep, which=4).figure_.axes) == 4  # no empty cells left
    check_png(fig2, tmp_path / "split.png")


# -- the numbers drawn -------------------------------------------------------------
def test_caterpillar_numbers(sleep: mfx.LinearMixedModel) -> None:
    disp = plots.caterpillar(sleep, term="Days", level=0.8)
    est = disp.estimates
    assert (disp.group, disp.term) == ("Subject", "Days")
    assert np.all(np.diff(est["blup"].to_numpy()) >= 0)  # sorted
    ranef = sleep.ranef["Subject"]["Days"]
    ranef.index = ranef.index.astype(str)
    np.testing.assert_allclose(est["blup"], ranef.loc[est.index])
    se = np.sqrt(sleep.ranef_condvar["Subject"]["Days"].to_numpy())
    width = (est["upper"] - est["lower"]).to_numpy()
    np.testing.assert_allclose(width, 2 * norm.ppf(0.9) * se[0], rtol=1e-12)
    labels = [t.get_text() for t in disp.ax_.get_yticklabels()]
    assert labels == list(est.index)


def test_caterpillar_hides_labels_of_many_levels() -> None:
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(80), 3)
    df = pd.DataFrame({"g": g, "y": rng.normal(size=80)[g] + rng.normal(size=len(g))})
    disp = plots.caterpillar(mfx.lmm("y ~ 1 + (1 | g)", df))
    assert len(disp.estimates) == 80
    assert disp.ax_.get_yticklabels() == []


def test_shrinkage_is_per_group_ols_minus_fixed(sleep: mfx.LinearMixedModel) -> None:
    df = sleep.data
    assert df is not None
    est = plots.shrinkage(sleep, term="Days").estimates
    for subject, rows in df.groupby("Subject", observed=True):
        slope = np.polyfit(rows["Days"], rows["Reaction"], 1)[0]
        assert est.loc[str(subject), "least_squares"] == pytest.approx(
            slope - sleep.fixef["Days"], rel=1e-8
        )
    assert (est["n"] == 10).all()
    # shrinkage: the BLUPs are pulled towards 0
    assert np.sum(est["blup"] ** 2) < np.sum(est["least_squares"] ** 2)


def test_shrinkage_intercept_is_mean_fixed_residual() -> None:
    df = mfx.datasets.load("dyestuff")
    m = mfx.lmm("Yield ~ 1 + (1 | Batch)", df)
    est = plots.shrinkage(m).estimates
    means = (df["Yield"] - m.fixef["(Intercept)"]).groupby(df["Batch"], observed=True).mean()
    np.testing.assert_allclose(est["least_squares"], means.to_numpy(), rtol=1e-10)


def test_shrinkage_crossed_removes_other_factor(penicillin: mfx.LinearMixedModel) -> None:
    df = penicillin.data
    assert df is not None
    est = plots.shrinkage(penicillin, group="plate").estimates
    sample = penicillin.ranef["sample"]["(Intercept)"]
    other = sample.reindex(df["sample"].astype(str)).to_numpy()
    partial = df["diameter"].to_numpy() - penicillin.fixef["(Intercept)"] - other
    means = pd.Series(partial).groupby(df["plate"].to_numpy()).mean()
    np.testing.assert_allclose(est["least_squares"], means.loc[est.index], rtol=1e-10)


def test_groups_numbers(sleep: mfx.LinearMixedModel) -> None:
    disp = plots.groups(sleep)
    assert disp.x == "Days" and disp.group == "Subject"
    assert list(disp.panels) == ["308", "309", "310", "330", "331", "332"]
    df = sleep.data
    assert df is not None
    rows = df[df["Subject"] == "309"].sort_values("Days")
    panel = disp.panels["309"]
    np.testing.assert_allclose(panel["observed"], rows["Reaction"])
    np.testing.assert_allclose(panel["conditional"], sleep.predict(rows))
    np.testing.assert_allclose(panel["fixed"], sleep.predict(rows, re="none"))
    assert len(disp.ax_) == 6


def test_groups_picks_groups_with_most_rows(sleep: mfx.LinearMixedModel) -> None:
    df = sleep.data
    assert df is not None
    unbalanced = df[(df["Subject"] != "308") | (df["Days"] < 3)]
    m = dataclasses.replace(sleep, data=unbalanced)
    disp = plots.groups(m, which=17)
    assert len(disp.panels) == 17 and "308" not in disp.panels
    assert list(plots.groups(m, which=[308]).panels) == ["308"]


def test_observed_vs_predicted_numbers(sleep: mfx.LinearMixedModel) -> None:
    disp = plots.observed_vs_predicted(sleep)
    np.testing.assert_allclose(disp.fitted, sleep.fitted())
    np.testing.assert_allclose(disp.observed, sleep.fitted() + sleep.residuals())
    # with only the training data kept, the same numbers come from predict
    m = dataclasses.replace(sleep, fitted_values=None, response_values=None)
    np.testing.assert_allclose(plots.observed_vs_predicted(m).fitted, sleep.fitted(), rtol=1e-10)


# -- errors ------------------------------------------------------------------------
def test_unknown_group(sleep: mfx.LinearMixedModel) -> None:
    for fn in (plots.caterpillar, plots.shrinkage, plots.groups):
        with pytest.raises(ValueError, match=r"group must be one of .*\['Subject'\].*'Subjct'"):
            fn(sleep, group="Subjct")


def test_unknown_term_and_bad_level(sleep: mfx.LinearMixedModel) -> None:
    with pytest.raises(ValueError, match=r"term must be one of \['\(Intercept\)', 'Days'\]"):
        plots.caterpillar(sleep, term="days")
    with pytest.raises(ValueError, match="term must be one of"):
        plots.shrinkage(sleep, term="x")
    levels: list[Any] = [0.0, 1.0, 95, "0.95"]
    for level in levels:
        with pytest.raises(ValueError, match="level must be"):
            plots.caterpillar(sleep, level=level)


def test_groups_bad_arguments(
    sleep: mfx.LinearMixedModel, penicillin: mfx.LinearMixedModel
) -> None:
    with pytest.raises(ValueError, match=r"which: level\(s\) \[999\] are not levels of 'Subject'"):
        plots.groups(sleep, which=[308, 999])
    bad: list[Any] = [0, -2, "308", [], 2.5]
    for which in bad:
        with pytest.raises(ValueError, match="which must be"):
            plots.groups(sleep, which=which)
    with pytest.raises(ValueError, match=r"x must be a column .*'Days'.*got 'Day'"):
        plots.groups(sleep, x="Day")
    with pytest.raises(
        ValueError, match=r"x: the model has no numeric fixed-effects predictor.*pass x="
    ):
        plots.groups(penicillin)
    fig, axs = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="ax: 3 groups need 3 axes, got 2"):
        plots.groups(sleep, which=3, ax=axs)
    with pytest.raises(ValueError, match="ax must be None, a subplot Axes"):
        plots.groups(sleep, ax="left")


@pytest.mark.parametrize("route", ["saved", "replaced"])
def test_model_without_data(sleep: mfx.LinearMixedModel, route: str, tmp_path: Path) -> None:
    if route == "saved":  # a model loaded from a file keeps no training rows
        sleep.save(tmp_path / "sleep.mfx")
        m = mfx.load(tmp_path / "sleep.mfx")
    else:
        m = without_data(sleep)
    assert m.data is None
    for fn in (plots.shrinkage, plots.groups, plots.observed_vs_predicted):
        with pytest.raises(ValueError, match="needs the training data, but this model holds none"):
            fn(m)
    with pytest.raises(mfx.DataError):
        plots.shrinkage(m)
    plots.caterpillar(m)  # BLUPs are kept: no data needed


# -- matplotlib is optional ----------------------------------------------------------
def test_import_does_not_import_matplotlib() -> None:
    code = (
        "import sys, mixedfx, mixedfx.plots; "
        "assert 'matplotlib' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_matplotlib(sleep: mfx.LinearMixedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    calls: list[Callable[..., Any]] = [
        plots.caterpillar,
        plots.shrinkage,
        plots.groups,
        plots.observed_vs_predicted,
    ]
    for fn in calls:
        with pytest.raises(
            ImportError, match=r"plots need matplotlib: pip install 'mixedfx\[plot\]'"
        ):
            fn(sleep)
