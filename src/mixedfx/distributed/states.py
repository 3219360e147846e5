"""formulaic's learned state, learned partition by partition and merged.

In memory, formulaic learns its state from the whole frame: the levels of
each categorical factor (``encoder_state``) and the constants of stateful
transforms (``transform_state``), e.g. the mean of ``x`` for ``center(x)``.
On a Dask frame each partition is materialised with *recording* versions of
``center``, ``scale`` and ``standardize`` that keep the partition's count,
mean and sum of squared deviations; the client merges those (Chan et al.'s
pairwise update) and the categories (identical lists are kept as they are:
a categorical dtype's own order; otherwise the union, sorted as pandas
sorts), then builds the final spec from the merged state. It equals the spec
that formulaic learns on the concatenated rows, up to rounding in the last
digits of the means and scales.

Transforms whose state cannot be merged (``poly``, splines, ...) and
transforms that depend on neighbouring rows (``lag``) raise a DataError that
names them: they would give different numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from formulaic import Formula, ModelSpec
from formulaic.errors import FormulaicError
from formulaic.parser.types import Factor
from formulaic.transforms import scale as f_scale
from formulaic.transforms.contrasts import ContrastsState
from formulaic.utils.stateful_transforms import stateful_transform

from ..errors import DataError, FormulaError

PARTIAL = "__mixedfx_partial__"
ROW_DEPENDENT = ("lag",)  # transforms that read neighbouring rows


def _moments(data: Any) -> dict[str, Any]:
    arr = np.asarray(data.toarray()[:, 0] if sp.issparse(data) else data, dtype=float)
    n = arr.shape[0]
    mean = np.mean(arr, axis=0) if n else np.zeros(arr.shape[1:])
    m2 = np.sum((arr - mean) ** 2, axis=0)
    return {"n": n, "mean": mean, "m2": m2}


def _record(data: Any, center: Any, scale: Any, ddof: float, state: dict[str, Any]) -> Any:
    state[PARTIAL] = {"center": center, "scale": scale, "ddof": ddof, **_moments(data)}
    return f_scale(np.asarray(data), center=center, scale=scale, ddof=ddof)


@stateful_transform
def _rec_scale(
    data: Any, center: Any = True, scale: Any = True, ddof: float = 1, _state: Any = None
) -> Any:
    return _record(data, center, scale, ddof, _state)


@stateful_transform
def _rec_center(data: Any, _state: Any = None) -> Any:
    return _record(data, True, False, 1, _state)


@stateful_transform
def _rec_standardize(
    x: Any, center: Any = True, rescale: Any = True, ddof: float = 0, _state: Any = None
) -> Any:
    return _record(x, center, rescale, ddof, _state)


RECORDERS = {"scale": _rec_scale, "center": _rec_center, "standardize": _rec_standardize}


@dataclass
class PartialSpec:
    """What one partition taught formulaic about one formula.

    Attributes
    ----------
    n : int
        Rows of the partition.
    transform_state, encoder_state : dict
        formulaic's state (recorded moments for center/scale/standardize).
    variables : set of str
        Names the formula reads (columns and functions).
    error : str or None
        formulaic's error message when the partition could not be materialised.
    """

    n: int
    transform_state: dict[str, Any] = field(default_factory=dict)
    encoder_state: dict[str, Any] = field(default_factory=dict)
    variables: set[str] = field(default_factory=set)
    error: str | None = None


def survey(formula: str, data: pd.DataFrame) -> PartialSpec:
    """Materialise ``formula`` on one partition with the recording transforms."""
    if len(data) == 0:
        return PartialSpec(0)
    try:
        mm = Formula(formula).get_model_matrix(
            data, output="numpy", na_action="ignore", context=RECORDERS
        )
    except (FormulaicError, ValueError, TypeError, KeyError) as exc:
        return PartialSpec(len(data), error=str(exc))
    spec = mm.model_spec
    names = {str(v) for v in getattr(spec, "variables", set())}
    return PartialSpec(len(data), dict(spec.transform_state), dict(spec.encoder_state), names)


def _combine_moments(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Count, mean and sum of squared deviations of two sets of rows (Chan et al.)."""
    if a["n"] == 0 or b["n"] == 0:
        return a if b["n"] == 0 else b
    n = a["n"] + b["n"]
    delta = b["mean"] - a["mean"]
    mean = a["mean"] + delta * (b["n"] / n)
    m2 = a["m2"] + b["m2"] + delta**2 * (a["n"] * b["n"] / n)
    return {**a, "n": n, "mean": mean, "m2": m2}


