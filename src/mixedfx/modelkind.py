"""The fields of each kind of model in a model file (:mod:`mixedfx.modelfile`).

What an LMM adds to the fields every model has (the fit's standardized
coordinates with its estimates in them) is its REML flag, sigma and prior
weights column; what a GLMM adds is its family, link, nAGQ, weights column
and how the weights count: written by :func:`fields` and :func:`arrays`, and read back
into a model by :func:`model` from manifest fields already checked for type
by :mod:`mixedfx.modelcheck`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import modelcheck as mc
from .base import MixedModel
from .engine.blocks import Blocks
from .engine.bobyqa import OptSummary
from .engine.family import make as make_family
from .engine.standard import Moments, Standardization, Standardized
from .frame import intercept
from .frame.design import DesignSpec
from .glmm_model import GeneralizedLinearMixedModel
from .model import LinearMixedModel
from .outcome import OutcomeSpec

KINDS = ("lmm", "glmm")  # the kinds of model this version reads


def of(model: MixedModel) -> str:
    """The manifest's ``kind`` of a model: ``"lmm"`` or ``"glmm"``."""
    return "glmm" if isinstance(model, GeneralizedLinearMixedModel) else "lmm"


def fields(model: MixedModel) -> dict[str, Any]:
    """The fields of the model's kind: an LMM's REML flag, sigma and weights; a GLMM's family."""
    if isinstance(model, GeneralizedLinearMixedModel):
        out = model.outcome
        return {
            "family": out.family.name,
            "link": out.family.link.name,
            "nagq": model.nagq,
            "weights": out.weights,
            "trials": out.trials,
        }
    assert isinstance(model, LinearMixedModel)
    return {
        "reml": model.reml,
        "sigma": model.sigma,
        "std_sigma": model.standardized.sigma,
        "weights": model.weights,
    }


def arrays(model: MixedModel) -> dict[str, np.ndarray]:
    """The fit's standardized coordinates and its estimates in them (both kinds)."""
    return _standardized_arrays(model.standardized)


def _standardized_arrays(std: Standardized) -> dict[str, np.ndarray]:
    """The fit's coordinates and its estimates in them (the blocks are in those coordinates).

    Each set of moments is stored as its means and root mean squares,
    shape (2, k); the intercept combinations follow from the design.
    """
    out = {"std_theta": std.theta, "std_beta": std.beta}
    out["std_moments_xy"] = np.vstack([std.coords.xy.mean, std.coords.xy.rms])
    for k, m in enumerate(std.coords.terms):
        out[f"std_moments{k}"] = np.vstack([m.mean, m.rms])
    return out | {f"std_b{k}": b for k, b in enumerate(std.b)}


def model(
    kind: str,
    d: dict[str, Any],
    design: DesignSpec,
    blocks: Blocks,
    arrays: dict[str, np.ndarray],
    common: tuple[float, OptSummary, list[np.ndarray], list[np.ndarray], str | None, int],
) -> LinearMixedModel | GeneralizedLinearMixedModel:
    """The model of ``kind`` from its checked fields, design, blocks and arrays.

    ``common``: the objective, optimizer summary, random effects and their
    conditional covariances per term, weights column and nAGQ (GLMMs).
    """
    objective, opt, b, condcov, weights, nagq = common
    shared: dict[str, Any] = {
        "spec": design,
        "theta": arrays["theta"],
        "beta": arrays["beta"],
        "objective": objective,
        "b": b,
        "b_condcov": condcov,
        "vcov_beta": arrays["vcov_beta"],
        "optsummary": opt,
        "blocks": blocks,
        "fitted_values": None,  # a loaded model holds no training rows
        "response_values": None,
        "nobs_given": d["nobs_given"],
    }
    n = blocks.n - d["nobs_given"]
    if kind == "glmm":
        return GeneralizedLinearMixedModel(
            outcome=_outcome(d, weights),
            nagq=nagq,
            weight_values=None,
            standardized=_standardized(d, design, n, arrays, sigma=1.0),
            **shared,
        )
    return LinearMixedModel(
        reml=mc.flag(d.get("reml"), "model.reml"),
        sigma=mc.number(d.get("sigma"), "model.sigma", positive=True),
        weights=weights,
        standardized=_standardized(d, design, n, arrays),
        **shared,
    )


def _outcome(d: dict[str, Any], weights: str | None) -> OutcomeSpec:
    """A GLMM's family and link, weights column and how its weights count."""
    name = mc.text(d.get("family"), "model.family")
    link = mc.text(d.get("link"), "model.link")
    try:
        family = make_family(name, link)
    except ValueError as exc:
        raise mc.bad("model.family and model.link", f"are not a family and link: {exc}") from exc
    return OutcomeSpec(family, weights, mc.flag(d.get("trials"), "model.trials"))


def _standardized(
    d: dict[str, Any],
    design: DesignSpec,
    n: int,
    arrays: dict[str, np.ndarray],
    sigma: float | None = None,
) -> Standardized:
    """:func:`_standardized_arrays` read back; the intercept combinations from the design.

    ``n``: the training rows (the blocks' rows without the given ones).
    ``sigma``: the standardized residual sd when the kind fixes it (a GLMM's
    1), else the file's ``std_sigma``.
    """
    x_weights, term_weights = intercept.design_weights(design)
    xy_weights = None if x_weights is None else np.append(x_weights, 0.0)

    def moments(name: str, weights: np.ndarray | None) -> Moments:
        mean, rms = arrays[name]
        return Moments(n, weights, mean, rms)

    coords = Standardization(
        moments("std_moments_xy", xy_weights),
        tuple(moments(f"std_moments{k}", w) for k, w in enumerate(term_weights)),
    )
    b = [arrays[f"std_b{k}"] for k in range(len(design.terms))]
    if sigma is None:
        sigma = mc.number(d.get("std_sigma"), "model.std_sigma", positive=True)
    return Standardized(coords, arrays["std_theta"], arrays["std_beta"], sigma, b)
