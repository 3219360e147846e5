"""Condition a fitted GLMM on new observations: conditional modes updated, parameters fixed.

With beta and theta held at their estimates, the random effects of every
group become the conditional modes given the training rows plus the given
rows: penalized IRLS (:mod:`mixedfx.engine.pirls`) minimises::

    sum over given rows d_i(y_i, mu_i)  +  ||u||^2
      +  || W^(1/2) (z - X beta - Z Lambda u) ||^2 over the training rows

where the last term is what training knows: the training rows'
working-weighted cross-products at the fitted modes (the blocks the model
keeps), i.e. the quadratic (Laplace) approximation of their deviance around
their modes, the same Gaussian approximation the fit itself rests on. For a
group new to the model whose effects no training row touches (one
grouping factor, or a new level of every factor of a row) this is exactly
the conditional mode from its given rows; for known groups, and across
crossed and nested terms, the training rows enter through that quadratic,
so no training data is needed (a saved model conditions as well as a
fitted one) and the result does not depend on where the training rows are.

The conditioned model's conditional covariances and blocks (for intervals)
are those of the joint system at the new modes: training blocks plus the
given rows weighted at their modes. All of it runs in the fit's
standardized coordinates (the blocks'), the modes and covariances mapped
back to the user's at the end.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

import pandas as pd

from .condition import given_design, warn_training_copies
from .engine import blocks as blocks_mod
from .engine import solve
from .engine.cholesky import factorize
from .engine.pirls import GlmRows, pirls
from .errors import ConvergenceWarning, DataError
from .frame.rows import build
from .frames import backend, in_memory

if TYPE_CHECKING:
    from .glmm_model import GeneralizedLinearMixedModel


def condition(
    model: GeneralizedLinearMixedModel, given: pd.DataFrame
) -> GeneralizedLinearMixedModel:
    """The model with conditional modes given the training rows plus ``given``.

    Parameters
    ----------
    model : GeneralizedLinearMixedModel
    given : DataFrame
        Rows with the response (and the weights and offset columns the
        model uses), the predictors and the grouping columns.

    Returns
    -------
    GeneralizedLinearMixedModel
        Same beta, theta, objective and ``nobs``; conditional modes, their
        covariances and the blocks updated; new levels appended;
        ``nobs_given`` increased by ``len(given)``.

    Raises
    ------
    DataError
        For missing columns or values, or a response outside the family's
        support (naming the rows).
    """
    if backend(given) is not None:
        raise DataError(
            "given must be a pandas DataFrame for a GLMM (Dask given rows are not supported "
            "yet); call .compute() on it first"
        )
    given = in_memory(given, "given")
    if len(given) == 0:
        return model
    r = build(model.spec, given, response=True, binary=True)
    outcome = model.outcome.outcome(model.spec, given, r)
    terms, g = given_design(model, given, r)
    warn_training_copies(model, g, stacklevel=3)
    nlevels = [t.nlevels for t in terms]
    std = model.standardized  # the blocks' coordinates (glmm.standardize)
    X_s, M_s = std.coords.design_rows(g.X, g.M)
    rows = GlmRows(
        X_s,
        g.codes,
        M_s,
        tuple(nlevels),
        outcome.y,
        outcome.weights,
        outcome.trials,
        outcome.offset,
        model.family,
        model.blocks.first,
    )
    training = blocks_mod.extend(model.blocks, nlevels)
    Ts = model.spec.layout.Ts(std.theta)
    mode = pirls(rows, Ts, beta=std.beta, prior=blocks_mod.fix_beta(training, std.beta))
    if not mode.converged:
        warnings.warn(
            f"penalized IRLS for the given rows did not converge after {mode.iterations} "
            "iterations; the conditional modes may be inaccurate",
            ConvergenceWarning,
            stacklevel=3,
        )
    blocks = blocks_mod.add(training, rows.weighted_blocks(mode.eta, None))
    f = factorize(blocks, Ts)
    return dataclasses.replace(
        model,
        spec=dataclasses.replace(model.spec, terms=tuple(terms)),
        b=std.coords.b(mode.b),
        b_condcov=std.coords.condcov(solve.condcov(f, 1.0)),
        blocks=blocks,
        standardized=dataclasses.replace(std, b=mode.b),
        fitted_values=None,
        response_values=None,
        weight_values=None,
        nobs_given=model.nobs_given + len(given),
    )
