"""Conditional residuals against conditional fitted values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .common import new_axes, pyplot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import LinearMixedModel


class ResidualsDisplay:
    """Residuals ``y - X beta - Z b`` against the fitted values ``X beta + Z b``.

    Attributes
    ----------
    fitted, residuals : ndarray, shape (n,)
    ax_, figure_ : matplotlib Axes and Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(self, fitted: np.ndarray, residuals: np.ndarray) -> None:
        self.fitted, self.residuals = fitted, residuals

    @classmethod
    def from_model(cls, model: LinearMixedModel, ax: Axes | None = None) -> ResidualsDisplay:
        """Compute and draw; see :func:`residuals_vs_fitted`."""
        pyplot()
        return cls(np.asarray(model.fitted()), np.asarray(model.residuals())).plot(ax)

    def plot(self, ax: Axes | None = None) -> ResidualsDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = new_axes(ax, (6.0, 4.5))
        n = len(self.fitted)
        ax.axhline(0.0, color="0.4", lw=1, ls="--", zorder=1)
        ax.scatter(
            self.fitted, self.residuals, s=14 if n < 2000 else 4, alpha=0.7, color="C0", zorder=2
        )
        ax.set_xlabel("conditional fitted value")
        ax.set_ylabel("conditional residual")
        ax.set_title("Residuals vs fitted")
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def residuals_vs_fitted(model: LinearMixedModel, ax: Axes | None = None) -> ResidualsDisplay:
    """Conditional residuals against fitted values (needs the training rows)."""
    return ResidualsDisplay.from_model(model, ax)
