"""The fit's objective, ML refits, and the derivatives of the deviance that tests need.

Inference reuses the model's cross-product blocks (its sufficient
statistics): nothing here needs the training rows. :func:`fit_objective`
is over the blocks moved to the user's coordinates
(:attr:`~mixedfx.LinearMixedModel.user_blocks`), whose theta is the user's;
Satterthwaite's pieces (:func:`varpar_covariance`) are computed on the
standardized blocks and carried to the user's parameters exactly; refits
start again from the standardized blocks (:func:`refit`), as every fit does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from ..engine import varpar as engine_varpar
from ..engine.objective import Objective
from ..errors import DataError
from ..fit import fit_model

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
    coords = model.standardized.coords
    return fit_model(model.spec, None, coords, model.blocks, reml, model.data, warn_singular=False)


@dataclass(frozen=True)
class VarparCovariance:
    """lmerTest's pieces for Satterthwaite's df, in the fit's standardized coordinates.

    ``u = (theta_s, sigma_s)`` are the standardized variance parameters
    (:mod:`mixedfx.engine.standard`) and ``x = phi(u)`` the user's (lmerTest's
    ``(theta, sigma)``: ``theta = coords.signed_theta(theta_s)``, ``sigma =
    s sigma_s``); beta is the standardized ``beta_s`` (``beta = A beta_s + c
    v_X``, ``A = s G_X``).

    Attributes
    ----------
    hessian : ndarray, shape (k + 1, k + 1)
        ``J' H_x J``: the Hessian of the deviance over the user's ``x``
        (lmerTest's), carried to ``u`` by ``J = d phi / d u``. The deviance
        over u is the user's plus a constant, with Hessian ``H_u = J' H_x J +
        sum_k (d dev / d x_k) d^2 phi_k / du^2``; the second term, zero at
        the optimum, is taken off, so that at any supplied parameters this is
        the user's Hessian, not one of a different parameterisation.
    vcov : ndarray, shape (k + 1, k + 1)
        ``2 hessian^-1`` over the eigenvalues above 1e-8 (lmerTest's pseudo-inverse).
    jacobian : ndarray, shape (k + 1, p, p)
        ``d vcov(beta_s) / d u``.
    small_eigenvalues : ndarray
        Eigenvalues of ``hessian`` at or below 1e-8 (a boundary or flat fit).
    """

    hessian: np.ndarray
    vcov: np.ndarray
    jacobian: np.ndarray
    small_eigenvalues: np.ndarray


EIGEN_TOL = 1e-8  # lmerTest's tolerance on the Hessian's eigenvalues


def varpar_covariance(model: LinearMixedModel) -> VarparCovariance:
    """The asymptotic covariance of the variance parameters and the Jacobian of vcov(beta_s).

    In the standardized coordinates (see :class:`VarparCovariance`), cached.
    The Satterthwaite df built from them are the user's: ``g_u = J' g_x``
    and ``g_u' (J' H_x J)^-1 g_u = g_x' H_x^-1 g_x``.
    """

    def compute() -> VarparCovariance:
        fit_objective(model)  # refuses a conditioned model
        std, layout = model.standardized, model.spec.layout
        obj = Objective(model.blocks, layout, model.reml)
        coords, s = std.coords, std.coords.y_scale
        u = np.append(std.theta, std.sigma)

        def phi(x: np.ndarray) -> np.ndarray:
            return np.append(coords.signed_theta(layout, x[:-1]), s * x[-1])

        H = engine_varpar.hessian(obj, std.theta, std.sigma)
        J_t = engine_varpar.jacobian(phi, u)  # J'
        g_x = np.linalg.solve(J_t, engine_varpar.gradient(obj, u))
        C = engine_varpar.jacobian(lambda x: engine_varpar.jacobian(phi, x) @ g_x, u)
        H = H - 0.5 * (C + C.T)
        values, vectors = np.linalg.eigh(H)
        pos = values > EIGEN_TOL
        inv = (vectors[:, pos] / values[pos]) @ vectors[:, pos].T
        J = engine_varpar.vcov_beta_jacobian(obj, std.theta, std.sigma)
        return VarparCovariance(H, 2.0 * inv, J, values[~pos])

    return cached(model, "varpar", compute)
