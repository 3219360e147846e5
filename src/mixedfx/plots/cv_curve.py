"""Cross-validated error against the number of revealed rows, with reference lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .common import new_axes, pyplot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class CVCurveDisplay:
    """Mean error over folds per ``k`` revealed rows of a new group (``given``).

    Parameters
    ----------
    curve : DataFrame
        Index ``k``; columns ``mean`` and ``se`` (over folds) of ``mode="given"``.
    population, known : float or None
        Mean errors of ``mode="new"`` (the population-level prediction) and
        ``mode="known"`` (groups seen in training), drawn as horizontal lines.
    metric : str

    Attributes
    ----------
    ax_, figure_ : matplotlib Axes and Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(
        self, curve: pd.DataFrame, population: float | None, known: float | None, metric: str
    ) -> None:
        self.curve, self.population, self.known, self.metric = curve, population, known, metric

    @classmethod
    def from_results(
        cls, results: pd.DataFrame, metric: str = "rmse", ax: Axes | None = None
    ) -> CVCurveDisplay:
        """Compute and draw; see :func:`cv_curve`."""
        pyplot()
        rows = results[results["metric"] == metric]
        if rows.empty:
            raise ValueError(
                f"metric {metric!r} is not in the results (they have {sorted(set(results.metric))})"
            )
        given = rows[rows["mode"] == "given"].groupby("k")["value"]
        curve = pd.DataFrame({"mean": given.mean(), "se": given.std() / np.sqrt(given.count())})

        def mean_of(mode: str) -> float | None:
            values = rows[rows["mode"] == mode]["value"]
            return float(values.mean()) if len(values) else None

        return cls(curve, mean_of("new"), mean_of("known"), metric).plot(ax)

    def plot(self, ax: Axes | None = None) -> CVCurveDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = new_axes(ax, (6.0, 4.5))
        if len(self.curve):
            ax.errorbar(
                self.curve.index,
                self.curve["mean"],
                yerr=self.curve["se"].fillna(0.0),
                marker="o",
                color="C0",
                capsize=3,
                label="new group, k rows given",
            )
        if self.population is not None:
            ax.axhline(self.population, color="C3", ls="--", label="new group (population)")
        if self.known is not None:
            ax.axhline(self.known, color="C2", ls=":", label="known group")
        ax.set_xlabel("k: rows of the group revealed (given)")
        ax.set_ylabel(f"cross-validated {self.metric}")
        ax.set_title("Prediction error by what is known of the group")
        ax.legend(fontsize="small", frameon=False)
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def cv_curve(results: pd.DataFrame, metric: str = "rmse", ax: Axes | None = None) -> CVCurveDisplay:
    """Plot :func:`mixedfx.cross_validate` results: error against ``k`` with reference lines.

    Pass the concatenation of a ``mode="given"`` run (several ``given_rows``)
    and, for the reference lines, ``mode="new"`` and ``mode="known"`` runs.
    """
    return CVCurveDisplay.from_results(results, metric, ax)