def _final_moments(p: dict[str, Any]) -> dict[str, Any]:
    """formulaic's scale state ``{ddof, center, scale}`` from the merged moments."""
    center, scale, ddof, n = p["center"], p["scale"], p["ddof"], p["n"]
    out: dict[str, Any] = {"ddof": ddof}
    if isinstance(center, bool):
        out["center"] = p["mean"] if center else None
    else:
        out["center"] = np.array(center)
    if isinstance(scale, bool):
        if scale:
            c = 0.0 if out["center"] is None else out["center"]
            out["scale"] = np.sqrt((p["m2"] + n * (p["mean"] - c) ** 2) / (n - ddof))
        else:
            out["scale"] = None
    else:
        out["scale"] = np.array(scale)
    return out


def _combine_transforms(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, sb in b.items():
        sa = out.get(key)
        if sa is None or not sa:
            out[key] = sb
        elif sb and PARTIAL in sa and PARTIAL in sb:
            out[key] = {PARTIAL: _combine_moments(sa[PARTIAL], sb[PARTIAL])}
    return out  # any other state stays as it is and is refused by _final_transforms


def _final_transforms(states: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, state in states.items():
        if not state:
            out[key] = {}
            continue
        if PARTIAL not in state:
            raise DataError(
                f"stateful transform {key!r} cannot be learned partition by partition "
                "on a Dask frame; compute it as a column first, or fit in memory"
            )
        inner = [k for k in states if k != key and k in key]
        if inner:
            raise DataError(
                f"stateful transform {key!r} wraps another stateful transform "
                f"({inner[0]!r}); on a Dask frame compute the inner one as a column first"
            )
        out[key] = _final_moments(state[PARTIAL])
    return out


def merge_categories(name: str, a: list[Any], b: list[Any]) -> list[Any]:
    """The levels formulaic finds on the rows of two partitions together.

    Identical lists (a categorical dtype with known categories, or the same
    levels in both) are kept in their order; otherwise the union is sorted as
    ``Series.astype("category")`` sorts it. Applied pairwise over all
    partitions this gives the levels of the concatenated rows.
    """
    if a == b:
        return list(a)
    union = pd.unique(pd.Series([*a, *b]))
    try:
        ordered = np.sort(np.asarray(union))
    except TypeError as exc:
        raise DataError(
            f"the levels of {name!r} mix types that cannot be sorted; on a Dask frame "
            "give it one type or a categorical dtype with known categories"
        ) from exc
    return list(pd.Series(ordered).astype("category").cat.categories)


def _combine_encoders(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, (kind, sb) in b.items():
        if key not in out:
            out[key] = (kind, sb)
            continue
        kind_a, sa = out[key]
        if kind_a is not kind:
            raise DataError(
                f"{key!r} is categorical in some partitions and numeric in others; "
                "give the column one dtype"
            )
        if kind is not Factor.Kind.CATEGORICAL or "categories" not in sa:
            continue
        cats = merge_categories(key, sa["categories"], sb["categories"])
        merged = dict(sa)
        merged["categories"] = cats
        if isinstance(sa.get("contrasts"), ContrastsState):
            merged["contrasts"] = ContrastsState(sa["contrasts"].contrasts, cats)
        out[key] = (kind, merged)
    return out


def combine(a: PartialSpec, b: PartialSpec) -> PartialSpec:
    """What two adjacent sets of rows taught formulaic, together (``a`` first)."""
    if a.n == 0 or b.n == 0:
        return a if b.n == 0 else b
    return PartialSpec(
        a.n + b.n,
        _combine_transforms(a.transform_state, b.transform_state),
        _combine_encoders(a.encoder_state, b.encoder_state),
        a.variables | b.variables,
        a.error if a.error is not None else b.error,
    )


def finish(formula: str, part: PartialSpec, sample: pd.DataFrame, what: str) -> Any:
    """The formulaic ModelSpec learned from all partitions.

    Parameters
    ----------
    formula : str
        A formulaic right-hand side.
    part : PartialSpec
        The combination of every partition's survey.
    sample : DataFrame
        A few rows with the formula's columns (to lay out the columns).
    what : str
        How to name the formula in errors, e.g. ``"the fixed effects 'x'"``.

    Returns
    -------
    formulaic ModelSpec
    """
    if part.error is not None:
        raise FormulaError(f"cannot build {what}: {part.error}")
    for name in ROW_DEPENDENT:
        if name in part.variables:
            raise DataError(
                f"{name}() reads neighbouring rows and cannot be computed partition by "
                "partition on a Dask frame; compute it as a column first"
            )
    spec = ModelSpec(
        formula=Formula(formula),
        materializer="pandas",
        ensure_full_rank=True,
        na_action="ignore",
        output="numpy",
        transform_state=_final_transforms(part.transform_state),
        encoder_state=part.encoder_state,
    )
    return spec.get_model_matrix(sample).model_spec
