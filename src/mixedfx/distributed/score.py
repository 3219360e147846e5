"""Predictions on Dask frames, and conditioning on ``given`` rows held in a Dask frame.

``predict`` is lazy: it validates the options and the columns eagerly (on
the frame's empty ``_meta``), then maps :func:`mixedfx.predict.predict` over
the partitions with a slimmed copy of the model (no cross-product blocks;
with intervals, the precomputed prediction-error pieces instead), shipped
to the workers once. Warnings about labels never seen in training and
missing predictors are computed per partition in memory; on Dask they are
not raised (rows come out as documented: population level or NaN).

``condition`` with a Dask ``given`` never collects the rows: pass 1 checks
them and collects the distinct rows of the grouping columns (the new levels),
pass 2 sums their blocks in the layout with the new levels, and the
conditioned model is built as in memory (:func:`mixedfx.condition.conditioned`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import pandas as pd

from ..condition import check_complete, conditioned, given_blocks
from ..engine import blocks as blocks_mod
from ..frame import rows as rows_mod
from ..glmm_predict import predict as predict_glmm
from ..predict import predict as predict_frame
from .learn import memory_dtypes
from .run import compute, per_partition, tree_reduce

if TYPE_CHECKING:
    from ..model import LinearMixedModel


def slim(model: Any, interval: str | None) -> Any:
    """A copy of the model (LMM or GLMM) with what prediction needs and no cross-product blocks."""
    bl = model.blocks
    empty = np.empty((0, 0))
    light = blocks_mod.Blocks(
        bl.first, bl.l0, bl.q0, bl.rest, bl.p, bl.n, np.empty((0, bl.q0, bl.q0)), empty, empty
    )
    out = dataclasses.replace(
        model, blocks=light, fitted_values=None, response_values=None, data=None
    )
    if hasattr(out, "weight_values"):  # a GLMM's training weights: not needed either
        out = dataclasses.replace(out, weight_values=None)
    if interval is not None:
        pe = copy.copy(model.prediction_error())
        pe.f = None  # the factor was only needed to build it
        out.__dict__["_prediction_error"] = pe  # prediction_error()'s cache, filled in
    return out


def _predict_part(
    part: pd.DataFrame,
    model: Any,
    re: str | None,
    new_levels: str,
    interval: str | None,
    level: float,
    kind: str | None = None,
) -> pd.Series | pd.DataFrame:
    """One partition's predictions (``kind``: a GLMM's ``type``; None for an LMM)."""
    part = memory_dtypes(part)
    # quiet: the client has warned once for all partitions (warning filters are
    # process-wide, so a worker thread must not change them)
    if kind is None:
        out = predict_frame(model, part, re, new_levels, interval, level, quiet=True)
    else:
        out = predict_glmm(model, part, re, new_levels, interval, level, kind, quiet=True)
    if isinstance(out, pd.DataFrame):
        return out
    return pd.Series(out, index=part.index, name="fit")


def predict(
    model: Any,
    ddf: Any,
    re: str | None = "all",
    new_levels: str = "population",
    interval: str | None = None,
    level: float = 0.95,
    kind: str | None = None,
) -> Any:
    """Lazy predictions for the rows of a Dask frame (see :meth:`LinearMixedModel.predict`).

    ``kind`` is a GLMM's ``type`` (``"response"`` or ``"link"``); None for an LMM.

    Returns
    -------
    dask Series named ``fit`` (``interval=None``) or dask DataFrame with
    columns ``fit, se, lower, upper``, partitioned and indexed as ``ddf``.
    """
    small = slim(model, interval)
    meta = _predict_part(ddf._meta, small, re, new_levels, interval, level, kind)  # validates
    model.spec.X(memory_dtypes(ddf._meta))  # a missing fixed-effects column, named now
    model_d = dask.delayed(small, traverse=False)
    return ddf.map_partitions(
        _predict_part,
        model_d,
        re,
        new_levels,
        interval,
        level,
        kind,
        meta=meta,
        align_dataframes=False,
    )


@dataclass
class GivenSurvey:
    """Pass 1 over given rows: their missing values and the distinct grouping rows."""

    tally: rows_mod.Tally  # as the in-memory check reads it
    groups: tuple[pd.DataFrame, ...]  # per term: distinct rows of its grouping columns


def _survey(part: pd.DataFrame, model: LinearMixedModel) -> GivenSurvey:
    part = memory_dtypes(part)
    r = rows_mod.build(model.spec, part, response=True)
    groups = tuple(part[list(t.term.factors)].drop_duplicates() for t in model.spec.terms)
    return GivenSurvey(rows_mod.Tally.of(r), groups)


def _combine_surveys(a: GivenSurvey, b: GivenSurvey) -> GivenSurvey:
    return GivenSurvey(
        a.tally.then(b.tally),
        tuple(pd.concat([u, v]).drop_duplicates() for u, v in zip(a.groups, b.groups, strict=True)),
    )


def _given_part(
    part: pd.DataFrame, model_terms: tuple[LinearMixedModel, list[Any]]
) -> blocks_mod.Blocks | None:
    if len(part) == 0:
        return None
    model, terms = model_terms
    return given_blocks(model, memory_dtypes(part), terms)[1]


def _add(a: blocks_mod.Blocks | None, b: blocks_mod.Blocks | None) -> blocks_mod.Blocks | None:
    if a is None or b is None:
        return b if a is None else a
    return blocks_mod.add(a, b)


def condition(model: LinearMixedModel, given: Any, progress: bool = False) -> LinearMixedModel:
    """The model conditioned on the rows of a Dask frame (see :func:`mixedfx.condition`)."""
    rows_mod.build(model.spec, memory_dtypes(given._meta), response=True)  # columns, named now
    small = slim(model, None)
    model_d = dask.delayed(small, traverse=False)
    s = compute(tree_reduce(per_partition(given, _survey, model_d), _combine_surveys), progress)
    if s.tally.n == 0:
        return model
    check_complete(s.tally, model.spec)  # the in-memory errors
    terms = [t.with_levels(u)[0] for t, u in zip(model.spec.terms, s.groups, strict=True)]
    both = dask.delayed((small, terms), traverse=False)
    blocks = per_partition(given, _given_part, both)
    extra = compute(tree_reduce(blocks, _add), progress)
    assert extra is not None
    return conditioned(model, terms, extra)
