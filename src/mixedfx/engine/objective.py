"""The profiled objective: ML deviance or REML criterion as a function of theta.

With ``L`` the factor of :mod:`mixedfx.engine.cholesky`, ``r^2`` the penalized RSS,
``n`` rows and ``p`` fixed effects::

    ML:   log|L_Z|^2 + n (1 + log(2 pi r^2 / n))
    REML: log|L_Z|^2 + log|L_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

With prior weights ``w`` (blocks of ``W^(1/2) [Z X y]``) both subtract
``sum log w``, the log-determinant of the weights in the likelihood of
``y ~ N(X beta + Z b, sigma^2 W^-1)`` (lme4's ``lmerResp::Laplace``).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import gradient as gradient_mod
from .blocks import Blocks
from .cholesky import BlockedCholesky, factorize, objective_parts
from .dense import DENSE_MAX, DENSE_MAX_THETA, DenseSystem
from .information import average_information, covariance_curvature, positive_part
from .layout import ThetaLayout


class Objective:
    """Callable ``theta -> objective`` over fixed blocks.

    Parameters
    ----------
    blocks : Blocks
    layout : ThetaLayout
        Where each element of theta sits in the terms' factors (the design's
        terms, in order).
    reml : bool
    log_weights : float, default 0
        ``sum log w`` of the prior weights (0 without weights).
    """

    def __init__(
        self, blocks: Blocks, layout: ThetaLayout, reml: bool, log_weights: float = 0.0
    ) -> None:
        self.blocks = blocks
        self.layout = layout
        self.reml = reml
        self.log_weights = log_weights
        self.nevals = 0

    @functools.cached_property
    def dense(self) -> DenseSystem | None:
        """The cheaper evaluator for small models (None for others), built on first use.

        Only evaluations use it: a caller that just wants :meth:`factor` pays nothing.
        """
        bl = self.blocks
        if bl.l0 * bl.q0 + bl.m > DENSE_MAX or self.ntheta > DENSE_MAX_THETA:
            return None
        lay = self.layout
        where = [
            (r, c, np.arange(sl.start, sl.stop))
            for (r, c), sl in zip(lay.index, lay.slices, strict=True)
        ]
        return DenseSystem.build(bl, where)

    @property
    def ntheta(self) -> int:
        return self.layout.ntheta

    def start(self) -> np.ndarray:
        return self.layout.start()

    def lower(self) -> np.ndarray:
        return self.layout.lower()

    def Ts(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per term, the relative covariance factor ``T_t`` (q_t x q_t)."""
        return self.layout.Ts(theta)

    def __call__(self, theta: np.ndarray) -> float:
        self.nevals += 1
        theta = np.asarray(theta, dtype=float)
        try:
            if self.dense is not None:
                return self.criterion(*self.dense.logdets(theta))
            return self.criterion(*objective_parts(self.blocks, self.Ts(theta)))
        except np.linalg.LinAlgError:
            return math.inf

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """The objective's gradient at theta, shape (ntheta,) (:mod:`mixedfx.engine.gradient`).

        Raises
        ------
        numpy.linalg.LinAlgError
            Where the objective is infinite.
        """
        return self.value_and_gradient(theta)[1]

    def value_and_gradient(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its gradient at theta, from one factorization."""
        parts, g = self.weighted_gradient(theta)
        return self.criterion(*parts), g

    def weighted_gradient(
        self, theta: np.ndarray, w: np.ndarray | None = None
    ) -> tuple[tuple[float, float, float], np.ndarray]:
        """The log-determinants and r^2, and the gradient of a weighted sum of them.

        With ``w`` (m,) the weights of ``log L22_ii^2`` (default: the objective's,
        :func:`mixedfx.engine.gradient.weights`) and weight 1 on ``log|L11|^2``,
        the gradient over theta of ``log|L11|^2 + sum_i w_i log L22_ii^2``, (ntheta,).
        """
        theta = np.asarray(theta, dtype=float)
        if self.dense is not None:
            bl = self.blocks
            full = self._dense_weights if w is None else np.concatenate([np.ones(bl.l0 * bl.q0), w])
            return self.dense.gradient(theta, full)
        return self._blocked_parts(theta, w)

    def value_gradient_information(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The objective, its gradient and the average information at theta, one factorization.

        The information (ntheta, ntheta) is :func:`~mixedfx.engine.information.
        average_information`, read off the blocked factor before the gradient
        overwrites it, plus the positive part of the exact ``d^2 W`` terms
        (:func:`~mixedfx.engine.information.covariance_curvature`, from the
        gradient): positive semidefinite, for Fisher scoring
        (:mod:`mixedfx.engine.scoring`). The objective is ``inf`` (and the
        rest zeros) where it is not defined.
        """
        Ts = self.Ts(np.asarray(theta, dtype=float))
        held: list[np.ndarray] = []

        def factored(L22: np.ndarray) -> None:
            held.append(average_information(self.blocks, self.layout, Ts, self.reml, L22))

        k = self.ntheta
        try:
            parts, g = self._blocked_parts(theta, None, factored)
        except np.linalg.LinAlgError:
            return math.inf, np.zeros(k), np.zeros((k, k))
        S = covariance_curvature(self.layout, Ts, g)
        return self.criterion(*parts), g, held[0] + positive_part(S)

    def hessian(self, theta: np.ndarray) -> np.ndarray | None:
        """The objective's Hessian at theta, (ntheta, ntheta), for small models; else None.

        Small models have it in closed form (:meth:`DenseSystem.hessian`); for
        others the caller differences the gradient.
        """
        out = self.second_order(theta)
        return None if out is None else out[2]

    def second_order(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
        """The objective, gradient and Hessian from one factorization (small models; else None)."""
        if self.dense is None:
            return None
        parts, g, h = self.dense.second_order(np.asarray(theta, dtype=float), self._dense_weights)
        return self.criterion(*parts), g, h

    def blocked(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """The objective and its gradient from the blocked factor, whatever the model's size."""
        parts, g = self._blocked_parts(theta, None)
        return self.criterion(*parts), g

    def _blocked_parts(
        self,
        theta: np.ndarray,
        w: np.ndarray | None,
        factored: gradient_mod.Factored | None = None,
    ) -> tuple[tuple[float, float, float], np.ndarray]:
        Ts = self.Ts(np.asarray(theta, dtype=float))
        parts, gT = gradient_mod.gradient(self.blocks, Ts, self.reml, w, factored)
        pairs = zip(gT, self.layout.index, strict=True)
        return parts, np.concatenate([g[r, c] for g, (r, c) in pairs])

    @functools.cached_property
    def _dense_weights(self) -> np.ndarray:
        """The weights of the dense system's log squared diagonals, shape (N,)."""
        bl = self.blocks
        return np.concatenate([np.ones(bl.l0 * bl.q0), gradient_mod.weights(bl, self.reml)])

    def factorize(self, theta: np.ndarray) -> BlockedCholesky:
        """The blocked factor at theta; read off the dense one when evaluations have built it.

        Small models evaluate through :attr:`dense`; at their optimum one dense
        factorization gives every block (:meth:`DenseSystem.blocked`), where the
        blocked method costs several times that. Other callers pay nothing for
        a dense system they would build only for this.
        """
        theta = np.asarray(theta, dtype=float)
        dense = self.__dict__.get("dense")  # built by an evaluation, or None for large models
        if dense is not None and not self.blocks.sparse:
            return dense.blocked(theta, self.blocks, self.Ts(theta))
        return factorize(self.blocks, self.Ts(theta))

    def value(self, f: BlockedCholesky) -> float:
        """The objective from a factor."""
        return self.criterion(*f.logdets())

    def criterion(self, ldz: float, ldx: float, r2: float) -> float:
        """ML deviance or REML criterion from the log-determinants and r^2."""
        n, p = self.blocks.n, self.blocks.p
        if self.reml:
            dof = n - p
            return ldz + ldx + dof * (1.0 + math.log(2.0 * math.pi * r2 / dof)) - self.log_weights
        return ldz + n * (1.0 + math.log(2.0 * math.pi * r2 / n)) - self.log_weights
