"""Likelihood-ratio tests of nested models (lme4's ``anova(m0, m1, ...)``).

As lme4 (``refit = TRUE``): REML fits are refitted by ML first (from their
blocks), models are ordered by their number of parameters, and each row is
compared with the one before::

    chisq = 2 max(0, loglik_i - loglik_(i-1)),  df = npar_i - npar_(i-1)
    p = P(chi^2_df > chisq)                      (NaN where df = 0)

Generalized linear mixed models are compared as lme4 compares ``glmer``
fits: they are fitted by maximum likelihood already, so their log-likelihoods
(Laplace or adaptive Gauss-Hermite) are compared as they are; all the models
must be GLMMs of the same family and link. A GLMM and a linear mixed model
are not nested and are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..errors import DataError
from ..glmm_model import GeneralizedLinearMixedModel
from .scope import require_unweighted
from .varpar import refit

if TYPE_CHECKING:
    from ..model import LinearMixedModel


def check_kinds(models: tuple[LinearMixedModel | GeneralizedLinearMixedModel, ...]) -> None:
    """All linear mixed models, or all GLMMs of one family and link."""
    glmms = [m for m in models if isinstance(m, GeneralizedLinearMixedModel)]
    if glmms and len(glmms) < len(models):
        raise DataError(
            "anova compares models of one kind: a generalized linear mixed model and a linear "
            "mixed model are not nested"
        )
    if len({str(m.family) for m in glmms}) > 1:
        raise DataError(
            f"GLMMs of different families or links are not nested: {[str(m.family) for m in glmms]}"
        )


def maximum_likelihood(
    models: tuple[LinearMixedModel | GeneralizedLinearMixedModel, ...],
) -> list[LinearMixedModel | GeneralizedLinearMixedModel]:
    """The models as ML fits: LMMs refitted by ML, GLMMs (ML fits already) as they are."""
    return [
        m if isinstance(m, GeneralizedLinearMixedModel) else refit(m, reml=False) for m in models
    ]


def anova(*models: LinearMixedModel | GeneralizedLinearMixedModel) -> pd.DataFrame:
    """Compare nested models fitted to the same rows.

    Parameters
    ----------
    *models : LinearMixedModel or GeneralizedLinearMixedModel
        Two or more models of the same response on the same rows (GLMMs of
        one family and link, or linear mixed models).

    Returns
    -------
    DataFrame
        Indexed by formula, ordered by ``npar``; columns ``npar, aic, bic,
        loglik, deviance, chisq, df, p`` (the first row's last three NaN).

    Raises
    ------
    DataError
        When the models differ in their number of rows or their response.
    """
    if len(models) < 2:
        raise ValueError("anova needs two or more models to compare")
    check_kinds(models)
    for m in models:
        if not isinstance(m, GeneralizedLinearMixedModel):
            require_unweighted(m, "anova")
    if len({m.nobs for m in models}) > 1:
        raise DataError(
            "models were not all fitted to the same rows (nobs "
            f"{[m.nobs for m in models]}); refit them on the same data"
        )
    if len({m.spec.response for m in models}) > 1:
        raise DataError(f"models have different responses: {[m.spec.response for m in models]}")
    if len({m.spec.formula for m in models}) < len(models):
        raise ValueError("two of the models have the same formula; compare different models")
    ml = sorted(maximum_likelihood(models), key=lambda m: m.npar)
    npar = np.array([m.npar for m in ml], dtype=float)
    loglik = np.array([m.loglik for m in ml])
    chisq = np.concatenate([[np.nan], 2.0 * np.maximum(0.0, np.diff(loglik))])
    df = np.concatenate([[np.nan], np.diff(npar)])
    with np.errstate(invalid="ignore"):
        p = np.where(df == 0, np.nan, chi2.sf(chisq, df))
    return pd.DataFrame(
        {
            "npar": npar.astype(int),
            "aic": [m.aic for m in ml],
            "bic": [m.bic for m in ml],
            "loglik": loglik,
            "deviance": -2.0 * loglik,
            "chisq": chisq,
            "df": df,
            "p": p,
        },
        index=pd.Index([m.spec.formula for m in ml], name="model"),
    )
