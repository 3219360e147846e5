"""``lmm``: fit a linear mixed model, read as a table of contents."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd

from . import threads as threads_mod
from .engine import blocks as blocks_mod
from .engine import solve
from .engine.bobyqa import OptSummary
from .engine.descent import gain
from .engine.newton import SETTLE_TOL
from .engine.objective import Objective
from .engine.optimize import fit_theta
from .engine.standard import Standardization, Standardized
from .errors import ConvergenceWarning, DataError, SingularFitWarning
from .frame import columns, intercept
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
    threads: int | None = None,
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
    threads : int, optional
        BLAS threads for the fit. By default one, unless the dense
        factorization is large and cores are idle (see
        :mod:`mixedfx.threads`): parallel BLAS next to other busy processes
        slowed fits down fifty-fold. The default never exceeds the BLAS
        threads the process allows (``OPENBLAS_NUM_THREADS``, a joblib
        worker's limit); an explicit ``threads`` does.

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
        with threads_mod.pinned(threads_mod.checked(threads)):  # None: chosen in fit_model
            return remote.lmm(formula, data, reml, missing, progress, offset)
    data = in_memory(data, "data")
    with threads_mod.pinned(threads_mod.reading(threads, len(data))):  # 1 next to busy cores
        data, offset = offset_column(data, offset)
        also = [c for c in (offset, weights) if c is not None]
        with columns.reading(data):  # each column taken from pandas once
            data = missing_mod.handle(formula, data, missing, also=also)
            design, arrays = learn_design(formula, data, offset)
            w = None if weights is None else prior_weights(data, weights)
        coords, blocks = form_blocks(design, arrays, w)
        log_w = 0.0 if w is None else float(np.log(w).sum())
        with threads_mod.pinned(threads_mod.choose(blocks, threads)):
            objective = make_objective(design, blocks, reml, log_w)
            opt = fit_theta(objective)
            model = make_model(design, arrays, coords, blocks, objective, opt, data, stacklevel=3)
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
) -> tuple[Standardization, blocks_mod.Blocks]:
    """The standardized coordinates and the cross-product blocks of ``[Z X y]`` in them.

    One pass over the rows (:func:`standard_blocks`); see
    :mod:`mixedfx.engine.standard` for why the engine never sees the raw columns.
    With prior ``weights`` (n,) the blocks are ``[Z X y]' W [Z X y]``; the
    coordinates are the rows' unweighted moments (any centring and scaling is
    an exact reparameterisation, and ``-sum log w`` is the same in both).
    """
    coords, blocks = standard_blocks(design, arrays.X, arrays.y, arrays.codes, arrays.M, weights)
    check_range(design, coords)
    return coords, blocks


def standard_blocks(
    design: design_mod.DesignSpec,
    X: np.ndarray,
    y: np.ndarray,
    codes: tuple[np.ndarray, ...],
    Ms: tuple[np.ndarray, ...],
    weights: np.ndarray | None = None,
) -> tuple[Standardization, blocks_mod.Blocks]:
    """Rows (X (n, p), y (n,), per term codes (n,) and M (n, q_t)) -> coordinates and blocks.

    ``weights`` (n,): prior weights of the rows, or None.

    The coordinates are the rows' own moments: each Dask partition does the
    same, and the partials are moved to the merged coordinates when added.
    """
    x_weights, term_weights = intercept.design_weights(design)
    coords = Standardization.learn(X, y, Ms, x_weights, term_weights)
    Xs, ys, Mss = coords.apply(X, y, Ms)
    nlevels = [t.nlevels for t in design.terms]
    return coords, blocks_mod.form(Xs, ys, codes, Mss, nlevels, weights=weights)


def make_objective(
    design: design_mod.DesignSpec, blocks: blocks_mod.Blocks, reml: bool, log_weights: float = 0.0
) -> Objective:
    """The profiled objective over the (standardized) blocks (lme4's ``mkLmerDevfun``).

    ``log_weights``: ``sum log w`` of prior weights (lme4's criterion subtracts it).
    """
    return Objective(blocks, design.layout, reml, log_weights)


def fit_model(
    design: design_mod.DesignSpec,
    arrays: design_mod.TrainingArrays | None,
    coords: Standardization,
    blocks: blocks_mod.Blocks,
    reml: bool,
    data: pd.DataFrame | None = None,
    stacklevel: int = 4,
    warn_singular: bool = True,
) -> LinearMixedModel:
    """From the blocks to the model: :func:`make_objective`, ``fit_theta``, :func:`make_model`.

    The steps after the rows are summed, shared by every path that forms
    blocks (in memory, Dask). ``stacklevel`` of the fit warnings, counted
    from :func:`make_model`; ``warn_singular=False`` for a refit that is a
    step of something else (an ML refit for a profile or anova).
    """
    with threads_mod.pinned(threads_mod.choose(blocks)):
        objective = make_objective(design, blocks, reml)
        opt = fit_theta(objective)
        return make_model(
            design, arrays, coords, blocks, objective, opt, data, stacklevel, warn_singular
        )


def fitted_values(fit: Standardized, arrays: design_mod.TrainingArrays) -> np.ndarray:
    """Conditional fitted values ``X beta + Z b`` (+ offset) of the training rows, shape (n,)."""
    fitted = fit.fixed_part(arrays.X)
    for t, (codes, M) in enumerate(zip(arrays.codes, arrays.M, strict=True)):
        fitted = fitted + fit.random_part(t, M, codes)
    return fitted if arrays.offset is None else fitted + arrays.offset


SCALE_RANGE = (1e-3, 1e3)  # random-effect columns whose root mean square is outside get scaled


def column_scales(design: design_mod.DesignSpec, coords: Standardization) -> design_mod.DesignSpec:
    """Record the size of random-effect columns of extreme size, for the boundary check.

    A random-slope variable in tiny or huge units (say, multiplied by 1e6)
    makes its theta tiny or huge, and lme4's test of a boundary fit (a
    diagonal of T below 1e-4) would then say nothing about the fit. For a
    column whose root mean square ``s`` (in the user's units) lies outside
    :data:`SCALE_RANGE`, :attr:`LinearMixedModel.singular` compares
    ``|T_jj| * s`` instead; columns of ordinary size keep scale 1, so the
    flag is lme4's for ordinary fits.

    Returns
    -------
    DesignSpec
        With each term's ``scales`` set (None where all are 1).
    """
    terms = []
    for t, mom in zip(design.terms, coords.terms, strict=True):
        rms = np.hypot(mom.rms, mom.mean)
        extreme = (rms > 0) & ((rms < SCALE_RANGE[0]) | (rms > SCALE_RANGE[1]))
        scales = np.where(extreme, rms, 1.0) if extreme.any() else None
        unchanged = scales is None and t.scales is None
        terms.append(t if unchanged else dataclasses.replace(t, scales=scales))
    if all(a is b for a, b in zip(terms, design.terms, strict=True)):
        return design  # (and its layout, already worked out)
    return dataclasses.replace(design, terms=tuple(terms))


RATIO_RANGE = (math.sqrt(np.finfo(float).tiny), math.sqrt(np.finfo(float).max))  # squares fit


def check_range(design: design_mod.DesignSpec, coords: Standardization) -> None:
    """Refuse data whose variances cannot be represented in double precision.

    The fit runs in standardized coordinates, but the user's variances are
    ``(s / d)^2`` times standardized ones, with ``s`` the response's spread
    and ``d`` a column's (the residual variance: ``s^2``). When such a square
    overflows or underflows (the response times 1e300; a predictor times
    1e-300), no estimate could be reported, so the column is named instead.

    Raises
    ------
    DataError
        Naming the response or the column, with its mean and spread.
    """
    s = coords.y_scale
    xy = coords.xy
    named = [(f"response {design.response!r}", xy.mean[-1], xy.rms[-1], s)]
    for j, c in enumerate(design.fixed_names):
        named.append((f"fixed-effect column {c!r}", xy.mean[j], xy.rms[j], s / xy.scale[j]))
    for t, mom in zip(design.terms, coords.terms, strict=True):
        for j, c in enumerate(t.columns):
            what = f"column {c!r} of random term {t.term}"
            named.append((what, mom.mean[j], mom.rms[j], s / mom.scale[j]))
    for what, mean, rms, ratio in named:
        if not RATIO_RANGE[0] <= ratio < RATIO_RANGE[1]:
            raise DataError(
                f"{what} has values around {mean:.3g} with spread {rms:.3g}: the "
                f"variances of the fit in these units (~({ratio:.3g})^2) cannot be "
                "represented in double precision; rescale it (divide or multiply by a power "
                "of ten) before fitting"
            )


def check_moved(objective: Objective, opt: OptSummary) -> OptSummary:
    """Never report the optimizer's start as a converged fit when it is not an optimum.

    A fit that never left the start values (theta = identity factors) is an
    optimum only if the gradient there is flat (the same test as
    :func:`mixedfx.engine.newton.settle`); otherwise it is flagged as not
    converged. A non-finite objective there means nothing could be fitted.

    Raises
    ------
    DataError
        When the objective is not finite at the start values.
    """
    if not np.array_equal(opt.final, opt.start):
        return opt
    try:
        f, g = objective.value_and_gradient(opt.final)
    except np.linalg.LinAlgError:
        f, g = math.inf, np.full(len(opt.final), np.nan)
    if not np.isfinite(f):
        raise DataError(
            "the objective is not finite at the optimizer's start values: the data "
            "cannot be fitted as given (check the ranges of the response and predictors)"
        )
    if np.isfinite(g).all() and gain(g, opt.final, opt.lower) <= SETTLE_TOL * max(1.0, abs(f)):
        return opt
    status = f"stopped at the start values where the gradient is not flat ({opt.status})"
    return dataclasses.replace(opt, converged=False, status=status)


def check_sizes(design: design_mod.DesignSpec, arrays: design_mod.TrainingArrays) -> None:
    """lme4's identifiability checks on the numbers of levels and random effects."""
    check_counts(design, len(arrays.y), float(np.ptp(arrays.y)))


def check_counts(
    design: design_mod.DesignSpec, n: int, y_range: float, allow_n: bool = False
) -> None:
    """The identifiability checks from the number of rows and the response's range.

    lme4's defaults, which stop the fit: ``check.nlev.gtr.1`` (two or more
    levels), ``check.nobs.vs.nlev`` (fewer levels than rows) and
    ``check.nobs.vs.nRE``: per term, fewer random effects than rows
    (``nrow(Zt_i) < n``; lme4 splits ``(x || g)`` into one term per block of
    ``T``, so such a term counts its levels times each block's size).
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
            f"{n} observations ({nre} in all): the number of observations must be "
            f"{'at least' if allow_n else 'greater than'} the number of random effects of "
            "each term, or the "
            "random-effects parameters and the residual variance are not identifiable "
            "(lme4's check.nobs.vs.nRE); use fewer levels or columns, or more rows"
        )
    if y_range == 0:
        raise DataError(f"response {design.response!r} is constant; there is nothing to model")


def make_model(
    design: design_mod.DesignSpec,
    arrays: design_mod.TrainingArrays | None,
    coords: Standardization,
    blocks: blocks_mod.Blocks,
    objective: Objective,
    opt: OptSummary,
    data: pd.DataFrame | None = None,
    stacklevel: int = 3,
    warn_singular: bool = True,
) -> LinearMixedModel:
    """Estimates, random effects and flags at the optimum, in the user's coordinates.

    ``opt`` and the blocks are in the standardized coordinates ``coords``;
    the estimates are mapped back exactly (:class:`~mixedfx.engine.standard.Standardization`)
    and the standardized ones kept for prediction and conditioning. Without
    ``arrays`` (a fit from the blocks alone, e.g. on Dask) the model keeps no
    fitted values or responses of the training rows.
    """
    opt = check_moved(objective, opt)
    f = objective.factorize(opt.final)
    n, p = blocks.n, blocks.p
    sigma_s = float(np.sqrt(f.r2 / (n - p if objective.reml else n)))
    beta_s, _, b_s = solve.modes(f)
    fit = Standardized(coords, opt.final.copy(), beta_s, sigma_s, b_s)
    layout, reml = design.layout, objective.reml
    user_opt = dataclasses.replace(
        opt,
        start=coords.theta(layout, opt.start),
        final=coords.theta(layout, opt.final),
        fmin=coords.objective(opt.fmin, reml),
        extra={
            k: coords.objective(v, reml) if k == "first_fmin" else v for k, v in opt.extra.items()
        },
    )
    model = LinearMixedModel(
        column_scales(design, coords),
        reml,
        user_opt.final,
        coords.beta(beta_s),
        coords.y_scale * sigma_s,
        user_opt.fmin,
        coords.b(b_s),
        coords.condcov(solve.condcov(f, sigma_s)),
        coords.vcov(solve.vcov_beta(f, sigma_s)),
        user_opt,
        blocks,
        None if arrays is None else fitted_values(fit, arrays),
        None if arrays is None else arrays.response,
        data,
        standardized=fit,
    )
    if model.singular and warn_singular:
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
