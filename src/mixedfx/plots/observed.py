"""Observed against conditional fitted values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .common import (
    identity_line,
    new_axes,
    observed_response,
    pyplot,
    training_data,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import LinearMixedModel


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
        pyplot()
        if model.response_values is not None and model.fitted_values is not None:
            observed = np.asarray(model.response_values, dtype=float)
            fitted = np.asarray(model.fitted_values, dtype=float)
        else:
            data = training_data(model, "observed-vs-predicted")
            observed = observed_response(model, data)
            fitted = np.asarray(model.predict(data, re="all"), dtype=float)
        return cls(fitted, observed, model.spec.response).plot(ax)

    def plot(self, ax: Axes | None = None) -> ObservedPredictedDisplay:
        """Draw on ``ax`` (a new figure when None) and return self."""
        ax = new_axes(ax, (5.5, 5.0))
        identity_line(ax, self.fitted, self.observed)
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
