"""Diagnostic plots of a fitted model, as display objects in the scikit-learn style.

Every plot has a front-door function that takes a fitted model and returns a
display object, already drawn::

    import mixedfx.plots as mfp

    disp = mfp.caterpillar(m)                    # BLUPs with intervals
    disp = mfp.shrinkage(m, group="Subject", term="Days")
    disp = mfp.groups(m, x="Days", which=4)      # small multiples
    disp = mfp.observed_vs_predicted(m)
    disp.figure_.savefig("plot.png")

A display holds the numbers it draws as plain attributes (so they can be
inspected or tested) and the matplotlib objects with a trailing underscore:
``ax_`` (an Axes, or for :func:`groups` an ndarray of Axes) and ``figure_``.
``display.plot(ax=None)`` draws it again, on ``ax`` or on a new figure.
The same displays can be built with ``Display.from_model(model, ...)``.

matplotlib is an optional dependency (``pip install 'mixedfx[plot]'``): it is
imported only when something is drawn, so importing this module does not
import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from . import levels as lv
from . import rows as rows_mod
from .errors import DataError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .model import LinearMixedModel
    from .reterm import ReTerm

__all__ = [
    "CaterpillarDisplay",
    "GroupsDisplay",
    "ObservedPredictedDisplay",
    "ShrinkageDisplay",
    "caterpillar",
    "groups",
    "observed_vs_predicted",
    "shrinkage",
]

MISSING_MATPLOTLIB = "plots need matplotlib: pip install 'mixedfx[plot]'"
MAX_LEVEL_LABELS = 60  # caterpillar: above this many levels, no y tick labels
MAX_CATEGORY_LABELS = 30  # groups: above this many categories on x, no x tick labels


# -- helpers ----------------------------------------------------------------------
def _pyplot() -> Any:
    """matplotlib.pyplot, or an ImportError saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(MISSING_MATPLOTLIB) from exc
    return plt


def _check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be a number between 0 and 1 (exclusive), got {level!r}")
    return float(level)


def _check_group(model: LinearMixedModel, group: str | None) -> str:
    """The grouping factor's name; the first one when ``group`` is None."""
    names = list(dict.fromkeys(t.group for t in model.spec.terms))
    if group is None:
        return names[0]
    if group not in names:
        raise ValueError(
            f"group must be one of the model's grouping factors {names}, got {group!r}"
        )
    return group


def _check_term(frame: pd.DataFrame, group: str, term: str | None) -> str:
    """A column of the group's random effects; the first one when ``term`` is None."""
    columns = [str(c) for c in frame.columns]
    if term is None:
        return columns[0]
    if term not in columns:
        raise ValueError(
            f"term must be one of {columns} (the random effects of {group!r}), got {term!r}"
        )
    return term


def _training_data(model: LinearMixedModel, what: str) -> pd.DataFrame:
    if model.data is None:
        raise DataError(
            f"the {what} plot needs the training data, but this model holds none (models "
            "loaded from a file keep no training rows); plot a model fitted with "
            "mixedfx.lmm in this session"
        )
    return model.data


def _group_terms(model: LinearMixedModel, group: str) -> list[int]:
    """Indices of the random-effects terms of one grouping factor."""
    return [k for k, t in enumerate(model.spec.terms) if t.group == group]


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = _pyplot().subplots(figsize=figsize)
    return new


def _identity_line(ax: Axes, x: np.ndarray, y: np.ndarray) -> None:
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


