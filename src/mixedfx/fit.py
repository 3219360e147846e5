"""``lmm``: fit a linear mixed model, read as a table of contents."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from .engine import blocks as blocks_mod
from .engine import solve
from .engine.objective import Objective
from .engine.optimize import OptSummary, fit_theta
from .errors import ConvergenceWarning, DataError, SingularFitWarning
from .frame import design as design_mod
from .frame import missing as missing_mod
from .frames import backend, in_memory
from .model import LinearMixedModel
from .outcome import positive_weights as prior_weights


def lmm(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    missing: str = "error",
    progress: bool = False,
    offset: str | np.ndarray | pd.Series | None = None,
    weights: str | None = None,
) -> LinearMixedModel:
    """Fit a linear mixed model with lme4's formula language and lme4's numbers.

    Parameters
    ----------
    formula : str
        e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : DataFrame
        Training rows with the response, predictors and grouping columns: a
        pandas DataFrame (any dtypes), a polars DataFrame or LazyFrame, a
        pyarrow Table (converted once, :func:`mixedfx.frames.in_memory`) or a
        Dask DataFrame. Grouping labels are compared exactly: ``"7"``, ``"07"``
        and ``" 7"`` are three levels (:mod:`mixedfx.frame.levels`). A
        Dask frame is fitted in two passes over its partitions (see
        :mod:`mixedfx.distributed`); the model then holds no training rows.
    reml : bool, default True
        REML (True) or maximum likelihood (False).
    missing : {"error", "drop"}, default "error"
        What to do with rows that have NaN, inf or a missing label in a
        column the model uses (the response, a fixed-effects predictor, a
        grouping column or a random-slope column). ``"error"`` raises a
        :class:`~mixedfx.DataError` naming the columns and counts;
        ``"drop"`` fits the other rows and reports how many were dropped
        with a :class:`~mixedfx.MissingDataWarning`. The model's ``data``,
        ``fitted()``, ``residuals()`` and ``nobs`` then refer to the kept
        rows only (``data`` keeps their original index). A used column with
        no usable value at all is an error either way. (lme4 drops such rows
        silently by default; mixedfx never does.) Dask frames support
        ``"error"`` only: drop rows with ``ddf.dropna(subset=...)`` first.
    progress : bool, default False
        Show Dask's progress bar while the passes over a Dask frame run.
    offset : str or array-like, optional
        A known part of the linear predictor, added to ``X beta + Z b``
        besides the formula's ``offset(expr)`` terms: the name of a column
        of ``data``, or an array of one value per row (kept in the model's
        training frame as lme4's column ``"(offset)"``). The fit is on
        ``y - offset``; ``fitted()`` and every prediction add it back, so
        new data must supply it (the column, or ``"(offset)"`` for an array).
        Unlike lme4, whose ``predict(newdata)`` drops an ``offset=``
        argument, predictions always include it. Dask frames take a column name.
    weights : str, optional
        Column of positive prior weights, as ``lmer(weights=)``: row ``i``
        has residual variance ``sigma^2 / w_i``; the criterion is lme4's
        (with ``-sum log w``). In-memory frames only.

    Returns
    -------
    LinearMixedModel

    Raises
    ------
    DataError
        For data that cannot be fitted as given (missing column, missing
        values, constant response, too few levels, ...).
    FormulaError
        For a formula that cannot be read.
    """
    remote = backend(data)
    if remote is not None:
        if weights is not None:
            raise DataError("weights= is not supported for Dask frames yet; fit in memory")
        if offset is not None and not isinstance(offset, str):
            raise DataError("offset= must be the name of a column for a Dask frame")
        return remote.lmm(formula, data, reml, missing, progress, offset)
    data = in_memory(data, "data")
    data, offset = offset_column(data, offset)
    also = [c for c in (offset, weights) if c is not None]
    data = missing_mod.handle(formula, data, missing, also=also)
    design, arrays = learn_design(formula, data, offset)
    w = None if weights is None else prior_weights(data, weights)
    blocks = form_blocks(design, arrays, w)
    log_w = 0.0 if w is None else float(np.log(w).sum())
    design, objective, units = make_objective(design, blocks, reml, log_w)
    opt = fit_theta(objective, units)
    model = make_model(design, arrays, blocks, objective, opt, data, stacklevel=3)
    return model if weights is None else dataclasses.replace(model, weights=weights)


def offset_column(
    data: pd.DataFrame, offset: str | np.ndarray | pd.Series | None
) -> tuple[pd.DataFrame, str | None]:
    """The training rows and the name of the offset column (an array becomes ``"(offset)"``)."""
    if offset is None or isinstance(offset, str):
        return data, offset
    if not isinstance(data, pd.DataFrame):
        return data, None  # design.learn names the problem
    values = np.asarray(offset, dtype=float).reshape(-1)
    if values.shape != (len(data),):
        raise DataError(f"offset has {values.size} values for {len(data)} rows")
    return data.assign(**{design_mod.OFFSET_COLUMN: values}), design_mod.OFFSET_COLUMN


def learn_design(
    formula: str, data: pd.DataFrame, offset: str | None = None
) -> tuple[design_mod.DesignSpec, design_mod.TrainingArrays]:
    """The design learned from the training rows, and their arrays (lme4's ``lFormula``)."""
    design, arrays = design_mod.learn(formula, data, offset)
    check_sizes(design, arrays)
    return design, arrays


def form_blocks(
    design: design_mod.DesignSpec,
    arrays: design_mod.TrainingArrays,
    weights: np.ndarray | None = None,
) -> blocks_mod.Blocks:
    """The cross-product blocks of ``[Z X y]`` (weighted: ``[Z X y]' W [Z X y]``), in one pass."""
    nlevels = [t.nlevels for t in design.terms]
    return blocks_mod.form(arrays.X, arrays.y, arrays.codes, arrays.M, nlevels, weights=weights)


def make_objective(
    design: design_mod.DesignSpec, blocks: blocks_mod.Blocks, reml: bool, log_weights: float = 0.0
) -> tuple[design_mod.DesignSpec, Objective, np.ndarray]:
    """The profiled objective over the blocks (lme4's ``mkLmerDevfun``).

    Returns
    -------
    design : DesignSpec
        With the optimizer's column scales recorded (:func:`column_scales`).
    objective : Objective
    w : ndarray, shape (ntheta,)
        The optimizer's units: ``theta = s * w``.
    """
    design, w = column_scales(design, blocks)
    return design, Objective(blocks, design.layout, reml, log_weights), w


def fit_model(
    design: design_mod.DesignSpec,
    arrays: design_mod.TrainingArrays | None,
    blocks: blocks_mod.Blocks,
    reml: bool,
    data: pd.DataFrame | None = None,
    stacklevel: int = 4,
) -> LinearMixedModel:
    """From the blocks to the model: :func:`make_objective`, ``fit_theta``, :func:`make_model`.

    The steps after the rows are summed, shared by every path that forms
    blocks (in memory, Dask). ``stacklevel`` of the fit warnings, counted
    from :func:`make_model`.
    """
    design, objective, w = make_objective(design, blocks, reml)
    opt = fit_theta(objective, w)
    return make_model(design, arrays, blocks, objective, opt, data, stacklevel)


def fitted_values(
    arrays: design_mod.TrainingArrays, beta: np.ndarray, b: list[np.ndarray]
) -> np.ndarray:
    """Conditional fitted values ``X beta + Z b`` (+ offset) of the training rows, shape (n,)."""
    fitted = arrays.X @ beta if arrays.offset is None else arrays.X @ beta + arrays.offset
    for codes, M, bt in zip(arrays.codes, arrays.M, b, strict=True):
        fitted = fitted + np.einsum("nq,nq->n", M, bt[codes])
    return fitted


SCALE_RANGE = (1e-3, 1e3)  # random-effect columns whose root mean square is outside get scaled


def column_scales(
    design: design_mod.DesignSpec, blocks: blocks_mod.Blocks
) -> tuple[design_mod.DesignSpec, np.ndarray]:
    """Scale random-effect columns of extreme size for the optimizer.

    A random-slope variable in tiny or huge units (say, multiplied by 1e6)
    makes its theta tiny or huge, below the optimizer's absolute tolerance
    (1e-8) or far from its unit start. For a column whose root mean square
    ``s`` lies outside :data:`SCALE_RANGE`, the optimizer works with
    ``theta_scaled = theta * s`` (per row of T): the objective is unchanged
    (Z Lambda is the same matrix), and the estimates do not depend on the
    units. Columns of ordinary size keep scale 1, so ordinary fits follow
    lme4's parameterisation and optimizer path exactly. The sums of squares
    come from the blocks (A11's and A22's diagonals), so a fit from blocks
    alone (Dask) scales alike.

    Returns
    -------
    design : DesignSpec
        With each term's ``scales`` set (None where all are 1).
    w : ndarray, shape (ntheta,)
        ``theta = theta_scaled * w``.
    """
    squares = {blocks.first: np.einsum("kaa->a", blocks.A11)}
    diag22 = np.diagonal(blocks.A22)
    for r in blocks.rest:
        rows = diag22[r.offset : r.offset + r.nlevels * r.q]
        squares[r.term] = rows.reshape(r.nlevels, r.q).sum(axis=0)
    terms, per_term = [], []
    for k, t in enumerate(design.terms):
        rms = np.sqrt(squares[k] / blocks.n) if blocks.n else np.ones(t.q)
        extreme = (rms > 0) & ((rms < SCALE_RANGE[0]) | (rms > SCALE_RANGE[1]))
        scales = np.where(extreme, rms, 1.0)
        terms.append(dataclasses.replace(t, scales=scales if extreme.any() else None))
        per_term.append(1.0 / scales)
    return dataclasses.replace(design, terms=tuple(terms)), design.layout.by_row(per_term)


def check_sizes(design: design_mod.DesignSpec, arrays: design_mod.TrainingArrays) -> None:
    """lme4's identifiability checks on the numbers of levels and random effects."""
    check_counts(design, len(arrays.y), float(np.ptp(arrays.y)))


def check_counts(
    design: design_mod.DesignSpec, n: int, y_range: float, allow_n: bool = False
) -> None:
    """The identifiability checks from the number of rows and the response's range.

    ``allow_n`` (GLMMs, as lme4's ``glmer``) allows as many levels and random
    effects per term as rows (an observation-level effect).
    """
    for t in design.terms:
        if t.nlevels < 2:
            raise DataError(
                f"grouping factor {t.group!r} has only one level; "
                "a random effect needs two or more groups"
            )
        if t.nlevels > n or (t.nlevels == n and not allow_n):
            less = "at most" if allow_n else "less than"
            raise DataError(
                f"grouping factor {t.group!r} has {t.nlevels} levels for {n} rows; "
                f"the number of levels must be {less} the number of observations"
            )
    nre = sum(t.nlevels * t.q for t in design.terms)
    big = [
        (t, t.nlevels * b)
        for t in design.terms
        for b in t.blocks
        if t.nlevels * b > n or (t.nlevels * b == n and not allow_n)
    ]
    if big:  # lme4's check.nobs.vs.nRE, per lme4 term (a block of ours)
        raise DataError(
            f"term {big[0][0].term} has {big[0][1]} random effects for "
            f"{n} observations ({nre} in all); the model is not identifiable"
        )
    if y_range == 0:
        raise DataError(f"response {design.response!r} is constant; there is nothing to model")


def make_model(
    design: design_mod.DesignSpec,
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
    f = objective.factorize(opt.final)
    n, p = blocks.n, blocks.p
    sigma = float(np.sqrt(f.r2 / (n - p if objective.reml else n)))
    beta, _, b = solve.modes(f)
    model = LinearMixedModel(
        design,
        objective.reml,
        opt.final.copy(),
        beta,
        sigma,
        opt.fmin,
        b,
        solve.condcov(f, sigma),
        solve.vcov_beta(f, sigma),
        opt,
        blocks,
        None if arrays is None else fitted_values(arrays, beta, b),
        None if arrays is None else arrays.response,
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
