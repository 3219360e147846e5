"""frames.in_memory: every frame type gives the numbers of the pandas object-dtype path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import mixedfx as mfx

FORMULA = "Reaction ~ Days + sex + (Days | Subject)"
TEXT = ["Subject", "sex"]


def object_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype({c: object for c in TEXT})


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    sleep = mfx.datasets.load("sleepstudy")
    sex = np.where(sleep["Subject"].cat.codes.to_numpy() % 2 == 0, "F", "M")
    return object_frame(sleep.assign(Subject=sleep["Subject"].astype(str), sex=sex))


@pytest.fixture(scope="module")
def new(train: pd.DataFrame) -> pd.DataFrame:
    rows = train.iloc[[0, 11, 25]].assign(Days=[2.5, 3.5, 11.0])
    return object_frame(pd.concat([rows, rows.head(1).assign(Subject="999")], ignore_index=True))


@pytest.fixture(scope="module")
def given(train: pd.DataFrame) -> pd.DataFrame:
    return train.head(3).assign(Subject="999", Reaction=[290.0, 300.0, 325.0])


CONVERT: dict[str, Callable[[pd.DataFrame], object]] = {
    "string[pyarrow]": lambda d: d.astype({c: "string[pyarrow]" for c in TEXT}),
    "string[python]": lambda d: d.astype({c: "string[python]" for c in TEXT}),
    "ArrowDtype": lambda d: d.astype({c: pd.ArrowDtype(pa.string()) for c in TEXT}),
    "str": lambda d: d.astype({c: "str" for c in TEXT}),
    "convert_dtypes": lambda d: d.convert_dtypes(),
    "convert_dtypes pyarrow": lambda d: d.convert_dtypes(dtype_backend="pyarrow"),
    "categorical of string[pyarrow]": lambda d: d.astype(
        {c: d[c].astype("string[pyarrow]").astype("category").dtype for c in TEXT}
    ),
    "polars": lambda d: pl.from_dict({c: d[c].tolist() for c in d.columns}),
    "polars lazy": lambda d: pl.from_dict({c: d[c].tolist() for c in d.columns}).lazy(),
    "pyarrow Table": lambda d: pa.Table.from_pydict({c: d[c].tolist() for c in d.columns}),
}


@pytest.mark.parametrize("kind", list(CONVERT))
def test_every_frame_type_gives_the_pandas_numbers(
    kind: str, train: pd.DataFrame, new: pd.DataFrame, given: pd.DataFrame
) -> None:
    to = CONVERT[kind]
    base = mfx.lmm(FORMULA, train)
    other = mfx.lmm(FORMULA, to(train))
    np.testing.assert_array_equal(other.theta, base.theta)
    np.testing.assert_array_equal(other.beta, base.beta)
    assert other.objective == base.objective
    assert other.ranef["Subject"].index.tolist() == base.ranef["Subject"].index.tolist()
    np.testing.assert_array_equal(other.predict(to(new)), base.predict(new))
    np.testing.assert_array_equal(
        other.predict(to(new), given=to(given)), base.predict(new, given=given)
    )
    np.testing.assert_array_equal(
        other.predict(to(new), interval="prediction").to_numpy(),
        base.predict(new, interval="prediction").to_numpy(),
    )
    np.testing.assert_array_equal(other.condition(to(given)).b[0], base.condition(given).b[0])
    a, b = other.design(to(new)), base.design(new)
    np.testing.assert_array_equal(a.X.to_numpy(), b.X.to_numpy())
    assert (a.Z != b.Z).nnz == 0 and a.z_names == b.z_names


@pytest.mark.parametrize("kind", ["string[pyarrow]", "polars", "pyarrow Table"])
def test_estimator_takes_every_frame_type(kind: str, train: pd.DataFrame) -> None:
    to = CONVERT[kind]
    X, y = train[["Days", "sex", "Subject"]], train["Reaction"].to_numpy()
    base = mfx.MixedLMRegressor(FORMULA).fit(X, y)
    other = mfx.MixedLMRegressor(FORMULA).fit(to(X), y)
    np.testing.assert_array_equal(other.predict(to(X)), base.predict(X))


def test_polars_enum_is_a_factor_with_its_order(train: pd.DataFrame) -> None:
    frame = pl.from_dict({c: train[c].tolist() for c in train.columns}).with_columns(
        pl.col("sex").cast(pl.Enum(["M", "F"]))
    )
    m = mfx.lmm(FORMULA, frame)
    assert "sexF" in m.fixef.index  # M first: the baseline, as a pandas categorical
    ordered = train.astype({"sex": pd.CategoricalDtype(["M", "F"])})
    np.testing.assert_array_equal(m.beta, mfx.lmm(FORMULA, ordered).beta)


def test_missing_values_in_nullable_columns_are_missing(train: pd.DataFrame) -> None:
    new = train.head(3).astype({"Subject": "string[pyarrow]"}).convert_dtypes()
    new.loc[new.index[1], "Subject"] = pd.NA
    new.loc[new.index[2], "Days"] = pd.NA
    m = mfx.lmm(FORMULA, train)
    with pytest.warns(mfx.MixedFXWarning, match="missing predictors"):
        out, info = m.predict(new, return_info=True)
    assert np.isfinite(out[:2]).all() and np.isnan(out[2])
    assert info.levels.loc["Subject", "missing_rows"] == 1


def test_boolean_response_points_to_the_binomial_glmm(train: pd.DataFrame) -> None:
    flag = train.assign(Reaction=train["Reaction"] > 300)
    for frame in (flag, flag.convert_dtypes()):
        with pytest.raises(mfx.DataError, match=r"boolean.*family='binomial'"):
            mfx.lmm(FORMULA, frame)


def test_other_objects_are_refused() -> None:
    with pytest.raises(mfx.DataError, match="data must be a pandas DataFrame.*got dict"):
        mfx.lmm(FORMULA, {"Reaction": [1.0]})


def test_polars_is_imported_only_when_given() -> None:
    code = (
        "import sys, mixedfx as mfx\n"
        "df = mfx.datasets.load('sleepstudy')\n"
        "m = mfx.lmm('Reaction ~ Days + (Days | Subject)', df)\n"
        "m.predict(df, given=df.head(3))\n"
        "assert 'polars' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", ["convert_dtypes", "polars", "pyarrow Table"])
def test_simulate_and_cross_validate_take_every_frame_type(
    kind: str, train: pd.DataFrame, new: pd.DataFrame
) -> None:
    to = CONVERT[kind]
    m = mfx.lmm(FORMULA, train)
    want = m.simulate(3, newdata=new, seed=4)
    got = m.simulate(3, newdata=to(new), seed=4)
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
    want = mfx.cross_validate(FORMULA, train, mode="new", cv=3)
    got = mfx.cross_validate(FORMULA, to(train), mode="new", cv=3)
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("kind", ["convert_dtypes", "polars", "pyarrow Table"])
def test_calibration_plot_takes_every_frame_type(kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import mixedfx.plots as mfp

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(10), 12)
    x = rng.normal(size=len(g))
    y = rng.random(len(g)) < 1 / (1 + np.exp(-(x + rng.normal(size=10)[g])))
    data = pd.DataFrame({"y": y.astype(int), "x": x, "g": [f"g{k}" for k in g]})
    m = mfx.glmm("y ~ x + (1 | g)", data, family="binomial")
    want = mfp.calibration(m, data=data).table
    got = mfp.calibration(m, data=CONVERT[kind](data)).table
    pd.testing.assert_frame_equal(got, want)
