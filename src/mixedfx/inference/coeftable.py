"""The fixed-effects table: estimate, se, df, t and p (lmerTest's ``summary`` coefficients).

``ddf="satterthwaite"`` (default, as lmerTest) and ``"kenward-roger"`` give
t-tests with those denominator df (Kenward-Roger also adjusts the standard
errors, as pbkrtest's ``vcovAdj``); ``"none"`` gives the asymptotic normal
test (df = inf), as lme4's Wald intervals assume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from .kenward_roger import kenward_roger, kenward_roger_df
from .satterthwaite import satterthwaite_df
from .scope import require_lmm, require_unweighted

if TYPE_CHECKING:
    from ..model import LinearMixedModel

DDF = ("satterthwaite", "kenward-roger", "none")


def coef_table(model: LinearMixedModel, ddf: str = "satterthwaite") -> pd.DataFrame:
    """Estimate, se, df, t and p of each fixed effect (rows named as ``model.fixef``).

    Raises
    ------
    ValueError
        For an unknown ``ddf``, or ``"kenward-roger"`` on an ML fit.
    """
    require_lmm(model, "coef_table")
    if ddf not in DDF:
        raise ValueError(f"ddf must be one of {DDF}, got {ddf!r}")
    p = len(model.beta)
    eye = np.eye(p)
    if ddf == "kenward-roger":
        require_unweighted(model, "coef_table(ddf='kenward-roger')")
        se = np.sqrt(np.diag(kenward_roger(model).phi_adj))
        df = kenward_roger_df(model, eye) if p else np.zeros(0)
    else:
        se = np.sqrt(np.diag(model.vcov_beta))
        if ddf == "satterthwaite" and p:
            df = satterthwaite_df(model, eye)
        else:
            df = np.full(p, np.inf)
    tval = model.beta / se
    pval = 2.0 * student_t.sf(np.abs(tval), df)
    return pd.DataFrame(
        {"estimate": model.beta, "se": se, "df": df, "t": tval, "p": pval},
        index=pd.Index(list(model.spec.fixed_names), name="term"),
    )
