"""Small multiples: per-group observations with fixed-only and conditional lines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .common import (
    MAX_CATEGORY_LABELS,
    check_group,
    group_terms,
    observed_response,
    pyplot,
    training_data,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..frame.reterm import ReTerm
    from ..model import LinearMixedModel


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
    found = t.find(list(which))
    if (found < 0).any():
        bad = [w for w, f in zip(which, found, strict=True) if f < 0]
        shown = [v for v in t.keys[:10]]
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
        plt = pyplot()
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
        pyplot()
        group = check_group(model, group)
        data = training_data(model, "groups")
        if x is None:
            x = _default_x(model, data)
        elif x not in data.columns:
            raise ValueError(
                f"x must be a column of the training data "
                f"{[str(c) for c in data.columns]}, got {x!r}"
            )
        t = model.spec.terms[group_terms(model, group)[0]]
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
                    "observed": observed_response(model, sub),
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
