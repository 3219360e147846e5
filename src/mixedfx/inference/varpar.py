"""The fit's objective, ML refits, and the derivatives of the deviance that tests need.

Inference reuses the model's cross-product blocks (its sufficient
statistics): nothing here needs the training rows. It works on theta, beta
and sigma in the user's parameterisation (lme4's and lmerTest's), so it
reads the blocks moved to the user's coordinates
(:attr:`~mixedfx.LinearMixedModel.user_blocks`); refits start again from
the standardized blocks (:func:`refit`), as every fit does.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..engine import varpar as engine_varpar
from ..engine.objective import Objective
from ..errors import DataError, SingularFitWarning
from ..fit import fit_model
from ..outcome import positive_weights

if TYPE_CHECKING:
    from ..model import LinearMixedModel

_LOCK = threading.Lock()
T = TypeVar("T")


def cached(model: LinearMixedModel, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per model, under a lock (a model is read-only and shared by threads)."""
    name = f"_inference_{key}"
    value = model.__dict__.get(name)
    if value is None:
        with _LOCK:
            value = model.__dict__.get(name)
            if value is None:
                value = compute()
                object.__setattr__(model, name, value)  # frozen: cache only
    return value


def fit_objective(model: LinearMixedModel, reml: bool | None = None) -> Objective:
    """The model's profiled objective over its training blocks (REML or ML as fitted).

    In the user's coordinates (:attr:`~mixedfx.LinearMixedModel.user_blocks`):
    its theta is ``model.theta``.

    Raises
    ------
    DataError
        For a conditioned model: its blocks include the given rows, which
        are not part of the fit.
    """
    if model.conditioned:
        raise DataError(
            "inference needs the fitted model, not one conditioned on given rows: "
            "call it on the model before .condition() / given="
        )
    return Objective(model.user_blocks, model.spec.layout, model.reml if reml is None else reml)


def refit(model: LinearMixedModel, reml: bool) -> LinearMixedModel:
    """The same model refitted by REML or ML (lme4's ``refitML``) from its blocks; no rows needed.

    The refit keeps the model's training data frame (``data``), so it can
    predict without newdata, but holds no fitted values. It runs in the
    model's standardized coordinates and blocks, as the fit did, so it is as
    invariant to shifts and scales of the data.
    """
    if model.reml == reml:
        return model
    fit_objective(model)  # refuses a conditioned model
    log_w = 0.0  # lme4's criterion has -sum log w for prior weights
    if model.weights is not None:
        if model.data is None:
            raise DataError(
                "refitting a model with prior weights needs its training rows (their "
                f"weights {model.weights!r}); this model holds none (loaded from a file?)"
            )
        log_w = float(np.log(positive_weights(model.data, model.weights)).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        coords = model.standardized.coords
        return fit_model(
            model.spec, None, coords, model.blocks, reml, model.data, log_weights=log_w
        )


@dataclass(frozen=True)
class VarparCovariance:
    """lmerTest's pieces for Satterthwaite's df (see :mod:`mixedfx.engine.varpar`).

    Attributes
    ----------
    hessian : ndarray, shape (k + 1, k + 1)
        Of the deviance over ``(theta, sigma)`` at the estimates.
    vcov : ndarray, shape (k + 1, k + 1)
        ``2 H^-1`` over the eigenvalues above 1e-8 (lmerTest's pseudo-inverse).
    jacobian : ndarray, shape (k + 1, p, p)
        ``d vcov(beta) / d (theta, sigma)``.
    small_eigenvalues : ndarray
        Eigenvalues of H at or below 1e-8 (a boundary or flat fit).
    """

    hessian: np.ndarray
    vcov: np.ndarray
    jacobian: np.ndarray
    small_eigenvalues: np.ndarray


EIGEN_TOL = 1e-8  # lmerTest's tolerance on the Hessian's eigenvalues


def varpar_covariance(model: LinearMixedModel) -> VarparCovariance:
    """The asymptotic covariance of ``(theta, sigma)`` and the Jacobian of vcov(beta) (cached)."""

    def compute() -> VarparCovariance:
        obj = fit_objective(model)
        H = engine_varpar.hessian(obj, model.theta, model.sigma)
        values, vectors = np.linalg.eigh(H)
        pos = values > EIGEN_TOL
        inv = (vectors[:, pos] / values[pos]) @ vectors[:, pos].T
        J = engine_varpar.vcov_beta_jacobian(obj, model.theta, model.sigma)
        return VarparCovariance(H, 2.0 * inv, J, values[~pos])

    return cached(model, "varpar", compute)
