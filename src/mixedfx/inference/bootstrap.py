"""The parametric bootstrap (lme4's ``bootMer``): refits to responses simulated from the fit.

Each replicate draws a response for the training rows with new random
effects (:mod:`mixedfx.inference.simulate`; ``ranef="fitted"`` keeps the
BLUPs, lme4's ``use.u = TRUE``), puts its three products into the fit's
blocks (:func:`mixedfx.engine.resample.with_response`) and refits theta from
the fit's estimate. Like the fit, the refits run in the fit's standardized
coordinates (:mod:`mixedfx.engine.standard`): the response is standardized
with the fit's centre and scale, the products are those of the standardized
``Z`` and ``X``, and the estimates are mapped back. Replicate ``i`` uses its
own generator spawned from ``seed``, so the draws do not depend on
``n_jobs`` or the order in which workers finish.

Refits run in parallel with joblib (``n_jobs``; on the workers of an active
Dask distributed client when one is active), with a tqdm progress bar
(``pip install 'mixedfx[inference]'`` for both; without joblib the refits
run in this process). A refit that raises is a failure: its row is NaN and
it is counted, never dropped; refits whose optimizer did not converge, and
singular refits, are counted too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..engine import resample
from ..engine.blocks import Blocks, term_matrix
from ..engine.layout import ThetaLayout
from ..engine.rowwise import row_dot
from ..engine.sdcor import to_sdcor
from ..engine.standard import Standardization
from ..errors import DataError
from ..frame import rows as rows_mod
from .scope import require_unweighted
from .simulate import RANEF, Simulator, simulator
from .varpar import fit_objective

if TYPE_CHECKING:
    from ..model import LinearMixedModel

SINGULAR_TOL = 1e-4  # as the model's flag, on the diagonal of T times its column's scale


@dataclass(frozen=True)
class BootstrapResult:
    """Draws of the parameters from a parametric bootstrap.

    Attributes
    ----------
    theta : ndarray, shape (n, ntheta)
    beta : ndarray, shape (n, p)
    sigma : ndarray, shape (n,)
        NaN in the rows of failed refits.
    failed, converged, singular : bool ndarray, shape (n,)
    names : list of str
        Of :meth:`parameters`' columns (lme4's confint row names).
    layout : ThetaLayout
    seed : int
    ranef : str
    """

    theta: np.ndarray
    beta: np.ndarray
    sigma: np.ndarray
    failed: np.ndarray
    converged: np.ndarray
    singular: np.ndarray
    names: list[str]
    layout: ThetaLayout
    seed: int
    ranef: str

    @property
    def n(self) -> int:
        return len(self.sigma)

    @property
    def n_failed(self) -> int:
        return int(self.failed.sum())

    def parameters(self) -> np.ndarray:
        """sd/cor, sigma and fixed effects per draw, shape (n, K); NaN rows for failures."""
        out = np.full((self.n, len(self.names)), np.nan)
        for i in np.flatnonzero(~self.failed):
            out[i] = np.concatenate(
                [to_sdcor(self.layout, self.theta[i], float(self.sigma[i])), self.beta[i]]
            )
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per draw: :meth:`parameters` and the failed/converged/singular flags."""
        frame = pd.DataFrame(self.parameters(), columns=self.names)
        frame["failed"] = self.failed
        frame["converged"] = self.converged
        frame["singular"] = self.singular
        return frame

    def __repr__(self) -> str:
        return (
            f"<BootstrapResult: {self.n} draws, {self.n_failed} failed, "
            f"{int((~self.converged & ~self.failed).sum())} not converged, "
            f"{int(self.singular.sum())} singular (seed {self.seed}, ranef={self.ranef!r})>"
        )


