"""Shrinkage plot: per-group least-squares estimates against the BLUPs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..frame import rows as rows_mod
from .common import (
    check_group,
    check_term,
    group_terms,
    identity_line,
    new_axes,
    pyplot,
    training_data,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import LinearMixedModel


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
    std = model.standardized  # the fit's coordinates: no cancellation with shifted columns
    partial = spec.working_response(data) - std.fixed_part(r.X)
    mine = group_terms(model, group)
    for k, (codes, M) in enumerate(zip(r.codes, r.M, strict=True)):
        if k not in mine:
            partial = partial - std.random_part(k, M, np.maximum(codes, 0)) * (codes >= 0)
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
        pyplot()
        group = check_group(model, group)
        term = check_term(model.ranef[group], group, term)
        data = training_data(model, "shrinkage")
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
        ax = new_axes(ax, (5.5, 5.0))
        x = self.estimates["least_squares"].to_numpy(dtype=float)
        y = self.estimates["blup"].to_numpy(dtype=float)
        ok = np.isfinite(x)
        ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
        ax.axvline(0.0, color="0.8", lw=0.8, zorder=0)
        identity_line(ax, x[ok], y[ok])
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
    if hasattr(model, "family"):  # a GLMM: no least-squares estimate on the link scale
        raise ValueError(
            "the shrinkage plot compares per-group least-squares estimates with the BLUPs of a "
            "linear mixed model; for a GLMM use caterpillar (conditional modes) or calibration"
        )
    return ShrinkageDisplay.from_model(model, group, term, ax)
