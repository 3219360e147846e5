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
from .optimize import fit_theta


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


def refit(
    bl: Blocks, layout: ThetaLayout, reml: bool, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, OptSummary]:
    """Fit theta on ``bl`` from ``start``; theta, beta, sigma and the optimizer's summary.

    The full fit (:func:`~mixedfx.engine.optimize.fit_theta`) from ``start``: for
    a small model, Newton's method from the warm start, and the boundary restarts
    only where a variance heads for 0.
    Everything is in the blocks' coordinates (the fit's standardized ones,
    :mod:`mixedfx.engine.standard`, for a bootstrap).
    """
    obj = Objective(bl, layout, reml)
    opt = fit_theta(obj, start)
    f = obj.factorize(opt.final)
    beta = solve.modes(f)[0]
    sigma = float(np.sqrt(f.r2 / (bl.n - bl.p if reml else bl.n)))
    return opt.final, beta, sigma, opt