# -- caterpillar ------------------------------------------------------------------
class CaterpillarDisplay:
    """Sorted BLUPs of one grouping factor and term, with intervals.

    Parameters
    ----------
    estimates : DataFrame
        Indexed by level label, columns ``blup, se, lower, upper``, sorted by
        ``blup``.
    group, term : str
        The grouping factor and the random-effects column.
    level : float
        Coverage of the intervals ``blup +/- z * se``.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(self, estimates: pd.DataFrame, group: str, term: str, level: float) -> None:
        self.estimates = estimates
        self.group = group
        self.term = term
        self.level = level

    @classmethod
    def from_model(
        cls,
        model: LinearMixedModel,
        group: str | None = None,
        term: str | None = None,
        level: float = 0.95,
        ax: Axes | None = None,
    ) -> CaterpillarDisplay:
        """Compute and draw; see :func:`caterpillar`."""
        _pyplot()
        level = _check_level(level)
        group = _check_group(model, group)
        blups = model.ranef[group]
        term = _check_term(blups, group, term)
        b = blups[term].to_numpy(dtype=float)
        se = np.sqrt(np.maximum(model.ranef_condvar[group][term].to_numpy(dtype=float), 0.0))
        half = norm.ppf(0.5 + level / 2.0) * se
        estimates = pd.DataFrame(
            {"blup": b, "se": se, "lower": b - half, "upper": b + half},
            index=pd.Index([str(v) for v in blups.index], name=group),
        )
        order = np.argsort(b, kind="stable")
        return cls(estimates.iloc[order], group, term, level).plot(ax)

    def plot(self, ax: Axes | None = None) -> CaterpillarDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        est = self.estimates
        n = len(est)
        ax = _new_axes(ax, (6.0, min(max(3.0, 0.22 * n + 1.2), 14.0)))
        y = np.arange(n)
        b = est["blup"].to_numpy()
        ax.axvline(0.0, color="0.5", lw=1, zorder=1)
        ax.errorbar(
            b,
            y,
            xerr=[b - est["lower"].to_numpy(), est["upper"].to_numpy() - b],
            fmt="o",
            ms=4,
            color="C0",
            ecolor="C0",
            elinewidth=1.2,
            capsize=0,
            zorder=2,
        )
        if n <= MAX_LEVEL_LABELS:
            ax.set_yticks(y, list(est.index), fontsize="small" if n > 25 else None)
        else:
            ax.set_yticks([])
        ax.set_ylim(-0.7, n - 0.3)
        ax.set_xlabel(f"{self.term} (BLUP, {self.level:.0%} interval)")
        ax.set_ylabel(self.group)
        ax.set_title(f"Random effects of {self.group}: {self.term}")
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def caterpillar(
    model: LinearMixedModel,
    group: str | None = None,
    term: str | None = None,
    level: float = 0.95,
    ax: Axes | None = None,
) -> CaterpillarDisplay:
    """Caterpillar plot: the BLUPs of one grouping factor and term, sorted, with intervals.

    Each level's interval is ``b +/- z * sqrt(condvar)`` with ``z`` the normal
    quantile for ``level`` and ``condvar`` the conditional variance of the
    BLUP (:attr:`~mixedfx.LinearMixedModel.ranef_condvar`). A vertical line
    marks 0; level labels are shown on the y axis up to 60 levels.

    Parameters
    ----------
    model : LinearMixedModel
    group : str, optional
        Grouping factor; default the model's first.
    term : str, optional
        Random-effects column of that factor (a column of ``model.ranef[group]``,
        e.g. ``"(Intercept)"`` or ``"Days"``); default its first.
    level : float, default 0.95
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.

    Returns
    -------
    CaterpillarDisplay

    Raises
    ------
    ValueError
        Unknown ``group`` or ``term``, or ``level`` outside (0, 1).
    ImportError
        matplotlib is not installed.
    """
    return CaterpillarDisplay.from_model(model, group, term, level, ax)


# -- shrinkage --------------------------------------------------------------------
def _least_squares(
    model: LinearMixedModel, data: pd.DataFrame, group: str
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-level least-squares estimates of one grouping factor's random effects.

    The partial residual ``y - X beta - (other factors' Z b)`` of each level's
    rows is regressed on the factor's random-effects columns. Levels whose
    rows do not identify all columns get NaN.

    Returns
    -------
    estimates : DataFrame, levels x columns (as ``model.ranef[group]``)
    counts : ndarray of int, rows per level
    """
    spec = model.spec
    r = rows_mod.build(spec, data)
    partial = spec.response_vector(data) - r.X @ model.beta
    mine = _group_terms(model, group)
    for k, (codes, M, b) in enumerate(zip(r.codes, r.M, model.b, strict=True)):
        if k not in mine:
            partial = partial - np.einsum("nq,nq->n", M, b[np.maximum(codes, 0)]) * (codes >= 0)
    codes = r.codes[mine[0]]
    M = np.concatenate([r.M[k] for k in mine], axis=1)
    nlevels = spec.terms[mine[0]].nlevels
    out = np.full((nlevels, M.shape[1]), np.nan)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(nlevels + 1))
    for j in range(nlevels):
        idx = order[bounds[j] : bounds[j + 1]]
        Mj = M[idx]
        if len(idx) < M.shape[1] or np.linalg.matrix_rank(Mj) < M.shape[1]:
            continue
        out[j] = np.linalg.lstsq(Mj, partial[idx], rcond=None)[0]
    counts = np.diff(bounds)
    frame = model.ranef[group]
    return pd.DataFrame(out, index=frame.index, columns=frame.columns), counts


