"""Grouped binary outcomes for GLMM tests: ``y ~ x + (1 | g)`` on the logit scale."""

from __future__ import annotations

import numpy as np
import pandas as pd


def grouped_binary(
    n_groups: int = 12,
    size: int = 20,
    seed: int = 0,
    beta: tuple[float, float] = (-0.2, 0.8),
    label: str = "g{}",
) -> pd.DataFrame:
    """``size`` rows per group: columns y (bool), x (normal) and g (``label.format(k)``).

    ``logit P(y) = beta[0] + beta[1] x + u_g`` with ``u_g ~ N(0, 1)``.
    """
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=len(g))
    eta = beta[0] + beta[1] * x + rng.normal(size=n_groups)[g]
    y = rng.random(len(g)) < 1 / (1 + np.exp(-eta))
    return pd.DataFrame({"y": y, "x": x, "g": [label.format(k) for k in g]})
