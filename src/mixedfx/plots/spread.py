"""Per-group spread of the conditional residuals: one box per level."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .common import MAX_CATEGORY_LABELS, check_group, new_axes, pyplot, training_data

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import LinearMixedModel


class ResidualSpreadDisplay:
    """Boxes of the residuals per level, ordered by their median.

    Attributes
    ----------
    residuals : dict of label -> ndarray
        In plotting order.
    sd : Series
        Each level's residual standard deviation (a check of equal variance).
    ax_, figure_ : matplotlib Axes and Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(self, residuals: dict[str, np.ndarray], group: str) -> None:
        self.residuals, self.group = residuals, group
        self.sd = pd.Series(
            {k: float(np.std(v, ddof=1)) if len(v) > 1 else np.nan for k, v in residuals.items()},
            name="sd",
        )

    @classmethod
    def from_model(
        cls, model: LinearMixedModel, group: str | None = None, ax: Axes | None = None
    ) -> ResidualSpreadDisplay:
        """Compute and draw; see :func:`residual_spread`."""
        pyplot()
        g = check_group(model, group)
        data = training_data(model, "residual-spread")
        term = next(t for t in model.spec.terms if t.group == g)
        labels = np.asarray(term.labels, dtype=object)[term.codes(data)].astype(str)
        res = pd.Series(model.residuals()).groupby(labels)
        ordered = sorted(res, key=lambda kv: float(np.median(kv[1])))
        return cls({str(k): v.to_numpy() for k, v in ordered}, g).plot(ax)

    def plot(self, ax: Axes | None = None) -> ResidualSpreadDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = new_axes(ax, (max(6.0, 0.25 * len(self.residuals)), 4.5))
        labels = list(self.residuals)
        ax.boxplot(list(self.residuals.values()), showfliers=True)
        ax.axhline(0.0, color="0.4", lw=1, ls="--")
        if len(labels) <= MAX_CATEGORY_LABELS:
            ax.set_xticks(range(1, len(labels) + 1), labels, rotation=90, fontsize="small")
        else:
            ax.set_xticks([])
        ax.set_xlabel(f"{self.group} (ordered by median residual)")
        ax.set_ylabel("conditional residual")
        ax.set_title(f"Residual spread per {self.group}")
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def residual_spread(
    model: LinearMixedModel, group: str | None = None, ax: Axes | None = None
) -> ResidualSpreadDisplay:
    """Box plots of the conditional residuals per level of ``group`` (default: the first)."""
    return ResidualSpreadDisplay.from_model(model, group, ax)
