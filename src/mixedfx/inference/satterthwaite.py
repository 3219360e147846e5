"""Satterthwaite's denominator degrees of freedom for contrasts of the fixed effects (lmerTest).

For a contrast ``l`` (p,) with variance ``v = l' V(x) l`` at the variance
parameters ``x = (theta, sigma)``::

    df = 2 v^2 / (g' A g),   g_j = l' (dV / dx_j) l,   A = 2 H^-1

with ``H`` the Hessian of the deviance over ``x`` (lmerTest's ``devfun_vp``;
REML for REML fits) and ``V`` the covariance of beta-hat. The derivatives
come from :mod:`mixedfx.engine.varpar`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

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
    L = np.atleast_2d(np.asarray(L, dtype=float))
    v = np.einsum("ri,ij,rj->r", L, model.vcov_beta, L)
    g = np.einsum("ri,kij,rj->rk", L, pieces.jacobian, L)  # (r, k + 1)
    denom = np.einsum("rk,kl,rl->r", g, pieces.vcov, g)
    return np.asarray(2.0 * v * v / denom)
