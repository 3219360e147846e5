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

With ``family`` the model is a GLMM (:func:`mixedfx.glmm`), predictions are
means on the response scale (probabilities, rates) and its metrics weigh
each row by its binomial trials times its prior weights ``w``:

* ``"log_loss"``: ``-sum w (y log p + (1 - y) log(1 - p)) / sum w``;
* ``"brier"``: ``sum w (y - p)^2 / sum w``;
* ``"deviance"``: the family's deviance per unit weight, ``sum d_i / sum w``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import xlogy

from ..engine.family import Family
from ..errors import DataError
from ..family import resolve
from ..frame.formula import parse
from ..frames import in_memory
from ..predict import predict

MODES = ("known", "new", "given")
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": lambda y, p: float(np.sqrt(np.mean((y - p) ** 2))),
    "mae": lambda y, p: float(np.mean(np.abs(y - p))),
    "mse": lambda y, p: float(np.mean((y - p) ** 2)),
}


WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray, Family], float]
GLMM_METRICS: dict[str, WeightedMetric] = {
    "log_loss": lambda y, p, w, fam: float(
        -(w * (xlogy(y, p) + xlogy(1.0 - y, 1.0 - p))).sum() / w.sum()
    ),
    "brier": lambda y, p, w, fam: float((w * (y - p) ** 2).sum() / w.sum()),
    "deviance": lambda y, p, w, fam: float(fam.dev_resid(y, p, w).sum() / w.sum()),
}
BINOMIAL_ONLY = ("log_loss", "brier")


def _metrics(
    metric: str | Callable[..., float] | Sequence[str | Callable[..., float]] | None,
    family: Family | None,
) -> dict[str, Callable[..., float]]:
    """The metrics by name: ``f(y, pred)``, or for a GLMM's named ones ``f(y, p, w, family)``."""
    if metric is None:
        metric = ("rmse", "mae") if family is None else default_glmm_metrics(family)
    items = [metric] if isinstance(metric, str) or callable(metric) else list(metric)
    known = list(METRICS) + (list(GLMM_METRICS) if family is not None else [])
    out: dict[str, Callable[..., float]] = {}
    for m in items:
        if callable(m):
            out[getattr(m, "__name__", "metric")] = m
        elif m in METRICS:
            out[m] = METRICS[m]
        elif m in GLMM_METRICS and family is not None:
            if m in BINOMIAL_ONLY and not family.binomial:
                raise ValueError(f"metric {m!r} is for binomial models; use 'deviance'")
            out[m] = GLMM_METRICS[m]
        else:
            hint = "" if family is not None else f" ({list(GLMM_METRICS)} need family=)"
            raise ValueError(f"metric must be one of {known} or a callable, got {m!r}{hint}")
    return out


def default_glmm_metrics(family: Family) -> tuple[str, ...]:
    return ("log_loss", "brier") if family.binomial else ("deviance", "rmse")


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
    metric: str | Callable[..., float] | Sequence[str | Callable[..., float]] | None = None,
    reml: bool = True,
    group: str | None = None,
    seed: int = 0,
    family: str | Family | None = None,
    weights: str | None = None,
) -> pd.DataFrame:
    """Cross-validated prediction error of ``formula`` on ``data`` in one prediction mode.

    Parameters
    ----------
    formula : str
    data : DataFrame
        A pandas, polars or pyarrow frame (:func:`mixedfx.frames.in_memory`).
    mode : {"known", "new", "given"}
    given_rows : int or sequence of int, default 3
        ``k``, the rows revealed per held-out group (``mode="given"``).
    cv : int, default 5
        Folds.
    metric : name, callable ``f(y, pred) -> float``, or a sequence of them
        Names: ``"rmse"``, ``"mae"``, ``"mse"``; for a GLMM also
        ``"log_loss"``, ``"brier"`` (binomial) and ``"deviance"`` (module
        docstring). Default: ``("rmse", "mae")``; for a GLMM ``("log_loss",
        "brier")`` (binomial) or ``("deviance", "rmse")`` (Poisson).
    reml : bool, default True
        For a linear model.
    group : str, optional
        The grouping column to split by; by default the first grouping
        factor of the formula's first random term.
    seed : int, default 0
        Shuffling of ``mode="known"``'s rows.
    family : str or Family, optional
        Fit GLMMs (:func:`mixedfx.glmm`): ``"binomial"``, ``"poisson"``, ...
    weights : str, optional
        A column of prior weights (binomial trials for a proportion), as for
        :func:`mixedfx.lmm` and :func:`mixedfx.glmm`.

    Returns
    -------
    DataFrame
        Columns ``fold, mode, k, metric, value, n`` (``n`` rows scored).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    fam = None if family is None else resolve(family)
    funcs = _metrics(metric, fam)
    ks = sorted({int(k) for k in np.atleast_1d(given_rows)}) if mode == "given" else []
    if any(k < 0 for k in ks):
        raise ValueError(f"given_rows must be non-negative, got {given_rows!r}")
    data = in_memory(data, "data")
    parsed = parse(formula)
    column = group if group is not None else parsed.random[0].factors[0]
    if column not in data.columns:
        raise DataError(f"group column {column!r} is not in the data")
    groups = data[column].to_numpy()
    records: list[dict[str, Any]] = []
    for fold, (train, test) in enumerate(splits(data, groups, mode, cv, seed)):
        model = _fit(formula, data.iloc[train], reml, fam, weights)
        held = data.iloc[test]
        y, w = _observed(model, held)
        scored: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]]
        if mode != "given":
            scored = {np.nan if mode == "known" else 0.0: (y, _predict(model, held), w)}
        else:
            last = revealed(groups, test, max(ks))
            scored = {}
            for k in ks:
                show = revealed(groups, test, k)
                seen = model.condition(held[show]) if show.any() else model
                scored[float(k)] = (y[~last], _predict(seen, held[~last]), w[~last])
        for kk, (yy, pp, ww) in scored.items():
            for name, f in funcs.items():
                value = f(yy, pp, ww, fam) if name in GLMM_METRICS and fam else f(yy, pp)
                records.append(
                    dict(fold=fold, mode=mode, k=kk, metric=name, value=value, n=len(yy))
                )
    return pd.DataFrame(records)


def _fit(
    formula: str, data: pd.DataFrame, reml: bool, family: Family | None, weights: str | None
) -> Any:
    """The fold's model: an LMM, or a GLMM of ``family``."""
    if family is None:
        from ..fit import lmm

        return lmm(formula, data, reml=reml, weights=weights)
    from ..glmm import glmm

    return glmm(formula, data, family=family, weights=weights)


def _observed(model: Any, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows' response on the scale of the predictions, and their weights (n,).

    A linear model's response column (weights 1); a GLMM's outcome, a
    binomial proportion with weights trials times prior weights, or a count.
    """
    outcome = getattr(model, "outcome", None)
    if outcome is None:
        return model.spec.response_vector(rows), np.ones(len(rows))
    o = outcome.outcome(model.spec, rows)
    return o.y, o.weights


def _predict(model: Any, rows: pd.DataFrame) -> np.ndarray:
    """Predictions with the random effects: means on the response scale; quiet about new groups."""
    if getattr(model, "outcome", None) is None:
        return np.asarray(predict(model, rows, quiet=True))
    from ..glmm_predict import predict as predict_glmm

    return np.asarray(
        predict_glmm(model, rows, "all", "population", None, 0.95, "response", quiet=True)
    )
