"""``glmm``: fit a generalized linear mixed model, read as a table of contents."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd

from . import family as family_mod
from . import threads as threads_mod
from .engine import blocks as blocks_mod
from .engine import solve
from .engine.bobyqa import OptSummary
from .engine.cholesky import factorize
from .engine.family import Family
from .engine.glmm_optimize import GlmmOptimum, fit_glmm
from .engine.laplace import Deviance
from .engine.layout import ThetaLayout
from .engine.pirls import GlmRows
from .engine.standard import Standardization, Standardized
from .errors import ConvergenceWarning, DataError, SingularFitWarning
from .fit import SCALE_RANGE, check_counts, column_scales, offset_column
from .frame import design as design_mod
from .frame import intercept
from .frame import missing as missing_mod
from .frames import backend, in_memory
from .glmm_model import GeneralizedLinearMixedModel
from .outcome import Outcome, OutcomeSpec


def glmm(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    weights: str | None = None,
    offset: str | np.ndarray | pd.Series | None = None,
    nAGQ: int = 1,
    missing: str = "error",
) -> GeneralizedLinearMixedModel:
    """Fit a generalized linear mixed model with lme4's formula language and numbers.

    Parameters
    ----------
    formula : str
        e.g. ``"y ~ x + (x | g)"``. The response is 0/1 (or boolean), a
        proportion (with ``weights`` the trials) or lme4's two columns
        ``cbind(successes, failures)`` for the binomial family, a count for
        the Poisson family. ``offset(expr)`` terms add to the linear
        predictor, e.g. ``offset(log(exposure))``.
    data : DataFrame
        Training rows: a pandas DataFrame (any dtypes), a polars DataFrame or
        LazyFrame or a pyarrow Table (:func:`mixedfx.frames.in_memory`); not
        a Dask frame (GLMMs are fitted in memory; predictions run on Dask).
    family : str or Family, default "binomial"
        ``"binomial"``, ``"poisson"``, ``"binomial(link='probit')"`` or
        :func:`mixedfx.family.binomial` (links logit, probit, cloglog).
    weights : str, optional
        Column of prior weights: for the binomial family with a proportion
        response, the number of trials per row (as in ``glmer``); with a
        ``cbind`` response they multiply its trials.
    offset : str or array-like, optional
        Added to the linear predictor besides the formula's ``offset()``
        terms, as for :func:`mixedfx.lmm`: a column of ``data``, or one value
        per row (kept as the column ``"(offset)"``). New data must supply
        it when predicting.
    nAGQ : int, default 1
        1: the Laplace approximation; K > 1: adaptive Gauss-Hermite
        quadrature with K nodes (one scalar random-effects term only);
        0: lme4's nAGQ = 0 (beta estimated inside PIRLS, faster, less exact).
    missing : {"error", "drop"}
        As for :func:`mixedfx.lmm`; the weights and offset columns count as used.

    Returns
    -------
    GeneralizedLinearMixedModel

    Raises
    ------
    DataError
        For data that cannot be fitted, including a response outside the
        family's support (naming the rows).
    FormulaError
        For a formula that cannot be read.
    """
    spec = OutcomeSpec(family_mod.resolve(family), weights)
    return fit(formula, data, spec, check_nagq(nAGQ), missing, offset)


def fit(
    formula: str,
    data: pd.DataFrame,
    spec: OutcomeSpec,
    nagq: int,
    missing: str,
    offset: str | np.ndarray | pd.Series | None = None,
) -> GeneralizedLinearMixedModel:
    """:func:`glmm` with the outcome's specification (the estimators' way in)."""
    fam = spec.family
    if backend(data) is not None:
        raise DataError(
            "GLMMs are fitted in memory: collect the Dask frame first (ddf.compute()); "
            "predictions from a GLMM do run on Dask frames"
        )
    data = in_memory(data, "data")
    with threads_mod.pinned(threads_mod.reading(None, len(data))):  # as lmm
        data, offset = offset_column(data, offset)
        also = spec.columns() + ([offset] if offset is not None else [])
        data = missing_mod.handle(formula, data, missing, also=also)
        design, arrays = learn_design(formula, data, offset)
        outcome = spec.outcome(design, data)
        check_counts(design, len(outcome.y), float(np.ptp(outcome.y)), allow_n=True)
        rows = glm_rows(design, arrays, outcome, fam)
        coords, rows_s = standardize(design, rows)
        design = column_scales(design, coords)  # the columns' sizes, for the boundary flag (as lmm)
        w = theta_units(design, rows_s)
        dev = Deviance(rows_s, design.layout, max(nagq, 1))
        qs = [M.shape[1] for M in rows.M]
        m = blocks_mod.dense_rows(list(rows.nlevels), qs, rows.X.shape[1], rows.first)
        with threads_mod.pinned(threads_mod.choose(m)):  # as lmm: parallel BLAS only when idle
            opt = fit_glmm(dev, w, nagq)
            return make_model(design, spec, (rows, rows_s, coords), opt, nagq, data, stacklevel=4)


def learn_design(
    formula: str, data: pd.DataFrame, offset: str | None = None
) -> tuple[design_mod.DesignSpec, design_mod.TrainingArrays]:
    """The design and training arrays (a ``cbind`` response allowed; ``arrays.y`` unused)."""
    return design_mod.learn(formula, data, offset, two_column=True)


def check_nagq(nagq: int) -> int:
    if isinstance(nagq, bool) or not isinstance(nagq, int | np.integer) or not 0 <= nagq <= 25:
        raise ValueError(f"nAGQ must be an integer from 0 to 25, got {nagq!r}")
    return int(nagq)


def glm_rows(
    design: design_mod.DesignSpec,
    arrays: design_mod.TrainingArrays,
    outcome: Outcome,
    fam: Family,
) -> GlmRows:
    """The training rows for the engine, in the blocks' term order."""
    nlevels = tuple(t.nlevels for t in design.terms)
    first, _ = blocks_mod.engine_order([(t.nlevels, t.q) for t in design.terms])
    return GlmRows(
        arrays.X,
        arrays.codes,
        arrays.M,
        nlevels,
        outcome.y,
        outcome.weights,
        outcome.trials,
        outcome.offset,
        fam,
        first,
    )


