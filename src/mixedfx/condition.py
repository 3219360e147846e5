"""Condition a fitted model on new observations: BLUPs updated, parameters fixed.

Given rows with the response, the random effects of every group are the
conditional modes from the training rows plus the given rows, with beta,
theta and sigma held at their estimates: they solve::

    (Lambda'Z'Z Lambda + I) u = Lambda'Z'(y - X beta),   b = Lambda u

over all rows, jointly for crossed and nested terms. For one new group of a
single factor this is ``b = (Z'Z + sigma^2 G^-1)^-1 Z'(y - X beta)``. The
training rows enter only through their cross-product blocks (kept in the
model), so no training data is needed, and groups new to the model become
levels of the conditioned model.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .engine import blocks as blocks_mod
from .engine import solve
from .engine.cholesky import factorize
from .errors import DataError, GivenWarning
from .frame.design import DesignSpec, check_count
from .frame.reterm import ReTerm
from .frame.rows import Rows, Tally, build
from .frames import backend, in_memory
from .outcome import positive_weights

if TYPE_CHECKING:
    from .base import MixedModel
    from .model import LinearMixedModel


def check_complete(tally: Tally, spec: DesignSpec, what: str = "given") -> None:
    """The errors for rows that must be complete (``given`` rows, rows to simulate).

    Read from the rows' :class:`~mixedfx.frame.rows.Tally`: the whole frame's
    in memory, the sum of its partitions' on Dask, so both raise the same
    errors. The response is checked when the rows were built with it.

    Raises
    ------
    DataError
        For a missing response, offset, predictor, group label or
        random-term value, in that order.
    """
    check_count(tally.y, f"response {spec.response!r}")
    check_count(tally.offset, "the offset")
    if tally.x.bad:
        raise DataError(f"{what} has {tally.x.bad} row(s) with missing predictors; drop them first")
    for t, labels, effects in zip(spec.terms, tally.labels, tally.effects, strict=True):
        if labels.bad:
            raise DataError(
                f"{what} has {labels.bad} row(s) with a missing label of {t.group!r}; "
                f"every {what} row needs its groups"
            )
        if effects.bad:
            raise DataError(f"{what} has missing values in the columns of random term {t.term}")


def with_new_levels(
    spec: DesignSpec, data: pd.DataFrame, r: Rows, what: str = "given"
) -> tuple[list[ReTerm], Rows]:
    """Complete rows (:func:`check_complete`) with codes in the terms extended by their new levels.

    Parameters
    ----------
    spec : DesignSpec
    data : DataFrame, shape (n, ...)
    r : Rows
        ``data``'s rows under ``spec`` (:func:`~mixedfx.frame.rows.build`).

    Returns
    -------
    terms : list of ReTerm
        ``spec``'s terms with the rows' unseen levels appended.
    rows : Rows
        ``r`` with each term's codes in ``terms``.
    """
    check_complete(Tally.of(r), spec, what)
    extended = [t.with_levels(data) for t in spec.terms]
    codes = tuple(c for _, c in extended)
    return [t for t, _ in extended], dataclasses.replace(r, codes=codes, unseen=())


def condition(model: LinearMixedModel, given: pd.DataFrame) -> LinearMixedModel:
    """The model with random effects conditioned on the training rows plus ``given``.

    For a group the model knows, given rows are *additional* observations:
    its random effects then rest on its training rows and the given rows
    together. Given rows that repeat training rows exactly (when the model
    holds its training frame) are counted twice, with a :class:`GivenWarning`.

    Parameters
    ----------
    model : LinearMixedModel
    given : DataFrame (any frame :func:`mixedfx.frames.in_memory` takes, or Dask)
        Rows with the response, the predictors and the grouping columns.

    Returns
    -------
    LinearMixedModel
        Same beta, theta, sigma, objective and ``nobs`` (so AIC and BIC are
        the fit's); random effects, their conditional covariances and the
        cross-product blocks updated; levels new in ``given`` appended to
        each term's levels; ``nobs_given`` increased by ``len(given)``. It
        keeps the model's training data frame: ``predict()`` without
        newdata predicts the training rows with the updated random effects.
    """
    remote = backend(given)
    if remote is not None:
        return remote.condition(model, given)
    given = in_memory(given, "given")
    if len(given) == 0:
        return model
    terms, r = given_rows(model, given)
    warn_training_copies(model, r, stacklevel=3)
    return conditioned(model, terms, _blocks(model, terms, r, given_weights(model, given)))


def given_rows(
    model: LinearMixedModel, given: pd.DataFrame, terms: list[ReTerm] | None = None
) -> tuple[list[ReTerm], Rows]:
    """The terms with new levels, and the given rows (with their response) in them.

    Parameters
    ----------
    model : LinearMixedModel
    given : DataFrame, shape (n, ...)
    terms : list of ReTerm, optional
        The terms with every new level of all the given rows, when ``given``
        is a part of them already checked (a Dask partition); by default
        the rows are checked (:func:`check_complete`) and the terms learned
        from them.

    Returns
    -------
    terms : list of ReTerm
    rows : Rows
        ``X`` (n, p), ``y`` (n,), the offset (n,), per term the codes in
        ``terms`` and ``M`` (n, q_t).

    Raises
    ------
    DataError
        For a missing response, offset, predictor, group label or random-term value.
    """
    if terms is not None:
        spec = dataclasses.replace(model.spec, terms=tuple(terms))
        return list(terms), build(spec, given, response=True)
    return with_new_levels(model.spec, given, build(model.spec, given, response=True))


def given_design(
    model: MixedModel, given: pd.DataFrame, rows: Rows | None = None
) -> tuple[list[ReTerm], Rows]:
    """The terms with new levels and the given rows in them.

    What a linear and a generalized linear model share: a GLMM reads its
    outcome (response, trials, weights) from the same rows itself. Checked
    as :func:`given_rows` checks.

    Parameters
    ----------
    model : MixedModel
    given : DataFrame, shape (n, ...)
    rows : Rows, optional
        ``given``'s rows under ``model.spec`` when built already
        (:func:`~mixedfx.frame.rows.build`).
    """
    return with_new_levels(model.spec, given, build(model.spec, given) if rows is None else rows)


def given_weights(model: LinearMixedModel, given: pd.DataFrame) -> np.ndarray | None:
    """The prior weights of given rows of a weighted model (its weights column), else None."""
    return None if model.weights is None else positive_weights(given, model.weights)


def _blocks(
    model: LinearMixedModel, terms: list[ReTerm], r: Rows, weights: np.ndarray | None = None
) -> blocks_mod.Blocks:
    """The given rows' blocks in the training blocks' (standardized) coordinates."""
    nlevels = [t.nlevels for t in terms]
    Xs, ys, Ms = model.standardized.coords.apply(r.X, r.working, r.M)
    return blocks_mod.form(Xs, ys, r.codes, Ms, nlevels, model.blocks.first, weights)


def given_blocks(
    model: LinearMixedModel, given: pd.DataFrame, terms: list[ReTerm] | None = None
) -> tuple[list[ReTerm], blocks_mod.Blocks]:
    """The terms with new levels and the given rows' cross-product blocks (:func:`given_rows`).

    Weighted by the model's prior weights (a DataError when given lacks that column).
    """
    new_terms, r = given_rows(model, given, terms)
    return new_terms, _blocks(model, new_terms, r, given_weights(model, given))


def _row_table(r: Rows) -> pd.DataFrame:
    """One row per model row: response (1 or 2 columns), offset, X, level codes and M."""
    assert r.y is not None
    columns = [r.y.reshape(r.n, -1), r.offset[:, None], r.X, *[c[:, None] for c in r.codes], *r.M]
    return pd.DataFrame(np.hstack([np.asarray(c, dtype=float) for c in columns]))


def warn_training_copies(model: MixedModel, r: Rows, stacklevel: int) -> None:
    """Warn when given rows repeat training rows exactly: they would count twice.

    Only possible when the model holds its training frame (``model.data``);
    only given rows whose groups are all known can be copies. Rows are
    compared as the model sees them (response, offset, X, levels,
    random-term columns), for a linear and a generalized model alike.
    """
    spec = model.spec
    known = np.logical_and.reduce([c < t.nlevels for c, t in zip(r.codes, spec.terms, strict=True)])
    if model.data is None or not known.any():
        return
    first = spec.terms[0]
    same_group = np.isin(first.codes(model.data), r.codes[0][known])
    training = model.data.iloc[np.flatnonzero(same_group)]
    if not len(training):
        return
    # binary: a GLMM's boolean outcome (an LMM's training response is never boolean)
    train = _row_table(build(spec, training, response=True, binary=True))
    copies = _row_table(r).merge(train.drop_duplicates(), how="left", indicator=True)
    twice = (copies["_merge"] == "both").to_numpy()
    if twice.any():
        groups = pd.unique(first.labels[r.codes[0][twice]]).tolist()
        warnings.warn(
            f"given has {int(twice.sum())} row(s) identical to training rows (groups of "
            f"{first.group!r}: {groups[:10]}); the model already holds them, so they "
            "count twice: pass only observations made after training",
            GivenWarning,
            stacklevel=stacklevel + 1,
        )


def warn_unused_given(
    spec: DesignSpec,
    given: pd.DataFrame,
    codes: tuple[np.ndarray, ...],
    masks: list[np.ndarray],
    stacklevel: int,
) -> None:
    """Warn, naming them, about given groups that no row of the new data belongs to.

    A given row's group of a term counts as used when a new row has the
    same level, or, for a nested term (``cask:batch``), when a new row has
    its level of a coarser term (``batch``): given casks of a batch inform
    a new cask of it.

    Parameters
    ----------
    spec : DesignSpec
        The conditioned model's design (given's new levels included).
    codes : tuple of ndarray, shape (n,) per term
        The new rows' level codes under ``spec``.
    masks : list of bool ndarray
        The columns of each term that ``re`` includes.
    """
    used = [k for k, m in enumerate(masks) if m.any()]
    given_codes = {k: spec.terms[k].codes(given) for k in used}
    seen = {k: np.isin(given_codes[k], codes[k]) for k in used}
    unused = []
    for k in used:
        t = spec.terms[k]
        covered = seen[k].copy()
        for j in used:
            if set(spec.terms[j].term.factors) < set(t.term.factors):
                covered |= seen[j]
        if not covered.all():
            labels = pd.unique(t.labels[given_codes[k][~covered]]).tolist()
            unused.append(f"{t.group!r}: {labels[:10]}")
    if unused:
        warnings.warn(
            f"given has groups that no row of newdata belongs to ({'; '.join(unused)}); "
            "their rows do not inform these predictions directly (are the labels "
            "written as in newdata?)",
            GivenWarning,
            stacklevel=stacklevel + 1,
        )


def conditioned(
    model: LinearMixedModel, terms: list[ReTerm], extra: blocks_mod.Blocks
) -> LinearMixedModel:
    """The model conditioned on given rows with blocks ``extra`` in the layout of ``terms``."""
    nlevels = [t.nlevels for t in terms]
    blocks = blocks_mod.add(blocks_mod.extend(model.blocks, nlevels), extra)
    std = model.standardized  # the blocks' coordinates
    Ts = model.spec.layout.Ts(std.theta)
    f = factorize(blocks_mod.fix_beta(blocks, std.beta), Ts)
    _, _, b = solve.modes(f)
    new_spec = dataclasses.replace(model.spec, terms=tuple(terms))
    return dataclasses.replace(
        model,
        spec=new_spec,
        b=std.coords.b(b),
        b_condcov=std.coords.condcov(solve.condcov(f, std.sigma)),
        standardized=dataclasses.replace(std, b=b),
        blocks=blocks,
        fitted_values=None,
        response_values=None,
        nobs_given=model.nobs_given + extra.n,
    )
