"""Cross-validation by prediction mode: "how well will I predict", for each kind of group.

* ``mode="known"``: hold out rows within groups (scikit-learn's
  ``StratifiedKFold`` on the group labels, so every group keeps rows in
  training) and predict them with their groups' BLUPs;
* ``mode="new"``: hold out whole groups (``GroupKFold``) and predict them at
  the population level;
* ``mode="given"``: hold out whole groups, reveal the first ``k`` rows of each
  (in data order) as ``given`` and score the rest; ``given_rows`` may list
  several ``k`` (``k = 0`` is ``"new"``), scored on the same rows: those after
  the largest ``k`` of each held-out group.

New groups are expected here, so predictions do not warn about them.

Each fold refits the model on its training rows. The result is tidy: one
row per fold, mode, ``k`` (0 for ``"new"``, NaN for ``"known"``) and
metric, with the number of rows scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..frame.formula import parse
from ..predict import predict

MODES = ("known", "new", "given")
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": lambda y, p: float(np.sqrt(np.mean((y - p) ** 2))),
    "mae": lambda y, p: float(np.mean(np.abs(y - p))),
    "mse": lambda y, p: float(np.mean((y - p) ** 2)),
}


def _metrics(
    metric: str | Callable[..., float] | Sequence[str | Callable[..., float]],
) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    items = [metric] if isinstance(metric, str) or callable(metric) else list(metric)
    out = {}
    for m in items:
        if callable(m):
            out[getattr(m, "__name__", "metric")] = m
        elif m in METRICS:
            out[m] = METRICS[m]
        else:
            raise ValueError(f"metric must be one of {list(METRICS)} or a callable, got {m!r}")
    return out


def splits(
    data: pd.DataFrame, groups: np.ndarray, mode: str, cv: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row positions per fold, from scikit-learn's splitters."""
    try:
        from sklearn.model_selection import GroupKFold, StratifiedKFold
    except ImportError as exc:
        raise ImportError(
            "cross_validate needs scikit-learn: pip install 'mixedfx[sklearn]'"
        ) from exc
    positions = np.arange(len(data))
    if mode == "known":
        splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        return list(splitter.split(positions, groups))
    return list(GroupKFold(n_splits=cv).split(positions, groups=groups))


def revealed(groups: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """Of the test positions, those among the first ``k`` of their group (bool, len(test))."""
    order = pd.Series(groups[test]).groupby(groups[test], sort=False).cumcount().to_numpy()
    return order < k


def cross_validate(
    formula: str,
    data: pd.DataFrame,
    mode: str = "known",
    given_rows: int | Sequence[int] = 3,
    cv: int = 5,
    metric: str | Callable[..., float] | Sequence[str | Callable[..., float]] = ("rmse", "mae"),
    reml: bool = True,
    group: str | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Cross-validated prediction error of ``formula`` on ``data`` in one prediction mode.

    Parameters
    ----------
    formula : str
    data : DataFrame
    mode : {"known", "new", "given"}
    given_rows : int or sequence of int, default 3
        ``k``, the rows revealed per held-out group (``mode="given"``).
    cv : int, default 5
        Folds.
    metric : name, callable ``f(y, pred) -> float``, or a sequence of them
        Names: ``"rmse"``, ``"mae"``, ``"mse"``.
    reml : bool, default True
    group : str, optional
        The grouping column to split by; by default the first grouping
        factor of the formula's first random term.
    seed : int, default 0
        Shuffling of ``mode="known"``'s rows.

    Returns
    -------
    DataFrame
        Columns ``fold, mode, k, metric, value, n`` (``n`` rows scored).
    """
    from ..fit import lmm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    funcs = _metrics(metric)
    ks = sorted({int(k) for k in np.atleast_1d(given_rows)}) if mode == "given" else []
    if any(k < 0 for k in ks):
        raise ValueError(f"given_rows must be non-negative, got {given_rows!r}")
    parsed = parse(formula)
    column = group if group is not None else parsed.random[0].factors[0]
    if column not in data.columns:
        raise DataError(f"group column {column!r} is not in the data")
    groups = data[column].to_numpy()
    records: list[dict[str, Any]] = []
    for fold, (train, test) in enumerate(splits(data, groups, mode, cv, seed)):
        model = lmm(formula, data.iloc[train], reml=reml)
        held = data.iloc[test]
        y = model.spec.response_vector(held)
        scored: dict[float, tuple[np.ndarray, np.ndarray]]
        if mode != "given":
            pred = np.asarray(predict(model, held, quiet=True))
            scored = {np.nan if mode == "known" else 0.0: (y, pred)}
        else:
            last = revealed(groups, test, max(ks))
            scored = {}
            for k in ks:
                show = revealed(groups, test, k)
                seen = model.condition(held[show]) if show.any() else model
                pred = np.asarray(predict(seen, held[~last], quiet=True))
                scored[float(k)] = (y[~last], pred)
        for kk, (yy, pp) in scored.items():
            for name, f in funcs.items():
                records.append(
                    dict(fold=fold, mode=mode, k=kk, metric=name, value=f(yy, pp), n=len(yy))
                )
    return pd.DataFrame(records)
