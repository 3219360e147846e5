"""Calibration of a GLMM by group: observed against predicted proportions (or mean counts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import DataError
from ..frame.rows import build
from ..frames import in_memory
from .common import check_group, identity_line, new_axes, pyplot, training_data

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..glmm_model import GeneralizedLinearMixedModel


class CalibrationDisplay:
    """Per level of a grouping factor: the observed and the predicted mean outcome.

    Parameters
    ----------
    table : DataFrame
        Indexed by level label, columns ``n`` (weight: trials or rows),
        ``observed`` and ``predicted`` (weighted means of the response and
        of the predicted means over the level's rows).
    group : str
    what : str
        ``"proportion"`` (binomial) or ``"mean count"`` (Poisson).
    re : str
        The random effects in the predictions.

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    """

    ax_: Axes
    figure_: Figure

    def __init__(self, table: pd.DataFrame, group: str, what: str, re: str) -> None:
        self.table = table
        self.group = group
        self.what = what
        self.re = re

    @classmethod
    def from_model(
        cls,
        model: GeneralizedLinearMixedModel,
        data: pd.DataFrame | None = None,
        group: str | None = None,
        re: str = "all",
        ax: Axes | None = None,
    ) -> CalibrationDisplay:
        """Compute and draw; see :func:`calibration`."""
        pyplot()
        if not hasattr(model, "family"):
            raise ValueError(
                "calibration plots are for GLMMs (mixedfx.glmm); use observed_vs_predicted"
            )
        group = check_group(model, group)
        rows = training_data(model, "calibration") if data is None else in_memory(data, "data")
        outcome = model.outcome.outcome(model.spec, rows)
        weight = outcome.trials if model.family.binomial else outcome.weights
        predicted = np.asarray(model.predict(rows, re=re), dtype=float)
        k, term = next((k, t) for k, t in enumerate(model.spec.terms) if t.group == group)
        if build(model.spec, rows).missing_labels[k].any():
            raise DataError(f"the calibration rows need a label of {group!r} in every row")
        with_new, codes = term.with_levels(rows)  # held-out rows may have new levels
        labels = np.array([str(v) for v in with_new.labels], dtype=object)[codes]
        frame = pd.DataFrame(
            {"level": labels, "n": weight, "y": weight * outcome.y, "p": weight * predicted}
        )
        sums = frame.groupby("level", sort=True)[["n", "y", "p"]].sum()
        table = pd.DataFrame(
            {"n": sums["n"], "observed": sums["y"] / sums["n"], "predicted": sums["p"] / sums["n"]}
        )
        table.index.name = group
        what = "proportion" if model.family.binomial else "mean count"
        return cls(table, group, what, re).plot(ax)

    def plot(self, ax: Axes | None = None) -> CalibrationDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = new_axes(ax, (5.5, 5.0))
        t = self.table
        x, y = t["predicted"].to_numpy(), t["observed"].to_numpy()
        identity_line(ax, x, y)
        n = t["n"].to_numpy(dtype=float)
        sizes = 12.0 + 120.0 * n / max(float(n.max(initial=0.0)), 1.0)
        ax.scatter(x, y, s=sizes, alpha=0.7, color="C0", zorder=2, label=f"levels of {self.group}")
        ax.set_xlabel(f"predicted {self.what} (re='{self.re}')")
        ax.set_ylabel(f"observed {self.what}")
        ax.set_title(f"Calibration by {self.group} (size: weight)")
        ax.legend(loc="upper left", fontsize="small", frameon=False)
        self.ax_ = ax
        self.figure_ = ax.figure  # type: ignore[assignment]
        return self


def calibration(
    model: GeneralizedLinearMixedModel,
    data: pd.DataFrame | None = None,
    group: str | None = None,
    re: str = "all",
    ax: Axes | None = None,
) -> CalibrationDisplay:
    """Observed against predicted mean outcome per level of a grouping factor.

    For a binomial GLMM each level's observed proportion (successes over
    trials) is plotted against its mean predicted probability weighted by
    trials; for a Poisson GLMM the mean count against the mean predicted
    count. Points lie on the identity line when the model is calibrated at
    the group level. With ``data`` (rows with the response, e.g. held out)
    the calibration is out of sample; ``re="none"`` shows how far the
    population-level predictions are from each group.

    Parameters
    ----------
    model : GeneralizedLinearMixedModel
    data : DataFrame, optional
        Rows with the response; the training rows by default.
    group : str, optional
        Grouping factor; default the model's first.
    re : str, default "all"
    ax : matplotlib Axes, optional

    Returns
    -------
    CalibrationDisplay
    """
    return CalibrationDisplay.from_model(model, data, group, re, ax)
