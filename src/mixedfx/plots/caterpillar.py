"""Caterpillar plot: sorted BLUPs of one factor and term with their intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..frame.levels import display
from .common import (
    MAX_LEVEL_LABELS,
    check_group,
    check_level,
    check_term,
    new_axes,
    pyplot,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import LinearMixedModel


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

    def __init__(
        self, estimates: pd.DataFrame, group: str, term: str, level: float, scale: str = "BLUP"
    ) -> None:
        self.estimates = estimates
        self.group = group
        self.term = term
        self.level = level
        self.scale = scale

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
        pyplot()
        level = check_level(level)
        group = check_group(model, group)
        blups = model.ranef[group]
        term = check_term(blups, group, term)
        b = blups[term].to_numpy(dtype=float)
        se = np.sqrt(np.maximum(model.ranef_condvar[group][term].to_numpy(dtype=float), 0.0))
        half = norm.ppf(0.5 + level / 2.0) * se
        estimates = pd.DataFrame(
            {"blup": b, "se": se, "lower": b - half, "upper": b + half},
            index=pd.Index([display(v) for v in blups.index], name=group),
        )
        order = np.argsort(b, kind="stable")
        scale = "conditional mode, link scale" if hasattr(model, "family") else "BLUP"
        return cls(estimates.iloc[order], group, term, level, scale).plot(ax)

    def plot(self, ax: Axes | None = None) -> CaterpillarDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        est = self.estimates
        n = len(est)
        ax = new_axes(ax, (6.0, min(max(3.0, 0.22 * n + 1.2), 14.0)))
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
        ax.set_xlabel(f"{self.term} ({self.scale}, {self.level:.0%} interval)")
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
    marks 0; level labels are shown on the y axis up to 60 levels. For a
    GLMM the effects are the conditional modes on the link scale (log odds,
    log rate) with the Laplace approximation's conditional variances.

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
