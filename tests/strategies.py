"""Random small mixed-model data sets for property and differential tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import strategies as st


@st.composite
def datasets(draw: st.DrawFn, crossed: bool | None = None, slope: bool | None = None) -> dict:
    """A data frame and a formula: one factor (optionally a random slope) or two crossed."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    ng = draw(st.integers(3, 8))
    sizes = [draw(st.integers(1, 6)) for _ in range(ng)]
    if sum(sizes) < 2 * ng + 4:  # identifiable even with a random slope
        sizes[0] += 2 * ng + 4 - sum(sizes)
    crossed = draw(st.booleans()) if crossed is None else crossed
    slope = (draw(st.booleans()) and not crossed) if slope is None else slope
    g = np.repeat(np.arange(ng), sizes)
    n = len(g)
    x = rng.normal(size=n)
    sd_g = draw(st.sampled_from([0.0, 0.3, 1.0, 3.0]))
    y = 1.0 + 0.5 * x + sd_g * rng.normal(size=ng)[g] + rng.normal(size=n)
    df = pd.DataFrame({"y": y, "x": x, "g": [f"g{k}" for k in g]})
    formula = "y ~ x + (1 | g)"
    if slope:
        df["y"] += rng.normal(size=ng)[g] * x * 0.5
        formula = "y ~ x + (x | g)"
    if crossed:
        nh = draw(st.integers(2, 4))
        h = rng.integers(0, nh, size=n)
        h[:nh] = np.arange(nh)
        df["h"] = h.astype(float)  # numeric labels: matched by value
        df["y"] += rng.normal(size=nh)[h]
        formula = "y ~ x + (1 | g) + (1 | h)"
    return {"data": df, "formula": formula, "reml": draw(st.booleans()), "seed": seed}


def given_rows(case: dict, extra: int) -> pd.DataFrame:
    """``extra`` observed rows for ``given``: resampled with noisy y, the last in a new group."""
    data = case["data"]
    rng = np.random.default_rng(case["seed"])
    rows = data.sample(extra, random_state=case["seed"] % 1000, replace=True).copy()
    rows["y"] = rows["y"] + rng.normal(size=extra)
    rows.loc[rows.index[-1], "g"] = "brand-new"
    return rows.reset_index(drop=True)


# -- frames with missing values in every dtype --------------------------------------------
MISSING_FORMULA = "y ~ x + f + (1 + z | g)"


def missing_training(seed: int = 0) -> pd.DataFrame:
    """Complete training rows for :data:`MISSING_FORMULA`: int labels g, text labels f."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(1, 7), 12)
    n = len(g)
    x, z = rng.normal(size=n), rng.normal(size=n)
    f = np.array(["u", "v", "w"])[rng.integers(0, 3, size=n)]
    a, b = rng.normal(size=6), rng.normal(size=6)
    y = x + (f == "v") + a[g - 1] + b[g - 1] * z + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "f": f, "z": z, "g": g})


def _with(values: list, missing: np.ndarray, na: object) -> pd.Series:
    """An object column: ``values`` with ``na`` where ``missing``."""
    return pd.Series([na if k else v for v, k in zip(values, missing, strict=True)], dtype=object)


def _arrow(values: list, missing: np.ndarray, kind: pa.DataType) -> pd.Series:
    return pd.Series(pa.array(values, kind, mask=np.asarray(missing)), dtype=pd.ArrowDtype(kind))


def _text(values: list) -> list[str]:
    return [str(v) for v in values]


# per column: dtype name -> (values, missing) -> Series with missing values in that dtype
NUMBER_DTYPES = {
    "float NaN": lambda v, m: pd.Series(np.where(m, np.nan, v)),
    "float inf": lambda v, m: pd.Series(np.where(m, np.inf, v)),
    "Float64 NA": lambda v, m: pd.Series(v, dtype="Float64").mask(m),
    "Arrow float null": lambda v, m: _arrow(list(v), m, pa.float64()),
}
LABEL_DTYPES = {
    "object None": lambda v, m: _with(v, m, None),
    "object NaN": lambda v, m: _with(v, m, np.nan),
    "object NA": lambda v, m: _with(v, m, pd.NA),
    "object NaT": lambda v, m: _with(v, m, pd.NaT),
    "string NA": lambda v, m: pd.Series(_text(v), dtype="string[python]").mask(m),
    "string[pyarrow] NA": lambda v, m: pd.Series(_text(v), dtype="string[pyarrow]").mask(m),
    "Arrow string null": lambda v, m: _arrow(_text(v), m, pa.string()),
    "categorical NaN": lambda v, m: _with(v, m, np.nan).astype("category"),
}
INT_LABEL_DTYPES = {  # for the integer labels g only
    "Int64 NA": lambda v, m: pd.Series(v, dtype="Int64").mask(m),
    "float NaN": lambda v, m: pd.Series(np.where(m, np.nan, np.asarray(v, dtype=float))),
    "Arrow int null": lambda v, m: _arrow(v, m, pa.int64()),
}


@st.composite
def frames_with_missing(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """New rows for :data:`MISSING_FORMULA` with missing values in random dtypes.

    Returns the frame and, per column, where its values are missing.
    """
    n = draw(st.integers(1, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    p = draw(st.sampled_from([0.0, 0.15, 0.4]))
    values = {
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "z": rng.normal(size=n),
        "f": [["u", "v", "w"][k] for k in rng.integers(0, 3, size=n)],
        "g": [int(k) for k in rng.integers(1, 7, size=n)],
    }
    missing = {c: rng.random(n) < p for c in values}
    columns = {}
    for c, v in values.items():
        kinds = NUMBER_DTYPES if c in "xyz" else LABEL_DTYPES
        if c == "g":
            kinds = {**LABEL_DTYPES, **INT_LABEL_DTYPES}
        kind = draw(st.sampled_from(sorted(kinds)))
        columns[c] = kinds[kind](v, missing[c]).reset_index(drop=True)
    return pd.DataFrame(columns), missing
