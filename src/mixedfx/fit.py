"""``lmm``: fit a linear mixed model, read as a table of contents."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from . import blocks as blocks_mod
from . import design as design_mod
from . import modes
from .distributed import is_dask
from .errors import ConvergenceWarning, DataError, SingularFitWarning
from .model import LinearMixedModel
from .objective import Objective
from .optimize import OptSummary, boundary_restarts, minimize


def lmm(
    formula: str, data: pd.DataFrame, reml: bool = True, progress: bool = False
) -> LinearMixedModel:
    """Fit a linear mixed model with lme4's formula language and lme4's numbers.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : DataFrame or dask DataFrame
        Training rows with the response, predictors and grouping columns. A
        Dask frame is fitted in two passes over its partitions (see
        :mod:`mixedfx.distributed`); the model then holds no training rows.
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    progress : bool, default False
        Show Dask's progress bar while the passes over a Dask frame run.

    Returns
    -------
    LinearMixedModel
    """
    if is_dask(data):
        from .distributed.fit import lmm as dask_lmm

        return dask_lmm(formula, data, reml, progress)
    design, arrays = design_mod.learn(formula, data)
    check_sizes(design, arrays)
    blocks = blocks_mod.form(
        arrays.X, arrays.y, arrays.codes, arrays.M, [t.nlevels for t in design.terms]
    )
    return optimize(design, arrays, blocks, reml, data, stacklevel=4)


def optimize(
    design: design_mod.Design,
    arrays: design_mod.TrainingArrays | None,
    blocks: blocks_mod.Blocks,
    reml: bool,
    data: pd.DataFrame | None = None,
    stacklevel: int = 4,
) -> LinearMixedModel:
    """Minimise the profiled objective over the blocks and build the model.

    ``stacklevel`` of the fit warnings, counted from :func:`finish`.
    """
    objective = Objective(blocks, design.terms, reml)
    opt = minimize(objective, objective.start(), objective.lower())
    opt = boundary_restarts(objective, opt, objective.lower() == 0.0)
    return finish(design, arrays, blocks, objective, opt, data, stacklevel)


def fitted_values(
    arrays: design_mod.TrainingArrays, beta: np.ndarray, b: list[np.ndarray]
) -> np.ndarray:
    """Conditional fitted values ``X beta + Z b`` of the training rows, shape (n,)."""
    fitted = arrays.X @ beta
    for codes, M, bt in zip(arrays.codes, arrays.M, b, strict=True):
        fitted = fitted + np.einsum("nq,nq->n", M, bt[codes])
    return fitted


def check_sizes(design: design_mod.Design, arrays: design_mod.TrainingArrays) -> None:
    """lme4's identifiability checks on the numbers of levels and random effects."""
    check_counts(design, len(arrays.y), float(np.ptp(arrays.y)))


def check_counts(design: design_mod.Design, n: int, y_range: float) -> None:
    """The identifiability checks from the number of rows and the response's range."""
    for t in design.terms:
        if t.nlevels < 2:
            raise DataError(
                f"grouping factor {t.group!r} has only one level; "
                "a random effect needs two or more groups"
            )
        if t.nlevels >= n:
            raise DataError(
                f"grouping factor {t.group!r} has {t.nlevels} levels for {n} rows; "
                "the number of levels must be less than the number of observations"
            )
    nre = sum(t.nlevels * t.q for t in design.terms)
    big = [t for t in design.terms if t.nlevels * t.q > n]
    if big:
        raise DataError(
            f"term {big[0].term} has {big[0].nlevels * big[0].q} random effects for "
            f"{n} observations ({nre} in all); the model is not identifiable"
        )
    if y_range == 0:
        raise DataError(f"response {design.response!r} is constant; there is nothing to model")


def finish(
    design: design_mod.Design,
    arrays: design_mod.TrainingArrays | None,
    blocks: blocks_mod.Blocks,
    objective: Objective,
    opt: OptSummary,
    data: pd.DataFrame | None = None,
    stacklevel: int = 3,
) -> LinearMixedModel:
    """Estimates, random effects and flags at the optimum.

    Without ``arrays`` (a fit from the blocks alone, e.g. on Dask) the model
    keeps no fitted values or responses of the training rows.
    """
    f = objective.factor(opt.final)
    n, p = blocks.n, blocks.p
    sigma = float(np.sqrt(f.r2 / (n - p if objective.reml else n)))
    beta, _, b = modes.solve(f)
    model = LinearMixedModel(
        design,
        objective.reml,
        opt.final.copy(),
        beta,
        sigma,
        opt.fmin,
        b,
        modes.condcov(f, sigma),
        modes.vcov_beta(f, sigma),
        opt,
        blocks,
        None if arrays is None else fitted_values(arrays, beta, b),
        None if arrays is None else arrays.y,
        data,
    )
    if model.singular:
        warnings.warn(
            "boundary (singular) fit: a random-effect variance is (near) zero or a "
            "correlation is +/-1; see model.varcorr",
            SingularFitWarning,
            stacklevel=stacklevel,
        )
    if not model.converged:
        warnings.warn(
            f"the optimizer did not converge ({opt.status}) after {opt.feval} evaluations",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    return model
