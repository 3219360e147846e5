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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .engine import blocks as blocks_mod
from .engine import solve
from .engine.cholesky import factorize
from .errors import DataError
from .frame import levels as lv
from .frame.reterm import ReTerm
from .frames import backend
from .outcome import positive_weights

if TYPE_CHECKING:
    from .base import MixedModel
    from .model import LinearMixedModel


def _factor_keys(
    data: pd.DataFrame, name: str, known: np.ndarray, index: lv.KeyIndex | None = None
) -> np.ndarray:
    """Keys of one grouping column, training keys first, then the given rows' new ones (sorted).

    ``index`` is the known keys' :class:`~mixedfx.frame.levels.KeyIndex` when at hand.
    """
    uniques = np.asarray(pd.unique(data[name].dropna()))
    if not len(uniques):
        return known
    unseen = (index if index is not None else lv.KeyIndex(known)).find(uniques) < 0
    fresh = np.unique(lv.canonical_keys(uniques[unseen]).astype(str))
    return np.concatenate([known, fresh.astype(object)])


def check_labels(t: ReTerm, data: pd.DataFrame) -> None:
    """Every given row needs a label for each of the term's grouping columns."""
    missing = pd.isna(t.new_keys(data))
    if missing.any():
        raise DataError(
            f"given has {int(missing.sum())} row(s) with a missing label of "
            f"{t.group!r}; every given row needs its groups"
        )


def with_new_levels(t: ReTerm, data: pd.DataFrame) -> tuple[ReTerm, np.ndarray]:
    """The term with the given rows' unseen levels appended, and the rows' codes."""
    codes = t.codes(data)
    keys = t.new_keys(data)
    missing = pd.isna(keys)
    if missing.any():
        raise DataError(
            f"given has {int(missing.sum())} row(s) with a missing label of "
            f"{t.group!r}; every given row needs its groups"
        )
    unseen = codes < 0
    if not unseen.any():
        return t, codes
    first_seen, uniq = pd.factorize(keys[unseen].astype(str))  # hashing, then sort the few
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    new_keys = np.asarray(uniq)[order]
    codes = codes.copy()
    codes[unseen] = t.nlevels + rank[first_seen]
    new = dataclasses.replace(
        t,
        keys=np.concatenate([t.keys, new_keys.astype(object)]),
        labels=np.concatenate([t.labels, new_keys.astype(object)]),
        factor_keys=tuple(
            _factor_keys(data, f, fk, t.key_index if len(t.term.factors) == 1 else None)
            for f, fk in zip(t.term.factors, t.factor_keys, strict=True)
        ),
    )
    return new, codes


def condition(model: LinearMixedModel, given: pd.DataFrame) -> LinearMixedModel:
    """The model with random effects conditioned on the training rows plus ``given``.

    Parameters
    ----------
    model : LinearMixedModel
    given : DataFrame
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
    if not isinstance(given, pd.DataFrame):
        raise DataError(f"given must be a pandas DataFrame, got {type(given).__name__}")
    if len(given) == 0:
        return model
    terms, extra = given_blocks(model, given)
    return conditioned(model, terms, extra)


@dataclass(frozen=True)
class GivenRows:
    """The given rows in the layout of the terms extended by their new levels.

    Attributes
    ----------
    terms : list of ReTerm
        The model's terms with the given rows' new levels appended.
    X : ndarray, shape (n, p)
    codes : per term, ndarray of int, shape (n,)
    M : per term, ndarray, shape (n, q_t)
    """

    terms: list[ReTerm]
    X: np.ndarray
    codes: tuple[np.ndarray, ...]
    M: tuple[np.ndarray, ...]

    @property
    def nlevels(self) -> list[int]:
        return [t.nlevels for t in self.terms]


def given_rows(
    model: MixedModel, given: pd.DataFrame, terms: list[ReTerm] | None = None
) -> GivenRows:
    """The model matrices of the given rows, with their new levels.

    Parameters
    ----------
    model : MixedModel
    given : DataFrame, shape (n, ...)
    terms : list of ReTerm, optional
        The terms with every new level of all the given rows (when ``given``
        is a part of them); by default learned from ``given``.

    Raises
    ------
    DataError
        For a missing predictor, group label or random-term value.
    """
    spec = model.spec
    X = spec.X(given)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X).all(axis=1)).sum())
        raise DataError(f"given has {bad} row(s) with missing predictors; drop them first")
    codes, Ms, new_terms = [], [], []
    for k, t in enumerate(spec.terms):
        if terms is None:
            nt, c = with_new_levels(t, given)
        else:
            check_labels(t, given)
            nt = terms[k]
            c = nt.codes(given)
        M = nt.model_matrix(given)
        if not np.isfinite(M).all():
            raise DataError(f"given has missing values in the columns of random term {t.term}")
        new_terms.append(nt)
        codes.append(c)
        Ms.append(M)
    return GivenRows(new_terms, X, tuple(codes), tuple(Ms))


def given_blocks(
    model: LinearMixedModel, given: pd.DataFrame, terms: list[ReTerm] | None = None
) -> tuple[list[ReTerm], blocks_mod.Blocks]:
    """The terms with new levels and the cross-product blocks of the given rows.

    See :func:`given_rows`; also raises a DataError for a missing response (or,
    for a weighted model, weights column). The response is the working
    response (minus the offset).
    """
    y = model.spec.working_response(given)
    w = None if model.weights is None else positive_weights(given, model.weights)
    g = given_rows(model, given, terms)
    extra = blocks_mod.form(g.X, y, g.codes, g.M, g.nlevels, model.blocks.first, w)
    return g.terms, extra


def conditioned(
    model: LinearMixedModel, terms: list[ReTerm], extra: blocks_mod.Blocks
) -> LinearMixedModel:
    """The model conditioned on given rows with blocks ``extra`` in the layout of ``terms``."""
    nlevels = [t.nlevels for t in terms]
    blocks = blocks_mod.add(blocks_mod.extend(model.blocks, nlevels), extra)
    Ts = model.Ts()
    f = factorize(blocks_mod.fix_beta(blocks, model.beta), Ts)
    _, _, b = solve.modes(f)
    new_spec = dataclasses.replace(model.spec, terms=tuple(terms))
    return dataclasses.replace(
        model,
        spec=new_spec,
        b=b,
        b_condcov=solve.condcov(f, model.sigma),
        blocks=blocks,
        fitted_values=None,
        response_values=None,
        nobs_given=model.nobs_given + extra.n,
    )