@dataclass(frozen=True)
class Problem:
    """What a worker needs (picklable arrays only; no frames, no model).

    ``blocks``, ``start``, ``Z0``, ``Zr`` and ``X`` are in the fit's
    standardized coordinates ``coords``; ``sim`` draws the working response
    less the fit's centre ``c`` (:meth:`~mixedfx.LinearMixedModel.simulate`'s
    draws minus ``c``, without the rounding of adding ``c``, which may be
    1e10 sd(y)), and ``scales`` are the terms' column scales of the
    singular flag, spread over theta.
    """

    blocks: Blocks
    layout: ThetaLayout
    reml: bool
    coords: Standardization
    scales: np.ndarray
    start: np.ndarray
    sim: Simulator
    Z0: sp.csr_matrix
    Zr: sp.csr_matrix | None
    X: np.ndarray
    ranef: str

    def y_parts(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Z0'y_s`` and ``[Zr X y_s]'y_s`` of the standardized response ``y_s = y / s``."""
        y = y / self.coords.y_scale
        parts = [] if self.Zr is None else [self.Zr.T @ y]
        parts += [self.X.T @ y, [y @ y]]
        return self.Z0.T @ y, np.concatenate(parts)

    def replicate(self, seed: np.random.SeedSequence) -> tuple[Any, ...]:
        """One refit: (theta, beta, sigma, failed, converged, singular), in the user's units."""
        y = self.sim.draw(np.random.default_rng(seed), 1, self.ranef)[:, 0]
        try:
            bl = resample.with_response(self.blocks, *self.y_parts(y))
            theta_s, beta_s, sigma_s, opt = resample.refit(bl, self.layout, self.reml, self.start)
        except (np.linalg.LinAlgError, ValueError, FloatingPointError):
            nan = np.full(len(self.start), np.nan)
            return nan, np.full(self.X.shape[1], np.nan), np.nan, True, False, False
        theta = self.coords.theta(self.layout, theta_s)
        beta, sigma = self.coords.beta(beta_s), self.coords.y_scale * sigma_s
        singular = bool(np.any(np.abs(theta * self.scales)[self.layout.diagonal] < SINGULAR_TOL))
        return theta, beta, sigma, False, opt.converged, singular

    def run(self, seeds: list[np.random.SeedSequence]) -> list[tuple[Any, ...]]:
        return [self.replicate(s) for s in seeds]


def problem(model: LinearMixedModel, ranef: str) -> Problem:
    """The refit problem of a model (needs its training rows)."""
    fit_objective(model)  # refuses a conditioned model
    if model.data is None:
        raise DataError(
            "the bootstrap simulates responses for the training rows, and this model holds "
            "none (fitted on Dask or loaded from a file): refit it on an in-memory frame"
        )
    sim = simulator(model)
    bl, spec, std = model.blocks, model.spec, model.standardized
    coords = std.coords
    scales = spec.layout.by_row(
        [np.ones(t.q) if t.scales is None else t.scales for t in spec.terms]
    )
    assert model.data is not None  # simulator() has checked
    r = rows_mod.build(spec, model.data)  # the training rows: every level is the model's
    Zs = [
        term_matrix(r.codes[k], coords.z_rows(k, r.M[k]), t.nlevels)
        for k, t in enumerate(spec.terms)
    ]
    Zr = sp.hstack([Zs[t.term] for t in bl.rest]).tocsr() if bl.rest else None
    X = coords.x_rows(r.X)
    sim = dataclasses.replace(sim, mean=coords.y_scale * row_dot(X, std.beta))  # X beta - c
    return Problem(
        bl, spec.layout, model.reml, coords, scales, std.theta, sim, Zs[bl.first], Zr, X, ranef
    )


def _chunks(seeds: list[np.random.SeedSequence], size: int) -> list[list[np.random.SeedSequence]]:
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def _results(
    prob: Problem, seeds: list[np.random.SeedSequence], n_jobs: int
) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of results, in order, from joblib (or this process)."""
    if n_jobs == 1 or importlib.util.find_spec("joblib") is None:
        for chunk in _chunks(seeds, 10):
            yield prob.run(chunk)
        return
    import joblib

    workers = joblib.cpu_count() if n_jobs < 0 else n_jobs
    size = max(5, min(100, len(seeds) // (4 * max(workers, 1)) or 1))
    backend = _dask_backend()
    config = joblib.parallel_config(backend=backend) if backend else contextlib.nullcontext()
    with config:
        parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator")
        yield from parallel(joblib.delayed(prob.run)(c) for c in _chunks(seeds, size))


def _dask_backend() -> str | None:
    """``"dask"`` when a Dask distributed client is active (never imports dask itself)."""
    if "distributed" not in sys.modules:
        return None
    try:
        sys.modules["distributed"].get_client()
    except ValueError:
        return None
    return "dask"


def bootstrap(
    model: LinearMixedModel,
    n: int = 1000,
    seed: int = 0,
    progress: bool = True,
    n_jobs: int = -1,
    ranef: str = "sample",
) -> BootstrapResult:
    """See :meth:`mixedfx.LinearMixedModel.bootstrap`."""
    require_unweighted(model, "bootstrap")
    from .confint import parameter_names

    if ranef not in RANEF:
        raise ValueError(f"ranef must be one of {RANEF}, got {ranef!r}")
    if int(n) < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    prob = problem(model, ranef)
    seeds = np.random.SeedSequence(seed).spawn(int(n))
    bar = _bar(int(n)) if progress else None
    rows: list[tuple[Any, ...]] = []
    for chunk in _results(prob, seeds, n_jobs):
        rows += chunk
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    theta, beta, sigma, failed, converged, singular = (list(c) for c in zip(*rows, strict=True))
    return BootstrapResult(
        np.array(theta),
        np.array(beta).reshape(len(rows), -1),
        np.array(sigma, dtype=float),
        np.array(failed, dtype=bool),
        np.array(converged, dtype=bool),
        np.array(singular, dtype=bool),
        parameter_names(model),
        model.spec.layout,
        seed,
        ranef,
    )


def _bar(total: int) -> Any:
    """A tqdm bar, or None when tqdm is not installed."""
    if importlib.util.find_spec("tqdm") is None:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="bootstrap refits", unit="refit")
