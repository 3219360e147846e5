"""Predictions with the random effects: every ``re`` / ``new_levels`` mode, with intervals.

For new row ``i`` with fixed part ``x_i``, offset ``o_i`` (0 without offsets)
and, per term ``t``, level ``k`` and model-matrix row ``z_ti``::

    fit_i = o_i + x_i'beta + sum over included terms with known level of z_ti' b_t[k]

Variance parts (``Sigma_t = sigma^2 T_t T_t'`` the covariance of one level's
effects, ``inc``/``om`` the included and omitted columns of a term):

* ``"confidence"``: the prediction-error variance of the conditional mean of
  the included effects, from the mixed-model equations (beta-hat and b-hat - b
  jointly, cross terms included), plus ``z_inc' Sigma_t z_inc`` for terms whose
  level is new (their effect is unknown: prior variance).
* ``"prediction"``: the confidence variance, plus ``z_om' Sigma_t z_om`` for
  omitted effects (e.g. all of them with ``re="none"``), the rest of
  ``z' Sigma_t z`` for new levels, and the model's ``residual_variance``
  (``sigma^2``) for the new observation.

Intervals are ``fit +/- z_(1+level)/2 * se`` with normal quantiles.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from .condition import warn_unused_given
from .errors import DataError, MixedFXWarning
from .frame import rows as rows_mod

if TYPE_CHECKING:
    from .base import MixedModel

NEW_LEVELS = ("population", "nan", "error")


def _unseen_message(
    group: str, data: pd.DataFrame, factors: list[str], new: np.ndarray, absent: np.ndarray
) -> str:
    """The error for ``new_levels="error"``: the unseen levels (tuples for an interaction).

    ``new`` and ``absent`` (bool, shape (n,)): rows with a level training never
    saw, and rows with a missing label.
    """
    parts = []
    if new.any():
        distinct = data.loc[new, factors].drop_duplicates()
        labels = [t[0] if len(t) == 1 else t for t in distinct.itertuples(index=False, name=None)]
        more = f" and {len(labels) - 10} more" if len(labels) > 10 else ""
        parts.append(
            f"new data has {len(labels)} level(s) of {group!r} not seen in "
            f"training: {labels[:10]}{more}"
        )
    if absent.any():
        parts.append(
            f"new data has {int(absent.sum())} row(s) with a missing (NaN) label of {group!r}"
        )
    return "; ".join(parts) + "; use new_levels='population' or 'nan' to predict them"


@dataclass(frozen=True)
class PredictionInfo:
    """What :meth:`~mixedfx.LinearMixedModel.predict` found in ``newdata`` (``return_info=True``).

    Attributes
    ----------
    levels : DataFrame
        One row per grouping factor, indexed by its name as lme4 prints it
        (``"Subject"``, ``"cask:batch"``), with columns ``rows``,
        ``new_rows`` (rows whose level training never saw), ``new_levels``
        (how many distinct such levels), ``missing_rows`` (rows with a
        missing label) and ``used`` (whether ``re`` includes the factor).
    new : ndarray of bool, shape (n,)
        Rows with a new or missing level in an included term: predicted at
        the population level for that term (``new_levels="population"``) or
        NaN (``"nan"``).
    """

    levels: pd.DataFrame
    new: np.ndarray

    def __repr__(self) -> str:
        return (
            f"PredictionInfo: {int(self.new.sum())} of {len(self.new)} row(s) with a new or "
            f"missing level\n{self.levels}"
        )


def predict(
    model: MixedModel,
    newdata: pd.DataFrame | None = None,
    re: str | None = "all",
    new_levels: str = "population",
    interval: str | None = None,
    level: float = 0.95,
    *,
    given: pd.DataFrame | None = None,
    return_info: bool = False,
    rows: rows_mod.Rows | None = None,
    quiet: bool = False,
    stacklevel: int = 3,
) -> Any:
    """See :meth:`mixedfx.LinearMixedModel.predict`.

    ``model`` is already conditioned on ``given`` (a pandas frame, or None),
    which is passed only to check that newdata uses its groups. ``rows``:
    ``newdata``'s model matrices when already built under this model's design
    (many predictions of the same rows); ``quiet``: no warnings about new
    levels, given groups or missing predictors (the caller has warned);
    ``stacklevel``: of those warnings, counted from here (3: the user's call of
    a model's ``predict``).
    """
    if new_levels not in NEW_LEVELS:
        raise ValueError(f"new_levels must be one of {NEW_LEVELS}, got {new_levels!r}")
    if interval not in (None, "confidence", "prediction"):
        raise ValueError(f"interval must be None, 'confidence' or 'prediction', got {interval!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    spec = model.spec
    if newdata is None:
        if model.data is None:
            raise DataError(
                "this model holds no training data (a model loaded from a file or "
                "fitted by MixedLMRegressor keeps none); pass newdata"
            )
        newdata = model.data
    masks = rows_mod.select(spec, re)
    r = rows_mod.build(spec, newdata) if rows is None else rows
    n = r.n
    std = model.standardized  # computed in the fit's coordinates: no cancellation
    # a non-finite input (inf in X or M) may make inf - inf here: its row is set
    # to NaN from the masks below, so the arithmetic's warnings say nothing
    with np.errstate(invalid="ignore", over="ignore"):
        fit = std.fixed_part(r.X) if n else np.zeros(0)
        bad = r.missing_x
        if spec.has_offset:
            fit += r.offset
            bad |= r.missing_offset
        unknown_used = np.zeros(n, dtype=bool)
        for k, (t, codes, M, mask) in enumerate(zip(spec.terms, r.codes, r.M, masks, strict=True)):
            if not mask.any():
                continue
            known = codes >= 0
            if known.all():  # the common case: no row needs masking
                fit += std.random_part(k, M, codes, mask)
            else:
                unseen = ~known
                if new_levels == "error":
                    factors = list(t.term.factors)
                    absent = r.missing_labels[k]
                    raise DataError(
                        _unseen_message(t.group, newdata, factors, unseen & ~absent, absent)
                    )
                unknown_used |= unseen
                fit += np.where(known, std.random_part(k, M, np.maximum(codes, 0), mask), 0.0)
            bad |= r.missing_effects(k, mask)
    # after the loop: with new_levels="error" an unseen level has raised, without a warning
    if not quiet:
        rows_mod.warn_unseen(spec, newdata, r, masks, stacklevel=stacklevel)
    if given is not None and n and not quiet:
        warn_unused_given(spec, given, r.codes, masks, stacklevel=stacklevel)
    if bad.any():
        fit[bad] = np.nan
    if new_levels == "nan":
        fit = np.where(unknown_used, np.nan, fit)
    if bad.any() and not quiet:
        warnings.warn(
            f"{int(bad.sum())} row(s) of newdata have missing predictors; their "
            "predictions are NaN",
            MixedFXWarning,
            stacklevel=stacklevel,
        )
    out: np.ndarray | pd.DataFrame = fit
    if interval is not None:
        invalid = bad | (unknown_used & (new_levels == "nan"))
        se = np.sqrt(variance(model, r, masks, interval, invalid))
        half = norm.ppf(0.5 + level / 2.0) * se
        out = pd.DataFrame(
            {"fit": fit, "se": se, "lower": fit - half, "upper": fit + half}, index=newdata.index
        )
    if return_info:
        return out, PredictionInfo(rows_mod.level_counts(spec, newdata, r, masks), unknown_used)
    return out


def variance(
    model: MixedModel,
    r: rows_mod.Rows,
    masks: list[np.ndarray],
    interval: str,
    invalid: np.ndarray,
) -> np.ndarray:
    """Variance behind the interval, per row (see module docstring)."""
    bl = model.blocks
    n = r.n
    # in the fit's coordinates (those of the blocks): rows z G_t and x G_X, the
    # standardized T_t, and covariances sigma^2 T_t T_t' of the standardized effects
    # in the user's squared units (z_s' b_s s = z' b)
    std = model.standardized
    coords = std.coords
    Ts = model.spec.layout.Ts(std.theta)
    covs = [model.sigma**2 * T @ T.T for T in Ts]
    first = bl.first
    clean = [_zeroed(M, invalid) for M in r.M]  # inf * 0 would be NaN, inf ** 2 overflow
    inc = [coords.z_rows(t, M, mask) for t, (M, mask) in enumerate(zip(clean, masks, strict=True))]
    # first term: T0'z0 where the level is known and columns included
    c0, mask0 = r.codes[first], masks[first]
    known0 = (c0 >= 0) & mask0.any()
    z0 = np.where(known0[:, None], inc[first] @ Ts[first], 0.0)
    k0 = np.maximum(c0, 0)
    # the sparse rest of v: rest terms' T'z at their level, then x
    pos, val = [], []
    for rt in bl.rest:
        codes, mask = r.codes[rt.term], masks[rt.term]
        known = (codes >= 0) & mask.any()
        tz = np.where(known[:, None], inc[rt.term] @ Ts[rt.term], 0.0)
        base = rt.offset + np.maximum(codes, 0) * rt.q
        pos.append(base[:, None] + np.arange(rt.q)[None, :])
        val.append(tz)
    pos.append(np.broadcast_to(bl.mr + np.arange(bl.p), (n, bl.p)))
    val.append(coords.x_rows(_zeroed(r.X, invalid)))  # rows with a NaN are invalid anyway
    P = np.concatenate(pos, axis=1).astype(np.int64)
    V = np.concatenate(val, axis=1)
    var = model.sigma**2 * model.prediction_error().relative_variance(z0, k0, P, V)
    for t, (codes, M, S) in enumerate(zip(r.codes, clean, covs, strict=True)):
        unseen = codes < 0
        whole = coords.z_rows(t, M)
        om = whole - inc[t]
        full = np.einsum("nq,qr,nr->n", whole, S, whole)
        part_inc = np.einsum("nq,qr,nr->n", inc[t], S, inc[t])
        var = var + np.where(unseen, part_inc, 0.0)
        if interval == "prediction":
            var = var + np.where(unseen, full - part_inc, np.einsum("nq,qr,nr->n", om, S, om))
    if interval == "prediction":
        var = var + model.residual_variance
    return np.where(invalid, np.nan, var)


def _zeroed(A: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """``A`` (n, k) with its non-finite values and the rows of ``invalid`` (n,) set to 0."""
    return np.where(np.isfinite(A) & ~invalid[:, None], A, 0.0)
