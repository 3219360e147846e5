"""GLMM plots: the caterpillar on the link scale and calibration by group."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import mixedfx as mfx  # noqa: E402
from glmm_reference import fit, training  # noqa: E402
from mixedfx import plots  # noqa: E402
from tolerance import assert_close  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures() -> Any:
    yield
    plt.close("all")


def test_caterpillar_of_a_glmm_is_on_the_link_scale(tmp_path: Path) -> None:
    m = fit("cbpp_prop_laplace")
    d = plots.caterpillar(m)
    est = d.estimates
    np.testing.assert_allclose(
        est["blup"].sort_index(), m.ranef["herd"]["(Intercept)"].sort_index().to_numpy()
    )
    assert "link scale" in d.ax_.get_xlabel()
    d.figure_.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 5_000


def test_calibration_by_group_is_weighted_means() -> None:
    m = fit("cbpp_prop_laplace")
    d = plots.calibration(m)
    data = training("cbpp_prop_laplace")
    herd1 = data[data.herd == "1"]
    assert d.table.loc["1", "n"] == herd1["size"].sum()
    assert d.table.loc["1", "observed"] == pytest.approx(
        herd1.incidence.sum() / herd1["size"].sum()
    )
    p = m.predict(herd1)
    assert d.table.loc["1", "predicted"] == pytest.approx(
        (p * herd1["size"]).sum() / herd1["size"].sum()
    )
    # conditional modes fit the groups: closer to the identity than population predictions
    pop = plots.calibration(m, re="none").table
    gap = lambda t: float(np.abs(t.observed - t.predicted).mean())  # noqa: E731
    assert gap(d.table) < gap(pop)


def test_calibration_of_counts_and_of_held_out_rows() -> None:
    m = fit("poisson_crossed_offset")
    data = training("poisson_crossed_offset")
    d = plots.calibration(m, data=data.head(120), group="month")
    assert set(d.table.index) <= {str(k) for k in range(1, 13)}
    assert "mean count" in d.ax_.get_ylabel()


def test_calibration_needs_data_and_a_glmm() -> None:
    m = fit("cbpp_prop_laplace")
    with pytest.raises(mfx.DataError, match="training data"):
        plots.calibration(dataclasses.replace(m, data=None))
    lmm = mfx.lmm("Reaction ~ Days + (1 | Subject)", mfx.datasets.load("sleepstudy"))
    with pytest.raises(ValueError, match="GLMMs"):
        plots.calibration(lmm)  # type: ignore[arg-type]


def test_groups_of_a_cbind_glmm_show_observed_proportions() -> None:
    """The observed points are the outcome on the predictions' scale: s / (s + f)."""
    m = fit("cbpp_cbind_laplace")
    d = plots.groups(m, x="period", which=["1"])
    panel = d.panels["1"]
    herd = training("cbpp_cbind_laplace").query("herd == '1'")
    want = (herd["incidence"] / herd["size"]).to_numpy()
    np.testing.assert_array_equal(np.sort(panel["observed"].to_numpy()), np.sort(want))
    assert (panel["conditional"].between(0, 1)).all()


def test_observed_vs_predicted_of_a_model_without_rows_reads_the_outcome() -> None:
    m = fit("cbpp_cbind_laplace")
    bare = dataclasses.replace(m, fitted_values=None, response_values=None, weight_values=None)
    d = plots.observed_vs_predicted(bare)
    np.testing.assert_array_equal(d.observed, m.response_values)  # s / (s + f) both ways
    # predict() recomputes the linear predictor the fit's PIRLS ended at: rounding only
    assert_close(d.fitted, m.fitted(), rtol=1e-12)


def test_shrinkage_refuses_a_glmm() -> None:
    with pytest.raises(ValueError, match="for a GLMM use caterpillar"):
        plots.shrinkage(fit("cbpp_cbind_laplace"), group="herd")
