"""Normal QQ plots of the residuals or of one random effect's BLUPs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import norm

from .common import check_group, check_term, new_axes, pyplot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import LinearMixedModel

WHICH = ("residuals", "ranef")


class QQDisplay:
    """Sorted values against normal quantiles, with the line through the quartiles.

    Parameters
    ----------
    theoretical, sample : ndarray, shape (n,)
        Normal quantiles ``Phi^-1((i - 0.5) / n)`` and the sorted values.
    label : str

    Attributes
    ----------
    slope, intercept : float
        Of the reference line through the first and third quartiles (R's ``qqline``).
    ax_, figure_ : matplotlib Axes and Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(self, theoretical: np.ndarray, sample: np.ndarray, label: str) -> None:
        self.theoretical, self.sample, self.label = theoretical, sample, label
        q1, q3 = np.quantile(sample, [0.25, 0.75])
        z1, z3 = norm.ppf([0.25, 0.75])
        self.slope = float((q3 - q1) / (z3 - z1))
        self.intercept = float(q1 - self.slope * z1)

    @classmethod
    def from_model(
        cls,
        model: LinearMixedModel,
        which: str = "residuals",
        group: str | None = None,
        term: str | None = None,
        ax: Axes | None = None,
    ) -> QQDisplay:
        """Compute and draw; see :func:`qq`."""
        pyplot()
        if which not in WHICH:
            raise ValueError(f"which must be one of {WHICH}, got {which!r}")
        if which == "residuals":
            values, label = model.residuals(), "residuals"
        else:
            g = check_group(model, group)
            frame = model.ranef[g]
            col = check_term(frame, g, term)
            values, label = frame[col].to_numpy(), f"BLUPs of {col} | {g}"
        sample = np.sort(np.asarray(values, dtype=float))
        n = len(sample)
        theoretical = norm.ppf((np.arange(1, n + 1) - 0.5) / n)
        return cls(theoretical, sample, label).plot(ax)

    def plot(self, ax: Axes | None = None) -> QQDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = new_axes(ax, (5.0, 5.0))
        ax.scatter(self.theoretical, self.sample, s=12, color="C0", zorder=2, label=self.label)
        z = np.array([self.theoretical.min(), self.theoretical.max()])
        ax.plot(z, self.intercept + self.slope * z, "--", color="0.4", lw=1, label="quartile line")
        ax.set_xlabel("normal quantile")
        ax.set_ylabel(self.label)
        ax.set_title(f"Normal QQ: {self.label}")
        ax.legend(loc="upper left", fontsize="small", frameon=False)
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def qq(
    model: LinearMixedModel,
    which: str = "residuals",
    group: str | None = None,
    term: str | None = None,
    ax: Axes | None = None,
) -> QQDisplay:
    """Normal QQ plot of the conditional residuals or of one column of BLUPs.

    Parameters
    ----------
    which : {"residuals", "ranef"}
    group, term : str, optional
        For ``"ranef"``: the grouping factor and the column of its random
        effects (the first of each by default).

    Raises
    ------
    ValueError
        For an unknown ``which``, group or term; a DataError for residuals
        of a model without training rows.
    """
    return QQDisplay.from_model(model, which, group, term, ax)
