"""Confidence intervals for all parameters, with lme4's row names (``oldNames = FALSE``).

Rows: per random-effects term, in theta's order, ``sd_<column>|<group>`` for
a diagonal element and ``cor_<row column>.<column>|<group>`` below it; then
``sigma``; then the fixed effects. Methods:

* ``"profile"``: :mod:`mixedfx.inference.profile` (lme4's default);
* ``"wald"``: ``estimate +/- z se`` for the fixed effects, NaN for the
  variance parameters (as lme4);
* ``"bootstrap"``: percentiles of a parametric bootstrap
  (:mod:`mixedfx.inference.bootstrap`; lme4's ``method = "boot"`` with
  ``boot.type = "perc"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..engine.sdcor import to_sdcor
from .scope import require_lmm, require_unweighted

if TYPE_CHECKING:
    from ..model import LinearMixedModel
    from .bootstrap import BootstrapResult

METHODS = ("profile", "wald", "bootstrap")


def parameter_names(model: LinearMixedModel) -> list[str]:
    """lme4's ``oldNames = FALSE`` names of the sd/cor parameters, sigma and fixed effects."""
    names = []
    for t, (rows, cols) in zip(model.spec.terms, model.spec.layout.index, strict=True):
        for i, j in zip(rows, cols, strict=True):
            if i == j:
                names.append(f"sd_{t.columns[i]}|{t.group}")
            else:
                names.append(f"cor_{t.columns[i]}.{t.columns[j]}|{t.group}")
    return [*names, "sigma", *model.spec.fixed_names]


def estimates(model: LinearMixedModel) -> np.ndarray:
    """The parameters in :func:`parameter_names`' order."""
    return np.concatenate([to_sdcor(model.spec.layout, model.theta, model.sigma), model.beta])


def confint(
    model: LinearMixedModel,
    method: str = "profile",
    level: float = 0.95,
    bootstrap: BootstrapResult | None = None,
) -> pd.DataFrame:
    """Confidence intervals: DataFrame indexed by parameter with columns ``lower, upper``."""
    require_lmm(model, "confint")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method != "wald":
        require_unweighted(model, f"confint(method={method!r})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level!r}")
    names = parameter_names(model)
    if method == "profile":
        from .profile import profile_intervals

        lower, upper = profile_intervals(model, level)
    elif method == "wald":
        nvar = len(names) - len(model.beta)
        half = norm.ppf(0.5 + level / 2.0) * np.sqrt(np.diag(model.vcov_beta))
        lower = np.concatenate([np.full(nvar, np.nan), model.beta - half])
        upper = np.concatenate([np.full(nvar, np.nan), model.beta + half])
    else:
        if bootstrap is None:
            bootstrap = model.bootstrap()
        draws = bootstrap.parameters()
        alpha = (1.0 - level) / 2.0
        lower = np.nanquantile(draws, alpha, axis=0)
        upper = np.nanquantile(draws, 1.0 - alpha, axis=0)
    return pd.DataFrame({"lower": lower, "upper": upper}, index=pd.Index(names, name="parameter"))
