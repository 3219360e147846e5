"""The deviance over all variance parameters ``(theta, sigma)``, and its derivatives.

With beta at its conditional estimate for theta (so ``r^2(theta)`` is the
penalized residual sum of squares of :mod:`mixedfx.engine.objective`), lmerTest's
``devfun_vp`` is::

    ML:   dev(theta, sigma) = log|L_Z|^2 + r^2 / sigma^2 + n log(2 pi sigma^2)
    REML: the same + log|L_X|^2 - p log(2 pi sigma^2)

It equals the profiled objective where ``sigma^2 = r^2 / dof`` (``dof = n`` or
``n - p``), so its minimum is the fit's. Its gradient over theta is that of
the weighted log squared diagonals of the factor with weights 1 on the random
effects, 1 (REML) or 0 (ML) on X, and ``r^2 / sigma^2`` on y (linear in the
weights: :meth:`Objective.weighted_gradient`); over sigma it is
``2 dof / sigma - 2 r^2 / sigma^3``. The Hessian is central differences of
this analytic gradient, Richardson-extrapolated over two steps (error
~1e-10 relative); the Jacobian of the fixed effects' covariance
``sigma^2 (L_X L_X')^-1`` likewise differences its value.

These give lmerTest's Satterthwaite degrees of freedom and the asymptotic
covariance of the variance parameters, ``2 H^-1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import solve
from .cholesky import objective_parts
from .objective import Objective

STEP = 1e-4  # relative step of the differences (halved once for Richardson)


def dof(obj: Objective) -> int:
    """``n - p`` (REML) or ``n`` (ML)."""
    return obj.blocks.n - obj.blocks.p if obj.reml else obj.blocks.n


def parts(obj: Objective, theta: np.ndarray) -> tuple[float, float, float]:
    """``log|L_Z|^2``, ``log|L_X|^2`` and ``r^2`` at theta."""
    if obj.dense is not None:
        return obj.dense.logdets(theta)
    return objective_parts(obj.blocks, obj.Ts(theta))


def deviance(obj: Objective, theta: np.ndarray, sigma: float) -> float:
    """``dev(theta, sigma)`` (see module docstring)."""
    ldz, ldx, r2 = parts(obj, theta)
    s2 = sigma * sigma
    value = ldz + r2 / s2 + dof(obj) * math.log(2.0 * math.pi * s2)
    return value + ldx if obj.reml else value


def gradient(obj: Objective, x: np.ndarray) -> np.ndarray:
    """The gradient of ``dev`` at ``x = (theta, sigma)``, shape (ntheta + 1,)."""
    theta, sigma = x[:-1], float(x[-1])
    bl = obj.blocks
    r2 = parts(obj, theta)[2]
    s2 = sigma * sigma
    w = np.ones(bl.m)
    w[bl.mr : bl.mr + bl.p] = 1.0 if obj.reml else 0.0
    w[-1] = r2 / s2
    _, g = obj.weighted_gradient(theta, w)
    return np.append(g, 2.0 * dof(obj) / sigma - 2.0 * r2 / (s2 * sigma))


def steps(x: np.ndarray) -> np.ndarray:
    """Difference steps per element: ``STEP * max(|x_i|, 0.1)``."""
    return STEP * np.maximum(np.abs(x), 0.1)


def jacobian(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Central differences of ``fun`` (values of any shape), Richardson-extrapolated.

    Returns
    -------
    ndarray, shape (len(x),) + shape of fun(x)
        ``out[j] = d fun / d x_j``.
    """
    h = steps(x)
    out = []
    for j in range(len(x)):

        def central(step: float, j: int = j) -> np.ndarray:
            up, down = x.copy(), x.copy()
            up[j] += step
            down[j] -= step
            return (np.asarray(fun(up)) - np.asarray(fun(down))) / (2.0 * step)

        coarse, fine = central(h[j]), central(h[j] / 2.0)
        out.append(fine + (fine - coarse) / 3.0)
    return np.stack(out)


def hessian(obj: Objective, theta: np.ndarray, sigma: float) -> np.ndarray:
    """The Hessian of ``dev`` over ``(theta, sigma)``, symmetric, (ntheta + 1, ntheta + 1)."""
    H = jacobian(lambda x: gradient(obj, x), np.append(theta, sigma))
    return 0.5 * (H + H.T)


def vcov_beta(obj: Objective, x: np.ndarray) -> np.ndarray:
    """``sigma^2 (L_X L_X')^-1`` at ``x = (theta, sigma)``, shape (p, p)."""
    return solve.vcov_beta(obj.factorize(x[:-1]), float(x[-1]))


def vcov_beta_jacobian(obj: Objective, theta: np.ndarray, sigma: float) -> np.ndarray:
    """``d vcov_beta / d x_j`` for ``x = (theta, sigma)``, shape (ntheta + 1, p, p)."""
    return jacobian(lambda x: vcov_beta(obj, x), np.append(theta, sigma))