def standardize(design: design_mod.DesignSpec, rows: GlmRows) -> tuple[Standardization, GlmRows]:
    """The coordinates the optimizer and PIRLS work in, and the rows in them.

    As an LMM (:mod:`mixedfx.engine.standard`): X's columns and the columns
    of each correlated term with an intercept are centred and scaled, other
    terms' columns only scaled; the response, weights and offset are not
    touched (``c = 0``, ``s = 1``). ``X b`` and ``Z b`` are the same linear
    predictors in both coordinates and the Laplace (and quadrature)
    deviance is invariant under such a map of ``(beta, b)``, so the optimum
    maps back exactly; but in the user's coordinates ``x + 1000`` in
    ``(x | g)`` makes the intercept's and the slope's effects nearly
    collinear, and the optimizer stopped 2.3 units of deviance short.
    """
    x_weights, term_weights = intercept.design_weights(design)
    zeros = np.zeros(rows.n)
    coords = Standardization.learn(rows.X, zeros, rows.M, x_weights, term_weights)
    X_s, M_s = coords.design_rows(rows.X, rows.M)
    return coords, dataclasses.replace(rows, X=X_s, M=M_s)


def theta_units(design: design_mod.DesignSpec, rows: GlmRows) -> np.ndarray:
    """The optimizer's units of theta from the random-effect columns' sizes, shape (ntheta,).

    A random-slope column of tiny or huge size (say, times 1e6) makes its
    theta tiny or huge, below BOBYQA's absolute tolerance or far from its
    unit start. The optimizer's rows are standardized (:func:`standardize`),
    which leaves such a size only where a term is scaled but not centred
    (``(x || g)`` with ``x`` far from 0). For a column whose root
    mean square ``s`` lies outside :data:`mixedfx.fit.SCALE_RANGE`, the
    optimizer works with ``theta * s`` (per row of T): the deviance is
    unchanged (Z Lambda is the same matrix), and the estimates do not depend
    on the units; columns of ordinary size keep scale 1 (lme4's path).
    Returns ``w`` with ``theta = theta_scaled * w``. (The terms' ``scales``
    for the boundary flag come from the user's columns, by
    :func:`mixedfx.fit.column_scales`, as for an LMM.)
    """
    per_term = []
    for t, M in zip(design.terms, rows.M, strict=True):
        rms = np.sqrt(np.mean(M * M, axis=0)) if rows.n else np.ones(t.q)
        extreme = (rms > 0) & ((rms < SCALE_RANGE[0]) | (rms > SCALE_RANGE[1]))
        per_term.append(1.0 / np.where(extreme, rms, 1.0))
    return design.layout.by_row(per_term)


