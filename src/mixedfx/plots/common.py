"""Shared pieces of the plots: lazy matplotlib, argument checks, axes helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..base import MixedModel


MISSING_MATPLOTLIB = "plots need matplotlib: pip install 'mixedfx[plot]'"
MAX_LEVEL_LABELS = 60  # caterpillar: above this many levels, no y tick labels
MAX_CATEGORY_LABELS = 30  # groups: above this many categories on x, no x tick labels


def pyplot() -> Any:
    """matplotlib.pyplot, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(MISSING_MATPLOTLIB) from exc
    return plt


def check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be a number between 0 and 1 (exclusive), got {level!r}")
    return float(level)


def check_group(model: MixedModel, group: str | None) -> str:
    """The grouping factor's name; the first one when ``group`` is None."""
    names = list(dict.fromkeys(t.group for t in model.spec.terms))
    if group is None:
        return names[0]
    if group not in names:
        raise ValueError(
            f"group must be one of the model's grouping factors {names}, got {group!r}"
        )
    return group


def check_term(frame: pd.DataFrame, group: str, term: str | None) -> str:
    """A column of the group's random effects; the first one when ``term`` is None."""
    columns = [str(c) for c in frame.columns]
    if term is None:
        return columns[0]
    if term not in columns:
        raise ValueError(
            f"term must be one of {columns} (the random effects of {group!r}), got {term!r}"
        )
    return term


def training_data(model: MixedModel, what: str) -> pd.DataFrame:
    if model.data is None:
        raise DataError(
            f"the {what} plot needs the training data, but this model holds none (models "
            "loaded from a file keep no training rows); plot a model fitted with "
            "mixedfx.lmm in this session"
        )
    return model.data


def observed_response(model: MixedModel, data: pd.DataFrame) -> np.ndarray:
    """The observed response of rows, on the scale of ``predict``, shape (n,).

    A GLMM's is its outcome (a binomial proportion, also of a ``cbind``
    response; a count); a linear model's its response column or expression.
    """
    outcome = getattr(model, "outcome", None)  # a GLMM's OutcomeSpec
    if outcome is not None:
        return np.asarray(outcome.outcome(model.spec, data).y, dtype=float)
    return model.spec.response_vector(data)


def group_terms(model: MixedModel, group: str) -> list[int]:
    """Indices of the random-effects terms of one grouping factor."""
    return [k for k, t in enumerate(model.spec.terms) if t.group == group]


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = pyplot().subplots(figsize=figsize)
    return new


def identity_line(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
    """A dashed y = x line over the range of both, drawn behind the points."""
    values = np.concatenate([x, y])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.plot(
        [lo - pad, hi + pad],
        [lo - pad, hi + pad],
        "--",
        color="0.4",
        lw=1,
        zorder=1,
        label="identity",
    )