class ShrinkageDisplay:
    """Per-level least-squares estimates against the BLUPs.

    Parameters
    ----------
    estimates : DataFrame
        Indexed by level label, columns ``least_squares, blup, n`` (rows
        per level); ``least_squares`` is NaN where a level's rows do not
        identify the estimate.
    group, term : str

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(self, estimates: pd.DataFrame, group: str, term: str) -> None:
        self.estimates = estimates
        self.group = group
        self.term = term

    @classmethod
    def from_model(
        cls,
        model: LinearMixedModel,
        group: str | None = None,
        term: str | None = None,
        ax: Axes | None = None,
    ) -> ShrinkageDisplay:
        """Compute and draw; see :func:`shrinkage`."""
        _pyplot()
        group = _check_group(model, group)
        term = _check_term(model.ranef[group], group, term)
        data = _training_data(model, "shrinkage")
        ls, counts = _least_squares(model, data, group)
        estimates = pd.DataFrame(
            {
                "least_squares": ls[term].to_numpy(),
                "blup": model.ranef[group][term].to_numpy(dtype=float),
                "n": counts,
            },
            index=pd.Index([str(v) for v in ls.index], name=group),
        )
        return cls(estimates, group, term).plot(ax)

    def plot(self, ax: Axes | None = None) -> ShrinkageDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = _new_axes(ax, (5.5, 5.0))
        x = self.estimates["least_squares"].to_numpy(dtype=float)
        y = self.estimates["blup"].to_numpy(dtype=float)
        ok = np.isfinite(x)
        ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0.0, color="0.8", lw=0.8, zorder=0)
        _identity_line(ax, x[ok], y[ok])
        ax.scatter(x[ok], y[ok], s=22, color="C0", zorder=2, label=f"levels of {self.group}")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(f"least-squares estimate per level: {self.term}")
        ax.set_ylabel(f"BLUP: {self.term}")
        missing = int((~ok).sum())
        note = f" ({missing} level(s) without an estimate)" if missing else ""
        ax.set_title(f"Shrinkage of {self.group}: {self.term}{note}")
        ax.legend(loc="upper left", fontsize="small", frameon=False)
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def shrinkage(
    model: LinearMixedModel,
    group: str | None = None,
    term: str | None = None,
    ax: Axes | None = None,
) -> ShrinkageDisplay:
    """Shrinkage plot: per-level least-squares estimates against the BLUPs.

    For each level of ``group`` the unpooled estimate is the least-squares
    fit, on that level's rows, of the partial residual
    ``y - X beta - (Z b of the other grouping factors)`` on the factor's
    random-effects columns. With a single grouping factor that is the
    per-group OLS fit of the response minus the fixed effects (for an
    intercept-only term: the group's mean residual from the fixed-only
    prediction). Points below the identity line in magnitude show the
    BLUPs shrunk towards 0. Levels with too few rows to identify the
    estimate are left out (and counted in the title).

    Parameters
    ----------
    model : LinearMixedModel
        A model that holds its training data (``model.data``).
    group : str, optional
        Grouping factor; default the model's first.
    term : str, optional
        Random-effects column of that factor; default its first.
    ax : matplotlib Axes, optional

    Returns
    -------
    ShrinkageDisplay

    Raises
    ------
    ValueError
        Unknown ``group`` or ``term``; a :class:`~mixedfx.DataError` (a
        ValueError) when the model holds no training data.
    ImportError
        matplotlib is not installed.
    """
    return ShrinkageDisplay.from_model(model, group, term, ax)


# -- groups -----------------------------------------------------------------------
def _default_x(model: LinearMixedModel, data: pd.DataFrame) -> str:
    """The first numeric data column among the fixed-effects columns and variables."""
    candidates = list(model.spec.fixed_names) + list(model.spec.fixed_variables())
    for name in candidates:
        if name in data.columns and _is_numeric(data[name]) and name != model.spec.response:
            return str(name)
    raise ValueError(
        "x: the model has no numeric fixed-effects predictor to plot against; pass x=, "
        f"one of the data columns {[str(c) for c in data.columns]}"
    )


def _is_numeric(col: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))


def _choose_levels(t: ReTerm, codes: np.ndarray, which: int | Sequence[Any]) -> list[int]:
    """Level indices to show: the ``which`` levels with most rows, or the labels given."""
    if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
        if which < 1:
            raise ValueError(
                f"which must be a positive number of groups or a list of levels, got {which!r}"
            )
        counts = np.bincount(codes[codes >= 0], minlength=t.nlevels)
        order = np.argsort(-counts, kind="stable")
        return [int(k) for k in order[: int(which)] if counts[k] > 0]
    if isinstance(which, str) or not isinstance(which, Sequence) or len(which) == 0:
        raise ValueError(
            f"which must be a positive number of groups or a non-empty list of "
            f"levels of {t.group!r}, got {which!r}"
        )
    wanted = lv.canonical_keys(np.asarray(list(which), dtype=object)).astype(str)
    known = pd.Index(t.keys.astype(str))
    found = known.get_indexer(wanted)
    if (found < 0).any():
        bad = [w for w, f in zip(which, found, strict=True) if f < 0]
        shown = [str(v) for v in t.labels[:10]]
        more = ", ..." if t.nlevels > 10 else ""
        raise ValueError(
            f"which: level(s) {bad} are not levels of {t.group!r} in the model "
            f"(it has {shown}{more})"
        )
    return [int(f) for f in dict.fromkeys(found)]


def _panel_axes(ax: Any, n: int) -> np.ndarray:
    """``n`` axes for small multiples: a new figure, a split Axes, or the axes given.

    Returns exactly ``n`` axes; unused cells of a new grid are removed and
    unused axes of a given sequence are turned off.
    """
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    if ax is None:
        plt = _pyplot()
        fig, grid = plt.subplots(
            nrows,
            ncols,
            figsize=(3.6 * ncols, 2.9 * nrows + 0.4),
            sharex=True,
            sharey=True,
            squeeze=False,
        )
        axes = np.asarray(grid, dtype=object).ravel()
        for extra in axes[n:]:
            fig.delaxes(extra)
    elif isinstance(ax, (Sequence, np.ndarray)) and not isinstance(ax, str):
        axes = np.asarray(ax, dtype=object).ravel()
        if len(axes) < n:
            raise ValueError(f"ax: {n} groups need {n} axes, got {len(axes)}")
        for extra in axes[n:]:
            extra.set_axis_off()
    else:
        spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
        if spec is None:
            raise ValueError(
                f"ax must be None, a subplot Axes (split into panels) or a sequence of "
                f"{n} Axes, got {ax!r}"
            )
        fig = ax.figure
        ax.set_axis_off()
        inner = spec.subgridspec(nrows, ncols, hspace=0.5, wspace=0.3)
        first = fig.add_subplot(inner[0, 0])
        cells = [first] + [
            fig.add_subplot(inner[i // ncols, i % ncols], sharex=first, sharey=first)
            for i in range(1, n)
        ]
        axes = np.asarray(cells, dtype=object)
    return axes[:n]


class GroupsDisplay:
    """Observed points and fitted lines of a few groups, one panel per group.

    Parameters
    ----------
    panels : dict
        Level label -> DataFrame with columns ``x, observed`` (the group's
        rows, sorted by x) and ``fixed, conditional`` (the predictions with
        ``re="none"`` and ``re="all"``, averaged over rows with equal x).
    group, x, response : str
    categories : list of str or None
        Labels of a categorical ``x`` (its values in ``panels`` are then
        positions 0, 1, ...); None for a numeric ``x``.

    Attributes
    ----------
    ax_ : ndarray of matplotlib Axes
        One per panel, in the order of ``panels``.
    figure_ : matplotlib Figure
    """

    ax_: np.ndarray
    figure_: Figure

    def __init__(
        self,
        panels: dict[str, pd.DataFrame],
        group: str,
        x: str,
        response: str,
        categories: list[str] | None = None,
    ) -> None:
        self.panels = panels
        self.group = group
        self.x = x
        self.response = response
        self.categories = categories

    @classmethod
    def from_model(
        cls,
        model: LinearMixedModel,
        x: str | None = None,
        group: str | None = None,
        which: int | Sequence[Any] = 6,
        ax: Any = None,
    ) -> GroupsDisplay:
        """Compute and draw; see :func:`groups`."""
        _pyplot()
        group = _check_group(model, group)
        data = _training_data(model, "groups")
        if x is None:
            x = _default_x(model, data)
        elif x not in data.columns:
            raise ValueError(
                f"x must be a column of the training data "
                f"{[str(c) for c in data.columns]}, got {x!r}"
            )
        t = model.spec.terms[_group_terms(model, group)[0]]
        codes = t.codes(data)
        chosen = _choose_levels(t, codes, which)
        categories: list[str] | None = None
        xcol = data[x]
        if _is_numeric(xcol):
            xvals = xcol.to_numpy(dtype=float)
        else:
            if isinstance(xcol.dtype, pd.CategoricalDtype):
                cats = [str(c) for c in xcol.cat.categories]
            else:
                cats = sorted({str(v) for v in xcol.dropna()})
            categories = cats
            position = {c: i for i, c in enumerate(cats)}
            xvals = np.array([position.get(str(v), np.nan) for v in xcol], dtype=float)
        panels: dict[str, pd.DataFrame] = {}
        for k in chosen:
            rows = np.flatnonzero(codes == k)
            sub = data.iloc[rows]
            frame = pd.DataFrame(
                {
                    "x": xvals[rows],
                    "observed": model.spec.response_vector(sub),
                    "fixed": np.asarray(model.predict(sub, re="none"), dtype=float),
                    "conditional": np.asarray(model.predict(sub, re="all"), dtype=float),
                }
            )
            panels[str(t.labels[k])] = frame.sort_values("x", kind="stable").reset_index(drop=True)
        return cls(panels, group, x, model.spec.response, categories).plot(ax)

    def plot(self, ax: Any = None) -> GroupsDisplay:
        """Draw on ``ax`` and return self.

        Parameters
        ----------
        ax : None, matplotlib Axes or sequence of Axes
            None: a new figure with a grid of panels; one subplot Axes: split
            into the grid; a sequence: one Axes per group, in order.
        """
        n = len(self.panels)
        axes = _panel_axes(ax, n)
        for i, (label, frame) in enumerate(self.panels.items()):
            a = axes[i]
            lines = frame.groupby("x", sort=True)[["fixed", "conditional"]].mean()
            a.plot(frame["x"], frame["observed"], "o", ms=4, color="0.25", label="observed")
            a.plot(
                lines.index,
                lines["fixed"],
                "--",
                color="C1",
                lw=1.5,
                label="population (re='none')",
            )
            a.plot(
                lines.index,
                lines["conditional"],
                "-" if self.categories is None else ".-",
                color="C0",
                lw=1.8,
                label="conditional (re='all')",
            )
            a.set_title(f"{self.group} = {label}", fontsize="medium")
            if self.categories is not None:
                if len(self.categories) <= MAX_CATEGORY_LABELS:
                    a.set_xticks(range(len(self.categories)), self.categories)
                else:
                    a.set_xticks([])
        ncols = min(3, n)
        for i in range(n):
            if i % ncols == 0:
                axes[i].set_ylabel(self.response)
            below = i + ncols < n  # another panel below this one: it shows the x axis
            axes[i].xaxis.set_tick_params(labelbottom=not below)
            if not below:
                axes[i].set_xlabel(self.x)
        fig = axes[0].figure
        if ax is None:  # our own figure: one legend below the panels (about 0.8 inch)
            handles, labels = axes[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="lower center", ncol=3, fontsize="small", frameon=False)
            height = fig.get_size_inches()[1]
            fig.subplots_adjust(bottom=min(0.3, 0.8 / height), hspace=0.45, top=0.92)
        else:
            axes[0].legend(fontsize="x-small", frameon=False)
        self.ax_ = axes
        self.figure_ = fig
        return self


def groups(
    model: LinearMixedModel,
    x: str | None = None,
    group: str | None = None,
    which: int | Sequence[Any] = 6,
    ax: Any = None,
) -> GroupsDisplay:
    """Small multiples: observed points and fitted lines for a few groups.

    Each panel shows one level of ``group``: its training rows against
    ``x``, the fixed-only prediction (``re="none"``, dashed) and the
    conditional prediction (``re="all"``, solid), both at the group's own
    rows (averaged over rows with the same ``x``).

    Parameters
    ----------
    model : LinearMixedModel
        A model that holds its training data (``model.data``).
    x : str, optional
        A column of the training data; default the first numeric
        fixed-effects predictor. A categorical ``x`` is drawn at positions
        0, 1, ... in category order.
    group : str, optional
        Grouping factor; default the model's first.
    which : int or sequence of labels, default 6
        How many groups (those with the most rows, ties in level order), or
        the level labels to show (matched by value, as in prediction).
    ax : None, matplotlib Axes or sequence of Axes
        None: a new figure; a subplot Axes: split into panels; a sequence:
        one Axes per group.

    Returns
    -------
    GroupsDisplay

    Raises
    ------
    ValueError
        Unknown ``group``, ``x`` or level in ``which``; no numeric predictor
        when ``x`` is None; a :class:`~mixedfx.DataError` (a ValueError)
        when the model holds no training data.
    ImportError
        matplotlib is not installed.
    """
    return GroupsDisplay.from_model(model, x, group, which, ax)


# -- observed vs predicted ----------------------------------------------------------
class ObservedPredictedDisplay:
    """Observed response against conditional fitted values.

    Parameters
    ----------
    fitted, observed : ndarray, shape (n,)
    response : str

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(self, fitted: np.ndarray, observed: np.ndarray, response: str) -> None:
        self.fitted = fitted
        self.observed = observed
        self.response = response

    @classmethod
    def from_model(
        cls, model: LinearMixedModel, ax: Axes | None = None
    ) -> ObservedPredictedDisplay:
        """Compute and draw; see :func:`observed_vs_predicted`."""
        _pyplot()
        if model.response_values is not None and model.fitted_values is not None:
            observed = np.asarray(model.response_values, dtype=float)
            fitted = np.asarray(model.fitted_values, dtype=float)
        else:
            data = _training_data(model, "observed-vs-predicted")
            observed = model.spec.response_vector(data)
            fitted = np.asarray(model.predict(data, re="all"), dtype=float)
        return cls(fitted, observed, model.spec.response).plot(ax)

    def plot(self, ax: Axes | None = None) -> ObservedPredictedDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = _new_axes(ax, (5.5, 5.0))
        _identity_line(ax, self.fitted, self.observed)
        n = len(self.fitted)
        ax.scatter(
            self.fitted,
            self.observed,
            s=14 if n < 2000 else 4,
            alpha=0.7 if n < 2000 else 0.3,
            color="C0",
            zorder=2,
            label="rows",
        )
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("conditional fitted value (re='all')")
        ax.set_ylabel(f"observed {self.response}")
        ax.set_title(f"Observed vs predicted: {self.response}")
        ax.legend(loc="upper left", fontsize="small", frameon=False)
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def observed_vs_predicted(
    model: LinearMixedModel, ax: Axes | None = None
) -> ObservedPredictedDisplay:
    """Observed response against the conditional fitted values, with the identity line.

    Parameters
    ----------
    model : LinearMixedModel
        A fitted model (with its training rows' fitted values, or its
        training data).
    ax : matplotlib Axes, optional

    Returns
    -------
    ObservedPredictedDisplay

    Raises
    ------
    ValueError
        A :class:`~mixedfx.DataError` when the model holds neither fitted
        values nor training data.
    ImportError
        matplotlib is not installed.
    """
    return ObservedPredictedDisplay.from_model(model, ax)