def make_model(
    design: design_mod.DesignSpec,
    spec: OutcomeSpec,
    fitted_rows: tuple[GlmRows, GlmRows, Standardization],
    opt: GlmmOptimum,
    nagq: int,
    data: pd.DataFrame | None,
    stacklevel: int = 3,
) -> GeneralizedLinearMixedModel:
    """Estimates, conditional modes, covariances and flags at the optimum.

    ``fitted_rows``: the rows, the same rows standardized and their
    coordinates (:func:`standardize`); ``opt`` is in the standardized ones.
    The estimates and covariances are computed there and mapped back; the
    linear predictor is the same in both. The model keeps the standardized
    rows' blocks, weighted at the mode, and the estimates in their
    coordinates (``standardized``), as an LMM does: predictions, intervals
    and conditioning start from those.
    """
    rows, rows_s, coords = fitted_rows
    mode, layout = opt.mode, design.layout
    blocks = rows_s.weighted_blocks(mode.eta, None)
    f = factorize(blocks, layout.Ts(opt.theta))
    vcov = opt.vcov_beta if opt.vcov_beta is not None else solve.vcov_beta(f, 1.0)
    summary = summary_back(opt.opt if opt.opt is not None else opt.stage1, coords, layout)
    model = GeneralizedLinearMixedModel(
        design,
        spec,
        nagq,
        coords.theta(layout, opt.theta),
        coords.beta(opt.beta),
        opt.fmin,
        coords.b(mode.b),
        coords.condcov(solve.condcov(f, 1.0)),
        coords.vcov(vcov),
        summary,
        blocks,
        rows.family.linkinv(mode.eta),
        rows.y,
        rows.weights,
        data,
        standardized=Standardized(coords, opt.theta.copy(), opt.beta.copy(), 1.0, mode.b),
    )
    warn_fit(model, mode.converged, mode.iterations, stacklevel + 1)
    return model


def summary_back(opt: OptSummary, coords: Standardization, layout: ThetaLayout) -> OptSummary:
    """The optimizer's summary with ``start`` and ``final`` in the user's coordinates.

    Each is theta (the first stage) or theta then beta (the second); theta's
    lower bounds are the same in both coordinates.
    """
    k = layout.ntheta

    def back(x: np.ndarray) -> np.ndarray:
        theta = coords.theta(layout, x[:k])
        return theta if len(x) == k else np.concatenate([theta, coords.beta(x[k:])])

    return dataclasses.replace(opt, start=back(opt.start), final=back(opt.final))


def warn_fit(
    model: GeneralizedLinearMixedModel, pirls_ok: bool, iterations: int, stacklevel: int
) -> None:
    """The fit's warnings: boundary fit, optimizer or PIRLS not converged."""
    if model.singular:
        warnings.warn(
            "boundary (singular) fit: a random-effect variance is (near) zero or a "
            "correlation is +/-1; see model.varcorr",
            SingularFitWarning,
            stacklevel=stacklevel,
        )
    opt = model.optsummary
    if not opt.converged:
        warnings.warn(
            f"the optimizer did not converge ({opt.status}) after {opt.feval} evaluations",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    if not pirls_ok:
        warnings.warn(
            f"penalized IRLS did not converge at the estimates after {iterations} iterations; "
            "the conditional modes and the log-likelihood may be inaccurate",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
