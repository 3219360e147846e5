"""GLMM predictions on a Dask frame: lazy, partition by partition, equal to in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx

dd = pytest.importorskip("dask.dataframe")

from glmm_reference import fit, newdata, training  # noqa: E402


@pytest.mark.parametrize("name", ["cbpp_prop_laplace", "poisson_crossed_offset"])
@pytest.mark.parametrize("kind", ["response", "link"])
@pytest.mark.parametrize("interval", [None, "confidence", "prediction"])
def test_dask_scoring_equals_memory(name: str, kind: str, interval: str | None) -> None:
    m = fit(name)
    rows = pd.concat([training(name), newdata(name)], ignore_index=True)
    rows = rows[newdata(name).columns.tolist()]
    lazy = m.predict(dd.from_pandas(rows, npartitions=3), type=kind, interval=interval)
    got = lazy.compute()
    want = m.predict(rows, type=kind, interval=interval)
    if interval is None:
        np.testing.assert_array_equal(got.to_numpy(), want)
    else:
        pd.testing.assert_frame_equal(got, want)


def test_dask_given_rows_are_refused_for_a_glmm() -> None:
    m = fit("cbpp_prop_laplace")
    given = dd.from_pandas(training("cbpp_prop_laplace").head(4), npartitions=2)
    with pytest.raises(mfx.DataError, match="compute"):
        m.predict(newdata("cbpp_prop_laplace"), given=given)


def test_fitting_a_glmm_on_a_dask_frame_is_refused_by_name() -> None:
    """GLMMs fit in memory (predictions do run on Dask): a clear error, not a type error."""
    lazy = dd.from_pandas(training("cbpp_cbind_laplace"), npartitions=2)
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.raises(mfx.DataError, match=r"GLMMs are fitted in memory.*compute\(\)"):
        mfx.glmm(formula, lazy, family="binomial")
