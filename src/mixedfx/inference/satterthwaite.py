"""Satterthwaite's denominator degrees of freedom for contrasts of the fixed effects (lmerTest).

For a contrast ``l`` (p,) with variance ``v = l' V(x) l`` at the variance
parameters ``x = (theta, sigma)``::

    df = 2 v^2 / (g' A g),   g_j = l' (dV / dx_j) l,   A = 2 H^-1

with ``H`` the Hessian of the deviance over ``x`` (lmerTest's ``devfun_vp``;
REML for REML fits) and ``V`` the covariance of beta-hat. The derivatives
come from :mod:`mixedfx.engine.varpar`.

All of it is computed in the fit's standardized coordinates
(:class:`~mixedfx.inference.varpar.VarparCovariance`), where shifted or
rescaled columns (a random slope on the calendar year) do not cancel: a
contrast ``l`` of beta is the contrast ``A' l`` of ``beta_s`` (``beta = A
beta_s + c v_X``), and the variance parameters' Hessian is the user's carried
by the chain rule, so the df are lmerTest's at any ``(theta, sigma)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..engine import solve
from ..engine.objective import Objective
from .varpar import varpar_covariance

if TYPE_CHECKING:
    from ..model import LinearMixedModel


def satterthwaite_df(model: LinearMixedModel, L: np.ndarray) -> np.ndarray:
    """Satterthwaite df of each contrast (row) of ``L``.

    Parameters
    ----------
    model : LinearMixedModel
    L : ndarray, shape (r, p)

    Returns
    -------
    ndarray, shape (r,)
    """
    pieces = varpar_covariance(model)
    coords = model.standardized.coords
    A = coords.y_scale * coords.xy.matrix()[:-1, :-1]  # beta = A beta_s + c v_X
    L = np.atleast_2d(np.asarray(L, dtype=float)) @ A  # the same contrasts of beta_s
    std = model.standardized
    f = Objective(model.blocks, model.spec.layout, model.reml).factorize(std.theta)
    v = np.einsum("ri,ij,rj->r", L, solve.vcov_beta(f, std.sigma), L)
    g = np.einsum("ri,kij,rj->rk", L, pieces.jacobian, L)  # (r, k + 1)
    denom = np.einsum("rk,kl,rl->r", g, pieces.vcov, g)
    return np.asarray(2.0 * v * v / denom)
