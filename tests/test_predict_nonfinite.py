"""Rows with an infinite or missing predictor: NaN, no arithmetic warning, the rest unchanged."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import fit_case
from tolerance import REORDERED, assert_close


@pytest.fixture(scope="module")
def sleep() -> mfx.LinearMixedModel:
    return fit_case("sleepstudy_reml")


@pytest.mark.parametrize("re", ["all", "none", "(0 + Days | Subject)"])
@pytest.mark.parametrize("interval", [None, "confidence", "prediction"])
@pytest.mark.parametrize("subject", ["308", "999"])  # a known and a new subject
def test_infinite_predictors_give_nan_rows_and_no_runtime_warning(
    sleep: mfx.LinearMixedModel, re: str, interval: str | None, subject: str
) -> None:
    # inf in Days is inf in X and in the random slope's column: inf - inf
    # must not reach the sums (RuntimeWarning, or a NaN that leaks elsewhere)
    rows = pd.DataFrame({"Days": [np.inf, -np.inf, np.nan, 3.0], "Subject": subject})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(mfx.MixedFXWarning, match="3 row"):
            out = sleep.predict(rows, re=re, interval=interval)
    clean = sleep.predict(rows.iloc[[3]], re=re, interval=interval)
    if interval is None:
        assert np.isnan(out[:3]).all()
        assert_close(out[3:], clean, REORDERED)  # the same row in a batch of another size
    else:
        assert out.iloc[:3].isna().all().all()
        assert_close(out.iloc[[3]].to_numpy(), clean.to_numpy(), REORDERED)
