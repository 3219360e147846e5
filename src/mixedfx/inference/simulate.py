"""New responses from a fitted model (lme4's ``simulate``), for any rows.

Each simulation draws ``y = X beta + sum_t Z_t b_t + sigma e`` with ``e`` standard
normal and, per term, the random effects

* ``ranef="sample"`` (lme4's ``use.u = FALSE``): new effects for every level,
  ``b_t ~ N(0, sigma^2 T_t T_t')``, one draw per level shared by its rows;
* ``ranef="fitted"`` (``use.u = TRUE``): the BLUPs for levels the model knows,
  new draws for levels it does not (new groups).

The rows may be the training rows or any new data, with new groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..condition import with_new_levels
from ..engine.blocks import term_matrix
from ..engine.rowwise import row_dot
from ..errors import DataError
from ..frame import rows as rows_mod
from ..frames import in_memory
from .scope import require_unweighted

if TYPE_CHECKING:
    from ..model import LinearMixedModel

RANEF = ("sample", "fitted")


@dataclass(frozen=True)
class Simulator:
    """What simulation needs of some rows, as arrays (picklable, no frames).

    Attributes
    ----------
    mean : ndarray, shape (n,)
        ``X beta``.
    Z : list of csr_matrix, shape (n, l_t q_t) per term
        Every level of the rows, the model's levels first.
    known : list of int
        Per term, the number of levels the model knows (their BLUPs come first).
    chol : list of ndarray, shape (q_t, q_t)
        ``sigma T_t``: the random effects are ``z @ chol'`` for standard normal ``z``.
    fitted : list of ndarray, shape (l_t, q_t)
        The model's BLUPs.
    sigma : float
    """

    mean: np.ndarray
    Z: list[sp.csr_matrix]
    known: list[int]
    chol: list[np.ndarray]
    fitted: list[np.ndarray]
    sigma: float

    @property
    def n(self) -> int:
        return len(self.mean)

    def draw(self, rng: np.random.Generator, nsim: int, ranef: str = "sample") -> np.ndarray:
        """``nsim`` responses, shape (n, nsim)."""
        Y = self.mean[:, None] + self.sigma * rng.standard_normal((self.n, nsim))
        for Z, known, C, b in zip(self.Z, self.known, self.chol, self.fitted, strict=True):
            q = C.shape[0]
            nlev = Z.shape[1] // q
            u = rng.standard_normal((nsim, nlev, q)) @ C.T  # (nsim, nlev, q)
            if ranef == "fitted":
                u[:, :known] = b
            Y += Z @ u.reshape(nsim, nlev * q).T
        return Y


def simulator(model: LinearMixedModel, newdata: pd.DataFrame | None = None) -> Simulator:
    """The :class:`Simulator` of ``newdata`` (the training rows by default).

    Raises
    ------
    DataError
        For missing predictors or group labels in the rows (a simulated
        response needs all of them), or a model without training rows and
        no newdata.
    """
    data = model.data if newdata is None else newdata
    if data is None:
        raise DataError("this model holds no training rows; pass newdata to simulate")
    data = in_memory(data, "newdata")
    spec = model.spec
    terms, r = with_new_levels(spec, data, rows_mod.build(spec, data), "newdata")
    Zs = [
        term_matrix(codes, M, nt.nlevels) for nt, codes, M in zip(terms, r.codes, r.M, strict=True)
    ]
    known = [t.nlevels for t in spec.terms]
    chol = [model.sigma * T for T in model.Ts()]
    mean = row_dot(r.X, model.beta) + r.offset  # lme4: the population prediction, offset included
    return Simulator(mean, Zs, known, chol, list(model.b), model.sigma)


def simulate(
    model: LinearMixedModel,
    nsim: int = 1,
    newdata: pd.DataFrame | None = None,
    ranef: str = "sample",
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """``nsim`` simulated responses per row: DataFrame with columns ``sim_1 ... sim_nsim``.

    Indexed like ``newdata`` (the training data frame by default).
    """
    require_unweighted(model, "simulate")
    if ranef not in RANEF:
        raise ValueError(f"ranef must be one of {RANEF}, got {ranef!r}")
    if int(nsim) < 1:
        raise ValueError(f"nsim must be a positive integer, got {nsim!r}")
    data = model.data if newdata is None else in_memory(newdata, "newdata")
    sim = simulator(model, None if newdata is None else data)
    Y = sim.draw(np.random.default_rng(seed), int(nsim), ranef)
    columns = [f"sim_{k + 1}" for k in range(int(nsim))]
    assert data is not None
    return pd.DataFrame(Y, index=data.index, columns=columns)
