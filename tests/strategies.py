"""Random small mixed-model data sets for property and differential tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
