"""Variance parameters on lme4's standard-deviation/correlation scale, and back to theta.

Per term, in theta's order (:class:`~mixedfx.engine.layout.ThetaLayout`), an
element on the diagonal of ``T`` becomes the standard deviation of its
column and one below it the correlation of its row and column, for the
covariance ``sigma^2 T T'``; ``sigma`` comes last. This is the scale of lme4's
``confint`` rows (``sd_...``, ``cor_...``, ``sigma``) and of its profiles.
"""

from __future__ import annotations

import numpy as np

from .layout import ThetaLayout


def to_sdcor(layout: ThetaLayout, theta: np.ndarray, sigma: float) -> np.ndarray:
    """``(sd/cor per theta element, sigma)``, shape (ntheta + 1,)."""
    out = []
    for t, T in enumerate(layout.Ts(theta)):
        S = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(S))
        rows, cols = layout.index[t]
        for i, j in zip(rows, cols, strict=True):
            if i == j:
                out.append(sd[i])
            else:
                out.append(S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else 0.0)
    return np.append(np.asarray(out, dtype=float), sigma)


def psd_cholesky(S: np.ndarray) -> np.ndarray | None:
    """Lower-triangular ``L`` with ``L L' = S`` and ``L_ii >= 0`` for a PSD ``S``; None if not PSD.

    Zero pivots (a zero variance, or a correlation of +/-1) give a zero column.
    """
    q = len(S)
    L = np.zeros_like(S)
    tol = 1e-12 * max(1.0, float(np.abs(S).max(initial=0.0)))
    for j in range(q):
        d = S[j, j] - L[j, :j] @ L[j, :j]
        if d < -tol:
            return None
        if d <= tol:
            rest = S[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-6 * max(1.0, float(np.abs(S).max()))):
                return None
            continue
        L[j, j] = np.sqrt(d)
        L[j + 1 :, j] = (S[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


def from_sdcor(layout: ThetaLayout, psi: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``(theta, sigma)`` from :func:`to_sdcor`'s vector; None where a covariance is not PSD."""
    sigma = float(psi[-1])
    Ts = []
    for t, sl in enumerate(layout.slices):
        rows, cols = layout.index[t]
        q = layout.qs[t]
        sd, R = np.zeros(q), np.eye(q)
        for (i, j), v in zip(zip(rows, cols, strict=True), psi[sl], strict=True):
            if i == j:
                sd[i] = v
            else:
                R[i, j] = R[j, i] = v
        L = psd_cholesky(R * np.outer(sd, sd))
        if L is None or sigma <= 0:
            return None
        Ts.append(L / sigma)
    return layout.theta(Ts), sigma
