"""lme4's glmer references (lme4_glmm.json, lme4_glmm_exact.json) and mixedfx fits of them.

``lme4_glmm.json`` holds glmer with its default settings;
``lme4_glmm_exact.json`` the same cases solved to convergence (see
make_glmm_exact.R): the tests match the latter and must reach at least the
former's log-likelihood.

Formulas are fitted as lme4 wrote them (``cbind(incidence, size -
incidence) ~ ...``, ``incidence/size ~ ...`` with ``weights="size"``,
``offset(log(exposure))`` terms); glmer's ``offset = log(exposure)``
argument becomes ``offset=`` the column ``logexp``.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mixedfx as mfx

HERE = Path(__file__).parent / "reference"


@functools.cache
def reference(exact: bool = True) -> dict[str, Any]:
    name = "lme4_glmm_exact.json" if exact else "lme4_glmm.json"
    return json.loads((HERE / name).read_text())


def cases() -> list[str]:
    return list(reference(True))


def close(got: Any, want: Any, rtol: float) -> None:
    """Agreement relative to the array's scale, at least 1: ``atol = rtol * max(1, max|want|)``.

    Not :func:`tolerance.assert_close`: lme4's estimates are located to an
    absolute precision in theta's units, so the modes of a term with a small
    variance (scale 0.02) are no closer than those of a large one.
    """
    want = np.asarray(want, dtype=float)
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=0, atol=rtol * scale)


def records(rows: list[dict[str, Any]], types: dict[str, str], levels: dict) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col, kind in types.items():
        if kind == "factor":
            df[col] = pd.Categorical(df[col].astype(str), categories=levels[col])
    return df


def training(name: str) -> pd.DataFrame:
    """The case's training rows, with the derived columns of :func:`spelling`."""
    case = reference(False)[name]
    if case["dataset"] is not None:
        df = mfx.datasets.load(case["dataset"])
    else:
        df = records(case["data"], case["column_types"], case["factor_levels"])
    return derived(df)


def derived(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    if "incidence" in df:
        df["prop"] = df["incidence"] / df["size"]
    if "exposure" in df:
        df["logexp"] = np.log(df["exposure"])
    return df


def newdata(name: str) -> pd.DataFrame:
    """The case's new rows (labels as written; the model matches them by value)."""
    return derived(pd.DataFrame(reference(False)[name]["newdata"]))


def spelling(name: str) -> tuple[str, dict[str, Any]]:
    """The case's formula in plain columns and the keyword arguments of :func:`mixedfx.glmm`."""
    case = reference(False)[name]
    kwargs: dict[str, Any] = {"nAGQ": case["nAGQ"]}
    kwargs["family"] = mfx.family.resolve(f"{case['family']}(link='{case['link']}')")
    if case["weights"] is not None:
        kwargs["weights"] = case["weights"]
    if case["offset_arg"] is not None:
        assert case["offset_arg"] == "log(exposure)"
        kwargs["offset"] = "logexp"
    return case["formula"], kwargs


@functools.cache
def fit(name: str) -> mfx.GeneralizedLinearMixedModel:
    """mixedfx's fit of a case (cached for the session)."""
    formula, kwargs = spelling(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfx.SingularFitWarning)
        return mfx.glmm(formula, training(name), **kwargs)


def minus2loglik(name: str, exact: bool = True) -> float:
    """lme4's -2 log L with the saturated part (lme4 leaves it out for nAGQ > 1)."""
    case = reference(exact)[name]
    extra = case["saturated_minus2loglik"] if case["nAGQ"] > 1 else 0.0
    return float(case["minus2loglik"] + extra)
