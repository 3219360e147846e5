"""New data: missing columns, unseen fixed-effect levels, missing values, empty frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mixedfx as mfx
from conftest import frame, quiet_fit
from tolerance import REORDERED, assert_close, assert_close_columns

FORMULA = "y ~ x + (1 | g)"


# -- new data ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model() -> mfx.LinearMixedModel:
    df = frame()
    df["c"] = np.tile(["lo", "mid", "hi"], 20)
    df["z"] = np.random.default_rng(3).normal(size=len(df))
    return quiet_fit("y ~ x + c + (1 + z | g)", df)


def test_new_data_missing_columns(model):
    data = model.data
    for column in ("x", "c", "g", "z"):
        with pytest.raises(mfx.DataError, match=f"'{column}'"):
            model.predict(data.drop(columns=column))
    with pytest.raises(mfx.DataError, match="'g'"):
        model.predict(data.drop(columns="g"), re="none", interval="confidence")


def test_new_data_unseen_level_of_a_fixed_effect(model):
    new = model.data.head(3).copy()
    new.loc[new.index[1], "c"] = "extreme"
    with pytest.raises(mfx.DataError, match=r"'c' has level\(s\) \['extreme'\]"):
        model.predict(new)
    with pytest.raises(mfx.DataError, match="'c'.*'extreme'"):
        model.predict(new, re="none", interval="prediction")


def test_new_data_missing_predictor_gives_nan_with_warning(model):
    new = model.data.head(4).copy()
    new.loc[new.index[1], "x"] = np.nan
    new.loc[new.index[2], "c"] = None
    with pytest.warns(mfx.MixedFXWarning, match="2 row"):
        out = model.predict(new)
    assert np.isnan(out[[1, 2]]).all() and np.isfinite(out[[0, 3]]).all()
    # 4 rows through predict against the fit's product over all rows: 1 ulp apart under
    # OpenBLAS's SkylakeX kernel
    assert_close(out[[0, 3]], model.fitted()[[0, 3]], REORDERED)


def test_new_data_nan_in_group_column_follows_new_levels(model):
    new = model.data.head(4).copy()
    new["g"] = new["g"].astype(object)
    new.loc[new.index[2], "g"] = np.nan
    fixed_only = model.predict(new, re="none")
    pop = model.predict(new, new_levels="population")
    assert pop[2] == fixed_only[2]
    assert_close(pop[[0, 1, 3]], model.fitted()[[0, 1, 3]], REORDERED)
    nan = model.predict(new, new_levels="nan")
    assert np.isnan(nan[2]) and np.isfinite(nan[[0, 1, 3]]).all()
    with pytest.raises(mfx.DataError, match="1 row.*missing \\(NaN\\) label of 'g'"):
        model.predict(new, new_levels="error")
    iv = model.predict(new, interval="prediction", new_levels="nan")
    assert iv.loc[new.index[2]].isna().all()
    iv = model.predict(new, interval="prediction")
    assert iv.notna().all().all()
    # a missing label is a new group: its prediction variance holds the prior variance
    assert iv["se"].iloc[2] > iv["se"].iloc[0]


def test_new_data_with_zero_rows(model):
    empty = model.data.iloc[:0]
    out = model.predict(empty)
    assert isinstance(out, np.ndarray) and out.shape == (0,) and out.dtype == float
    for interval in ("confidence", "prediction"):
        iv = model.predict(empty, interval=interval)
        assert isinstance(iv, pd.DataFrame) and iv.shape == (0, 4)
        assert list(iv.columns) == ["fit", "se", "lower", "upper"]
    assert model.predict(empty, re="none").shape == (0,)
    later = model.data.head(5).assign(y=lambda d: d["y"] + 1.0)  # not copies of training rows
    assert model.predict(empty, given=later).shape == (0,)
    assert model.predict(empty[["x", "c", "g", "z"]]).shape == (0,)


def test_duplicated_rows_give_duplicated_predictions(model):
    data = model.data
    rows = [0, 5, 0, 5, 5, 30]
    new = data.iloc[rows]
    out = model.predict(new)
    assert_close(out, model.fitted()[rows], REORDERED)
    # a duplicate sits elsewhere in the BLAS call (another SIMD lane, or the scalar tail)
    iv = model.predict(new, interval="prediction").to_numpy()
    assert_close_columns(iv[[2, 4]], iv[[0, 1]], REORDERED)
    single = model.predict(data.iloc[[5]], interval="prediction")
    assert_close_columns(iv[[3]], single.to_numpy(), 1e-13)
