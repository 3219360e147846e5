"""Refits for a new response on the same design: the parametric bootstrap's inner loop.

A new response changes only the y parts of the blocks (:mod:`mixedfx.engine.blocks`):
A21's last row ``y'Z0`` and A22's last row and column ``[Zr X y]'y``. Everything
else (and the theta layout and the optimizer's units) is the fit's, so a
refit forms no design and sums no rows beyond three products with y, and
starts the optimizer from the fit's theta (in the blocks' coordinates).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from . import solve
from .blocks import Blocks
from .bobyqa import OptSummary
from .layout import ThetaLayout
from .objective import Objective
from .optimize import boundary_probe, fit_theta


def with_response(bl: Blocks, z0y: np.ndarray, rest_y: np.ndarray) -> Blocks:
    """The blocks with a new response.

    Parameters
    ----------
    z0y : ndarray, shape (l0 * q0,)
        ``Z0'y``.
    rest_y : ndarray, shape (m,)
        ``[Zr X y]'y`` (the last element ``y'y``).
    """
    A22 = bl.A22.copy()
    A22[-1, :] = rest_y
    A22[:, -1] = rest_y
    A21: np.ndarray | sp.csr_matrix
    if sp.issparse(bl.A21):
        rows = sp.csr_matrix(sp.vstack([sp.csr_matrix(bl.A21)[:-1], sp.csr_matrix(z0y)]))
        rows.sort_indices()
        A21 = rows
    else:
        A21 = bl.A21.copy()
        A21[-1] = z0y
    return dataclasses.replace(bl, A21=A21, A22=A22)


def newton(obj: Objective, start: np.ndarray, max_iter: int = 30) -> OptSummary | None:
    """Newton's method from a warm start with the closed-form Hessian (small models).

    Each step solves with the Hessian and halves until the objective does not
    rise; the result is kept only when it stops at an interior optimum (a
    positive definite Hessian, every diagonal of T positive, a step below
    1e-10 relative) that :func:`~mixedfx.engine.optimize.boundary_probe`
    does not beat. Otherwise None: the caller runs the full fit.
    """
    if obj.dense is None:
        return None
    diagonal = obj.layout.diagonal
    x = np.asarray(start, dtype=float).copy()
    nfev = 0
    try:
        f, g = obj.value_and_gradient(x)
        for _ in range(max_iter):
            H = obj.hessian(x)
            assert H is not None
            step = -np.linalg.solve(0.5 * (H + H.T), g)
            if np.any(np.linalg.eigvalsh(H) <= 0):
                return None
            for _ in range(30):
                new = x + step
                if np.all(new[diagonal] > 0):
                    f_new, g_new = obj.value_and_gradient(new)
                    nfev += 1
                    if f_new <= f + 1e-12 * max(1.0, abs(f)):
                        break
                step = step / 2.0
            else:
                return None
            done = np.all(np.abs(new - x) <= 1e-10 * np.maximum(1.0, np.abs(x)))
            x, f, g = new, f_new, g_new
            if done:
                break
        else:
            return None
    except np.linalg.LinAlgError:
        return None
    if np.any(x[diagonal] < SINGULAR):
        return None
    lower = obj.lower()
    opt = OptSummary("newton", np.asarray(start, dtype=float), x, lower, f, nfev, "success", True)
    probed = boundary_probe(obj, opt, diagonal)
    return probed if probed.final is opt.final else None


SINGULAR = 1e-4  # a diagonal of T below this goes to the full fit (boundary restarts)


def refit(
    bl: Blocks, layout: ThetaLayout, reml: bool, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, OptSummary]:
    """Fit theta on ``bl`` from ``start``; theta, beta, sigma and the optimizer's summary.

    :func:`newton` where it applies (a small model whose optimum is interior),
    else the full fit (:func:`~mixedfx.engine.optimize.fit_theta`) from ``start``.
    Everything is in the blocks' coordinates (the fit's standardized ones,
    :mod:`mixedfx.engine.standard`, for a bootstrap).
    """
    obj = Objective(bl, layout, reml)
    opt = newton(obj, start)
    if opt is None:
        opt = fit_theta(obj, start)
    f = obj.factorize(opt.final)
    beta = solve.modes(f)[0]
    sigma = float(np.sqrt(f.r2 / (bl.n - bl.p if reml else bl.n)))
    return opt.final, beta, sigma, opt
